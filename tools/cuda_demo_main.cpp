// flashjit_cuda_demo: the GPU half of `flashjit demo`, for GPU-only builds (no CPU JIT, no CLI).
#include <cstdio>

#include "tools/cuda_demo.h"

int main() {
  const bool ok = flashjit::tools::run_cuda_demo();  // true also where it skips: no GPU
  std::printf("\nflashjit_cuda_demo: %s\n", ok ? "passed" : "CHECK FAILED");
  return ok ? 0 : 1;
}
