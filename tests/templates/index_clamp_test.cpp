// The index math every kernel shares (templates/attention_math.h): where a sequence's query, key
// and new-key rows are. CUDA calls without validation reach the kernels with whatever index
// values the caller passed, so for any values at all the rows must stay inside their tensors;
// for valid values the clamps must change nothing.
#include <gtest/gtest.h>

#include <algorithm>
#include <climits>
#include <cstdint>
#include <random>
#include <vector>

#include "flashjit/attention_math.h"

namespace flashjit_kernel {
namespace {

template <bool VarlenQ, bool VarlenK, bool SequsedK, bool Append, bool Rotary, bool Leftpad>
struct Cfg {
  static constexpr bool kVarlenQ = VarlenQ, kVarlenK = VarlenK, kSequsedK = SequsedK,
                        kAppendKV = Append, kRotary = Rotary, kLeftpad = Leftpad;
};
using KvcacheCfg = Cfg<true, false, true, true, true, true>;
using KvcachePaddedCfg = Cfg<false, false, true, true, true, false>;
using VarlenCfg = Cfg<true, true, true, false, false, false>;

constexpr int kBatch = 4, kTotalQ = 37, kSeqlenQ = 16, kCapacity = 64, kTotalK = 100,
              kCacheRows = 5, kSeqlenNew = 7, kSeqlenRo = 80;

// Index arrays of one call, and FwdParams pointing at them.
struct Indices {
  std::vector<int> cu_q, used_q, cu_k, used_k, batch_idx, leftpad, cu_new, rotary;
  FwdParams p{};
  Indices() {
    cu_q.assign(kBatch + 1, 0);
    cu_k.assign(kBatch + 1, 0);
    cu_new.assign(kBatch + 1, 0);
    used_q.assign(kBatch, 0);
    used_k.assign(kBatch, 0);
    batch_idx.assign(kBatch, 0);
    leftpad.assign(kBatch, 0);
    rotary.assign(kBatch, 0);
  }
  template <class C>
  const FwdParams& params(bool ragged_new) {
    p = FwdParams{};
    p.batch = kBatch;
    p.seqlen_q = kSeqlenQ;
    p.total_q = kTotalQ;
    p.seqlen_k = C::kVarlenK ? 0 : kCapacity;
    p.total_k = kTotalK;
    p.cache_rows = kCacheRows;
    p.seqlen_new = ragged_new ? kSeqlenNew : 3;
    p.seqlen_ro = kSeqlenRo;
    p.cu_seqlens_q = C::kVarlenQ ? cu_q.data() : nullptr;
    p.seqused_q = C::kVarlenQ ? used_q.data() : nullptr;
    p.cu_seqlens_k = C::kVarlenK ? cu_k.data() : nullptr;
    p.seqused_k = C::kSequsedK ? used_k.data() : nullptr;
    p.cache_batch_idx = C::kVarlenK ? nullptr : batch_idx.data();
    p.leftpad_k = C::kLeftpad ? leftpad.data() : nullptr;
    p.cu_seqlens_k_new = C::kAppendKV && ragged_new ? cu_new.data() : nullptr;
    p.rotary_seqlens = C::kRotary ? rotary.data() : nullptr;
    return p;
  }
};

// A value that breaks something: extremes, off-by-ones around n, or anything in [-2n, 2n].
int garbage(std::mt19937& rng, int n) {
  const int picks[] = {INT_MIN, -(1 << 30), -1, 0, 1, n - 1, n, n + 1, 1 << 30, INT_MAX};
  if (rng() % 3 == 0) return std::uniform_int_distribution<int>(-2 * n, 2 * n)(rng);
  return picks[rng() % (sizeof(picks) / sizeof(picks[0]))];
}

template <class C>
void expect_in_bounds(const FwdParams& p, int b) {
  const Sequence s = sequence<C>(p, b);
  SCOPED_TRACE(testing::Message() << "sequence " << b);
  EXPECT_GE(s.lq, 0);
  if (C::kVarlenQ) {
    EXPECT_GE(s.q_row0, 0);
    EXPECT_LE(s.q_row0 + s.lq, p.total_q);
    EXPECT_EQ(s.acc_row0, s.q_row0);
    EXPECT_EQ(packed_q_row0(p, b), s.q_row0);
  } else {
    EXPECT_EQ(s.lq, p.seqlen_q);
  }
  EXPECT_GE(s.lk_old, 0);
  EXPECT_GE(s.lnew, 0);
  EXPECT_EQ(s.lk, s.lk_old + s.lnew);
  EXPECT_GE(s.k_row0, 0);
  if (C::kVarlenK) {
    EXPECT_TRUE(s.lk == 0 || s.k_row0 + s.lk <= p.total_k) << s.k_row0 << " + " << s.lk;
  } else {
    EXPECT_GE(s.kv_b, 0);
    EXPECT_LT(s.kv_b, p.cache_rows);
    EXPECT_LE(s.k_row0 + s.lk, p.seqlen_k);  // old keys and the appended ones
  }
  if (C::kAppendKV) {
    EXPECT_GE(s.new_row0, 0);
    EXPECT_LE(s.new_row0 + s.lnew, p.seqlen_new);
  }
  if (C::kRotary)
    for (long long pos : {0LL, (long long)s.lq - 1, (long long)s.lnew - 1}) {
      const long long row = rotary_row(p, (long long)s.rotary_base + pos);
      EXPECT_GE(row, 0);
      EXPECT_LT(row, p.seqlen_ro);
    }
}

template <class C>
void fuzz(bool ragged_new) {
  std::mt19937 rng(7);
  Indices ix;
  for (int trial = 0; trial < 20000 && !testing::Test::HasFailure(); ++trial) {
    for (int b = 0; b <= kBatch; ++b) {
      ix.cu_q[b] = garbage(rng, kTotalQ);
      ix.cu_k[b] = garbage(rng, kTotalK);
      ix.cu_new[b] = garbage(rng, kSeqlenNew);
    }
    for (int b = 0; b < kBatch; ++b) {
      ix.used_q[b] = garbage(rng, kSeqlenQ);
      ix.used_k[b] = garbage(rng, kCapacity);
      ix.batch_idx[b] = garbage(rng, kCacheRows);
      ix.leftpad[b] = garbage(rng, kCapacity);
      ix.rotary[b] = garbage(rng, kSeqlenRo);
    }
    const FwdParams& p = ix.params<C>(ragged_new);
    for (int b = 0; b < kBatch; ++b) expect_in_bounds<C>(p, b);
  }
}

TEST(IndexClamp, KvcacheGarbageStaysInBounds) { fuzz<KvcacheCfg>(/*ragged_new=*/true); }
TEST(IndexClamp, KvcachePaddedGarbageStaysInBounds) {
  fuzz<KvcachePaddedCfg>(/*ragged_new=*/false);
}
TEST(IndexClamp, VarlenGarbageStaysInBounds) { fuzz<VarlenCfg>(/*ragged_new=*/false); }

// Valid values (what validation accepts) pass through unchanged.
TEST(IndexClamp, ValidKvcacheValuesAreUnchanged) {
  std::mt19937 rng(11);
  Indices ix;
  for (int trial = 0; trial < 2000; ++trial) {
    for (int b = 0; b < kBatch; ++b) {
      const int lq = std::uniform_int_distribution<int>(0, kSeqlenQ)(rng);
      ix.cu_q[b + 1] = std::min(kTotalQ, ix.cu_q[b] + lq);
      ix.used_q[b] = std::uniform_int_distribution<int>(0, ix.cu_q[b + 1] - ix.cu_q[b])(rng);
      const int lnew = std::uniform_int_distribution<int>(0, 1)(rng);  // 4 sequences, 7 rows
      ix.cu_new[b + 1] = ix.cu_new[b] + lnew;
      ix.used_k[b] = std::uniform_int_distribution<int>(0, kCapacity - lnew)(rng);
      ix.leftpad[b] = std::uniform_int_distribution<int>(0, ix.used_k[b])(rng);
      ix.batch_idx[b] = std::uniform_int_distribution<int>(0, kCacheRows - 1)(rng);
      ix.rotary[b] = std::uniform_int_distribution<int>(0, 20)(rng);
    }
    const FwdParams& p = ix.params<KvcacheCfg>(/*ragged_new=*/true);
    for (int b = 0; b < kBatch; ++b) {
      const Sequence s = sequence<KvcacheCfg>(p, b);
      const int lnew = ix.cu_new[b + 1] - ix.cu_new[b];
      EXPECT_EQ(s.q_row0, ix.cu_q[b]);
      EXPECT_EQ(s.lq, ix.used_q[b]);
      EXPECT_EQ(s.kv_b, ix.batch_idx[b]);
      EXPECT_EQ(s.k_row0, ix.leftpad[b]);
      EXPECT_EQ(s.lk_old, ix.used_k[b] - ix.leftpad[b]);
      EXPECT_EQ(s.lnew, lnew);
      EXPECT_EQ(s.new_row0, ix.cu_new[b]);
      EXPECT_EQ(s.rotary_base, ix.rotary[b]);
    }
  }
}

TEST(IndexClamp, ValidVarlenValuesAreUnchanged) {
  std::mt19937 rng(13);
  Indices ix;
  for (int trial = 0; trial < 2000; ++trial) {
    for (int b = 0; b < kBatch; ++b) {
      ix.cu_q[b + 1] = std::min(kTotalQ, ix.cu_q[b] + (int)(rng() % (kSeqlenQ + 1)));
      ix.cu_k[b + 1] = std::min(kTotalK, ix.cu_k[b] + (int)(rng() % 30));
      ix.used_q[b] = ix.cu_q[b + 1] - ix.cu_q[b];
      ix.used_k[b] = (int)(rng() % (ix.cu_k[b + 1] - ix.cu_k[b] + 1));
    }
    const FwdParams& p = ix.params<VarlenCfg>(/*ragged_new=*/false);
    for (int b = 0; b < kBatch; ++b) {
      const Sequence s = sequence<VarlenCfg>(p, b);
      EXPECT_EQ(s.q_row0, ix.cu_q[b]);
      EXPECT_EQ(s.lq, ix.used_q[b]);
      EXPECT_EQ(s.k_row0, ix.cu_k[b]);
      EXPECT_EQ(s.lk, ix.used_k[b]);
    }
  }
}

}  // namespace
}  // namespace flashjit_kernel
