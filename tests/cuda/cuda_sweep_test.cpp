// The CUDA kernels against the same float64 reference and sweeps as the CPU suite (bf16 / fp16,
// head_dim_v up to 256), plus metamorphic relations and CUDA-specific usage errors. Every test
// skips cleanly on a machine without a GPU.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstring>

#include "reference/device_mirrors.h"
#include "reference/sweep_cases.h"

namespace flashjit::testing {
namespace {

SweepTarget cuda_target() {
  return SweepTarget{Device{DeviceType::kCUDA, 0}, {DType::kBFloat16, DType::kFloat16}, 256};
}

class CudaSweep : public ::testing::TestWithParam<AttentionCase> {
 protected:
  void SetUp() override {
    if (!cuda_device_available()) GTEST_SKIP() << "no CUDA device";
  }
};

TEST_P(CudaSweep, MatchesReference) { expect_matches_reference(GetParam()); }

std::vector<AttentionCase> level(int n) {
  return test_level() >= n ? sweep_cases(cuda_target(), n) : std::vector<AttentionCase>{};
}

auto case_name = [](const auto& info) { return info.param.name(); };
INSTANTIATE_TEST_SUITE_P(Smoke, CudaSweep, ::testing::ValuesIn(level(0)), case_name);
INSTANTIATE_TEST_SUITE_P(Level1, CudaSweep, ::testing::ValuesIn(level(1)), case_name);
INSTANTIATE_TEST_SUITE_P(Level2, CudaSweep, ::testing::ValuesIn(level(2)), case_name);
// Cases with every axis drawn at random, as on the CPU (reference/sweep_cases.h), plain and
// through plans.
INSTANTIATE_TEST_SUITE_P(Random, CudaSweep, ::testing::ValuesIn(random_sweep(cuda_target(), false)),
                         case_name);
INSTANTIATE_TEST_SUITE_P(RandomPlanned, CudaSweep,
                         ::testing::ValuesIn(random_sweep(cuda_target(), true)), case_name);
GTEST_ALLOW_UNINSTANTIATED_PARAMETERIZED_TEST(CudaSweep);

class CudaMetamorphic : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!cuda_device_available()) GTEST_SKIP() << "no CUDA device";
  }
  static AttentionCase base() {
    AttentionCase c;
    c.device = Device{DeviceType::kCUDA, 0};
    c.dtype = DType::kBFloat16;
    c.batch = 3;
    c.num_heads = 8;
    c.num_heads_k = 2;
    c.head_dim = 128;
    c.seqlen_q = 37;
    c.seqlen_k = 192;
    c.causal = true;
    c.cache_seqlens = true;
    c.random_lengths = true;
    c.seed = 77;
    return c;
  }
};

double max_diff(const std::vector<double>& a, const std::vector<double>& b) {
  EXPECT_EQ(a.size(), b.size());
  double m = 0;
  for (size_t i = 0; i < a.size() && i < b.size(); ++i) m = std::max(m, std::abs(a[i] - b[i]));
  return m;
}

TEST_F(CudaMetamorphic, ShuffledPagedEqualsContiguous) {
  AttentionCase contiguous = base();
  AttentionCase paged = base();
  paged.page_size = 16;  // 192 is a multiple: both layouts hold the same logical keys
  const CaseResult a = run_case(contiguous), b = run_case(paged);
  EXPECT_EQ(max_diff(a.out, b.out), 0.0) << "paging changed the result";
  EXPECT_EQ(max_diff(a.lse_out, b.lse_out), 0.0);
}

TEST_F(CudaMetamorphic, PackedGqaEqualsUnpacked) {
  AttentionCase packed = base(), unpacked = base();
  packed.pack_gqa = true;
  unpacked.pack_gqa = false;
  const CaseResult a = run_case(packed), b = run_case(unpacked);
  EXPECT_LE(max_diff(a.out, b.out), 1e-2);  // one bf16 ulp of an O(1) output
  EXPECT_LE(max_diff(a.lse_out, b.lse_out), 1e-4);
}

// Prefill tiles write out through shared memory, as 16-byte chunks where out's pointer and strides
// allow them and as 4-byte words otherwise: a strided out (4-byte aligned rows) takes the second
// path, and both give the same bits.
TEST_F(CudaMetamorphic, StridedOutEqualsContiguousForStagedTiles) {
  for (int d : {64, 128, 192, 256}) {
    AttentionCase dense = base();
    dense.head_dim = d;
    dense.num_heads = 4;
    dense.num_heads_k = 4;
    dense.seqlen_q = 150;  // three 64-row tiles, the last one partial
    dense.seqlen_k = 300;
    AttentionCase strided = dense;
    strided.strided = true;
    const CaseResult a = run_case(dense), b = run_case(strided);
    for (const CaseResult* r : {&a, &b}) {
      EXPECT_EQ(r->unwritten, 0) << "d" << d;
      EXPECT_LE(r->max_err, r->tolerance) << "d" << d;
    }
    EXPECT_EQ(max_diff(a.out, b.out), 0.0) << "d" << d << ": out's layout changed the result";
    EXPECT_EQ(max_diff(a.lse_out, b.lse_out), 0.0) << "d" << d;
  }
}

// Causal grids run in sections of (sequence, head) slots, about a wave of tiles each
// (codegen/tile_config.h): 133 slots of at most four 128-row blocks make three sections of 45, 44
// and 44 slots on a GPU that runs 264 such CTAs at once (H100, H200). Every tile must still run
// once, for its own slot.
TEST_F(CudaMetamorphic, CausalGridOfSeveralSectionsMatchesReference) {
  AttentionCase c = base();  // causal, random lengths
  c.api = Api::kVarlen;
  c.cache_seqlens = false;
  c.batch = 7;
  c.num_heads = c.num_heads_k = 19;
  c.head_dim = 64;
  c.seqlen_q = c.seqlen_k = 512;
  c.seed = 2020;
  const CaseResult r = run_case(c);
  EXPECT_EQ(r.unwritten, 0);
  EXPECT_EQ(r.written_outside, 0);
  EXPECT_LE(r.max_err, r.tolerance);
  EXPECT_LE(r.lse_err, r.lse_tolerance);
}

TEST_F(CudaMetamorphic, RepeatedLaunchesAreBitwiseIdentical) {
  const CaseResult a = run_case(base()), b = run_case(base());
  ASSERT_EQ(a.out.size(), b.out.size());
  EXPECT_EQ(0, std::memcmp(a.out.data(), b.out.data(), a.out.size() * sizeof(double)));
}

// Decode tiles merge their key warps' states through their K/V buffers in passes of the rows
// that fit there: the 16-warp tile (chosen for 32 or more (sequence, KV head) tiles) holds 14 of
// its 16 rows, so four packed query tokens of GQA 4 take two passes, split or not.
class CudaDecodeMerge : public ::testing::TestWithParam<int> {
 protected:
  void SetUp() override {
    if (!cuda_device_available()) GTEST_SKIP() << "no CUDA device";
  }
};

TEST_P(CudaDecodeMerge, SixteenRowsMergeInTwoPasses) {
  expect_matches_reference(AttentionCase{.device = Device{DeviceType::kCUDA, 0},
                                         .batch = 16,
                                         .num_heads = 32,
                                         .num_heads_k = 8,
                                         .head_dim = 128,
                                         .seqlen_q = 4,
                                         .seqlen_k = 301,
                                         .random_lengths = true,
                                         .page_size = 16,
                                         .cache_seqlens = true,
                                         .sinks = true,
                                         .num_splits = GetParam(),
                                         .seed = 4242});
}

// The 16-warp tile also takes decode steps from 32 tiles on: an append with rotary, paged, at
// 32 (sequence, KV head) tiles.
TEST_P(CudaDecodeMerge, SixteenWarpsAppendRotated) {
  expect_matches_reference(AttentionCase{.device = Device{DeviceType::kCUDA, 0},
                                         .batch = 8,
                                         .num_heads = 16,
                                         .num_heads_k = 4,
                                         .head_dim = 128,
                                         .seqlen_q = 1,
                                         .seqlen_k = 300,
                                         .random_lengths = true,
                                         .page_size = 16,
                                         .cache_seqlens = true,
                                         .sinks = true,
                                         .seqlen_new = 1,
                                         .rotary_fraction = 1,
                                         .num_splits = GetParam(),
                                         .seed = 4343});
}

INSTANTIATE_TEST_SUITE_P(Splits, CudaDecodeMerge, ::testing::Values(1, 3));

}  // namespace
}  // namespace flashjit::testing
