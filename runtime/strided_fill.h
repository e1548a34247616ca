// The elements of a strided view as a few rectangles (row runs at a fixed pitch), so that a whole
// view can be filled by 2D memsets (CUDA) or row fills (CPU) whatever its strides.
#pragma once

#include <cstdint>
#include <optional>
#include <utility>
#include <vector>

#include "flashjit/tensor.h"

namespace flashjit {

// Elements offset + r * pitch + [0, width) for r in [0, height), all counted in elements.
struct FillRect {
  int64_t offset = 0, pitch = 0, width = 0, height = 0;
};

// Rectangles covering each element of `t` exactly once. The contiguous innermost run is the
// width; of the other dimensions the largest whose stride is a usable pitch (at least the width,
// at most max_pitch) is the height, and the rest are enumerated. Dimensions that tile each other
// merge first, so a contiguous view is one rectangle. An empty view has none; nullopt where more
// than max_rects would be needed. Expects a view whose elements do not overlap.
inline std::optional<std::vector<FillRect>> fill_rects(const Tensor& t, int64_t max_rects,
                                                       int64_t max_pitch) {
  std::vector<std::pair<int64_t, int64_t>> dims;  // (size, stride), outer to inner, merged
  for (int d = 0; d < t.rank; ++d) {
    const int64_t size = t.shape[d], stride = t.strides[d];
    if (size == 0) return std::vector<FillRect>{};
    if (size == 1) continue;
    if (!dims.empty() && dims.back().second == size * stride)
      dims.back() = {dims.back().first * size, stride};
    else
      dims.emplace_back(size, stride);
  }
  int64_t width = 1;
  if (!dims.empty() && dims.back().second == 1) {
    width = dims.back().first;
    dims.pop_back();
  }
  int height_dim = -1;
  for (int i = 0; i < static_cast<int>(dims.size()); ++i) {
    const auto [size, stride] = dims[i];
    if (stride >= width && stride <= max_pitch && (height_dim < 0 || size > dims[height_dim].first))
      height_dim = i;
  }
  FillRect rect{0, width, width, 1};
  if (height_dim >= 0) {
    rect.height = dims[height_dim].first;
    rect.pitch = dims[height_dim].second;
    dims.erase(dims.begin() + height_dim);
  }
  int64_t count = 1;
  for (const auto& [size, stride] : dims) {
    if (count > max_rects / size) return std::nullopt;
    count *= size;
  }
  std::vector<FillRect> rects;
  rects.reserve(static_cast<size_t>(count));
  std::vector<int64_t> index(dims.size(), 0);  // an odometer over the enumerated dimensions
  for (int64_t n = 0; n < count; ++n) {
    rects.push_back(rect);
    for (int i = static_cast<int>(dims.size()) - 1; i >= 0; --i) {
      rect.offset += dims[i].second;
      if (++index[i] < dims[i].first) break;
      rect.offset -= dims[i].first * dims[i].second;
      index[i] = 0;
    }
  }
  return rects;
}

// The rectangles of a CUDA fill (cuda_fill_empty): one 2D memset each, at most 1024 of them (a
// bound on the host work of one call), pitches below 2^31 bytes.
inline std::optional<std::vector<FillRect>> cuda_fill_rects(const Tensor& t) {
  return fill_rects(t, 1024, ((int64_t{1} << 31) - 1) / dtype_size(t.dtype));
}

}  // namespace flashjit
