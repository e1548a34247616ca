// KV-cache append for NVIDIA GPUs: new keys (rotated when the key has rotary) and values are
// written at rows [seqused_k[b], seqused_k[b] + Lnew) of their cache row, one launch before the
// attention kernel reads the cache. Also the rotation of one 16-byte chunk, shared with the query
// tile.
#pragma once

#include "flashjit/attention_math.h"
#include "flashjit/cuda/ptx.cuh"
#include "flashjit/fwd_params.h"

namespace flashjit_cuda {

using flashjit_kernel::FwdParams;

// Eight 16-bit elements: one 16-byte load or store (rows are 16-byte aligned, checked on the host).
struct __align__(16) Chunk {
  u16 e[8];
};

__device__ __forceinline__ Chunk load_chunk(const u16* p) {
  return *reinterpret_cast<const Chunk*>(p);
}
// One 16-byte store: the struct copy compiled to eight 2-byte stores (NVRTC 13).
__device__ __forceinline__ void store_chunk(u16* p, const Chunk& c) {
  u32 w[4];
#pragma unroll
  for (int i = 0; i < 4; ++i) w[i] = (u32)c.e[2 * i] | (u32)c.e[2 * i + 1] << 16;
  asm volatile("st.v4.b32 [%0], {%1, %2, %3, %4};\n"
               :
               : "l"(p), "r"(w[0]), "r"(w[1]), "r"(w[2]), "r"(w[3])
               : "memory");
}

// Rotary of the 16-byte chunk `ch` of a row at `pos` (spec 4.1), in fp32. Interleaved pairs lie
// inside a chunk; a GPT-NeoX chunk of the first half pairs with the chunk rotary_dim / 16 further,
// which is rotated alongside (`hi`). Returns false for chunks past rotary_dim and for chunks of the
// second NeoX half (their partner writes them).
template <bool kBf16>
__device__ __forceinline__ bool rotate_chunk(const FwdParams& p, long long pos, int ch, Chunk& lo,
                                             Chunk& hi) {
  const int rd = p.rotary_dim;
  if (ch * 8 >= rd || (!p.rotary_interleaved && ch * 8 >= rd / 2)) return false;
  const long long row = flashjit_kernel::rotary_row(p, pos) * (rd / 2);
  const u16* cos = (const u16*)p.rotary_cos + row;
  const u16* sin = (const u16*)p.rotary_sin + row;
  if (p.rotary_interleaved) {
#pragma unroll
    for (int k = 0; k < 4; ++k) {
      const int m = ch * 4 + k;
      const float x = to_float<kBf16>(lo.e[2 * k]), y = to_float<kBf16>(lo.e[2 * k + 1]);
      const float c = to_float<kBf16>(cos[m]), s = to_float<kBf16>(sin[m]);
      const u32 r = pack2<kBf16>(x * c - y * s, x * s + y * c);
      lo.e[2 * k] = (u16)(r & 0xffff);
      lo.e[2 * k + 1] = (u16)(r >> 16);
    }
  } else {
#pragma unroll
    for (int k = 0; k < 8; ++k) {
      const int m = ch * 8 + k;
      const float x = to_float<kBf16>(lo.e[k]), y = to_float<kBf16>(hi.e[k]);
      const float c = to_float<kBf16>(cos[m]), s = to_float<kBf16>(sin[m]);
      const u32 r = pack2<kBf16>(x * c - y * s, x * s + y * c);
      lo.e[k] = (u16)(r & 0xffff);
      hi.e[k] = (u16)(r >> 16);
    }
  }
  return true;
}

// CTA (x, hk, b) writes new keys x, x + gridDim.x, ... of KV head hk of sequence b.
template <class Cfg>
__device__ __forceinline__ void append_kv(const FwdParams& p) {
  constexpr int D = Cfg::kHeadDimQK, DV = Cfg::kHeadDimV;
  constexpr int kChunksK = D / 8, kChunksV = DV / 8;
  grid_launch_dependents();  // the attention kernel may start; it waits before reading K / V
  const int b = blockIdx.z, hk = blockIdx.y;
  const flashjit_kernel::Sequence s = flashjit_kernel::sequence<Cfg>(p, b);
  u16* k = (u16*)p.k;
  u16* v = (u16*)p.v;
  const u16* kn = (const u16*)p.k_new;
  const u16* vn = (const u16*)p.v_new;
  for (int t = blockIdx.x; t < s.lnew; t += gridDim.x) {
    const long long pos = s.k_row0 + s.lk_old + t;  // storage row in the cache row
    long long k_ofs, v_ofs;
    if constexpr (Cfg::kPagedKV) {
      int page = p.page_table[s.kv_b * p.page_table_stride + pos / p.page_size];
      page = page < 0 ? 0 : (page >= p.num_pages ? p.num_pages - 1 : page);
      const long long slot = pos % p.page_size;
      k_ofs = page * p.k_batch_stride + slot * p.k_row_stride;
      v_ofs = page * p.v_batch_stride + slot * p.v_row_stride;
    } else {
      k_ofs = s.kv_b * p.k_batch_stride + pos * p.k_row_stride;
      v_ofs = s.kv_b * p.v_batch_stride + pos * p.v_row_stride;
    }
    k_ofs += hk * p.k_head_stride;
    v_ofs += hk * p.v_head_stride;
    const long long row = s.new_row0 + t;
    const u16* ksrc = kn + b * p.kn_batch_stride + row * p.kn_row_stride + hk * p.kn_head_stride;
    const u16* vsrc = vn + b * p.vn_batch_stride + row * p.vn_row_stride + hk * p.vn_head_stride;
    for (int ch = threadIdx.x; ch < kChunksK; ch += blockDim.x) {
      Chunk lo = load_chunk(ksrc + ch * 8), hi;
      if constexpr (Cfg::kRotary) {
        if (ch * 8 < p.rotary_dim) {
          const int partner = ch + p.rotary_dim / 16;
          if (!p.rotary_interleaved && ch * 8 < p.rotary_dim / 2)
            hi = load_chunk(ksrc + partner * 8);
          if (rotate_chunk<Cfg::kBf16>(p, (long long)s.rotary_base + t, ch, lo, hi)) {
            store_chunk(k + k_ofs + ch * 8, lo);
            if (!p.rotary_interleaved) store_chunk(k + k_ofs + partner * 8, hi);
          }
          continue;
        }
      }
      store_chunk(k + k_ofs + ch * 8, lo);
    }
    for (int ch = threadIdx.x; ch < kChunksV; ch += blockDim.x)
      store_chunk(v + v_ofs + ch * 8, load_chunk(vsrc + ch * 8));
  }
}

}  // namespace flashjit_cuda
