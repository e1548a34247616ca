// `flashjit demo`: the main job. JIT-compiles a prefill and a decode kernel for this CPU, runs
// them, checks them against the float64 reference and prints what happened.
#include <fmt/format.h>

#include <cmath>
#include <numeric>
#include <thread>

#include "reference/attention_reference.h"
#include "runtime/cpu_target.h"
#include "tools/tool_common.h"

namespace flashjit::tools {
namespace {

struct Outcome {
  bool ok = true;
};

// Describes how the kernel of one call was obtained, from the counters before and after.
std::string how_obtained(const CacheStats& before, const CacheStats& after) {
  if (after.compiles > before.compiles)
    return fmt::format("compiled in {:.0f} ms (then stored in the disk cache)",
                       after.compile_ms - before.compile_ms);
  if (after.disk_hits > before.disk_hits)
    return fmt::format("loaded from the disk cache in {:.2f} ms (no compile)",
                       after.load_ms - before.load_ms);
  return "already loaded in this process";
}

// max |out - ref| against FA3's bound 2 * max |low - ref| + rounding noise.
bool check(const std::vector<std::vector<double>>& got, const testing::RefInputs& in,
           const char* what) {
  const testing::RefOutputs ref = testing::attention_reference(in);
  const testing::RefOutputs low = testing::attention_low_precision(in, DType::kBFloat16);
  double err = 0, base = 0, noise = 0;
  for (size_t b = 0; b < got.size(); ++b)
    for (size_t i = 0; i < got[b].size(); ++i) {
      const double r = ref.out[b][i];
      err = std::max(err, std::abs(got[b][i] - r));
      if (std::isnan(got[b][i])) err = INFINITY;
      base = std::max(base, std::abs(low.out[b][i] - r));
      noise = std::max(noise, std::abs(testing::round_to(r + 0.3, DType::kBFloat16) - 0.3 - r));
    }
  const double tol = 2 * base + 2 * noise;
  const bool ok = err <= tol;
  fmt::print("  check   : max |out - float64 reference| = {:.2e}, bound {:.2e} -> {}\n", err, tol,
             ok ? "PASS" : "FAIL");
  (void)what;
  return ok;
}

bool prefill_demo() {
  const int h = 16, hk = 4, d = 128;
  const std::vector<int> lens = {512, 384};
  std::vector<int32_t> cu = {0, lens[0], lens[0] + lens[1]};
  const int total = cu.back();
  HostTensor q(DType::kBFloat16, int64_t{total} * h * d, 1),
      k(DType::kBFloat16, int64_t{total} * hk * d, 2),
      v(DType::kBFloat16, int64_t{total} * hk * d, 3),
      out(DType::kBFloat16, int64_t{total} * h * d, 4);
  VarlenArgs a;
  a.q = Tensor::contiguous(q.data(), DType::kBFloat16, {total, h, d});
  a.k = Tensor::contiguous(k.data(), DType::kBFloat16, {total, hk, d});
  a.v = Tensor::contiguous(v.data(), DType::kBFloat16, {total, hk, d});
  a.out = Tensor::contiguous(out.data(), DType::kBFloat16, {total, h, d});
  a.cu_seqlens_q = Tensor::contiguous(cu.data(), DType::kInt32, {3});
  a.cu_seqlens_k = Tensor::contiguous(cu.data(), DType::kInt32, {3});
  a.max_seqlen_q = a.max_seqlen_k = 512;
  a.causal = true;
  fmt::print(
      "prefill: varlen, 2 sequences (512 + 384 tokens), 16 query / 4 KV heads, d 128, bf16, "
      "causal\n");
  const CacheStats before = cache_stats();
  flash_attn_varlen(a);
  fmt::print("  kernel  : {}\n", how_obtained(before, cache_stats()));
  const auto [best, median] = time_ms(5, [&] { flash_attn_varlen(a); });
  double flops = 0;
  for (int L : lens) flops += 4.0 * h * d * (L * (L + 1) / 2.0);
  fmt::print("  run     : {:.2f} ms median, {:.1f} GFLOP/s (best {:.1f})\n", median,
             flops / median / 1e6, flops / best / 1e6);
  testing::RefInputs in;
  in.batch = 2;
  in.num_heads = h;
  in.num_heads_k = hk;
  in.head_dim = in.head_dim_v = d;
  in.lq = in.lk = lens;
  in.causal = true;
  in.softmax_scale = 1.0 / std::sqrt(static_cast<double>(d));
  std::vector<std::vector<double>> got(2);
  for (int s = 0; s < 2; ++s) {
    auto slice = [&](const HostTensor& t, int heads) {
      std::vector<double> x(int64_t{lens[s]} * heads * d);
      for (size_t i = 0; i < x.size(); ++i) x[i] = t.get(int64_t{cu[s]} * heads * d + i);
      return x;
    };
    in.q.push_back(slice(q, h));
    in.k.push_back(slice(k, hk));
    in.v.push_back(slice(v, hk));
    got[s] = slice(out, h);
  }
  return check(got, in, "prefill");
}

bool decode_demo() {
  const int b = 8, h = 32, hk = 8, d = 128, page = 16, len = 2048, pages_per_seq = len / page;
  const int pages = b * pages_per_seq;
  HostTensor q(DType::kBFloat16, int64_t{b} * h * d, 5),
      out(DType::kBFloat16, int64_t{b} * h * d, 6);
  HostTensor k(DType::kBFloat16, int64_t{pages} * page * hk * d, 7),
      v(DType::kBFloat16, int64_t{pages} * page * hk * d, 8);
  std::vector<int32_t> table(pages), seqlens(b);
  std::iota(table.begin(), table.end(), 0);
  std::shuffle(table.begin(), table.end(), std::mt19937_64(9));
  for (int i = 0; i < b; ++i) seqlens[i] = len - 97 * i;
  KvcacheArgs a;
  a.q = Tensor::contiguous(q.data(), DType::kBFloat16, {b, 1, h, d});
  a.k_cache = Tensor::contiguous(k.data(), DType::kBFloat16, {pages, page, hk, d});
  a.v_cache = Tensor::contiguous(v.data(), DType::kBFloat16, {pages, page, hk, d});
  a.page_table = Tensor::contiguous(table.data(), DType::kInt32, {b, pages_per_seq});
  a.cache_seqlens = Tensor::contiguous(seqlens.data(), DType::kInt32, {b});
  a.out = Tensor::contiguous(out.data(), DType::kBFloat16, {b, 1, h, d});
  fmt::print(
      "decode : batch 8, one query each, paged KV (page 16, ~2k keys), 32 query / 8 KV "
      "heads, d 128, bf16\n");
  const CacheStats before = cache_stats();
  flash_attn_with_kvcache(a);
  fmt::print("  kernel  : {}\n", how_obtained(before, cache_stats()));
  const auto [best, median] = time_ms(10, [&] { flash_attn_with_kvcache(a); });
  double bytes = 0;
  for (int s : seqlens) bytes += 2.0 * s * hk * d * 2;
  fmt::print("  run     : {:.3f} ms median, {:.1f} GB/s of K/V read (best {:.1f})\n", median,
             bytes / median / 1e6, bytes / best / 1e6);
  testing::RefInputs in;
  in.batch = b;
  in.num_heads = h;
  in.num_heads_k = hk;
  in.head_dim = in.head_dim_v = d;
  in.lq.assign(b, 1);
  in.lk = seqlens;
  in.softmax_scale = 1.0 / std::sqrt(static_cast<double>(d));
  std::vector<std::vector<double>> got(b);
  for (int s = 0; s < b; ++s) {
    std::vector<double> qs(h * d), ks, vs;
    for (int i = 0; i < h * d; ++i)
      qs[i] = q.get(int64_t{s} * h * d + i), got[s].push_back(out.get(int64_t{s} * h * d + i));
    for (int j = 0; j < seqlens[s]; ++j) {
      const int64_t row = int64_t{table[s * pages_per_seq + j / page]} * page + j % page;
      for (int e = 0; e < hk * d; ++e) {
        ks.push_back(k.get(row * hk * d + e));
        vs.push_back(v.get(row * hk * d + e));
      }
    }
    in.q.push_back(qs);
    in.k.push_back(ks);
    in.v.push_back(vs);
  }
  return check(got, in, "decode");
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
  const CacheStats s = cache_stats();
  fmt::print(
      "\ncache: {} compiled, {} loaded from disk, {} memory hits, {} corrupt entries "
      "discarded, {} write errors\n",
      s.compiles, s.disk_hits, s.memory_hits, s.corrupt_entries, s.write_errors);
  if (s.compiles > 0) fmt::print("run it again: the kernels then load from the disk cache\n");
  fmt::print("{}\n", ok1 && ok2 ? "demo: all checks passed" : "demo: CHECK FAILED");
  return ok1 && ok2 ? 0 : 1;
}

}  // namespace flashjit::tools
