// The validated, layout-normalized form of one attention call, produced by either entry point
// (api_varlen.cpp, api_kvcache.cpp) and consumed by the backends.
#pragma once

#include <cstdint>
#include <optional>

#include "flashjit/flashjit.h"

namespace flashjit {

struct AttentionProblem {
  // q/out: (b, s_q, h, d) padded or (total_q, h, d) varlen. k/v: (b_k, s_k, h_k, d) contiguous
  // cache, (num_pages, page_size, h_k, d) paged, or (total_k, h_k, d) varlen.
  Tensor q, k, v, out;
  OptionalTensor lse;  // (b, h, s_q) padded or (h, total_q) varlen; absent = not written
  bool varlen_q = false, varlen_k = false, paged = false;
  const int32_t* cu_seqlens_q = nullptr;
  const int32_t* seqused_q = nullptr;
  const int32_t* cu_seqlens_k = nullptr;
  const int32_t* seqused_k = nullptr;
  const int32_t* cache_batch_idx = nullptr;
  const int32_t* page_table = nullptr;
  int64_t page_table_stride = 0;
  int max_pages = 0, page_size = 1, num_pages = 0;
  int cache_rows = 0;  // b_k: rows of the cache or page table
  int64_t total_k = 0;
  int64_t total_q = 0;
  int batch = 0, seqlen_q = 0, seqlen_k = 0;  // seqlen_*: padded sizes or max_seqlen_*
  int num_heads = 0, num_heads_k = 0, head_dim = 0, head_dim_v = 0;
  bool causal = false;
  int window_left = -1, window_right = -1, attention_chunk = 0;
  double softcap = 0;
  double softmax_scale = 0;
  OptionalTensor sinks;
  std::optional<bool> pack_gqa;
  ExecOptions options;
};

// Runs the problem on the device of q. Writes out (and lse).
void run_attention(const AttentionProblem& problem);

// Validation mode: checks index values (monotone cu_seqlens within the tensors, seqused within
// their sequences, cache_seqlens within capacity, page ids and batch indices in range).
void validate_index_values(const AttentionProblem& problem);

// CUDA problems: every pointer is device memory of q's device, and rows are aligned for 16-byte
// copies (data and strides other than the last a multiple of 16 bytes; out of 4 bytes).
void check_cuda_problem(const AttentionProblem& problem);
// validate_index_values for a CUDA problem: copies the index tensors to the host first (this
// synchronizes, which is why validation is a mode).
void validate_index_values_on_host(const AttentionProblem& problem);

}  // namespace flashjit
