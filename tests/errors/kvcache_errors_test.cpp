// flash_attn_with_kvcache: every documented argument error (spec section 2) raises exactly
// UsageError, or NotSupportedError for the parameters not implemented yet, with a message naming
// the parameter and the expected and actual values; the process stays usable after each error.
#include <gtest/gtest.h>

#include <limits>

#include "error_test_util.h"

namespace flashjit::errors_test {
namespace {

constexpr Device kCuda{DeviceType::kCUDA, 0};

KvConfig paged() { return KvConfig{.paged = true}; }
KvConfig varlen_q() { return KvConfig{.varlen_q = true}; }

TEST(KvcacheErrors, ValidCallsWriteFiniteOutputs) {
  for (const KvConfig& config : {KvConfig{}, paged(), varlen_q()}) {
    KvCase c(config);
    ASSERT_NO_THROW(c.run());
    EXPECT_TRUE(all_finite(c.args.out));
    EXPECT_TRUE(all_finite(*c.args.softmax_lse));
  }
}

// --- ranks, dtypes, strides, pointers ------------------------------------------------------------

TEST(KvcacheErrors, QWrongRank) {
  KvCase c;
  KvcacheArgs bad = c.args;
  bad.q = Tensor::contiguous(c.args.q.data, DType::kBFloat16, {6, 4, 64});
  expect_rejected<UsageError>(c, bad, {"q: expected rank 4", "got rank 3", "(6, 4, 64)"});
}

TEST(KvcacheErrors, QWrongRankWithCuSeqlensQ) {
  KvCase c(varlen_q());
  KvcacheArgs bad = c.args;
  bad.q = Tensor::contiguous(c.args.q.data, DType::kBFloat16, {1, 5, 4, 64});
  expect_rejected<UsageError>(c, bad, {"q: expected rank 3", "got rank 4"});
}

TEST(KvcacheErrors, KCacheWrongRank) {
  KvCase c;
  KvcacheArgs bad = c.args;
  bad.k_cache = Tensor::contiguous(c.args.k_cache.data, DType::kBFloat16, {24, 2, 64});
  expect_rejected<UsageError>(c, bad, {"k_cache: expected rank 4", "got rank 3"});
}

TEST(KvcacheErrors, VCacheWrongRank) {
  KvCase c(paged());
  KvcacheArgs bad = c.args;
  bad.v_cache = Tensor::contiguous(c.args.v_cache.data, DType::kBFloat16, {16, 2, 64});
  expect_rejected<UsageError>(c, bad, {"v_cache: expected rank 4", "got rank 3"});
}

TEST(KvcacheErrors, PageTableWrongRank) {
  KvCase c(paged());
  KvcacheArgs bad = c.args;
  bad.page_table = Tensor::contiguous(c.args.page_table->data, DType::kInt32, {4});
  expect_rejected<UsageError>(c, bad, {"page_table: expected rank 2", "got rank 1"});
}

TEST(KvcacheErrors, PageTableWrongDtype) {
  KvCase c(paged());
  KvcacheArgs bad = c.args;
  bad.page_table->dtype = DType::kInt64;
  expect_rejected<UsageError>(c, bad, {"page_table: expected dtype int32, got int64"});
}

TEST(KvcacheErrors, KCacheDtypeDiffersFromQ) {
  KvCase c;
  KvcacheArgs bad = c.args;
  bad.k_cache.dtype = DType::kFloat16;
  expect_rejected<UsageError>(c, bad, {"k_cache: expected the dtype of q (bf16), got fp16"});
}

TEST(KvcacheErrors, VCacheDtypeDiffersFromQ) {
  KvCase c;
  KvcacheArgs bad = c.args;
  bad.v_cache.dtype = DType::kFloat16;
  expect_rejected<UsageError>(c, bad, {"v_cache: expected the dtype of q (bf16), got fp16"});
}

TEST(KvcacheErrors, Fp8QIsNotSupported) {
  KvCase c;
  KvcacheArgs bad = c.args;
  bad.q.dtype = DType::kFloat8E4M3;
  expect_rejected<NotSupportedError>(c, bad, {"not supported yet", "fp8", "e4m3"});
}

TEST(KvcacheErrors, Int32QIsUsageError) {
  KvCase c;
  KvcacheArgs bad = c.args;
  bad.q.dtype = DType::kInt32;
  expect_rejected<UsageError>(c, bad, {"q: expected dtype fp16, bf16 or fp32, got int32"});
}

TEST(KvcacheErrors, NonUnitLastStride) {
  KvCase c(paged());
  const char* const kMessage = ": expected a contiguous last dimension (stride 1), got stride 2";
  KvcacheArgs bad = c.args;
  bad.q = doubled_strides(c.args.q);
  expect_rejected<UsageError>(c, bad, {std::string("q") + kMessage});
  bad = c.args;
  bad.k_cache = doubled_strides(c.args.k_cache);
  expect_rejected<UsageError>(c, bad, {std::string("k_cache") + kMessage});
  bad = c.args;
  bad.v_cache = doubled_strides(c.args.v_cache);
  expect_rejected<UsageError>(c, bad, {std::string("v_cache") + kMessage});
  bad = c.args;
  bad.out = doubled_strides(c.args.out);
  expect_rejected<UsageError>(c, bad, {std::string("out") + kMessage});
  bad = c.args;
  bad.page_table = doubled_strides(*c.args.page_table);
  expect_rejected<UsageError>(c, bad, {std::string("page_table") + kMessage});
}

TEST(KvcacheErrors, SizesOutOfRange) {
  KvCase c;
  KvcacheArgs bad = c.args;
  bad.q.shape[2] = (int64_t{1} << 32) + 4;
  expect_rejected<UsageError>(
      c, bad, {"q: expected sizes in [0, 2147483647], got shape (2, 3, 4294967300, 64)"});
  bad = c.args;
  bad.k_cache.shape[0] = bad.v_cache.shape[0] = int64_t{1} << 33;
  expect_rejected<UsageError>(c, bad, {"k_cache: expected sizes in [0, 2147483647]"});
  // A paged cache whose capacity per sequence overflows 32 bits though each size fits.
  KvCase p(KvConfig{.paged = true});
  bad = p.args;
  bad.page_table->shape[1] = 1 << 20;
  bad.k_cache.shape[1] = bad.v_cache.shape[1] = 1 << 12;
  expect_rejected<UsageError>(
      p, bad,
      {"page_table: expected max_pages_per_seq x page_size <= 2147483647", "got 1048576 x 4096"});
}

TEST(KvcacheErrors, NegativeStride) {
  KvCase c;
  KvcacheArgs bad = c.args;
  // q's batches in reverse order: a valid view of the same buffer with stride(0) = -768.
  const int64_t s0 = c.args.q.stride(0);
  bad.q.data = static_cast<uint16_t*>(c.args.q.data) + s0;
  bad.q.strides[0] = -s0;
  expect_rejected<UsageError>(c, bad,
                              {"q: expected non-negative strides", "got stride -768 in dim 0"});
  bad = c.args;
  const int64_t k1 = c.args.k_cache.stride(1);
  bad.k_cache.data = static_cast<uint16_t*>(c.args.k_cache.data) + 7 * k1;
  bad.k_cache.strides[1] = -k1;
  expect_rejected<UsageError>(
      c, bad, {"k_cache: expected non-negative strides", "got stride -128 in dim 1"});
}

TEST(KvcacheErrors, NullDataPointer) {
  KvCase c;
  KvcacheArgs bad = c.args;
  bad.q.data = nullptr;
  expect_rejected<UsageError>(c, bad,
                              {"q: expected a data pointer", "got null for shape (2, 3, 4, 64)"});
  bad = c.args;
  bad.v_cache.data = nullptr;
  expect_rejected<UsageError>(c, bad, {"v_cache: expected a data pointer", "got null"});
  bad = c.args;
  bad.out.data = nullptr;
  expect_rejected<UsageError>(c, bad, {"out: expected a data pointer", "got null"});
}

TEST(KvcacheErrors, MixedDevices) {
  KvCase c;
  KvcacheArgs bad = c.args;
  bad.k_cache.device = kCuda;
  expect_rejected<UsageError>(c, bad,
                              {"k_cache: expected device cpu (the device of q), got cuda:0"});
  bad = c.args;
  bad.out.device = kCuda;
  expect_rejected<UsageError>(c, bad, {"out: expected device cpu", "got cuda:0"});
  bad = c.args;
  bad.cache_seqlens->device = kCuda;
  expect_rejected<UsageError>(c, bad, {"cache_seqlens: expected device cpu", "got cuda:0"});
  bad = c.args;
  bad.softmax_lse->device = kCuda;
  expect_rejected<UsageError>(c, bad, {"softmax_lse: expected device cpu", "got cuda:0"});
}

// --- heads and head dims -------------------------------------------------------------------------

TEST(KvcacheErrors, NumHeadsNotAMultipleOfKvHeads) {
  KvCase c;
  KvcacheArgs bad = c.args;
  bad.q = Tensor::contiguous(c.args.q.data, DType::kBFloat16, {2, 3, 3, 64});
  expect_rejected<UsageError>(c, bad, {"num_heads_k: expected a divisor of num_heads (3), got 2"});
}

TEST(KvcacheErrors, HeadDimNotAMultipleOf8) {
  KvCase c;
  KvCase bad(KvConfig{.d = 60});
  expect_rejected<UsageError>(
      c, bad.args, {"head_dim (q.shape[-1]): expected a multiple of 8 in [8, 256], got 60"});
}

TEST(KvcacheErrors, HeadDimAbove256) {
  KvCase c;
  KvCase bad(KvConfig{.d = 264, .dv = 264});
  expect_rejected<UsageError>(c, bad.args, {"head_dim (q.shape[-1])", "[8, 256]", "got 264"});
}

TEST(KvcacheErrors, HeadDimVAbove512) {
  KvCase c;
  KvCase bad(KvConfig{.dv = 520});
  expect_rejected<UsageError>(
      c, bad.args, {"head_dim_v (v.shape[-1]): expected a multiple of 8 in [8, 512], got 520"});
}

TEST(KvcacheErrors, HeadDimVNotAMultipleOf8) {
  KvCase c;
  KvCase bad(KvConfig{.dv = 60});
  expect_rejected<UsageError>(
      c, bad.args, {"head_dim_v (v.shape[-1]): expected a multiple of 8 in [8, 512], got 60"});
}

TEST(KvcacheErrors, PagesOfNoRows) {
  KvCase c(paged());
  KvcacheArgs bad = c.args;
  bad.k_cache.shape[1] = bad.v_cache.shape[1] = 0;
  expect_rejected<UsageError>(c, bad, {"k_cache: expected page_size (dim 1) >= 1, got 0"});
}

TEST(KvcacheErrors, CacheOfNoRows) {
  KvCase c;
  KvcacheArgs bad = c.args;
  bad.cache_batch_idx = c.buf.i32({0, 0});
  bad.k_cache.shape[0] = bad.v_cache.shape[0] = 0;
  expect_rejected<UsageError>(c, bad, {"k_cache: expected at least one row, got 0"});
}

TEST(KvcacheErrors, CacheLeftpadWithoutCacheSeqlens) {
  KvCase c;
  KvcacheArgs bad = c.args;
  bad.cache_seqlens.reset();
  bad.cache_leftpad = c.buf.i32({0, 0});
  expect_rejected<UsageError>(
      c, bad, {"cache_seqlens: expected a tensor since cache_leftpad is given", "got none"});
}

TEST(KvcacheErrors, KCacheHeadDimDiffersFromQ) {
  KvCase c;
  KvcacheArgs bad = c.args;
  bad.k_cache = Tensor::contiguous(c.args.k_cache.data, DType::kBFloat16, {3, 8, 2, 56});
  expect_rejected<UsageError>(
      c, bad, {"k_cache: expected shape (3, 8, 2, 64) (b_k, s_k, h_k, d), got (3, 8, 2, 56)"});
  KvCase p(paged());
  KvcacheArgs bad_paged = p.args;
  bad_paged.k_cache = Tensor::contiguous(p.args.k_cache.data, DType::kBFloat16, {4, 4, 2, 56});
  expect_rejected<UsageError>(
      p, bad_paged,
      {"k_cache: expected shape (4, 4, 2, 64) (num_pages, page_size, h_k, d)",
       "got (4, 4, 2, 56)"});
}

TEST(KvcacheErrors, VCacheShapeDiffersFromKCache) {
  KvCase c;
  KvcacheArgs bad = c.args;
  bad.v_cache = Tensor::contiguous(c.args.v_cache.data, DType::kBFloat16, {3, 7, 2, 64});
  expect_rejected<UsageError>(
      c, bad, {"v_cache: expected shape (3, 8, 2, 64) (b_k, s_k, h_k, dv), got (3, 7, 2, 64)"});
  KvCase p(paged());
  KvcacheArgs bad_paged = p.args;
  bad_paged.v_cache = Tensor::contiguous(p.args.v_cache.data, DType::kBFloat16, {3, 4, 2, 64});
  expect_rejected<UsageError>(
      p, bad_paged,
      {"v_cache: expected shape (4, 4, 2, 64) (num_pages, page_size, h_k, dv)",
       "got (3, 4, 2, 64)"});
}

// --- out and softmax_lse -------------------------------------------------------------------------

TEST(KvcacheErrors, OutWrongShape) {
  KvCase c;
  KvcacheArgs bad = c.args;
  bad.out = Tensor::contiguous(c.args.out.data, DType::kBFloat16, {2, 3, 4, 32});
  expect_rejected<UsageError>(
      c, bad, {"out: expected shape (2, 3, 4, 64) (b, s_q, h, dv), got (2, 3, 4, 32)"});
  KvCase v(varlen_q());
  KvcacheArgs bad_varlen = v.args;
  bad_varlen.out = Tensor::contiguous(v.args.out.data, DType::kBFloat16, {4, 4, 64});
  expect_rejected<UsageError>(v, bad_varlen,
                              {"out: expected shape (5, 4, 64) (total_q, h, dv), got (4, 4, 64)"});
}

TEST(KvcacheErrors, OutWrongDtype) {
  KvCase c;
  KvcacheArgs bad = c.args;
  bad.out.dtype = DType::kFloat16;
  expect_rejected<UsageError>(c, bad, {"out: expected the dtype of q (bf16), got fp16"});
}

TEST(KvcacheErrors, SoftmaxLseMissing) {
  KvCase c;
  KvcacheArgs bad = c.args;
  bad.softmax_lse.reset();
  expect_rejected<UsageError>(
      c, bad,
      {"softmax_lse: expected a buffer (b, h, s_q) since return_softmax_lse is set, got none"});
}

TEST(KvcacheErrors, SoftmaxLseWrongDtype) {
  KvCase c;
  KvcacheArgs bad = c.args;
  bad.softmax_lse->dtype = DType::kBFloat16;
  expect_rejected<UsageError>(c, bad, {"softmax_lse: expected dtype fp32, got bf16"});
}

TEST(KvcacheErrors, SoftmaxLseWrongShape) {
  KvCase c;
  KvcacheArgs bad = c.args;
  bad.softmax_lse = Tensor::contiguous(c.args.softmax_lse->data, DType::kFloat32, {2, 3, 4});
  expect_rejected<UsageError>(c, bad,
                              {"softmax_lse: expected shape (2, 4, 3) (b, h, s_q), got (2, 3, 4)"});
  KvCase v(varlen_q());
  KvcacheArgs bad_varlen = v.args;
  bad_varlen.softmax_lse = Tensor::contiguous(v.args.softmax_lse->data, DType::kFloat32, {5, 4});
  expect_rejected<UsageError>(v, bad_varlen,
                              {"softmax_lse: expected shape (4, 5) (h, total_q), got (5, 4)"});
}

// --- index tensors -------------------------------------------------------------------------------

TEST(KvcacheErrors, CuSeqlensQInt64) {
  KvCase c(varlen_q());
  KvcacheArgs bad = c.args;
  bad.cu_seqlens_q = c.buf.i64({0, 2, 5});
  expect_rejected<UsageError>(c, bad, {"cu_seqlens_q: expected dtype int32, got int64"});
}

TEST(KvcacheErrors, CuSeqlensQNotContiguous) {
  KvCase c(varlen_q());
  KvcacheArgs bad = c.args;
  bad.cu_seqlens_q = strided_i32(c.buf, {0, 2, 5});
  expect_rejected<UsageError>(
      c, bad, {"cu_seqlens_q: expected a contiguous tensor, got strides (2) for shape (3,)"});
}

TEST(KvcacheErrors, CuSeqlensQWrongRank) {
  KvCase c(varlen_q());
  KvcacheArgs bad = c.args;
  bad.cu_seqlens_q = c.buf.i32({0, 2, 5}, {1, 3});
  expect_rejected<UsageError>(c, bad, {"cu_seqlens_q: expected shape (batch + 1,), got (1, 3)"});
}

TEST(KvcacheErrors, MaxSeqlenQMissingWithCuSeqlensQ) {
  KvCase c(varlen_q());
  KvcacheArgs bad = c.args;
  bad.max_seqlen_q.reset();
  expect_rejected<UsageError>(
      c, bad, {"max_seqlen_q: expected a value since cu_seqlens_q is given, got none"});
  bad = c.args;
  bad.max_seqlen_q = -1;
  expect_rejected<UsageError>(c, bad, {"max_seqlen_q: expected >= 0, got -1"});
}

TEST(KvcacheErrors, CacheSeqlensInt64) {
  KvCase c;
  KvcacheArgs bad = c.args;
  bad.cache_seqlens = c.buf.i64({5, 8});
  expect_rejected<UsageError>(c, bad, {"cache_seqlens: expected dtype int32, got int64"});
}

TEST(KvcacheErrors, CacheSeqlensWrongLength) {
  KvCase c;
  KvcacheArgs bad = c.args;
  bad.cache_seqlens = c.buf.i32({5, 8, 8});
  expect_rejected<UsageError>(c, bad, {"cache_seqlens: expected shape (2,)", "got (3,)"});
}

TEST(KvcacheErrors, CacheBatchIdxWrongLength) {
  KvCase c;
  KvcacheArgs bad = c.args;
  bad.cache_batch_idx = c.buf.i32({2, 0, 1});
  expect_rejected<UsageError>(c, bad, {"cache_batch_idx: expected shape (2,)", "got (3,)"});
}

TEST(KvcacheErrors, CacheBatchIdxWrongDtype) {
  KvCase c;
  KvcacheArgs bad = c.args;
  bad.cache_batch_idx = c.buf.i64({2, 0});
  expect_rejected<UsageError>(c, bad, {"cache_batch_idx: expected dtype int32, got int64"});
}

TEST(KvcacheErrors, NoCacheBatchIdxWithMoreCacheRowsThanBatch) {
  KvCase c;
  KvcacheArgs bad = c.args;
  bad.cache_batch_idx.reset();
  expect_rejected<UsageError>(
      c, bad,
      {"k_cache: expected 2 rows (the batch of q) since cache_batch_idx is not given, got 3"});
  KvCase p(paged());
  KvcacheArgs bad_paged = p.args;
  bad_paged.page_table = p.buf.i32({3, 2, 1, 0, 0, 1}, {3, 2});
  expect_rejected<UsageError>(p, bad_paged,
                              {"page_table: expected 2 rows (the batch of q)", "got 3"});
}

// --- scalars -------------------------------------------------------------------------------------

TEST(KvcacheErrors, WindowSizeBelowMinusOne) {
  KvCase c;
  KvcacheArgs bad = c.args;
  bad.window_size = {-2, 0};
  expect_rejected<UsageError>(c, bad,
                              {"window_size: expected values >= -1 (-1 = unbounded), got (-2, 0)"});
}

TEST(KvcacheErrors, NegativeAttentionChunk) {
  KvCase c;
  KvcacheArgs bad = c.args;
  bad.attention_chunk = -1;
  expect_rejected<UsageError>(c, bad, {"attention_chunk: expected >= 0 (0 = off), got -1"});
}

TEST(KvcacheErrors, NegativeSoftcap) {
  KvCase c;
  KvcacheArgs bad = c.args;
  bad.softcap = -1;
  expect_rejected<UsageError>(c, bad, {"softcap: expected a finite value >= 0 (0 = off), got -1"});
}

TEST(KvcacheErrors, NanSoftcap) {
  KvCase c;
  KvcacheArgs bad = c.args;
  bad.softcap = std::numeric_limits<double>::quiet_NaN();
  expect_rejected<UsageError>(c, bad, {"softcap: expected a finite value >= 0", "got nan"});
}

TEST(KvcacheErrors, InfiniteSoftmaxScale) {
  KvCase c;
  KvcacheArgs bad = c.args;
  bad.softmax_scale = std::numeric_limits<double>::infinity();
  expect_rejected<UsageError>(c, bad, {"softmax_scale: expected a finite value, got inf"});
}

TEST(KvcacheErrors, NegativeSmMargin) {
  KvCase c;
  KvcacheArgs bad = c.args;
  bad.sm_margin = -1;
  expect_rejected<UsageError>(c, bad, {"sm_margin: expected >= 0, got -1"});
}

TEST(KvcacheErrors, NumSplitsAbove256) {
  KvCase c;
  KvcacheArgs bad = c.args;
  bad.num_splits = 300;
  expect_rejected<UsageError>(c, bad, {"num_splits: expected <= 256, got 300"});
}

// --- sinks ---------------------------------------------------------------------------------------

TEST(KvcacheErrors, SinksWrongShape) {
  KvCase c;
  KvcacheArgs bad = c.args;
  bad.sinks = c.buf.f32({3});
  expect_rejected<UsageError>(c, bad, {"sinks: expected shape (4,) (num_heads,), got (3,)"});
}

TEST(KvcacheErrors, SinksInt32) {
  KvCase c;
  KvcacheArgs bad = c.args;
  bad.sinks = c.buf.i32({0, 0, 0, 0});
  expect_rejected<UsageError>(c, bad, {"sinks: expected dtype bf16, fp16 or fp32, got int32"});
}

TEST(KvcacheErrors, SinksNotContiguous) {
  KvCase c;
  KvcacheArgs bad = c.args;
  const Tensor sinks = c.buf.f32({8});
  bad.sinks = Tensor::strided(sinks.data, DType::kFloat32, {4}, {2});
  expect_rejected<UsageError>(
      c, bad, {"sinks: expected a contiguous tensor, got strides (2) for shape (4,)"});
}

// --- parameters not supported yet ----------------------------------------------------------------

TEST(KvcacheErrors, NotSupportedParameters) {
  KvCase c;
  const Tensor qv = c.buf.half({2, 3, 4, 64});
  const Tensor metadata = c.buf.i32({0, 0});
  const Tensor descale = c.buf.f32({2, 2}, 1.0f);
  struct Case {
    void (*mutate)(KvcacheArgs&, const Tensor&);
    const Tensor* tensor;
    std::string name;
  };
  const std::vector<Case> cases = {
      {[](KvcacheArgs& a, const Tensor& t) { a.qv = t; }, &qv, "qv"},
      {[](KvcacheArgs& a, const Tensor& t) { a.q_descale = t; }, &descale, "q_descale"},
      {[](KvcacheArgs& a, const Tensor& t) { a.k_descale = t; }, &descale, "k_descale"},
      {[](KvcacheArgs& a, const Tensor& t) { a.v_descale = t; }, &descale, "v_descale"},
      {[](KvcacheArgs& a, const Tensor& t) { a.scheduler_metadata = t; }, &metadata,
       "scheduler_metadata"},
  };
  for (const Case& k : cases) {
    SCOPED_TRACE(k.name);
    KvcacheArgs bad = c.args;
    k.mutate(bad, *k.tensor);
    expect_rejected<NotSupportedError>(c, bad, {"not supported yet: ", k.name});
  }
  KvcacheArgs bad = c.args;
  bad.score_mod = "def score_mod(score, b, h, q_idx, kv_idx): return score";
  expect_rejected<NotSupportedError>(c, bad, {"not supported yet: score_mod"});
}

// --- k / v (KV append), cu_seqlens_k_new
// ------------------------------------------------------------

// KvCase plus new keys and values k / v (2, 2, 2, 64) appended at cache_seqlens {4, 6}, so that
// both sequences have room for them; optionally rotary tables (8, 16) (rotary_dim 32).
class AppendCase : public KvCase {
 public:
  static constexpr int kSeqlenNew = 2, kRotaryRows = 8, kRotaryCols = 16;

  explicit AppendCase(const KvConfig& c = {}, bool rotary = false) : KvCase(c) {
    args.k = buf.half({kBatch, kSeqlenNew, c.h_k, c.d});
    args.v = buf.half({kBatch, kSeqlenNew, c.h_k, c.dv});
    args.cache_seqlens = buf.i32({4, 6});
    if (rotary) {
      args.rotary_cos = buf.half({kRotaryRows, kRotaryCols});
      args.rotary_sin = buf.half({kRotaryRows, kRotaryCols});
    }
  }
};

// An append writes the cache: caches whose rows overlap are rejected then (and only then).
TEST(KvcacheErrors, AppendToOverlappingCache) {
  AppendCase c;
  KvcacheArgs bad = c.args;
  bad.k_cache.strides[1] = 64;  // (3, 8, 2, 64): rows 64 elements apart, 128 long
  expect_rejected<UsageError>(
      c, bad,
      {"k_cache: expected a view whose elements do not overlap (it is written), got strides "
       "(1024, 64, 64, 1) for shape (3, 8, 2, 64)"});
  KvCase read_only;
  KvcacheArgs broadcast = read_only.args;
  broadcast.k_cache.strides[2] = 0;  // both KV heads read one head's keys
  EXPECT_NO_THROW(flash_attn_with_kvcache(broadcast));
}

// The new parameters: valid calls with each of them run and write finite outputs.
TEST(KvcacheErrors, ValidCallsWithNewParametersWriteFiniteOutputs) {
  {
    AppendCase c;
    ASSERT_NO_THROW(c.run());
    EXPECT_TRUE(all_finite(c.args.out));
  }
  {
    AppendCase c(KvConfig{.validate = true}, /*rotary=*/true);
    ASSERT_NO_THROW(c.run());
    EXPECT_TRUE(all_finite(c.args.out));
    c.args.rotary_seqlens = c.buf.i32({0, 3});
    ASSERT_NO_THROW(c.run());
    EXPECT_TRUE(all_finite(c.args.out));
  }
  {
    AppendCase c(KvConfig{.paged = true, .validate = true});
    c.args.k = c.buf.half({3, 2, 64});
    c.args.v = c.buf.half({3, 2, 64});
    c.args.cu_seqlens_k_new = c.buf.i32({0, 1, 3});
    ASSERT_NO_THROW(c.run());
    EXPECT_TRUE(all_finite(c.args.out));
  }
  {
    KvCase c(KvConfig{.validate = true});
    c.args.cache_leftpad = c.buf.i32({1, 3});
    ASSERT_NO_THROW(c.run());
    EXPECT_TRUE(all_finite(c.args.out));
  }
  for (int num_splits : {2, 3}) {
    KvCase c;
    c.args.num_splits = num_splits;
    ASSERT_NO_THROW(c.run()) << num_splits;
    EXPECT_TRUE(all_finite(c.args.out));
    EXPECT_TRUE(all_finite(*c.args.softmax_lse));
  }
}

TEST(KvcacheErrors, OnlyKOrOnlyV) {
  AppendCase c;
  KvcacheArgs bad = c.args;
  bad.v.reset();
  expect_rejected<UsageError>(c, bad, {"k / v: expected both or neither, got only k"});
  bad = c.args;
  bad.k.reset();
  expect_rejected<UsageError>(c, bad, {"k / v: expected both or neither, got only v"});
}

TEST(KvcacheErrors, KWithoutCacheSeqlens) {
  AppendCase c;
  KvcacheArgs bad = c.args;
  bad.cache_seqlens.reset();
  expect_rejected<UsageError>(
      c, bad, {"cache_seqlens: expected a tensor since k / v are given", "got none"});
}

TEST(KvcacheErrors, KWrongRank) {
  AppendCase c;
  KvcacheArgs bad = c.args;
  bad.k = Tensor::contiguous(c.args.k->data, DType::kBFloat16, {4, 2, 64});
  expect_rejected<UsageError>(
      c, bad, {"k: expected rank 4 (b, s_new, h_k, d)", "got rank 3 with shape (4, 2, 64)"});
  bad = c.args;
  bad.v = Tensor::contiguous(c.args.v->data, DType::kBFloat16, {8, 64});
  expect_rejected<UsageError>(c, bad, {"v: expected rank 4 (b, s_new, h_k, dv)", "got rank 2"});
}

TEST(KvcacheErrors, KWrongShape) {
  AppendCase c;
  KvcacheArgs bad = c.args;
  bad.k = Tensor::contiguous(c.args.k->data, DType::kBFloat16, {2, 2, 2, 56});
  expect_rejected<UsageError>(
      c, bad, {"k: expected shape (2, 2, 2, 64) (b, s_new, h_k, d), got (2, 2, 2, 56)"});
  bad = c.args;
  bad.k = Tensor::contiguous(c.args.k->data, DType::kBFloat16, {1, 2, 2, 64});
  expect_rejected<UsageError>(c, bad, {"k: expected shape (2, 2, 2, 64)", "got (1, 2, 2, 64)"});
  bad = c.args;
  bad.k = Tensor::contiguous(c.args.k->data, DType::kBFloat16, {2, 2, 1, 64});
  expect_rejected<UsageError>(c, bad, {"k: expected shape (2, 2, 2, 64)", "got (2, 2, 1, 64)"});
  bad = c.args;
  bad.v = Tensor::contiguous(c.args.v->data, DType::kBFloat16, {2, 1, 2, 64});
  expect_rejected<UsageError>(
      c, bad, {"v: expected shape (2, 2, 2, 64) (b, s_new, h_k, dv), got (2, 1, 2, 64)"});
}

TEST(KvcacheErrors, KDtypeDiffersFromQ) {
  AppendCase c;
  KvcacheArgs bad = c.args;
  bad.k->dtype = DType::kFloat16;
  expect_rejected<UsageError>(c, bad, {"k: expected the dtype of q (bf16), got fp16"});
  bad = c.args;
  bad.v->dtype = DType::kFloat32;
  expect_rejected<UsageError>(c, bad, {"v: expected the dtype of q (bf16), got fp32"});
}

TEST(KvcacheErrors, NewKvLayout) {
  AppendCase c;
  KvcacheArgs bad = c.args;
  bad.v = doubled_strides(*c.args.v);
  expect_rejected<UsageError>(c, bad,
                              {"v: expected a contiguous last dimension (stride 1), got stride 2"});
  bad = c.args;
  bad.k = doubled_strides(*c.args.k);
  expect_rejected<UsageError>(c, bad,
                              {"k: expected a contiguous last dimension (stride 1), got stride 2"});
  bad = c.args;
  bad.k->data = nullptr;
  expect_rejected<UsageError>(c, bad,
                              {"k: expected a data pointer", "got null for shape (2, 2, 2, 64)"});
  bad = c.args;
  bad.v->device = kCuda;
  expect_rejected<UsageError>(c, bad, {"v: expected device cpu (the device of q), got cuda:0"});
  bad = c.args;
  const int64_t s1 = c.args.k->stride(1);
  bad.k->data = static_cast<uint16_t*>(c.args.k->data) + s1;
  bad.k->strides[1] = -s1;
  expect_rejected<UsageError>(c, bad,
                              {"k: expected non-negative strides", "got stride -128 in dim 1"});
}

TEST(KvcacheErrors, SeqlenNewAboveCacheCapacity) {
  AppendCase c;
  KvcacheArgs bad = c.args;
  bad.k = c.buf.half({2, 9, 2, 64});
  bad.v = c.buf.half({2, 9, 2, 64});
  expect_rejected<UsageError>(
      c, bad,
      {"k: expected at most s_k = 8 new keys per sequence (the capacity of the cache), got "
       "s_new = 9"});
  AppendCase p(paged());
  KvcacheArgs bad_paged = p.args;
  bad_paged.k = p.buf.half({2, 9, 2, 64});
  bad_paged.v = p.buf.half({2, 9, 2, 64});
  expect_rejected<UsageError>(p, bad_paged, {"k: expected at most s_k = 8", "got s_new = 9"});
}

TEST(KvcacheErrors, CuSeqlensKNewWithoutK) {
  KvCase c;
  KvcacheArgs bad = c.args;
  bad.cu_seqlens_k_new = c.buf.i32({0, 1, 3});
  expect_rejected<UsageError>(
      c, bad, {"cu_seqlens_k_new: expected none since k / v are not given, got a tensor"});
}

TEST(KvcacheErrors, CuSeqlensKNewWrongShapeOrDtype) {
  AppendCase c;
  c.args.k = c.buf.half({3, 2, 64});
  c.args.v = c.buf.half({3, 2, 64});
  c.args.cu_seqlens_k_new = c.buf.i32({0, 1, 3});
  KvcacheArgs bad = c.args;
  bad.cu_seqlens_k_new = c.buf.i32({0, 3});
  expect_rejected<UsageError>(c, bad,
                              {"cu_seqlens_k_new: expected shape (3,) (batch + 1,), got (2,)"});
  bad = c.args;
  bad.cu_seqlens_k_new = c.buf.i32({0, 1, 3}, {1, 3});
  expect_rejected<UsageError>(c, bad, {"cu_seqlens_k_new: expected shape (3,)", "got (1, 3)"});
  bad = c.args;
  bad.cu_seqlens_k_new = c.buf.i64({0, 1, 3});
  expect_rejected<UsageError>(c, bad, {"cu_seqlens_k_new: expected dtype int32, got int64"});
  bad = c.args;
  bad.cu_seqlens_k_new = strided_i32(c.buf, {0, 1, 3});
  expect_rejected<UsageError>(
      c, bad, {"cu_seqlens_k_new: expected a contiguous tensor, got strides (2) for shape (3,)"});
}

TEST(KvcacheErrors, KRank4WithCuSeqlensKNew) {
  AppendCase c;
  KvcacheArgs bad = c.args;
  bad.cu_seqlens_k_new = c.buf.i32({0, 2, 4});
  expect_rejected<UsageError>(c, bad,
                              {"k: expected rank 3 (total_k_new, h_k, d) with cu_seqlens_k_new",
                               "got rank 4", "(2, 2, 2, 64)"});
  bad = c.args;
  bad.cu_seqlens_k_new = c.buf.i32({0, 2, 4});
  bad.k = c.buf.half({4, 2, 64});
  expect_rejected<UsageError>(
      c, bad, {"v: expected rank 3 (total_k_new, h_k, dv) with cu_seqlens_k_new", "got rank 4"});
  bad = c.args;
  bad.cu_seqlens_k_new = c.buf.i32({0, 2, 4});
  bad.k = c.buf.half({4, 2, 64});
  bad.v = c.buf.half({3, 2, 64});
  expect_rejected<UsageError>(
      c, bad, {"v: expected shape (4, 2, 64) (total_k_new, h_k, dv), got (3, 2, 64)"});
}

// --- rotary_cos / rotary_sin / rotary_seqlens
// ------------------------------------------------------

TEST(KvcacheErrors, RotaryWithoutK) {
  KvCase c;
  KvcacheArgs bad = c.args;
  bad.rotary_cos = c.buf.half({8, 16});
  bad.rotary_sin = c.buf.half({8, 16});
  expect_rejected<UsageError>(c, bad,
                              {"rotary_cos / rotary_sin: expected none since k / v (the keys to "
                               "rotate) are not given, got tables"});
}

TEST(KvcacheErrors, OnlyRotaryCosOrOnlyRotarySin) {
  AppendCase c(KvConfig{}, /*rotary=*/true);
  KvcacheArgs bad = c.args;
  bad.rotary_sin.reset();
  expect_rejected<UsageError>(
      c, bad, {"rotary_cos / rotary_sin: expected both or neither, got only rotary_cos"});
  bad = c.args;
  bad.rotary_cos.reset();
  expect_rejected<UsageError>(
      c, bad, {"rotary_cos / rotary_sin: expected both or neither, got only rotary_sin"});
}

TEST(KvcacheErrors, RotaryWrongRankOrShape) {
  AppendCase c(KvConfig{}, /*rotary=*/true);
  KvcacheArgs bad = c.args;
  bad.rotary_cos = Tensor::contiguous(c.args.rotary_cos->data, DType::kBFloat16, {128});
  expect_rejected<UsageError>(
      c, bad, {"rotary_cos: expected rank 2 (seqlen_ro, rotary_dim / 2)", "got rank 1"});
  bad = c.args;
  bad.rotary_sin = Tensor::contiguous(c.args.rotary_sin->data, DType::kBFloat16, {8, 8});
  expect_rejected<UsageError>(
      c, bad,
      {"rotary_sin: expected shape (8, 16) (seqlen_ro, rotary_dim / 2) as rotary_cos, got (8, "
       "8)"});
  bad = c.args;
  bad.rotary_sin = Tensor::contiguous(c.args.rotary_sin->data, DType::kBFloat16, {16, 8});
  expect_rejected<UsageError>(c, bad, {"rotary_sin: expected shape (8, 16)", "got (16, 8)"});
}

TEST(KvcacheErrors, RotaryDimNotAMultipleOf16) {
  AppendCase c(KvConfig{}, /*rotary=*/true);
  KvcacheArgs bad = c.args;
  bad.rotary_cos = c.buf.half({8, 12});
  bad.rotary_sin = c.buf.half({8, 12});
  expect_rejected<UsageError>(
      c, bad, {"rotary_cos: expected rotary_dim = 2 * shape[1] to be a multiple of 16, got 24"});
  bad.rotary_cos = c.buf.half({8, 4});
  bad.rotary_sin = c.buf.half({8, 4});
  expect_rejected<UsageError>(c, bad, {"rotary_cos", "a multiple of 16, got 8"});
}

TEST(KvcacheErrors, RotaryDimAboveHeadDim) {
  AppendCase c(KvConfig{}, /*rotary=*/true);
  KvcacheArgs bad = c.args;
  bad.rotary_cos = c.buf.half({8, 40});
  bad.rotary_sin = c.buf.half({8, 40});
  expect_rejected<UsageError>(
      c, bad, {"rotary_cos: expected rotary_dim = 2 * shape[1] in [16, head_dim = 64], got 80"});
  bad.rotary_cos = c.buf.half({8, 0});
  bad.rotary_sin = c.buf.half({8, 0});
  expect_rejected<UsageError>(c, bad, {"rotary_cos", "[16, head_dim = 64], got 0"});
}

TEST(KvcacheErrors, RotaryDtypeDiffersFromQ) {
  AppendCase c(KvConfig{}, /*rotary=*/true);
  KvcacheArgs bad = c.args;
  bad.rotary_cos->dtype = DType::kFloat16;
  expect_rejected<UsageError>(c, bad, {"rotary_cos: expected the dtype of q (bf16), got fp16"});
  bad = c.args;
  bad.rotary_sin = c.buf.f32({8, 16});
  expect_rejected<UsageError>(c, bad, {"rotary_sin: expected the dtype of q (bf16), got fp32"});
}

TEST(KvcacheErrors, RotaryTablesNotContiguous) {
  AppendCase c(KvConfig{}, /*rotary=*/true);
  KvcacheArgs bad = c.args;
  bad.rotary_sin = doubled_strides(*c.args.rotary_sin);
  expect_rejected<UsageError>(c, bad,
                              {"rotary_sin: expected a contiguous tensor", "got strides ("});
  bad = c.args;
  bad.rotary_cos->device = kCuda;
  expect_rejected<UsageError>(c, bad, {"rotary_cos: expected device cpu", "got cuda:0"});
}

TEST(KvcacheErrors, RotaryTableShorterThanCache) {
  AppendCase c(KvConfig{}, /*rotary=*/true);
  KvcacheArgs bad = c.args;
  bad.rotary_cos = c.buf.half({7, 16});
  bad.rotary_sin = c.buf.half({7, 16});
  expect_rejected<UsageError>(
      c, bad,
      {"rotary_cos: expected at least s_k = 8 rows (one per position of the cache), got 7"});
}

TEST(KvcacheErrors, RotarySeqlensWithoutRotaryTables) {
  AppendCase c;
  KvcacheArgs bad = c.args;
  bad.rotary_seqlens = c.buf.i32({0, 0});
  const char* const kMessage =
      "rotary_seqlens: expected none since rotary_cos / rotary_sin are not given, got a tensor";
  expect_rejected<UsageError>(c, bad, {kMessage});
  KvCase plain;
  KvcacheArgs bad_plain = plain.args;
  bad_plain.rotary_seqlens = plain.buf.i32({0, 0});
  expect_rejected<UsageError>(plain, bad_plain, {kMessage});
}

TEST(KvcacheErrors, RotarySeqlensWrongDtypeOrShape) {
  AppendCase c(KvConfig{}, /*rotary=*/true);
  KvcacheArgs bad = c.args;
  bad.rotary_seqlens = c.buf.i64({0, 0});
  expect_rejected<UsageError>(c, bad, {"rotary_seqlens: expected dtype int32, got int64"});
  bad = c.args;
  bad.rotary_seqlens = c.buf.i32({0, 0, 0});
  expect_rejected<UsageError>(c, bad, {"rotary_seqlens: expected shape (2,) (batch,), got (3,)"});
}

// --- cache_leftpad -------------------------------------------------------------------------------

TEST(KvcacheErrors, CacheLeftpadWrongShapeOrDtype) {
  KvCase c;
  KvcacheArgs bad = c.args;
  bad.cache_leftpad = c.buf.i32({0, 0, 0});
  expect_rejected<UsageError>(c, bad, {"cache_leftpad: expected shape (2,) (batch,), got (3,)"});
  bad = c.args;
  bad.cache_leftpad = c.buf.i64({0, 0});
  expect_rejected<UsageError>(c, bad, {"cache_leftpad: expected dtype int32, got int64"});
  bad = c.args;
  bad.cache_leftpad = strided_i32(c.buf, {0, 0});
  expect_rejected<UsageError>(
      c, bad, {"cache_leftpad: expected a contiguous tensor, got strides (2) for shape (2,)"});
  bad = c.args;
  bad.cache_leftpad = c.buf.i32({0, 0});
  bad.cache_leftpad->device = kCuda;
  expect_rejected<UsageError>(c, bad, {"cache_leftpad: expected device cpu", "got cuda:0"});
}

// --- validation mode: values of the new index tensors --------------------------------------------

TEST(KvcacheErrors, ValidateAppendPastCapacity) {
  AppendCase c(KvConfig{.validate = true});
  KvcacheArgs bad = c.args;
  bad.cache_seqlens = c.buf.i32({4, 7});
  expect_rejected<UsageError>(
      c, bad,
      {"k: appending 2 keys to sequence 1 at cache_seqlens[1] = 7 needs 9 rows, expected at "
       "most the capacity 8"});
  AppendCase p(KvConfig{.paged = true, .validate = true});
  KvcacheArgs bad_paged = p.args;
  bad_paged.cache_seqlens = p.buf.i32({8, 0});
  expect_rejected<UsageError>(
      p, bad_paged, {"k: appending 2 keys to sequence 0 at cache_seqlens[0] = 8 needs 10 rows"});
}

TEST(KvcacheErrors, ValidateAppendPastCapacityWithCuSeqlensKNew) {
  AppendCase c(KvConfig{.validate = true});
  c.args.k = c.buf.half({3, 2, 64});
  c.args.v = c.buf.half({3, 2, 64});
  c.args.cu_seqlens_k_new = c.buf.i32({0, 1, 3});
  KvcacheArgs bad = c.args;
  bad.cu_seqlens_k_new = c.buf.i32({0, 0, 3});
  expect_rejected<UsageError>(
      c, bad, {"k: appending 3 keys to sequence 1 at cache_seqlens[1] = 6 needs 9 rows"});
}

TEST(KvcacheErrors, ValidateCuSeqlensKNewValues) {
  AppendCase c(KvConfig{.validate = true});
  c.args.k = c.buf.half({3, 2, 64});
  c.args.v = c.buf.half({3, 2, 64});
  c.args.cu_seqlens_k_new = c.buf.i32({0, 1, 3});
  KvcacheArgs bad = c.args;
  bad.cu_seqlens_k_new = c.buf.i32({0, 3, 2});
  expect_rejected<UsageError>(
      c, bad,
      {"cu_seqlens_k_new: expected non-decreasing values, got cu_seqlens_k_new[1] = 3 > "
       "cu_seqlens_k_new[2] = 2"});
  bad = c.args;
  bad.cu_seqlens_k_new = c.buf.i32({1, 2, 3});
  expect_rejected<UsageError>(c, bad, {"cu_seqlens_k_new[0]: expected 0, got 1"});
  bad = c.args;
  bad.cu_seqlens_k_new = c.buf.i32({0, 1, 4});
  expect_rejected<UsageError>(
      c, bad, {"cu_seqlens_k_new[2]: expected at most 3 (rows of the tensor), got 4"});
  // A sequence with more new keys than the cache has rows (s_k = 8).
  bad = c.args;
  bad.k = c.buf.half({10, 2, 64});
  bad.v = c.buf.half({10, 2, 64});
  bad.cu_seqlens_k_new = c.buf.i32({0, 9, 10});
  expect_rejected<UsageError>(c, bad,
                              {"cu_seqlens_k_new: expected sequence lengths of at most s_k = 8, "
                               "got 9 for sequence 0"});
}

TEST(KvcacheErrors, ValidateCacheLeftpadAboveCacheSeqlens) {
  KvCase c(KvConfig{.validate = true});
  c.args.cache_leftpad = c.buf.i32({0, 0});
  KvcacheArgs bad = c.args;
  bad.cache_leftpad = c.buf.i32({6, 0});
  expect_rejected<UsageError>(
      c, bad, {"cache_leftpad[0]: expected a value in [0, cache_seqlens[0] = 5], got 6"});
  bad = c.args;
  bad.cache_leftpad = c.buf.i32({0, -1});
  expect_rejected<UsageError>(
      c, bad, {"cache_leftpad[1]: expected a value in [0, cache_seqlens[1] = 8], got -1"});
}

TEST(KvcacheErrors, ValidateRotaryPositionsBeyondTable) {
  AppendCase c(KvConfig{.validate = true}, /*rotary=*/true);
  c.args.rotary_seqlens = c.buf.i32({0, 6});
  KvcacheArgs bad = c.args;
  bad.rotary_seqlens = c.buf.i32({7, 0});
  expect_rejected<UsageError>(
      c, bad,
      {"rotary_cos / rotary_sin: sequence 0 uses positions [7, 8], expected positions in [0, 8) "
       "(rows of the tables)"});
  bad = c.args;
  bad.rotary_seqlens = c.buf.i32({0, -1});
  expect_rejected<UsageError>(c, bad, {"rotary_seqlens[1]: expected a position >= 0, got -1"});
}

}  // namespace
}  // namespace flashjit::errors_test
