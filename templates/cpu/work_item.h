// Where a CPU work item's rows, heads and keys live: one work item is (sequence, a chunk of
// kBlockH head groups, a block of kBlockM query rows). All head groups of a chunk share the rows'
// positions, so they share masks and key blocks and differ only by a head offset.
#pragma once

#include "flashjit/cpu/masks.h"
#include "flashjit/fwd_params.h"

namespace flashjit_cpu {

struct WorkItem {
  int b, kv_b;
  int split;        // split-KV: which of num_splits key ranges (0 without)
  int rotary_base;  // rotary position of query 0
  int hg0, nheads;  // head groups [hg0, hg0 + nheads)
  int lq, lk;
  int m0, nrows;
  long long q_base, o_base, lse_base, k_row0;
  long long acc_row0;  // split-KV: accumulator row of query 0 (before x h)
};

// Work item w: ((b * num_head_chunks + chunk) * num_m_blocks + m block) * num_splits + split.
template <class Cfg>
inline bool locate(const FwdParams& p, long long w, WorkItem& it) {
  it.split = 0;
  if constexpr (Cfg::kSplitKV) {
    it.split = (int)(w % p.num_splits);
    w /= p.num_splits;
  }
  const int mb = (int)(w % p.num_m_blocks);
  const long long t = w / p.num_m_blocks;
  const int chunk = (int)(t % p.num_head_chunks);
  it.b = (int)(t / p.num_head_chunks);
  it.hg0 = chunk * Cfg::kBlockH;
  it.nheads = p.num_head_groups - it.hg0 < Cfg::kBlockH ? p.num_head_groups - it.hg0 : Cfg::kBlockH;
  const Sequence s = sequence<Cfg>(p, it.b);
  it.lq = s.lq;
  it.lk = s.lk;
  it.kv_b = s.kv_b;
  it.k_row0 = s.k_row0;
  it.acc_row0 = s.acc_row0;
  it.rotary_base = s.rotary_base;
  const int g = Cfg::kPackGqa ? p.pack_heads : 1;
  it.m0 = mb * Cfg::kBlockM;
  const long long rows = (long long)it.lq * g;
  if (it.m0 >= rows || it.nheads <= 0) return false;
  it.nrows = rows - it.m0 < Cfg::kBlockM ? (int)(rows - it.m0) : Cfg::kBlockM;
  it.q_base = it.b * p.q_batch_stride + s.q_row0 * p.q_row_stride;
  it.o_base = it.b * p.o_batch_stride + s.q_row0 * p.o_row_stride;
  it.lse_base = it.b * p.lse_batch_stride + s.q_row0 * p.lse_row_stride;
  return true;
}

// KV head of head group hg (group / pack_heads head groups a KV head with packing).
template <class Cfg>
inline int kv_head(const FwdParams& p, int hg) {
  return Cfg::kPackGqa ? hg * p.pack_heads / p.group : hg / p.group;
}

// Query index and query head of row r of head group hg.
template <class Cfg>
inline void row_coords(const FwdParams& p, const WorkItem& it, int hg, int r, int& i, int& hq) {
  if constexpr (Cfg::kPackGqa) {
    i = (it.m0 + r) / p.pack_heads;
    hq = hg * p.pack_heads + (it.m0 + r) % p.pack_heads;
  } else {
    i = it.m0 + r;
    hq = hg;
  }
}

// Row pointers of keys [n0, n0 + nb) of KV head hk in K and V. A paged cache walks its pages with
// one division per block instead of one per key.
template <class Cfg, typename T>
__attribute__((noinline)) void gather_rows(const FwdParams& p, const WorkItem& it, int hk, int n0,
                                           int nb, const T** krows, const T** vrows) {
  const T* k = (const T*)p.k + hk * p.k_head_stride;
  const T* v = (const T*)p.v + hk * p.v_head_stride;
  if constexpr (Cfg::kPagedKV) {
    const int* table = p.page_table + it.kv_b * p.page_table_stride;
    const long long pos = it.k_row0 + n0;  // storage row (past any left padding)
    int slot = (int)(pos % p.page_size), entry = (int)(pos / p.page_size);
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

}  // namespace flashjit_cpu
