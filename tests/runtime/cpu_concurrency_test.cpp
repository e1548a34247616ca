// Calls from many threads at once on the CPU backend (reference/concurrency_checks.h), and the
// same decode calls, planned and not, hammered from every thread into their own outputs. Has its
// own main: the kernel cache must start empty.
#include <gtest/gtest.h>

#include <random>
#include <thread>
#include <vector>

#include "reference/attention_case.h"
#include "reference/concurrency_checks.h"
#include "reference/host_buffer.h"

namespace flashjit::testing {
namespace {

constexpr int kThreads = kConcurrencyThreads;

TEST(CpuConcurrency, ThreadsOnAColdKeyCompileItOnceAndAgree) {
  expect_cold_key_built_once(Device{});
}

TEST(CpuConcurrency, MixedCallsFromManyThreadsGiveTheirSerialResults) {
  expect_mixed_calls_match_serial(Device{}, 6);
}

// The same planned and unplanned decode calls hammered from every thread at once (the kernels
// warm, so calls overlap in the pool rather than in compilation), each into its own output.
TEST(CpuConcurrency, HammeredDecodeCallsAreBitwiseSerial) {
  constexpr int b = 4, h = 8, hk = 2, d = 64, sk = 512, kCalls = 200;
  std::mt19937 rng(5);
  auto random_bf16 = [&](size_t n) {
    std::vector<uint16_t> x(n);
    for (uint16_t& e : x)
      e = to_bits(std::normal_distribution<double>(0, 1)(rng), DType::kBFloat16);
    return x;
  };
  std::vector<uint16_t> q = random_bf16(size_t(b) * h * d),
                        k = random_bf16(size_t(b) * sk * hk * d),
                        v = random_bf16(size_t(b) * sk * hk * d);
  std::vector<int32_t> seqlens = {sk, 1, 300, 77};
  auto args = [&](std::vector<uint16_t>& out, int splits) {
    KvcacheArgs a;
    a.q = Tensor::contiguous(q.data(), DType::kBFloat16, {b, 1, h, d});
    a.k_cache = Tensor::contiguous(k.data(), DType::kBFloat16, {b, sk, hk, d});
    a.v_cache = Tensor::contiguous(v.data(), DType::kBFloat16, {b, sk, hk, d});
    a.cache_seqlens = Tensor::contiguous(seqlens.data(), DType::kInt32, {b});
    a.out = Tensor::contiguous(out.data(), DType::kBFloat16, {b, 1, h, d});
    a.num_splits = splits;
    return a;
  };
  std::vector<uint16_t> want1(size_t(b) * h * d), want4(want1.size());
  flash_attn_with_kvcache(args(want1, 1));
  flash_attn_with_kvcache(args(want4, 4));
  std::vector<int64_t> mismatches(kThreads, 0);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t)
    threads.emplace_back([&, t] {
      std::vector<uint16_t> out(want1.size());
      const int splits = t % 2 ? 4 : 1;
      const KvcacheArgs a = args(out, splits);
      const AttentionPlan plan(a);
      std::vector<uint8_t> workspace(plan.workspace_bytes());
      for (int i = 0; i < kCalls; ++i) {
        std::fill(out.begin(), out.end(), uint16_t{0x7fc0});  // NaN
        if (i % 2) {
          plan.run(a, workspace.data());
        } else {
          flash_attn_with_kvcache(a);
        }
        mismatches[t] += out != (splits == 1 ? want1 : want4);
      }
    });
  for (std::thread& t : threads) t.join();
  for (int t = 0; t < kThreads; ++t) EXPECT_EQ(mismatches[t], 0) << "thread " << t;
}

}  // namespace
}  // namespace flashjit::testing

int main(int argc, char** argv) {
  return flashjit::testing::run_tests_on_an_empty_cache(argc, argv);
}
