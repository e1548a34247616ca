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
// block_m 64 -> 93 GFLOP/s, 128 -> 104, 256 with block_n 128 -> 109 (docs/PERF.md). Decode with
// GQA 32/8 packed has rows = 4: one 16-row block and long key blocks (128) to amortize per-block
// work over more keys.
TileConfig default_cpu_tiles(const KernelKey& key, int rows) {
  rows = std::max(rows, 1);
  TileConfig t;
  t.block_m = std::min(256, round_up(rows, 16));
  t.block_n = t.block_m <= 16 || t.block_m >= 128 ? 128 : 64;
  return t;
}

}  // namespace flashjit
