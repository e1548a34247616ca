// flash_attn_varlen: every documented argument error (spec section 2) raises exactly UsageError,
// or NotSupportedError for the parameters not implemented yet, with a message naming the
// parameter and the expected and actual values; the process stays usable after each error.
#include <gtest/gtest.h>

#include <limits>

#include "error_test_util.h"

namespace flashjit::errors_test {
namespace {

constexpr Device kCuda{DeviceType::kCUDA, 0};

TEST(VarlenErrors, ValidCallWritesFiniteOutputs) {
  VarlenCase c;
  ASSERT_NO_THROW(c.run());
  EXPECT_TRUE(all_finite(c.args.out));
  EXPECT_TRUE(all_finite(*c.args.softmax_lse));
}

// num_splits > 1 (split-KV) is supported: the call runs (the split count is capped by the key
// blocks of the call).
TEST(VarlenErrors, NumSplitsAboveOneIsAccepted) {
  for (int num_splits : {2, 256}) {
    VarlenCase c;
    c.args.num_splits = num_splits;
    ASSERT_NO_THROW(c.run()) << num_splits;
    EXPECT_TRUE(all_finite(c.args.out));
    EXPECT_TRUE(all_finite(*c.args.softmax_lse));
  }
}

// --- ranks, dtypes, strides, pointers ------------------------------------------------------------

TEST(VarlenErrors, WrongRanks) {
  VarlenCase c;
  VarlenArgs bad = c.args;
  bad.q = Tensor::contiguous(c.args.q.data, DType::kBFloat16, {1, 5, 4, 64});
  expect_rejected<UsageError>(c, bad, {"q: expected rank 3 (total_q, h, d)", "got rank 4"});
  bad = c.args;
  bad.k = Tensor::contiguous(c.args.k.data, DType::kBFloat16, {18, 64});
  expect_rejected<UsageError>(c, bad, {"k: expected rank 3 (total_k, h_k, d)", "got rank 2"});
  bad = c.args;
  bad.v = Tensor::contiguous(c.args.v.data, DType::kBFloat16, {1, 9, 2, 64});
  expect_rejected<UsageError>(c, bad, {"v: expected rank 3 (total_k, h_k, dv)", "got rank 4"});
}

TEST(VarlenErrors, KDtypeDiffersFromQ) {
  VarlenCase c;
  VarlenArgs bad = c.args;
  bad.k.dtype = DType::kFloat16;
  expect_rejected<UsageError>(c, bad, {"k: expected the dtype of q (bf16), got fp16"});
}

TEST(VarlenErrors, VDtypeDiffersFromQ) {
  VarlenCase c;
  VarlenArgs bad = c.args;
  bad.v.dtype = DType::kFloat16;
  expect_rejected<UsageError>(c, bad, {"v: expected the dtype of q (bf16), got fp16"});
}

TEST(VarlenErrors, Fp8QIsNotSupported) {
  VarlenCase c;
  VarlenArgs bad = c.args;
  bad.q.dtype = DType::kFloat8E4M3;
  expect_rejected<NotSupportedError>(c, bad, {"not supported yet", "fp8", "e4m3"});
}

TEST(VarlenErrors, Int32QIsUsageError) {
  VarlenCase c;
  VarlenArgs bad = c.args;
  bad.q.dtype = DType::kInt32;
  expect_rejected<UsageError>(c, bad, {"q: expected dtype fp16, bf16 or fp32, got int32"});
}

TEST(VarlenErrors, NonUnitLastStride) {
  VarlenCase c;
  const char* const kMessage = ": expected a contiguous last dimension (stride 1), got stride 2";
  VarlenArgs bad = c.args;
  bad.q = doubled_strides(c.args.q);
  expect_rejected<UsageError>(c, bad, {std::string("q") + kMessage});
  bad = c.args;
  bad.k = doubled_strides(c.args.k);
  expect_rejected<UsageError>(c, bad, {std::string("k") + kMessage});
  bad = c.args;
  bad.v = doubled_strides(c.args.v);
  expect_rejected<UsageError>(c, bad, {std::string("v") + kMessage});
  bad = c.args;
  bad.out = doubled_strides(c.args.out);
  expect_rejected<UsageError>(c, bad, {std::string("out") + kMessage});
}

TEST(VarlenErrors, NegativeStride) {
  VarlenCase c;
  VarlenArgs bad = c.args;
  // k's rows in reverse order: a valid view of the same buffer with stride(0) = -128.
  const int64_t s0 = c.args.k.stride(0);
  bad.k.data = static_cast<uint16_t*>(c.args.k.data) + 8 * s0;
  bad.k.strides[0] = -s0;
  expect_rejected<UsageError>(c, bad,
                              {"k: expected non-negative strides", "got stride -128 in dim 0"});
}

// Sizes past what 32-bit row and head indices address, or negative, are rejected before any
// size is narrowed (a head count of 2^32 + 4 must not pass as 4).
TEST(VarlenErrors, SizesOutOfRange) {
  VarlenCase c;
  VarlenArgs bad = c.args;
  bad.q.shape[1] = (int64_t{1} << 32) + 4;
  expect_rejected<UsageError>(
      c, bad, {"q: expected sizes in [0, 2147483647], got shape (5, 4294967300, 64)"});
  bad = c.args;
  bad.k.shape[0] = int64_t{1} << 31;
  expect_rejected<UsageError>(c, bad, {"k: expected sizes in [0, 2147483647]", "2147483648"});
  bad = c.args;
  bad.v.shape[0] = -9;
  expect_rejected<UsageError>(c, bad, {"v: expected sizes in [0, 2147483647], got shape (-9"});
  bad = c.args;
  bad.max_seqlen_q = 1 << 30;  // x 4 heads: query rows of a sequence past 32 bits
  expect_rejected<UsageError>(
      c, bad, {"max_seqlen_q x num_heads: expected at most 2^31 - 1, got 1073741824 x 4"});
}

TEST(VarlenErrors, NullDataPointer) {
  VarlenCase c;
  VarlenArgs bad = c.args;
  bad.v.data = nullptr;
  expect_rejected<UsageError>(c, bad,
                              {"v: expected a data pointer", "got null for shape (9, 2, 64)"});
  bad = c.args;
  bad.softmax_lse->data = nullptr;
  expect_rejected<UsageError>(c, bad, {"softmax_lse: expected a data pointer", "got null"});
}

TEST(VarlenErrors, MixedDevices) {
  VarlenCase c;
  VarlenArgs bad = c.args;
  bad.v.device = kCuda;
  expect_rejected<UsageError>(c, bad, {"v: expected device cpu (the device of q), got cuda:0"});
  bad = c.args;
  bad.cu_seqlens_k.device = kCuda;
  expect_rejected<UsageError>(c, bad, {"cu_seqlens_k: expected device cpu", "got cuda:0"});
  bad = c.args;
  bad.q.device = kCuda;
  expect_rejected<UsageError>(c, bad, {"k: expected device cuda:0 (the device of q), got cpu"});
}

// --- heads and head dims -------------------------------------------------------------------------

TEST(VarlenErrors, NumHeadsNotAMultipleOfKvHeads) {
  VarlenCase c;
  VarlenArgs bad = c.args;
  bad.q = Tensor::contiguous(c.args.q.data, DType::kBFloat16, {5, 3, 64});
  expect_rejected<UsageError>(c, bad, {"num_heads_k: expected a divisor of num_heads (3), got 2"});
}

TEST(VarlenErrors, HeadDimNotAMultipleOf8) {
  VarlenCase c;
  VarlenCase bad(VarlenConfig{.d = 60});
  expect_rejected<UsageError>(
      c, bad.args, {"head_dim (q.shape[-1]): expected a multiple of 8 in [8, 256], got 60"});
}

TEST(VarlenErrors, HeadDimAbove256) {
  VarlenCase c;
  VarlenCase bad(VarlenConfig{.d = 264, .dv = 264});
  expect_rejected<UsageError>(c, bad.args, {"head_dim (q.shape[-1])", "[8, 256]", "got 264"});
}

TEST(VarlenErrors, HeadDimVAbove512) {
  VarlenCase c;
  VarlenCase bad(VarlenConfig{.dv = 520});
  expect_rejected<UsageError>(
      c, bad.args, {"head_dim_v (v.shape[-1]): expected a multiple of 8 in [8, 512], got 520"});
}

TEST(VarlenErrors, KHeadDimDiffersFromQ) {
  VarlenCase c;
  VarlenArgs bad = c.args;
  bad.k = Tensor::contiguous(c.args.k.data, DType::kBFloat16, {9, 2, 56});
  expect_rejected<UsageError>(c, bad,
                              {"k: expected shape (9, 2, 64) (total_k, h_k, d), got (9, 2, 56)"});
}

TEST(VarlenErrors, VShapeDiffersFromK) {
  VarlenCase c;
  VarlenArgs bad = c.args;
  bad.v = Tensor::contiguous(c.args.v.data, DType::kBFloat16, {8, 2, 64});
  expect_rejected<UsageError>(c, bad,
                              {"v: expected shape (9, 2, *) (total_k, h_k, dv), got (8, 2, 64)"});
  bad = c.args;
  bad.v = Tensor::contiguous(c.args.v.data, DType::kBFloat16, {9, 1, 64});
  expect_rejected<UsageError>(c, bad, {"v: expected shape (9, 2, *)", "got (9, 1, 64)"});
}

// --- out and softmax_lse -------------------------------------------------------------------------

TEST(VarlenErrors, OutWrongShape) {
  VarlenCase c;
  VarlenArgs bad = c.args;
  bad.out = Tensor::contiguous(c.args.out.data, DType::kBFloat16, {5, 4, 32});
  expect_rejected<UsageError>(c, bad,
                              {"out: expected shape (5, 4, 64) (total_q, h, dv), got (5, 4, 32)"});
}

TEST(VarlenErrors, OutWrongDtype) {
  VarlenCase c;
  VarlenArgs bad = c.args;
  bad.out.dtype = DType::kFloat16;
  expect_rejected<UsageError>(c, bad, {"out: expected the dtype of q (bf16), got fp16"});
}

// Written tensors whose elements share addresses (a broadcast head, rows closer than a row) would
// make the result depend on the order of the writes.
TEST(VarlenErrors, OverlappingOutputs) {
  VarlenCase c;
  VarlenArgs bad = c.args;
  bad.out.strides[1] = 0;  // every head writes the same 64 elements
  expect_rejected<UsageError>(
      c, bad,
      {"out: expected a view whose elements do not overlap (it is written), "
       "got strides (256, 0, 1) for shape (5, 4, 64)"});
  bad = c.args;
  bad.out.strides[0] = 200;  // rows 200 elements apart, 256 long
  expect_rejected<UsageError>(c, bad, {"out: expected a view whose elements do not overlap"});
  bad = c.args;
  bad.softmax_lse->strides[0] = 2;  // (4, 5) with strides (2, 1)
  expect_rejected<UsageError>(c, bad,
                              {"softmax_lse: expected a view whose elements do not overlap"});
}

TEST(VarlenErrors, SoftmaxLseMissing) {
  VarlenCase c;
  VarlenArgs bad = c.args;
  bad.softmax_lse.reset();
  expect_rejected<UsageError>(
      c, bad,
      {"softmax_lse: expected a buffer (h, total_q) since return_softmax_lse is set, got none"});
}

TEST(VarlenErrors, SoftmaxLseWrongDtypeOrShape) {
  VarlenCase c;
  VarlenArgs bad = c.args;
  bad.softmax_lse->dtype = DType::kFloat16;
  expect_rejected<UsageError>(c, bad, {"softmax_lse: expected dtype fp32, got fp16"});
  bad = c.args;
  bad.softmax_lse = Tensor::contiguous(c.args.softmax_lse->data, DType::kFloat32, {5, 4});
  expect_rejected<UsageError>(c, bad,
                              {"softmax_lse: expected shape (4, 5) (h, total_q), got (5, 4)"});
}

// --- index tensors and lengths -------------------------------------------------------------------

TEST(VarlenErrors, CuSeqlensQInt64) {
  VarlenCase c;
  VarlenArgs bad = c.args;
  bad.cu_seqlens_q = c.buf.i64({0, 2, 5});
  expect_rejected<UsageError>(c, bad, {"cu_seqlens_q: expected dtype int32, got int64"});
}

TEST(VarlenErrors, CuSeqlensNotContiguous) {
  VarlenCase c;
  VarlenArgs bad = c.args;
  bad.cu_seqlens_k = strided_i32(c.buf, {0, 4, 9});
  expect_rejected<UsageError>(
      c, bad, {"cu_seqlens_k: expected a contiguous tensor, got strides (2) for shape (3,)"});
  bad = c.args;
  bad.cu_seqlens_q = strided_i32(c.buf, {0, 2, 5});
  expect_rejected<UsageError>(
      c, bad, {"cu_seqlens_q: expected a contiguous tensor, got strides (2) for shape (3,)"});
}

TEST(VarlenErrors, CuSeqlensKWrongLength) {
  VarlenCase c;
  VarlenArgs bad = c.args;
  bad.cu_seqlens_k = c.buf.i32({0, 4, 9, 9});
  expect_rejected<UsageError>(c, bad, {"cu_seqlens_k: expected shape (3,)", "got (4,)"});
}

TEST(VarlenErrors, CuSeqlensQWrongRank) {
  VarlenCase c;
  VarlenArgs bad = c.args;
  bad.cu_seqlens_q = c.buf.i32({0, 2, 5}, {1, 3});
  expect_rejected<UsageError>(c, bad, {"cu_seqlens_q: expected shape (batch + 1,), got (1, 3)"});
}

TEST(VarlenErrors, SequsedWrongLengthOrDtype) {
  VarlenCase c;
  VarlenArgs bad = c.args;
  bad.seqused_k = c.buf.i32({4, 5, 5});
  expect_rejected<UsageError>(c, bad, {"seqused_k: expected shape (2,)", "got (3,)"});
  bad = c.args;
  bad.seqused_q = c.buf.i64({2, 3});
  expect_rejected<UsageError>(c, bad, {"seqused_q: expected dtype int32, got int64"});
}

TEST(VarlenErrors, MaxSeqlenMissing) {
  VarlenCase c;
  VarlenArgs bad = c.args;
  bad.max_seqlen_q.reset();
  expect_rejected<UsageError>(
      c, bad, {"max_seqlen_q and max_seqlen_k: expected both", "got max_seqlen_k only"});
  bad = c.args;
  bad.max_seqlen_k.reset();
  expect_rejected<UsageError>(c, bad, {"max_seqlen_q and max_seqlen_k", "got max_seqlen_q only"});
  bad = c.args;
  bad.max_seqlen_q.reset();
  bad.max_seqlen_k.reset();
  expect_rejected<UsageError>(c, bad, {"max_seqlen_q and max_seqlen_k", "got neither"});
  bad = c.args;
  bad.max_seqlen_k = -1;
  expect_rejected<UsageError>(c, bad, {"max_seqlen_q / max_seqlen_k: expected >= 0, got 3 / -1"});
}

TEST(VarlenErrors, PageTableIsRejected) {
  VarlenCase c;
  VarlenArgs bad = c.args;
  bad.page_table = c.buf.i32({0, 1, 2, 3}, {2, 2});
  expect_rejected<UsageError>(c, bad,
                              {"page_table: expected none with flash_attn_varlen",
                               "flash_attn_with_kvcache", "got a tensor of shape (2, 2)"});
}

// --- scalars -------------------------------------------------------------------------------------

TEST(VarlenErrors, BadScalars) {
  VarlenCase c;
  VarlenArgs bad = c.args;
  bad.window_size = {-2, 0};
  expect_rejected<UsageError>(c, bad,
                              {"window_size: expected values >= -1 (-1 = unbounded), got (-2, 0)"});
  bad = c.args;
  bad.window_size = {0, -7};
  expect_rejected<UsageError>(c, bad, {"window_size", "got (0, -7)"});
  bad = c.args;
  bad.attention_chunk = -1;
  expect_rejected<UsageError>(c, bad, {"attention_chunk: expected >= 0 (0 = off), got -1"});
  bad = c.args;
  bad.softcap = -1;
  expect_rejected<UsageError>(c, bad, {"softcap: expected a finite value >= 0 (0 = off), got -1"});
  bad = c.args;
  bad.softcap = std::numeric_limits<double>::quiet_NaN();
  expect_rejected<UsageError>(c, bad, {"softcap: expected a finite value >= 0", "got nan"});
  bad = c.args;
  bad.softcap = std::numeric_limits<double>::infinity();
  expect_rejected<UsageError>(c, bad, {"softcap: expected a finite value >= 0", "got inf"});
  bad = c.args;
  bad.softmax_scale = std::numeric_limits<double>::infinity();
  expect_rejected<UsageError>(c, bad, {"softmax_scale: expected a finite value, got inf"});
  bad = c.args;
  bad.softmax_scale = std::numeric_limits<double>::quiet_NaN();
  expect_rejected<UsageError>(c, bad, {"softmax_scale: expected a finite value, got nan"});
  bad = c.args;
  bad.num_splits = 300;
  expect_rejected<UsageError>(c, bad, {"num_splits: expected <= 256, got 300"});
  bad = c.args;
  bad.sm_margin = -4;
  expect_rejected<UsageError>(c, bad, {"sm_margin: expected >= 0, got -4"});
}

// --- sinks ---------------------------------------------------------------------------------------

TEST(VarlenErrors, BadSinks) {
  VarlenCase c;
  VarlenArgs bad = c.args;
  bad.sinks = c.buf.half({5});
  expect_rejected<UsageError>(c, bad, {"sinks: expected shape (4,) (num_heads,), got (5,)"});
  bad = c.args;
  bad.sinks = c.buf.i32({0, 0, 0, 0});
  expect_rejected<UsageError>(c, bad, {"sinks: expected dtype bf16, fp16 or fp32, got int32"});
  bad = c.args;
  const Tensor sinks = c.buf.f32({8});
  bad.sinks = Tensor::strided(sinks.data, DType::kFloat32, {4}, {2});
  expect_rejected<UsageError>(
      c, bad, {"sinks: expected a contiguous tensor, got strides (2) for shape (4,)"});
  bad = c.args;
  bad.sinks = c.buf.f32({4});
  bad.sinks->device = kCuda;
  expect_rejected<UsageError>(c, bad, {"sinks: expected device cpu", "got cuda:0"});
}

// --- parameters not supported yet ----------------------------------------------------------------

TEST(VarlenErrors, NotSupportedParameters) {
  VarlenCase c;
  const Tensor qv = c.buf.half({5, 4, 64});
  const Tensor descale = c.buf.f32({2, 2}, 1.0f);
  VarlenArgs bad = c.args;
  bad.qv = qv;
  expect_rejected<NotSupportedError>(c, bad, {"not supported yet: qv"});
  for (OptionalTensor VarlenArgs::*field :
       {&VarlenArgs::q_descale, &VarlenArgs::k_descale, &VarlenArgs::v_descale}) {
    bad = c.args;
    bad.*field = descale;
    expect_rejected<NotSupportedError>(c, bad, {"not supported yet: q_descale / k_descale"});
  }
  bad = c.args;
  bad.score_mod = "def score_mod(score, b, h, q_idx, kv_idx): return score";
  expect_rejected<NotSupportedError>(c, bad, {"not supported yet: score_mod"});
}

}  // namespace
}  // namespace flashjit::errors_test
