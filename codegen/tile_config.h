// The default tile heuristic: a pure function of the key and the problem's row count, callable from
// the runtime, the tools and the tests. The autotuner (a later issue) overrides it.
#pragma once

#include "flashjit/kernel_key.h"

namespace flashjit {

struct TileConfig {
  int block_m = 0;
  int block_n = 0;
};

// True when the CPU kernel for this key runs its matmuls on AMX (bf16 with amx-bf16 on the target).
bool cpu_uses_amx(const KernelKey& key);

// rows: the most query rows one work item can hold (max_seqlen_q, times the GQA group when packed).
TileConfig default_cpu_tiles(const KernelKey& key, int rows);

}  // namespace flashjit
