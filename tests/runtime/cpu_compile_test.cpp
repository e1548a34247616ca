// Every CPU matmul path compiles for its own target on any host: AMX (Sapphire Rapids), AVX-512
// BF16 pairs (Zen 4) and fp32 FMA (Skylake-AVX512). The sweeps run only the paths the host has
// (CI's machine has no AMX), so without this test a template change could break a path that no
// test compiles. Objects are compiled, not run.
#include <gtest/gtest.h>

#include <ostream>
#include <string>
#include <vector>

#include "codegen/generate_source.h"
#include "runtime/cpu_compiler.h"

namespace flashjit {
namespace {

struct PathTarget {
  const char* name;
  Target target;
  const char* marker;  // what the generated source must say about its path
};

void PrintTo(const PathTarget& p, std::ostream* os) { *os << p.name << " " << p.target.cpu; }

std::vector<PathTarget> path_targets() {
  return {
      {"amx",
       Target{"x86_64-unknown-linux-gnu", "sapphirerapids",
              "+amx-bf16,+amx-tile,+avx512bf16,+avx512bw,+avx512f"},
       "kUseAmx = true"},
      {"bf16_pairs",
       Target{"x86_64-unknown-linux-gnu", "znver4",
              "-amx-bf16,-amx-tile,+avx512bf16,+avx512bw,+avx512f"},
       "kUseBf16Dot = true"},
      {"fp32_fma",
       Target{"x86_64-unknown-linux-gnu", "skylake-avx512", "-avx512bf16,+avx512bw,+avx512f"},
       "kUseBf16Dot = false"},
  };
}

KernelKey cpu_key(const Target& target, DType dtype, int d, int dv, int block_m, int block_n) {
  KernelKey k;
  k.backend = Backend::kCpu;
  k.target = target;
  k.dtype_q = k.dtype_kv = k.dtype_o = dtype;
  k.head_dim_qk = d;
  k.head_dim_v = dv;
  k.block_m = block_m;
  k.block_n = block_n;
  return k;
}

// Decode (16-row tiles of up to 8 head groups with every KV-cache feature) and prefill (every
// mask and score feature), in each dtype, on the head dims the kernels are instantiated for.
std::vector<KernelKey> covering_keys(const Target& target) {
  std::vector<KernelKey> keys;
  for (DType dt : {DType::kBFloat16, DType::kFloat16, DType::kFloat32}) {
    KernelKey decode = cpu_key(target, dt, 128, 128, 16, 128);
    decode.block_h = 8;
    decode.paged_kv = decode.seqused_k = decode.pack_gqa = decode.lse = true;
    decode.split_kv = decode.append_kv = decode.rotary = decode.leftpad = true;
    keys.push_back(decode);
    KernelKey prefill = cpu_key(target, dt, 128, 128, 64, 64);
    prefill.causal = prefill.local = prefill.chunked = prefill.softcap = prefill.sinks = true;
    prefill.varlen_q = prefill.varlen_k = prefill.lse = true;
    keys.push_back(prefill);
  }
  for (auto [d, dv] : std::vector<std::pair<int, int>>{{64, 64}, {80, 80}, {256, 256}, {192, 128}})
    keys.push_back(cpu_key(target, DType::kBFloat16, d, dv, 16, 128));
  return keys;
}

class CpuCompile : public ::testing::TestWithParam<PathTarget> {};

TEST_P(CpuCompile, EveryKeyCompilesForThePathsTarget) {
  const PathTarget& p = GetParam();
  for (KernelKey key : covering_keys(p.target)) {
    key = key.canonicalize();
    SCOPED_TRACE(key.name());
    const std::string source = generate_cpu_source(key);
    // fp16 and fp32 always take the fp32 path; bf16 takes the target's path.
    if (key.dtype_q == DType::kBFloat16) {
      EXPECT_NE(source.find(p.marker), std::string::npos);
    }
    const CpuObject object = compile_cpu_object(source, key.target, key.name());
    EXPECT_EQ(object.bytes.compare(0, 4,
                                   "\x7f"
                                   "ELF"),
              0);
    EXPECT_NE(object.bytes.find("flashjit_fwd"), std::string::npos);
  }
}

INSTANTIATE_TEST_SUITE_P(Paths, CpuCompile, ::testing::ValuesIn(path_targets()),
                         [](const ::testing::TestParamInfo<PathTarget>& info) {
                           return std::string(info.param.name);
                         });

}  // namespace
}  // namespace flashjit
