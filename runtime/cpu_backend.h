// Runs a CPU kernel: looks the kernel up (compiling it on first use) and spreads its work items
// over the thread pool.
#pragma once

#include <cstdint>

#include "flashjit/kernel_key.h"
#include "templates/fwd_params.h"

namespace flashjit {

// Threads of the process-wide CPU pool.
int cpu_pool_threads();

void run_cpu_kernel(const KernelKey& key, const flashjit_kernel::FwdParams& params,
                    int64_t work_items, int num_threads);

}  // namespace flashjit
