// Where a CTA of the CUDA forward kernel works (flash_fwd.cuh): its sequence, rows, heads and
// split of the keys, from the grid coordinates and the call's lengths.
#pragma once

#include "flashjit/attention_math.h"
#include "flashjit/fwd_params.h"

namespace flashjit_cuda {

using flashjit_kernel::causal_tile_order;
using flashjit_kernel::FwdParams;
using flashjit_kernel::KeyInterval;
using flashjit_kernel::Sequence;
using flashjit_kernel::sequence;
using flashjit_kernel::visible_keys;

// Where a CTA's rows and keys are.
struct Tile {
  int b, kv_b, hg, hk, lq, lk, m0, nrows;
  int lk_old;            // keys [lk_old, lk) are the ones this call appends
  int rotary_base;       // rotary position of query 0
  int full_lo, full_hi;  // keys [full_lo, full_hi) are visible to every row of the tile
  long long q_base, o_base, lse_base, k_row0;
  long long k_base, v_base;  // contiguous K/V: offsets of key 0 of the tile's head
};

// Split-KV: which of num_splits key ranges this CTA visits (grid x = m block x num_splits +
// split). NOTE: recomputed where needed rather than kept, as are the accumulator rows below:
// registers are what limits the decode tiles.
template <class Cfg>
__device__ __forceinline__ int tile_split(const FwdParams& p) {
  return Cfg::kSplitKV ? (int)(blockIdx.x % p.num_splits) : 0;
}

template <class Cfg>
__device__ __forceinline__ bool locate(const FwdParams& p, Tile& t) {
  // Grid (row blocks [x splits], head groups, batch). Row blocks run last to first: under causal
  // masks (bottom-right) the last rows see the most keys. With causal masks the grid is ordered
  // so within each of p.causal_sections runs of (sequence, head group) slots, about a wave of
  // tiles each (codegen/tile_config.h): longest tiles first across the section, which keeps its
  // last tiles short, while the section's K/V is read from DRAM about once.
  int m_block;
  if constexpr (Cfg::kCausal && !Cfg::kSplitKV) {
    int slot;
    causal_tile_order(blockIdx.x + gridDim.x * (blockIdx.y + gridDim.y * blockIdx.z),
                      gridDim.y * gridDim.z, p.num_m_blocks, p.causal_sections, m_block, slot);
    t.hg = slot % gridDim.y;
    t.b = slot / gridDim.y;
  } else {
    m_block =
        p.num_m_blocks - 1 - (Cfg::kSplitKV ? (int)(blockIdx.x / p.num_splits) : (int)blockIdx.x);
    t.hg = blockIdx.y;
    t.b = blockIdx.z;
  }
  const Sequence s = sequence<Cfg>(p, t.b);
  t.lq = s.lq;
  t.lk = s.lk;
  t.lk_old = s.lk_old;
  t.kv_b = s.kv_b;
  t.k_row0 = s.k_row0;
  t.rotary_base = s.rotary_base;
  const int g = Cfg::kPackGqa ? p.group : 1;
  t.m0 = m_block * Cfg::kBlockM;
  const long long rows = (long long)t.lq * g;
  if (t.m0 >= rows) return false;
  t.nrows = rows - t.m0 < Cfg::kBlockM ? (int)(rows - t.m0) : Cfg::kBlockM;
  t.hk = Cfg::kPackGqa ? t.hg : t.hg / p.group;
  t.q_base = t.b * p.q_batch_stride + s.q_row0 * p.q_row_stride;
  t.o_base = t.b * p.o_batch_stride + s.q_row0 * p.o_row_stride;
  t.lse_base = t.b * p.lse_batch_stride + s.q_row0 * p.lse_row_stride;
  t.k_base = t.kv_b * p.k_batch_stride + t.k_row0 * p.k_row_stride + t.hk * p.k_head_stride;
  t.v_base = t.kv_b * p.v_batch_stride + t.k_row0 * p.v_row_stride + t.hk * p.v_head_stride;
  return true;
}

// Query index and query head of row r of the tile.
template <class Cfg>
__device__ __forceinline__ void row_coords(const FwdParams& p, const Tile& t, int r, int& i,
                                           int& hq) {
  if constexpr (Cfg::kPackGqa) {
    i = (t.m0 + r) / p.group;
    hq = t.hg * p.group + (t.m0 + r) % p.group;
  } else {
    i = t.m0 + r;
    hq = t.hg;
  }
}

}  // namespace flashjit_cuda
