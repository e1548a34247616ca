#include "reference/host_buffer.h"

#include <cmath>
#include <cstring>

#include "reference/attention_reference.h"

namespace flashjit::testing {

uint16_t to_bits(double x, DType dtype) {
  if (dtype == DType::kFloat16) {
    const _Float16 h = static_cast<_Float16>(static_cast<float>(x));
    uint16_t b;
    std::memcpy(&b, &h, 2);
    return b;
  }
  const float f = static_cast<float>(std::isnan(x) ? x : round_to(x, DType::kBFloat16));
  uint32_t w;
  std::memcpy(&w, &f, 4);
  return static_cast<uint16_t>(w >> 16);
}

double from_bits(uint16_t bits, DType dtype) {
  if (dtype == DType::kFloat16) {
    _Float16 h;
    std::memcpy(&h, &bits, 2);
    return static_cast<float>(h);
  }
  const uint32_t w = uint32_t{bits} << 16;
  float f;
  std::memcpy(&f, &w, 4);
  return f;
}

HostBuffer::HostBuffer(DType d, int64_t count, double fill)
    : dtype(d), bytes(static_cast<size_t>(count) * dtype_size(d)) {
  for (int64_t i = 0; i < count; ++i) set(i, fill);
}

void store_element(void* bytes, int64_t i, double x, DType dtype) {
  char* p = static_cast<char*>(bytes);
  if (dtype == DType::kFloat32) {
    const float f = static_cast<float>(x);
    std::memcpy(p + i * 4, &f, 4);
  } else {
    const uint16_t b = to_bits(x, dtype);
    std::memcpy(p + i * 2, &b, 2);
  }
}

double load_element(const void* bytes, int64_t i, DType dtype) {
  const char* p = static_cast<const char*>(bytes);
  if (dtype == DType::kFloat32) {
    float f;
    std::memcpy(&f, p + i * 4, 4);
    return f;
  }
  uint16_t b;
  std::memcpy(&b, p + i * 2, 2);
  return from_bits(b, dtype);
}

void HostBuffer::set(int64_t i, double x) { store_element(bytes.data(), i, x, dtype); }

double HostBuffer::get(int64_t i) const { return load_element(bytes.data(), i, dtype); }

}  // namespace flashjit::testing
