// Runs a CPU kernel: looks the kernel up (compiling it on first use) and spreads its work items
// over the thread pool.
#pragma once

#include <cstdint>

#include "flashjit/kernel_key.h"
#include "runtime/launch_shapes.h"
#include "templates/fwd_params.h"
#include "templates/merge_params.h"

namespace flashjit {

// Threads of the process-wide CPU pool.
int cpu_pool_threads();

// Runs the merge kernel of a merge key over `rows` rows on the pool.
void run_cpu_merge(const KernelKey& key, const flashjit_kernel::MergeParams& params, int64_t rows,
                   int num_threads);

// Compiles or loads the kernel of a CPU key (the first call of a key does this itself).
void load_cpu_kernel(const KernelKey& key);

void run_cpu_kernel(const KernelKey& key, const flashjit_kernel::FwdParams& params,
                    const CpuLaunch& launch, int num_threads);

}  // namespace flashjit
