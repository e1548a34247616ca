// The CUDA launch path: a warm kernel launches inside CUDA-graph capture (no compile, no
// allocation, no synchronization) and the replayed graph gives the same bits; a call that would
// have to compile while its stream is captured fails naming the key; CUDA-specific usage errors.
// Skips without a GPU. Has its own main: the kernel cache must be fresh for the capture test.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include "flashjit/flashjit.h"
#include "reference/device_mirrors.h"
#include "runtime/cuda_api.h"
#include "runtime/cuda_device.h"
#include "small_kvcache_problem.h"

namespace flashjit {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;
const Device kGpu{DeviceType::kCUDA, 0};
using Problem = testing::SmallKvcacheProblem;

class CudaLaunch : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!testing::cuda_device_available()) GTEST_SKIP() << "no CUDA device";
    testing::DeviceMirrors context(kGpu);  // makes the primary context current
    FLASHJIT_CU(cuStreamCreate(&stream_, CU_STREAM_NON_BLOCKING));
  }
  void TearDown() override {
    if (stream_) cuda::driver()->cuStreamDestroy(stream_);
  }
  CUstream stream_ = nullptr;
};

TEST_F(CudaLaunch, CompilingDuringCaptureIsAnErrorNamingTheKey) {
  Problem p(80);  // a head dim no other test in this process uses: its kernel is not loaded
  KvcacheArgs a = p.args(stream_);
  a.softcap = 30;
  FLASHJIT_CU(cuStreamBeginCapture(stream_, CU_STREAM_CAPTURE_MODE_RELAXED));
  try {
    flash_attn_with_kvcache(a);
    ADD_FAILURE() << "the call compiled a kernel during capture";
  } catch (const UsageError& e) {
    EXPECT_THAT(e.what(), HasSubstr("captured"));
    EXPECT_THAT(e.what(), HasSubstr("fa_fwd_cuda"));
  }
  CUgraph graph = nullptr;
  FLASHJIT_CU(cuStreamEndCapture(stream_, &graph));
  if (graph) cuda::driver()->cuGraphDestroy(graph);
  flash_attn_with_kvcache(a);  // outside capture the same call compiles and runs
  FLASHJIT_CU(cuStreamSynchronize(stream_));
}

TEST_F(CudaLaunch, WarmKernelIsCapturedIntoAGraphAndReplaysBitwise) {
  Problem p(64);
  const KvcacheArgs a = p.args(stream_);
  flash_attn_with_kvcache(a);  // compiles (or loads) and runs
  const std::vector<uint16_t> expected = p.output();
  FLASHJIT_CU(cuMemsetD8(p.out, 0xff, expected.size() * 2));  // poison
  const CacheStats before = cache_stats();
  FLASHJIT_CU(cuStreamBeginCapture(stream_, CU_STREAM_CAPTURE_MODE_GLOBAL));
  flash_attn_with_kvcache(a);
  CUgraph graph = nullptr;
  FLASHJIT_CU(cuStreamEndCapture(stream_, &graph));
  ASSERT_NE(graph, nullptr);
  EXPECT_EQ(cache_stats().compiles, before.compiles);
  CUgraphExec exec = nullptr;
  FLASHJIT_CU(cuGraphInstantiate(&exec, graph, 0));
  FLASHJIT_CU(cuGraphLaunch(exec, stream_));
  FLASHJIT_CU(cuStreamSynchronize(stream_));
  EXPECT_EQ(p.output(), expected);
  cuda::driver()->cuGraphExecDestroy(exec);
  cuda::driver()->cuGraphDestroy(graph);
}

// Runs this program's tests that match `filter` in a fresh process whose environment is this one's
// with `vars` ("NAME=value") set; true when they pass (the child's output goes to this one's).
bool run_child(const std::string& filter, const std::vector<std::string>& vars) {
  std::vector<std::string> env = vars;
  for (char** e = environ; *e; ++e) {
    const std::string entry = *e;
    bool overridden = false;
    for (const std::string& v : vars)
      overridden |= entry.compare(0, v.find('=') + 1, v, 0, v.find('=') + 1) == 0;
    if (!overridden) env.push_back(entry);
  }
  std::vector<char*> envp;
  for (std::string& e : env) envp.push_back(e.data());
  envp.push_back(nullptr);
  std::string exe = "/proc/self/exe", filter_flag = "--gtest_filter=" + filter;
  char* argv[] = {exe.data(), filter_flag.data(), nullptr};
  pid_t pid = 0;
  if (posix_spawn(&pid, exe.c_str(), nullptr, nullptr, argv, envp.data()) != 0) return false;
  int status = 0;
  if (waitpid(pid, &status, 0) != pid) return false;
  return WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

// The role a child process of run_child was started for, "" in the parent.
std::string child_role() {
  const char* role = std::getenv("FLASHJIT_LAUNCH_TEST_CHILD");
  return role ? role : "";
}

// A cache hit needs no NVRTC: a fresh process given the cache this one filled runs the same call
// with JIT disabled (CudaLaunchChild below) and finds no libnvrtc mapped afterwards.
TEST_F(CudaLaunch, CacheHitInAFreshProcessLoadsNoNvrtc) {
  Problem p(64);
  flash_attn_with_kvcache(p.args(stream_));  // compiles, or loads it from this process's cache
  FLASHJIT_CU(cuStreamSynchronize(stream_));
  EXPECT_TRUE(run_child("CudaLaunchChild.RunsFromTheCacheWithoutLoadingNvrtc",
                        {"FLASHJIT_LAUNCH_TEST_CHILD=cache-hit", "FLASHJIT_DISABLE_JIT=1"}))
      << "the child failed (its output above)";
}

// Run only by CacheHitInAFreshProcessLoadsNoNvrtc and ArchOverride*, in its own process.
TEST(CudaLaunchChild, RunsFromTheCacheWithoutLoadingNvrtc) {
  if (child_role() != "cache-hit")
    GTEST_SKIP() << "a child process of CudaLaunch.CacheHitInAFreshProcessLoadsNoNvrtc and "
                    "CudaLaunch.ArchOverride*";
  testing::DeviceMirrors context(kGpu);  // makes the primary context current
  Problem p(64);
  flash_attn_with_kvcache(p.args(nullptr));
  FLASHJIT_CU(cuCtxSynchronize());
  EXPECT_EQ(cache_stats().disk_hits, 1);
  EXPECT_EQ(cache_stats().compiles, 0);
  std::ifstream maps("/proc/self/maps");
  std::string line;
  while (std::getline(maps, line)) EXPECT_THAT(line, Not(HasSubstr("libnvrtc")));
}

// FLASHJIT_CUDA_ARCH=compute_80: a fresh process builds PTX of the sm_80 code paths, which the
// driver compiles for this GPU, and gets this process's result (CudaLaunchChild below); another
// loads that PTX from the cache without NVRTC. An arch whose cubins cannot run here fails the
// call, naming the variable, the device and both archs.
TEST_F(CudaLaunch, ArchOverrideRunsPtxAndRefusesAnArchThatCannotRun) {
  Problem p(64);
  flash_attn_with_kvcache(p.args(stream_));
  const std::vector<uint16_t> expected = p.output();
  const char* cache_dir = std::getenv("FLASHJIT_CACHE_DIR");  // main() made it
  ASSERT_NE(cache_dir, nullptr);
  const std::string path = std::string(cache_dir) + "/expected_out.bin";
  std::ofstream(path, std::ios::binary)
      .write(reinterpret_cast<const char*>(expected.data()),
             static_cast<std::streamsize>(expected.size() * 2));
  EXPECT_TRUE(run_child("CudaLaunchChild.RunsPtxOfAnOlderArch",
                        {"FLASHJIT_LAUNCH_TEST_CHILD=ptx", "FLASHJIT_CUDA_ARCH=compute_80",
                         "FLASHJIT_LAUNCH_TEST_EXPECTED=" + path}))
      << "the compute_80 child failed (its output above)";
  // Its PTX is then a cache hit in a fresh process that loads no NVRTC: the driver compiles it
  // (a precompiled PTX kernel deploys with the driver alone).
  EXPECT_TRUE(run_child("CudaLaunchChild.RunsFromTheCacheWithoutLoadingNvrtc",
                        {"FLASHJIT_LAUNCH_TEST_CHILD=cache-hit", "FLASHJIT_DISABLE_JIT=1",
                         "FLASHJIT_CUDA_ARCH=compute_80"}))
      << "the compute_80 cache-hit child failed (its output above)";
  // A cubin of another major version than the device's own (this process may run with an arch
  // of its own set).
  CUdevice dev = 0;
  int major = 0;
  FLASHJIT_CU(cuDeviceGet(&dev, 0));
  FLASHJIT_CU(cuDeviceGetAttribute(&major, CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR, dev));
  EXPECT_TRUE(run_child("CudaLaunchChild.RefusesAnArchThatCannotRun",
                        {"FLASHJIT_LAUNCH_TEST_CHILD=unrunnable",
                         std::string("FLASHJIT_CUDA_ARCH=") + (major == 8 ? "sm_90a" : "sm_80")}))
      << "the unrunnable-arch child failed (its output above)";
}

// Run only by ArchOverrideRunsPtxAndRefusesAnArchThatCannotRun, in its own process.
TEST(CudaLaunchChild, RunsPtxOfAnOlderArch) {
  if (child_role() != "ptx") GTEST_SKIP() << "a child process of CudaLaunch.ArchOverride*";
  testing::DeviceMirrors context(kGpu);
  EXPECT_EQ(cuda_arch(0), "compute_80");
  Problem p(64);
  FLASHJIT_CU(cuMemsetD8(p.out, 0xff, size_t(p.b) * p.s * p.h * p.d * 2));  // poison
  flash_attn_with_kvcache(p.args(nullptr));
  const std::vector<uint16_t> got = p.output();
  EXPECT_EQ(cache_stats().compiles, 1);
  std::vector<uint16_t> expected(got.size());
  std::ifstream(std::getenv("FLASHJIT_LAUNCH_TEST_EXPECTED"), std::ios::binary)
      .read(reinterpret_cast<char*>(expected.data()),
            static_cast<std::streamsize>(expected.size() * 2));
  auto value = [](uint16_t bits) {
    const uint32_t word = uint32_t(bits) << 16;
    float f;
    std::memcpy(&f, &word, 4);
    return f;
  };
  int mismatches = 0;
  for (size_t i = 0; i < got.size(); ++i) {
    // Both runs round fp32 results to bf16; their sums may differ in order (other tiles).
    const float a = value(got[i]), b = value(expected[i]);
    if (!(std::fabs(a - b) <= std::fabs(b) / 128)) ++mismatches;
  }
  EXPECT_EQ(mismatches, 0) << "of " << got.size() << " outputs";
  // The kernel came from PTX: its cache entries sit under the compute_80 target.
  bool found = false;
  for (const auto& entry :
       std::filesystem::recursive_directory_iterator(std::getenv("FLASHJIT_CACHE_DIR")))
    found |= entry.is_directory() && entry.path().filename() == "cuda-compute_80";
  EXPECT_TRUE(found) << "no cuda-compute_80 entries in the cache";
}

// Run only by ArchOverrideRunsPtxAndRefusesAnArchThatCannotRun, in its own process.
TEST(CudaLaunchChild, RefusesAnArchThatCannotRun) {
  if (child_role() != "unrunnable") GTEST_SKIP() << "a child process of CudaLaunch.ArchOverride*";
  testing::DeviceMirrors context(kGpu);
  const std::string arch = std::getenv("FLASHJIT_CUDA_ARCH");
  Problem p(64);
  for (int attempt = 0; attempt < 2; ++attempt) {  // every call says so, not only the first
    try {
      flash_attn_with_kvcache(p.args(nullptr));
      ADD_FAILURE() << "a kernel for " << arch << " ran";
    } catch (const UsageError& e) {
      EXPECT_THAT(e.what(), HasSubstr("FLASHJIT_CUDA_ARCH: expected an arch whose kernels run on "
                                      "cuda:0"));
      EXPECT_THAT(e.what(), HasSubstr("got " + arch));
      EXPECT_THAT(e.what(), HasSubstr("a cubin for " + arch + " runs only on compute capability"));
    }
  }
}

template <typename E>
void expect_error(const KvcacheArgs& a, const std::vector<std::string>& parts) {
  try {
    flash_attn_with_kvcache(a);
    ADD_FAILURE() << "no error";
  } catch (const E& e) {
    for (const std::string& part : parts) EXPECT_THAT(e.what(), HasSubstr(part));
  }
}

TEST_F(CudaLaunch, UsageErrors) {
  Problem p(64);
  KvcacheArgs host_q = p.args(stream_);
  std::vector<uint16_t> host(size_t(p.b) * p.s * p.h * p.d);
  host_q.q.data = host.data();  // host memory in a CUDA tensor
  expect_error<UsageError>(host_q, {"q", "device memory"});
  KvcacheArgs misaligned = p.args(stream_);
  misaligned.q.data = reinterpret_cast<char*>(misaligned.q.data) + 2;
  expect_error<UsageError>(misaligned,
                           {"q: expected a data pointer aligned to 16 bytes", "got 0x"});
  KvcacheArgs odd_stride = p.args(stream_);
  odd_stride.q.strides[2] = 66;  // heads 66 elements apart: rows of q not 16-byte aligned
  expect_error<UsageError>(odd_stride, {"q: expected strides (other than the last) that are "
                                        "multiples of 8 elements",
                                        "got stride 66 in dim 2"});
  KvcacheArgs fp32 = p.args(stream_);
  fp32.q.dtype = fp32.k_cache.dtype = fp32.v_cache.dtype = fp32.out.dtype = DType::kFloat32;
  expect_error<UsageError>(fp32, {"dtype_q", "fp16 or bf16 on the CUDA backend", "fp32"});
  KvcacheArgs far_rows = p.args(stream_);
  far_rows.k_cache.strides[1] = int64_t{1} << 31;  // rejected before anything reads it
  expect_error<UsageError>(far_rows, {"k_cache", "below 2^31 elements", "2147483648"});
  // The process stays usable.
  flash_attn_with_kvcache(p.args(stream_));
  FLASHJIT_CU(cuStreamSynchronize(stream_));
}

// Causal grids order their CTAs by a 32-bit index (templates/attention_math.h): a varlen call
// whose max_seqlen_q (an upper bound the host trusts) makes 2^31 tiles is refused before any
// launch, however few rows q really has.
TEST_F(CudaLaunch, CausalGridOfTooManyTilesIsAnError) {
  const int64_t batch = 1024, h = 16, d = 64;
  testing::DeviceMirrors mirrors(kGpu);
  std::vector<uint16_t> rows(size_t(batch * h * d), 0x3f80);  // one row a sequence, 1.0
  std::vector<uint16_t> out(rows.size());
  std::vector<int32_t> cu(size_t(batch + 1));
  for (int32_t i = 0; i <= batch; ++i) cu[size_t(i)] = i;
  VarlenArgs a;
  a.q = a.k = a.v = Tensor::contiguous(mirrors.place(rows.data(), rows.size() * 2),
                                       DType::kBFloat16, {batch, h, d}, kGpu);
  a.out = Tensor::contiguous(mirrors.place(out.data(), out.size() * 2), DType::kBFloat16,
                             {batch, h, d}, kGpu);
  a.cu_seqlens_q = a.cu_seqlens_k =
      Tensor::contiguous(mirrors.place(cu.data(), cu.size() * 4), DType::kInt32, {batch + 1}, kGpu);
  a.max_seqlen_q = 1 << 24;  // 131072 row blocks of 128 x 16 heads x 1024 sequences = 2^31
  a.max_seqlen_k = 1;
  a.causal = true;
  a.options.stream = stream_;
  try {
    flash_attn_varlen(a);
    ADD_FAILURE() << "no error";
  } catch (const UsageError& e) {
    for (const char* part : {"seqlen_q", "2^31 - 1 causal tiles", "131072 x 16 x 1024"})
      EXPECT_THAT(e.what(), HasSubstr(part));
  }
  // With the true bound the same call runs.
  a.max_seqlen_q = 1;
  flash_attn_varlen(a);
  EXPECT_EQ(cuda::driver()->cuStreamSynchronize(stream_), CUDA_SUCCESS);
}

// A call without keys fills out by 2D memsets, at most 1024 of them: an out padded in every
// dimension with 40 x 40 rectangles of rows is refused before anything runs.
TEST_F(CudaLaunch, EmptyKeysWithAnOutOfTooManyRectanglesIsAnError) {
  const int64_t n = 40, d = 64, head = d + 8, row = n * head + 8, batch = n * row + 8;
  CUdeviceptr out = 0, q = 0;
  FLASHJIT_CU(cuMemAlloc(&out, size_t(n * batch) * 2));
  FLASHJIT_CU(cuMemAlloc(&q, size_t(d) * 2));
  KvcacheArgs a;
  a.q = Tensor::strided(reinterpret_cast<void*>(q), DType::kBFloat16, {n, n, n, d}, {0, 0, 0, 1},
                        kGpu);  // one row broadcast: q is only read
  a.k_cache = Tensor::contiguous(nullptr, DType::kBFloat16, {n, 0, 1, d}, kGpu);
  a.v_cache = a.k_cache;
  a.out = Tensor::strided(reinterpret_cast<void*>(out), DType::kBFloat16, {n, n, n, d},
                          {batch, row, head, 1}, kGpu);
  a.options.stream = stream_;
  expect_error<UsageError>(
      a, {"out (a CUDA call without keys)", "at most 1024", "(40, 40, 40, 64)", "not supported"});
  // With rows that follow on across the batch, 40 rectangles (one per head) do it; the padding
  // keeps its poison.
  a.out.strides[0] = n * row;
  FLASHJIT_CU(cuMemsetD8(out, 0xff, size_t(n * batch) * 2));
  flash_attn_with_kvcache(a);
  std::vector<uint16_t> host(size_t(n * batch));
  FLASHJIT_CU(cuStreamSynchronize(stream_));
  FLASHJIT_CU(cuMemcpyDtoH(host.data(), out, host.size() * 2));
  std::vector<uint16_t> expected(host.size(), 0xffff);
  for (int64_t b = 0; b < n; ++b)
    for (int64_t i = 0; i < n; ++i)
      for (int64_t h = 0; h < n; ++h)
        std::fill_n(expected.begin() + b * n * row + i * row + h * head, d, uint16_t{0});
  EXPECT_TRUE(host == expected);
  for (CUdeviceptr p : {out, q}) cuda::driver()->cuMemFree(p);
}

bool all_finite_bf16(const std::vector<uint16_t>& x) {
  return std::all_of(x.begin(), x.end(), [](uint16_t b) { return (b & 0x7f80) != 0x7f80; });
}

// Without validation (the CUDA default: checking would copy the indices to the host and wait)
// the kernels clamp index values instead: garbage ones must neither fault nor touch memory
// outside the tensors (compute-sanitizer memcheck says the latter), and the context stays usable.
TEST_F(CudaLaunch, GarbageIndexValuesWithoutValidationStayInBounds) {
  Problem p(64);
  const int32_t big = 1 << 30;
  auto expect_clean_run = [&](const KvcacheArgs& a, const char* what) {
    SCOPED_TRACE(what);
    ASSERT_FALSE(a.options.validate);
    FLASHJIT_CU(cuMemsetD8(p.out, 0, size_t(p.b) * p.s * p.h * p.d * 2));
    EXPECT_NO_THROW(flash_attn_with_kvcache(a));
    EXPECT_EQ(cuda::driver()->cuStreamSynchronize(stream_), CUDA_SUCCESS);
    EXPECT_TRUE(all_finite_bf16(p.output()));
  };
  // Device copies of the host vectors below (testing::DeviceMirrors frees them with the test).
  testing::DeviceMirrors mirrors(kGpu);
  auto ints = [&](std::vector<int32_t>& v, std::initializer_list<int64_t> shape) {
    return Tensor::contiguous(mirrors.place(v.data(), v.size() * 4), DType::kInt32, shape, kGpu);
  };
  auto halves = [&](std::vector<uint16_t>& v, std::initializer_list<int64_t> shape) {
    return Tensor::contiguous(mirrors.place(v.data(), v.size() * 2), DType::kBFloat16, shape, kGpu);
  };
  {
    std::vector<int32_t> idx = {big, -5}, seqlens = {big, -7}, leftpad = {-3, big};
    KvcacheArgs a = p.args(stream_);
    a.cache_batch_idx = ints(idx, {2});
    a.cache_seqlens = ints(seqlens, {2});
    a.cache_leftpad = ints(leftpad, {2});
    expect_clean_run(a, "cache_batch_idx, cache_seqlens and cache_leftpad out of range");
  }
  {
    // The cache as 12 pages of 16 rows; page ids and lengths out of range.
    std::vector<int32_t> table = {big, -1, 3, 100, 2, 5, -big, 11, 12, 0, 1, 4};
    std::vector<int32_t> seqlens = {96, 200};
    KvcacheArgs a = p.args(stream_);
    for (Tensor* t : {&a.k_cache, &a.v_cache}) {
      *t = Tensor::contiguous(t->data, DType::kBFloat16, {12, 16, p.hk, p.d}, kGpu);
    }
    a.page_table = ints(table, {2, 6});
    a.cache_seqlens = ints(seqlens, {2});
    expect_clean_run(a, "page ids out of range");
  }
  {
    // Packed queries whose cu_seqlens_q point far past the 5 rows of q / out.
    std::vector<int32_t> cu = {0, big, 5};
    KvcacheArgs a = p.args(stream_);
    a.q = Tensor::contiguous(a.q.data, DType::kBFloat16, {5, p.h, p.d}, kGpu);
    a.out = Tensor::contiguous(a.out.data, DType::kBFloat16, {5, p.h, p.d}, kGpu);
    a.cu_seqlens_q = ints(cu, {3});
    a.max_seqlen_q = 3;
    a.num_splits = 3;  // the split partials are indexed by packed rows too
    expect_clean_run(a, "cu_seqlens_q past the rows of q");
  }
  {
    // An append at lengths past the capacity, with rotary positions past the tables.
    std::vector<uint16_t> knew(size_t(p.b) * p.hk * p.d, 0x3f80);  // 1.0
    std::vector<uint16_t> table(size_t(8) * p.d / 2, 0x3f00);      // 0.5
    std::vector<int32_t> seqlens = {big, -2}, positions = {-big, big};
    KvcacheArgs a = p.args(stream_);
    a.k = a.v = halves(knew, {p.b, 1, p.hk, p.d});
    a.cache_seqlens = ints(seqlens, {2});
    a.rotary_cos = a.rotary_sin = halves(table, {8, p.d / 2});
    a.rotary_seqlens = ints(positions, {2});
    expect_clean_run(a, "append past the capacity, rotary positions past the tables");
  }
  // The process and its context stay usable.
  flash_attn_with_kvcache(p.args(stream_));
  EXPECT_EQ(cuda::driver()->cuStreamSynchronize(stream_), CUDA_SUCCESS);
}

}  // namespace
}  // namespace flashjit

int main(int argc, char** argv) {
  // Nothing precompiled; the child process of CacheHitInAFreshProcessLoadsNoNvrtc keeps the cache
  // of its parent.
  char dir[] = "/tmp/flashjit-capture-test-XXXXXX";
  if (!std::getenv("FLASHJIT_LAUNCH_TEST_CHILD") && mkdtemp(dir))
    setenv("FLASHJIT_CACHE_DIR", dir, 1);
  ::testing::InitGoogleTest(&argc, argv);
  return RUN_ALL_TESTS();
}
