// The kernel key: every axis along which a flashjit kernel is specialized at compile time. Values
// that need no recompile (scale, window sizes, softcap value, page size, lengths, strides) are
// run-time parameters and are not here. One key = one generated source = one binary.
#pragma once

#include <cstdint>
#include <functional>
#include <string>

#include <nlohmann/json_fwd.hpp>

#include "flashjit/tensor.h"

namespace flashjit {

enum class Backend : uint8_t { kCpu, kCuda };
const char* backend_name(Backend backend);

// What a kernel computes: attention ("fwd"), or the merge of partial results by their LSE
// ("merge": dtype_q is the partials' dtype, dtype_o the output's, head_dim_v their width; the
// other fields are unused and canonicalize() clears them).
enum class KernelOp : uint8_t { kAttention, kMergeStates };
const char* op_name(KernelOp op);

// What the binary is compiled for. CPU: LLVM triple, CPU name and the full signed feature list
// ("+avx512f,-amx-int8,..."), since under KVM the CPU name alone is wrong. CUDA: arch ("sm_90a").
struct Target {
  std::string triple;
  std::string cpu;
  std::string features;
  bool operator==(const Target&) const = default;
  bool has_feature(const std::string& name) const;  // "+name" is in the feature list
};

// Compile-time feature flags. One list drives to_string, from_string, JSON and the tests.
#define FLASHJIT_KEY_FLAGS(X)                                            \
  X(causal)    /* mask j <= i + (Lk - Lq); window and chunk off */       \
  X(local)     /* sliding window (left, right) as run-time values */     \
  X(chunked)   /* attention_chunk > 0 (run-time chunk size) */           \
  X(softcap)   /* softcap * tanh(x / softcap) on the scaled scores */    \
  X(sinks)     /* per-head sink logit in the softmax denominator */      \
  X(paged_kv)  /* K/V through a page table, any page size */             \
  X(varlen_q)  /* queries packed by cu_seqlens_q (and seqused_q) */      \
  X(varlen_k)  /* keys packed by cu_seqlens_k */                         \
  X(seqused_k) /* per-sequence key counts (seqused_k / cache_seqlens) */ \
  X(lse)       /* write the log-sum-exp */                               \
  X(pack_gqa)  /* the query heads of one KV head share one tile */       \
  X(split_kv)  /* fp32 partials per key split, then a combine entry */   \
  X(append_kv) /* an append entry writes new K/V into the cache first */ \
  X(leftpad)   /* keys of sequence b stored from row cache_leftpad[b] */ \
  X(rotary)    /* rotary embedding of new keys and of queries */

struct KernelKey {
  KernelOp op = KernelOp::kAttention;
  Backend backend = Backend::kCpu;
  Target target;
  DType dtype_q = DType::kBFloat16;
  DType dtype_kv = DType::kBFloat16;
  DType dtype_o = DType::kBFloat16;
  int head_dim_qk = 128;
  int head_dim_v = 128;
#define FLASHJIT_DECLARE_FLAG(name) bool name = false;
  FLASHJIT_KEY_FLAGS(FLASHJIT_DECLARE_FLAG)
#undef FLASHJIT_DECLARE_FLAG
  std::string score_mod_hash;  // content hash of the score_mod; empty = none
  // Tile configuration: an output of the heuristic or the autotuner, still part of identity.
  int block_m = 0;
  int block_n = 0;
  int block_h = 1;     // CPU: head groups per work item (decode streams whole K/V rows)
  int num_warps = 0;   // CUDA only
  int num_stages = 0;  // CUDA only

  bool operator==(const KernelKey&) const = default;

  // Folds equivalent keys together (see kernel_key.cpp for the rules). Idempotent.
  KernelKey canonicalize() const;
  // Throws UsageError if the key names an unsupported combination.
  void check_supported() const;

  // Readable, filename-safe identity without the target feature list:
  // "fa_fwd_cpu_bf16_hd128_causal_lse_bm64_bn64".
  std::string name() const;
  // Full, stable, round-trippable spelling: name() + "@" + triple + "@" + cpu + "@" + features.
  std::string to_string() const;
  static KernelKey from_string(const std::string& text);
};

void to_json(nlohmann::json& j, const KernelKey& key);
void from_json(const nlohmann::json& j, KernelKey& key);

struct KernelKeyHash {
  size_t operator()(const KernelKey& key) const;
};

}  // namespace flashjit
