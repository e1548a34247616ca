// Index value checks: bad index values (page ids, cache_seqlens, batch indices, cu_seqlens,
// seqused_q) raise a UsageError naming the index tensor, entry and value. CPU calls check them
// always; CUDA calls with ExecOptions::validate (without it their kernels clamp them instead).
#include <gtest/gtest.h>

#include <cstdlib>
#include <string>

#include "error_test_util.h"

namespace flashjit::errors_test {
namespace {

KvConfig validated(KvConfig c) {
  c.validate = true;
  return c;
}

TEST(ValidationErrors, ValidCallsPassValidation) {
  for (const KvConfig& config :
       {validated({}), validated({.paged = true}), validated({.varlen_q = true})}) {
    KvCase c(config);
    EXPECT_NO_THROW(c.run());
  }
  VarlenCase v(VarlenConfig{.validate = true});
  EXPECT_NO_THROW(v.run());
}

TEST(ValidationErrors, PageIdOutOfRange) {
  KvCase c(validated({.paged = true}));
  KvcacheArgs bad = c.args;
  bad.page_table = c.buf.i32({KvCase::kNumPages, 2, 1, 0}, {2, 2});
  expect_rejected<UsageError>(c, bad, {"page_table[0, 0]: expected a page id in [0, 4), got 4"});
}

TEST(ValidationErrors, NegativePageId) {
  KvCase c(validated({.paged = true}));
  KvcacheArgs bad = c.args;
  bad.page_table = c.buf.i32({3, 2, 1, -1}, {2, 2});
  expect_rejected<UsageError>(c, bad, {"page_table[1, 1]: expected a page id in [0, 4), got -1"});
}

TEST(ValidationErrors, CacheSeqlensAboveCapacity) {
  KvCase c(validated({}));
  KvcacheArgs bad = c.args;
  bad.cache_seqlens = c.buf.i32({9, 8});
  expect_rejected<UsageError>(
      c, bad,
      {"cache_seqlens[0]: expected a value in [0, 8] (the capacity of the sequence), got 9"});
  KvCase p(validated({.paged = true}));
  KvcacheArgs bad_paged = p.args;
  bad_paged.cache_seqlens = p.buf.i32({5, 9});
  expect_rejected<UsageError>(p, bad_paged,
                              {"cache_seqlens[1]: expected a value in [0, 8]", "got 9"});
}

TEST(ValidationErrors, NegativeCacheSeqlens) {
  KvCase c(validated({}));
  KvcacheArgs bad = c.args;
  bad.cache_seqlens = c.buf.i32({5, -1});
  expect_rejected<UsageError>(c, bad, {"cache_seqlens[1]: expected a value in [0, 8]", "got -1"});
}

TEST(ValidationErrors, CacheBatchIdxOutOfRange) {
  KvCase c(validated({}));
  KvcacheArgs bad = c.args;
  bad.cache_batch_idx = c.buf.i32({KvCase::kCacheRows, 0});
  expect_rejected<UsageError>(c, bad, {"cache_batch_idx[0]: expected a value in [0, 3), got 3"});
  bad = c.args;
  bad.cache_batch_idx = c.buf.i32({2, -1});
  expect_rejected<UsageError>(c, bad, {"cache_batch_idx[1]: expected a value in [0, 3), got -1"});
}

// Each cu_seqlens_q defect, for both entry points: q has 5 rows and max_seqlen_q is 3.
struct CuSeqlensCase {
  std::vector<int32_t> values;
  std::string message;
};
const std::vector<CuSeqlensCase>& bad_cu_seqlens_q() {
  static const std::vector<CuSeqlensCase> cases = {
      {{0, 3, 2},
       "cu_seqlens_q: expected non-decreasing values, got cu_seqlens_q[1] = 3 > "
       "cu_seqlens_q[2] = 2"},
      {{1, 2, 5}, "cu_seqlens_q[0]: expected 0, got 1"},
      {{0, 3, 6}, "cu_seqlens_q[2]: expected at most 5 (rows of the tensor), got 6"},
      {{0, 1, 5},
       "cu_seqlens_q: expected sequence lengths of at most max_seqlen_q = 3, got 4 for sequence 1"},
  };
  return cases;
}

TEST(ValidationErrors, BadCuSeqlensQKvcache) {
  KvCase c(validated({.varlen_q = true}));
  for (const CuSeqlensCase& bad_values : bad_cu_seqlens_q()) {
    SCOPED_TRACE(bad_values.message);
    KvcacheArgs bad = c.args;
    bad.cu_seqlens_q = c.buf.i32(bad_values.values);
    expect_rejected<UsageError>(c, bad, {bad_values.message});
  }
}

TEST(ValidationErrors, BadCuSeqlensQVarlen) {
  VarlenCase c(VarlenConfig{.validate = true});
  for (const CuSeqlensCase& bad_values : bad_cu_seqlens_q()) {
    SCOPED_TRACE(bad_values.message);
    VarlenArgs bad = c.args;
    bad.cu_seqlens_q = c.buf.i32(bad_values.values);
    expect_rejected<UsageError>(c, bad, {bad_values.message});
  }
}

TEST(ValidationErrors, BadCuSeqlensK) {
  VarlenCase c(VarlenConfig{.validate = true});
  VarlenArgs bad = c.args;
  bad.cu_seqlens_k = c.buf.i32({0, 6, 9});
  expect_rejected<UsageError>(c, bad,
                              {"cu_seqlens_k: expected sequence lengths of at most max_seqlen_k = "
                               "5, got 6 for sequence 0"});
  bad = c.args;
  bad.cu_seqlens_k = c.buf.i32({0, 5, 10});
  expect_rejected<UsageError>(c, bad,
                              {"cu_seqlens_k[2]: expected at most 9 (rows of the tensor), got 10"});
  bad = c.args;
  bad.cu_seqlens_k = c.buf.i32({0, 5, 4});
  expect_rejected<UsageError>(c, bad, {"cu_seqlens_k: expected non-decreasing values"});
}

TEST(ValidationErrors, SequsedQAboveSequenceLength) {
  VarlenCase c(VarlenConfig{.validate = true});
  VarlenArgs bad = c.args;
  bad.seqused_q = c.buf.i32({3, 3});
  expect_rejected<UsageError>(c, bad, {"seqused_q[0]: expected a value in [0, 2], got 3"});
  bad = c.args;
  bad.seqused_q = c.buf.i32({2, -1});
  expect_rejected<UsageError>(c, bad, {"seqused_q[1]: expected a value in [0, 3], got -1"});
}

TEST(ValidationErrors, SequsedKAboveSequenceLength) {
  VarlenCase c(VarlenConfig{.validate = true});
  VarlenArgs bad = c.args;
  bad.seqused_k = c.buf.i32({4, 6});
  expect_rejected<UsageError>(
      c, bad, {"seqused_k[1]: expected a value in [0, 5] (the capacity of the sequence), got 6"});
}

// CPU calls check index values without ExecOptions::validate too (the values are host memory and
// the check costs a few reads); only CUDA calls clamp them instead (tests/cuda). Also through a
// plan, whose run() must reject what the plain call rejects.
TEST(ValidationErrors, CpuCallsCheckIndexValuesWithoutTheOption) {
  const char* env = std::getenv("FLASHJIT_VALIDATE");
  if (env != nullptr && std::string(env) == "1") GTEST_SKIP() << "FLASHJIT_VALIDATE=1 is set";
  KvCase p(KvConfig{.paged = true});
  ASSERT_FALSE(p.args.options.validate);
  KvcacheArgs bad = p.args;
  bad.page_table = p.buf.i32({1 << 30, 2, 1, -5}, {2, 2});
  expect_rejected<UsageError>(p, bad, {"page_table[0, 0]: expected a page id in [0, 4)"});
  bad = p.args;
  bad.cache_seqlens = p.buf.i32({5, 9});
  expect_rejected<UsageError>(p, bad, {"cache_seqlens[1]: expected a value in [0, 8]", "got 9"});

  KvCase c;
  bad = c.args;
  bad.cache_batch_idx = c.buf.i32({1 << 30, -5});
  expect_rejected<UsageError>(c, bad, {"cache_batch_idx[0]: expected a value in [0, 3)"});

  KvCase q(KvConfig{.varlen_q = true});
  bad = q.args;
  bad.cu_seqlens_q = q.buf.i32({0, 1 << 30, 5});
  expect_rejected<UsageError>(q, bad, {"cu_seqlens_q"});

  VarlenCase v;
  ASSERT_FALSE(v.args.options.validate);
  for (const CuSeqlensCase& bad_values : bad_cu_seqlens_q()) {
    SCOPED_TRACE(bad_values.message);
    VarlenArgs bad_v = v.args;
    bad_v.cu_seqlens_q = v.buf.i32(bad_values.values);
    expect_rejected<UsageError>(v, bad_v, {bad_values.message});
  }
  VarlenArgs bad_k = v.args;
  bad_k.cu_seqlens_k = v.buf.i32({0, 5, 10});
  expect_rejected<UsageError>(v, bad_k, {"cu_seqlens_k[2]: expected at most 9"});

  const AttentionPlan plan(p.args);
  ASSERT_EQ(plan.workspace_bytes(), 0u);
  EXPECT_NO_THROW(plan.run(p.args, nullptr));
  KvcacheArgs bad_run = p.args;
  bad_run.cache_seqlens = p.buf.i32({5, -1});
  EXPECT_THROW(
      {
        try {
          plan.run(bad_run, nullptr);
        } catch (const UsageError& e) {
          EXPECT_THAT(e.what(), ::testing::HasSubstr("cache_seqlens[1]"));
          throw;
        }
      },
      UsageError);
  EXPECT_NO_THROW(plan.run(p.args, nullptr));
}

}  // namespace
}  // namespace flashjit::errors_test
