// The run-time parameters of an attention kernel: one POD shared by the host runtime (g++), the
// CPU kernels (clang, freestanding) and the CUDA kernels (NVRTC, passed by value). Plain C types
// only, no headers.
#pragma once

#define FLASHJIT_CPU_ABI_VERSION 6

namespace flashjit_kernel {

// A window side that is unbounded.
constexpr int kUnbounded = 1 << 30;

// Encodings of FwdParams::sinks_dtype.
constexpr int kSinksFloat32 = 0;
constexpr int kSinksBFloat16 = 1;
constexpr int kSinksFloat16 = 2;

struct FwdParams {
  // Tensors. Strides are in elements. q/out rows: padded (b, s_q, h, d) or packed (total_q, h, d).
  const void* q;
  const void* k;
  const void* v;
  void* out;
  float* lse;  // null when no LSE is written
  long long q_batch_stride, q_row_stride, q_head_stride;
  long long k_batch_stride, k_row_stride, k_head_stride;  // paged: batch stride = page stride
  long long v_batch_stride, v_row_stride, v_head_stride;
  long long o_batch_stride, o_row_stride, o_head_stride;
  long long lse_batch_stride, lse_head_stride, lse_row_stride;
  // Index tensors (int32, contiguous); null when absent.
  const int* cu_seqlens_q;     // (b + 1): query rows of sequence i are [cu[i], cu[i+1])
  const int* seqused_q;        // (b): rows actually computed per sequence
  const int* cu_seqlens_k;     // (b + 1)
  const int* seqused_k;        // (b): keys per sequence (cache_seqlens)
  const int* cache_batch_idx;  // (b): cache row (or page-table row) of each sequence
  const int* page_table;       // (b_k, max_pages)
  long long page_table_stride;
  const void* sinks;  // (h): sink logit per query head, natural-log units, of dtype sinks_dtype
  int sinks_dtype;    // kSinksFloat32, kSinksBFloat16 or kSinksFloat16
  // KV cache: keys of sequence b are stored from row leftpad_k[b]; the Lk0 = seqused_k[b] -
  // leftpad_k[b] old keys are followed by the Lnew appended ones (k_new / v_new, written at rows
  // [seqused_k[b], seqused_k[b] + Lnew) by the append entry before attention reads them).
  const int* leftpad_k;         // (b) or null
  const void* k_new;            // (b, s_new, h_k, d) or (total_new, h_k, d); null = no append
  const void* v_new;            // (b, s_new, h_k, dv) or (total_new, h_k, dv)
  const int* cu_seqlens_k_new;  // (b + 1) or null: new keys of sequence b are rows [cu[b], cu[b+1])
  long long kn_batch_stride, kn_row_stride, kn_head_stride;
  long long vn_batch_stride, vn_row_stride, vn_head_stride;
  int seqlen_new;  // s_new (padded new keys), or the rows of k_new with cu_seqlens_k_new
  // Rotary embedding of new keys (stored rotated) and of queries: tables (seqlen_ro, rotary_dim/2)
  // of the q dtype; position base rotary_seqlens[b] (or seqused_k[b]); query row i at base + i
  // when the mask is causal or local, else at base.
  const void* rotary_cos;
  const void* rotary_sin;
  const int* rotary_seqlens;  // (b) or null
  int rotary_dim;             // 0 = off; a multiple of 16
  int seqlen_ro;
  int rotary_interleaved;  // pairs (2m, 2m + 1); else GPT-NeoX pairs (m, m + rotary_dim / 2)
  // Split-KV: split s of a tile visits its key blocks [s * per, (s + 1) * per), per =
  // ceil(blocks / num_splits), and writes fp32 partials: out_accum[(s * accum_rows + a) * dv + c]
  // and lse_accum[s * accum_rows + a] (natural log) for accumulator row a = (q row) * h + hq, where
  // q row is b * s_q + i (padded) or the packed row. The combine entry merges them into out / lse.
  float* out_accum;
  float* lse_accum;
  long long accum_rows;
  int num_splits;
  // Sizes.
  int batch;
  int seqlen_q;  // padded length, or max_seqlen_q with cu_seqlens_q
  int seqlen_k;  // capacity of one sequence: s_k, max_pages * page_size, or max_seqlen_k
  int num_heads;
  int num_heads_k;
  int group;  // num_heads / num_heads_k
  // GQA packing: query heads of one KV head packed into a head group (divides group; group, but
  // fewer on the CPU where that gives 4-row decode tiles). 1 without packing.
  int pack_heads;
  int page_size;
  int max_pages;      // page_table columns
  int num_pages;      // pages in the cache, for clamping
  int cache_rows;     // rows of the cache / page table (b_k), for clamping cache_batch_idx
  int total_k;        // rows of a varlen k, for clamping
  long long total_q;  // rows of a packed q / out, for clamping cu_seqlens_q
  int num_m_blocks;   // per (batch, head group)
  // Causal CUDA grids run longest tiles first within each of this many sections of (batch, head
  // group) slots, about a wave of tiles each (tile_coords.cuh, codegen/tile_config.h).
  int causal_sections;
  int num_head_groups;  // num_heads / pack_heads with GQA packing, else num_heads
  int num_head_chunks;  // ceil(num_head_groups / block_h): work items per (batch, row block)
  // Mask: visible keys of query i are [i + d - left, i + d + right] (d = Lk - Lq), intersected with
  // the chunk of i + d. kUnbounded for an open side.
  int window_left;
  int window_right;
  int chunk;  // 0 = off
  // Scores: s = (q . k) * score_scale; with softcap s = tanh(s) * softcap_log2. s is in log2 units.
  float score_scale;
  float softcap_log2;
};

}  // namespace flashjit_kernel
