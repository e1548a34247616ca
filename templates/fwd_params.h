// The run-time parameters of an attention kernel: one POD shared by the host runtime (g++), the
// CPU kernels (clang, freestanding) and the CUDA kernels (NVRTC, passed by value). Plain C types
// only, no headers.
#pragma once

#define FLASHJIT_CPU_ABI_VERSION 4

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
  // Sizes.
  int batch;
  int seqlen_q;  // padded length, or max_seqlen_q with cu_seqlens_q
  int seqlen_k;  // capacity of one sequence: s_k, max_pages * page_size, or max_seqlen_k
  int num_heads;
  int num_heads_k;
  int group;  // num_heads / num_heads_k
  int page_size;
  int max_pages;        // page_table columns
  int num_pages;        // pages in the cache, for clamping
  int cache_rows;       // rows of the cache / page table (b_k), for clamping cache_batch_idx
  int total_k;          // rows of a varlen k, for clamping
  int num_m_blocks;     // per (batch, head group)
  int num_head_groups;  // num_heads_k with GQA packing, else num_heads
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
