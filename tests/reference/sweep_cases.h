// Declarative attention sweeps, shared by the CPU and the CUDA test suites.
#pragma once

#include <cstdint>
#include <vector>

#include "reference/attention_case.h"

namespace flashjit::testing {

struct SweepTarget {
  Device device{};
  std::vector<DType> dtypes = {DType::kFloat32, DType::kBFloat16, DType::kFloat16};
  int max_head_dim_v = 512;
};

// FLASHJIT_TEST_LEVEL from the environment, else the build's default.
int test_level();

// level 0: smoke cases; 1: the CI sweep; 2: the full cross product (only that level's cases).
std::vector<AttentionCase> sweep_cases(const SweepTarget& target, int level);

// `count` cases with every axis drawn at random (many features at once, where the sweeps cross
// one or two), reproducible from `seed`: case i depends only on (seed, i).
std::vector<AttentionCase> random_cases(const SweepTarget& target, int count, uint64_t seed);
// FLASHJIT_RANDOM_CASES (a count) and FLASHJIT_RANDOM_SEED from the environment, else the
// fallbacks: a longer local hunt is FLASHJIT_RANDOM_CASES=2000 FLASHJIT_RANDOM_SEED=$RANDOM.
int random_case_count(int fallback);
uint64_t random_case_seed(uint64_t fallback);
// What a suite runs of them: none below test level 1, else random_case_count(48) cases from
// random_case_seed(1), through AttentionPlan when `planned`.
std::vector<AttentionCase> random_sweep(const SweepTarget& target, bool planned);

}  // namespace flashjit::testing
