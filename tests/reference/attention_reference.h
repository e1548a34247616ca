// The float64 attention reference every kernel is checked against (spec section 3), plus the
// "same math in the input precision" baseline that sets the tolerance (FA3's rule, spec 7.1).
// Inputs are dense logical arrays; tests scatter them into whatever layout the kernel reads.
#pragma once

#include <cstdint>
#include <vector>

#include "flashjit/tensor.h"

namespace flashjit::testing {

struct RefInputs {
  int batch = 1, num_heads = 1, num_heads_k = 1, head_dim = 64, head_dim_v = 64;
  std::vector<int> lq, lk;  // per sequence
  // q[b] is lq[b] x h x d, k[b] lk[b] x h_k x d, v[b] lk[b] x h_k x dv, row-major, values already
  // rounded to the input dtype.
  std::vector<std::vector<double>> q, k, v;
  double softmax_scale = 0;
  bool causal = false;
  int window_left = -1, window_right = -1;  // -1 = unbounded
  int attention_chunk = 0;
  double softcap = 0;
  std::vector<double> sinks;  // empty or one per query head
};

struct RefOutputs {
  std::vector<std::vector<double>> out;  // per sequence: lq x h x dv
  std::vector<std::vector<double>> lse;  // per sequence: h x lq
};

// Exact (float64) attention.
RefOutputs attention_reference(const RefInputs& in);

// The same math with scores, probabilities and output rounded to `dtype` (fp32: float arithmetic
// throughout): the error a straightforward implementation in the input precision makes.
RefOutputs attention_low_precision(const RefInputs& in, DType dtype);

// Rounds x to dtype (fp32, fp16 or bf16), round to nearest even.
double round_to(double x, DType dtype);

}  // namespace flashjit::testing
