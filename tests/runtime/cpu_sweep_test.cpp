// The CPU kernels against the float64 reference over the shared sweeps. Each case poisons its
// outputs, runs through the public API with validation on, and checks the output (FA3's tolerance
// rule), the LSE, that every valid element was written, that nothing else was, and that the inputs
// are unchanged; the buffers sit against guard pages (reference/device_mirrors.h).
#include <gtest/gtest.h>

#include "reference/sweep_cases.h"

namespace flashjit::testing {
namespace {

class CpuSweep : public ::testing::TestWithParam<AttentionCase> {};

TEST_P(CpuSweep, MatchesReference) { expect_matches_reference(GetParam()); }

std::vector<AttentionCase> level(int n) {
  return test_level() >= n ? sweep_cases(SweepTarget{}, n) : std::vector<AttentionCase>{};
}

auto case_name = [](const auto& info) { return info.param.name(); };
INSTANTIATE_TEST_SUITE_P(Smoke, CpuSweep, ::testing::ValuesIn(level(0)), case_name);
INSTANTIATE_TEST_SUITE_P(Level1, CpuSweep, ::testing::ValuesIn(level(1)), case_name);
INSTANTIATE_TEST_SUITE_P(Level2, CpuSweep, ::testing::ValuesIn(level(2)), case_name);

// Cases with every axis drawn at random (reference/sweep_cases.h says how to run more), plain
// and through plans.
INSTANTIATE_TEST_SUITE_P(Random, CpuSweep, ::testing::ValuesIn(random_sweep({}, false)), case_name);
INSTANTIATE_TEST_SUITE_P(RandomPlanned, CpuSweep, ::testing::ValuesIn(random_sweep({}, true)),
                         case_name);

// The level-1 cases again with every buffer starting right after a guard page (the cases above
// end right before one), so that reads before a buffer crash too.
std::vector<AttentionCase> guarded_before() {
  std::vector<AttentionCase> cases = level(1);
  for (AttentionCase& c : cases) c.guard = GuardSide::kBefore;
  return cases;
}
INSTANTIATE_TEST_SUITE_P(GuardBefore, CpuSweep, ::testing::ValuesIn(guarded_before()), case_name);
GTEST_ALLOW_UNINSTANTIATED_PARAMETERIZED_TEST(CpuSweep);

}  // namespace
}  // namespace flashjit::testing
