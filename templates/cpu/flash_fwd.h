// FlashAttention forward for the CPU. A work item is (sequence, kBlockH head groups, kBlockM query
// rows); online softmax over blocks of kBlockN keys with fp32 accumulation; the matmuls run on AMX
// (bf16 with AMX), on bf16 pair dot products (bf16 with AVX-512 BF16 and no AMX) or on fp32
// vectors (everything else). Instantiated once per kernel key.
#pragma once

#include "flashjit/cpu/amx_matmul.h"
#include "flashjit/cpu/bf16_dot_tiles.h"
#include "flashjit/cpu/fp32_tiles.h"
#include "flashjit/cpu/kv_append.h"
#include "flashjit/cpu/masks.h"
#include "flashjit/cpu/online_softmax.h"
#include "flashjit/cpu/simd.h"
#include "flashjit/cpu/softmax_rows4.h"
#include "flashjit/cpu/split_combine.h"
#include "flashjit/cpu/work_item.h"
#include "flashjit/fwd_params.h"

namespace flashjit_cpu {

template <class Cfg>
struct Shape {
  static constexpr int D = Cfg::kHeadDimQK, DV = Cfg::kHeadDimV;
  static constexpr int BM = Cfg::kBlockM, BN = Cfg::kBlockN, BH = Cfg::kBlockH;
  static constexpr bool kAmx = Cfg::kUseAmx;
  static constexpr bool kDot = Cfg::kUseBf16Dot;
  // Padded K rows (the pair path's Q^T has round_up(D / 2, 16) pairs).
  static constexpr int Dp = kAmx || kDot ? round_up(D, 32) : round_up(D, 16);
  static constexpr int DVp = round_up(DV, 16);
  static_assert(D % 8 == 0 && DV % 8 == 0, "head dims must be multiples of 8");
  static_assert(BM % 16 == 0, "block_m must be a multiple of 16");
  static_assert(BN % 32 == 0, "block_n must be a multiple of 32");
  static_assert(BH >= 1 && BH <= 16, "block_h must be in [1, 16]");
  static_assert(!kAmx || FLASHJIT_HAVE_AMX, "the AMX kernel needs a target with amx-bf16");
  static_assert(!kDot || (FLASHJIT_HAVE_BF16_DOT && !kAmx), "bf16 pairs need avx512bf16");

  // Per-thread scratch, every region 64-byte aligned. First the regions of each head group
  // (x BH), then the shared ones.
  static constexpr long long align(long long x) { return (x + 63) / 64 * 64; }
  static constexpr int kElem = kAmx || kDot ? 2 : 4;  // bytes of a packed Q / K / V element
  struct PerHead {
    static constexpr long long kQ = 0;  // Q^T: fp32 [D][BM] (scaled), bf16 VNNI or pairs
    static constexpr long long kO = kQ + align((long long)BM * Dp * kElem);   // O fp32 [BM][DVp]
    static constexpr long long kState = kO + align((long long)BM * DVp * 4);  // m, l, alpha
    static constexpr long long kS = kState + align((long long)BM * 4 * 3);    // S^T [BN][BM]
    static constexpr long long kP = kS + align((long long)BN * BM * 4);  // AMX: P bf16 [BM][BN]
    static constexpr long long kK = kP + (kAmx ? align((long long)BM * BN * 2) : 0);  // AMX K
    static constexpr long long kKTiles = kK + (kAmx ? align((long long)BN * Dp * 2) : 0);
    static constexpr long long kV = kKTiles + (kAmx ? align((long long)(BN / 16) * 16) : 0);
    // AMX: V VNNI [BN / 2][DVp][2]; pairs: V pairs [BN / 2][DVp] (32-bit).
    static constexpr long long kBytes = kV + (kAmx || kDot ? align((long long)BN * DVp * 2) : 0);
  };
  static constexpr long long kHeads = 0;
  // fp32 path: K [BN][Dp] and V [BN][DVp] fp32.
  static constexpr long long kKf = kHeads + BH * PerHead::kBytes;
  static constexpr long long kVf = kKf + (kAmx || kDot ? 0 : align((long long)BN * Dp * 4));
  static constexpr long long kRows = kVf + (kAmx || kDot ? 0 : align((long long)BN * DVp * 4));
  static constexpr long long kRowPtrs = kRows + align((long long)BM * 4 * 4);  // lo, hi, ga, ge
  // Rotary: the rotated query rows of one head group, in the q dtype, before packing.
  static constexpr long long kQRot =
      kRowPtrs + align((long long)(4 * BN > BM ? 4 * BN : BM) * sizeof(void*));
  // K and V row pointers of a key block and of the next one (BN each); Q row pointers (BM) reuse
  // the space before the key loop.
  static constexpr long long kBytes =
      kQRot + (Cfg::kRotary ? align((long long)BM * D * sizeof(typename Cfg::ElementQ)) : 0);
};

template <class Cfg>
long long scratch_bytes() {
  return Shape<Cfg>::kBytes;
}

// One normalized O row (DVp fp32, AMX chunks permuted) into orow (DV elements of T).
template <class Cfg, typename T>
inline void write_o_row(const float* o, float inv, T* orow) {
  using Sh = Shape<Cfg>;
  constexpr int DV = Sh::DV;
  int c = 0;
  if constexpr (Sh::kAmx) {
#if FLASHJIT_HAVE_AMX
    for (; c + 32 <= DV; c += 32) {  // full chunks hold their columns permuted
      f32x16 first, second;
      amx_unpermute(load(o + c), load(o + c + 16), first, second);
      store_f32(orow + c, first * inv);
      store_f32(orow + c + 16, second * inv);
    }
#endif
  }
  for (; c + 16 <= DV; c += 16) store_f32(orow + c, load(o + c) * inv);
  if (c < DV) store_f32_partial(orow + c, load(o + c) * inv, DV - c);
}

template <class Cfg>
inline void run_work_item(const FwdParams& p, long long w, char* scratch) {
  using Sh = Shape<Cfg>;
  using TQ = typename Cfg::ElementQ;
  using TKV = typename Cfg::ElementKV;
  using TO = typename Cfg::ElementO;
  constexpr int D = Sh::D, DV = Sh::DV, Dp = Sh::Dp, DVp = Sh::DVp, BM = Sh::BM, BN = Sh::BN;

  WorkItem it;
  if (!locate<Cfg>(p, w, it)) return;

  int* lo = (int*)(scratch + Sh::kRows);
  int* hi = lo + BM;
  int* ga = hi + BM;  // per 16-row group and key block: the keys any row of the group sees
  int* ge = ga + BM / 16;
  const TKV** krows = (const TKV**)(scratch + Sh::kRowPtrs);
  const TKV** vrows = krows + BN;
  const TKV** next_krows = vrows + BN;
  const TKV** next_vrows = next_krows + BN;
  const TQ** qrows = (const TQ**)krows;  // Q rows are packed before any key row is gathered
  using H = typename Sh::PerHead;
  auto head = [&](int t, long long region) {
    return scratch + Sh::kHeads + t * H::kBytes + region;
  };
  auto q_of = [&](int t) { return head(t, H::kQ); };
  auto o_of = [&](int t) { return (float*)head(t, H::kO); };
  auto st_of = [&](int t) { return (float*)head(t, H::kS); };
  auto state_of = [&](int t) {
    float* m = (float*)head(t, H::kState);
    return RowState{m, m + BM, m + 2 * BM};
  };

  // Rows: visible key intervals (the same for every head group). Padding rows see nothing.
  int n_lo = it.lk, n_hi = 0, max_lo = 0, min_hi = it.lk;
  for (int r = 0; r < BM; ++r) {
    lo[r] = hi[r] = 0;
    if (r >= it.nrows) continue;
    int i = 0, hq = 0;
    row_coords<Cfg>(p, it, it.hg0, r, i, hq);
    const KeyInterval kin = visible_keys<Cfg>(p, i, it.lq, it.lk);
    lo[r] = kin.lo;
    hi[r] = kin.hi;
    if (kin.lo < kin.hi) {
      n_lo = kin.lo < n_lo ? kin.lo : n_lo;
      n_hi = kin.hi > n_hi ? kin.hi : n_hi;
    }
    max_lo = kin.lo > max_lo ? kin.lo : max_lo;
    min_hi = kin.hi < min_hi ? kin.hi : min_hi;
  }

  if constexpr (Cfg::kSplitKV) {  // this split's share of the key blocks
    if (n_lo < n_hi) {
      int b0, b1;
      flashjit_kernel::split_blocks((n_hi - n_lo + BN - 1) / BN, p.num_splits, it.split, b0, b1);
      n_hi = n_lo + b1 * BN < n_hi ? n_lo + b1 * BN : n_hi;
      n_lo += b0 * BN;
    }
  }

  // At most 4 real rows in a 16-row tile (decode) on the bf16 pair or the fp32 path: the head dim
  // along the lanes, several head groups x 4 rows a key (qk_keys2_heads2_bf16, qk_heads4_f32).
  const bool dot_rows4 = Sh::kDot && BM == 16 && it.nrows <= 4;
  const bool f32_rows4 = !Sh::kAmx && !Sh::kDot && BM == 16 && it.nrows <= 4;
  // Per head group: Q packed, O and the row state cleared, the offset of its K/V head.
  const TQ* q = (const TQ*)p.q;
  const int hk0 = kv_head<Cfg>(p, it.hg0);
  long long kdelta[Sh::BH], vdelta[Sh::BH];
  for (int t = 0; t < it.nheads; ++t) {
    const int hg = it.hg0 + t;
    for (int r = 0; r < it.nrows; ++r) {
      int i = 0, hq = 0;
      row_coords<Cfg>(p, it, hg, r, i, hq);
      qrows[r] = q + it.q_base + (long long)i * p.q_row_stride + (long long)hq * p.q_head_stride;
      if constexpr (Cfg::kRotary) {
        TQ* rotated = (TQ*)(scratch + Sh::kQRot) + r * D;
        rotate_row(p, qrows[r], rotated, D,
                   flashjit_kernel::rotary_query_pos<Cfg>(it.rotary_base, i));
        qrows[r] = rotated;
      }
    }
    if constexpr (Sh::kAmx) {
#if FLASHJIT_HAVE_AMX
      pack_q_vnni<D, Dp, BM>((const bf16* const*)qrows, it.nrows, (bf16*)q_of(t));
#endif
    } else if constexpr (Sh::kDot) {
#if FLASHJIT_HAVE_BF16_DOT
      if (dot_rows4)
        pack_q_rows4<D>((const bf16* const*)qrows, it.nrows, (unsigned*)q_of(t));
      else
        pack_q_pairs<D, BM>((const bf16* const*)qrows, it.nrows, (unsigned*)q_of(t));
#endif
    } else {
      // The fp32 path folds the scale into Q; the AMX path scales S (Q stays exact bf16).
      if (f32_rows4)
        pack_q_rows4_f32<D, Dp>(qrows, it.nrows, p.score_scale, (float*)q_of(t));
      else
        pack_q_transposed<D, BM>(qrows, it.nrows, p.score_scale, (float*)q_of(t));
    }
    float* o = o_of(t);
    for (int c = 0; c < BM * DVp; c += 16) store(o + c, 0.0f);
    const RowState rs = state_of(t);
    for (int r = 0; r < BM; ++r) {
      rs.m[r] = kNegInf;
      rs.l[r] = 0.0f;
    }
    kdelta[t] = (long long)(kv_head<Cfg>(p, hg) - hk0) * p.k_head_stride;
    vdelta[t] = (long long)(kv_head<Cfg>(p, hg) - hk0) * p.v_head_stride;
  }
  const int rows4 = round_up(it.nrows, 4);
  // At most 4 real rows in a 16-row AMX tile (decode): the softmax gathers them (softmax_rows4.h)
  // and P's other 12 rows stay zero.
  const bool few_rows = Sh::kAmx && BM == 16 && it.nrows <= 4;
  if (few_rows)
    for (int t = 0; t < it.nheads; ++t)
      __builtin_memset(head(t, H::kP) + 4 * BN * 2, 0, (BM - 4) * BN * 2);

  for (int n0 = n_lo; n0 < n_hi; n0 += BN) {
    const int nb = n_hi - n0 < BN ? n_hi - n0 : BN;
    if (n0 == n_lo) {
      gather_rows<Cfg>(p, it, hk0, n0, nb, krows, vrows);
    } else {  // gathered by the previous block
      const TKV** k = krows;
      const TKV** v = vrows;
      krows = next_krows, vrows = next_vrows, next_krows = k, next_vrows = v;
    }
    const int nb_next = n_hi - n0 - nb < BN ? n_hi - n0 - nb : BN;
    if (nb_next > 0) gather_rows<Cfg>(p, it, hk0, n0 + nb, nb_next, next_krows, next_vrows);
    // The walks of the pair path and of the fp32 4-row decode read rows as K of this block, V of
    // this block, K of the next block; at row `pos` of that sequence they ask for row
    // pos + kPrefetchRows in L2, spread out: after each head-group quad (or head group) it has
    // read, that part of the row ahead (the pair path's general Q K^T asks for its next 32
    // keys). The hardware prefetchers alone stay too close to a compute-heavy walk: bench decode
    // b1 s_k 32k 17.3 -> 23.5 GB/s, b8 21.5 -> 29.1 on Zen 4; asking for whole rows at once
    // instead of spread: 8 % slower; prefetcht0 (into L1) slower than none (docs/PERF.md).
    auto prefetch_row = [&](int pos, int t_begin = 0, int t_end = Sh::BH)
        __attribute__((noinline)) {
      const bool is_k = pos < nb || pos >= 2 * nb;
      const TKV* row = pos < nb                 ? krows[pos]
                       : pos < 2 * nb           ? vrows[pos - nb]
                       : pos - 2 * nb < nb_next ? next_krows[pos - 2 * nb]
                                                : nullptr;
      if (!row) return;
      const long long* delta = is_k ? kdelta : vdelta;
      for (int t = t_begin; t < it.nheads && t < t_end; ++t)
        if (t == 0 || delta[t] != delta[t - 1])
          prefetch_l2(row + delta[t], (is_k ? D : DV) * (int)sizeof(TKV));
    };
    const bool needs_mask = n0 < max_lo || n0 + nb > min_hi;
    block_ranges<BM>(lo, hi, n0, nb, ga, ge);
    if constexpr (Sh::kAmx) {
#if FLASHJIT_HAVE_AMX
      // S^T of every head group, 32 keys at a time with the head groups inside: the rows of a
      // chunk (all heads of a token are adjacent in a cache) are read in order, which the
      // hardware prefetchers stream. NOTE: software prefetching of the next rows was measured
      // slower (14.1 vs 18.7 GB/s, decode b8 s_k 8k, 2 threads): it competes for fill buffers.
      // NOTE: head groups that share a KV head (GQA without packing) share its planned K tiles.
      int src[Sh::BH];
      for (int t = 0; t < it.nheads; ++t) {
        src[t] = t > 0 && kdelta[t] == kdelta[t - 1] ? src[t - 1] : t;
        if (src[t] == t)
          plan_k_tiles<D, Dp>((const bf16* const*)krows, kdelta[t], nb, (bf16*)head(t, H::kK),
                              (KTile*)head(t, H::kKTiles));
      }
      for (int n = 0; n < nb; n += 32) {
        for (int t = 0; t < it.nheads; ++t)
          qk_amx<Dp, BM>((const KTile*)head(src[t], H::kKTiles), (const bf16*)q_of(t), st_of(t), n,
                         n + 32, ga, ge);
      }
      for (int t = 0; t < it.nheads; ++t) {
        float* o = o_of(t);
        const RowState rs = state_of(t);
        if (few_rows) {
          softmax_block_rows4<Cfg>(p, st_of(t), rs, lo, hi, ga[0], ge[0], n0, needs_mask);
          transpose_p_rows4<BN>(st_of(t), nb, ga[0], ge[0], (bf16*)head(t, H::kP));
        } else {
          softmax_block<Cfg>(p, st_of(t), rs, lo, hi, ga, ge, n0, needs_mask);
          zero_outside_ranges<BM>(st_of(t), nb, ga, ge);  // pv_amx works on whole 32-key chunks
          transpose_p_bf16<BM, BN>(st_of(t), nb, (bf16*)head(t, H::kP));
        }
        for (int r = 0; r < it.nrows; ++r) {
          if (rs.alpha[r] != 1.0f)
            for (int c = 0; c < DVp; c += 16)
              store(o + r * DVp + c, load(o + r * DVp + c) * rs.alpha[r]);
        }
      }
      // V interleaved 32 keys at a time with the head groups inside (rows read in order), then
      // P V per head group over the whole block, so that O tiles are loaded and stored once.
      // NOTE: a tile load right after a store to the same O rows stalls until the store retires.
      const int n_end = round_up(nb, 32);
      for (int c0 = 0; c0 < n_end; c0 += 32)
        for (int t = 0; t < it.nheads; ++t)
          if (src[t] == t)
            pack_v_vnni<DV, DVp>((const bf16* const*)vrows, vdelta[t], c0, c0 + 32, nb,
                                 (bf16*)head(t, H::kV) + c0 * DVp);
      for (int t = 0; t < it.nheads; ++t)
        pv_amx<DVp, BN, BM>((const bf16*)head(t, H::kP), (const bf16*)head(src[t], H::kV), 0, n_end,
                            o_of(t), ga, ge);
#endif
    } else if constexpr (Sh::kDot) {
#if FLASHJIT_HAVE_BF16_DOT
      // K and V are read in cache order, all head groups of a token (adjacent in a cache) before
      // the next token: read head by head, 256 bytes of every 2 KiB, the decode reached 55 % of a
      // streaming read with no arithmetic at all (b1 s_k 32k, docs/PERF.md). K is read in place;
      // V is interleaved by key pairs into each KV head's buffer.
      if (dot_rows4) {
        const int a4 = ga[0] & ~3, e4 = round_up(ge[0], 4);
        // As the fp32 path (a token's head groups together, the same prefetches), but two keys
        // at a time and head groups in pairs, so that each Q chunk load serves two keys.
        for (int key = a4; key < e4 && key < nb; key += 2) {
          const bf16* k0 = (const bf16*)krows[key];
          const bf16* k1 = (const bf16*)krows[key + 1 < nb ? key + 1 : key];
          for (int t0 = 0; t0 < it.nheads; t0 += 2) {
            const int t1 = t0 + 1 < it.nheads ? t0 + 1 : t0;
            const unsigned* q4[2] = {(const unsigned*)q_of(t0), (const unsigned*)q_of(t1)};
            float* st2[2] = {st_of(t0), st_of(t1)};
            qk_keys2_heads2_bf16<D>(q4, k0 + kdelta[t0], k1 + kdelta[t0], kdelta[t1] - kdelta[t0],
                                    st2, it.nheads - t0, key);
            if (t0 % 4 == 0) {
              const int te = t0 + 4 < it.nheads ? t0 + 4 : it.nheads;
              prefetch_row(key + kPrefetchRows, t0, te);
              prefetch_row(key + 1 + kPrefetchRows, t0, te);
            }
          }
        }
        for (int t = 0; t < it.nheads; ++t) {
          softmax_block_rows4<Cfg, true>(p, st_of(t), state_of(t), lo, hi, ga[0], ge[0], n0,
                                         needs_mask);
          // P pairs [BN / 2][4] after the gathered P, which takes the first 4 BN floats.
          pack_p_pairs_rows4(st_of(t), a4, e4, (unsigned*)st_of(t) + 4 * BN);
        }
      } else {
        // 32 keys at a time, head group by head group; the rows of the next 32 keys are asked
        // for in as many portions.
        for (int n = 0; n < nb; n += 32) {
          const int n_end = nb - n < 32 ? nb : n + 32;
          for (int t = 0; t < it.nheads; ++t) {
            qk_bf16<D, BM>((const unsigned*)q_of(t), (const bf16* const*)krows, kdelta[t], st_of(t),
                           n, n_end, ga, ge);
            for (int j = 32 * t / it.nheads; j < 32 * (t + 1) / it.nheads; ++j)
              prefetch_row(n + 32 + j);
          }
        }
        for (int t = 0; t < it.nheads; ++t) {
          softmax_block<Cfg>(p, st_of(t), state_of(t), lo, hi, ga, ge, n0, needs_mask);
          pack_p_pairs<BM>(st_of(t), ga, ge);
        }
      }
      // Head groups that share a KV head (GQA without packing) share its V pairs.
      int src[Sh::BH];
      for (int t = 0; t < it.nheads; ++t)
        src[t] = t > 0 && vdelta[t] == vdelta[t - 1] ? src[t - 1] : t;
      for (int n = 0; n < nb; n += 2) {
        for (int t = 0; t < it.nheads; ++t) {
          if (src[t] == t)
            pack_v_pairs<DV, DVp>((const bf16* const*)vrows, vdelta[t], n, n + 2 < nb ? n + 2 : nb,
                                  (unsigned*)head(t, H::kV));
          prefetch_row(nb + n + kPrefetchRows, t, t + 1);
          prefetch_row(nb + n + 1 + kPrefetchRows, t, t + 1);
        }
      }
      for (int t = 0; t < it.nheads; ++t) {
        const unsigned* vp = (const unsigned*)head(src[t], H::kV);
        if (dot_rows4)
          pv_rows4_bf16<DVp>((const unsigned*)st_of(t) + 4 * BN, vp, o_of(t), state_of(t).alpha,
                             ga[0] / 2, (ge[0] + 1) / 2);
        else
          pv_bf16<DVp, BM>(st_of(t), vp, o_of(t), state_of(t).alpha, rows4, ga, ge);
      }
#endif
    } else {
      float* kf = (float*)(scratch + Sh::kKf);
      float* vs = (float*)(scratch + Sh::kVf);
      if (f32_rows4) {
        // K read in place: keys [ga[0] & ~3, round_up(ge[0], 4)) of the block (the gathered S of
        // softmax_block_rows4), a token's head groups together, 4 at a time (the last quad
        // repeats head group t0, which qk_heads4_f32 does not store). P V on the gathered P (row
        // stride 4).
        for (int key = ga[0] & ~3; key < round_up(ge[0], 4) && key < nb; ++key) {
          for (int t0 = 0; t0 < it.nheads; t0 += 4) {
            const float* q4[4];
            float* st4[4];
            long long delta[4];
            for (int h = 0; h < 4; ++h) {
              const int t = t0 + h < it.nheads ? t0 + h : t0;
              q4[h] = (const float*)q_of(t);
              st4[h] = st_of(t);
              delta[h] = kdelta[t] - kdelta[t0];
            }
            qk_heads4_f32<D, Dp>(q4, krows[key] + kdelta[t0], delta, st4, it.nheads - t0, key);
            prefetch_row(key + kPrefetchRows, t0, t0 + 4 < it.nheads ? t0 + 4 : it.nheads);
          }
        }
        for (int t = 0; t < it.nheads; ++t) {
          if (t == 0 || vdelta[t] != vdelta[t - 1])
            pack_rows_fp32<DVp>(vrows, vdelta[t], nb, nb, DV, vs);
          const RowState rs = state_of(t);
          softmax_block_rows4<Cfg, true>(p, st_of(t), rs, lo, hi, ga[0], ge[0], n0, needs_mask);
          pv_rows4_fp32<DVp>(st_of(t), vs, o_of(t), rs.alpha, ga[0], ge[0]);
        }
        continue;
      }
      for (int t = 0; t < it.nheads; ++t) {
        // Head groups that share a KV head (GQA without packing) share its packed block.
        if (t == 0 || kdelta[t] != kdelta[t - 1]) {
          pack_rows_fp32<Dp>(krows, kdelta[t], nb, round_up(nb, 8), D, kf);
          pack_rows_fp32<DVp>(vrows, vdelta[t], nb, nb, DV, vs);
        }
        const RowState rs = state_of(t);
        qk_fp32<D, Dp, BM>((const float*)q_of(t), kf, st_of(t), nb, ga, ge);
        softmax_block<Cfg>(p, st_of(t), rs, lo, hi, ga, ge, n0, needs_mask);
        pv_fp32<DVp, BM>(st_of(t), vs, o_of(t), rs.alpha, rows4, ga, ge);
      }
    }
  }

  // Epilogue per head group: sinks, normalization, output and LSE.
  TO* out = (TO*)p.out;
  for (int t = 0; t < it.nheads; ++t) {
    const float* o = o_of(t);
    const RowState rs = state_of(t);
    for (int r = 0; r < it.nrows; ++r) {
      int i = 0, hq = 0;
      row_coords<Cfg>(p, it, it.hg0 + t, r, i, hq);
      float mf = rs.m[r], lr = rs.l[r], o_scale = 1.0f;
      if constexpr (Cfg::kSinks) {
        // A sequence with no keys keeps LSE -inf (spec 3.4); split-KV counts the sink in split 0.
        if (it.lk > 0 && it.split == 0) {
          const float sink = sink_logit(p, hq) * kLog2e;
          mf = sink > rs.m[r] ? sink : rs.m[r];
          o_scale = exp2(rs.m[r] - mf);
          lr = lr * o_scale + exp2(sink - mf);
        }
      }
      const float inv = lr > 0.0f ? o_scale / lr : 0.0f;
      const float lse = lr > 0.0f ? (mf + __builtin_log2f(lr)) * kLn2 : kNegInf;
      if constexpr (Cfg::kSplitKV) {  // fp32 partials for the combine entry
        const long long a = (it.acc_row0 + i) * p.num_heads + hq;
        write_o_row<Cfg>(o + r * DVp, inv, p.out_accum + (it.split * p.accum_rows + a) * DV);
        p.lse_accum[it.split * p.accum_rows + a] = lse;
        continue;
      }
      TO* orow = out + it.o_base + (long long)i * p.o_row_stride + (long long)hq * p.o_head_stride;
      write_o_row<Cfg>(o + r * DVp, inv, orow);
      if constexpr (Cfg::kLse)
        p.lse[it.lse_base + (long long)hq * p.lse_head_stride + (long long)i * p.lse_row_stride] =
            lse;
    }
  }
}

template <class Cfg>
void flash_fwd(const FwdParams& p, long long begin, long long end, void* scratch) {
  if constexpr (Cfg::kUseAmx) amx_configure();
  for (long long w = begin; w < end; ++w) run_work_item<Cfg>(p, w, (char*)scratch);
  if constexpr (Cfg::kUseAmx) amx_release();
}

}  // namespace flashjit_cpu
