// The bf16 AMX matmuls of the CPU kernel. S^T = K Q^T takes K rows as they are and Q^T as 32-bit
// pairs (VNNI: qv[d/2][r][2], packed once per work item); O += P V takes P transposed back to rows
// and V with key pairs interleaved (vv[n/2][c][2]).
// Tiles: C accumulators 0-3, A operand 4-5, B operand 6-7; all 16 rows x 64 bytes.
#pragma once

#include "flashjit/cpu/amx_tiles.h"
#include "flashjit/cpu/fp32_tiles.h"
#include "flashjit/cpu/simd.h"

namespace flashjit_cpu {

#if FLASHJIT_HAVE_AMX

// qv[(p * BM + r) * 2 + t] = Q[r][2p + t] (Q^T as 32-bit pairs, the B operand of S^T = K Q^T);
// zero for rows >= nrows and for d in [D, Dp).
template <int D, int Dp, int BM>
inline void pack_q_vnni(const bf16* const* rows, int nrows, bf16* qv) {
  for (int r0 = 0; r0 < BM; r0 += 16) {
    for (int d0 = 0; d0 < Dp; d0 += 32) {
      u32x16 t[16];
      for (int j = 0; j < 16; ++j) {
        if (r0 + j >= nrows) {
          t[j] = 0u;
        } else if (d0 + 32 <= D) {
          t[j] = load_u32(rows[r0 + j] + d0);
        } else {
          unsigned short tmp[32] = {};
          for (int e = 0; d0 + e < D; ++e) tmp[e] = rows[r0 + j][d0 + e].bits;
          t[j] = load_u32(tmp);
        }
      }
      transpose16(t);
      for (int e = 0; e < 16; ++e) store_u32(qv + ((d0 / 2 + e) * BM + r0) * 2, t[e]);
    }
  }
}

// Where the A operand (16 keys x 32 d) of each 16-key tile of S^T = K Q^T is read from.
struct KTile {
  const bf16* base;      // row 0 of the tile, d offset 0
  long long row_stride;  // elements between the tile's rows
};

// Plans the K tiles of a block for keys < round_up(nb, 32). A tile of 16 equally spaced rows
// inside the block is read in place (contiguous and paged caches alike) when no row needs
// padding (D % 32 == 0); any other tile is copied into kb [n][Dp] with zero padding. Rows past nb
// are zero, so nothing past the cache is ever read.
template <int D, int Dp>
inline void plan_k_tiles(const bf16* const* rows, long long delta, int nb, bf16* kb, KTile* tiles) {
  const int n_end = round_up(nb, 32);
  for (int n0 = 0; n0 < n_end; n0 += 16) {
    bool direct = D == Dp && n0 + 16 <= nb;
    const long long stride = direct ? rows[n0 + 1] - rows[n0] : 0;
    for (int j = 2; direct && j < 16; ++j) direct = rows[n0 + j] - rows[n0] == j * stride;
    if (direct && stride > 0) {
      tiles[n0 / 16] = KTile{rows[n0] + delta, stride};
      continue;
    }
    for (int n = n0; n < n0 + 16; ++n) {
      if (n < nb) {
        __builtin_memcpy(kb + n * Dp, rows[n] + delta, D * 2);
        if constexpr (Dp > D) __builtin_memset(kb + n * Dp + D, 0, (Dp - D) * 2);
      } else {
        __builtin_memset(kb + n * Dp, 0, Dp * 2);
      }
    }
    tiles[n0 / 16] = KTile{kb + n0 * Dp, Dp};
  }
}

// P[r][n] (bf16) = P^T[n][r] for the 16 x 16 blocks covering keys < round_up(nb, 32); P^T rows
// at or past nb are treated as zero.
template <int BM, int BN>
inline void transpose_p_bf16(const float* pt, int nb, bf16* p) {
  const int n_end = round_up(nb, 32);
  for (int n0 = 0; n0 < n_end; n0 += 16) {
    for (int r0 = 0; r0 < BM; r0 += 16) {
      u32x16 t[16];
      for (int j = 0; j < 16; ++j)
        t[j] = n0 + j < nb ? load_u32(pt + (n0 + j) * BM + r0) : (u32x16)0u;
      transpose16(t);
      for (int e = 0; e < 16; ++e) {
        const u16x16 h = to_bf16_bits(__builtin_bit_cast(f32x16, t[e]));
        __builtin_memcpy(p + (r0 + e) * BN + n0, &h, 32);
      }
    }
  }
}

// vv[((n - n0) / 2) * DVp * 2 + c * 2 + (n & 1)] = V[n][c] (rows[n] + delta) for keys
// [n0, n1) (n0 even); zero for keys at or past nb and for columns in [DV, DVp). Full 32-column
// chunks interleave two rows with the in-lane unpacks (one uop each, where a full word permute
// costs three), which leaves their columns in the order of amx_column(); the DV tail goes element
// by element in natural order.
// Within a full 32-column chunk of O, column j holds V column amx_column(j).
constexpr int amx_column(int j) { return (j & 16 ? 4 : 0) + ((j & 15) >> 2) * 8 + (j & 3); }

// One O row chunk of 32 floats (o0: columns 0-15, o1: 16-31 of the chunk) back in V's order.
inline void amx_unpermute(f32x16 o0, f32x16 o1, f32x16& first, f32x16& second) {
  first = __builtin_shufflevector(o0, o1, 0, 1, 2, 3, 16, 17, 18, 19, 4, 5, 6, 7, 20, 21, 22, 23);
  second =
      __builtin_shufflevector(o0, o1, 8, 9, 10, 11, 24, 25, 26, 27, 12, 13, 14, 15, 28, 29, 30, 31);
}

template <int DV, int DVp>
inline void pack_v_vnni(const bf16* const* rows, long long delta, int n0, int n1, int nb,
                        bf16* vv) {
  for (int n = n0; n < n1; n += 2) {
    const bf16* ra = n < nb ? rows[n] + delta : nullptr;
    const bf16* rb = n + 1 < nb ? rows[n + 1] + delta : nullptr;
    bf16* out = vv + ((n - n0) / 2) * DVp * 2;
    int c = 0;
    for (; c + 32 <= DV; c += 32) {
      u16x32 a = 0, b = 0;
      if (ra) __builtin_memcpy(&a, ra + c, 64);
      if (rb) __builtin_memcpy(&b, rb + c, 64);
      const u16x32 lo =
          __builtin_shufflevector(a, b, 0, 32, 1, 33, 2, 34, 3, 35, 8, 40, 9, 41, 10, 42, 11, 43,
                                  16, 48, 17, 49, 18, 50, 19, 51, 24, 56, 25, 57, 26, 58, 27, 59);
      const u16x32 hi =
          __builtin_shufflevector(a, b, 4, 36, 5, 37, 6, 38, 7, 39, 12, 44, 13, 45, 14, 46, 15, 47,
                                  20, 52, 21, 53, 22, 54, 23, 55, 28, 60, 29, 61, 30, 62, 31, 63);
      __builtin_memcpy(out + c * 2, &lo, 64);
      __builtin_memcpy(out + c * 2 + 32, &hi, 64);
    }
    for (; c < DVp; ++c) {
      out[c * 2] = c < DV && ra ? ra[c] : bf16{0};
      out[c * 2 + 1] = c < DV && rb ? rb[c] : bf16{0};
    }
  }
}

// S^T[n][BM] (fp32) = K[n] . Q^T for keys [n0, n1) (multiples of 32; K tiles as planned by
// plan_k_tiles) for keys n < round_up(nb,
// 32): 32 keys x 32 rows per step. Row group g (16 rows) only needs keys [ga[g], ge[g]); tiles that
// need none are skipped.
template <int Dp, int BM>
inline void qk_amx(const KTile* kt, const bf16* qv, float* st, int n0, int n1, const int* ga,
                   const int* ge) {
  constexpr long long kQStride = BM * 4, kSStride = BM * 4;
  for (int n = n0; n < n1; n += 32) {
    for (int r = 0; r < BM; r += 32) {
      const bool two = r + 32 <= BM;
      const int g = r / 16;
      const int a = two && ga[g + 1] < ga[g] ? ga[g + 1] : ga[g];
      const int e = two && ge[g + 1] > ge[g] ? ge[g + 1] : ge[g];
      if (n + 32 <= a || n >= e) continue;
      FJ_TILE_ZERO(0);
      FJ_TILE_ZERO(1);
      FJ_TILE_ZERO(2);
      FJ_TILE_ZERO(3);
      for (int kc = 0; kc < Dp / 32; ++kc) {
        const bf16* b = qv + (kc * 16 * BM + r) * 2;
        const KTile& k0 = kt[n / 16];
        const KTile& k1 = kt[n / 16 + 1];
        FJ_TILE_LOAD(4, k0.base + kc * 32, k0.row_stride * 2);
        FJ_TILE_LOAD(5, k1.base + kc * 32, k1.row_stride * 2);
        FJ_TILE_LOAD(6, b, kQStride);
        FJ_TILE_DP(0, 4, 6);
        FJ_TILE_DP(1, 5, 6);
        if (two) {
          FJ_TILE_LOAD(7, b + 32, kQStride);
          FJ_TILE_DP(2, 4, 7);
          FJ_TILE_DP(3, 5, 7);
        }
      }
      FJ_TILE_STORE(0, st + n * BM + r, kSStride);
      FJ_TILE_STORE(1, st + (n + 16) * BM + r, kSStride);
      if (two) {
        FJ_TILE_STORE(2, st + n * BM + r + 16, kSStride);
        FJ_TILE_STORE(3, st + (n + 16) * BM + r + 16, kSStride);
      }
    }
  }
}

// O[16 rows][cols c0 .. c0 + 16N] += P[16][BN] . V for one row tile and N <= 4 column tiles.
template <int DVp, int BN, int N>
inline void pv_amx_tiles(const bf16* p, const bf16* vv, int vv_key0, float* o, int c0, int a,
                         int e) {
  constexpr long long kOStride = DVp * 4, kPStride = BN * 2, kVStride = DVp * 4;
  if constexpr (N > 0) FJ_TILE_LOAD(0, o + c0, kOStride);
  if constexpr (N > 1) FJ_TILE_LOAD(1, o + c0 + 16, kOStride);
  if constexpr (N > 2) FJ_TILE_LOAD(2, o + c0 + 32, kOStride);
  if constexpr (N > 3) FJ_TILE_LOAD(3, o + c0 + 48, kOStride);
  for (int kk = a / 32; kk * 32 < e; ++kk) {
    FJ_TILE_LOAD(4, p + kk * 32, kPStride);
    const bf16* b = vv + ((kk * 32 - vv_key0) / 2 * DVp + c0) * 2;
    if constexpr (N > 0) {
      FJ_TILE_LOAD(5, b, kVStride);
      FJ_TILE_DP(0, 4, 5);
    }
    if constexpr (N > 1) {
      FJ_TILE_LOAD(6, b + 32, kVStride);
      FJ_TILE_DP(1, 4, 6);
    }
    if constexpr (N > 2) {
      FJ_TILE_LOAD(7, b + 64, kVStride);
      FJ_TILE_DP(2, 4, 7);
    }
    if constexpr (N > 3) {
      FJ_TILE_LOAD(5, b + 96, kVStride);
      FJ_TILE_DP(3, 4, 5);
    }
  }
  if constexpr (N > 0) FJ_TILE_STORE(0, o + c0, kOStride);
  if constexpr (N > 1) FJ_TILE_STORE(1, o + c0 + 16, kOStride);
  if constexpr (N > 2) FJ_TILE_STORE(2, o + c0 + 32, kOStride);
  if constexpr (N > 3) FJ_TILE_STORE(3, o + c0 + 48, kOStride);
}

// O[BM][DVp] += P[BM][BN] . V over keys [n0, n1) (n0 a multiple of 32), with V interleaved from
// key n0 on (pack_v_vnni); O is already rescaled by the softmax, and P is zero outside the keys
// [ga[g], ge[g]) of row group g.
template <int DVp, int BN, int BM>
inline void pv_amx(const bf16* p, const bf16* vv, int n0, int n1, float* o, const int* ga,
                   const int* ge) {
  constexpr int kTiles = DVp / 16;
  for (int m = 0; m < BM; m += 16) {
    const int a = ga[m / 16] > n0 ? ga[m / 16] : n0, e = ge[m / 16] < n1 ? ge[m / 16] : n1;
    if (a >= e) continue;
    int t = 0;
    for (; t + 4 <= kTiles; t += 4)
      pv_amx_tiles<DVp, BN, 4>(p + m * BN, vv, n0, o + m * DVp, t * 16, a, e);
    if constexpr (kTiles % 4 > 0)
      pv_amx_tiles<DVp, BN, kTiles % 4>(p + m * BN, vv, n0, o + m * DVp, t * 16, a, e);
  }
}

#endif  // FLASHJIT_HAVE_AMX

}  // namespace flashjit_cpu
