// Default CPU tile sizes, sized for 48 KiB L1d / 2 MiB L2 per core (Sapphire Rapids).
#include "codegen/tile_config.h"

#include "codegen/cuda_arch.h"
#include "codegen/generate_source.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>

namespace flashjit {
namespace {
int round_up(int x, int to) { return (x + to - 1) / to * to; }
}  // namespace

bool cpu_uses_amx(const KernelKey& key) {
  return key.backend == Backend::kCpu && key.dtype_q == DType::kBFloat16 &&
         key.target.has_feature("amx-bf16") && key.target.has_feature("amx-tile") &&
         key.target.has_feature("avx512f");
}

bool cpu_uses_bf16_dot(const KernelKey& key) {
  return key.backend == Backend::kCpu && key.dtype_q == DType::kBFloat16 &&
         key.dtype_kv == DType::kBFloat16 && !cpu_uses_amx(key) &&
         key.target.has_feature("avx512bf16") && key.target.has_feature("avx512bw") &&
         key.target.has_feature("avx512f");
}

int cpu_pack_heads(const KernelKey& key, int group, int seqlen_q) {
  const int rows = group * std::max(seqlen_q, 1);
  if (cpu_uses_amx(key) || rows <= 4 || rows > 8 || group % 2 != 0) return group;
  return group / 2;
}

// Rows along the vector lanes come in 16s. Tall row blocks pay off: every K/V block is packed once
// per row block, and K/V rows of a (s, h, d) tensor sit h * d elements apart, so L2 set aliasing
// keeps them from staying cached between row blocks. Worked example (d 128, fp32, one core):
// block_m 64 -> 93 GFLOP/s, 128 -> 104, 256 with block_n 128 -> 109 (docs/PERF.md).
// Decode (one 16-row block, e.g. GQA 32/8 packed: rows = 4) is bandwidth-bound: a work item then
// takes the head groups of up to 8 KV heads, so that it streams whole K/V rows (all heads of a
// token are contiguous) instead of one head's slice of each, while leaving at least 2 items per
// thread. Worked example: batch 8, 8 KV heads, 2 threads -> block_h 8 (8 items); batch 1 ->
// block_h 2; GQA 64/8 with one query (2 head groups a KV head), split: block_h 16.
TileConfig default_cpu_tiles(const KernelKey& key, const TileProblem& problem) {
  const int rows = std::max(problem.rows, 1);
  TileConfig t;
  t.block_m = std::min(256, round_up(rows, 16));
  t.block_n = t.block_m <= 16 || t.block_m >= 128 ? 128 : 64;
  if (t.block_m == 16) {
    const int groups = std::max(problem.head_groups, 1);
    const int most = std::min(16, 8 * std::max(problem.groups_per_kv_head, 1));
    // A work item streams whole K/V rows of its heads: up to 8 heads of a token are one
    // contiguous run, which the prefetchers follow. Split-KV supplies the parallelism (measured
    // b1 s_k 32k, 2 threads: 52 % of DRAM with 2-head items, no split; see docs/PERF.md).
    if (problem.splittable) {
      t.block_h = std::min(groups, most);
      return t;
    }
    const long long min_items = 2LL * std::max(problem.threads, 1);
    while (t.block_h * 2 <= std::min(groups, most) &&
           1LL * std::max(problem.batch, 1) * ((groups + t.block_h * 2 - 1) / (t.block_h * 2)) >=
               min_items) {
      t.block_h *= 2;
    }
  }
  return t;
}

namespace {
// Shared memory an SM has for its CTAs, and the most one CTA may opt in to (CUDA programming
// guide, compute capabilities table); an arch not listed gets the 48 KiB every arch allows.
struct SmemLimits {
  int per_sm, per_cta;
};
SmemLimits smem_limits(const std::string& arch) {
  switch (cuda_arch_cc(arch)) {
    case 80:
    case 87:
      return {164 * 1024, 163 * 1024};
    case 86:
    case 89:
      return {100 * 1024, 99 * 1024};
    case 90:
      return {228 * 1024, 227 * 1024};
    default:
      return {100 * 1024, 48 * 1024};
  }
}
}  // namespace

int cuda_smem_limit(const std::string& arch) { return smem_limits(arch).per_cta; }

int cuda_ctas_per_sm(const std::string& arch, int smem_bytes, int threads) {
  // 1 KiB of an SM's shared memory is reserved per CTA.
  const int by_smem = smem_limits(arch).per_sm / (std::max(smem_bytes, 0) + 1024);
  const int by_regs = 65536 / (std::max(threads, 32) * 256);  // 255 registers round up to 256
  return std::clamp(std::min(by_smem, by_regs), 1, 32);
}

int cuda_causal_sections(const CausalOrderProblem& problem) {
  const int slots = std::max(problem.slots, 1);
  int64_t size = problem.section_slots;
  if (size <= 0) {
    const int m_blocks = std::max(problem.m_blocks, 1);
    size = (std::max(problem.resident_ctas, 1) + m_blocks - 1) / m_blocks;
    const int64_t l2_fit = problem.l2_bytes / 2 / std::max<int64_t>(problem.kv_bytes_per_slot, 1);
    size = std::min(size, std::max<int64_t>(l2_fit, 1));
  }
  size = std::clamp<int64_t>(size, 1, slots);
  return static_cast<int>((slots + size - 1) / size);
}

bool cuda_tiles_split_keys(int block_m, int num_warps) { return block_m == 16 && num_warps > 1; }

int default_cuda_stages(int block_m, int num_warps) {
  return cuda_tiles_split_keys(block_m, num_warps) ? 1 : 2;
}

std::string cuda_tiles_unfit(const KernelKey& key) {
  const int max_warps = key.block_m == 16 ? 16 : 8;
  if (key.num_warps < 1 || key.num_warps > max_warps)
    return fmt::format("num_warps: expected 1 to {} for block_m {}, got {}", max_warps, key.block_m,
                       key.num_warps);
  if (key.block_m > 16 && (key.block_m / 16) % key.num_warps != 0)
    return fmt::format("num_warps: expected a divisor of block_m / 16 = {}, got {}",
                       key.block_m / 16, key.num_warps);
  const bool split = cuda_tiles_split_keys(key.block_m, key.num_warps);
  if (split ? key.num_stages != 1 && key.num_stages != 2 : key.num_stages < 1 || key.num_stages > 3)
    return fmt::format("num_stages: expected {} for these tiles, got {}",
                       split ? "1 or 2" : "1 to 3", key.num_stages);
  const int smem = cuda_launch_shape(key).smem_bytes, limit = cuda_smem_limit(key.target.cpu);
  if (smem > limit)
    return fmt::format("shared memory: tiles {}x{} with {} warps need {} bytes, {} allows {}",
                       key.block_m, key.block_n, key.num_warps, smem, key.target.cpu, limit);
  return "";
}

// Measured on an H200 (bf16, s 1k-16k, docs/PERF.md): 128-row tiles with 4 warps of 32 rows
// (two m16 tiles: every K/V fragment feeds two MMAs), 64 keys, 128 at d <= 64 on sm_90: d 64 291
// TFLOP/s (128 x 64: 274), d 128 335 (128 x 32: 288; 3 stages: 231, one CTA per SM). These fit the
// 255-register cap because the tile's coordinates and row intervals live in shared memory. d >
// 128: 64 x 64 with 4 warps of 16 rows and one staggered K and V buffer (FlashAttention-2's
// order), 102 KiB, two CTAs per SM: d256 244-275 TFLOP/s vs 231-261 for 128 x 64 with 8 warps
// and two stages (203 KiB, one CTA); block_n halves where the arch has less shared memory. Decode
// (rows <= 16) is bandwidth-bound: one row warp and many key warps, each streaming its own 16-key
// blocks, keep the most loads in flight. H200, d 128, GQA 32/8, paged, swept before the K/V load
// rework (which took 16 x 16 to 3.6-4.0): 16 warps x 16 keys 2.6-2.7 TB/s at B 16-128 (1.3 at B 8);
// 8 x 16: 1.7-2.7; 8 x 32: 2.0; 4 x 64: 1.2. Head dims above 128 keep 8 warps: 16 warps of 512
// threads leave 128 registers, too few for their O (and at d 80 ptxas spills a few bytes under that
// cap).
TileConfig default_cuda_tiles(const KernelKey& key, const TileProblem& problem) {
  const int rows = std::max(problem.rows, 1);
  const int d = std::max(key.head_dim_qk, key.head_dim_v);
  TileConfig t;
  if (rows <= 16) {
    t.block_m = 16;
    t.block_n = 16;
    const int dvp = round_up(key.head_dim_v, 16);
    // 16 warps leave 128 registers a thread: measured (tests/cuda/cuda_compile_test) to spill
    // only with all six of these run-time features at once, which get 8 warps.
    const int features =
        key.local + key.chunked + key.softcap + key.sinks + key.varlen_q + key.leftpad;
    t.num_warps = dvp <= 128 && dvp % 32 == 0 && features < 6 ? 16 : 8;
  } else {
    t.block_m = rows <= 64 ? 64 : 128;
    // NOTE: sm_80's ptxas spills 36 bytes at d 64 with 128 keys; sm_90's does not.
    const bool sm90 = cuda_arch_cc(key.target.cpu) == 90;
    t.block_n = t.block_m == 128 && d <= 64 && sm90 ? 128 : 64;
    // NOTE: split-KV d128 keys spill 4 bytes at 128 x 64 (ptxas, sm_90a): 32 keys there.
    if (t.block_m == 128 && key.split_kv && d > 96 && d <= 128) t.block_n = 32;
    t.num_warps = t.block_m == 128 && d <= 128 ? 4 : t.block_m / 16;
    // d <= 64 on sm_90 (128 x 128): one staggered K and one V buffer, as for d > 128, ran 2-2.7 %
    // faster than two stages in every prefill cell (H200); d 128 (128 x 64) 2-5 % slower.
    if (t.block_n == 128) t.num_stages = 1;
    if (d > 128) {  // 64 x 64, one K and one V buffer: two CTAs of 102 KiB fit an sm_90 SM
      t.block_m = 64;
      t.num_warps = 4;
      t.num_stages = 1;
    }
  }
  auto with = [&](const TileConfig& c) {
    KernelKey k = key;
    k.block_m = c.block_m;
    k.block_n = c.block_n;
    k.num_warps = c.num_warps;
    k.num_stages = c.num_stages ? c.num_stages : default_cuda_stages(c.block_m, c.num_warps);
    return k;
  };
  auto smem = [&](const TileConfig& c) { return cuda_launch_shape(with(c)).smem_bytes; };
  const int limit = cuda_smem_limit(key.target.cpu);
  while (smem(t) > limit && t.block_m == 16 && t.num_warps > 1) t.num_warps /= 2;
  while (smem(t) > limit && t.block_n > 16) t.block_n /= 2;
  while (smem(t) > limit && t.block_m > 16) {
    t.block_m /= 2;
    t.num_warps = std::max(1, t.num_warps / 2);
  }
  if (t.num_stages == 0) t.num_stages = default_cuda_stages(t.block_m, t.num_warps);
  // Few tiles (the call will split its keys; decode at small batch): 12 key warps that each load
  // their next block while computing, where it fits. Measured (H200, append step, graph replay):
  // B=1 s_k 8k 23.0 -> 20.7 us, 32k 53.1 -> 50.9; at B >= 64 (many tiles) 16 x 1 is as fast or
  // 1 % faster, and 8 x 2 is slower everywhere. Since the key warps merge in parallel (H100,
  // 8 KV heads): B=8 (64 tiles) append step 2.43 TB/s with 16 x 1 vs 2.37-2.38 with 12 x 2,
  // plain decode equal; B=1 (8 tiles) s_k 8k 12 x 2 still faster (1.33 vs 1.29-1.31), 32k equal.
  // The bound between them, 32 tiles, is not measured.
  if (t.block_m == 16 && t.num_warps == 16 &&
      1LL * std::max(problem.batch, 1) * std::max(problem.head_groups, 1) < 32) {
    TileConfig deep = t;
    deep.num_warps = 12;
    deep.num_stages = 2;
    KernelKey k = with(deep);
    k.num_stages = 2;
    if (cuda_tiles_unfit(k).empty()) return deep;  // shared memory and stage rules
  }
  return t;
}

int default_num_splits(const SplitProblem& problem) {
  const long long tiles = std::max(problem.tiles, 1LL);
  const int units = std::max(problem.units, 1);
  if (tiles >= 0.8 * units || problem.key_blocks <= 4) return 1;
  const int cap = std::min({128, units, problem.key_blocks});
  const long long quantum = std::max(problem.block_quantum, 1);
  auto cost = [&](int s) {
    const long long waves = (tiles * s + units - 1) / units;
    const long long per_split = (problem.key_blocks + s - 1) / s;
    // NOTE: + 2 rounds per wave for what every CTA does besides its key blocks (Q, merge,
    // epilogue): with it the choice matches the measured sweep (decode b1 s_k 8k: 16 splits
    // 27.8 us, 8: 31.1, 32: 37.3).
    return waves * ((per_split + quantum - 1) / quantum + 2);
  };
  // Candidates: FA3's, the counts whose last wave is at least 85 % as full as the best's (fewer
  // busy SMs draw less bandwidth, which the cost below does not see).
  auto efficiency = [&](int s) {
    const double waves = static_cast<double>(tiles) * s / units;
    return waves / std::ceil(waves);
  };
  double best_eff = 0;
  for (int s = 1; s <= cap; ++s) best_eff = std::max(best_eff, efficiency(s));
  long long best = -1;
  for (int s = 1; s <= cap; ++s)
    if (efficiency(s) >= 0.85 * best_eff && (best < 0 || cost(s) < best)) best = cost(s);
  // Splits cost partials and a combine: the fewest within 5 % of the best. (Within 10 %, decode
  // b1 s_k 32k took 15 splits for 16's cost; 16 measured 1.3-2 % faster on H100 and H200.)
  for (int s = 1; s <= cap; ++s)
    if (efficiency(s) >= 0.85 * best_eff && cost(s) * 20 <= best * 21) return s;
  return 1;
}

}  // namespace flashjit
