// Declarative sweeps of the CPU kernels against the float64 reference (spec section 7, CPU-sized):
// every case poisons its outputs first and checks the output, the LSE and that every valid
// element was written.
#include <gtest/gtest.h>

#include <vector>

#include "reference/attention_case.h"

namespace flashjit::testing {
namespace {

class CpuSweep : public ::testing::TestWithParam<AttentionCase> {};

TEST_P(CpuSweep, MatchesReference) {
  const AttentionCase& c = GetParam();
  const CaseResult r = run_case(c);
  EXPECT_EQ(r.unwritten, 0) << "valid output elements left unwritten";
  EXPECT_LE(r.max_err, r.tolerance) << "baseline error " << r.baseline_err;
  if (c.lse) {
    EXPECT_EQ(r.lse_mismatch, 0) << "infinite LSE values differ from the reference";
    EXPECT_LE(r.lse_err, r.lse_tolerance);
  }
}

std::vector<AttentionCase> smoke_cases() {
  std::vector<AttentionCase> cases;
  for (DType dt : {DType::kFloat32, DType::kBFloat16, DType::kFloat16}) {
    AttentionCase c;
    c.dtype = dt;
    cases.push_back(c);
    c.causal = true;
    c.seqlen_q = 5;
    c.seqlen_k = 37;
    c.num_heads = 8;
    c.num_heads_k = 2;
    cases.push_back(c);
  }
  return cases;
}

INSTANTIATE_TEST_SUITE_P(Smoke, CpuSweep, ::testing::ValuesIn(smoke_cases()),
                         [](const auto& info) { return info.param.name(); });

}  // namespace
}  // namespace flashjit::testing
