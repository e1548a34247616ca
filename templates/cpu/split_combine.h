// Split-KV combine for the CPU: merges the fp32 partials (out, LSE) of the splits of every query
// row by their LSE and writes out / lse in the caller's layout (spec 6.3).
#pragma once

#include "flashjit/cpu/masks.h"
#include "flashjit/cpu/simd.h"
#include "flashjit/fwd_params.h"

namespace flashjit_cpu {

// Work item w = (sequence b, query index i): all heads of that query row.
template <class Cfg>
void flash_combine(const FwdParams& p, long long begin, long long end) {
  using TO = typename Cfg::ElementO;
  constexpr int DV = Cfg::kHeadDimV;
  constexpr float kLog2e = 1.4426950408889634f, kLn2 = 0.69314718055994531f;
  for (long long w = begin; w < end; ++w) {
    const int b = (int)(w / p.seqlen_q), i = (int)(w % p.seqlen_q);
    const Sequence s = sequence<Cfg>(p, b);
    if (i >= s.lq) continue;  // rows past seqused_q are left unwritten
    for (int hq = 0; hq < p.num_heads; ++hq) {
      const long long a = (s.acc_row0 + i) * p.num_heads + hq;
      float mx = -__builtin_inff();
      for (int sp = 0; sp < p.num_splits; ++sp) {
        const float l = p.lse_accum[sp * p.accum_rows + a];
        mx = l > mx ? l : mx;
      }
      float sum = 0.0f;
      if (mx != -__builtin_inff())
        for (int sp = 0; sp < p.num_splits; ++sp)
          sum += exp2((p.lse_accum[sp * p.accum_rows + a] - mx) * kLog2e);
      const float lse = sum > 0.0f ? mx + __builtin_log2f(sum) * kLn2 : -__builtin_inff();
      f32x16 acc[(DV + 15) / 16];
      for (int c = 0; c < (DV + 15) / 16; ++c) acc[c] = (f32x16)0.0f;
      if (sum > 0.0f) {
        for (int sp = 0; sp < p.num_splits; ++sp) {
          const float wgt = exp2((p.lse_accum[sp * p.accum_rows + a] - lse) * kLog2e);
          if (wgt == 0.0f) continue;
          const float* o = p.out_accum + (sp * p.accum_rows + a) * DV;
          int c = 0;
          for (; c + 16 <= DV; c += 16) acc[c / 16] += load(o + c) * wgt;
          if (c < DV) acc[c / 16] += load_f32_partial(o + c, DV - c) * wgt;
        }
      }
      TO* orow = (TO*)p.out + b * p.o_batch_stride + (s.q_row0 + i) * p.o_row_stride +
                 hq * p.o_head_stride;
      int c = 0;
      for (; c + 16 <= DV; c += 16) store_f32(orow + c, acc[c / 16]);
      if (c < DV) store_f32_partial(orow + c, acc[c / 16], DV - c);
      if constexpr (Cfg::kLse)
        p.lse[b * p.lse_batch_stride + (s.q_row0 + i) * p.lse_row_stride + hq * p.lse_head_stride] =
            lse;
    }
  }
}

}  // namespace flashjit_cpu
