// Calls from many threads at once, as a server's request threads make them: threads that hit one
// cold key together compile it once and agree bit for bit, and a mix of keys (prefill, decode,
// append with rotary, split-KV) run concurrently gives each call its serial result bit for bit.
// Has its own main: the kernel cache must start empty.
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <random>
#include <thread>
#include <vector>

#include "reference/attention_case.h"
#include "reference/host_buffer.h"

namespace flashjit::testing {
namespace {

constexpr int kThreads = 8;

void expect_same_bits(const CaseResult& got, const CaseResult& want) {
  ASSERT_EQ(got.out.size(), want.out.size());
  ASSERT_EQ(got.lse_out.size(), want.lse_out.size());
  int64_t out_diff = 0, lse_diff = 0;
  for (size_t i = 0; i < got.out.size(); ++i) out_diff += got.out[i] != want.out[i];
  for (size_t i = 0; i < got.lse_out.size(); ++i) lse_diff += got.lse_out[i] != want.lse_out[i];
  EXPECT_EQ(out_diff, 0);
  EXPECT_EQ(lse_diff, 0);
  EXPECT_EQ(got.cache_mismatch, want.cache_mismatch);
}

TEST(CpuConcurrency, ThreadsOnAColdKeyCompileItOnceAndAgree) {
  AttentionCase c;
  c.api = Api::kKvcache;
  c.batch = 3;
  c.num_heads = 8;
  c.num_heads_k = 2;
  c.head_dim = 96;  // a key no other test of this process uses
  c.seqlen_q = 1;
  c.seqlen_k = 300;
  c.cache_seqlens = true;
  c.random_lengths = true;
  c.num_splits = 1;
  const CacheStats before = cache_stats();
  std::vector<CaseResult> results(kThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) threads.emplace_back([&, t] { results[t] = run_case(c); });
  for (std::thread& t : threads) t.join();
  EXPECT_EQ(cache_stats().compiles - before.compiles, 1);
  for (int t = 0; t < kThreads; ++t) {
    SCOPED_TRACE(t);
    EXPECT_EQ(results[t].unwritten, 0);
    EXPECT_LE(results[t].max_err, results[t].tolerance);
    expect_same_bits(results[t], results[0]);
  }
}

std::vector<AttentionCase> mixed_cases() {
  std::vector<AttentionCase> cases;
  AttentionCase prefill;
  prefill.api = Api::kVarlen;
  prefill.batch = 2;
  prefill.num_heads = 4;
  prefill.num_heads_k = 2;
  prefill.head_dim = 128;
  prefill.seqlen_q = prefill.seqlen_k = 150;
  prefill.random_lengths = true;
  prefill.causal = true;
  cases.push_back(prefill);
  AttentionCase window = prefill;
  window.dtype = DType::kFloat32;
  window.head_dim = 64;
  window.causal = false;
  window.window_left = 20;
  window.window_right = 5;
  cases.push_back(window);
  AttentionCase decode;
  decode.batch = 4;
  decode.num_heads = 8;
  decode.num_heads_k = 2;
  decode.head_dim = 128;
  decode.seqlen_q = 1;
  decode.seqlen_k = 700;
  decode.page_size = 16;
  decode.cache_seqlens = true;
  decode.random_lengths = true;
  decode.num_splits = 3;
  cases.push_back(decode);
  AttentionCase append = decode;
  append.dtype = DType::kFloat16;
  append.seqlen_new = 1;
  append.rotary_fraction = 1;
  append.rotary_interleaved = false;
  append.causal = true;
  append.num_splits = 1;
  cases.push_back(append);
  AttentionCase softcap = decode;
  softcap.page_size = 0;
  softcap.softcap = 30;
  softcap.sinks = true;
  softcap.num_splits = 0;
  cases.push_back(softcap);
  return cases;
}

TEST(CpuConcurrency, MixedCallsFromManyThreadsGiveTheirSerialResults) {
  const std::vector<AttentionCase> cases = mixed_cases();
  std::vector<CaseResult> serial;
  for (const AttentionCase& c : cases) {
    serial.push_back(run_case(c));
    ASSERT_LE(serial.back().max_err, serial.back().tolerance) << c.name();
    ASSERT_EQ(serial.back().unwritten, 0) << c.name();
  }
  constexpr int kRounds = 6;
  std::vector<std::vector<CaseResult>> got(kThreads, std::vector<CaseResult>(kRounds));
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t)
    threads.emplace_back([&, t] {
      for (int r = 0; r < kRounds; ++r) got[t][r] = run_case(cases[(t + r) % cases.size()]);
    });
  for (std::thread& t : threads) t.join();
  for (int t = 0; t < kThreads; ++t)
    for (int r = 0; r < kRounds; ++r) {
      const size_t i = (t + r) % cases.size();
      SCOPED_TRACE(cases[i].name());
      expect_same_bits(got[t][r], serial[i]);
    }
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
  char dir[] = "/tmp/flashjit-concurrency-test-XXXXXX";
  const bool fresh = mkdtemp(dir) != nullptr;
  if (fresh) setenv("FLASHJIT_CACHE_DIR", dir, 1);  // nothing compiled yet
  ::testing::InitGoogleTest(&argc, argv);
  const int rc = RUN_ALL_TESTS();
  if (fresh) std::filesystem::remove_all(dir);
  return rc;
}
