// SHA-256 (FIPS 180-4), self-contained so the cache layer needs no crypto library and a CUDA-only
// build needs no LLVM. Used for kernel digests and entry checksums.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace flashjit::cache {

using Digest = std::array<uint8_t, 32>;

class Sha256 {
 public:
  Sha256();
  Sha256& update(const void* data, size_t size);
  Sha256& update(std::string_view text) { return update(text.data(), text.size()); }
  // Feeds a length-prefixed field, so that ("ab","c") and ("a","bc") hash differently.
  Sha256& update_field(std::string_view text);
  Digest finish();

 private:
  void compress(const uint8_t* block);
  std::array<uint32_t, 8> state_;
  std::array<uint8_t, 64> buffer_;
  uint64_t total_bytes_ = 0;
  size_t buffered_ = 0;
};

Digest sha256(std::string_view data);
std::string to_hex(const Digest& digest);

}  // namespace flashjit::cache
