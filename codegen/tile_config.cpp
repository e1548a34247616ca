// Default CPU tile sizes. Sized for 48 KiB L1d / 2 MiB L2 per core (Sapphire Rapids): the working
// set of one work item (Q tile, packed K/V block, S, O) stays in L2.
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

// Worked example: decode with GQA 32/8 packed gives rows = 1 * 4 = 4. The AMX path pads M to one
// 16-row tile (block_m 16) and streams long key blocks (block_n 128) so that per-block overhead
// is amortized; prefill (rows >= 64) uses 64 x 64 tiles: S is 16 KiB, a bf16 K block 16 KiB.
TileConfig default_cpu_tiles(const KernelKey& key, int rows) {
  rows = std::max(rows, 1);
  const int granule = cpu_uses_amx(key) ? 16 : 4;
  TileConfig t;
  t.block_m = std::min(64, round_up(rows, granule));
  t.block_n = t.block_m <= 16 ? 128 : 64;
  return t;
}

}  // namespace flashjit
