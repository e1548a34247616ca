// `flashjit demo`: the main job. JIT-compiles a prefill and a decode kernel for this CPU (and,
// where there is one, for the GPU), runs them, checks them against the float64 reference and prints
// what happened.
#include <fmt/format.h>

#include <thread>

#include "runtime/cpu_target.h"
#include "tools/cuda_demo.h"
#include "tools/demo_problems.h"
#include "tools/tool_common.h"

namespace flashjit::tools {
namespace {

bool prefill_demo() {
  DemoPrefill p;
  const VarlenArgs a =
      p.args(p.q.data(), p.k.data(), p.v.data(), p.out.data(), p.cu_seqlens.data(), Device{});
  fmt::print("{}\n", DemoPrefill::description());
  const CacheStats before = cache_stats();
  flash_attn_varlen(a);
  fmt::print("  kernel  : {}\n", how_obtained(before, cache_stats()));
  const auto [best, median] = time_ms(5, [&] { flash_attn_varlen(a); });
  fmt::print("  run     : {:.2f} ms median, {:.1f} GFLOP/s (best {:.1f})\n", median,
             p.flops() / median / 1e6, p.flops() / best / 1e6);
  return p.check();
}

bool decode_demo() {
  DemoDecode p;
  const KvcacheArgs a = p.args(p.q.data(), p.k.data(), p.v.data(), p.out.data(),
                               p.page_table.data(), p.seqlens.data(), Device{});
  fmt::print("{}\n", DemoDecode::description());
  const CacheStats before = cache_stats();
  flash_attn_with_kvcache(a);
  fmt::print("  kernel  : {}\n", how_obtained(before, cache_stats()));
  const auto [best, median] = time_ms(10, [&] { flash_attn_with_kvcache(a); });
  fmt::print("  run     : {:.3f} ms median, {:.1f} GB/s of K/V read (best {:.1f})\n", median,
             p.kv_bytes() / median / 1e6, p.kv_bytes() / best / 1e6);
  return p.check();
}

}  // namespace

int run_demo() {
  const Target& target = host_cpu_target();
  // The matmul path codegen/tile_config.cpp picks for bf16 on this host (FLASHJIT_DISABLE_AMX and
  // FLASHJIT_DISABLE_BF16_DOT already removed their features from the target).
  const bool avx512 = target.has_feature("avx512f");
  const bool amx = avx512 && target.has_feature("amx-bf16") && target.has_feature("amx-tile");
  const bool bf16_dot =
      avx512 && !amx && target.has_feature("avx512bf16") && target.has_feature("avx512bw");
  fmt::print("flashjit {} demo on {} ({}, {} threads), bf16 matmuls on {}\n", version(),
             target.triple, target.cpu, std::thread::hardware_concurrency(),
             amx ? "AMX tiles" : (bf16_dot ? "AVX-512 BF16 pair dot products" : "fp32 vector FMA"));
  const char* dir = std::getenv("FLASHJIT_CACHE_DIR");
  fmt::print("kernel cache: {}\n\n", dir ? dir : "default (~/.cache/flashjit)");
  const bool ok1 = prefill_demo();
  fmt::print("\n");
  const bool ok2 = decode_demo();
  fmt::print("\n");
  const bool ok3 = run_cuda_demo();
  const CacheStats s = cache_stats();
  fmt::print(
      "\ncache: {} compiled, {} loaded from disk, {} memory hits, {} corrupt entries "
      "discarded, {} write errors\n",
      s.compiles, s.disk_hits, s.memory_hits, s.corrupt_entries, s.write_errors);
  if (s.compiles > 0) fmt::print("run it again: the kernels then load from the disk cache\n");
  const bool ok = ok1 && ok2 && ok3;
  fmt::print("{}\n", ok ? "demo: all checks passed" : "demo: CHECK FAILED");
  return ok ? 0 : 1;
}

}  // namespace flashjit::tools
