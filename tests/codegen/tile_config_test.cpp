// The default CPU tile heuristic: block_m is a multiple of 16 (query rows run along the vector
// lanes) and at most 256, block_n a multiple of 32, every result is a supported key; and
// cpu_uses_amx() is true only for bf16 on a target with amx-bf16, amx-tile and avx512f.
#include "codegen/tile_config.h"

#include "codegen/generate_source.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "flashjit/error.h"
#include "key_variants.h"

namespace flashjit {
namespace {

using testing::base_cpu_key;

KernelKey key_with(DType dtype, const std::string& features) {
  KernelKey k = base_cpu_key();
  k.dtype_q = k.dtype_kv = k.dtype_o = dtype;
  k.target.features = features;
  return k;
}

const char* const kAmx = "+amx-bf16,+amx-tile,+avx512f";
const char* const kNoAmx = "+avx2,+fma,+avx512f,-amx-bf16,-amx-tile";

TEST(CpuUsesAmx, OnlyBf16WithAllAmxFeatures) {
  EXPECT_TRUE(cpu_uses_amx(key_with(DType::kBFloat16, kAmx)));
  EXPECT_TRUE(cpu_uses_amx(key_with(DType::kBFloat16, "+avx512f,+amx-int8,+amx-tile,+amx-bf16")));
  EXPECT_FALSE(cpu_uses_amx(key_with(DType::kFloat16, kAmx)));
  EXPECT_FALSE(cpu_uses_amx(key_with(DType::kFloat32, kAmx)));
  EXPECT_FALSE(cpu_uses_amx(key_with(DType::kBFloat16, kNoAmx)));
  EXPECT_FALSE(cpu_uses_amx(key_with(DType::kBFloat16, "+amx-bf16,+amx-tile")));
  EXPECT_FALSE(cpu_uses_amx(key_with(DType::kBFloat16, "+amx-bf16,+avx512f")));
  EXPECT_FALSE(cpu_uses_amx(key_with(DType::kBFloat16, "+amx-tile,+avx512f")));
  EXPECT_FALSE(cpu_uses_amx(key_with(DType::kBFloat16, "+amx-bf16x,+amx-tile,+avx512f")));
  EXPECT_FALSE(cpu_uses_amx(key_with(DType::kBFloat16, "")));
  KernelKey cuda = key_with(DType::kBFloat16, kAmx);
  cuda.backend = Backend::kCuda;
  EXPECT_FALSE(cpu_uses_amx(cuda));
}

TEST(DefaultCpuTiles, ShapesFollowTheGranule) {
  const std::vector<KernelKey> keys = {
      key_with(DType::kBFloat16, kAmx),  key_with(DType::kBFloat16, kNoAmx),
      key_with(DType::kFloat16, kAmx),   key_with(DType::kFloat32, kAmx),
      key_with(DType::kFloat32, kNoAmx),
  };
  for (const KernelKey& key : keys) {
    const int granule = 16;
    for (int rows = -3; rows <= 600; ++rows) {
      const TileConfig t = default_cpu_tiles(key, TileProblem{rows, 8, 2, 2});
      SCOPED_TRACE(key.to_string() + " rows=" + std::to_string(rows));
      EXPECT_GT(t.block_m, 0);
      EXPECT_EQ(t.block_m % granule, 0) << t.block_m;
      EXPECT_LE(t.block_m, 256);
      EXPECT_GT(t.block_n, 0);
      EXPECT_EQ(t.block_n % 32, 0) << t.block_n;
      if (rows >= 1 && rows <= 256) {
        EXPECT_GE(t.block_m, rows);
      }
      EXPECT_GE(t.block_h, 1);
      EXPECT_LE(t.block_h, 8);
      KernelKey tiled = key;
      tiled.block_m = t.block_m;
      tiled.block_n = t.block_n;
      tiled.block_h = t.block_h;
      EXPECT_NO_THROW(tiled.check_supported());
    }
  }
}

TEST(DefaultCpuTiles, WorkedExamples) {
  const KernelKey amx = key_with(DType::kBFloat16, kAmx);
  const KernelKey fp32 = key_with(DType::kFloat32, kNoAmx);
  EXPECT_EQ(default_cpu_tiles(amx, TileProblem{4, 1, 1, 1}).block_m, 16);  // decode, GQA 4 packed
  EXPECT_EQ(default_cpu_tiles(amx, TileProblem{4, 1, 1, 1}).block_n, 128);
  EXPECT_EQ(default_cpu_tiles(amx, TileProblem{17, 1, 1, 1}).block_m, 32);
  EXPECT_EQ(default_cpu_tiles(amx, TileProblem{17, 1, 1, 1}).block_n, 64);
  EXPECT_EQ(default_cpu_tiles(amx, TileProblem{1000, 1, 1, 1}).block_m, 256);  // prefill
  EXPECT_EQ(default_cpu_tiles(amx, TileProblem{1000, 1, 1, 1}).block_n, 128);
  EXPECT_EQ(default_cpu_tiles(fp32, TileProblem{1, 1, 1, 1}).block_m, 16);
  EXPECT_EQ(default_cpu_tiles(fp32, TileProblem{0, 1, 1, 1}).block_m, 16);
  EXPECT_EQ(default_cpu_tiles(fp32, TileProblem{100, 1, 1, 1}).block_m, 112);
  EXPECT_EQ(default_cpu_tiles(fp32, TileProblem{100, 1, 1, 1}).block_n, 64);
}

// Decode takes several head groups per work item but leaves each thread two items or more.
TEST(DefaultCpuTiles, HeadGroupBlocksForDecode) {
  const KernelKey amx = key_with(DType::kBFloat16, kAmx);
  EXPECT_EQ(default_cpu_tiles(amx, TileProblem{4, 8, 8, 2}).block_h, 8);   // 8 items
  EXPECT_EQ(default_cpu_tiles(amx, TileProblem{4, 8, 1, 2}).block_h, 2);   // 4 items
  EXPECT_EQ(default_cpu_tiles(amx, TileProblem{4, 8, 1, 8}).block_h, 1);   // 8 items
  EXPECT_EQ(default_cpu_tiles(amx, TileProblem{4, 2, 64, 2}).block_h, 2);  // all heads
  EXPECT_EQ(default_cpu_tiles(amx, TileProblem{64, 8, 8, 2}).block_h, 1);  // prefill
  for (int batch = 1; batch <= 64; batch *= 2)
    for (int groups = 1; groups <= 32; groups *= 2)
      for (int threads = 1; threads <= 16; threads *= 2) {
        const TileConfig t = default_cpu_tiles(amx, TileProblem{4, groups, batch, threads});
        const int items = batch * ((groups + t.block_h - 1) / t.block_h);
        EXPECT_TRUE(t.block_h == 1 || items >= 2 * threads) << batch << " " << groups;
        EXPECT_LE(t.block_h, std::min(groups, 8));
      }
  // Split decode takes the head groups of 8 KV heads: 16 where two share a KV head.
  TileProblem split{4, 16, 1, 2, true, 2};
  EXPECT_EQ(default_cpu_tiles(amx, split).block_h, 16);
  split.groups_per_kv_head = 1;
  EXPECT_EQ(default_cpu_tiles(amx, split).block_h, 8);
}

// A packed GQA group is split in halves where that turns 5-8 rows (half a 16-lane tile idle)
// into tiles of at most 4 rows (the 4-row decode of the pair and fp32 paths); AMX keeps the group.
TEST(CpuPackHeads, HalvesGroupsOfFiveToEightRowsOffAmx) {
  const KernelKey pairs = key_with(DType::kBFloat16, "+avx512f,+avx512bw,+avx512bf16");
  const KernelKey fp16 = key_with(DType::kFloat16, kAmx);
  for (const KernelKey& key : {pairs, fp16}) {
    EXPECT_EQ(cpu_pack_heads(key, 8, 1), 4);  // GQA 64/8, one query
    EXPECT_EQ(cpu_pack_heads(key, 6, 1), 3);
    EXPECT_EQ(cpu_pack_heads(key, 4, 2), 2);  // two queries
    EXPECT_EQ(cpu_pack_heads(key, 2, 3), 1);
    EXPECT_EQ(cpu_pack_heads(key, 4, 1), 4);    // already 4 rows
    EXPECT_EQ(cpu_pack_heads(key, 16, 1), 16);  // 16 rows fill the lanes
    EXPECT_EQ(cpu_pack_heads(key, 7, 1), 7);    // no even split
    EXPECT_EQ(cpu_pack_heads(key, 8, 2), 8);    // 16 rows
  }
  EXPECT_EQ(cpu_pack_heads(key_with(DType::kBFloat16, kAmx), 8, 1), 8);
  for (int group = 1; group <= 16; ++group)
    for (int lq = 1; lq <= 8; ++lq) EXPECT_EQ(group % cpu_pack_heads(pairs, group, lq), 0);
}

}  // namespace
}  // namespace flashjit

namespace flashjit {
namespace {

// CUDA tiles always fit the arch's shared memory, keep 16 rows per m-tile, and decode-shaped
// calls get one row warp with key warps.
TEST(DefaultCudaTiles, FitSharedMemoryAndShapeRules) {
  for (const char* arch : {"sm_80", "sm_86", "sm_89", "sm_90a", "compute_80", "compute_86"})
    for (auto [d, dv] : std::vector<std::pair<int, int>>{{64, 64},
                                                         {80, 80},
                                                         {96, 96},
                                                         {128, 128},
                                                         {192, 192},
                                                         {256, 256},
                                                         {192, 128},
                                                         {64, 256}})
      for (int rows : {1, 4, 16, 17, 64, 65, 4096}) {
        KernelKey k;
        k.backend = Backend::kCuda;
        k.target = Target{"nvptx64-nvidia-cuda", arch, ""};
        k.head_dim_qk = d;
        k.head_dim_v = dv;
        const TileConfig t = default_cuda_tiles(k, TileProblem{rows, 8, 4, 1});
        k.block_m = t.block_m;
        k.block_n = t.block_n;
        k.num_warps = t.num_warps;
        k.num_stages = t.num_stages;
        SCOPED_TRACE(std::string(arch) + " d" + std::to_string(d) + " rows " +
                     std::to_string(rows));
        EXPECT_LE(cuda_launch_shape(k).smem_bytes, cuda_smem_limit(arch));
        EXPECT_EQ(cuda_tiles_unfit(k), "");
        EXPECT_EQ(t.block_m % 16, 0);
        EXPECT_GE(t.num_warps, 1);
        if (rows <= 16) {
          EXPECT_EQ(t.block_m, 16);
          EXPECT_GE(t.num_warps, 1);
        } else {
          EXPECT_EQ(t.block_m % (16 * t.num_warps), 0) << "rows per warp must be a multiple of 16";
        }
        EXPECT_NO_THROW(k.canonicalize().check_supported());
      }
}

// Decode tiles (one row block of 16): 12 key warps of two stages for few (sequence, head group)
// tiles, 16 warps of one stage from 32 tiles on (docs/PERF.md, session 11).
TEST(DefaultCudaTiles, DecodeKeyWarpsByTileCount) {
  KernelKey k;
  k.backend = Backend::kCuda;
  k.target = Target{"nvptx64-nvidia-cuda", "sm_90a", ""};
  k.head_dim_qk = k.head_dim_v = 128;
  const TileConfig few = default_cuda_tiles(k, TileProblem{4, 8, 1, 1});   // 8 tiles
  const TileConfig many = default_cuda_tiles(k, TileProblem{4, 8, 8, 1});  // 64 tiles
  const TileConfig edge = default_cuda_tiles(k, TileProblem{4, 8, 4, 1});  // 32 tiles
  EXPECT_EQ(few.block_m, 16);
  EXPECT_EQ(few.num_warps, 12);
  EXPECT_EQ(few.num_stages, 2);
  EXPECT_EQ(many.num_warps, 16);
  EXPECT_EQ(many.num_stages, 1);
  EXPECT_EQ(edge.num_warps, 16);
}

// Prefill tiles per head dim on sm_90a (docs/PERF.md, session 15): d <= 64 128 x 128 with one
// staggered K and V buffer, d 128 128 x 64 with two stages, d > 128 64 x 64 with one; sm_80 keeps
// 64 keys (and two stages) at d 64. PTX for an arch gets that arch's tiles.
TEST(DefaultCudaTiles, PrefillStagesByHeadDim) {
  auto tiles = [](const char* arch, int d) {
    KernelKey k;
    k.backend = Backend::kCuda;
    k.target = Target{"nvptx64-nvidia-cuda", arch, ""};
    k.head_dim_qk = k.head_dim_v = d;
    const TileConfig t = default_cuda_tiles(k, TileProblem{4096, 16, 4, 1});
    return std::vector<int>{t.block_m, t.block_n, t.num_warps, t.num_stages};
  };
  EXPECT_EQ(tiles("sm_90a", 64), (std::vector<int>{128, 128, 4, 1}));
  EXPECT_EQ(tiles("sm_90a", 128), (std::vector<int>{128, 64, 4, 2}));
  EXPECT_EQ(tiles("sm_90a", 256), (std::vector<int>{64, 64, 4, 1}));
  EXPECT_EQ(tiles("sm_80", 64), (std::vector<int>{128, 64, 4, 2}));
  EXPECT_EQ(tiles("compute_80", 64), tiles("sm_80", 64));
  EXPECT_EQ(tiles("compute_90", 64), tiles("sm_90a", 64));
  EXPECT_EQ(tiles("compute_86", 256), tiles("sm_86", 256));
}

// Tiles the CUDA template cannot instantiate are refused up front, naming the limit.
TEST(CudaTilesUnfit, NamesWhatDoesNotFit) {
  KernelKey k;
  k.backend = Backend::kCuda;
  k.target = Target{"nvptx64-nvidia-cuda", "sm_90a", ""};
  k.head_dim_qk = k.head_dim_v = 128;
  auto unfit = [&](int bm, int bn, int warps, int stages = 0) {
    KernelKey t = k;
    t.block_m = bm;
    t.block_n = bn;
    t.num_warps = warps;
    t.num_stages = stages ? stages : default_cuda_stages(bm, warps);
    return cuda_tiles_unfit(t);
  };
  EXPECT_EQ(unfit(16, 16, 16), "");
  EXPECT_EQ(unfit(16, 16, 1), "");     // one warp does not split keys: a ring of 2 stages
  EXPECT_EQ(unfit(16, 16, 1, 1), "");  // one K and one V buffer, staggered
  EXPECT_THAT(unfit(16, 16, 1, 4), ::testing::HasSubstr("num_stages: expected 1 to 3"));
  EXPECT_EQ(unfit(128, 64, 8), "");
  EXPECT_EQ(unfit(128, 32, 4, 3), "");
  EXPECT_THAT(unfit(128, 64, 8, 4), ::testing::HasSubstr("num_stages: expected 1 to 3"));
  EXPECT_THAT(unfit(16, 16, 8, 3), ::testing::HasSubstr("num_stages: expected 1 or 2"));
  EXPECT_THAT(unfit(16, 64, 8), ::testing::HasSubstr("shared memory: tiles 16x64 with 8 warps"));
  EXPECT_THAT(unfit(16, 64, 8), ::testing::HasSubstr("sm_90a allows 232448"));
  EXPECT_THAT(unfit(64, 64, 3), ::testing::HasSubstr("num_warps: expected a divisor of"));
  EXPECT_THAT(unfit(128, 64, 16), ::testing::HasSubstr("num_warps: expected 1 to 8"));
  EXPECT_THAT(unfit(16, 16, 32), ::testing::HasSubstr("num_warps: expected 1 to 16"));
  k.head_dim_qk = 64;
  k.head_dim_v = 256;
  EXPECT_EQ(unfit(16, 16, 8), "");  // the key warps' merge fits any K/V buffers
  EXPECT_EQ(unfit(16, 32, 8), "");
  KernelKey bad = k;
  bad.block_m = 16;
  bad.block_n = 64;
  bad.num_warps = 16;
  bad.num_stages = 1;
  try {
    bad.canonicalize().check_supported();
    ADD_FAILURE() << "expected a UsageError";
  } catch (const UsageError& e) {
    EXPECT_THAT(e.what(), ::testing::HasSubstr("shared memory"));
  }
}

TEST(CudaCtasPerSm, SharedMemoryAndRegistersAtTheCap) {
  EXPECT_EQ(cuda_ctas_per_sm("sm_90a", 102 * 1024, 128), 2);  // d256 64 x 64: two fit
  EXPECT_EQ(cuda_ctas_per_sm("sm_90a", 40 * 1024, 128), 2);   // registers bound it
  EXPECT_EQ(cuda_ctas_per_sm("sm_90a", 40 * 1024, 64), 4);
  EXPECT_EQ(cuda_ctas_per_sm("sm_80", 96 * 1024, 128), 1);
  EXPECT_EQ(cuda_ctas_per_sm("sm_86", 99 * 1024, 128), 1);
  EXPECT_EQ(cuda_ctas_per_sm("sm_90a", 0, 32), 8);
}

TEST(CudaCausalSections, AboutAWaveOfTilesEach) {
  struct Case {
    const char* what;
    int slots, m_blocks;
    int64_t kv_bytes_per_slot;
    int section_slots, sections;
  };
  const Case cases[] = {
      {"d256 s1k, 16 row blocks: 17 slots a section -> 8 of 16", 128, 16, 1024 * 512 * 2, 0, 8},
      {"d128 s1k, 8 row blocks: 33 slots a section -> 8 of 32", 256, 8, 1024 * 256 * 2, 0, 8},
      {"d128 s16k, 128 row blocks: 3 slots a section -> 6 of 2-3", 16, 128, 16384 * 256 * 2, 0, 6},
      {"one row block over 8 MiB of K/V: half the L2 holds 3 slots", 64, 1, 16384 * 256 * 2, 0, 22},
      {"fewer slots than a section holds: one section", 4, 8, 1024, 0, 1},
      {"the override", 100, 8, 1024, 30, 4},
      {"an override past the slots: one section", 100, 8, 1024, 1000, 1},
  };
  for (const Case& c : cases) {
    CausalOrderProblem p;
    p.resident_ctas = 264;  // H100, two CTAs an SM
    p.l2_bytes = 50LL << 20;
    p.slots = c.slots;
    p.m_blocks = c.m_blocks;
    p.kv_bytes_per_slot = c.kv_bytes_per_slot;
    p.section_slots = c.section_slots;
    EXPECT_EQ(cuda_causal_sections(p), c.sections) << c.what;
  }
  // Degenerate inputs stay within 1 and the slots.
  EXPECT_EQ(cuda_causal_sections(CausalOrderProblem{}), 1);
  CausalOrderProblem no_l2;
  no_l2.slots = 100;
  no_l2.resident_ctas = 264;
  EXPECT_EQ(cuda_causal_sections(no_l2), 100);
}

TEST(DefaultNumSplits, FullOrShortProblemsDoNotSplit) {
  EXPECT_EQ(default_num_splits(SplitProblem{512, 512, 132, 16}), 1);  // 80 % of the SMs busy
  EXPECT_EQ(default_num_splits(SplitProblem{8, 4, 132, 16}), 1);      // 4 key blocks
}

TEST(DefaultNumSplits, DecodeSplitsFillTheSmsInWholeRounds) {
  // b1, 8 KV heads, s_k 8k in 16-key blocks, 16 key warps: 16 splits of 32 blocks (2 rounds).
  EXPECT_EQ(default_num_splits(SplitProblem{8, 512, 132, 16}), 16);
  // b1 with 12 key warps: s_k 32k takes 16 splits (11 rounds), not 15 (12 rounds); s_k 8k 15
  // (3 rounds either way: the fewer splits).
  EXPECT_EQ(default_num_splits(SplitProblem{8, 2048, 132, 12}), 16);
  EXPECT_EQ(default_num_splits(SplitProblem{8, 512, 132, 12}), 15);
  // b8: 64 tiles, 2 splits fill one wave.
  EXPECT_EQ(default_num_splits(SplitProblem{64, 512, 132, 16}), 2);
  // CPU b1 on 2 threads, which plans four items a thread (8 units): 8 splits.
  EXPECT_EQ(default_num_splits(SplitProblem{1, 256, 8, 1}), 8);
  // sm_margin leaves fewer units; never more splits than key blocks.
  EXPECT_LE(default_num_splits(SplitProblem{1, 6, 132, 1}), 6);
}

TEST(DefaultNumSplits, OneMoreKeyBlockDoesNotMultiplyTheSplits) {
  // b8 with 513 blocks (s_k 8k + 1): still 2 splits, not 33 one-round splits of 16 waves.
  EXPECT_EQ(default_num_splits(SplitProblem{64, 513, 132, 16}), 2);
  const int b1 = default_num_splits(SplitProblem{8, 513, 132, 16});  // 3 rounds, one wave
  EXPECT_GE(b1, 14);
  EXPECT_LE(b1, 16);
}

}  // namespace
}  // namespace flashjit
