// What one attention call launches, per backend: plain data shared by the planner
// (attention_problem.cpp) and the backends, with no CUDA or LLVM types.
#pragma once

#include <cstdint>

namespace flashjit {

// The phases of one CPU call, each over the pool: the append entry (append keys), the attention
// entry, then the combine entry (split-KV keys). 0 items skips a phase.
struct CpuLaunch {
  int64_t append_items = 0;
  int64_t fwd_items = 0;
  int64_t combine_items = 0;
};

struct CudaGrid {
  int x = 1, y = 1, z = 1;
};

// The launches of one CUDA call, in stream order: append (append keys), attention, combine
// (split-KV keys). A grid with x == 0 is skipped.
struct CudaLaunch {
  CudaGrid append{0, 0, 0};
  CudaGrid fwd{0, 0, 0};
  CudaGrid combine{0, 0, 0};
};

}  // namespace flashjit
