// Microbenchmarks for the ceilings. Compiled for the ISA with per-function target attributes, so
// the CLI itself still runs on any x86-64 (these are only called where the CPU has the feature).
#include "tools/bench_ceilings.h"

#include <immintrin.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <cstring>
#include <thread>
#include <vector>

#include "tools/tool_common.h"

namespace flashjit::tools {
namespace {

template <typename F>
double parallel_rate(int threads, F&& per_thread) {
  std::vector<double> rate(threads);
  std::vector<std::thread> pool;
  std::atomic<int> ready{0};
  for (int t = 0; t < threads; ++t) {
    pool.emplace_back([&, t] {
      ready++;
      while (ready.load() < threads) {
      }
      rate[t] = per_thread(t);
    });
  }
  for (auto& th : pool) th.join();
  double sum = 0;
  for (double r : rate) sum += r;
  return sum;
}

// Every chain of a peak probe feeds one stored result, so that none of them can be dropped.
__attribute__((target("avx512f"))) void keep_chains(const __m512* acc) {
  __m512 total = acc[0];
  for (int i = 1; i < 16; ++i) total = _mm512_add_ps(total, acc[i]);
  float sink[16];
  _mm512_storeu_ps(sink, total);
  asm volatile("" ::"r"(sink[0]));
}

__attribute__((target("avx512f"))) double fma_gflops_one() {
  __m512 acc[16];
  for (int i = 0; i < 16; ++i) acc[i] = _mm512_set1_ps(0.001f * i);
  const __m512 a = _mm512_set1_ps(0.999f), b = _mm512_set1_ps(0.0001f);
  const long iters = 20'000'000;
  const double start = now_ms();
  for (long n = 0; n < iters; ++n) {
    for (int i = 0; i < 16; ++i) acc[i] = _mm512_fmadd_ps(acc[i], a, b);
  }
  const double ms = now_ms() - start;
  keep_chains(acc);
  return iters * 16.0 * 16 * 2 / ms / 1e6;
}

// 32 multiply-adds per instruction and lane pair: the ceiling of the CPU kernel's bf16 pair path.
__attribute__((target("avx512f,avx512bf16"))) double dot_bf16_gflops_one() {
  __m512 acc[16];
  for (int i = 0; i < 16; ++i) acc[i] = _mm512_set1_ps(0.001f * i);
  const __m512bh a = (__m512bh)_mm512_set1_epi16(0x3f80), b = (__m512bh)_mm512_set1_epi16(0x3000);
  const long iters = 20'000'000;
  const double start = now_ms();
  for (long n = 0; n < iters; ++n) {
    for (int i = 0; i < 16; ++i) acc[i] = _mm512_dpbf16_ps(acc[i], a, b);
  }
  const double ms = now_ms() - start;
  keep_chains(acc);
  return iters * 16.0 * 32 * 2 / ms / 1e6;
}

__attribute__((target("amx-tile,amx-bf16"))) double amx_gflops_one() {
  struct alignas(64) {
    uint8_t palette = 1, start = 0, reserved[14] = {};
    uint16_t colsb[16] = {};
    uint8_t rows[16] = {};
  } cfg;
  for (int t = 0; t < 8; ++t) {
    cfg.colsb[t] = 64;
    cfg.rows[t] = 16;
  }
  _tile_loadconfig(&cfg);
  alignas(64) static thread_local uint16_t src[16 * 32];
  for (int i = 0; i < 16 * 32; ++i) src[i] = 0x3c00;
  _tile_loadd(4, src, 64);
  _tile_loadd(5, src, 64);
  _tile_loadd(6, src, 64);
  _tile_loadd(7, src, 64);
  _tile_zero(0);
  _tile_zero(1);
  _tile_zero(2);
  _tile_zero(3);
  const long iters = 2'000'000;
  const double start = now_ms();
  for (long n = 0; n < iters; ++n) {
    _tile_dpbf16ps(0, 4, 6);
    _tile_dpbf16ps(1, 4, 7);
    _tile_dpbf16ps(2, 5, 6);
    _tile_dpbf16ps(3, 5, 7);
  }
  const double ms = now_ms() - start;
  _tile_release();
  return iters * 4.0 * 16 * 16 * 32 * 2 / ms / 1e6;
}

// Reads p[0, n) once.
__attribute__((target("avx512f"))) void read_once(const float* p, size_t n) {
  __m512 s0 = _mm512_setzero_ps(), s1 = s0, s2 = s0, s3 = s0;
  for (size_t i = 0; i < n; i += 64) {
    s0 = _mm512_add_ps(s0, _mm512_loadu_ps(p + i));
    s1 = _mm512_add_ps(s1, _mm512_loadu_ps(p + i + 16));
    s2 = _mm512_add_ps(s2, _mm512_loadu_ps(p + i + 32));
    s3 = _mm512_add_ps(s3, _mm512_loadu_ps(p + i + 48));
  }
  float sink[16];
  _mm512_storeu_ps(sink, _mm512_add_ps(_mm512_add_ps(s0, s1), _mm512_add_ps(s2, s3)));
  asm volatile("" ::"r"(sink[0]));
}

}  // namespace

struct DramReadProbe::Buffer {
  HugePageBuffer memory{(size_t{1} << 28) * sizeof(float)};  // the same pages as the kernels'
};

DramReadProbe::DramReadProbe(int threads) : threads_(threads), buffer_(std::make_unique<Buffer>()) {
  float* data = reinterpret_cast<float*>(buffer_->memory.data());
  const size_t n = buffer_->memory.size() / sizeof(float);
  for (size_t i = 0; i < n; ++i) data[i] = 1.0f;
}

DramReadProbe::~DramReadProbe() = default;

double DramReadProbe::gbs() const {
  const float* data = reinterpret_cast<const float*>(buffer_->memory.data());
  const size_t per = buffer_->memory.size() / sizeof(float) / threads_ / 64 * 64;
  // Bytes of all threads over the time from the first start to the last end, as the kernels are
  // timed. NOTE: the sum of per-thread rates overstated two threads' read by 2-11 % (one thread
  // finishes first and the other then reads alone at a higher rate).
  const double ms = together_ms(threads_, [&](int t) { read_once(data + t * per, per); });
  return static_cast<double>(per) * threads_ * sizeof(float) / ms / 1e6;
}

Ceilings measure_ceilings(int threads, bool amx, bool bf16_dot, const DramReadProbe* dram) {
  Ceilings c;
  if (!__builtin_cpu_supports("avx512f")) return c;
  c.fp32_fma_gflops = parallel_rate(threads, [](int) { return fma_gflops_one(); });
  if (amx) c.amx_bf16_gflops = parallel_rate(threads, [](int) { return amx_gflops_one(); });
  if (bf16_dot)
    c.dot_bf16_gflops = parallel_rate(threads, [](int) { return dot_bf16_gflops_one(); });
  for (int rep = 0; dram && rep < 3; ++rep)
    c.dram_read_gbs = std::max(c.dram_read_gbs, dram->gbs());
  return c;
}

}  // namespace flashjit::tools
