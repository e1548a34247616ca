// Argument checks with uniform messages: "flashjit: <param>: expected <x>, got <y>".
#include "runtime/checks.h"

#include <algorithm>
#include <string>
#include <vector>

#include "flashjit/error.h"

namespace flashjit::checks {

void rank(const Tensor& t, const char* name, int expected, const char* dims) {
  FLASHJIT_CHECK(t.rank == expected)
      << name << ": expected rank " << expected << " " << dims << ", got rank " << t.rank
      << " with shape " << t.shape_string();
}

void dtype(const Tensor& t, const char* name, DType expected) {
  FLASHJIT_CHECK(t.dtype == expected)
      << name << ": expected dtype " << dtype_name(expected) << ", got " << dtype_name(t.dtype);
}

void shape(const Tensor& t, const char* name, std::initializer_list<int64_t> expected,
           const char* dims) {
  bool ok = static_cast<int>(expected.size()) == t.rank;
  int i = 0;
  std::string want = "(";
  for (int64_t e : expected) {
    if (ok && e >= 0 && t.shape[i] != e) ok = false;
    want += (i ? ", " : "") + (e >= 0 ? std::to_string(e) : std::string("*"));
    ++i;
  }
  want += expected.size() == 1 ? ",)" : ")";
  FLASHJIT_CHECK(ok) << name << ": expected shape " << want << (*dims ? " " : "") << dims
                     << ", got " << t.shape_string();
}

void last_dim_contiguous(const Tensor& t, const char* name) {
  FLASHJIT_CHECK(t.rank == 0 || t.stride(-1) == 1)
      << name << ": expected a contiguous last dimension (stride 1), got stride " << t.stride(-1);
}

std::string strides_string(const Tensor& t) {
  std::string s = "(";
  for (int i = 0; i < t.rank; ++i) s += (i ? ", " : "") + std::to_string(t.strides[i]);
  return s + ")";
}

void contiguous(const Tensor& t, const char* name) {
  if (t.is_contiguous()) return;
  FLASHJIT_CHECK(false) << name << ": expected a contiguous tensor, got strides "
                        << strides_string(t) << " for shape " << t.shape_string();
}

void has_data(const Tensor& t, const char* name) {
  // NOTE: the kernels index rows, heads and pages with 32-bit ints (offsets are 64-bit).
  bool empty = false;
  for (int i = 0; i < t.rank; ++i) {
    FLASHJIT_CHECK(t.shape[i] >= 0 && t.shape[i] <= kMaxSize)
        << name << ": expected sizes in [0, " << kMaxSize << "], got shape " << t.shape_string();
    empty = empty || t.shape[i] == 0;
  }
  FLASHJIT_CHECK(t.data != nullptr || empty)
      << name << ": expected a data pointer, got null for shape " << t.shape_string();
}

void non_negative_strides(const Tensor& t, const char* name) {
  for (int i = 0; i < t.rank; ++i) {
    FLASHJIT_CHECK(t.strides[i] >= 0) << name << ": expected non-negative strides, got stride "
                                      << t.strides[i] << " in dim " << i;
  }
}

void no_overlap(const Tensor& t, const char* name) {
  for (int i = 0; i < t.rank; ++i)
    if (t.shape[i] == 0) return;  // no elements (a call without queries)
  std::vector<int> dims;
  for (int i = 0; i < t.rank; ++i)
    if (t.shape[i] > 1) dims.push_back(i);
  std::sort(dims.begin(), dims.end(), [&](int a, int b) { return t.strides[a] < t.strides[b]; });
  int64_t extent = 1;  // elements spanned by the dimensions so far
  bool ok = true;
  for (int i : dims) {
    ok = ok && t.strides[i] >= extent;
    extent = t.strides[i] * t.shape[i];
  }
  if (ok) return;
  FLASHJIT_CHECK(false) << name
                        << ": expected a view whose elements do not overlap (it is written), got "
                        << "strides " << strides_string(t) << " for shape " << t.shape_string();
}

void same_device(const Tensor& t, const char* name, Device device) {
  FLASHJIT_CHECK(t.device == device) << name << ": expected device " << device_name(device)
                                     << " (the device of q), got " << device_name(t.device);
}

void index_vector(const Tensor& t, const char* name, int64_t n, const char* dims, Device device) {
  dtype(t, name, DType::kInt32);
  shape(t, name, {n}, dims);
  contiguous(t, name);
  has_data(t, name);
  same_device(t, name, device);
}

void not_supported_if(bool present, const char* what) {
  if (present) FLASHJIT_NOT_SUPPORTED() << what;
}

}  // namespace flashjit::checks
