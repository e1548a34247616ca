// Plans, split-KV and the kvcache step of a serving loop on the CPU backend: a plan made once runs
// 50 decode steps that append rotated tokens, each checked against the float64 reference; split
// results agree with unsplit ones; num_splits = 1 is bitwise repeatable and batch-invariant.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <vector>

#include "reference/attention_case.h"
#include "reference/decode_loop.h"
#include "reference/merge_case.h"

namespace flashjit::testing {
namespace {

TEST(CpuPlan, RunsADecodeLoopWithAppendRotaryAndSplits) {
  DecodeLoopConfig config;
  config.capacity = 512;  // 4 key blocks of the CPU decode tiles: 3 splits fit
  DecodeLoop loop(config);
  const AttentionPlan plan(loop.args());
  EXPECT_EQ(plan.num_splits(), 3);
  EXPECT_THAT(plan.kernel_name(), ::testing::HasSubstr("splitkv_appendkv"));
  std::vector<char> workspace(plan.workspace_bytes());
  for (int step = 0; step < 50; ++step) {
    loop.next_step();
    plan.run(loop.args(), workspace.data());
    const StepCheck r = loop.check();
    ASSERT_EQ(r.unwritten, 0) << "step " << step;
    ASSERT_EQ(r.cache_mismatch, 0) << "step " << step;
    ASSERT_LE(r.max_err, r.tolerance) << "step " << step;
  }
}

// Where the heuristic splits the keys it plans four work items a thread (docs/PERF.md, CPU session
// 6: one long sequence ran faster in 8 splits than in 2 on 2 threads).
TEST(CpuPlan, HeuristicPlansFourItemsPerThread) {
  DecodeLoopConfig config;
  config.batch = 1;
  config.num_heads = 32;
  config.num_heads_k = 8;
  config.head_dim = 128;
  config.capacity = 8192;  // 64 key blocks
  config.num_splits = 0;
  DecodeLoop loop(config);
  KvcacheArgs args = loop.args();
  args.options.num_threads = 2;
  EXPECT_EQ(AttentionPlan(args).num_splits(), 8);
  args.options.num_threads = 1;
  EXPECT_EQ(AttentionPlan(args).num_splits(), 4);
}

TEST(CpuPlan, RejectsArgumentsOfOtherShapes) {
  DecodeLoop loop(DecodeLoopConfig{});
  const AttentionPlan plan(loop.args());
  KvcacheArgs other = loop.args();
  other.causal = false;
  std::vector<char> workspace(plan.workspace_bytes());
  loop.next_step();
  try {
    plan.run(other, workspace.data());
    FAIL() << "expected a UsageError";
  } catch (const UsageError& e) {
    EXPECT_THAT(e.what(), ::testing::HasSubstr("args: expected a call with the shapes and flags"));
  }
  KvcacheArgs no_workspace = loop.args();
  EXPECT_THROW(plan.run(no_workspace, nullptr), UsageError);
}

AttentionCase split_case(int splits) {
  AttentionCase c;
  c.api = Api::kKvcache;
  c.dtype = DType::kBFloat16;
  c.batch = 3;
  c.num_heads = 8;
  c.num_heads_k = 2;
  c.head_dim = 128;
  c.seqlen_q = 1;
  c.seqlen_k = 1000;
  c.page_size = 16;
  c.cache_seqlens = true;
  c.causal = true;
  c.sinks = true;  // counted once, in split 0
  c.num_splits = splits;
  c.seed = 11;
  return c;
}

TEST(CpuSplitKv, SplitsAgreeWithOneSplit) {
  const CaseResult one = run_case(split_case(1));
  for (int splits : {2, 5, 8}) {
    const CaseResult r = run_case(split_case(splits));
    EXPECT_LE(r.max_err, r.tolerance) << splits << " splits";
    ASSERT_EQ(r.out.size(), one.out.size());
    double diff = 0;
    for (size_t i = 0; i < r.out.size(); ++i)
      diff = std::max(diff, std::abs(r.out[i] - one.out[i]));
    EXPECT_LE(diff, 1.6e-2) << splits << " splits";  // two bf16 ulps of an O(1) output
    for (size_t i = 0; i < r.lse_out.size(); ++i)
      EXPECT_NEAR(r.lse_out[i], one.lse_out[i], 1e-4) << splits << " splits";
  }
}

TEST(CpuSplitKv, OneSplitIsBitwiseRepeatableAndBatchInvariant) {
  AttentionCase batch3 = split_case(1);
  batch3.sinks = false;  // the sinks are drawn after every sequence's inputs
  const CaseResult a = run_case(batch3), b = run_case(batch3);
  EXPECT_EQ(a.out, b.out);
  EXPECT_EQ(a.lse_out, b.lse_out);
  // Sequence 0 draws the same inputs alone as in a batch of three (fixed lengths): same bits.
  AttentionCase alone = batch3;
  alone.batch = 1;
  const CaseResult c = run_case(alone);
  ASSERT_LE(c.out.size(), a.out.size());
  EXPECT_TRUE(std::equal(c.out.begin(), c.out.end(), a.out.begin()));
}

TEST(CpuMergeStates, MatchesOneShotAttention) {
  // fp32 inputs: the merge is exact up to float rounding.
  const MergeResult f32 = run_merge_case(Device{}, DType::kFloat32, true, 3);
  EXPECT_EQ(f32.unwritten, 0);
  EXPECT_EQ(f32.lse_inf_mismatch, 0);
  EXPECT_LE(f32.out_diff, 2e-6);
  EXPECT_LE(f32.lse_diff, 2e-6);
  // bf16 partials merged into an fp32 output: within the partials' own rounding (2^-8 relative).
  const MergeResult bf16 = run_merge_case(Device{}, DType::kBFloat16, true, 4);
  EXPECT_EQ(bf16.unwritten, 0);
  EXPECT_EQ(bf16.lse_inf_mismatch, 0);
  EXPECT_LE(bf16.out_diff, 2e-2);
  EXPECT_LE(bf16.lse_diff, 1e-4);
}

TEST(CpuMergeStates, RejectsBadArguments) {
  std::vector<float> o(2 * 4 * 8, 0.f), l(2 * 4, 0.f);
  MergeStatesArgs a;
  a.out = Tensor::contiguous(o.data(), DType::kFloat32, {2, 4, 8});
  auto expect_error = [&](const MergeStatesArgs& bad, const char* text) {
    try {
      merge_states(bad);
      ADD_FAILURE() << "expected a UsageError containing: " << text;
    } catch (const UsageError& e) {
      EXPECT_THAT(e.what(), ::testing::HasSubstr(text));
    }
  };
  expect_error(a, "outs: expected 1 to 16 states");
  a.outs.push_back(Tensor::contiguous(o.data(), DType::kFloat32, {2, 4, 8}));
  expect_error(a, "lses: expected one per state (1), got 0");
  a.lses.push_back(Tensor::contiguous(l.data(), DType::kFloat32, {2, 3}));
  expect_error(a, "lses[0]");
  a.lses[0] = Tensor::contiguous(l.data(), DType::kInt32, {2, 4});
  expect_error(a, "lses[0]: expected dtype fp32");
  a.lses[0] = Tensor::contiguous(l.data(), DType::kFloat32, {2, 4});
  a.outs.push_back(Tensor::contiguous(o.data(), DType::kBFloat16, {2, 4, 8}));
  a.lses.push_back(a.lses[0]);
  expect_error(a, "outs[1]: expected dtype fp32");
  a.outs.resize(17, a.outs[0]);
  a.lses.resize(17, a.lses[0]);
  expect_error(a, "got 17");
}

}  // namespace
}  // namespace flashjit::testing
