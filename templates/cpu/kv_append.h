// KV-cache append for the CPU: new keys (rotated when the key has rotary) and values are written at
// rows [seqused_k[b], seqused_k[b] + Lnew) of their cache row before attention reads the cache.
// Also the rotation of one row, shared with the queries.
#pragma once

#include "flashjit/cpu/masks.h"
#include "flashjit/cpu/simd.h"
#include "flashjit/fwd_params.h"

namespace flashjit_cpu {

// dst = src (d elements) with the rotary pairs of position `pos` rotated in fp32 (spec 4.1).
template <typename T>
inline void rotate_row(const FwdParams& p, const T* src, T* dst, int d, long long pos) {
  __builtin_memcpy(dst, src, sizeof(T) * d);
  const long long row = flashjit_kernel::rotary_row(p, pos) * (p.rotary_dim / 2);
  const T* cos = (const T*)p.rotary_cos + row;
  const T* sin = (const T*)p.rotary_sin + row;
  for (int m = 0; m < p.rotary_dim / 2; ++m) {
    int c0, c1;
    flashjit_kernel::rotary_columns(p, m, c0, c1);
    const float x = to_float(src[c0]), y = to_float(src[c1]);
    const float c = to_float(cos[m]), s = to_float(sin[m]);
    dst[c0] = from_float<T>(x * c - y * s);
    dst[c1] = from_float<T>(x * s + y * c);
  }
}

// Element offset of storage row `pos` of cache row kv_b (paged: through the page table, clamped).
template <class Cfg>
inline long long cache_row_offset(const FwdParams& p, int kv_b, long long pos,
                                  long long batch_stride, long long row_stride) {
  if constexpr (Cfg::kPagedKV) {
    int page = p.page_table[kv_b * p.page_table_stride + pos / p.page_size];
    page = page < 0 ? 0 : (page >= p.num_pages ? p.num_pages - 1 : page);
    return page * batch_stride + (pos % p.page_size) * row_stride;
  } else {
    return kv_b * batch_stride + pos * row_stride;
  }
}

// Work item w = (sequence b, KV head hk): every new key and value of that head.
template <class Cfg>
void append_kv(const FwdParams& p, long long begin, long long end) {
  using T = typename Cfg::ElementKV;
  constexpr int D = Cfg::kHeadDimQK, DV = Cfg::kHeadDimV;
  for (long long w = begin; w < end; ++w) {
    const int b = (int)(w / p.num_heads_k), hk = (int)(w % p.num_heads_k);
    const Sequence s = sequence<Cfg>(p, b);
    for (int t = 0; t < s.lnew; ++t) {
      const long long pos = s.k_row0 + s.lk_old + t;  // storage row in the cache row
      T* k = (T*)p.k + cache_row_offset<Cfg>(p, s.kv_b, pos, p.k_batch_stride, p.k_row_stride) +
             hk * p.k_head_stride;
      T* v = (T*)p.v + cache_row_offset<Cfg>(p, s.kv_b, pos, p.v_batch_stride, p.v_row_stride) +
             hk * p.v_head_stride;
      const long long row = s.new_row0 + t;
      const T* kn =
          (const T*)p.k_new + b * p.kn_batch_stride + row * p.kn_row_stride + hk * p.kn_head_stride;
      const T* vn =
          (const T*)p.v_new + b * p.vn_batch_stride + row * p.vn_row_stride + hk * p.vn_head_stride;
      if constexpr (Cfg::kRotary) {
        rotate_row(p, kn, k, D, (long long)s.rotary_base + t);
      } else {
        __builtin_memcpy(k, kn, sizeof(T) * D);
      }
      __builtin_memcpy(v, vn, sizeof(T) * DV);
    }
  }
}

}  // namespace flashjit_cpu
