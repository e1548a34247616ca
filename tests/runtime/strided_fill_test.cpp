// fill_rects (runtime/strided_fill.h): the rectangles that fill a whole strided view (out and the
// LSE of a call without keys) cover each of its elements once and nothing else.
#include "runtime/strided_fill.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <limits>
#include <map>
#include <numeric>
#include <random>
#include <sstream>
#include <string>

namespace flashjit {
namespace {

constexpr int64_t kUnbounded = std::numeric_limits<int64_t>::max();

Tensor view(std::vector<int64_t> shape, std::vector<int64_t> strides) {
  Tensor t;
  t.dtype = DType::kBFloat16;
  t.rank = static_cast<int>(shape.size());
  std::copy(shape.begin(), shape.end(), t.shape.begin());
  std::copy(strides.begin(), strides.end(), t.strides.begin());
  return t;
}

// Element offset -> how many times the view (or the rectangles) reach it.
std::map<int64_t, int> view_elements(const Tensor& t) {
  std::map<int64_t, int> hits;
  int64_t n = 1;
  for (int d = 0; d < t.rank; ++d) n *= t.shape[d];
  for (int64_t e = 0; e < n; ++e) {
    int64_t rest = e, offset = 0;
    for (int d = t.rank - 1; d >= 0; --d) {
      offset += rest % t.shape[d] * t.strides[d];
      rest /= t.shape[d];
    }
    ++hits[offset];
  }
  return hits;
}

std::map<int64_t, int> rect_elements(const std::vector<FillRect>& rects) {
  std::map<int64_t, int> hits;
  for (const FillRect& r : rects)
    for (int64_t y = 0; y < r.height; ++y)
      for (int64_t x = 0; x < r.width; ++x) ++hits[r.offset + y * r.pitch + x];
  return hits;
}

// A random view whose elements do not overlap (checks::no_overlap's rule): the dimensions laid
// out in a random order, each with a random gap, the innermost usually contiguous.
Tensor random_view(std::mt19937& rng) {
  auto pick = [&](int n) { return static_cast<int>(rng() % static_cast<unsigned>(n)); };
  const int rank = 1 + pick(4);
  std::vector<int64_t> shape(rank), strides(rank);
  for (int64_t& s : shape) s = pick(6) == 0 ? 1 : 1 + pick(5);
  if (pick(20) == 0) shape[pick(rank)] = 0;
  std::vector<int> order(rank);  // innermost first
  std::iota(order.begin(), order.end(), 0);
  if (pick(2)) std::shuffle(order.begin(), order.end(), rng);
  int64_t extent = 1;
  for (int i = 0; i < rank; ++i) {
    const int d = order[i];
    strides[d] = extent + (i == 0 ? (pick(4) == 0 ? pick(3) : 0) : (pick(2) ? pick(4) : 0));
    extent = strides[d] * std::max<int64_t>(shape[d], 1);
  }
  return view(shape, strides);
}

TEST(StridedFill, RandomViewsAreCoveredExactlyOnce) {
  std::mt19937 rng(2026);
  for (int n = 0; n < 3000; ++n) {
    const Tensor t = random_view(rng);
    std::ostringstream os;
    os << t.shape_string() << " strides";
    for (int d = 0; d < t.rank; ++d) os << ' ' << t.strides[d];
    const std::string what = os.str();
    const auto rects = fill_rects(t, kUnbounded, kUnbounded);
    ASSERT_TRUE(rects.has_value()) << what;
    for (const FillRect& r : *rects) {
      EXPECT_GE(r.width, 1) << what;
      EXPECT_GE(r.height, 1) << what;
      if (r.height > 1) {
        EXPECT_GE(r.pitch, r.width) << what;
      }
    }
    EXPECT_EQ(rect_elements(*rects), view_elements(t)) << what;
  }
}

TEST(StridedFill, ContiguousViewsAreOneRectangle) {
  const auto rects = fill_rects(view({3, 5, 4, 64}, {1280, 256, 64, 1}), kUnbounded, kUnbounded);
  ASSERT_TRUE(rects.has_value());
  ASSERT_EQ(rects->size(), 1u);
  EXPECT_EQ((*rects)[0].width, 3 * 5 * 4 * 64);
  EXPECT_EQ((*rects)[0].height, 1);
  EXPECT_TRUE(fill_rects(view({3, 0, 4}, {0, 4, 1}), kUnbounded, kUnbounded)->empty());
}

TEST(StridedFill, PaddedRowsAndHeadsTakeTheRowsAsHeightAndEnumerateTheHeads) {
  // (total_q, h, dv) with 8 spare elements after each head and after each row: the rows are the
  // height (the larger dimension), one rectangle per head.
  const Tensor out = view({1000, 32, 128}, {32 * 136 + 8, 136, 1});
  const auto rects = fill_rects(out, kUnbounded, kUnbounded);
  ASSERT_TRUE(rects.has_value());
  ASSERT_EQ(rects->size(), 32u);
  EXPECT_EQ((*rects)[1].offset, 136);
  EXPECT_EQ((*rects)[1].pitch, 32 * 136 + 8);
  EXPECT_EQ((*rects)[1].height, 1000);
  EXPECT_EQ((*rects)[1].width, 128);
  // Padded heads, rows that follow on: rows and heads merge into one height of 32000 runs.
  const auto merged = fill_rects(view({1000, 32, 128}, {32 * 136, 136, 1}), 1, kUnbounded);
  ASSERT_TRUE(merged.has_value());
  ASSERT_EQ(merged->size(), 1u);
  EXPECT_EQ((*merged)[0].height, 32000);
  // Padded rows with dense heads: one rectangle of rows of h x dv.
  const auto dense_heads = fill_rects(view({1000, 32, 128}, {4200, 128, 1}), 1, kUnbounded);
  ASSERT_TRUE(dense_heads.has_value());
  ASSERT_EQ(dense_heads->size(), 1u);
  EXPECT_EQ((*dense_heads)[0].width, 32 * 128);
}

TEST(StridedFill, LimitsOnCountAndPitch) {
  // (b, s, h, dv) = (4, 100, 32, 16), every dimension padded: height 100, 4 x 32 rectangles.
  const Tensor out = view({4, 100, 32, 16}, {100 * 776 + 8, 776, 24, 1});
  EXPECT_FALSE(fill_rects(out, 127, kUnbounded).has_value());
  ASSERT_TRUE(fill_rects(out, 128, kUnbounded).has_value());
  EXPECT_EQ(fill_rects(out, 128, kUnbounded)->size(), 128u);
  // A height whose pitch is too large moves to the next dimension: the heads (4 x 100 of them).
  const auto small_pitch = fill_rects(out, kUnbounded, 24);
  ASSERT_TRUE(small_pitch.has_value());
  EXPECT_EQ(small_pitch->size(), 400u);
  for (const FillRect& r : *small_pitch) EXPECT_LE(r.pitch, 24);
  EXPECT_EQ(rect_elements(*small_pitch), view_elements(out));
  // The CUDA rule: at most 1024 memsets.
  EXPECT_TRUE(cuda_fill_rects(view({1000, 32, 128}, {32 * 136 + 8, 136, 1})).has_value());
  EXPECT_FALSE(
      cuda_fill_rects(view({100, 2000, 32, 128}, {2000 * 4360 + 8, 4360, 136, 1})).has_value());
}

}  // namespace
}  // namespace flashjit
