// FlashAttention forward for the CPU. A work item is (sequence, kBlockH head groups, kBlockM query
// rows); online softmax over blocks of kBlockN keys with fp32 accumulation; the matmuls run on AMX
// (bf16 with AMX) or on fp32 vectors (everything else). Instantiated once per kernel key.
#pragma once

#include "flashjit/cpu/amx_matmul.h"
#include "flashjit/cpu/fp32_tiles.h"
#include "flashjit/cpu/fwd_params.h"
#include "flashjit/cpu/masks.h"
#include "flashjit/cpu/online_softmax.h"
#include "flashjit/cpu/simd.h"
#include "flashjit/cpu/work_item.h"

namespace flashjit_cpu {

template <class Cfg>
struct Shape {
  static constexpr int D = Cfg::kHeadDimQK, DV = Cfg::kHeadDimV;
  static constexpr int BM = Cfg::kBlockM, BN = Cfg::kBlockN, BH = Cfg::kBlockH;
  static constexpr bool kAmx = Cfg::kUseAmx;
  static constexpr int Dp = kAmx ? round_up(D, 32) : round_up(D, 16);  // padded K rows
  static constexpr int DVp = round_up(DV, 16);
  static_assert(D % 8 == 0 && DV % 8 == 0, "head dims must be multiples of 8");
  static_assert(BM % 16 == 0, "block_m must be a multiple of 16");
  static_assert(BN % 32 == 0, "block_n must be a multiple of 32");
  static_assert(BH >= 1 && BH <= 16, "block_h must be in [1, 16]");
  static_assert(!kAmx || FLASHJIT_HAVE_AMX, "the AMX kernel needs a target with amx-bf16");

  // Per-thread scratch, every region 64-byte aligned. Per head group (x BH): Q, O, row state.
  static constexpr long long align(long long x) { return (x + 63) / 64 * 64; }
  static constexpr int kElem = kAmx ? 2 : 4;  // bytes of a packed Q / K / V element
  static constexpr long long kQBytes = align((long long)BM * Dp * kElem);  // Q^T, fp32 or VNNI
  static constexpr long long kOBytes = align((long long)BM * DVp * 4);
  static constexpr long long kStateBytes = align((long long)BM * 4 * 3);  // m, l, alpha
  static constexpr long long kQ = 0;
  static constexpr long long kO = kQ + BH * kQBytes;
  static constexpr long long kState = kO + BH * kOBytes;
  // Shared by the head groups, one after the other.
  static constexpr long long kK = kState + BH * kStateBytes;                  // K [BN][Dp]
  static constexpr long long kS = kK + align((long long)BN * Dp * kElem);     // S^T fp32 [BN][BM]
  static constexpr long long kP = kS + align((long long)BN * BM * 4);         // P bf16 [BM][BN]
  static constexpr long long kV = kP + align((long long)BM * BN * 2);         // V [BN][DVp]
  static constexpr long long kRows = kV + align((long long)BN * DVp * 4);     // lo, hi, ga, ge
  static constexpr long long kKTiles = kRows + align((long long)BM * 4 * 4);  // AMX K tiles
  static constexpr long long kRowPtrs = kKTiles + align((long long)(BN / 16) * 16);
  // K and V row pointers of this and the next key block (BN each); Q row pointers (BM) reuse
  // the space before the key loop.
  static constexpr long long kBytes =
      kRowPtrs + align((long long)(4 * BN > BM ? 4 * BN : BM) * sizeof(void*));
};

template <class Cfg>
long long scratch_bytes() {
  return Shape<Cfg>::kBytes;
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

  float* st = (float*)(scratch + Sh::kS);
  int* lo = (int*)(scratch + Sh::kRows);
  int* hi = lo + BM;
  int* ga = hi + BM;  // per 16-row group and key block: the keys any row of the group sees
  int* ge = ga + BM / 16;
  const TKV** krows = (const TKV**)(scratch + Sh::kRowPtrs);
  const TKV** vrows = krows + BN;
  const TKV** krows_next = vrows + BN;
  const TKV** vrows_next = krows_next + BN;
  const TQ** qrows = (const TQ**)krows;  // Q rows are packed before any key row is gathered
  auto q_of = [&](int t) { return scratch + Sh::kQ + t * Sh::kQBytes; };
  auto o_of = [&](int t) { return (float*)(scratch + Sh::kO + t * Sh::kOBytes); };
  auto state_of = [&](int t) {
    float* m = (float*)(scratch + Sh::kState + t * Sh::kStateBytes);
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
    }
    if constexpr (Sh::kAmx) {
#if FLASHJIT_HAVE_AMX
      pack_q_vnni<D, Dp, BM>((const bf16* const*)qrows, it.nrows, (bf16*)q_of(t));
#endif
    } else {
      // The fp32 path folds the scale into Q; the AMX path scales S (Q stays exact bf16).
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

  if (n_lo < n_hi)
    gather_rows<Cfg>(p, it, hk0, n_lo, n_hi - n_lo < BN ? n_hi - n_lo : BN, krows, vrows);
  for (int n0 = n_lo; n0 < n_hi; n0 += BN) {
    const int nb = n_hi - n0 < BN ? n_hi - n0 : BN;
    if (n0 + BN < n_hi) {
      const int nb_next = n_hi - n0 - BN < BN ? n_hi - n0 - BN : BN;
      gather_rows<Cfg>(p, it, hk0, n0 + BN, nb_next, krows_next, vrows_next);
      prefetch_rows(krows_next, nb_next);
      prefetch_rows(vrows_next, nb_next);
    }
    const bool needs_mask = n0 < max_lo || n0 + nb > min_hi;
    block_ranges<BM>(lo, hi, n0, nb, ga, ge);
    for (int t = 0; t < it.nheads; ++t) {
      // Head groups that share a KV head (GQA without packing) share its packed block.
      const bool repack = t == 0 || kdelta[t] != kdelta[t - 1];
      float* o = o_of(t);
      const RowState rs = state_of(t);
      if constexpr (Sh::kAmx) {
#if FLASHJIT_HAVE_AMX
        bf16* kb = (bf16*)(scratch + Sh::kK);
        bf16* vv = (bf16*)(scratch + Sh::kV);
        KTile* ktiles = (KTile*)(scratch + Sh::kKTiles);
        if (repack) {
          plan_k_tiles<D, Dp>((const bf16* const*)krows, kdelta[t], nb, kb, ktiles);
          pack_v_vnni<DV, DVp>((const bf16* const*)vrows, vdelta[t], nb, vv);
        }
        qk_amx<Dp, BM>(ktiles, (const bf16*)q_of(t), st, nb, ga, ge);
        softmax_block<Cfg>(p, st, rs, lo, hi, ga, ge, n0, needs_mask);
        zero_outside_ranges<BM>(st, nb, ga, ge);  // pv_amx works on whole 32-key chunks
        bf16* pb = (bf16*)(scratch + Sh::kP);
        transpose_p_bf16<BM, BN>(st, nb, pb);
        for (int r = 0; r < it.nrows; ++r) {
          if (rs.alpha[r] != 1.0f)
            for (int c = 0; c < DVp; c += 16)
              store(o + r * DVp + c, load(o + r * DVp + c) * rs.alpha[r]);
        }
        pv_amx<DVp, BN, BM>(pb, vv, o, ga, ge);
#endif
      } else {
        float* kf = (float*)(scratch + Sh::kK);
        float* vs = (float*)(scratch + Sh::kV);
        if (repack) {
          pack_rows_fp32<Dp>(krows, kdelta[t], nb, round_up(nb, 8), D, kf);
          pack_rows_fp32<DVp>(vrows, vdelta[t], nb, nb, DV, vs);
        }
        qk_fp32<D, Dp, BM>((const float*)q_of(t), kf, st, nb, ga, ge);
        softmax_block<Cfg>(p, st, rs, lo, hi, ga, ge, n0, needs_mask);
        pv_fp32<DVp, BM>(st, vs, o, rs.alpha, rows4, ga, ge);
      }
    }
    const TKV** swap = krows;
    krows = krows_next;
    krows_next = swap;
    swap = vrows;
    vrows = vrows_next;
    vrows_next = swap;
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
        if (it.lk > 0) {  // a sequence with no keys keeps LSE -inf (spec 3.4)
          const float sink = p.sinks[hq] * kLog2e;
          mf = sink > rs.m[r] ? sink : rs.m[r];
          o_scale = exp2(rs.m[r] - mf);
          lr = lr * o_scale + exp2(sink - mf);
        }
      }
      const float inv = lr > 0.0f ? o_scale / lr : 0.0f;
      TO* orow = out + it.o_base + (long long)i * p.o_row_stride + (long long)hq * p.o_head_stride;
      int c = 0;
      for (; c + 16 <= DV; c += 16) store_f32(orow + c, load(o + r * DVp + c) * inv);
      if (c < DV) store_f32_partial(orow + c, load(o + r * DVp + c) * inv, DV - c);
      if constexpr (Cfg::kLse) {
        p.lse[it.lse_base + (long long)hq * p.lse_head_stride + (long long)i * p.lse_row_stride] =
            lr > 0.0f ? (mf + __builtin_log2f(lr)) * kLn2 : kNegInf;
      }
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
