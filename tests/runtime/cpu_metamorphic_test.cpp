// Metamorphic tests: relations between calls that must hold whatever the reference says. They
// catch indexing bugs that a reference shared with the kernel's author could miss.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <numeric>
#include <random>
#include <vector>

#include "flashjit/flashjit.h"

namespace flashjit {
namespace {

std::vector<float> random_floats(size_t n, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> normal(0.f, 1.f);
  std::vector<float> x(n);
  for (float& e : x) e = normal(rng);
  return x;
}

double max_abs_diff(const std::vector<float>& a, const std::vector<float>& b) {
  double m = 0;
  for (size_t i = 0; i < a.size(); ++i) m = std::max(m, std::abs(double{a[i]} - b[i]));
  return m;
}

constexpr int kH = 8, kHk = 2, kD = 64;
constexpr double kTol = 2e-6;  // fp32 in and out: different blockings, same math

// Decode (one query) over a contiguous cache of `len` keys starting at key `offset`.
std::vector<float> decode(std::vector<float>& q, std::vector<float>& k, std::vector<float>& v,
                          int capacity, int offset, int len, std::array<int, 2> window) {
  std::vector<float> out(kH * kD, std::nanf(""));
  KvcacheArgs a;
  a.q = Tensor::contiguous(q.data(), DType::kFloat32, {1, 1, kH, kD});
  a.k_cache = Tensor::strided(k.data() + int64_t{offset} * kHk * kD, DType::kFloat32,
                              {1, len, kHk, kD}, {int64_t{capacity} * kHk * kD, kHk * kD, kD, 1});
  a.v_cache = Tensor::strided(v.data() + int64_t{offset} * kHk * kD, DType::kFloat32,
                              {1, len, kHk, kD}, {int64_t{capacity} * kHk * kD, kHk * kD, kD, 1});
  a.window_size = window;
  a.out = Tensor::contiguous(out.data(), DType::kFloat32, {1, 1, kH, kD});
  flash_attn_with_kvcache(a);
  return out;
}

TEST(CpuMetamorphic, WindowEqualsFullAttentionOverSlicedKeys) {
  const int len = 300, left = 77;
  auto q = random_floats(kH * kD, 1), k = random_floats(len * kHk * kD, 2),
       v = random_floats(len * kHk * kD, 3);
  const auto windowed = decode(q, k, v, len, 0, len, {left, 0});
  const auto sliced = decode(q, k, v, len, len - 1 - left, left + 1, {-1, -1});
  EXPECT_LE(max_abs_diff(windowed, sliced), kTol);
  const auto full = decode(q, k, v, len, 0, len, {-1, -1});
  EXPECT_GT(max_abs_diff(windowed, full), 1e-3) << "the window had no effect";
}

TEST(CpuMetamorphic, CausalDecodeEqualsNonCausal) {
  const int len = 200;
  auto q = random_floats(kH * kD, 4), k = random_floats(len * kHk * kD, 5),
       v = random_floats(len * kHk * kD, 6);
  std::vector<float> a_out(kH * kD), b_out(kH * kD);
  for (bool causal : {false, true}) {
    KvcacheArgs a;
    a.q = Tensor::contiguous(q.data(), DType::kFloat32, {1, 1, kH, kD});
    a.k_cache = Tensor::contiguous(k.data(), DType::kFloat32, {1, len, kHk, kD});
    a.v_cache = Tensor::contiguous(v.data(), DType::kFloat32, {1, len, kHk, kD});
    a.causal = causal;
    a.out = Tensor::contiguous((causal ? b_out : a_out).data(), DType::kFloat32, {1, 1, kH, kD});
    flash_attn_with_kvcache(a);
  }
  EXPECT_LE(max_abs_diff(a_out, b_out), kTol);
}

// Runs a paged (page_table given) or contiguous cache call for batch 3 with cache_seqlens.
std::vector<float> run_cache(std::vector<float>& q, std::vector<float>& k, std::vector<float>& v,
                             std::vector<int32_t>* page_table, int page_size, int pages,
                             int capacity, std::vector<int32_t>& seqlens, int hk) {
  const int b = 3, sq = 4;
  std::vector<float> out(b * sq * kH * kD, std::nanf(""));
  KvcacheArgs a;
  a.q = Tensor::contiguous(q.data(), DType::kFloat32, {b, sq, kH, kD});
  if (page_table) {
    a.k_cache = Tensor::contiguous(k.data(), DType::kFloat32, {pages, page_size, hk, kD});
    a.v_cache = Tensor::contiguous(v.data(), DType::kFloat32, {pages, page_size, hk, kD});
    a.page_table = Tensor::contiguous(page_table->data(), DType::kInt32, {b, capacity / page_size});
  } else {
    a.k_cache = Tensor::contiguous(k.data(), DType::kFloat32, {b, capacity, hk, kD});
    a.v_cache = Tensor::contiguous(v.data(), DType::kFloat32, {b, capacity, hk, kD});
  }
  a.cache_seqlens = Tensor::contiguous(seqlens.data(), DType::kInt32, {b});
  a.causal = true;
  a.out = Tensor::contiguous(out.data(), DType::kFloat32, {b, sq, kH, kD});
  a.options.validate = true;
  flash_attn_with_kvcache(a);
  return out;
}

TEST(CpuMetamorphic, ShuffledPagedEqualsContiguous) {
  const int b = 3, capacity = 96, page = 16, pages_per_seq = capacity / page;
  auto q = random_floats(b * 4 * kH * kD, 7), k = random_floats(b * capacity * kHk * kD, 8),
       v = random_floats(b * capacity * kHk * kD, 9);
  std::vector<int32_t> seqlens = {95, 17, 64};
  const auto contiguous = run_cache(q, k, v, nullptr, 0, 0, capacity, seqlens, kHk);
  // Scatter the same rows into shuffled pages.
  const int pages = b * pages_per_seq + 5;
  std::vector<int32_t> perm(pages);
  std::iota(perm.begin(), perm.end(), 0);
  std::shuffle(perm.begin(), perm.end(), std::mt19937_64(10));
  std::vector<int32_t> table(b * pages_per_seq);
  std::vector<float> kp(pages * page * kHk * kD, std::nanf("")), vp = kp;
  const int row = kHk * kD;
  for (int s = 0; s < b; ++s)
    for (int p = 0; p < pages_per_seq; ++p) {
      table[s * pages_per_seq + p] = perm[s * pages_per_seq + p];
      const int src = (s * capacity + p * page) * row,
                dst = perm[s * pages_per_seq + p] * page * row;
      std::copy(k.begin() + src, k.begin() + src + page * row, kp.begin() + dst);
      std::copy(v.begin() + src, v.begin() + src + page * row, vp.begin() + dst);
    }
  const auto paged = run_cache(q, kp, vp, &table, page, pages, capacity, seqlens, kHk);
  EXPECT_LE(max_abs_diff(contiguous, paged), kTol);
}

TEST(CpuMetamorphic, GqaEqualsMhaWithRepeatedKvHeads) {
  const int b = 3, capacity = 80, group = kH / kHk;
  auto q = random_floats(b * 4 * kH * kD, 11), k = random_floats(b * capacity * kHk * kD, 12),
       v = random_floats(b * capacity * kHk * kD, 13);
  std::vector<int32_t> seqlens = {80, 1, 33};
  const auto gqa = run_cache(q, k, v, nullptr, 0, 0, capacity, seqlens, kHk);
  std::vector<float> km(b * capacity * kH * kD), vm = km;
  for (int r = 0; r < b * capacity; ++r)
    for (int h = 0; h < kH; ++h)
      for (int e = 0; e < kD; ++e) {
        km[(r * kH + h) * kD + e] = k[(r * kHk + h / group) * kD + e];
        vm[(r * kH + h) * kD + e] = v[(r * kHk + h / group) * kD + e];
      }
  const auto mha = run_cache(q, km, vm, nullptr, 0, 0, capacity, seqlens, kH);
  EXPECT_LE(max_abs_diff(gqa, mha), kTol);
}

TEST(CpuMetamorphic, RepeatedLaunchesAreBitwiseIdentical) {
  const int b = 3, capacity = 150;
  auto q = random_floats(b * 4 * kH * kD, 14), k = random_floats(b * capacity * kHk * kD, 15),
       v = random_floats(b * capacity * kHk * kD, 16);
  std::vector<int32_t> seqlens = {150, 149, 3};
  const auto first = run_cache(q, k, v, nullptr, 0, 0, capacity, seqlens, kHk);
  for (int i = 0; i < 5; ++i) {
    const auto again = run_cache(q, k, v, nullptr, 0, 0, capacity, seqlens, kHk);
    ASSERT_EQ(0, std::memcmp(first.data(), again.data(), first.size() * sizeof(float)));
  }
}

}  // namespace
}  // namespace flashjit
