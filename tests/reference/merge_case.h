// merge_states against one-shot attention: the keys of every sequence are split into three
// disjoint ranges, each attended to by its own varlen call (plus one call with no keys at all,
// whose LSE is +inf), and the partial results are merged.
#pragma once

#include <cstdint>

#include "flashjit/flashjit.h"

namespace flashjit::testing {

struct MergeResult {
  double out_diff = 0;  // merged vs one-shot output
  double lse_diff = 0;  // merged vs one-shot LSE (finite values)
  int64_t lse_inf_mismatch = 0;
  int64_t unwritten = 0;
  bool context_kept = true;  // context_device's context was current again after merge_states
};

// dtype is that of q / k / v and of the partials; the merged output is fp32 when out_fp32.
// context_device >= 0 (CUDA): merge_states starts from that device's context.
MergeResult run_merge_case(Device device, DType dtype, bool out_fp32, uint64_t seed,
                           int context_device = -1);

}  // namespace flashjit::testing
