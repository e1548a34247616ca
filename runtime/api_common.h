// Checks and defaults shared by flash_attn_varlen and flash_attn_with_kvcache.
#pragma once

#include <array>
#include <optional>

#include "flashjit/flashjit.h"
#include "runtime/attention_problem.h"

namespace flashjit {

// q's dtype is supported and k/v match it; every tensor is on q's device.
void check_qkv_dtypes(const Tensor& q, const Tensor& k, const Tensor& v, const char* k_name,
                      const char* v_name);
// h % h_k == 0, head dims multiples of 8 within the limits.
void check_heads(int h, int h_k, int d, int dv);
// window_size, attention_chunk, softcap, softmax_scale, num_splits, sm_margin.
void check_scalars(const std::array<int, 2>& window_size, int attention_chunk, double softcap,
                   const std::optional<double>& softmax_scale, int num_splits, int sm_margin);
// out: expected shape, dtype of q, unit last stride.
void check_out(const Tensor& out, const Tensor& q, std::initializer_list<int64_t> shape,
               const char* dims);
// softmax_lse: present iff wanted; fp32 with the expected shape.
void check_lse(const OptionalTensor& lse, bool wanted, std::initializer_list<int64_t> shape,
               const char* dims, Device device);
void check_sinks(const OptionalTensor& sinks, int h, Device device);

// The validated problem of each entry point (what the plain calls and the plans run).
AttentionProblem kvcache_problem(const KvcacheArgs& args);
AttentionProblem varlen_problem(const VarlenArgs& args);

// Fills the fields common to both entry points.
void fill_common(AttentionProblem& p, const std::optional<double>& softmax_scale, bool causal,
                 const std::array<int, 2>& window_size, int attention_chunk, double softcap,
                 const OptionalTensor& sinks, const std::optional<bool>& pack_gqa,
                 const ExecOptions& options);

}  // namespace flashjit
