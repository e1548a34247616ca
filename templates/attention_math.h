// Index math shared by the CPU kernels (clang, freestanding) and the CUDA kernels (NVRTC): which
// keys a query row sees, and where a sequence's query and key rows are. No headers.
#pragma once

#include "flashjit/fwd_params.h"

#if defined(__CUDACC__) || defined(__CUDACC_RTC__)
#define FLASHJIT_FN __device__ __forceinline__
#else
#define FLASHJIT_FN inline
#endif

namespace flashjit_kernel {

// Every mask flashjit supports (causal, sliding window, attention chunk, key padding) leaves a
// query row an interval of keys [lo, hi); lo >= hi means the row sees no key.
struct KeyInterval {
  int lo;
  int hi;
};

FLASHJIT_FN long long floor_div(long long a, long long b) {
  long long q = a / b;
  return (a % b != 0 && ((a < 0) != (b < 0))) ? q - 1 : q;
}

// Query i of a sequence with lq queries and lk keys; bottom-right aligned (spec section 3.3).
// Both bounds never decrease with i, so the first and last rows of a tile bound all of its rows.
template <class Cfg>
FLASHJIT_FN KeyInterval visible_keys(const FwdParams& p, int i, int lq, int lk) {
  const long long pos = (long long)i + lk - lq;  // the key position query i is "at"
  long long lo = 0, hi = lk;
  if constexpr (Cfg::kCausal) hi = hi < pos + 1 ? hi : pos + 1;
  if constexpr (Cfg::kLocal) {
    if (p.window_left != kUnbounded && pos - p.window_left > lo) lo = pos - p.window_left;
    if (p.window_right != kUnbounded && pos + p.window_right + 1 < hi)
      hi = pos + p.window_right + 1;
  }
  if constexpr (Cfg::kChunked) {
    const long long c0 = floor_div(pos, p.chunk) * p.chunk;
    if (c0 > lo) lo = c0;
    if (c0 + p.chunk < hi) hi = c0 + p.chunk;
  }
  if (hi < lo) hi = lo;
  return KeyInterval{(int)lo, (int)hi};
}

// Sequence b's rows: queries [q_row0, q_row0 + lq) of q/out, keys [0, lk) stored from row k_row0
// of cache row kv_b (or of a packed k/v); with an append, keys [lk_old, lk) are the new ones.
// Index values are clamped so that bad ones never read out of bounds (validation mode rejects
// them before the kernel runs).
struct Sequence {
  int lq, lk, kv_b;
  int lk_old, lnew;    // keys already in the cache, keys appended by this call
  int rotary_base;     // position of new key 0 (and of query 0) in the rotary tables
  long long q_row0;    // first row of q/out of the sequence (packed layouts), else 0
  long long acc_row0;  // first row of the sequence in b * s_q + i / packed row numbering
  long long k_row0;    // storage row of key 0: cu_seqlens_k[b], or leftpad_k[b] in a cache
  long long new_row0;  // first row of the new keys in k_new / v_new
};

FLASHJIT_FN int clamp_int(long long x, long long lo, long long hi) {
  return (int)(x < lo ? lo : (x > hi ? hi : x));
}

// The first packed row of sequence b's queries, cu_seqlens_q[b] clamped into [0, total_q].
FLASHJIT_FN long long packed_q_row0(const FwdParams& p, int b) {
  const long long row0 = p.cu_seqlens_q[b];
  return row0 < 0 ? 0 : (row0 > p.total_q ? p.total_q : row0);
}

template <class Cfg>
FLASHJIT_FN Sequence sequence(const FwdParams& p, int b) {
  Sequence s;
  s.q_row0 = 0;
  s.acc_row0 = (long long)b * p.seqlen_q;
  s.lq = p.seqlen_q;
  if constexpr (Cfg::kVarlenQ) {
    const long long row0 = packed_q_row0(p, b);
    s.q_row0 = s.acc_row0 = row0;
    s.lq = clamp_int((long long)p.cu_seqlens_q[b + 1] - row0, 0, p.total_q - row0);
    if (p.seqused_q && p.seqused_q[b] < s.lq) s.lq = p.seqused_q[b];
    if (s.lq < 0) s.lq = 0;
  }
  s.kv_b = b;
  if (p.cache_batch_idx) s.kv_b = clamp_int(p.cache_batch_idx[b], 0, p.cache_rows - 1);
  s.k_row0 = 0;
  long long capacity = p.seqlen_k;
  if constexpr (Cfg::kVarlenK) {
    s.k_row0 = p.cu_seqlens_k[b];
    capacity = (long long)p.cu_seqlens_k[b + 1] - s.k_row0;
    if (s.k_row0 < 0) s.k_row0 = 0;
    if (s.k_row0 + capacity > p.total_k) capacity = p.total_k - s.k_row0;
  }
  if (capacity < 0) capacity = 0;
  long long end = capacity;  // rows [0, end) of the sequence's storage hold the old keys
  if constexpr (Cfg::kSequsedK) end = clamp_int(p.seqused_k[b], 0, capacity);
  s.rotary_base = (int)end;
  if constexpr (Cfg::kRotary) {
    if (p.rotary_seqlens) s.rotary_base = p.rotary_seqlens[b];
  }
  s.lnew = 0;
  s.new_row0 = 0;
  if constexpr (Cfg::kAppendKV) {
    s.lnew = p.seqlen_new;
    if (p.cu_seqlens_k_new) {
      s.new_row0 = clamp_int(p.cu_seqlens_k_new[b], 0, p.seqlen_new);
      s.lnew = clamp_int((long long)p.cu_seqlens_k_new[b + 1] - s.new_row0, 0,
                         p.seqlen_new - s.new_row0);
    }
    s.lnew = clamp_int(s.lnew, 0, capacity - end);  // appends never write past the capacity
  }
  int leftpad = 0;
  if constexpr (Cfg::kLeftpad) leftpad = clamp_int(p.leftpad_k[b], 0, end);
  s.k_row0 += leftpad;
  s.lk_old = (int)(end - leftpad);
  s.lk = s.lk_old + s.lnew;
  return s;
}

// Split-KV: the key blocks [b0, b1) of split `split` out of `nblocks` blocks.
FLASHJIT_FN void split_blocks(int nblocks, int num_splits, int split, int& b0, int& b1) {
  const int per = (nblocks + num_splits - 1) / num_splits;
  b0 = split * per < nblocks ? split * per : nblocks;
  b1 = b0 + per < nblocks ? b0 + per : nblocks;
}

// Causal CUDA grids: CTA `lin` of slots x m_blocks (slots: sequence x head group pairs) runs row
// block m_block of slot `slot`. The slots form `sections` runs of consecutive slots (1 <= sections
// <= slots), as equal as can be: the first slots % sections hold one slot more. Sections run one
// after another; within one, row blocks go last to first (the longest causal tiles first) with the
// section's slots side by side. Every (slot, m_block) is visited once.
FLASHJIT_FN void causal_tile_order(int lin, int slots, int m_blocks, int sections, int& m_block,
                                   int& slot) {
  // The host keeps slots x m_blocks below 2^31.
  const int q = slots / sections, big = slots % sections;
  const int big_tiles = big * (q + 1) * m_blocks;
  int size, first, idx;
  if (lin < big_tiles) {
    size = q + 1;
    const int s = lin / (size * m_blocks);
    first = s * size;
    idx = lin - s * size * m_blocks;
  } else {
    size = q;
    const int rest = lin - big_tiles, s = rest / (size * m_blocks);
    first = big * (q + 1) + s * size;
    idx = rest - s * size * m_blocks;
  }
  m_block = m_blocks - 1 - idx / size;
  slot = first + idx % size;
}

// Rotary pair m of a row (m < rotary_dim / 2): the columns it rotates.
FLASHJIT_FN void rotary_columns(const FwdParams& p, int m, int& c0, int& c1) {
  c0 = p.rotary_interleaved ? 2 * m : m;
  c1 = p.rotary_interleaved ? 2 * m + 1 : m + p.rotary_dim / 2;
}

// The table row of a position (clamped: validation rejects positions past the tables).
FLASHJIT_FN long long rotary_row(const FwdParams& p, long long pos) {
  return pos < 0 ? 0 : (pos >= p.seqlen_ro ? p.seqlen_ro - 1 : pos);
}

// Position of query i of a sequence: base + i for causal / local masks, base otherwise (spec 4.1).
template <class Cfg>
FLASHJIT_FN long long rotary_query_pos(int rotary_base, int i) {
  return Cfg::kCausal || Cfg::kLocal ? (long long)rotary_base + i : rotary_base;
}

}  // namespace flashjit_kernel
