// The validated, layout-normalized form of one attention call, produced by either entry point
// (api_varlen.cpp, api_kvcache.cpp) and consumed by the backends.
#pragma once

#include <cstdint>
#include <optional>

#include "flashjit/flashjit.h"
#include "flashjit/kernel_key.h"
#include "runtime/launch_shapes.h"
#include "templates/fwd_params.h"

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
  // KV append (kvcache only): new rows of sequence b go to rows [seqused_k[b], + Lnew).
  OptionalTensor k_new, v_new;  // (b, s_new, h_k, d) or (total_new, h_k, d) with cu_seqlens_k_new
  const int32_t* cu_seqlens_k_new = nullptr;
  int seqlen_new = 0;  // s_new, or total_new with cu_seqlens_k_new
  const int32_t* leftpad_k = nullptr;
  OptionalTensor rotary_cos, rotary_sin;  // (seqlen_ro, rotary_dim / 2)
  const int32_t* rotary_seqlens = nullptr;
  int rotary_dim = 0;
  bool rotary_interleaved = true;
  int num_splits = 1;  // as requested: <= 0 = heuristic
  int sm_margin = 0;
  ExecOptions options;
};

// A problem resolved to what runs: kernel key, parameters, launch shapes, workspace size. Fixed
// by the static shapes (and the device), so a plan can hold one and relaunch it.
struct PreparedCall {
  enum class Kind { kNothing, kEmptyKeys, kKernel };
  Kind kind = Kind::kNothing;
  bool on_cuda = false;
  int device = 0;
  KernelKey key;
  flashjit_kernel::FwdParams params{};  // workspace pointers unset
  CpuLaunch cpu;
  CudaLaunch cuda;
  size_t workspace_bytes = 0;  // split-KV partials
};

// Checks the problem (and its index values in validation mode) and resolves it. No compile.
PreparedCall prepare_attention(const AttentionProblem& problem);
// Compiles or loads the kernel of a prepared call (CUDA: on the current context).
void load_prepared(const PreparedCall& call, void* stream);
// Launches a prepared call for `problem` (which must have prepared into it) with `workspace` of
// call.workspace_bytes (device memory on CUDA): no allocation, no host synchronization.
void launch_prepared(const AttentionProblem& problem, const PreparedCall& call, void* workspace);

// Runs the problem on the device of q. Writes out (and lse).
void run_attention(const AttentionProblem& problem);

// The mask of a call as its kernel applies it.
struct MaskSpec {
  bool causal = false, local = false;
  int left = flashjit_kernel::kUnbounded, right = flashjit_kernel::kUnbounded;
};
// Spec section 3.3: sides wider than the static lengths are unbounded; causal is the window
// (left, 0); what is left is causal, local (window and/or chunk) or nothing.
MaskSpec normalize_mask(const AttentionProblem& problem);

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
