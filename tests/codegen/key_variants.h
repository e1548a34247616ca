// Shared by the codegen tests: a base kernel key and one single-field change per key field, each
// tagged with the JSON field it changes, so that tests can iterate over "every field" of the key.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "flashjit/kernel_key.h"

namespace flashjit::testing {

inline KernelKey base_cpu_key() {
  KernelKey k;
  k.backend = Backend::kCpu;
  k.target = Target{"x86_64-unknown-linux-gnu", "sapphirerapids", "+amx-bf16,+amx-tile,+avx512f"};
  k.dtype_q = k.dtype_kv = k.dtype_o = DType::kBFloat16;
  k.head_dim_qk = k.head_dim_v = 128;
  k.block_m = 64;
  k.block_n = 64;
  return k;
}

struct KeyVariant {
  std::string field;  // the JSON field (target.* for the target) that the change touches
  std::string label;  // unique, for messages
  std::function<void(KernelKey&)> apply;
};

// One variant per field (several for some), each changing exactly that field of base_cpu_key().
inline std::vector<KeyVariant> single_field_variants() {
  std::vector<KeyVariant> v;
  v.push_back({"op", "op=merge", [](KernelKey& k) { k.op = KernelOp::kMergeStates; }});
  v.push_back({"backend", "backend=cuda", [](KernelKey& k) { k.backend = Backend::kCuda; }});
  v.push_back({"target.triple", "triple=aarch64",
               [](KernelKey& k) { k.target.triple = "aarch64-unknown-linux-gnu"; }});
  v.push_back({"target.cpu", "cpu=icelake", [](KernelKey& k) { k.target.cpu = "icelake-server"; }});
  v.push_back({"target.features", "features=-amx-tile",
               [](KernelKey& k) { k.target.features = "+amx-bf16,-amx-tile,+avx512f"; }});
  v.push_back({"target.features", "features=empty", [](KernelKey& k) { k.target.features = ""; }});
  v.push_back({"dtype_q", "dtype_q=fp16", [](KernelKey& k) { k.dtype_q = DType::kFloat16; }});
  v.push_back({"dtype_q", "dtype_q=fp32", [](KernelKey& k) { k.dtype_q = DType::kFloat32; }});
  v.push_back({"dtype_kv", "dtype_kv=fp16", [](KernelKey& k) { k.dtype_kv = DType::kFloat16; }});
  v.push_back({"dtype_kv", "dtype_kv=e4m3", [](KernelKey& k) { k.dtype_kv = DType::kFloat8E4M3; }});
  v.push_back({"dtype_o", "dtype_o=fp32", [](KernelKey& k) { k.dtype_o = DType::kFloat32; }});
  v.push_back({"head_dim_qk", "head_dim_qk=192", [](KernelKey& k) { k.head_dim_qk = 192; }});
  v.push_back({"head_dim_qk", "head_dim_qk=64", [](KernelKey& k) { k.head_dim_qk = 64; }});
  v.push_back({"head_dim_v", "head_dim_v=512", [](KernelKey& k) { k.head_dim_v = 512; }});
  v.push_back({"head_dim_v", "head_dim_v=64", [](KernelKey& k) { k.head_dim_v = 64; }});
#define FLASHJIT_FLAG_VARIANT(name) \
  v.push_back({#name, #name "=true", [](KernelKey& k) { k.name = true; }});
  FLASHJIT_KEY_FLAGS(FLASHJIT_FLAG_VARIANT)
#undef FLASHJIT_FLAG_VARIANT
  v.push_back({"score_mod_hash", "score_mod_hash=0123abcd",
               [](KernelKey& k) { k.score_mod_hash = "0123abcd"; }});
  v.push_back({"score_mod_hash", "score_mod_hash=0123abce",
               [](KernelKey& k) { k.score_mod_hash = "0123abce"; }});
  v.push_back({"block_m", "block_m=16", [](KernelKey& k) { k.block_m = 16; }});
  v.push_back({"block_m", "block_m=128", [](KernelKey& k) { k.block_m = 128; }});
  v.push_back({"block_n", "block_n=128", [](KernelKey& k) { k.block_n = 128; }});
  v.push_back({"block_n", "block_n=32", [](KernelKey& k) { k.block_n = 32; }});
  v.push_back({"block_h", "block_h=4", [](KernelKey& k) { k.block_h = 4; }});
  v.push_back({"num_warps", "num_warps=4", [](KernelKey& k) { k.num_warps = 4; }});
  v.push_back({"num_stages", "num_stages=2", [](KernelKey& k) { k.num_stages = 2; }});
  return v;
}

}  // namespace flashjit::testing
