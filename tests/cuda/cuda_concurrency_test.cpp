// Calls from many threads at once on one GPU (reference/concurrency_checks.h), and the same
// warm call, planned and not, hammered from every thread on a stream of its own: threads that
// start without a CUDA context, split-KV workspaces taken from the pool on many streams at once,
// every output equal to the serial one bit for bit. Skips without a GPU. Has its own main: the
// kernel cache must start empty.
#include <gtest/gtest.h>

#include <thread>
#include <vector>

#include "reference/concurrency_checks.h"
#include "reference/device_mirrors.h"
#include "runtime/cuda_api.h"
#include "small_kvcache_problem.h"

namespace flashjit::testing {
namespace {

const Device kGpu{DeviceType::kCUDA, 0};

class CudaConcurrency : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!cuda_device_available()) GTEST_SKIP() << "no CUDA device";
  }
};

TEST_F(CudaConcurrency, ThreadsOnAColdKeyCompileItOnceAndAgree) {
  expect_cold_key_built_once(kGpu);
}

TEST_F(CudaConcurrency, MixedCallsFromManyThreadsGiveTheirSerialResults) {
  expect_mixed_calls_match_serial(kGpu, 4);
}

TEST_F(CudaConcurrency, HammeredCallsOnStreamsOfTheirOwnAreBitwiseSerial) {
  constexpr int kCalls = 100;
  make_cuda_device_current(0);
  SmallKvcacheProblem serial(64);
  std::vector<std::vector<uint16_t>> want;  // by num_splits - 1
  for (int splits : {1, 3}) {
    KvcacheArgs a = serial.args(nullptr);
    a.num_splits = splits;
    flash_attn_with_kvcache(a);
    want.push_back(serial.output());
  }
  std::vector<int64_t> mismatches(kConcurrencyThreads, 0);
  std::vector<std::thread> threads;
  for (int t = 0; t < kConcurrencyThreads; ++t)
    threads.emplace_back([&, t] {
      // A new thread has no context: its stream and buffers need one, the calls would not.
      make_cuda_device_current(0);
      SmallKvcacheProblem p(64);
      CUstream stream = nullptr;
      FLASHJIT_CU(cuStreamCreate(&stream, CU_STREAM_NON_BLOCKING));
      const int splits = t % 2 ? 3 : 1;
      KvcacheArgs a = p.args(stream);
      a.num_splits = splits;
      const AttentionPlan plan(a);
      CUdeviceptr workspace = 0;
      FLASHJIT_CU(cuMemAlloc(&workspace, std::max<size_t>(plan.workspace_bytes(), 16)));
      const size_t out_bytes = want[0].size() * 2;
      for (int i = 0; i < kCalls; ++i) {
        FLASHJIT_CU(cuMemsetD8Async(p.out, 0xff, out_bytes, stream));  // poison
        if (i % 2) {
          plan.run(a, reinterpret_cast<void*>(workspace));
        } else {
          flash_attn_with_kvcache(a);
        }
        FLASHJIT_CU(cuStreamSynchronize(stream));
        std::vector<uint16_t> got(want[0].size());
        FLASHJIT_CU(cuMemcpyDtoH(got.data(), p.out, out_bytes));
        mismatches[t] += got != want[splits == 1 ? 0 : 1];
      }
      FLASHJIT_CU(cuMemFree(workspace));
      FLASHJIT_CU(cuStreamDestroy(stream));
    });
  for (std::thread& t : threads) t.join();
  for (int t = 0; t < kConcurrencyThreads; ++t) EXPECT_EQ(mismatches[t], 0) << "thread " << t;
}

}  // namespace
}  // namespace flashjit::testing

int main(int argc, char** argv) {
  return flashjit::testing::run_tests_on_an_empty_cache(argc, argv);
}
