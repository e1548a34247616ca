// The online softmax of the CPU kernel on transposed scores S^T[key][row], 16 query rows per
// vector, so that row maxima and sums are vertical vector operations.
#pragma once

#include "flashjit/cpu/masks.h"
#include "flashjit/cpu/simd.h"
#include "flashjit/fwd_params.h"

namespace flashjit_cpu {

constexpr float kLog2e = 1.4426950408889634f;
constexpr float kLn2 = 0.69314718055994531f;
constexpr float kNegInf = -__builtin_inff();

// The sink logit of query head hq as a float, whatever dtype the caller's sinks tensor has.
inline float sink_logit(const FwdParams& p, int hq) {
  if (p.sinks_dtype == flashjit_kernel::kSinksBFloat16) return to_float(((const bf16*)p.sinks)[hq]);
  if (p.sinks_dtype == flashjit_kernel::kSinksFloat16) return to_float(((const fp16*)p.sinks)[hq]);
  return ((const float*)p.sinks)[hq];
}

// Per 16-row group g: the block-relative keys [ga[g], ge[g]) that any of its rows sees.
template <int BM>
inline void block_ranges(const int* lo, const int* hi, int n0, int nb, int* ga, int* ge) {
  for (int g = 0; g < BM / 16; ++g) {
    int a = nb, e = 0;
    for (int r = g * 16; r < g * 16 + 16; ++r) {
      if (lo[r] >= hi[r]) continue;
      a = lo[r] - n0 < a ? lo[r] - n0 : a;
      e = hi[r] - n0 > e ? hi[r] - n0 : e;
    }
    ga[g] = a < 0 ? 0 : a;
    ge[g] = e > nb ? nb : e;
    if (ga[g] > ge[g]) ga[g] = ge[g];
  }
}

// P^T = 0 for the keys of a row group outside its range (the matmuls skip what they can there).
template <int BM>
inline void zero_outside_ranges(float* st, int nb, const int* ga, const int* ge) {
  for (int g = 0; g < BM / 16; ++g) {
    for (int n = 0; n < ga[g]; ++n) store(st + n * BM + g * 16, 0.0f);
    for (int n = ge[g]; n < nb; ++n) store(st + n * BM + g * 16, 0.0f);
  }
}

// Running softmax state of one head group's rows.
struct RowState {
  float* m;      // [BM] running maxima (log2 units)
  float* l;      // [BM] running sums
  float* alpha;  // [BM] this block's rescale factor for O
};

// One block of the online softmax: scale (AMX) and softcap, mask, new row maxima, P = 2^(S - m)
// in place, and alpha per row. Only the keys [ga[g], ge[g]) of row group g are looked at.
template <class Cfg>
inline void softmax_block(const FwdParams& p, float* st, RowState rs, const int* lo, const int* hi,
                          const int* ga, const int* ge, int n0, bool needs_mask) {
  constexpr int BM = Cfg::kBlockM;
  for (int r = 0; r < BM; r += 16) {
    const int a = ga[r / 16], e = ge[r / 16];
    i32x16 lo_v, hi_v;
    __builtin_memcpy(&lo_v, lo + r, 64);
    __builtin_memcpy(&hi_v, hi + r, 64);
    f32x16 mx = kNegInf;
    for (int n = a; n < e; ++n) {
      f32x16 x = load(st + n * BM + r);
      if constexpr (Cfg::kUseAmx || Cfg::kUseBf16Dot) x *= p.score_scale;
      if constexpr (Cfg::kSoftcap) x = tanh(x) * p.softcap_log2;
      if (needs_mask) {
        const int j = n0 + n;
        x = (j >= lo_v && j < hi_v) ? x : kNegInf;
      }
      store(st + n * BM + r, x);
      mx = vmax(mx, x);
    }
    const f32x16 m_old = load(rs.m + r);
    const f32x16 m_new = vmax(m_old, mx);
    const f32x16 m_use = m_new == kNegInf ? (f32x16)0.0f : m_new;
    f32x16 sum = 0.0f;
    for (int n = a; n < e; ++n) {
      const f32x16 x = exp2(load(st + n * BM + r) - m_use);
      store(st + n * BM + r, x);
      sum += x;
    }
    const f32x16 rescale = exp2(m_old - m_use);
    store(rs.alpha + r, rescale);
    store(rs.l + r, load(rs.l + r) * rescale + sum);
    store(rs.m + r, m_new);
  }
}

}  // namespace flashjit_cpu
