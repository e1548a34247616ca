// The run-time parameters of a merge-states kernel (KernelOp::kMergeStates): up to
// kMaxMergeStates partial results (out_s, lse_s) over disjoint key sets, merged by their LSE into
// out / lse. Plain C types, shared by the host, the CPU kernels and the CUDA kernels.
#pragma once

namespace flashjit_kernel {

constexpr int kMaxMergeStates = 16;

struct MergeParams {
  // State s: out_s (rows, heads, dv) of the partials' dtype, lse_s (rows, heads) fp32 natural
  // log; strides in elements.
  const void* outs[kMaxMergeStates];
  const float* lses[kMaxMergeStates];
  long long out_row_stride[kMaxMergeStates], out_head_stride[kMaxMergeStates];
  long long lse_row_stride[kMaxMergeStates], lse_head_stride[kMaxMergeStates];
  void* out;   // (rows, heads, dv) of the output dtype
  float* lse;  // (rows, heads) or null
  long long o_row_stride, o_head_stride, l_row_stride, l_head_stride;
  int num_states;
  int rows;
  int heads;
};

}  // namespace flashjit_kernel
