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

// Sequence b's rows: queries [q_row0, q_row0 + lq) of q/out, keys [0, lk) of cache row kv_b (from
// row k_row0 of a packed k/v). Index values are clamped so that bad ones never read out of
// bounds (validation mode rejects them before the kernel runs).
struct Sequence {
  int lq, lk, kv_b;
  long long q_row0, k_row0;
};

template <class Cfg>
FLASHJIT_FN Sequence sequence(const FwdParams& p, int b) {
  Sequence s;
  s.q_row0 = 0;
  s.lq = p.seqlen_q;
  if constexpr (Cfg::kVarlenQ) {
    s.q_row0 = p.cu_seqlens_q[b];
    s.lq = p.cu_seqlens_q[b + 1] - p.cu_seqlens_q[b];
    if (p.seqused_q && p.seqused_q[b] < s.lq) s.lq = p.seqused_q[b];
    if (s.lq < 0) s.lq = 0;
  }
  s.kv_b = b;
  if (p.cache_batch_idx) {
    const int r = p.cache_batch_idx[b];
    s.kv_b = r < 0 ? 0 : (r >= p.cache_rows ? p.cache_rows - 1 : r);
  }
  s.k_row0 = 0;
  long long capacity = p.seqlen_k;
  if constexpr (Cfg::kVarlenK) {
    s.k_row0 = p.cu_seqlens_k[b];
    capacity = (long long)p.cu_seqlens_k[b + 1] - s.k_row0;
    if (s.k_row0 < 0) s.k_row0 = 0;
    if (s.k_row0 + capacity > p.total_k) capacity = p.total_k - s.k_row0;
  }
  long long lk = capacity;
  if constexpr (Cfg::kSequsedK) {
    lk = p.seqused_k[b];
    if (lk > capacity) lk = capacity;
  }
  s.lk = lk < 0 ? 0 : (int)lk;
  return s;
}

}  // namespace flashjit_kernel
