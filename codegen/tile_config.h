// The default tile heuristic: a pure function of the key and the problem's row count, callable from
// the runtime, the tools and the tests. The autotuner (a later issue) overrides it.
#pragma once

#include <cstdint>
#include <string>

#include "flashjit/kernel_key.h"

namespace flashjit {

struct TileConfig {
  int block_m = 0;
  int block_n = 0;
  int block_h = 1;     // CPU only
  int num_warps = 0;   // CUDA only
  int num_stages = 0;  // CUDA only
};

// What the heuristic sees of a call.
struct TileProblem {
  int rows = 1;  // most query rows of one (sequence, head group): max_seqlen_q x packed group
  int head_groups = 1;  // num_heads / packed heads with GQA packing, else num_heads
  int batch = 1;
  int threads = 1;             // CPU threads the call runs on
  bool splittable = false;     // split-KV may spread one sequence's keys over the threads
  int groups_per_kv_head = 1;  // packed head groups that share a KV head (cpu_pack_heads)
};

// True when the CPU kernel for this key runs its matmuls on AMX (bf16 with amx-bf16 on the target).
bool cpu_uses_amx(const KernelKey& key);
// bf16 Q and K/V on AVX-512 BF16 without AMX: the pair dot product path (bf16_dot_tiles.h).
bool cpu_uses_bf16_dot(const KernelKey& key);

// Query heads of one KV head that a CPU head group packs (pack_gqa): the whole GQA group, except
// where 5 to 8 packed rows would leave half of a 16-lane tile idle and half the group fits the
// 4-row decode scheme of the pair and fp32 paths (GQA 8 with one query: 2 head groups of 4 rows).
int cpu_pack_heads(const KernelKey& key, int group, int seqlen_q);

TileConfig default_cpu_tiles(const KernelKey& key, const TileProblem& problem);

// Dynamic shared memory a CTA may use on a CUDA arch ("sm_80", "sm_90a", ...).
int cuda_smem_limit(const std::string& arch);

// Decode tiles (block_m 16 with several warps) split the keys among warps, one K/V buffer each:
// num_stages 1. Every other CUDA tile streams a ring of K/V stages: 2 by default (3 allowed).
bool cuda_tiles_split_keys(int block_m, int num_warps);
int default_cuda_stages(int block_m, int num_warps);

// Why the CUDA template cannot instantiate the key's tiles (block_m, block_n, num_warps) on its
// target arch, or "" when it can. Mirrors the static_asserts of templates/cuda/tile_traits.cuh so
// that a bad tile config is a usage error before any compile.
std::string cuda_tiles_unfit(const KernelKey& key);

// CUDA tiles for a key whose target.cpu is the arch; cuda_tiles_unfit() is "" for them.
TileConfig default_cuda_tiles(const KernelKey& key, const TileProblem& problem);

// CTAs of `threads` threads and `smem_bytes` of dynamic shared memory that one SM of `arch` runs
// at once, counting registers at the 255-a-thread cap (prefill tiles sit there).
int cuda_ctas_per_sm(const std::string& arch, int smem_bytes, int threads);

// What the order of a causal CUDA grid sees of a call (templates/attention_math.h,
// causal_tile_order).
struct CausalOrderProblem {
  int slots = 1;                  // sequences x head groups
  int m_blocks = 1;               // row blocks of a slot
  int resident_ctas = 1;          // CTAs the GPU runs at once: SMs x cuda_ctas_per_sm
  int64_t l2_bytes = 0;           // the GPU's L2
  int64_t kv_bytes_per_slot = 0;  // K and V bytes one slot's tiles read
  int section_slots = 0;          // FLASHJIT_CUDA_CAUSAL_SECTION, 0 = the heuristic below
};

// Sections of slots for a causal grid. Within a section the longest tiles run first; sections run
// one after another. A section of about one wave of tiles (resident_ctas / m_blocks slots, no more
// than half the L2 holds the K/V of) reads its K/V from DRAM about once while its tiles run, and
// its longest tiles still start early enough to finish with the rest. Measured (H100, bf16, b s =
// 16k, 264 resident CTAs) against one section over the whole grid: s = 1k, 16 or 8 row blocks:
// d64 212 -> 239 TFLOP/s (32-64 slots a section), d128 247 -> 263 (32), d256 241 -> 265 (16);
// s = 4k and 16k equal. Sections of fewer slots (2 to 4 at s = 4k) or a last section of a few
// slots left long tiles to the end: -10 to -12 %. Hence sections as equal as can be.
int cuda_causal_sections(const CausalOrderProblem& problem);

// What the split-KV heuristic sees of a call (static shapes only, so that a plan's choice holds
// for every run with other lengths).
struct SplitProblem {
  long long tiles = 1;    // CTAs (CUDA) or work items (CPU) without splitting
  int key_blocks = 1;     // key blocks of the longest sequence (capacity / block_n)
  int units = 1;          // SMs (less sm_margin) or CPU threads
  int block_quantum = 1;  // key blocks a tile works on at once (its key warps on CUDA decode tiles)
};

// num_splits for num_splits <= 0: 1 when the tiles already fill 80 % of the units or there are at
// most 4 key blocks (FA3's rule, spec 6.3); else, among the counts in [1, min(128, units,
// key_blocks)] whose wave efficiency is within 85 % of the best (FA3's candidates), the one with
// the fewest waves x (rounds + 2) (the fewest splits within 10 % of that), rounds being the key
// blocks of a split over block_quantum. Unlike FA3's wave efficiency alone, this sees that 15
// splits of 512 decode blocks leave two of 16 key warps a third round (measured: 16 splits 3 %
// faster).
int default_num_splits(const SplitProblem& problem);

}  // namespace flashjit
