// The CPU kernels against the float64 reference over the shared sweeps. Each case poisons its
// outputs, runs through the public API with validation on, and checks the output (FA3's tolerance
// rule), the LSE and that every valid element was written.
#include <gtest/gtest.h>

#include "reference/sweep_cases.h"

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

std::vector<AttentionCase> level(int n) {
  return test_level() >= n ? sweep_cases(SweepTarget{}, n) : std::vector<AttentionCase>{};
}

auto case_name = [](const auto& info) { return info.param.name(); };
INSTANTIATE_TEST_SUITE_P(Smoke, CpuSweep, ::testing::ValuesIn(level(0)), case_name);
INSTANTIATE_TEST_SUITE_P(Level1, CpuSweep, ::testing::ValuesIn(level(1)), case_name);
INSTANTIATE_TEST_SUITE_P(Level2, CpuSweep, ::testing::ValuesIn(level(2)), case_name);
GTEST_ALLOW_UNINSTANTIATED_PARAMETERIZED_TEST(CpuSweep);

}  // namespace
}  // namespace flashjit::testing
