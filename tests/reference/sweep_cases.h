// Declarative attention sweeps, shared by the CPU and the CUDA test suites.
#pragma once

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

}  // namespace flashjit::testing
