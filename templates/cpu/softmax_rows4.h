// The online softmax and the P transpose of the AMX kernel for 16-row tiles whose real rows are
// at most 4 (decode: one query of a GQA group of <= 4 heads). S^T[key][16 rows] holds 12 padding
// rows there; these steps gather the 4 real rows of 4 keys into one vector instead, so that the
// exponentials, the maxima and the transpose do a quarter of the work. The bf16 pair path
// (bf16_dot_tiles.h) computes S gathered in the first place and uses the softmax only.
#pragma once

#include "flashjit/cpu/fp32_tiles.h"
#include "flashjit/cpu/online_softmax.h"
#include "flashjit/cpu/simd.h"
#include "flashjit/fwd_params.h"

namespace flashjit_cpu {

// Keys n .. n + 3, rows 0 .. 3 of S^T[key][16]: lane 4 k + r holds key n + k, row r.
inline f32x16 gather_rows4(const float* st, int n) {
  typedef float f32x4 __attribute__((ext_vector_type(4)));
  typedef float f32x8 __attribute__((ext_vector_type(8)));
  f32x4 k[4];
  for (int j = 0; j < 4; ++j) __builtin_memcpy(&k[j], st + (n + j) * 16, sizeof(f32x4));
  const f32x8 lo = __builtin_shufflevector(k[0], k[1], 0, 1, 2, 3, 4, 5, 6, 7);
  const f32x8 hi = __builtin_shufflevector(k[2], k[3], 0, 1, 2, 3, 4, 5, 6, 7);
  return __builtin_shufflevector(lo, hi, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
}

// Lane-wise maximum over the 4 keys of a gathered vector: lanes r (and r + 4 k) hold row r's.
inline f32x16 row_max4(f32x16 v) {
  v = vmax(v, __builtin_shufflevector(v, v, 8, 9, 10, 11, 12, 13, 14, 15, 0, 1, 2, 3, 4, 5, 6, 7));
  return vmax(v,
              __builtin_shufflevector(v, v, 4, 5, 6, 7, 0, 1, 2, 3, 12, 13, 14, 15, 8, 9, 10, 11));
}
inline f32x16 row_sum4(f32x16 v) {
  v += __builtin_shufflevector(v, v, 8, 9, 10, 11, 12, 13, 14, 15, 0, 1, 2, 3, 4, 5, 6, 7);
  return v + __builtin_shufflevector(v, v, 4, 5, 6, 7, 0, 1, 2, 3, 12, 13, 14, 15, 8, 9, 10, 11);
}

// softmax_block for rows 0 .. 3 of a 16-row tile: keys [a, e) of the block (block-relative; the
// row group's range), masked by the rows' [lo, hi) where needs_mask. P is left gathered in place:
// the vector of keys n .. n + 3 (n a multiple of 4) at st + 4 n, for keys [a & ~3, e). With
// kGathered, S comes gathered already (the bf16 pair path computes it so).
template <class Cfg, bool kGathered = false>
inline void softmax_block_rows4(const FwdParams& p, float* st, RowState rs, const int* lo,
                                const int* hi, int a, int e, int n0, bool needs_mask) {
  const i32x16 lane = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15};
  const i32x16 key_of_lane = lane >> 2;  // k of lane 4 k + r
  i32x16 lo_v, hi_v;
  for (int l = 0; l < 16; ++l) {
    lo_v[l] = lo[l & 3];
    hi_v[l] = hi[l & 3];
  }
  const int a4 = a & ~3;
  f32x16 mx = kNegInf;
  for (int n = a4; n < e; n += 4) {
    f32x16 x = kGathered ? load(st + 4 * n) : gather_rows4(st, n);
    if constexpr (Cfg::kUseAmx || Cfg::kUseBf16Dot) x *= p.score_scale;
    if constexpr (Cfg::kSoftcap) x = tanh(x) * p.softcap_log2;
    const i32x16 key = n + key_of_lane;  // block-relative
    i32x16 keep = key >= a && key < e;
    if (needs_mask) keep = keep && (n0 + key >= lo_v && n0 + key < hi_v);
    x = keep ? x : kNegInf;
    store(st + 4 * n, x);  // in place: [4 n, 4 n + 16) lies within keys already read
    mx = vmax(mx, x);
  }
  mx = row_max4(mx);  // lanes r, r + 4, r + 8, r + 12: row r's maximum
  f32x16 m_old, l_old;
  for (int l = 0; l < 16; ++l) {
    m_old[l] = rs.m[l & 3];
    l_old[l] = rs.l[l & 3];
  }
  const f32x16 m_new = vmax(m_old, mx);
  const f32x16 m_use = m_new == kNegInf ? (f32x16)0.0f : m_new;
  f32x16 sum = 0.0f;
  for (int n = a4; n < e; n += 4) {
    const f32x16 x = exp2(load(st + 4 * n) - m_use);
    store(st + 4 * n, x);
    sum += x;
  }
  sum = row_sum4(sum);
  const f32x16 rescale = exp2(m_old - m_use);
  const f32x16 l_new = l_old * rescale + sum;
  for (int r = 0; r < 4; ++r) {
    rs.alpha[r] = rescale[r];
    rs.l[r] = l_new[r];
    rs.m[r] = m_new[r];
  }
}

// Row r of 16 keys from gathered vectors c[0 .. 3] (c[j]: keys 4 j .. 4 j + 3): lanes r, r + 4,
// r + 8 and r + 12 of each.
template <int r>
inline f32x16 p_row16(const f32x16* c) {
  typedef float f32x8 __attribute__((ext_vector_type(8)));
  const f32x8 lo =
      __builtin_shufflevector(c[0], c[1], r, r + 4, r + 8, r + 12, 16 + r, 20 + r, 24 + r, 28 + r);
  const f32x8 hi =
      __builtin_shufflevector(c[2], c[3], r, r + 4, r + 8, r + 12, 16 + r, 20 + r, 24 + r, 28 + r);
  return __builtin_shufflevector(lo, hi, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
}

template <int r>
inline void store_p_row16(const f32x16* c, bf16* row) {
  const u16x16 h = to_bf16_bits(p_row16<r>(c));
  __builtin_memcpy(row, &h, sizeof(h));
}

// P[r][n] (bf16, row stride BN) for rows 0 .. 3 and keys [0, round_up(nb, 32)) from the gathered
// vectors of softmax_block_rows4 (keys [a & ~3, e)); zero elsewhere. Rows 4 .. 15 are not written
// (the caller keeps them zero).
template <int BN>
inline void transpose_p_rows4(const float* st, int nb, int a, int e, bf16* p) {
  const int a4 = a & ~3, n_end = round_up(nb, 32);
  for (int n16 = 0; n16 < n_end; n16 += 16) {
    f32x16 c[4];
    for (int j = 0; j < 4; ++j) {
      const int n = n16 + 4 * j;
      c[j] = n >= a4 && n < e ? load(st + 4 * n) : (f32x16)0.0f;
    }
    store_p_row16<0>(c, p + n16);
    store_p_row16<1>(c, p + BN + n16);
    store_p_row16<2>(c, p + 2 * BN + n16);
    store_p_row16<3>(c, p + 3 * BN + n16);
  }
}

}  // namespace flashjit_cpu
