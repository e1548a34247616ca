// The fp32 (AVX-512 FMA, or portable vector) matmuls of the CPU kernel. Scores are computed
// transposed, S^T[key][row], with query rows along the vector lanes: K rows are read in place
// (broadcast), Q is transposed once per work item, and the softmax needs no horizontal
// reductions. O += P V broadcasts P^T[key][row] against rows of V.
#pragma once

#include "flashjit/cpu/simd.h"

namespace flashjit_cpu {

constexpr int round_up(int x, int m) { return (x + m - 1) / m * m; }

// qt[d][BM] = q_rows[r][d] * scale for r < nrows, zero for the other rows.
template <int D, int BM, typename T>
inline void pack_q_transposed(const T* const* rows, int nrows, float scale, float* qt) {
  for (int r0 = 0; r0 < BM; r0 += 16) {
    for (int d0 = 0; d0 < D; d0 += 16) {
      const int width = D - d0 < 16 ? D - d0 : 16;
      u32x16 t[16];
      for (int j = 0; j < 16; ++j) {
        f32x16 x = 0.0f;
        if (r0 + j < nrows)
          x = (width == 16 ? load_f32(rows[r0 + j] + d0)
                           : load_f32_partial(rows[r0 + j] + d0, width)) *
              scale;
        t[j] = __builtin_bit_cast(u32x16, x);
      }
      transpose16(t);
      for (int e = 0; e < width; ++e) store_u32(qt + (d0 + e) * BM + r0, t[e]);
    }
  }
}

// st[n][r0 : r0 + 16V] = sum_d k[n][d] qt[d][r0 : ...] for KEYS keys n0 .. n0 + KEYS; K rows
// are KS floats apart.
template <int D, int KS, int BM, int KEYS, int V>
inline void qk_keys(const float* qt, const float* k, int n0, int r0, float* st) {
  f32x16 acc[KEYS][V];
  for (int j = 0; j < KEYS; ++j)
    for (int v = 0; v < V; ++v) acc[j][v] = 0.0f;
  const float* kr = k + n0 * KS;
  for (int d = 0; d < D; ++d) {
    f32x16 q[V];
    for (int v = 0; v < V; ++v) q[v] = load(qt + d * BM + r0 + v * 16);
    for (int j = 0; j < KEYS; ++j) {
      const f32x16 kb = kr[j * KS + d];
      for (int v = 0; v < V; ++v) acc[j][v] += kb * q[v];
    }
  }
  for (int j = 0; j < KEYS; ++j)
    for (int v = 0; v < V; ++v) store(st + (n0 + j) * BM + r0 + v * 16, acc[j][v]);
}

// S^T[n][BM] for keys n < round_up(nb, 8); k is [round_up(nb, 8)][KS] (zero rows past nb).
// Row group g (16 rows) only needs keys [ga[g], ge[g]); panels that need none are skipped.
template <int D, int KS, int BM>
inline void qk_fp32(const float* qt, const float* k, float* st, int nb, const int* ga,
                    const int* ge) {
  for (int n0 = 0; n0 < nb; n0 += 8) {
    int r0 = 0;
    for (; r0 + 32 <= BM; r0 += 32) {
      const int g = r0 / 16;
      const int a = ga[g] < ga[g + 1] ? ga[g] : ga[g + 1],
                e = ge[g] > ge[g + 1] ? ge[g] : ge[g + 1];
      if (n0 + 8 > a && n0 < e) qk_keys<D, KS, BM, 8, 2>(qt, k, n0, r0, st);
    }
    if (r0 < BM && n0 + 8 > ga[r0 / 16] && n0 < ge[r0 / 16])
      qk_keys<D, KS, BM, 8, 1>(qt, k, n0, r0, st);
  }
}

// o[r][c0 : c0 + 16C] = o * alpha[r] + sum_n pt[n][r] v[n][c0 : ...] for 4 rows r0 ...
template <int DVp, int BM, int C>
inline void pv_rows(const float* pt, const float* vs, int r0, int c0, float* o, const float* alpha,
                    int a, int e) {
  f32x16 acc[4][C];
  for (int r = 0; r < 4; ++r)
    for (int c = 0; c < C; ++c) acc[r][c] = load(o + (r0 + r) * DVp + c0 + c * 16) * alpha[r0 + r];
  for (int n = a; n < e; ++n) {
    f32x16 v[C];
    for (int c = 0; c < C; ++c) v[c] = load(vs + n * DVp + c0 + c * 16);
    for (int r = 0; r < 4; ++r) {
      const f32x16 p = pt[n * BM + r0 + r];
      for (int c = 0; c < C; ++c) acc[r][c] += p * v[c];
    }
  }
  for (int r = 0; r < 4; ++r)
    for (int c = 0; c < C; ++c) store(o + (r0 + r) * DVp + c0 + c * 16, acc[r][c]);
}

// O[r] = O[r] * alpha[r] + P V for the first `rows` rows (a multiple of 4); vs is [nb][DVp].
// P^T is zero outside the keys [ga[g], ge[g]) of row group g, so only those are summed.
template <int DVp, int BM>
inline void pv_fp32(const float* pt, const float* vs, float* o, const float* alpha, int rows,
                    const int* ga, const int* ge) {
  constexpr int kVecs = DVp / 16;
  constexpr int kTail = kVecs % 4;
  for (int r = 0; r < rows; r += 4) {
    const int a = ga[r / 16], e = ge[r / 16];
    int c = 0;
    for (; c + 4 <= kVecs; c += 4) pv_rows<DVp, BM, 4>(pt, vs, r, c * 16, o, alpha, a, e);
    if constexpr (kTail > 0) pv_rows<DVp, BM, kTail>(pt, vs, r, c * 16, o, alpha, a, e);
  }
}

// rows[n] + delta as floats into dst[n][W] (zero past `width`) for n < nb, and zero rows up to
// n_end. NOTE: K and V are always copied into contiguous scratch, fp32 too: rows of a (s, h, d)
// tensor are h * d * 4 bytes apart, often a multiple of 4 KiB, so read in place they all fall into
// the same L1 sets and the matmul loops run from L2.
template <int W, typename T>
inline void pack_rows_fp32(const T* const* rows, long long delta, int nb, int n_end, int width,
                           float* dst) {
  for (int n = 0; n < nb; ++n) {
    const T* row = rows[n] + delta;
    int c = 0;
    for (; c + 16 <= width; c += 16) store(dst + n * W + c, load_f32(row + c));
    if (c < W) store(dst + n * W + c, load_f32_partial(row + c, width - c));
  }
  for (int n = nb; n < n_end; ++n)
    for (int c = 0; c < W; c += 16) store(dst + n * W + c, 0.0f);
}

// Decode tiles with at most 4 real rows on the fp32 path (fp16, fp32, or bf16 without AVX-512
// BF16): the head dim along the lanes and 4 head groups x 4 rows of dot products a key, summed by
// a transpose-and-add tree (reduce16), K converted as it is loaded. With rows along the lanes 12
// of 16 would be padding.

// q4[r][Dp] = q[r] * scale for r < 4 (zero rows from nrows, zero past D).
template <int D, int Dp, typename T>
inline void pack_q_rows4_f32(const T* const* rows, int nrows, float scale, float* q4) {
  for (int r = 0; r < 4; ++r)
    for (int d0 = 0; d0 < Dp; d0 += 16) {
      f32x16 x = 0.0f;
      if (r < nrows && d0 < D)
        x = (D - d0 >= 16 ? load_f32(rows[r] + d0) : load_f32_partial(rows[r] + d0, D - d0)) *
            scale;
      store(q4 + r * Dp + d0, x);
    }
}

// Scores of key n for 4 head groups x 4 rows, stored gathered at st[h] + 4 n (lanes 4 h .. 4 h + 3
// of the tree, the layout of softmax_block_rows4). k: key n's row of head group 0; delta[h]: head
// group h's offset from it.
template <int D, int Dp, typename T>
inline void qk_heads4_f32(const float* const* q4, const T* k, const long long* delta,
                          float* const* st, int nheads, int n) {
  f32x16 acc[16];
  for (int i = 0; i < 16; ++i) acc[i] = 0.0f;
  for (int d0 = 0; d0 < Dp; d0 += 16) {
    for (int h = 0; h < 4; ++h) {
      const T* row = k + delta[h < nheads ? h : 0] + d0;
      const f32x16 kv = D - d0 >= 16 ? load_f32(row) : load_f32_partial(row, D - d0);
      for (int r = 0; r < 4; ++r)
        acc[kBitrev4[4 * h + r]] += kv * load(q4[h < nheads ? h : 0] + r * Dp + d0);
    }
  }
  store_quads(reduce16(acc), st, 4LL * n, nheads);
}

// O[r] = O[r] * alpha[r] + P V for rows 0 .. 3 and keys [a, e), P gathered (softmax_block_rows4:
// key n's rows at pg + 4 n).
template <int DVp>
inline void pv_rows4_fp32(const float* pg, const float* vs, float* o, const float* alpha, int a,
                          int e) {
  constexpr int kVecs = DVp / 16;
  constexpr int kTail = kVecs % 4;
  int c = 0;
  for (; c + 4 <= kVecs; c += 4) pv_rows<DVp, 4, 4>(pg, vs, 0, c * 16, o, alpha, a, e);
  if constexpr (kTail > 0) pv_rows<DVp, 4, kTail>(pg, vs, 0, c * 16, o, alpha, a, e);
}

}  // namespace flashjit_cpu
