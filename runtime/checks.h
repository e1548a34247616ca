// Argument checks shared by the two entry points. Each throws a UsageError that names the
// parameter, the expected value and the actual value.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <string>

#include "flashjit/tensor.h"

namespace flashjit::checks {

void rank(const Tensor& t, const char* name, int expected, const char* dims);
void dtype(const Tensor& t, const char* name, DType expected);
// expected sizes; -1 = any.
void shape(const Tensor& t, const char* name, std::initializer_list<int64_t> expected,
           const char* dims);
void last_dim_contiguous(const Tensor& t, const char* name);
void contiguous(const Tensor& t, const char* name);
// "(8, 1)": a tensor's strides, for messages.
std::string strides_string(const Tensor& t);
// The largest size of a dimension (kernels index with 32-bit ints).
inline constexpr int64_t kMaxSize = 2147483647;
// A data pointer (or no elements) and sizes in [0, kMaxSize].
void has_data(const Tensor& t, const char* name);
void non_negative_strides(const Tensor& t, const char* name);
// For tensors the call writes: no two elements share an address (non-negative strides that, in
// increasing order over the dimensions of size > 1, each step past the previous one's extent).
void no_overlap(const Tensor& t, const char* name);
// An int32, contiguous (n,) tensor on the given device; dims names n ("(batch + 1,)").
void index_vector(const Tensor& t, const char* name, int64_t n, const char* dims, Device device);
void same_device(const Tensor& t, const char* name, Device device);
// A feature the API names but this build does not implement yet.
void not_supported_if(bool present, const char* what);

}  // namespace flashjit::checks
