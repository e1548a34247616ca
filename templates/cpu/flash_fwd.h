// FlashAttention forward for the CPU: one work item = (batch, head group, block of BM query rows).
// Online softmax over blocks of BN keys with fp32 accumulation; the matmuls run on AMX (bf16 with
// AMX) or on fp32 vectors (everything else). Instantiated once per kernel key by generated code.
#pragma once

#include "flashjit/cpu/amx_matmul.h"
#include "flashjit/cpu/fp32_tiles.h"
#include "flashjit/cpu/fwd_params.h"
#include "flashjit/cpu/masks.h"
#include "flashjit/cpu/simd.h"

namespace flashjit_cpu {

constexpr float kLog2e = 1.4426950408889634f;
constexpr float kLn2 = 0.69314718055994531f;
constexpr float kNegInf = -__builtin_inff();

template <class Cfg>
struct Shape {
  static constexpr int D = Cfg::kHeadDimQK, DV = Cfg::kHeadDimV;
  static constexpr int BM = Cfg::kBlockM, BN = Cfg::kBlockN;
  static constexpr bool kAmx = Cfg::kUseAmx;
  static constexpr int Dp = kAmx ? round_up(D, 32) : D;
  static constexpr int DVp = round_up(DV, 16);
  // fp32 V rows are used in place when they need no padding.
  static constexpr bool kDirectV = !kAmx && sizeof(typename Cfg::ElementKV) == 4 && DV % 16 == 0;
  static_assert(D % 8 == 0 && DV % 8 == 0, "head dims must be multiples of 8");
  static_assert(BM % (kAmx ? 16 : 4) == 0, "block_m must be a multiple of 16 (AMX) or 4");
  static_assert(BN % 32 == 0, "block_n must be a multiple of 32");
  static_assert(!kAmx || FLASHJIT_HAVE_AMX, "the AMX kernel needs a target with amx-bf16");

  // Per-thread scratch, every region 64-byte aligned.
  static constexpr long long align(long long x) { return (x + 63) / 64 * 64; }
  static constexpr long long kQ = 0;  // fp32 [BM][D] (scaled) or bf16 [BM][Dp]
  static constexpr long long kK = kQ + align((long long)BM * Dp * (kAmx ? 2 : 4));
  static constexpr long long kS = kK + align((long long)Dp * BN * (kAmx ? 2 : 4));
  static constexpr long long kP = kS + align((long long)BM * BN * 4);  // bf16 P (AMX)
  static constexpr long long kO = kP + align((long long)BM * BN * 2);
  static constexpr long long kV = kO + align((long long)BM * DVp * 4);
  static constexpr long long kStats = kV + align((long long)BN * DVp * 4);
  static constexpr long long kRowPtrs = kStats + align((long long)BM * 4 * 5);
  static constexpr long long kBytes = kRowPtrs + align((long long)BN * 2 * sizeof(void*));
};

template <class Cfg>
long long scratch_bytes() {
  return Shape<Cfg>::kBytes;
}

// The rows, heads and lengths of one work item.
struct WorkItem {
  int b, kv_b, hk;
  int lq, lk;
  int m0, nrows;
  long long q_base, o_base, lse_base, k_row0;
};

template <class Cfg>
inline bool locate(const FwdParams& p, long long w, WorkItem& it) {
  const int mb = (int)(w % p.num_m_blocks);
  const long long t = w / p.num_m_blocks;
  const int hg = (int)(t % p.num_head_groups);
  it.b = (int)(t / p.num_head_groups);
  long long q_row0 = 0;
  it.lq = p.seqlen_q;
  if constexpr (Cfg::kVarlenQ) {
    q_row0 = p.cu_seqlens_q[it.b];
    it.lq = p.cu_seqlens_q[it.b + 1] - p.cu_seqlens_q[it.b];
    if (p.seqused_q && p.seqused_q[it.b] < it.lq) it.lq = p.seqused_q[it.b];
    if (it.lq < 0) it.lq = 0;
  }
  const int g = Cfg::kPackGqa ? p.group : 1;
  it.m0 = mb * Cfg::kBlockM;
  const long long rows = (long long)it.lq * g;
  if (it.m0 >= rows) return false;
  it.nrows = rows - it.m0 < Cfg::kBlockM ? (int)(rows - it.m0) : Cfg::kBlockM;
  it.hk = Cfg::kPackGqa ? hg : hg / p.group;
  it.kv_b = it.b;
  if (p.cache_batch_idx) {
    const int r = p.cache_batch_idx[it.b];
    it.kv_b = r < 0 ? 0 : (r >= p.cache_rows ? p.cache_rows - 1 : r);  // clamp: never read OOB
  }
  it.k_row0 = 0;
  long long capacity = p.seqlen_k;
  if constexpr (Cfg::kVarlenK) {
    it.k_row0 = p.cu_seqlens_k[it.b];
    capacity = (long long)p.cu_seqlens_k[it.b + 1] - it.k_row0;
    if (it.k_row0 < 0) it.k_row0 = 0;
    if (it.k_row0 + capacity > p.total_k) capacity = p.total_k - it.k_row0;
  }
  long long lk = capacity;
  if constexpr (Cfg::kSequsedK) {
    lk = p.seqused_k[it.b];
    if (lk > capacity) lk = capacity;
  }
  it.lk = lk < 0 ? 0 : (int)lk;
  it.q_base = it.b * p.q_batch_stride + q_row0 * p.q_row_stride;
  it.o_base = it.b * p.o_batch_stride + q_row0 * p.o_row_stride;
  it.lse_base = it.b * p.lse_batch_stride + q_row0 * p.lse_row_stride;
  return true;
}

// Query index and head of row r of the work item.
template <class Cfg>
inline void row_coords(const FwdParams& p, const WorkItem& it, long long w, int r, int& i,
                       int& hq) {
  const int hg = (int)((w / p.num_m_blocks) % p.num_head_groups);
  if constexpr (Cfg::kPackGqa) {
    i = (it.m0 + r) / p.group;
    hq = hg * p.group + (it.m0 + r) % p.group;
  } else {
    i = it.m0 + r;
    hq = hg;
  }
}

// Element offset of key j's row in the K (or V) tensor.
template <class Cfg>
inline long long kv_row_offset(const FwdParams& p, const WorkItem& it, int j,
                               long long batch_stride, long long row_stride,
                               long long head_stride) {
  if constexpr (Cfg::kPagedKV) {
    int page = p.page_table[it.kv_b * p.page_table_stride + j / p.page_size];
    page = page < 0 ? 0 : (page >= p.num_pages ? p.num_pages - 1 : page);  // clamp: never OOB
    return page * batch_stride + (long long)(j % p.page_size) * row_stride + it.hk * head_stride;
  } else {
    return it.kv_b * batch_stride + (it.k_row0 + j) * row_stride + it.hk * head_stride;
  }
}

// Scales (and softcaps) S, masks it, and runs the online-softmax update. Writes P (fp32 in place,
// and bf16 for AMX) and the O rescale factor per row.
template <class Cfg>
inline void softmax_block(const FwdParams& p, float* s, bf16* pb, float* m, float* l, float* alpha,
                          const int* lo, const int* hi, int n0, int nb, int nrows,
                          bool needs_mask) {
  using Sh = Shape<Cfg>;
  constexpr int BN = Sh::BN;
  for (int r = 0; r < nrows; ++r) {
    float* row = s + r * BN;
    for (int c = 0; c < BN; c += 16) {
      f32x16 x = load(row + c) * p.score_scale;
      if constexpr (Cfg::kSoftcap) x = tanh(x) * p.softcap_log2;
      store(row + c, x);
    }
    if (needs_mask) {
      const int a = lo[r] - n0, e = hi[r] - n0;
      for (int c = 0; c < BN; ++c)
        if (c < a || c >= e || c >= nb) row[c] = kNegInf;
    }
    f32x16 mx = kNegInf;
    for (int c = 0; c < BN; c += 16) mx = vmax(mx, load(row + c));
    const float m_old = m[r];
    const float m_blk = reduce_max(mx);
    const float m_new = m_blk > m_old ? m_blk : m_old;
    const float m_use = m_new == kNegInf ? 0.0f : m_new;
    f32x16 sum = 0.0f;
    for (int c = 0; c < BN; c += 16) {
      const f32x16 e = exp2(load(row + c) - m_use);
      sum += e;
      store(row + c, e);
      if constexpr (Sh::kAmx) {
        u16x16 h = to_bf16_bits(e);
        __builtin_memcpy(pb + r * BN + c, &h, 32);
      }
    }
    alpha[r] = exp2(m_old - m_use);
    l[r] = l[r] * alpha[r] + reduce_add(sum);
    m[r] = m_new;
  }
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

  float* s = (float*)(scratch + Sh::kS);
  bf16* pb = (bf16*)(scratch + Sh::kP);
  float* o = (float*)(scratch + Sh::kO);
  float* m = (float*)(scratch + Sh::kStats);
  float* l = m + BM;
  float* alpha = l + BM;
  int* lo = (int*)(alpha + BM);
  int* hi = lo + BM;
  const TKV** krows = (const TKV**)(scratch + Sh::kRowPtrs);
  const TKV** vrows = krows + BN;

  // Rows: visible key intervals, and the Q tile.
  int n_lo = it.lk, n_hi = 0, max_lo = 0, min_hi = it.lk;
  const TQ* q = (const TQ*)p.q;
  for (int r = 0; r < BM; ++r) {
    m[r] = kNegInf;
    l[r] = 0.0f;
    alpha[r] = 1.0f;
    int i = 0, hq = 0;
    if (r < it.nrows) {
      row_coords<Cfg>(p, it, w, r, i, hq);
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
    const TQ* qrow =
        q + it.q_base + (long long)i * p.q_row_stride + (long long)hq * p.q_head_stride;
    if constexpr (Sh::kAmx) {
      bf16* qt = (bf16*)(scratch + Sh::kQ) + r * Dp;
      __builtin_memset(qt, 0, Dp * 2);
      if (r < it.nrows) __builtin_memcpy(qt, qrow, D * 2);
    } else {
      float* qt = (float*)(scratch + Sh::kQ) + r * D;
      int c = 0;
      for (; c + 16 <= D; c += 16)
        store(qt + c, r < it.nrows ? load_f32(qrow + c) * p.score_scale : (f32x16)0.0f);
      if (c < D) {
        float tail[16];
        store(tail,
              r < it.nrows ? load_f32_partial(qrow + c, D - c) * p.score_scale : (f32x16)0.0f);
        for (int e = 0; c + e < D; ++e) qt[c + e] = tail[e];
      }
    }
    for (int c = 0; c < DVp; c += 16) store(o + r * DVp + c, 0.0f);
  }
  // The fp32 path folds the scale into Q; the AMX path scales S (Q stays exact bf16).
  FwdParams ps = p;
  if constexpr (!Sh::kAmx) ps.score_scale = 1.0f;

  for (int n0 = n_lo; n0 < n_hi; n0 += BN) {
    const int nb = n_hi - n0 < BN ? n_hi - n0 : BN;
    for (int j = 0; j < nb; ++j) {
      krows[j] = (const TKV*)p.k + kv_row_offset<Cfg>(p, it, n0 + j, p.k_batch_stride,
                                                      p.k_row_stride, p.k_head_stride);
      vrows[j] = (const TKV*)p.v + kv_row_offset<Cfg>(p, it, n0 + j, p.v_batch_stride,
                                                      p.v_row_stride, p.v_head_stride);
    }
    const bool needs_mask = nb < BN || n0 < max_lo || n0 + nb > min_hi;
    if constexpr (Sh::kAmx) {
#if FLASHJIT_HAVE_AMX
      bf16* kv = (bf16*)(scratch + Sh::kK);
      pack_k_vnni<D, Dp, BN>((const bf16* const*)krows, nb, kv);
      qk_amx<Dp, BN, BM>((const bf16*)(scratch + Sh::kQ), kv, s, nb);
      softmax_block<Cfg>(ps, s, pb, m, l, alpha, lo, hi, n0, nb, it.nrows, needs_mask);
      for (int r = it.nrows; r < BM; ++r) __builtin_memset(pb + r * BN, 0, BN * 2);
      for (int r = 0; r < it.nrows; ++r) {
        if (alpha[r] != 1.0f)
          for (int c = 0; c < DVp; c += 16)
            store(o + r * DVp + c, load(o + r * DVp + c) * alpha[r]);
      }
      bf16* vv = (bf16*)(scratch + Sh::kV);
      pack_v_vnni<DV, DVp>((const bf16* const*)vrows, nb, vv);
      pv_amx<DVp, BN, BM>(pb, vv, o, nb);
#endif
    } else {
      float* kt = (float*)(scratch + Sh::kK);
      pack_k_transposed<D, BN>(krows, nb, kt);
      qk_fp32<D, BN, BM>((const float*)(scratch + Sh::kQ), kt, s, nb);
      softmax_block<Cfg>(ps, s, pb, m, l, alpha, lo, hi, n0, nb, it.nrows, needs_mask);
      for (int r = it.nrows; r < BM; ++r) {
        for (int c = 0; c < BN; c += 16) store(s + r * BN + c, 0.0f);
        alpha[r] = 1.0f;
      }
      if constexpr (Sh::kDirectV) {
        pv_fp32<DVp, BN, BM>(s, (const float* const*)vrows, o, alpha, nb);
      } else {
        float* vs = (float*)(scratch + Sh::kV);
        const float** vptr = (const float**)krows;  // K row pointers are no longer needed
        pack_v_fp32<DV, DVp>(vrows, nb, vs);
        for (int j = 0; j < nb; ++j) vptr[j] = vs + j * DVp;
        pv_fp32<DVp, BN, BM>(s, vptr, o, alpha, nb);
      }
    }
  }

  // Epilogue: sinks, normalization, output and LSE.
  TO* out = (TO*)p.out;
  for (int r = 0; r < it.nrows; ++r) {
    int i = 0, hq = 0;
    row_coords<Cfg>(p, it, w, r, i, hq);
    float mf = m[r], lr = l[r], o_scale = 1.0f;
    if constexpr (Cfg::kSinks) {
      if (it.lk > 0) {  // a sequence with no keys keeps LSE -inf (spec 3.4)
        const float sink = p.sinks[hq] * kLog2e;
        mf = sink > m[r] ? sink : m[r];
        o_scale = exp2(m[r] - mf);
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

template <class Cfg>
void flash_fwd(const FwdParams& p, long long begin, long long end, void* scratch) {
  if constexpr (Cfg::kUseAmx) amx_configure();
  for (long long w = begin; w < end; ++w) run_work_item<Cfg>(p, w, (char*)scratch);
  if constexpr (Cfg::kUseAmx) amx_release();
}

}  // namespace flashjit_cpu
