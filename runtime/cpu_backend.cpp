// The CPU launch path: registry lookup, then the pool. No allocation once the pool's arenas fit.
#include "runtime/cpu_backend.h"

#include "runtime/kernel_registry.h"
#include "runtime/thread_pool.h"

namespace flashjit {

int cpu_pool_threads() { return ThreadPool::global().size(); }

void run_cpu_kernel(const KernelKey& key, const flashjit_kernel::FwdParams& params,
                    int64_t work_items, int num_threads) {
  const CpuKernel& kernel = get_cpu_kernel(key);
  const CpuFwdFn fwd = kernel.fwd;
  ThreadPool::global().run(
      work_items, num_threads, kernel.scratch_bytes,
      [&](int64_t begin, int64_t end, void* scratch) { fwd(&params, begin, end, scratch); });
}

}  // namespace flashjit
