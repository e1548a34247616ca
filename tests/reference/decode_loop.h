// A toy serving loop for plan / run tests: every step appends one rotated token per sequence to a
// paged cache and decodes it, with buffers whose addresses never change (so that a CUDA graph
// captured once replays every step). Each step is checked against the float64 reference.
#pragma once

#include <cstdint>
#include <memory>

#include "flashjit/flashjit.h"

namespace flashjit::testing {

struct DecodeLoopConfig {
  Device device{};
  DType dtype = DType::kBFloat16;
  int batch = 3, num_heads = 8, num_heads_k = 2, head_dim = 64;
  int capacity = 192, page_size = 16;
  int num_splits = 3;
  uint64_t seed = 5;
};

struct StepCheck {
  double max_err = 0, tolerance = 0;
  int64_t unwritten = 0;       // output elements still poisoned
  int64_t cache_mismatch = 0;  // appended rows off by more than one unit in the last place
};

class DecodeLoop {
 public:
  explicit DecodeLoop(const DecodeLoopConfig& config);
  ~DecodeLoop();
  // Arguments over the loop's fixed buffers (the same tensors every step).
  const KvcacheArgs& args() const;
  // Draws the next step's queries and new token, advances cache_seqlens past the previous step's
  // token, poisons the output, and uploads all of it.
  void next_step();
  // After the step ran: the output against the reference, and the appended cache rows.
  StepCheck check();

 private:
  struct State;
  std::unique_ptr<State> s_;
};

}  // namespace flashjit::testing
