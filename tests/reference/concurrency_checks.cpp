// The concurrency checks shared by the CPU and CUDA programs.
#include "reference/concurrency_checks.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <thread>
#include <vector>

#include "reference/attention_case.h"

namespace flashjit::testing {
namespace {

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

std::vector<AttentionCase> mixed_cases(Device device) {
  std::vector<AttentionCase> cases;
  AttentionCase prefill;
  prefill.device = device;
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
  window.dtype = device.type == DeviceType::kCPU ? DType::kFloat32 : DType::kFloat16;
  window.head_dim = 64;
  window.causal = false;
  window.window_left = 20;
  window.window_right = 5;
  cases.push_back(window);
  AttentionCase decode;
  decode.device = device;
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
  AttentionCase planned = append;
  planned.num_splits = 2;
  planned.planned = true;
  cases.push_back(planned);
  AttentionCase softcap = decode;
  softcap.page_size = 0;
  softcap.softcap = 30;
  softcap.sinks = true;
  softcap.num_splits = 0;
  cases.push_back(softcap);
  return cases;
}

}  // namespace

void expect_cold_key_built_once(Device device) {
  AttentionCase c;
  c.device = device;
  c.api = Api::kKvcache;
  c.batch = 3;
  c.num_heads = 8;
  c.num_heads_k = 2;
  c.head_dim = 96;  // a key no other test of these programs uses
  c.seqlen_q = 1;
  c.seqlen_k = 300;
  c.cache_seqlens = true;
  c.random_lengths = true;
  c.num_splits = 1;
  const CacheStats before = cache_stats();
  std::vector<CaseResult> results(kConcurrencyThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kConcurrencyThreads; ++t)
    threads.emplace_back([&, t] { results[t] = run_case(c); });
  for (std::thread& t : threads) t.join();
  EXPECT_EQ(cache_stats().compiles - before.compiles, 1);
  for (int t = 0; t < kConcurrencyThreads; ++t) {
    SCOPED_TRACE(t);
    EXPECT_EQ(results[t].unwritten, 0);
    EXPECT_LE(results[t].max_err, results[t].tolerance);
    expect_same_bits(results[t], results[0]);
  }
}

void expect_mixed_calls_match_serial(Device device, int rounds) {
  const std::vector<AttentionCase> cases = mixed_cases(device);
  std::vector<CaseResult> serial;
  for (const AttentionCase& c : cases) {
    serial.push_back(run_case(c));
    ASSERT_LE(serial.back().max_err, serial.back().tolerance) << c.name();
    ASSERT_EQ(serial.back().unwritten, 0) << c.name();
  }
  std::vector<std::vector<CaseResult>> got(kConcurrencyThreads, std::vector<CaseResult>(rounds));
  std::vector<std::thread> threads;
  for (int t = 0; t < kConcurrencyThreads; ++t)
    threads.emplace_back([&, t] {
      for (int r = 0; r < rounds; ++r) got[t][r] = run_case(cases[(t + r) % cases.size()]);
    });
  for (std::thread& t : threads) t.join();
  for (int t = 0; t < kConcurrencyThreads; ++t)
    for (int r = 0; r < rounds; ++r) {
      const size_t i = (t + r) % cases.size();
      SCOPED_TRACE(cases[i].name());
      expect_same_bits(got[t][r], serial[i]);
    }
}

int run_tests_on_an_empty_cache(int argc, char** argv) {
  char dir[] = "/tmp/flashjit-concurrency-test-XXXXXX";
  const bool fresh = mkdtemp(dir) != nullptr;
  if (fresh) setenv("FLASHJIT_CACHE_DIR", dir, 1);  // nothing compiled yet
  ::testing::InitGoogleTest(&argc, argv);
  const int rc = RUN_ALL_TESTS();
  if (fresh) std::filesystem::remove_all(dir);
  return rc;
}

}  // namespace flashjit::testing
