// The bf16 matmuls of the CPU kernel on AVX-512 BF16 without AMX (AMD Zen 4, Intel Cooper Lake):
// vdpbf16ps multiplies pairs of bf16 and adds both products to an fp32 lane, so an instruction
// does 32 multiply-adds on the raw inputs, where the fp32 path converts K and V first and does 16.
// Layout as in the fp32 path (fp32_tiles.h), with pairs in place of elements: query rows along
// the lanes, S^T[key][row]. Q K^T pairs head dims (Q^T[d / 2][row], K rows read in place, a
// 32-bit pair broadcast); P V pairs keys (P^T[key / 2][row], V rows interleaved by key pairs).
#pragma once

#include "flashjit/cpu/simd.h"

#if defined(__AVX512BF16__) && defined(__AVX512BW__)
#define FLASHJIT_HAVE_BF16_DOT 1

namespace flashjit_cpu {

typedef __bf16 bf16x32 __attribute__((vector_size(64)));
typedef float f32v16 __attribute__((vector_size(64)));

// acc[i] += a[2 i] b[2 i] + a[2 i + 1] b[2 i + 1] (a, b: 32 bf16 as 16 pairs).
inline f32x16 dot2(f32x16 acc, u32x16 a, u32x16 b) {
  return __builtin_bit_cast(f32x16, __builtin_ia32_dpbf16ps_512(__builtin_bit_cast(f32v16, acc),
                                                                __builtin_bit_cast(bf16x32, a),
                                                                __builtin_bit_cast(bf16x32, b)));
}

// Lane i: (lo[i], hi[i]) as a bf16 pair, rounded to nearest even.
inline u32x16 pair_bf16(f32x16 lo, f32x16 hi) {
  const u16x32 h =
      __builtin_bit_cast(u16x32, __builtin_ia32_cvtne2ps2bf16_512(__builtin_bit_cast(f32v16, hi),
                                                                  __builtin_bit_cast(f32v16, lo)));
  return __builtin_bit_cast(
      u32x16,
      __builtin_shufflevector(h, h, 0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23, 8, 24,
                              9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31));
}

// n < 16 32-bit words from p, zero past them; never touches memory past p + n.
inline u32x16 load_u32_partial(const void* p, int n) {
  unsigned tmp[kLanes] = {};
  __builtin_memcpy(tmp, p, n * 4);
  return load_u32(tmp);
}

// qt[j][BM] = (q[r][2 j], q[r][2 j + 1]) for rows r < nrows, zero for the other rows, j < Jp =
// round_up(D / 2, 16) (zero past D / 2).
template <int D, int BM>
inline void pack_q_pairs(const bf16* const* rows, int nrows, unsigned* qt) {
  constexpr int J = D / 2;
  for (int r0 = 0; r0 < BM; r0 += 16) {
    for (int j0 = 0; j0 < J; j0 += 16) {
      const int width = J - j0 < 16 ? J - j0 : 16;
      u32x16 t[16];
      for (int i = 0; i < 16; ++i) {
        t[i] = 0u;
        if (r0 + i < nrows)
          t[i] = width == 16 ? load_u32(rows[r0 + i] + 2 * j0)
                             : load_u32_partial(rows[r0 + i] + 2 * j0, width);
      }
      transpose16(t);
      for (int e = 0; e < 16; ++e) store_u32(qt + (j0 + e) * BM + r0, t[e]);
    }
  }
}

// st[n][r0 : r0 + 16 V] = Q K^T (unscaled) for KEYS keys n0 ... of rows k[n] (bf16, D).
template <int D, int BM, int KEYS, int V>
inline void qk_keys_bf16(const unsigned* qt, const bf16* const* k, long long delta, int n0, int r0,
                         float* st) {
  f32x16 acc[KEYS][V];
  const bf16* kr[KEYS];
  for (int j = 0; j < KEYS; ++j) {
    kr[j] = k[n0 + j] + delta;
    for (int v = 0; v < V; ++v) acc[j][v] = 0.0f;
  }
  for (int d = 0; d < D / 2; ++d) {
    u32x16 q[V];
    for (int v = 0; v < V; ++v) q[v] = load_u32(qt + d * BM + r0 + v * 16);
    for (int j = 0; j < KEYS; ++j) {
      unsigned pair;
      __builtin_memcpy(&pair, kr[j] + 2 * d, 4);
      const u32x16 kb = pair;
      for (int v = 0; v < V; ++v) acc[j][v] = dot2(acc[j][v], q[v], kb);
    }
  }
  for (int j = 0; j < KEYS; ++j)
    for (int v = 0; v < V; ++v) store(st + (n0 + j) * BM + r0 + v * 16, acc[j][v]);
}

// S^T[n][BM] for the keys n in [n_begin, n_end) of rows k[n] + delta; row group g (16 rows) only
// needs keys [ga[g], ge[g]): panels that need none are skipped.
template <int D, int BM>
inline void qk_bf16(const unsigned* qt, const bf16* const* k, long long delta, float* st,
                    int n_begin, int n_end, const int* ga, const int* ge) {
  auto panel = [&]<int KEYS>(int n0) {
    int r0 = 0;
    for (; r0 + 32 <= BM; r0 += 32) {
      const int g = r0 / 16;
      const int a = ga[g] < ga[g + 1] ? ga[g] : ga[g + 1],
                e = ge[g] > ge[g + 1] ? ge[g] : ge[g + 1];
      if (n0 + KEYS > a && n0 < e) qk_keys_bf16<D, BM, KEYS, 2>(qt, k, delta, n0, r0, st);
    }
    if (r0 < BM && n0 + KEYS > ga[r0 / 16] && n0 < ge[r0 / 16])
      qk_keys_bf16<D, BM, KEYS, 1>(qt, k, delta, n0, r0, st);
  };
  int n0 = n_begin;
  for (; n0 + 8 <= n_end; n0 += 8) panel.template operator()<8>(n0);
  for (; n0 < n_end; ++n0) panel.template operator()<1>(n0);
}

// vp[i][c] = (v[2 i][c], v[2 i + 1][c]) for the key pairs of keys [n_begin, n_end) (n_begin
// even) and columns c < DVp (zero past DV and for a key at n_end).
template <int DV, int DVp>
inline void pack_v_pairs(const bf16* const* v, long long delta, int n_begin, int n_end,
                         unsigned* vp) {
  for (int n = n_begin; n < n_end; n += 2) {
    const bf16* a = v[n] + delta;
    const bf16* b = n + 1 < n_end ? v[n + 1] + delta : nullptr;
    for (int c = 0; c < DVp; c += 16) {
      u16x16 x = 0, y = 0;
      const int width = DV - c < 16 ? DV - c : 16;
      __builtin_memcpy(&x, a + c, width * 2);
      if (b) __builtin_memcpy(&y, b + c, width * 2);
      const u16x32 z =
          __builtin_shufflevector(x, y, 0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23, 8,
                                  24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31);
      store_u32(vp + (n / 2) * DVp + c, __builtin_bit_cast(u32x16, z));
    }
  }
}

// P^T (fp32, st[n][BM]) to bf16 pairs in place: st as unsigned [i][BM] = (p[2 i], p[2 i + 1]) for
// the pairs [ga[g] / 2, (ge[g] + 1) / 2) of each row group, keys outside [ga[g], ge[g]) zero.
// Pair i overwrites key row i, which pair i / 2 <= i has already read.
template <int BM>
inline void pack_p_pairs(float* st, const int* ga, const int* ge) {
  unsigned* pp = (unsigned*)st;
  for (int g = 0; g < BM / 16; ++g) {
    const int a = ga[g], e = ge[g];
    for (int i = a / 2; i < (e + 1) / 2; ++i) {
      const int n = 2 * i;
      const f32x16 lo = n >= a ? load(st + n * BM + g * 16) : (f32x16)0.0f;
      const f32x16 hi = n + 1 < e ? load(st + (n + 1) * BM + g * 16) : (f32x16)0.0f;
      store_u32(pp + i * BM + g * 16, pair_bf16(lo, hi));
    }
  }
}

// o[r][c0 : c0 + 16 C] = o * alpha[r] + sum over key pairs i in [i0, i1) for 4 rows r0 ...
template <int DVp, int BM, int C>
inline void pv_rows_bf16(const unsigned* pp, const unsigned* vp, int r0, int c0, float* o,
                         const float* alpha, int i0, int i1) {
  f32x16 acc[4][C];
  for (int r = 0; r < 4; ++r)
    for (int c = 0; c < C; ++c) acc[r][c] = load(o + (r0 + r) * DVp + c0 + c * 16) * alpha[r0 + r];
  for (int i = i0; i < i1; ++i) {
    u32x16 v[C];
    for (int c = 0; c < C; ++c) v[c] = load_u32(vp + i * DVp + c0 + c * 16);
    for (int r = 0; r < 4; ++r) {
      const u32x16 p = pp[i * BM + r0 + r];
      for (int c = 0; c < C; ++c) acc[r][c] = dot2(acc[r][c], v[c], p);
    }
  }
  for (int r = 0; r < 4; ++r)
    for (int c = 0; c < C; ++c) store(o + (r0 + r) * DVp + c0 + c * 16, acc[r][c]);
}

// O[r] = O[r] * alpha[r] + P V for the first `rows` rows (a multiple of 4).
template <int DVp, int BM>
inline void pv_bf16(const float* st, const unsigned* vp, float* o, const float* alpha, int rows,
                    const int* ga, const int* ge) {
  constexpr int kVecs = DVp / 16;
  constexpr int kTail = kVecs % 4;
  const unsigned* pp = (const unsigned*)st;
  for (int r = 0; r < rows; r += 4) {
    const int i0 = ga[r / 16] / 2, i1 = (ge[r / 16] + 1) / 2;
    int c = 0;
    for (; c + 4 <= kVecs; c += 4) pv_rows_bf16<DVp, BM, 4>(pp, vp, r, c * 16, o, alpha, i0, i1);
    if constexpr (kTail > 0) pv_rows_bf16<DVp, BM, kTail>(pp, vp, r, c * 16, o, alpha, i0, i1);
  }
}

// Decode tiles with at most 4 real rows (one query of a GQA group of <= 4 heads). With rows along
// the lanes 12 of 16 would be padding; instead each K row is the vector (16 pairs of its head
// dims), 2 keys x 2 head groups x 4 rows of dot products accumulate side by side, and a
// transpose-and-add tree sums each one's 16 lanes. Per key and head group: D / 32 K loads, D / 16
// Q loads and D / 8 vdpbf16ps plus 11 shuffles and adds, against D / 2 vdpbf16ps with rows along
// the lanes.

// q4[r][j] = (q[r][2 j], q[r][2 j + 1]) for r < 4 (zero rows from nrows), j < round_up(D / 2, 16).
template <int D>
inline void pack_q_rows4(const bf16* const* rows, int nrows, unsigned* q4) {
  constexpr int J = D / 2, Jp = round_up(J, 16);
  for (int r = 0; r < 4; ++r)
    for (int j0 = 0; j0 < Jp; j0 += 16) {
      u32x16 x = 0u;
      if (r < nrows && j0 < J)
        x = J - j0 >= 16 ? load_u32(rows[r] + 2 * j0) : load_u32_partial(rows[r] + 2 * j0, J - j0);
      store_u32(q4 + r * Jp + j0, x);
    }
}

// Scores of keys n, n + 1 for head groups h0, h0 + 1 x 4 rows: 16 dot products, each Q chunk
// loaded once for both keys. Stored at st[h] + 4 n, 8 floats (the gathered layout of
// softmax_block_rows4: st + 4 n4 + 4 k + r = key n4 + k, row r): lane 8 h + 4 j + r of the tree
// holds head group h0 + h, key n + j, row r. k0, k1: the two keys' rows of head group h0; delta:
// head group h0 + 1's offset from them; q4[h]: its Q (pack_q_rows4); nh < 2: only h0 is stored.
// NOTE: measured (Zen 4, b1 GQA 32/8 d128, 1 thread) against 4 head groups x 1 key, which loads
// every Q chunk once per key: decode 8 % faster with K and V in L3 (s_k 2k), 3 % faster at s_k 8k,
// equal within the spread at s_k 32k from DRAM (2 threads). Q held in registers over a window of
// keys, head group by head group, was faster in L3 (12 %) but slower from DRAM: memory no longer
// saw a token's rows in order.
template <int D>
inline void qk_keys2_heads2_bf16(const unsigned* const* q4, const bf16* k0, const bf16* k1,
                                 long long delta, float* const* st, int nh, int n) {
  constexpr int J = D / 2, Jp = round_up(J, 16);
  f32x16 acc[16];
  for (int i = 0; i < 16; ++i) acc[i] = 0.0f;
  for (int j0 = 0; j0 < Jp; j0 += 16) {
    for (int h = 0; h < 2; ++h) {
      u32x16 q[4];
      for (int r = 0; r < 4; ++r) q[r] = load_u32(q4[h] + r * Jp + j0);
      for (int j = 0; j < 2; ++j) {
        const bf16* row = (j == 0 ? k0 : k1) + (h == 1 ? delta : 0) + 2 * j0;
        const u32x16 kv = J - j0 >= 16 ? load_u32(row) : load_u32_partial(row, J - j0);
        for (int r = 0; r < 4; ++r)
          acc[kBitrev4[8 * h + 4 * j + r]] = dot2(acc[kBitrev4[8 * h + 4 * j + r]], kv, q[r]);
      }
    }
  }
  float out[16];
  store(out, reduce16(acc));
  for (int h = 0; h < 2 && h < nh; ++h) __builtin_memcpy(st[h] + 4LL * n, out + 8 * h, 32);
}

// P of softmax_block_rows4 (gathered, keys [a4, e4) valid, multiples of 4) to bf16 pairs
// pp[i][4] = (p[2 i][r], p[2 i + 1][r]) for the pairs [a / 8 * 4, round_up(e, 8) / 2), zero for
// keys outside [a4, e4).
inline void pack_p_pairs_rows4(const float* st, int a4, int e4, unsigned* pp) {
  for (int n = a4 & ~7; n < e4; n += 8) {
    const f32x16 c0 = n >= a4 ? load(st + 4 * n) : (f32x16)0.0f;
    const f32x16 c1 = n + 4 < e4 ? load(st + 4 * n + 16) : (f32x16)0.0f;
    // lo: keys n, n + 2, n + 4, n + 6; hi: n + 1, n + 3, n + 5, n + 7 (4 rows each).
    const f32x16 lo =
        __builtin_shufflevector(c0, c1, 0, 1, 2, 3, 8, 9, 10, 11, 16, 17, 18, 19, 24, 25, 26, 27);
    const f32x16 hi =
        __builtin_shufflevector(c0, c1, 4, 5, 6, 7, 12, 13, 14, 15, 20, 21, 22, 23, 28, 29, 30, 31);
    store_u32(pp + 2 * n, pair_bf16(lo, hi));
  }
}

// O[r] = O[r] * alpha[r] + P V for rows 0 .. 3, key pairs [i0, i1) of pp (pack_p_pairs_rows4).
template <int DVp>
inline void pv_rows4_bf16(const unsigned* pp, const unsigned* vp, float* o, const float* alpha,
                          int i0, int i1) {
  constexpr int kVecs = DVp / 16;
  constexpr int kTail = kVecs % 4;
  int c = 0;
  for (; c + 4 <= kVecs; c += 4) pv_rows_bf16<DVp, 4, 4>(pp, vp, 0, c * 16, o, alpha, i0, i1);
  if constexpr (kTail > 0) pv_rows_bf16<DVp, 4, kTail>(pp, vp, 0, c * 16, o, alpha, i0, i1);
}

}  // namespace flashjit_cpu

#else
#define FLASHJIT_HAVE_BF16_DOT 0
#endif
