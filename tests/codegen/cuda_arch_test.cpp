// CUDA arch names: what parses, and which arch's kernels run on which compute capability (cubins
// within their major version, PTX forward, "a" archs on exactly their own).
#include "codegen/cuda_arch.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "codegen/tile_config.h"

namespace flashjit {
namespace {

using ::testing::HasSubstr;

TEST(CudaArch, ParsesNvrtcArchNames) {
  const std::optional<CudaArch> sm90a = parse_cuda_arch("sm_90a");
  ASSERT_TRUE(sm90a);
  EXPECT_EQ(sm90a->cc, 90);
  EXPECT_FALSE(sm90a->ptx);
  EXPECT_TRUE(sm90a->specific);
  const std::optional<CudaArch> c80 = parse_cuda_arch("compute_80");
  ASSERT_TRUE(c80);
  EXPECT_EQ(c80->cc, 80);
  EXPECT_TRUE(c80->ptx);
  EXPECT_FALSE(c80->specific);
  EXPECT_EQ(cuda_arch_cc("sm_100a"), 100);
  EXPECT_EQ(cuda_arch_cc("compute_86"), 86);
  for (const char* bad : {"", "sm_", "sm_9", "sm_1000", "sm_8x", "sm_80b", "compute80", "SM_80",
                          "lto_80", "sm_80 ", "x86-64"}) {
    EXPECT_FALSE(parse_cuda_arch(bad)) << bad;
    EXPECT_EQ(cuda_arch_cc(bad), 0) << bad;
  }
}

TEST(CudaArch, CubinsRunWithinTheirMajorVersion) {
  EXPECT_EQ(cuda_arch_unrunnable("sm_80", 8, 0), "");
  EXPECT_EQ(cuda_arch_unrunnable("sm_80", 8, 6), "");
  EXPECT_EQ(cuda_arch_unrunnable("sm_86", 8, 9), "");
  EXPECT_EQ(cuda_arch_unrunnable("sm_90", 9, 0), "");
  EXPECT_THAT(cuda_arch_unrunnable("sm_86", 8, 0), HasSubstr("needs compute capability 8.6"));
  const std::string older = cuda_arch_unrunnable("sm_80", 9, 0);
  EXPECT_THAT(older, HasSubstr("sm_80 runs only on compute capability 8.x"));
  EXPECT_THAT(older, HasSubstr("the device has 9.0"));
  EXPECT_THAT(older, HasSubstr("compute_80 builds PTX"));
}

TEST(CudaArch, PtxRunsOnItsComputeCapabilityOrNewer) {
  EXPECT_EQ(cuda_arch_unrunnable("compute_80", 8, 0), "");
  EXPECT_EQ(cuda_arch_unrunnable("compute_80", 9, 0), "");
  EXPECT_EQ(cuda_arch_unrunnable("compute_86", 9, 0), "");
  EXPECT_EQ(cuda_arch_unrunnable("compute_90", 12, 0), "");
  EXPECT_THAT(cuda_arch_unrunnable("compute_90", 8, 9), HasSubstr("needs compute capability 9.0"));
}

TEST(CudaArch, ArchSpecificTargetsRunOnlyOnTheirOwn) {
  EXPECT_EQ(cuda_arch_unrunnable("sm_90a", 9, 0), "");
  EXPECT_EQ(cuda_arch_unrunnable("compute_90a", 9, 0), "");
  EXPECT_THAT(cuda_arch_unrunnable("sm_90a", 10, 0),
              HasSubstr("runs only on compute capability 9.0"));
  EXPECT_THAT(cuda_arch_unrunnable("compute_90a", 10, 0),
              HasSubstr("PTX for compute_90a runs only on compute capability 9.0, not on 10.0"));
  EXPECT_THAT(cuda_arch_unrunnable("sm90", 9, 0), HasSubstr("not a CUDA arch"));
}

// A compute_ arch gets the shared memory, and so the tiles, of the GPUs it names.
TEST(CudaArch, PtxArchsShareTheirCubinArchsLimits) {
  EXPECT_EQ(cuda_smem_limit("compute_80"), cuda_smem_limit("sm_80"));
  EXPECT_EQ(cuda_smem_limit("compute_86"), 99 * 1024);
  EXPECT_EQ(cuda_smem_limit("compute_90"), cuda_smem_limit("sm_90a"));
  EXPECT_EQ(cuda_ctas_per_sm("compute_80", 80 * 1024, 128),
            cuda_ctas_per_sm("sm_80", 80 * 1024, 128));
  EXPECT_EQ(cuda_ctas_per_sm("compute_90", 100 * 1024, 128), 2);
}

}  // namespace
}  // namespace flashjit
