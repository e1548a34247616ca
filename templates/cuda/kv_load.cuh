// K/V blocks of the CUDA forward kernel (flash_fwd.cuh) into shared memory: row walks over
// contiguous or paged caches and their cp.async copies.
#pragma once

#include "flashjit/cuda/ptx.cuh"
#include "flashjit/cuda/tile_coords.cuh"
#include "flashjit/cuda/tile_traits.cuh"

namespace flashjit_cuda {

// Key rows j0, j0 + step, ... in order, as element offsets of their K and V rows (head hk): the
// two share one address computation, and a paged cache's table is read at page crossings only.
template <class Cfg>
struct KvRowWalk {
  int page_idx = 0, in_page = 0, cached = -1;
  long long k_page = 0, v_page = 0;  // offsets of row 0 of the cached page (head included)
  __device__ __forceinline__ KvRowWalk(const FwdParams& p, const Tile& t, int j0) {
    if constexpr (Cfg::kPagedKV) {
      int pos = j0;
      if constexpr (Cfg::kLeftpad) pos += (int)t.k_row0;  // storage row past the left padding
      page_idx = pos / p.page_size;
      in_page = pos - page_idx * p.page_size;
    }
  }
  // Offsets of row j, the walk's current row; only for rows below the key count, so that the
  // table is read where the host checked it.
  __device__ __forceinline__ void offsets(const FwdParams& p, const Tile& t, int j,
                                          long long& k_ofs, long long& v_ofs) {
    if constexpr (Cfg::kPagedKV) {
      if (page_idx != cached) {  // a new page: one table read, the page's base offsets
        int page = p.page_table[t.kv_b * p.page_table_stride + page_idx];
        page = page < 0 ? 0 : (page >= p.num_pages ? p.num_pages - 1 : page);  // never OOB
        k_page = page * p.k_batch_stride + t.hk * p.k_head_stride;
        v_page = page * p.v_batch_stride + t.hk * p.v_head_stride;
        cached = page_idx;
      }
      k_ofs = k_page + (long long)in_page * p.k_row_stride;
      v_ofs = v_page + (long long)in_page * p.v_row_stride;
    } else {
      const long long row = t.k_row0 + j;
      k_ofs = t.kv_b * p.k_batch_stride + row * p.k_row_stride + t.hk * p.k_head_stride;
      v_ofs = t.kv_b * p.v_batch_stride + row * p.v_row_stride + t.hk * p.v_head_stride;
    }
  }
  __device__ __forceinline__ void advance(const FwdParams& p, int step) {
    if constexpr (Cfg::kPagedKV) {
      in_page += step;
      // NOTE: subtraction, not division: a step rarely crosses more than one page.
      while (in_page >= p.page_size) {
        in_page -= p.page_size;
        ++page_idx;
      }
    }
  }
};

constexpr int kLoadK = 1, kLoadV = 2;  // which of K and V load_kv copies

// Split-KV key-warp (decode) tiles of one row block read every K/V line of their head once, where
// one CTA serves all query heads of a KV head (packed GQA, or no GQA): their copies ask the L2 to
// evict those lines first. Measured (H100, L2 left dirty by a memset before each call): decode
// B=1 s_k 8k and 32k 8-9 % faster, B=8 (2 splits) equal; one-split launches at B >= 16 ran
// 1.5-3 % slower with the hint, so they go without it.
template <class Cfg>
struct KvCopy {
  static constexpr bool kHint = Traits<Cfg>::kSplit > 1 && Cfg::kSplitKV;
  unsigned long long policy;
  __device__ __forceinline__ explicit KvCopy(const FwdParams& p) {
    if constexpr (kHint)
      policy = p.num_m_blocks == 1 && (Cfg::kPackGqa || p.group == 1) ? l2_policy_evict_first()
                                                                      : l2_policy_evict_normal();
  }
  __device__ __forceinline__ void operator()(u32 dst, const void* src, int src_bytes) const {
    if constexpr (kHint)
      cp_async_16_hint(dst, src, src_bytes, policy);
    else
      cp_async_16(dst, src, src_bytes);
  }
};

// Rows that load_kv's row walks take at a time: the largest power of two whose rows of `chunks`
// 16-byte columns fit `threads` (the other threads idle), 0 if not one row fits. E.g. d192 with
// 128 threads: 4 rows of 24 columns (96 threads).
__device__ constexpr int walk_rows(int threads, int chunks) {
  int rows = chunks <= threads ? 1 : 0;
  while (rows > 0 && rows * 2 * chunks <= threads) rows *= 2;
  return rows;
}

// A full block's copies by thread (r0, ch) of a row walk kStep rows at a time: chunk ch of rows
// r0 + i kStep of K and V, from k_src(i) and v_src(i) (called in order of i), to shared memory at
// sk_row / sv_row (row r0) with the swizzled chunk offset c0 of row r0. Row r0 + i kStep: r0 <
// kStep and kStep is a power of two, so its swizzle is r0's XOR a constant of i, (i kStep) % 8.
template <class T, int kParts, int kStep, class Copy, class KSrc, class VSrc>
__device__ __forceinline__ void copy_full_block(const Copy& copy, u32 sk_row, u32 sv_row, u32 c0,
                                                int r0, KSrc k_src, VSrc v_src) {
  static_assert(!T::kSwizzle || (kStep & (kStep - 1)) == 0, "swizzled rows: kStep power of 2");
#pragma unroll
  for (int i = 0; i < (T::BN + kStep - 1) / kStep; ++i) {
    if (T::BN % kStep != 0 && r0 + i * kStep >= T::BN) break;
    const u32 col = T::kSwizzle ? c0 ^ (u32)((i * kStep) % 8 * 16) : c0;
    if (kParts & kLoadK) copy(sk_row + i * kStep * T::kQStride * 2 + col, k_src(i), 16);
    if (kParts & kLoadV) copy(sv_row + i * kStep * T::kVStride * 2 + col, v_src(i), 16);
  }
}

// Issues the cp.async copies of keys [n0, n0 + BN) of K and V (kParts) into one stage; keys at or
// past n_end and the head-dim padding are zero-filled without reading (load_kv_part: the parts
// kParts, rows of kChunks 16-byte columns). kN threads (tid < kN) share the work: each thread keeps
// one chunk column and walks the rows (walk_rows at a time), so that a key's K and V rows share one
// address computation (decode is bound by instruction issue as much as by DRAM). NOTE: d 80, 96 and
// 192 once took a per-chunk path (an address computation per 16-byte copy) while this one needed
// kN to be a multiple of the chunks: d192 prefill ran at half d256's rate.
template <class Cfg, int kN, int kParts, int kChunks>
__device__ __forceinline__ void load_kv_part(const FwdParams& p, const Tile& t, int n0, int n_end,
                                             u16* sk, u16* sv, int tid) {
  using T = Traits<Cfg>;
  const u16* k = (const u16*)p.k;
  const u16* v = (const u16*)p.v;
  const KvCopy<Cfg> copy(p);
  constexpr int kWalkRows = walk_rows(kN, kChunks);
  // A row's chunks (at most 32, d 256) never outnumber the threads (a warp or more).
  static_assert(kWalkRows > 0, "load_kv_part: more 16-byte chunks in a row than threads");
  if constexpr (!Cfg::kPagedKV) {
    // Contiguous K/V: source pointers advance by a fixed stride and shared-memory addresses sit
    // at fixed offsets from one base, so a full block costs a few instructions per copy.
    constexpr int kStep = kWalkRows, kRows = (T::BN + kStep - 1) / kStep;
    if constexpr (kStep * kChunks < kN)
      if (tid >= kStep * kChunks) return;
    const int ch = tid % kChunks, r0 = tid / kChunks;
    const bool k_col = ch * 8 < T::D, v_col = ch * 8 < T::DV;
    const int row = n0 + r0;
    const u16* kp = k + (t.k_base + (long long)row * p.k_row_stride + ch * 8);
    const u16* vp = v + (t.v_base + (long long)row * p.v_row_stride + ch * 8);
    const long long k_step = kStep * p.k_row_stride, v_step = kStep * p.v_row_stride;
    // Row r0 + i kStep: r0 < kStep and kStep is a power of two, so its swizzle is r0's XOR a
    // constant of i, (i kStep) % 8: one thread-constant chunk offset serves every row.
    static_assert(!T::kSwizzle || (kStep & (kStep - 1)) == 0, "swizzled rows: kStep power of 2");
    const u32 c0 = (T::kSwizzle ? ch ^ (r0 & 7) : ch) * 16;
    auto col = [&](int i) { return T::kSwizzle ? c0 ^ (u32)((i * kStep) % 8 * 16) : c0; };
    const u32 sk_row = smem_addr(sk + r0 * T::kQStride);
    const u32 sv_row = smem_addr(sv + r0 * T::kVStride);
    if (n0 + T::BN <= n_end && (!(kParts & kLoadK) || T::D == T::Dp || k_col) &&
        (!(kParts & kLoadV) || T::DV == T::DVp || v_col)) {
      // Source pointers step by a 64-bit add (a 32-bit pitch with IMAD.WIDE ran prefill 1-3 %
      // slower on the H100).
      copy_full_block<T, kParts, kStep>(
          copy, sk_row, sv_row, c0, r0, [&](int) { return (kp += k_step) - k_step; },
          [&](int) { return (vp += v_step) - v_step; });
      return;
    }
#pragma unroll
    for (int i = 0; i < kRows; ++i) {
      const int r = r0 + i * kStep;
      if (T::BN % kStep != 0 && r >= T::BN) break;
      const bool row_ok = n0 + r < n_end;
      const bool kv = row_ok && k_col, vv = row_ok && v_col;
      if (kParts & kLoadK)
        copy(sk_row + i * kStep * T::kQStride * 2 + col(i), kv ? kp : k, kv ? 16 : 0);
      if (kParts & kLoadV)
        copy(sv_row + i * kStep * T::kVStride * 2 + col(i), vv ? vp : v, vv ? 16 : 0);
      kp += k_step;
      vp += v_step;
    }
  } else {
    constexpr int kStep = kWalkRows;
    if constexpr (kStep * kChunks < kN)
      if (tid >= kStep * kChunks) return;
    const int ch = tid % kChunks;
    const bool k_col = ch * 8 < T::D, v_col = ch * 8 < T::DV;
    // A full block inside one page (page sizes that are multiples of block_n, e.g. 16 or 64 in
    // decode): one table read, then the rows are contiguous in the page and every copy is one
    // IMAD.WIDE.U32 from the page's row, as for a contiguous cache. The walk below costs a copy
    // some 60 instructions (64-bit offsets, page checks), which decode issues for every row.
    int pos0 = n0;
    if constexpr (Cfg::kLeftpad) pos0 += (int)t.k_row0;  // storage row past the left padding
    const int page_idx = pos0 / p.page_size, in_page0 = pos0 - page_idx * p.page_size;
    if (n0 + T::BN <= n_end && in_page0 + T::BN <= p.page_size &&
        (!(kParts & kLoadK) || T::D == T::Dp || k_col) &&
        (!(kParts & kLoadV) || T::DV == T::DVp || v_col)) {
      const int r0 = tid / kChunks;
      int page = p.page_table[t.kv_b * p.page_table_stride + page_idx];
      page = page < 0 ? 0 : (page >= p.num_pages ? p.num_pages - 1 : page);  // never OOB
      const unsigned k_pitch = (unsigned)p.k_row_stride * 2u,
                     v_pitch = (unsigned)p.v_row_stride * 2u;
      const unsigned row0 = (unsigned)(in_page0 + r0);
      const char* kp =
          (const char*)(k + page * p.k_batch_stride + t.hk * p.k_head_stride + ch * 8) +
          (unsigned long long)k_pitch * row0;
      const char* vp =
          (const char*)(v + page * p.v_batch_stride + t.hk * p.v_head_stride + ch * 8) +
          (unsigned long long)v_pitch * row0;
      const u32 c0 = (T::kSwizzle ? ch ^ (r0 & 7) : ch) * 16;
      const u32 sk_row = smem_addr(sk + r0 * T::kQStride);
      const u32 sv_row = smem_addr(sv + r0 * T::kVStride);
      copy_full_block<T, kParts, kStep>(
          copy, sk_row, sv_row, c0, r0,
          [&](int i) { return kp + (unsigned long long)k_pitch * (unsigned)(i * kStep); },
          [&](int i) { return vp + (unsigned long long)v_pitch * (unsigned)(i * kStep); });
      return;
    }
    KvRowWalk<Cfg> walk(p, t, n0 + tid / kChunks);
#pragma unroll
    for (int i = 0; i < (T::BN + kStep - 1) / kStep; ++i) {
      const int r = tid / kChunks + i * kStep;
      if (T::BN % kStep != 0 && r >= T::BN) break;
      const bool row = n0 + r < n_end;
      long long k_ofs = 0, v_ofs = 0;
      if (row) walk.offsets(p, t, n0 + r, k_ofs, v_ofs);
      walk.advance(p, kStep);
      const bool kv = row && k_col, vv = row && v_col;
      if (kParts & kLoadK)
        copy(smem_addr(sk + tile_offset<T, T::kQStride>(r, ch)), kv ? k + k_ofs + ch * 8 : k,
             kv ? 16 : 0);
      if (kParts & kLoadV)
        copy(smem_addr(sv + tile_offset<T, T::kVStride>(r, ch)), vv ? v + v_ofs + ch * 8 : v,
             vv ? 16 : 0);
    }
  }
}

// K and V rows of one width share a walk; rows of different widths (e.g. d 192, dv 128) take
// one walk each.
template <class Cfg, int kN, int kParts = kLoadK | kLoadV>
__device__ __forceinline__ void load_kv(const FwdParams& p, const Tile& t, int n0, int n_end,
                                        u16* sk, u16* sv, int tid) {
  using T = Traits<Cfg>;
  constexpr int kChunksK = T::Dp / 8, kChunksV = T::DVp / 8;
  if constexpr (kChunksK == kChunksV || kParts != (kLoadK | kLoadV)) {
    load_kv_part<Cfg, kN, kParts, (kParts & kLoadK) ? kChunksK : kChunksV>(p, t, n0, n_end, sk, sv,
                                                                           tid);
  } else {
    load_kv_part<Cfg, kN, kLoadK, kChunksK>(p, t, n0, n_end, sk, sv, tid);
    load_kv_part<Cfg, kN, kLoadV, kChunksV>(p, t, n0, n_end, sk, sv, tid);
  }
}

}  // namespace flashjit_cuda
