// Split-KV combine for NVIDIA GPUs: one warp per (query, head) row merges the fp32 partials of
// the splits by their LSE and writes out / lse in the caller's layout (spec 6.3).
#pragma once

#include "flashjit/attention_math.h"
#include "flashjit/cuda/ptx.cuh"
#include "flashjit/fwd_params.h"

namespace flashjit_cuda {

// CTA (x, 0, b), 4 warps: warp w takes row r = 4 x + w of sequence b, i.e. query r / h, head r % h.
template <class Cfg>
__device__ __forceinline__ void flash_combine(const FwdParams& p) {
  constexpr int DV = Cfg::kHeadDimV;
  constexpr float kLog2e = 1.4426950408889634f, kLn2 = 0.69314718055994531f;
  const int b = blockIdx.z, lane = threadIdx.x % 32;
  const long long r = (long long)blockIdx.x * 4 + threadIdx.x / 32;
  const int i = (int)(r / p.num_heads), hq = (int)(r % p.num_heads);
  const flashjit_kernel::Sequence s = flashjit_kernel::sequence<Cfg>(p, b);
  if (i >= s.lq) return;  // rows past seqused_q are left unwritten
  const long long a = (s.acc_row0 + i) * p.num_heads + hq;
  grid_dependency_wait();  // the attention kernel's partials are complete and visible
  // One L2 round trip for up to kChunk splits: their partial rows load at once, beside the LSEs
  // (lane k holds split k of each group of 32), since the rows do not depend on the weights.
  // NOTE: loading the LSEs first, then the rows, took 3.3 us after the wait at batch 1 (15
  // splits, globaltimer trace, H100).
  constexpr int kCols = (DV + 63) / 64;  // each lane owns columns 2 lane + 64 c, c < kCols
  constexpr int kChunk = kCols <= 2 ? 16 : 8;
  static_assert(32 % kChunk == 0, "a chunk's weights sit in one group of 32 lanes");
  const int n = p.num_splits;
  const long long split_stride = (long long)p.accum_rows * DV;
  const float* lse_row = p.lse_accum + a;
  const float* o_row = p.out_accum + a * DV;
  Float2 x[kChunk][kCols];
  auto load_rows = [&](int sp0) {
#pragma unroll
    for (int k = 0; k < kChunk; ++k)
#pragma unroll
      for (int c = 0; c < kCols; ++c) {
        const int col = c * 64 + 2 * lane;
        x[k][c] = sp0 + k < n && col < DV
                      ? *reinterpret_cast<const Float2*>(o_row + (sp0 + k) * split_stride + col)
                      : Float2{0.f, 0.f};
      }
  };
  load_rows(0);
  const float l0 = lane < n ? lse_row[(long long)lane * p.accum_rows] : neg_inf();
  float mx = l0;
  for (int sp = lane + 32; sp < n; sp += 32) mx = fmaxf(mx, lse_row[(long long)sp * p.accum_rows]);
#pragma unroll
  for (int o = 16; o > 0; o /= 2) mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, o));
  float acc[kCols][2];
#pragma unroll
  for (int c = 0; c < kCols; ++c) acc[c][0] = acc[c][1] = 0.f;
  float sum = 0.f, w = 0.f;
  for (int sp0 = 0; sp0 < n; sp0 += kChunk) {
    if (sp0 % 32 == 0) {  // the weights of splits sp0 .. sp0 + 31, a lane each
      const float l = sp0 == 0         ? l0
                      : sp0 + lane < n ? lse_row[(long long)(sp0 + lane) * p.accum_rows]
                                       : neg_inf();
      w = mx == neg_inf() ? 0.f : exp2f((l - mx) * kLog2e);
      float part = w;
#pragma unroll
      for (int o = 16; o > 0; o /= 2) part += __shfl_xor_sync(0xffffffffu, part, o);
      sum += part;
    }
    if (sp0 > 0) load_rows(sp0);
#pragma unroll
    for (int k = 0; k < kChunk; ++k) {
      const float wk = __shfl_sync(0xffffffffu, w, sp0 % 32 + k);
#pragma unroll
      for (int c = 0; c < kCols; ++c) {
        acc[c][0] += wk * x[k][c].x;
        acc[c][1] += wk * x[k][c].y;
      }
    }
  }
  const float inv = sum > 0.f ? 1.f / sum : 0.f;
#pragma unroll
  for (int c = 0; c < kCols; ++c) {
    acc[c][0] *= inv;
    acc[c][1] *= inv;
  }
  const float lse = sum > 0.f ? mx + log2f(sum) * kLn2 : neg_inf();
  u16* orow =
      (u16*)p.out + b * p.o_batch_stride + (s.q_row0 + i) * p.o_row_stride + hq * p.o_head_stride;
#pragma unroll
  for (int c = 0; c < kCols; ++c) {
    const int col = c * 64 + 2 * lane;
    if (col < DV) *(u32*)(orow + col) = pack2<Cfg::kBf16>(acc[c][0], acc[c][1]);
  }
  if constexpr (Cfg::kLse) {
    if (lane == 0)
      p.lse[b * p.lse_batch_stride + (s.q_row0 + i) * p.lse_row_stride + hq * p.lse_head_stride] =
          lse;
  }
}

}  // namespace flashjit_cuda
