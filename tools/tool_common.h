// Helpers shared by the flashjit CLI commands: typed random host buffers and timing.
#pragma once

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <random>
#include <thread>
#include <vector>

#include "flashjit/flashjit.h"
#include "reference/host_buffer.h"

namespace flashjit::tools {

// Memory for the benchmark's large buffers: 2 MiB aligned and advised to use transparent huge
// pages, as a serving engine's KV-cache pool would be. NOTE: with 4 KiB pages, paged decode over
// randomly ordered 16-token pages loses about a fifth of its bandwidth to TLB misses.
struct HugePageBuffer {
  explicit HugePageBuffer(size_t bytes);
  ~HugePageBuffer();
  HugePageBuffer(const HugePageBuffer&) = delete;
  HugePageBuffer& operator=(const HugePageBuffer&) = delete;
  uint8_t* data() { return data_; }
  const uint8_t* data() const { return data_; }
  size_t size() const { return size_; }
  uint8_t& operator[](size_t i) { return data_[i]; }
  const uint8_t& operator[](size_t i) const { return data_[i]; }

 private:
  uint8_t* data_ = nullptr;
  size_t size_ = 0;
};

// Host storage for n elements of dtype, filled with N(0, 1) values rounded to the dtype.
struct HostTensor {
  DType dtype;
  HugePageBuffer bytes;
  HostTensor(DType t, int64_t n, uint64_t seed) : dtype(t), bytes(n * dtype_size(t)) {
    std::mt19937_64 rng(seed);
    std::normal_distribution<float> normal(0.f, 1.f);
    for (int64_t i = 0; i < n; ++i) set(i, normal(rng));
  }
  void set(int64_t i, double x) { testing::store_element(bytes.data(), i, x, dtype); }
  double get(int64_t i) const { return testing::load_element(bytes.data(), i, dtype); }
  void* data() { return bytes.data(); }
};

inline double now_ms() {
  return std::chrono::duration<double, std::milli>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

// Runs fn(t) for t < threads on as many threads, released together; returns the milliseconds
// from the first thread's start to the last one's end (how a multi-threaded kernel is timed).
template <typename F>
double together_ms(int threads, F&& fn) {
  std::vector<double> start(threads), end(threads);
  std::vector<std::thread> pool;
  std::atomic<int> ready{0};
  for (int t = 0; t < threads; ++t)
    pool.emplace_back([&, t] {
      ready++;
      while (ready.load() < threads) {
      }
      start[t] = now_ms();
      fn(t);
      end[t] = now_ms();
    });
  for (auto& th : pool) th.join();
  return *std::max_element(end.begin(), end.end()) - *std::min_element(start.begin(), start.end());
}

// Best and median of `reps` timed runs of fn (after one warm-up), in milliseconds.
template <typename F>
std::pair<double, double> time_ms(int reps, F&& fn) {
  fn();
  std::vector<double> t;
  for (int i = 0; i < reps; ++i) {
    const double start = now_ms();
    fn();
    t.push_back(now_ms() - start);
  }
  std::sort(t.begin(), t.end());
  return {t.front(), t[t.size() / 2]};
}

int run_demo();
int run_bench(bool quick, int threads, bool load_probe);
int run_splits_sweep(int threads, const std::vector<int>& splits);
int run_warm_decode(int threads, const std::vector<int>& seqlens);
int run_cache_command(const std::string& action);

}  // namespace flashjit::tools
