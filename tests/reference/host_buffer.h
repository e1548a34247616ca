// Host-side values of a dtype for the GPU and CPU tests: 16-bit patterns of bf16 / fp16 and
// typed byte buffers that the device mirrors copy.
#pragma once

#include <cstdint>
#include <vector>

#include "flashjit/flashjit.h"

namespace flashjit::testing {

// x rounded to the 16-bit dtype (bf16: round to nearest even; NaN stays NaN), as its bits.
uint16_t to_bits(double x, DType dtype);
// The value of a 16-bit pattern of dtype (bf16 or fp16).
double from_bits(uint16_t bits, DType dtype);

// Element i of a packed array of dtype (float32, bf16 or fp16): x stored rounded, or read back.
void store_element(void* bytes, int64_t i, double x, DType dtype);
double load_element(const void* bytes, int64_t i, DType dtype);

// `count` elements of dtype (float32, bf16 or fp16), all set to `fill` (NaN: poison).
struct HostBuffer {
  DType dtype;
  std::vector<uint8_t> bytes;
  HostBuffer(DType d, int64_t count, double fill);
  void set(int64_t i, double x);
  double get(int64_t i) const;
  void* data() { return bytes.data(); }
};

}  // namespace flashjit::testing
