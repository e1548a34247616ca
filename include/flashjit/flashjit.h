// flashjit's public C++ API: FlashAttention forward with the parameters of SGLang's
// sgl_kernel.flash_attn_varlen_func and flash_attn_with_kvcache (FA3), JIT-compiled per kernel key.
// Field names are the upstream parameter names; shapes are given per field. The caller owns every
// buffer, including `out` and `softmax_lse`.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "flashjit/error.h"
#include "flashjit/tensor.h"

namespace flashjit {

// Options that are not attention parameters.
struct ExecOptions {
  // Check index values (page ids, cache_seqlens against capacity, monotone cu_seqlens, batch
  // indices) before running, for CUDA calls (this copies them to the host and synchronizes the
  // stream; without it the kernels clamp bad values instead). Also on when FLASHJIT_VALIDATE=1.
  // CPU calls always check them.
  bool validate = false;
  // CPU threads for this call; 0 = the pool's size (FLASHJIT_NUM_THREADS or the machine's cores).
  int num_threads = 0;
  // CUDA stream (CUstream) for CUDA calls; ignored on CPU.
  void* stream = nullptr;
};

// Notation: b batch, s_q query length, h query heads, h_k KV heads, d QK head dim, dv V head dim.
struct VarlenArgs {
  Tensor q;             // (total_q, h, d)
  Tensor k;             // (total_k, h_k, d)
  Tensor v;             // (total_k, h_k, dv)
  Tensor cu_seqlens_q;  // (b + 1,) int32, contiguous, cu_seqlens_q[0] == 0, non-decreasing
  Tensor cu_seqlens_k;  // (b + 1,) int32, contiguous
  std::optional<int> max_seqlen_q;      // required: an upper bound of the query lengths
  std::optional<int> max_seqlen_k;      // required: an upper bound of the key lengths
  OptionalTensor seqused_q;             // (b,) int32: rows used per sequence (rest left unwritten)
  OptionalTensor seqused_k;             // (b,) int32: keys used per sequence
  OptionalTensor page_table;            // not supported with cu_seqlens_k (as FA3)
  std::optional<double> softmax_scale;  // default 1/sqrt(d)
  bool causal = false;
  OptionalTensor qv;                               // not supported yet
  OptionalTensor q_descale, k_descale, v_descale;  // fp8 only: not supported yet
  std::array<int, 2> window_size{-1, -1};          // (left, right); -1 = unbounded
  int attention_chunk = 0;                         // 0 = off
  double softcap = 0.0;                            // > 0 enables
  int num_splits = 1;                              // 1; <= 0: heuristic; n: at most n splits
  std::optional<bool> pack_gqa;                    // layout choice only; no effect on math
  int sm_margin = 0;                               // CUDA only
  bool return_softmax_lse = false;
  OptionalTensor sinks;                  // (h,) bf16 / fp16 / fp32: per-head sink logit
  std::optional<std::string> score_mod;  // not supported yet
  Tensor out;                            // (total_q, h, dv), dtype of q (bf16 for fp8)
  OptionalTensor softmax_lse;            // (h, total_q) fp32; required when return_softmax_lse
  ExecOptions options{};
};

struct KvcacheArgs {
  Tensor q;        // (b, s_q, h, d), or (total_q, h, d) with cu_seqlens_q
  Tensor k_cache;  // (b_k, s_k, h_k, d), or paged (num_pages, page_size, h_k, d)
  Tensor v_cache;  // (b_k, s_k, h_k, dv), or paged (num_pages, page_size, h_k, dv)
  // New keys / values appended at rows [cache_seqlens[b], + s_new) before attention (needs
  // cache_seqlens, which is not incremented): (b, s_new, h_k, d / dv), or (total_k_new, h_k, d /
  // dv) with cu_seqlens_k_new. As in FA3, the rows a sequence appends must not hold another
  // sequence's keys (through cache_batch_idx or shared pages): sequences read their old keys
  // while others append.
  OptionalTensor k, v;
  OptionalTensor qv;  // not supported yet
  // (seqlen_ro, rotary_dim / 2), dtype of q: rotary of new keys (stored rotated) and of q.
  OptionalTensor rotary_cos, rotary_sin;
  OptionalTensor cache_seqlens;     // (b,) int32: keys per sequence (default: s_k for all)
  OptionalTensor cache_batch_idx;   // (b,) int32: cache row of each sequence
  OptionalTensor cache_leftpad;     // (b,) int32: keys start at this row (needs cache_seqlens)
  OptionalTensor page_table;        // (b_k, max_pages_per_seq) int32, unit last stride
  OptionalTensor cu_seqlens_q;      // (b + 1,) int32
  OptionalTensor cu_seqlens_k_new;  // (b + 1,) int32: ragged new keys (with k / v)
  std::optional<int> max_seqlen_q;  // required with cu_seqlens_q
  OptionalTensor
      rotary_seqlens;  // (b,) int32: rotary position of key / query 0 (default cache_seqlens)
  OptionalTensor q_descale, k_descale, v_descale;  // fp8 only: not supported yet
  std::optional<double> softmax_scale;             // default 1/sqrt(d)
  bool causal = false;
  std::array<int, 2> window_size{-1, -1};
  int attention_chunk = 0;
  double softcap = 0.0;
  bool rotary_interleaved = true;
  OptionalTensor scheduler_metadata;  // not supported yet
  int num_splits = 0;                 // <= 0: heuristic; 1: no split; n: at most n key splits
  std::optional<bool> pack_gqa;
  int sm_margin = 0;
  bool return_softmax_lse = false;
  OptionalTensor sinks;
  std::optional<std::string> score_mod;  // not supported yet
  Tensor out;                            // (b, s_q, h, dv) or (total_q, h, dv)
  OptionalTensor softmax_lse;            // (b, h, s_q), or (h, total_q) with cu_seqlens_q; fp32
  ExecOptions options{};
};

// Runs attention over packed variable-length sequences. Writes `out` (and `softmax_lse`).
void flash_attn_varlen(const VarlenArgs& args);

// Runs attention of `q` against a (paged or contiguous) KV cache. Writes `out` (and `softmax_lse`).
void flash_attn_with_kvcache(const KvcacheArgs& args);

// Partial attention results over disjoint key sets of the same queries (cascade attention,
// context parallelism across GPUs, split-KV done by hand), merged by their LSE:
// out = sum_s exp(lse_s - lse) out_s and lse = log sum_s exp(lse_s). A state whose LSE is -inf
// (no visible key) or +inf (what an empty-key call returns) contributes nothing; a row no state
// covers gets out 0 and LSE -inf. LSEs are tensors with any strides, so the (h, total_q) LSE of
// a varlen call is passed as its transposed (total_q, h) view.
struct MergeStatesArgs {
  std::vector<Tensor> outs;  // 1 to 16 states, each (n, h, dv): one of fp32, fp16, bf16
  std::vector<Tensor> lses;  // one per state, (n, h) fp32, natural log
  Tensor out;                // (n, h, dv): fp32, fp16 or bf16
  OptionalTensor lse;        // (n, h) fp32, optional
  ExecOptions options{};
};
void merge_states(const MergeStatesArgs& args);

// A call planned ahead from its static shapes, for CUDA graphs and for serving loops: the plan
// fixes the kernel (compiled or loaded when the plan is made), the launch grid, num_splits and the
// workspace size. run() only launches: no compilation, no allocation and no host
// synchronization (unless options.validate), so a captured run replays with new cache_seqlens,
// page tables and appended tokens. Lengths and index values are read on the device at run time.
struct AttentionPlanState;  // opaque

class AttentionPlan {
 public:
  explicit AttentionPlan(const KvcacheArgs& args);
  explicit AttentionPlan(const VarlenArgs& args);

  // Bytes of the workspace run() needs (0 without split-KV): device memory of the call's device
  // for CUDA, host memory for the CPU, alive until the launched work completes.
  size_t workspace_bytes() const;
  // Key splits of each sequence's keys (1 = no split-KV).
  int num_splits() const;
  // The kernel the plan launches ("" when the call computes nothing).
  std::string kernel_name() const;

  // Launches the planned call for `args`, which must have the shapes, flags and device of the
  // arguments the plan was made from (pointers and index values may differ); a mismatch is a
  // UsageError naming what changed.
  void run(const KvcacheArgs& args, void* workspace) const;
  void run(const VarlenArgs& args, void* workspace) const;

 private:
  std::shared_ptr<const AttentionPlanState> state_;
};

// Process-wide counters of the kernel cache (memory and disk) and the compiler.
struct CacheStats {
  int64_t memory_hits = 0;      // kernel found already loaded in this process
  int64_t disk_hits = 0;        // kernel loaded from the disk cache
  int64_t misses = 0;           // neither: the kernel had to be compiled
  int64_t compiles = 0;         // compilations run by this process
  int64_t corrupt_entries = 0;  // disk entries discarded because they failed verification
  int64_t write_errors = 0;     // disk entries that could not be stored
  int64_t lock_timeouts = 0;    // cross-process lock waits that gave up
  double compile_ms = 0;        // total time spent compiling
  double load_ms = 0;           // total time spent loading cached binaries
};
CacheStats cache_stats();

// Library version string ("0.1.0").
const char* version();

}  // namespace flashjit
