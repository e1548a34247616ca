// The bf16 AMX matmuls of the CPU kernel. S = Q K^T takes K packed as 32-bit pairs transposed
// (VNNI: kv[d/2][n][2]); O += P V takes V with key pairs interleaved (vv[n/2][c][2]).
// Tiles: C accumulators 0-3, A operand 4-5, B operand 6-7; all 16 rows x 64 bytes.
#pragma once

#include "flashjit/cpu/amx_tiles.h"
#include "flashjit/cpu/fp32_tiles.h"
#include "flashjit/cpu/simd.h"

namespace flashjit_cpu {

#if FLASHJIT_HAVE_AMX

// kv[(p * BN + n) * 2 + t] = K[n][2p + t]; zero for keys in [nb, round_up(nb, 32)) and for
// d in [D, Dp).
template <int D, int Dp, int BN>
inline void pack_k_vnni(const bf16* const* rows, int nb, bf16* kv) {
  const int n_end = round_up(nb, 32);
  for (int n0 = 0; n0 < n_end; n0 += 16) {
    for (int d0 = 0; d0 < Dp; d0 += 32) {
      u32x16 r[16];
      for (int j = 0; j < 16; ++j) {
        if (n0 + j >= nb) {
          r[j] = 0u;
        } else if (d0 + 32 <= D) {
          r[j] = load_u32(rows[n0 + j] + d0);
        } else {
          unsigned short tmp[32] = {};
          for (int e = 0; d0 + e < D; ++e) tmp[e] = rows[n0 + j][d0 + e].bits;
          r[j] = load_u32(tmp);
        }
      }
      transpose16(r);
      for (int t = 0; t < 16; ++t) store_u32(kv + ((d0 / 2 + t) * BN + n0) * 2, r[t]);
    }
  }
}

// vv[(n / 2) * DVp * 2 + c * 2 + (n & 1)] = V[n][c]; zero rows in [nb, round_up(nb, 32)), zero
// columns in [DV, DVp).
template <int DV, int DVp>
inline void pack_v_vnni(const bf16* const* rows, int nb, bf16* vv) {
  const int n_end = round_up(nb, 32);
  for (int n = 0; n < n_end; n += 2) {
    for (int c = 0; c < DVp; c += 16) {
      u16x16 a = 0, b = 0;
      const int width = DV - c < 16 ? DV - c : 16;
      if (width == 16) {
        if (n < nb) __builtin_memcpy(&a, rows[n] + c, 32);
        if (n + 1 < nb) __builtin_memcpy(&b, rows[n + 1] + c, 32);
      } else {
        for (int e = 0; e < width; ++e) {
          if (n < nb) a[e] = rows[n][c + e].bits;
          if (n + 1 < nb) b[e] = rows[n + 1][c + e].bits;
        }
      }
      u16x32 ab =
          __builtin_shufflevector(a, b, 0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23, 8,
                                  24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31);
      __builtin_memcpy(vv + (n / 2) * DVp * 2 + c * 2, &ab, 64);
    }
  }
}

// S[BM][BN] (fp32) = Q[BM][Dp] (bf16) . K^T for key columns [0, 32 * panels).
template <int Dp, int BN, int BM>
inline void qk_amx(const bf16* q, const bf16* kv, float* s, int nb) {
  const int panels = (nb + 31) / 32;
  constexpr long long kQStride = Dp * 2, kKStride = BN * 4, kSStride = BN * 4;
  for (int m = 0; m < BM; m += 32) {
    const bool two = m + 32 <= BM;
    for (int p = 0; p < panels; ++p) {
      const int n = p * 32;
      FJ_TILE_ZERO(0);
      FJ_TILE_ZERO(1);
      FJ_TILE_ZERO(2);
      FJ_TILE_ZERO(3);
      for (int kc = 0; kc < Dp / 32; ++kc) {
        const bf16* b = kv + (kc * 16 * BN + n) * 2;
        FJ_TILE_LOAD(4, q + m * Dp + kc * 32, kQStride);
        FJ_TILE_LOAD(6, b, kKStride);
        FJ_TILE_LOAD(7, b + 32, kKStride);
        FJ_TILE_DP(0, 4, 6);
        FJ_TILE_DP(1, 4, 7);
        if (two) {
          FJ_TILE_LOAD(5, q + (m + 16) * Dp + kc * 32, kQStride);
          FJ_TILE_DP(2, 5, 6);
          FJ_TILE_DP(3, 5, 7);
        }
      }
      FJ_TILE_STORE(0, s + m * BN + n, kSStride);
      FJ_TILE_STORE(1, s + m * BN + n + 16, kSStride);
      if (two) {
        FJ_TILE_STORE(2, s + (m + 16) * BN + n, kSStride);
        FJ_TILE_STORE(3, s + (m + 16) * BN + n + 16, kSStride);
      }
    }
  }
}

// O[16 rows][cols c0 .. c0 + 16N] += P[16][BN] . V for one row tile and N <= 4 column tiles.
template <int DVp, int BN, int N>
inline void pv_amx_tiles(const bf16* p, const bf16* vv, float* o, int c0, int nb) {
  constexpr long long kOStride = DVp * 4, kPStride = BN * 2, kVStride = DVp * 4;
  if constexpr (N > 0) FJ_TILE_LOAD(0, o + c0, kOStride);
  if constexpr (N > 1) FJ_TILE_LOAD(1, o + c0 + 16, kOStride);
  if constexpr (N > 2) FJ_TILE_LOAD(2, o + c0 + 32, kOStride);
  if constexpr (N > 3) FJ_TILE_LOAD(3, o + c0 + 48, kOStride);
  for (int kk = 0; kk * 32 < nb; ++kk) {
    FJ_TILE_LOAD(4, p + kk * 32, kPStride);
    const bf16* b = vv + (kk * 16 * DVp + c0) * 2;
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

// O[BM][DVp] += P[BM][BN] . V (O already rescaled by the softmax).
template <int DVp, int BN, int BM>
inline void pv_amx(const bf16* p, const bf16* vv, float* o, int nb) {
  constexpr int kTiles = DVp / 16;
  for (int m = 0; m < BM; m += 16) {
    int t = 0;
    for (; t + 4 <= kTiles; t += 4)
      pv_amx_tiles<DVp, BN, 4>(p + m * BN, vv, o + m * DVp, t * 16, nb);
    if constexpr (kTiles % 4 > 0)
      pv_amx_tiles<DVp, BN, kTiles % 4>(p + m * BN, vv, o + m * DVp, t * 16, nb);
  }
}

#endif  // FLASHJIT_HAVE_AMX

}  // namespace flashjit_cpu
