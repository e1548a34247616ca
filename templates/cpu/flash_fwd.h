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
  static constexpr int Dp = kAmx ? round_up(D, 32) : round_up(D, 16);  // padded K rows
  static constexpr int DVp = round_up(DV, 16);
  static_assert(D % 8 == 0 && DV % 8 == 0, "head dims must be multiples of 8");
  static_assert(BM % 16 == 0, "block_m must be a multiple of 16");
  static_assert(BN % 32 == 0, "block_n must be a multiple of 32");
  static_assert(!kAmx || FLASHJIT_HAVE_AMX, "the AMX kernel needs a target with amx-bf16");

  // Per-thread scratch, every region 64-byte aligned.
  static constexpr long long align(long long x) { return (x + 63) / 64 * 64; }
  static constexpr int kElem = kAmx ? 2 : 4;  // bytes of a packed Q / K / V element
  static constexpr long long kQ = 0;          // Q^T: fp32 [D][BM] (scaled) or bf16 VNNI
  static constexpr long long kK = kQ + align((long long)BM * Dp * kElem);   // K [BN][Dp]
  static constexpr long long kS = kK + align((long long)BN * Dp * kElem);   // S^T fp32 [BN][BM]
  static constexpr long long kP = kS + align((long long)BN * BM * 4);       // P bf16 [BM][BN]
  static constexpr long long kO = kP + align((long long)BM * BN * 2);       // O fp32 [BM][DVp]
  static constexpr long long kV = kO + align((long long)BM * DVp * 4);      // V [BN][DVp]
  static constexpr long long kStats = kV + align((long long)BN * DVp * 4);  // m, l, alpha, lo, hi
  static constexpr long long kRowPtrs = kStats + align((long long)BM * 4 * 7);
  // K and V row pointers (BN each); Q row pointers (BM) reuse the space before the key loop.
  static constexpr long long kBytes =
      kRowPtrs + align((long long)(2 * BN > BM ? 2 * BN : BM) * sizeof(void*));
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

// Row pointers of keys [n0, n0 + nb) in K and V. A paged cache walks its pages with one division
// per block instead of one per key.
template <class Cfg, typename T>
inline void gather_rows(const FwdParams& p, const WorkItem& it, int n0, int nb, const T** krows,
                        const T** vrows) {
  const T* k = (const T*)p.k + it.hk * p.k_head_stride;
  const T* v = (const T*)p.v + it.hk * p.v_head_stride;
  if constexpr (Cfg::kPagedKV) {
    const int* table = p.page_table + it.kv_b * p.page_table_stride;
    int slot = n0 % p.page_size, entry = n0 / p.page_size;
    for (int j = 0; j < nb;) {
      int page = table[entry++];
      page = page < 0 ? 0 : (page >= p.num_pages ? p.num_pages - 1 : page);  // clamp: never OOB
      const T* kp = k + page * p.k_batch_stride;
      const T* vp = v + page * p.v_batch_stride;
      for (; slot < p.page_size && j < nb; ++slot, ++j) {
        krows[j] = kp + slot * p.k_row_stride;
        vrows[j] = vp + slot * p.v_row_stride;
      }
      slot = 0;
    }
  } else {
    k += it.kv_b * p.k_batch_stride + (it.k_row0 + n0) * p.k_row_stride;
    v += it.kv_b * p.v_batch_stride + (it.k_row0 + n0) * p.v_row_stride;
    for (int j = 0; j < nb; ++j) {
      krows[j] = k + j * p.k_row_stride;
      vrows[j] = v + j * p.v_row_stride;
    }
  }
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

// The online-softmax update on S^T[key][row] for keys < nb, 16 rows per vector: scale (AMX) and
// softcap, mask, new row maxima, P = 2^(S - m) in place, and the O rescale factor alpha per row.
// Only the keys [ga[g], ge[g]) (block-relative) of row group g are looked at.
template <class Cfg>
inline void softmax_block(const FwdParams& p, float* st, float* m, float* l, float* alpha,
                          const int* lo, const int* hi, const int* ga, const int* ge, int n0,
                          bool needs_mask) {
  constexpr int BM = Cfg::kBlockM;
  for (int r = 0; r < BM; r += 16) {
    const int a = ga[r / 16], e = ge[r / 16];
    i32x16 lo_v, hi_v;
    __builtin_memcpy(&lo_v, lo + r, 64);
    __builtin_memcpy(&hi_v, hi + r, 64);
    f32x16 mx = kNegInf;
    for (int n = a; n < e; ++n) {
      f32x16 x = load(st + n * BM + r);
      if constexpr (Cfg::kUseAmx) x *= p.score_scale;
      if constexpr (Cfg::kSoftcap) x = tanh(x) * p.softcap_log2;
      if (needs_mask) {
        const int j = n0 + n;
        x = (j >= lo_v && j < hi_v) ? x : kNegInf;
      }
      store(st + n * BM + r, x);
      mx = vmax(mx, x);
    }
    const f32x16 m_old = load(m + r);
    const f32x16 m_new = vmax(m_old, mx);
    const f32x16 m_use = m_new == kNegInf ? (f32x16)0.0f : m_new;
    f32x16 sum = 0.0f;
    for (int n = a; n < e; ++n) {
      const f32x16 x = exp2(load(st + n * BM + r) - m_use);
      store(st + n * BM + r, x);
      sum += x;
    }
    const f32x16 rescale = exp2(m_old - m_use);
    store(alpha + r, rescale);
    store(l + r, load(l + r) * rescale + sum);
    store(m + r, m_new);
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

  float* st = (float*)(scratch + Sh::kS);
  float* o = (float*)(scratch + Sh::kO);
  float* m = (float*)(scratch + Sh::kStats);
  float* l = m + BM;
  float* alpha = l + BM;
  int* lo = (int*)(alpha + BM);
  int* hi = lo + BM;
  int* ga = hi + BM;  // per 16-row group and key block: the keys any row of the group sees
  int* ge = ga + BM / 16;
  const TKV** krows = (const TKV**)(scratch + Sh::kRowPtrs);
  const TKV** vrows = krows + BN;
  const TQ** qrows = (const TQ**)krows;  // Q rows are packed before any key row is gathered

  // Rows: visible key intervals and Q row pointers. Padding rows see nothing.
  int n_lo = it.lk, n_hi = 0, max_lo = 0, min_hi = it.lk;
  const TQ* q = (const TQ*)p.q;
  for (int r = 0; r < BM; ++r) {
    m[r] = kNegInf;
    l[r] = 0.0f;
    lo[r] = 0;
    hi[r] = 0;
    if (r < it.nrows) {
      int i = 0, hq = 0;
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
      qrows[r] = q + it.q_base + (long long)i * p.q_row_stride + (long long)hq * p.q_head_stride;
    }
    for (int c = 0; c < DVp; c += 16) store(o + r * DVp + c, 0.0f);
  }
  if constexpr (Sh::kAmx) {
#if FLASHJIT_HAVE_AMX
    pack_q_vnni<D, Dp, BM>((const bf16* const*)qrows, it.nrows, (bf16*)(scratch + Sh::kQ));
#endif
  } else {
    // The fp32 path folds the scale into Q; the AMX path scales S (Q stays exact bf16).
    pack_q_transposed<D, BM>(qrows, it.nrows, p.score_scale, (float*)(scratch + Sh::kQ));
  }
  const int rows4 = round_up(it.nrows, 4);

  for (int n0 = n_lo; n0 < n_hi; n0 += BN) {
    const int nb = n_hi - n0 < BN ? n_hi - n0 : BN;
    gather_rows<Cfg>(p, it, n0, nb, krows, vrows);
    const bool needs_mask = n0 < max_lo || n0 + nb > min_hi;
    block_ranges<BM>(lo, hi, n0, nb, ga, ge);
    if constexpr (Sh::kAmx) {
#if FLASHJIT_HAVE_AMX
      bf16* kb = (bf16*)(scratch + Sh::kK);
      pack_k_bf16<D, Dp>((const bf16* const*)krows, nb, kb);
      qk_amx<Dp, BM>(kb, (const bf16*)(scratch + Sh::kQ), st, nb, ga, ge);
      softmax_block<Cfg>(p, st, m, l, alpha, lo, hi, ga, ge, n0, needs_mask);
      zero_outside_ranges<BM>(st, nb, ga, ge);  // pv_amx works on whole 32-key chunks
      bf16* pb = (bf16*)(scratch + Sh::kP);
      transpose_p_bf16<BM, BN>(st, nb, pb);
      for (int r = 0; r < it.nrows; ++r) {
        if (alpha[r] != 1.0f)
          for (int c = 0; c < DVp; c += 16)
            store(o + r * DVp + c, load(o + r * DVp + c) * alpha[r]);
      }
      bf16* vv = (bf16*)(scratch + Sh::kV);
      pack_v_vnni<DV, DVp>((const bf16* const*)vrows, nb, vv);
      pv_amx<DVp, BN, BM>(pb, vv, o, ga, ge);
#endif
    } else {
      float* kf = (float*)(scratch + Sh::kK);
      pack_rows_fp32<Dp>(krows, nb, round_up(nb, 8), D, kf);
      qk_fp32<D, Dp, BM>((const float*)(scratch + Sh::kQ), kf, st, nb, ga, ge);
      softmax_block<Cfg>(p, st, m, l, alpha, lo, hi, ga, ge, n0, needs_mask);
      float* vs = (float*)(scratch + Sh::kV);
      pack_rows_fp32<DVp>(vrows, nb, nb, DV, vs);
      pv_fp32<DVp, BM>(st, vs, o, alpha, rows4, ga, ge);
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
