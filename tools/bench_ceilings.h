// Ceilings of this machine measured in the same run as the kernels: fp32 FMA peak, AMX bf16 peak,
// AVX-512 BF16 dot-product peak and DRAM read bandwidth, each over `threads` threads.
#pragma once

#include <memory>

namespace flashjit::tools {

struct Ceilings {
  double fp32_fma_gflops = 0;  // zmm FMA, 16 independent chains per thread
  double amx_bf16_gflops = 0;  // tdpbf16ps, 4 accumulators, tiles in registers (0 if no AMX)
  double dot_bf16_gflops = 0;  // zmm vdpbf16ps, 16 independent chains (0 if no AVX-512 BF16)
  double dram_read_gbs = 0;    // streaming read of 1 GiB
};

// One streaming read of a 1 GiB buffer over `threads` threads, repeatable: the decode rows pair
// each timed call with a read just before it, so that both see the same memory system (on a
// shared VM its bandwidth drifts by tens of percent within seconds). Needs AVX-512.
class DramReadProbe {
 public:
  explicit DramReadProbe(int threads);
  ~DramReadProbe();
  double gbs() const;  // GB/s of this pass

 private:
  struct Buffer;
  int threads_;
  std::unique_ptr<Buffer> buffer_;
};

// The DRAM ceiling is the best of 3 passes of `dram` (0 without AVX-512).
Ceilings measure_ceilings(int threads, bool amx, bool bf16_dot, const DramReadProbe* dram);

}  // namespace flashjit::tools
