// Default CPU tile sizes, sized for 48 KiB L1d / 2 MiB L2 per core (Sapphire Rapids).
#include "codegen/tile_config.h"

#include "codegen/generate_source.h"

#include <algorithm>

namespace flashjit {
namespace {
int round_up(int x, int to) { return (x + to - 1) / to * to; }
}  // namespace

bool cpu_uses_amx(const KernelKey& key) {
  return key.backend == Backend::kCpu && key.dtype_q == DType::kBFloat16 &&
         key.target.has_feature("amx-bf16") && key.target.has_feature("amx-tile") &&
         key.target.has_feature("avx512f");
}

// Rows along the vector lanes come in 16s. Tall row blocks pay off: every K/V block is packed once
// per row block, and K/V rows of a (s, h, d) tensor sit h * d elements apart, so L2 set aliasing
// keeps them from staying cached between row blocks. Worked example (d 128, fp32, one core):
// block_m 64 -> 93 GFLOP/s, 128 -> 104, 256 with block_n 128 -> 109 (docs/PERF.md).
// Decode (one 16-row block, e.g. GQA 32/8 packed: rows = 4) is bandwidth-bound: a work item then
// takes up to 8 head groups, so that it streams whole K/V rows (all heads of a token are
// contiguous) instead of one head's slice of each, while leaving at least 2 items per thread.
// Worked example: batch 8, 8 KV heads, 2 threads -> block_h 8 (8 items); batch 1 -> block_h 2.
TileConfig default_cpu_tiles(const KernelKey& key, const TileProblem& problem) {
  const int rows = std::max(problem.rows, 1);
  TileConfig t;
  t.block_m = std::min(256, round_up(rows, 16));
  t.block_n = t.block_m <= 16 || t.block_m >= 128 ? 128 : 64;
  if (t.block_m == 16) {
    const int groups = std::max(problem.head_groups, 1);
    const long long min_items = 2LL * std::max(problem.threads, 1);
    while (t.block_h * 2 <= std::min(groups, 8) &&
           1LL * std::max(problem.batch, 1) * ((groups + t.block_h * 2 - 1) / (t.block_h * 2)) >=
               min_items) {
      t.block_h *= 2;
    }
  }
  return t;
}

int cuda_smem_limit(const std::string& arch) {
  // Per-block opt-in maxima (CUDA programming guide, compute capabilities table).
  if (arch.rfind("sm_80", 0) == 0 || arch.rfind("sm_87", 0) == 0) return 163 * 1024;
  if (arch.rfind("sm_86", 0) == 0 || arch.rfind("sm_89", 0) == 0) return 99 * 1024;
  if (arch.rfind("sm_90", 0) == 0) return 227 * 1024;
  return 48 * 1024;
}

// Measured on an H200 (bf16, s 4k-16k, docs/PERF.md): d <= 96: 128 x 64 tiles with 4 warps of
// 32 rows (two m16 tiles: every K/V fragment feeds two MMAs), ~200 TFLOP/s at d 64; d 128:
// 8 warps of 16 rows, 188-193 (4 warps of 32 rows reach 211-216 at block_n 32 but spill with
// some features and on sm_80); d > 128: 128 x 64 with 8 warps of 16 rows, 223-230 vs 122-125 for 64
// x 64, 202 KiB of shared memory (block_n halves where the arch has less, e.g. sm_80's 163 KiB).
// Decode (rows <= 16): one row warp and 4 key warps, each streaming its own 64-key blocks.
TileConfig default_cuda_tiles(const KernelKey& key, const TileProblem& problem) {
  const int rows = std::max(problem.rows, 1);
  const int d = std::max(key.head_dim_qk, key.head_dim_v);
  TileConfig t;
  if (rows <= 16) {
    t.block_m = 16;
    t.block_n = 64;
    t.num_warps = 4;
    t.num_stages = 1;
  } else {
    t.block_m = rows <= 64 ? 64 : 128;
    t.block_n = 64;
    t.num_warps = t.block_m == 128 && d <= 96 ? 4 : t.block_m / 16;
    t.num_stages = 2;
  }
  auto smem = [&](const TileConfig& c) {
    KernelKey k = key;
    k.block_m = c.block_m;
    k.block_n = c.block_n;
    k.num_warps = c.num_warps;
    return cuda_launch_shape(k).smem_bytes;
  };
  const int limit = cuda_smem_limit(key.target.cpu);
  while (smem(t) > limit && t.block_n > 16) t.block_n /= 2;
  while (smem(t) > limit && t.block_m == 16 && t.num_warps > 1) t.num_warps /= 2;
  while (smem(t) > limit && t.block_m > 16) {
    t.block_m /= 2;
    t.num_warps = std::max(1, t.num_warps / 2);
  }
  return t;
}

}  // namespace flashjit
