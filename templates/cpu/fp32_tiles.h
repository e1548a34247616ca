// The fp32 (AVX-512 FMA, or portable vector) matmuls of the CPU kernel: K packed transposed,
// S = Q K^T with 8 x 32 register blocks, O += P V with 4 x 64 register blocks.
#pragma once

#include "flashjit/cpu/simd.h"

namespace flashjit_cpu {

constexpr int round_up(int x, int m) { return (x + m - 1) / m * m; }

// kt[d][BN] = K[n][d] for keys n < nb; zero for keys in [nb, round_up(nb, 32)).
template <int D, int BN, typename T>
inline void pack_k_transposed(const T* const* rows, int nb, float* kt) {
  const int n_end = round_up(nb, 32);
  for (int n0 = 0; n0 < n_end; n0 += 16) {
    for (int d0 = 0; d0 < D; d0 += 16) {
      u32x16 r[16];
      const int width = D - d0 < 16 ? D - d0 : 16;
      for (int j = 0; j < 16; ++j) {
        f32x16 v = 0.0f;
        if (n0 + j < nb)
          v = width == 16 ? load_f32(rows[n0 + j] + d0)
                          : load_f32_partial(rows[n0 + j] + d0, width);
        r[j] = __builtin_bit_cast(u32x16, v);
      }
      transpose16(r);
      for (int t = 0; t < width; ++t) store_u32(kt + (d0 + t) * BN + n0, r[t]);
    }
  }
}

// s[r][0:32*panels] = q[r] . kt for R rows; q rows are D floats apart.
template <int D, int BN, int R>
inline void qk_rows(const float* q, const float* kt, float* s, int panels) {
  for (int p = 0; p < panels; ++p) {
    f32x16 acc[R][2];
    for (int r = 0; r < R; ++r) acc[r][0] = acc[r][1] = 0.0f;
    const float* k = kt + p * 32;
    for (int d = 0; d < D; ++d) {
      const f32x16 k0 = load(k + d * BN), k1 = load(k + d * BN + 16);
      for (int r = 0; r < R; ++r) {
        const f32x16 qv = q[r * D + d];
        acc[r][0] += qv * k0;
        acc[r][1] += qv * k1;
      }
    }
    for (int r = 0; r < R; ++r) {
      store(s + r * BN + p * 32, acc[r][0]);
      store(s + r * BN + p * 32 + 16, acc[r][1]);
    }
  }
}

template <int D, int BN, int BM>
inline void qk_fp32(const float* q, const float* kt, float* s, int nb) {
  const int panels = (nb + 31) / 32;
  int r = 0;
  for (; r + 8 <= BM; r += 8) qk_rows<D, BN, 8>(q + r * D, kt, s + r * BN, panels);
  for (; r < BM; r += 4) qk_rows<D, BN, 4>(q + r * D, kt, s + r * BN, panels);
}

// o[r][c0 : c0 + 16C] = o * alpha[r] + sum_n p[r][n] v[n][c0 : ...] for 4 rows.
template <int DVp, int BN, int C>
inline void pv_rows(const float* p, const float* const* v, int c0, float* o, const float* alpha,
                    int nb) {
  f32x16 acc[4][C];
  for (int r = 0; r < 4; ++r)
    for (int c = 0; c < C; ++c) acc[r][c] = load(o + r * DVp + c0 + c * 16) * alpha[r];
  for (int n = 0; n < nb; ++n) {
    f32x16 vv[C];
    for (int c = 0; c < C; ++c) vv[c] = load(v[n] + c0 + c * 16);
    for (int r = 0; r < 4; ++r) {
      const f32x16 pr = p[r * BN + n];
      for (int c = 0; c < C; ++c) acc[r][c] += pr * vv[c];
    }
  }
  for (int r = 0; r < 4; ++r)
    for (int c = 0; c < C; ++c) store(o + r * DVp + c0 + c * 16, acc[r][c]);
}

// O += P V over BM rows (rows in groups of 4); v[n] points at DVp floats of key n.
template <int DVp, int BN, int BM>
inline void pv_fp32(const float* p, const float* const* v, float* o, const float* alpha, int nb) {
  constexpr int kVecs = DVp / 16;
  constexpr int kTail = kVecs % 4;
  for (int r = 0; r < BM; r += 4) {
    int c = 0;
    for (; c + 4 <= kVecs; c += 4)
      pv_rows<DVp, BN, 4>(p + r * BN, v, c * 16, o + r * DVp, alpha + r, nb);
    if constexpr (kTail > 0)
      pv_rows<DVp, BN, kTail>(p + r * BN, v, c * 16, o + r * DVp, alpha + r, nb);
  }
}

// vs[n][DVp] = V[n] as floats (zero past DV) for n < nb.
template <int DV, int DVp, typename T>
inline void pack_v_fp32(const T* const* rows, int nb, float* vs) {
  for (int n = 0; n < nb; ++n) {
    int c = 0;
    for (; c + 16 <= DV; c += 16) store(vs + n * DVp + c, load_f32(rows[n] + c));
    if (c < DVp) store(vs + n * DVp + c, load_f32_partial(rows[n] + c, DV - c));
  }
}

}  // namespace flashjit_cpu
