// Which CUDA context a call runs in. On one GPU: a context the caller created is used for the
// default streams, a created stream's own context for that stream (also with tensors of another
// context of the device), a thread without a context gets the primary one, and a device index the
// machine lacks is a usage error. On several GPUs
// (CudaMultiDevice, skipped with fewer than two): a call with tensors of one device while another
// device's context is current (PyTorch leaves the last device used current) runs on the device of
// its tensors and matches the float64 reference; a stream or a tensor of another device is a usage
// error naming it. Every call leaves the caller's context current, and the process keeps working.
#include <dlfcn.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <thread>

#include "reference/attention_case.h"
#include "reference/device_mirrors.h"
#include "reference/merge_case.h"
#include "runtime/cuda_api.h"
#include "small_kvcache_problem.h"

namespace flashjit::testing {
namespace {

using ::testing::HasSubstr;

// A split-KV paged decode step with an append and rotary: every launch of the kvcache path
// (append, attention, combine) and a workspace.
AttentionCase decode_case(int device) {
  AttentionCase c;
  c.device = Device{DeviceType::kCUDA, device};
  c.batch = 3;
  c.num_heads = 8;
  c.num_heads_k = 2;
  c.head_dim = 128;
  c.seqlen_q = 1;
  c.seqlen_k = 700;
  c.page_size = 16;
  c.seqlen_new = 1;
  c.rotary_fraction = 0.5;
  c.causal = true;
  c.num_splits = 3;
  c.seed = 11;
  return c;
}

// A causal varlen prefill with random lengths.
AttentionCase prefill_case(int device) {
  AttentionCase c;
  c.device = Device{DeviceType::kCUDA, device};
  c.api = Api::kVarlen;
  c.batch = 3;
  c.num_heads = 4;
  c.num_heads_k = 2;
  c.head_dim = 64;
  c.seqlen_q = 113;
  c.seqlen_k = 203;
  c.random_lengths = true;
  c.causal = true;
  c.seed = 12;
  return c;
}

// Runs the case, which must throw a UsageError naming every part; the caller's context (that of
// c.context_device) must be current afterwards.
void expect_usage_error(const AttentionCase& c, const std::vector<std::string>& parts) {
  try {
    run_case(c);
    ADD_FAILURE() << "no error";
  } catch (const UsageError& e) {
    for (const std::string& part : parts) EXPECT_THAT(e.what(), HasSubstr(part));
  }
  EXPECT_EQ(current_cuda_device(), c.context_device) << "the error left another context current";
}

CUcontext current_context() {
  CUcontext ctx = nullptr;
  FLASHJIT_CU(cuCtxGetCurrent(&ctx));
  return ctx;
}

// A context of device 0 made by the caller, not its primary one; current once made. flashjit's
// driver table lacks cuCtxCreate (its signature changed in CUDA 13), so the test finds the old one.
class CreatedContext {
 public:
  CreatedContext() {
    void* libcuda = dlopen("libcuda.so.1", RTLD_NOW | RTLD_NOLOAD);
    FLASHJIT_ICHECK(libcuda) << "libcuda is not loaded";
    using Create = CUresult (*)(CUcontext*, unsigned int, CUdevice);
    destroy_ = reinterpret_cast<Destroy>(dlsym(libcuda, "cuCtxDestroy_v2"));
    const auto create = reinterpret_cast<Create>(dlsym(libcuda, "cuCtxCreate_v2"));
    FLASHJIT_ICHECK(create && destroy_) << "libcuda lacks cuCtxCreate_v2 or cuCtxDestroy_v2";
    CUdevice dev = 0;
    FLASHJIT_CU(cuDeviceGet(&dev, 0));
    cuda::check(create(&ctx_, 0, dev), "cuCtxCreate_v2");
  }
  ~CreatedContext() { destroy_(ctx_); }
  CreatedContext(const CreatedContext&) = delete;
  CreatedContext& operator=(const CreatedContext&) = delete;
  CUcontext get() const { return ctx_; }

 private:
  using Destroy = CUresult (*)(CUcontext);
  Destroy destroy_ = nullptr;
  CUcontext ctx_ = nullptr;
};

// The output of the small problem computed in the primary context of device 0.
std::vector<uint16_t> primary_context_output() {
  make_cuda_device_current(0);
  SmallKvcacheProblem p(64);
  flash_attn_with_kvcache(p.args(nullptr));
  return p.output();
}

TEST(CudaContext, CallsRunInTheCallersContextOrTheirStreamsAndLeaveTheCallersCurrent) {
  if (!cuda_device_available()) GTEST_SKIP() << "no CUDA device";
  const std::vector<uint16_t> expected = primary_context_output();
  const CUcontext primary = current_context();
  CreatedContext created;
  SmallKvcacheProblem p(64);  // in the created context
  const size_t out_bytes = expected.size() * 2;
  CUstream stream = nullptr;  // of the created context
  FLASHJIT_CU(cuStreamCreate(&stream, CU_STREAM_NON_BLOCKING));
  // The created context is current: a call on the default stream runs in it.
  FLASHJIT_CU(cuMemsetD8(p.out, 0xff, out_bytes));
  flash_attn_with_kvcache(p.args(nullptr));
  EXPECT_EQ(current_context(), created.get());
  EXPECT_EQ(p.output(), expected);
  // The primary context is current: a call on the created context's stream runs in that one.
  FLASHJIT_CU(cuMemsetD8(p.out, 0xff, out_bytes));
  FLASHJIT_CU(cuCtxSetCurrent(primary));
  flash_attn_with_kvcache(p.args(stream));
  EXPECT_EQ(current_context(), primary);
  FLASHJIT_CU(cuCtxSetCurrent(created.get()));
  FLASHJIT_CU(cuStreamSynchronize(stream));
  EXPECT_EQ(p.output(), expected);
  FLASHJIT_CU(cuStreamDestroy(stream));
}

TEST(CudaContext, AThreadWithoutAContextGetsThePrimaryOne) {
  if (!cuda_device_available()) GTEST_SKIP() << "no CUDA device";
  const std::vector<uint16_t> expected = primary_context_output();
  const CUcontext primary = current_context();
  SmallKvcacheProblem p(64);
  FLASHJIT_CU(cuMemsetD8(p.out, 0xff, expected.size() * 2));
  CUcontext before = primary, after = nullptr;
  std::thread([&] {
    before = current_context();
    flash_attn_with_kvcache(p.args(nullptr));
    after = current_context();
  }).join();
  EXPECT_EQ(before, nullptr);
  EXPECT_EQ(after, primary);
  EXPECT_EQ(p.output(), expected);
}

// Contexts of one device share its memory: tensors of the primary context on a created context's
// stream run in that context (measured on an H100).
TEST(CudaContext, TensorsOfOneContextRunOnAStreamOfAnother) {
  if (!cuda_device_available()) GTEST_SKIP() << "no CUDA device";
  const std::vector<uint16_t> expected = primary_context_output();
  const CUcontext primary = current_context();
  SmallKvcacheProblem p(64);  // in the primary context
  CreatedContext created;
  CUstream stream = nullptr;  // of the created context
  FLASHJIT_CU(cuStreamCreate(&stream, CU_STREAM_NON_BLOCKING));
  FLASHJIT_CU(cuCtxSetCurrent(primary));
  FLASHJIT_CU(cuMemsetD8(p.out, 0xff, expected.size() * 2));
  flash_attn_with_kvcache(p.args(stream));
  EXPECT_EQ(current_context(), primary);
  FLASHJIT_CU(cuCtxSetCurrent(created.get()));
  FLASHJIT_CU(cuStreamSynchronize(stream));
  FLASHJIT_CU(cuStreamDestroy(stream));
  FLASHJIT_CU(cuCtxSetCurrent(primary));
  EXPECT_EQ(p.output(), expected);
}

class CudaMultiDevice : public ::testing::Test {
 protected:
  void SetUp() override {
    if (cuda_device_count() < 2)
      GTEST_SKIP() << "needs two CUDA devices, found " << cuda_device_count();
  }
};

TEST_F(CudaMultiDevice, CallsRunOnTheDeviceOfTheirTensorsAndKeepTheCallersContext) {
  for (int device : {1, 0}) {
    for (bool planned : {false, true}) {
      for (AttentionCase c : {decode_case(device), prefill_case(device)}) {
        c.context_device = 1 - device;
        c.planned = planned;
        SCOPED_TRACE(c.name());
        expect_matches_reference(c);
      }
    }
  }
}

TEST_F(CudaMultiDevice, MergeStatesRunsOnTheDeviceOfItsTensors) {
  for (int device : {1, 0}) {
    const MergeResult r =
        run_merge_case(Device{DeviceType::kCUDA, device}, DType::kBFloat16, true, 5, 1 - device);
    EXPECT_EQ(r.unwritten, 0);
    EXPECT_EQ(r.lse_inf_mismatch, 0);
    EXPECT_LE(r.out_diff, 2e-2);
    EXPECT_LE(r.lse_diff, 1e-4);
    EXPECT_TRUE(r.context_kept);
  }
}

TEST_F(CudaMultiDevice, StreamOfAnotherDeviceIsAnError) {
  make_cuda_device_current(0);
  CUstream stream0 = nullptr;
  FLASHJIT_CU(cuStreamCreate(&stream0, CU_STREAM_NON_BLOCKING));
  for (bool planned : {false, true}) {
    AttentionCase c = decode_case(1);
    c.context_device = 0;
    c.planned = planned;
    c.mutate_kvcache = [&](KvcacheArgs& a) { a.options.stream = stream0; };
    SCOPED_TRACE(c.name());
    expect_usage_error(c, {"options.stream: expected a stream of cuda:1 (the device of q), got a "
                           "stream of cuda:0"});
  }
  AttentionCase c = decode_case(1);
  c.context_device = 0;
  expect_matches_reference(c);  // the same call on a stream of its device still works
  make_cuda_device_current(0);
  FLASHJIT_CU(cuStreamDestroy(stream0));
}

TEST_F(CudaMultiDevice, TensorOfAnotherDeviceIsAnError) {
  make_cuda_device_current(0);
  CUdeviceptr other = 0;
  FLASHJIT_CU(cuMemAlloc(&other, 4 << 20));
  AttentionCase c = decode_case(1);
  c.context_device = 0;
  c.mutate_kvcache = [&](KvcacheArgs& a) { a.v_cache.data = reinterpret_cast<void*>(other); };
  expect_usage_error(c, {"v_cache: expected memory of cuda:1 (the device of q), got memory of "
                         "cuda:0"});
  c.mutate_kvcache = nullptr;
  expect_matches_reference(c);
  make_cuda_device_current(0);
  FLASHJIT_CU(cuMemFree(other));
}

TEST(CudaContext, DeviceTheMachineLacksIsAnError) {
  const int count = cuda_device_count();
  if (count < 1) GTEST_SKIP() << "no CUDA device";
  AttentionCase c = prefill_case(0);
  c.api = Api::kKvcache;
  c.random_lengths = false;
  c.lse = false;
  c.mutate_kvcache = [&](KvcacheArgs& a) {
    for (Tensor* t : {&a.q, &a.k_cache, &a.v_cache, &a.out}) t->device.index = count;
  };
  c.context_device = 0;
  expect_usage_error(c, {"q: expected a tensor of cuda:0 to cuda:" + std::to_string(count - 1),
                         "got one of cuda:" + std::to_string(count)});
}

}  // namespace
}  // namespace flashjit::testing
