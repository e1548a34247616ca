// Default CPU tile sizes, sized for 48 KiB L1d / 2 MiB L2 per core (Sapphire Rapids).
#include "codegen/tile_config.h"

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

}  // namespace flashjit
