// A non-owning strided tensor view, the currency of flashjit's public API. flashjit never owns or
// allocates caller memory: a Tensor is a pointer, a dtype, a device and shape/strides in elements.
#pragma once

#include <array>
#include <cstdint>
#include <initializer_list>
#include <optional>
#include <string>

namespace flashjit {

enum class DType : uint8_t { kFloat32, kFloat16, kBFloat16, kFloat8E4M3, kInt32, kInt64 };

// Short, stable spelling ("bf16", "fp32", ...), used in messages, keys and file names.
const char* dtype_name(DType dtype);
int dtype_size(DType dtype);

enum class DeviceType : uint8_t { kCPU, kCUDA };

struct Device {
  DeviceType type = DeviceType::kCPU;
  int index = 0;
  bool operator==(const Device&) const = default;
};
std::string device_name(Device device);

inline constexpr int kMaxTensorRank = 4;

struct Tensor {
  void* data = nullptr;
  DType dtype = DType::kFloat32;
  Device device{};
  int rank = 0;
  std::array<int64_t, kMaxTensorRank> shape{};
  std::array<int64_t, kMaxTensorRank> strides{};  // in elements, not bytes

  // A contiguous (row-major) view of `data`.
  static Tensor contiguous(void* data, DType dtype, std::initializer_list<int64_t> shape,
                           Device device = {});
  // A view with explicit strides (in elements).
  static Tensor strided(void* data, DType dtype, std::initializer_list<int64_t> shape,
                        std::initializer_list<int64_t> strides, Device device = {});

  int64_t size(int dim) const { return shape[dim < 0 ? dim + rank : dim]; }
  int64_t stride(int dim) const { return strides[dim < 0 ? dim + rank : dim]; }
  int64_t numel() const;
  bool is_contiguous() const;
  // "(2, 3, 4)": for messages.
  std::string shape_string() const;
};

using OptionalTensor = std::optional<Tensor>;

}  // namespace flashjit
