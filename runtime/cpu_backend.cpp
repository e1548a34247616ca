// The CPU launch path: registry lookup, then the pool. No allocation once the pool's arenas fit.
#include "runtime/cpu_backend.h"

#include "flashjit/error.h"
#include "runtime/kernel_registry.h"
#include "runtime/thread_pool.h"

namespace flashjit {

int cpu_pool_threads() { return ThreadPool::global().size(); }

void run_cpu_merge(const KernelKey& key, const flashjit_kernel::MergeParams& params, int64_t rows,
                   int num_threads) {
  const CpuKernel& kernel = get_cpu_kernel(key);
  FLASHJIT_ICHECK(kernel.merge) << "kernel " << kernel.name << " is not a merge kernel";
  ThreadPool::global().run(rows, num_threads, 0, [&](int64_t begin, int64_t end, void* scratch) {
    kernel.merge(&params, begin, end, scratch);
  });
}

void load_cpu_kernel(const KernelKey& key) { get_cpu_kernel(key); }

void run_cpu_kernel(const KernelKey& key, const flashjit_kernel::FwdParams& params,
                    const CpuLaunch& launch, int num_threads) {
  const CpuKernel& kernel = get_cpu_kernel(key);
  auto phase = [&](CpuFwdFn fn, int64_t items, int64_t scratch_bytes) {
    if (items == 0) return;
    FLASHJIT_ICHECK(fn) << "kernel " << kernel.name << " lacks an entry point for this call";
    ThreadPool::global().run(
        items, num_threads, scratch_bytes,
        [&](int64_t begin, int64_t end, void* scratch) { fn(&params, begin, end, scratch); });
  };
  phase(kernel.append, launch.append_items, 0);  // before any work item reads the new rows
  phase(kernel.fwd, launch.fwd_items, kernel.scratch_bytes);
  phase(kernel.combine, launch.combine_items, 0);
}

}  // namespace flashjit
