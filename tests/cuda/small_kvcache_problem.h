// A small bf16 kvcache problem in device memory of the current CUDA context, filled from a fixed
// seed: two problems of the same head dim hold the same inputs, whichever context holds them.
#pragma once

#include <cstdint>
#include <random>
#include <vector>

#include "flashjit/flashjit.h"
#include "runtime/cuda_api.h"

namespace flashjit::testing {

struct SmallKvcacheProblem {
  int b = 2, s = 3, h = 4, hk = 2, d = 64, sk = 96;
  CUdeviceptr q = 0, k = 0, v = 0, out = 0;
  // Free it with its own context current.
  explicit SmallKvcacheProblem(int head_dim) : d(head_dim) {
    std::mt19937 rng(3);
    auto fill = [&](CUdeviceptr& ptr, size_t n) {
      std::vector<uint16_t> host(n);
      for (uint16_t& x : host) x = static_cast<uint16_t>(0x3c00 + rng() % 512 - 256);
      FLASHJIT_CU(cuMemAlloc(&ptr, n * 2));
      FLASHJIT_CU(cuMemcpyHtoD(ptr, host.data(), n * 2));
    };
    fill(q, size_t(b) * s * h * d);
    fill(k, size_t(b) * sk * hk * d);
    fill(v, size_t(b) * sk * hk * d);
    fill(out, size_t(b) * s * h * d);
  }
  ~SmallKvcacheProblem() {
    for (CUdeviceptr p : {q, k, v, out}) cuda::driver()->cuMemFree(p);
  }
  SmallKvcacheProblem(const SmallKvcacheProblem&) = delete;
  SmallKvcacheProblem& operator=(const SmallKvcacheProblem&) = delete;
  KvcacheArgs args(void* stream, Device gpu = Device{DeviceType::kCUDA, 0}) const {
    KvcacheArgs a;
    a.q = Tensor::contiguous(reinterpret_cast<void*>(q), DType::kBFloat16, {b, s, h, d}, gpu);
    a.k_cache =
        Tensor::contiguous(reinterpret_cast<void*>(k), DType::kBFloat16, {b, sk, hk, d}, gpu);
    a.v_cache =
        Tensor::contiguous(reinterpret_cast<void*>(v), DType::kBFloat16, {b, sk, hk, d}, gpu);
    a.out = Tensor::contiguous(reinterpret_cast<void*>(out), DType::kBFloat16, {b, s, h, d}, gpu);
    a.causal = true;
    a.options.stream = stream;
    return a;
  }
  // Waits for the current context and copies out to the host.
  std::vector<uint16_t> output() const {
    std::vector<uint16_t> host(size_t(b) * s * h * d);
    FLASHJIT_CU(cuCtxSynchronize());
    FLASHJIT_CU(cuMemcpyDtoH(host.data(), out, host.size() * 2));
    return host;
  }
};

}  // namespace flashjit::testing
