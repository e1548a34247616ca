// One declarative attention test case: random inputs in a chosen layout (varlen, contiguous or
// paged cache, strided views), run through the public API with poisoned outputs, and compared
// with the float64 reference under FA3's tolerance rule.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <ostream>
#include <string>
#include <vector>

#include "flashjit/flashjit.h"
#include "reference/device_mirrors.h"

namespace flashjit::testing {

enum class Api { kVarlen, kKvcache };

struct AttentionCase {
  Device device{};  // where the tensors live (CUDA: copies of the host buffers)
  Api api = Api::kKvcache;
  DType dtype = DType::kBFloat16;
  int batch = 2, num_heads = 4, num_heads_k = 4, head_dim = 64, head_dim_v = 0;  // 0: = d
  int seqlen_q = 16, seqlen_k = 16;  // maxima (kvcache without cache_seqlens: exact)
  bool random_lengths = false;       // varlen / cache_seqlens: random lengths, some zero
  bool varlen_q = false;             // kvcache: queries packed with cu_seqlens_q
  int page_size = 0;                 // kvcache: 0 = contiguous cache
  bool cache_batch_idx = false;      // kvcache: sequences read permuted cache rows
  bool cache_seqlens = false;        // kvcache: per-sequence key counts
  bool seqused = false;              // varlen: seqused_q / seqused_k below the packed lengths
  bool causal = false;
  int window_left = -1, window_right = -1;
  int attention_chunk = 0;
  double softcap = 0;
  bool sinks = false;
  DType sinks_dtype = DType::kBFloat16;  // FA3 takes bf16; flashjit also fp16 and fp32
  bool lse = true;
  bool strided = false;  // q/k/v/out as views into larger buffers
  std::optional<bool> pack_gqa{};
  std::optional<double> softmax_scale{};
  // kvcache updates (spec section 4): seqlen_new keys appended per sequence (cache_seqlens is
  // implied); ragged_new draws lengths in [0, seqlen_new] with cu_seqlens_k_new.
  int seqlen_new = 0;
  bool ragged_new = false;
  double rotary_fraction = 0;  // rotary_dim = floor(fraction * d / 16) * 16
  bool rotary_interleaved = true;
  bool rotary_seqlens = false;  // positions from rotary_seqlens (random) instead of cache_seqlens
  bool leftpad = false;         // cache_leftpad in [0, cache_seqlens]
  std::optional<int> num_splits{};      // unset: the API's default
  int sm_margin = 0;                    // CUDA: SMs the split heuristic leaves to others
  GuardSide guard = GuardSide::kAfter;  // CPU: every buffer the call sees abuts a guard page
  bool planned = false;                 // through an AttentionPlan made from the arguments
  int context_device = -1;  // CUDA: the device whose context is current at the call (-1: own)
  uint64_t seed = 1;
  // Tests of bad arguments: called on the arguments just before the call, which must then throw.
  std::function<void(VarlenArgs&)> mutate_varlen{};
  std::function<void(KvcacheArgs&)> mutate_kvcache{};

  std::string name() const;  // identity for test names
};

// GoogleTest prints a case by its name (instead of its bytes) in test listings and failures.
inline void PrintTo(const AttentionCase& c, std::ostream* os) { *os << c.name(); }

struct CaseResult {
  double max_err = 0;       // kernel vs float64 reference
  double baseline_err = 0;  // input-precision math vs float64 reference
  double tolerance = 0;     // 2 * baseline + rounding epsilon (3 * with softcap)
  double lse_err = 0;
  double lse_tolerance = 0;
  int64_t unwritten = 0;     // valid output elements still poisoned (NaN)
  int64_t lse_mismatch = 0;  // infinite LSE values that differ from the reference's
  // kvcache appends: cache elements that differ from the expected cache (appended rows bitwise,
  // or within one unit in the last place when rotated; every other element bitwise unchanged).
  int64_t cache_mismatch = 0;
  int64_t written_outside = 0;               // out / LSE elements outside the valid rows changed
  std::vector<std::string> modified_inputs;  // buffers the call only reads that changed
  bool context_kept = true;  // context_device's context was current again after the call
  std::vector<double> out;   // the kernel's output, logical order [b][i][h][dv]
  std::vector<double> lse_out;
};

CaseResult run_case(const AttentionCase& c);

// Runs the case and checks it with GoogleTest expectations: every valid output element written,
// the output within FA3's tolerance, and (when requested) the LSE.
void expect_matches_reference(const AttentionCase& c);

}  // namespace flashjit::testing
