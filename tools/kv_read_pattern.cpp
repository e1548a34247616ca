// How fast this CPU reads a decode's K cache in the order the AMX kernel reads it, with no
// arithmetic: a ceiling for the CPU b1 decode below the sequential DRAM read. The cache is
// (tokens, 8 heads, d 128) bf16, so a token's heads are 2 KiB in a row; the kernel takes 32 tokens
// at a time, and per head tile loads of 16 rows x 64 bytes (one line per token, 2 KiB apart).
// Usage: flashjit_kv_read_pattern (prints GB/s of each order, 1 and 2 threads, 3 rounds).
#include <immintrin.h>

#include "fmt/core.h"
#include "tools/tool_common.h"

namespace {

constexpr long kTokenBytes = 8 * 256;  // 8 KV heads x d 128 x bf16

enum class Order { kSequential, kTileLoads };

// Reads tokens [0, n) of `base` once in `order`.
__attribute__((target("avx512f"))) void read_once(const char* base, long n, Order order) {
  __m512 sum = _mm512_setzero_ps();
#define FLASHJIT_READ_LINE(offset) \
  sum = _mm512_add_ps(sum, _mm512_loadu_ps(reinterpret_cast<const float*>(base + (offset))))
  if (order == Order::kSequential) {
    for (long i = 0; i < n * kTokenBytes; i += 64) FLASHJIT_READ_LINE(i);
  } else {
    for (long chunk = 0; chunk < n; chunk += 32)
      for (int head = 0; head < 8; ++head)
        for (int half = 0; half < 2; ++half)
          for (int quarter = 0; quarter < 4; ++quarter)  // 64 bytes of the head's 256
            for (int row = 0; row < 16; ++row)
              FLASHJIT_READ_LINE((chunk + half * 16 + row) * kTokenBytes + head * 256 +
                                 quarter * 64);
  }
#undef FLASHJIT_READ_LINE
  float sink[16];
  _mm512_storeu_ps(sink, sum);
  asm volatile("" ::"r"(sink[0]));
}

// GB/s of `threads` threads each reading its own `tokens` tokens, over the time from the first
// start to the last end.
double read_gbs(const char* base, long tokens, Order order, int threads) {
  const double ms = flashjit::tools::together_ms(
      threads, [&](int t) { read_once(base + t * tokens * kTokenBytes, tokens, order); });
  return static_cast<double>(tokens) * kTokenBytes * threads / ms / 1e6;
}

}  // namespace

int main() {
  if (!__builtin_cpu_supports("avx512f")) {
    fmt::print("flashjit_kv_read_pattern: needs AVX-512\n");
    return 1;
  }
  const size_t bytes = size_t{1} << 30;
  flashjit::tools::HugePageBuffer buffer(bytes);
  char* base = reinterpret_cast<char*>(buffer.data());
  for (size_t i = 0; i < bytes; ++i) base[i] = static_cast<char>(i);
  const long tokens = static_cast<long>(bytes / kTokenBytes / 2);  // per thread, up to 2 threads
  fmt::print("| round | order | 1 thread GB/s | 2 threads GB/s |\n|---|---|---|---|\n");
  for (int round = 0; round < 3; ++round)
    for (Order order : {Order::kSequential, Order::kTileLoads})
      fmt::print("| {} | {} | {:.1f} | {:.1f} |\n", round,
                 order == Order::kSequential ? "sequential" : "AMX tile loads",
                 read_gbs(base, tokens, order, 1), read_gbs(base, tokens, order, 2));
  return 0;
}
