// Tensor view helpers.
#include <fmt/format.h>

#include "flashjit/error.h"
#include "flashjit/tensor.h"

namespace flashjit {
namespace {
void fill_shape(Tensor& t, std::initializer_list<int64_t> shape) {
  FLASHJIT_CHECK(shape.size() <= kMaxTensorRank) << "Tensor: expected a shape of rank at most "
                                                 << kMaxTensorRank << ", got rank " << shape.size();
  t.rank = static_cast<int>(shape.size());
  int i = 0;
  for (int64_t s : shape) t.shape[i++] = s;
}
}  // namespace

Tensor Tensor::contiguous(void* data, DType dtype, std::initializer_list<int64_t> shape,
                          Device device) {
  Tensor t;
  t.data = data;
  t.dtype = dtype;
  t.device = device;
  fill_shape(t, shape);
  int64_t stride = 1;
  for (int i = t.rank - 1; i >= 0; --i) {
    t.strides[i] = stride;
    stride *= t.shape[i];
  }
  return t;
}

Tensor Tensor::strided(void* data, DType dtype, std::initializer_list<int64_t> shape,
                       std::initializer_list<int64_t> strides, Device device) {
  FLASHJIT_CHECK(shape.size() == strides.size())
      << "Tensor::strided: expected as many strides as sizes (" << shape.size() << "), got "
      << strides.size();
  Tensor t = contiguous(data, dtype, shape, device);
  int i = 0;
  for (int64_t s : strides) t.strides[i++] = s;
  return t;
}

int64_t Tensor::numel() const {
  int64_t n = 1;
  for (int i = 0; i < rank; ++i) n *= shape[i];
  return n;
}

bool Tensor::is_contiguous() const {
  int64_t stride = 1;
  for (int i = rank - 1; i >= 0; --i) {
    if (shape[i] != 1 && strides[i] != stride) return false;
    stride *= shape[i];
  }
  return true;
}

std::string Tensor::shape_string() const {
  std::string s = "(";
  for (int i = 0; i < rank; ++i) s += fmt::format("{}{}", i ? ", " : "", shape[i]);
  return s + (rank == 1 ? ",)" : ")");
}

}  // namespace flashjit
