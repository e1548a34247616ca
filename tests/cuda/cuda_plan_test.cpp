// Plan / run on a GPU: a plan's run is captured into a CUDA graph once and replayed for 50 decode
// steps, each with new cache_seqlens and an appended rotated token, every step checked against
// the float64 reference. Skips without a GPU.
#include <gtest/gtest.h>

#include "reference/decode_loop.h"
#include "reference/device_mirrors.h"
#include "reference/merge_case.h"
#include "runtime/cuda_api.h"

namespace flashjit::testing {
namespace {

TEST(CudaPlan, GraphReplaysADecodeLoop) {
  if (!cuda_device_available()) GTEST_SKIP() << "no CUDA device";
  DecodeLoopConfig config;
  config.device = Device{DeviceType::kCUDA, 0};
  config.capacity = 1024;
  config.num_splits = 4;
  DecodeLoop loop(config);
  CUstream stream = nullptr;
  FLASHJIT_CU(cuStreamCreate(&stream, CU_STREAM_NON_BLOCKING));
  KvcacheArgs args = loop.args();
  args.options.stream = stream;
  const AttentionPlan plan(args);
  EXPECT_EQ(plan.num_splits(), 4);
  CUdeviceptr workspace = 0;
  FLASHJIT_CU(cuMemAlloc(&workspace, std::max<size_t>(plan.workspace_bytes(), 16)));
  CUgraph graph = nullptr;
  CUgraphExec exec = nullptr;
  FLASHJIT_CU(cuStreamBeginCapture(stream, CU_STREAM_CAPTURE_MODE_GLOBAL));
  plan.run(args, reinterpret_cast<void*>(workspace));
  FLASHJIT_CU(cuStreamEndCapture(stream, &graph));
  FLASHJIT_CU(cuGraphInstantiate(&exec, graph, 0));
  for (int step = 0; step < 50; ++step) {
    loop.next_step();
    FLASHJIT_CU(cuGraphLaunch(exec, stream));
    FLASHJIT_CU(cuStreamSynchronize(stream));
    const StepCheck r = loop.check();
    ASSERT_EQ(r.unwritten, 0) << "step " << step;
    ASSERT_EQ(r.cache_mismatch, 0) << "step " << step;
    ASSERT_LE(r.max_err, r.tolerance) << "step " << step;
  }
  FLASHJIT_CU(cuGraphExecDestroy(exec));
  FLASHJIT_CU(cuGraphDestroy(graph));
  FLASHJIT_CU(cuMemFree(workspace));
  FLASHJIT_CU(cuStreamDestroy(stream));
}

TEST(CudaMergeStates, MatchesOneShotAttention) {
  if (!cuda_device_available()) GTEST_SKIP() << "no CUDA device";
  const Device gpu{DeviceType::kCUDA, 0};
  for (bool out_fp32 : {true, false}) {
    const MergeResult r = run_merge_case(gpu, DType::kBFloat16, out_fp32, 5);
    EXPECT_EQ(r.unwritten, 0);
    EXPECT_EQ(r.lse_inf_mismatch, 0);
    EXPECT_LE(r.out_diff, out_fp32 ? 2e-2 : 3e-2);  // bf16 partials (and output): a few ulps
    EXPECT_LE(r.lse_diff, 1e-4);
  }
}

}  // namespace
}  // namespace flashjit::testing
