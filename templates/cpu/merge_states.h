// Merge of partial attention results for the CPU: out = sum_s exp(lse_s - lse) out_s, lse =
// log sum_s exp(lse_s). A state with no keys (LSE -inf, or +inf as an empty-K call returns)
// contributes nothing; rows no state covers get out 0 and LSE -inf.
#pragma once

#include "flashjit/cpu/simd.h"
#include "flashjit/fwd_params.h"  // FLASHJIT_CPU_ABI_VERSION
#include "flashjit/merge_params.h"

namespace flashjit_cpu {

using flashjit_kernel::MergeParams;

// Work item w = row w, every head.
template <class Cfg>
void merge_states(const MergeParams& p, long long begin, long long end) {
  using TI = typename Cfg::ElementIn;
  using TO = typename Cfg::ElementO;
  constexpr int DV = Cfg::kHeadDimV;
  constexpr float kLog2e = 1.4426950408889634f, kLn2 = 0.69314718055994531f;
  const float inf = __builtin_inff();
  for (long long r = begin; r < end; ++r)
    for (int h = 0; h < p.heads; ++h) {
      float l[flashjit_kernel::kMaxMergeStates];
      float mx = -inf;
      for (int s = 0; s < p.num_states; ++s) {
        l[s] = p.lses[s][r * p.lse_row_stride[s] + h * p.lse_head_stride[s]];
        if (l[s] == inf) l[s] = -inf;
        mx = l[s] > mx ? l[s] : mx;
      }
      float acc[DV];
      for (int c = 0; c < DV; ++c) acc[c] = 0.0f;
      float sum = 0.0f;
      if (mx != -inf) {
        for (int s = 0; s < p.num_states; ++s) {
          const float w = exp2((l[s] - mx) * kLog2e);
          if (w == 0.0f) continue;
          sum += w;
          const TI* o = (const TI*)p.outs[s] + r * p.out_row_stride[s] + h * p.out_head_stride[s];
          for (int c = 0; c < DV; ++c) acc[c] += w * to_float(o[c]);
        }
      }
      const float inv = sum > 0.0f ? 1.0f / sum : 0.0f;
      TO* out = (TO*)p.out + r * p.o_row_stride + h * p.o_head_stride;
      for (int c = 0; c < DV; ++c) out[c] = from_float<TO>(acc[c] * inv);
      if constexpr (Cfg::kLse)
        p.lse[r * p.l_row_stride + h * p.l_head_stride] =
            sum > 0.0f ? mx + __builtin_log2f(sum) * kLn2 : -inf;
    }
}

}  // namespace flashjit_cpu
