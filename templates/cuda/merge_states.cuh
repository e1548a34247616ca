// Merge of partial attention results for NVIDIA GPUs: one warp per (row, head), lanes over the
// columns. Same rules as the CPU merge (templates/cpu/merge_states.h).
#pragma once

#include "flashjit/cuda/ptx.cuh"
#include "flashjit/merge_params.h"

namespace flashjit_cuda {

using flashjit_kernel::MergeParams;

template <int kDtype>  // 0 fp32, 1 fp16, 2 bf16
__device__ __forceinline__ float merge_load(const void* p, long long i) {
  if constexpr (kDtype == 0) return ((const float*)p)[i];
  return to_float<kDtype == 2>(((const u16*)p)[i]);
}

template <int kDtype>
__device__ __forceinline__ void merge_store(void* p, long long i, float x) {
  if constexpr (kDtype == 0) {
    ((float*)p)[i] = x;
  } else {
    ((u16*)p)[i] = (u16)(pack2<kDtype == 2>(x, 0.f) & 0xffff);
  }
}

// CTA x, 4 warps: warp w merges pair r = 4 x + w, i.e. row r / heads, head r % heads.
template <class Cfg>
__device__ __forceinline__ void merge_states(const MergeParams& p) {
  constexpr int DV = Cfg::kHeadDimV;
  constexpr float kLog2e = 1.4426950408889634f, kLn2 = 0.69314718055994531f;
  const int lane = threadIdx.x % 32;
  const long long pair = (long long)blockIdx.x * 4 + threadIdx.x / 32;
  if (pair >= (long long)p.rows * p.heads) return;
  const long long r = pair / p.heads;
  const int h = (int)(pair % p.heads);
  const float inf = __int_as_float(0x7f800000);
  float mx = neg_inf();
  for (int s = 0; s < p.num_states; ++s) {
    float l = p.lses[s][r * p.lse_row_stride[s] + h * p.lse_head_stride[s]];
    mx = fmaxf(mx, l == inf ? neg_inf() : l);
  }
  constexpr int kCols = (DV + 31) / 32;
  float acc[kCols];
#pragma unroll
  for (int c = 0; c < kCols; ++c) acc[c] = 0.f;
  float sum = 0.f;
  if (mx != neg_inf()) {
    for (int s = 0; s < p.num_states; ++s) {
      float l = p.lses[s][r * p.lse_row_stride[s] + h * p.lse_head_stride[s]];
      const float w = l == inf ? 0.f : exp2f((l - mx) * kLog2e);
      if (w == 0.f) continue;
      sum += w;
      const long long base = r * p.out_row_stride[s] + h * p.out_head_stride[s];
#pragma unroll
      for (int c = 0; c < kCols; ++c)
        if (c * 32 + lane < DV)
          acc[c] += w * merge_load<Cfg::kDtypeIn>(p.outs[s], base + c * 32 + lane);
    }
  }
  const float inv = sum > 0.f ? 1.f / sum : 0.f;
  const long long obase = r * p.o_row_stride + h * p.o_head_stride;
#pragma unroll
  for (int c = 0; c < kCols; ++c)
    if (c * 32 + lane < DV) merge_store<Cfg::kDtypeO>(p.out, obase + c * 32 + lane, acc[c] * inv);
  if constexpr (Cfg::kLse) {
    if (lane == 0)
      p.lse[r * p.l_row_stride + h * p.l_head_stride] =
          sum > 0.f ? mx + log2f(sum) * kLn2 : neg_inf();
  }
}

}  // namespace flashjit_cuda
