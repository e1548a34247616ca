// `flashjit bench`: the CPU performance table. Prefill GFLOP/s and decode GB/s beside the fp32
// FMA peak, the AMX peak and the DRAM bandwidth measured in the same run, plus first-call compile
// time and cache-hit load time per kernel (the latter from a second process on the same cache).
#include <fmt/format.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <numeric>
#include <thread>

#include "runtime/cpu_target.h"
#include "tools/bench_ceilings.h"
#include "tools/tool_common.h"

namespace flashjit::tools {
namespace {

// One benchmark problem: buffers plus a call. `scale` 0 builds a tiny problem with the same
// kernel key (for the load probe).
struct Problem {
  std::string label;
  std::vector<std::unique_ptr<HostTensor>> tensors;
  std::vector<int32_t> ints_a, ints_b;
  std::function<void()> call;
  double work = 0;  // FLOP (prefill) or bytes (decode)
};

HostTensor* add(Problem& p, DType dt, int64_t n, uint64_t seed) {
  p.tensors.push_back(std::make_unique<HostTensor>(dt, n, seed));
  return p.tensors.back().get();
}

std::unique_ptr<Problem> prefill(DType dt, bool causal, int batch, int seqlen, int threads) {
  auto p = std::make_unique<Problem>();
  const int h = 16, d = 128;
  p->label = fmt::format("prefill {} {} b{} s{} h16 d128", dtype_name(dt),
                         causal ? "causal" : "non-causal", batch, seqlen);
  const int64_t total = int64_t{batch} * seqlen;
  HostTensor* q = add(*p, dt, total * h * d, 1);
  HostTensor* k = add(*p, dt, total * h * d, 2);
  HostTensor* v = add(*p, dt, total * h * d, 3);
  HostTensor* o = add(*p, dt, total * h * d, 4);
  for (int i = 0; i <= batch; ++i) p->ints_a.push_back(i * seqlen);
  VarlenArgs a;
  a.q = Tensor::contiguous(q->data(), dt, {total, h, d});
  a.k = Tensor::contiguous(k->data(), dt, {total, h, d});
  a.v = Tensor::contiguous(v->data(), dt, {total, h, d});
  a.out = Tensor::contiguous(o->data(), dt, {total, h, d});
  a.cu_seqlens_q = a.cu_seqlens_k =
      Tensor::contiguous(p->ints_a.data(), DType::kInt32, {batch + 1});
  a.max_seqlen_q = a.max_seqlen_k = seqlen;
  a.causal = causal;
  a.options.num_threads = threads;
  p->call = [a] { flash_attn_varlen(a); };
  const double pairs = causal ? seqlen * (seqlen + 1) / 2.0 : static_cast<double>(seqlen) * seqlen;
  p->work = 4.0 * batch * h * d * pairs;
  return p;
}

std::unique_ptr<Problem> decode(bool paged, int batch, int seqlen_k, int threads,
                                int num_splits = 0, int h = 32) {
  auto p = std::make_unique<Problem>();
  const int hk = 8, d = 128, page = 16;
  const DType dt = DType::kBFloat16;
  p->label = fmt::format("decode bf16 {} b{} s_k{} {}/8 heads d128",
                         paged ? "paged-16" : "contiguous", batch, seqlen_k, h);
  const int64_t rows = int64_t{batch} * seqlen_k;
  HostTensor* q = add(*p, dt, int64_t{batch} * h * d, 5);
  HostTensor* o = add(*p, dt, int64_t{batch} * h * d, 6);
  HostTensor* k = add(*p, dt, rows * hk * d, 7);
  HostTensor* v = add(*p, dt, rows * hk * d, 8);
  KvcacheArgs a;
  a.q = Tensor::contiguous(q->data(), dt, {batch, 1, h, d});
  a.out = Tensor::contiguous(o->data(), dt, {batch, 1, h, d});
  p->ints_b.assign(batch, seqlen_k);
  a.cache_seqlens = Tensor::contiguous(p->ints_b.data(), DType::kInt32, {batch});
  if (paged) {
    const int pages = static_cast<int>(rows / page);
    p->ints_a.resize(pages);
    std::iota(p->ints_a.begin(), p->ints_a.end(), 0);
    std::shuffle(p->ints_a.begin(), p->ints_a.end(), std::mt19937_64(1));
    a.k_cache = Tensor::contiguous(k->data(), dt, {pages, page, hk, d});
    a.v_cache = Tensor::contiguous(v->data(), dt, {pages, page, hk, d});
    a.page_table = Tensor::contiguous(p->ints_a.data(), DType::kInt32, {batch, seqlen_k / page});
  } else {
    a.k_cache = Tensor::contiguous(k->data(), dt, {batch, seqlen_k, hk, d});
    a.v_cache = Tensor::contiguous(v->data(), dt, {batch, seqlen_k, hk, d});
  }
  a.options.num_threads = threads;
  a.num_splits = num_splits;
  p->call = [a] { flash_attn_with_kvcache(a); };
  p->work = 2.0 * rows * hk * d * dtype_size(dt);
  return p;
}

struct Spec {
  std::function<std::unique_ptr<Problem>(int scale_tokens, int threads)> make;
};

std::vector<Spec> specs(bool quick) {
  const int pb = quick ? 2 : 4, ps = quick ? 512 : 2048;  // b * s = 8k tokens in the full run
  const int db = 8, ds = quick ? 1024 : 8192;
  std::vector<Spec> s;
  for (DType dt : {DType::kFloat32, DType::kBFloat16})
    for (bool causal : {false, true})
      s.push_back({[=](int tiny, int t) {
        return tiny ? prefill(dt, causal, 1, 256, t) : prefill(dt, causal, pb, ps, t);
      }});
  for (bool paged : {false, true})
    s.push_back({[=](int tiny, int t) {
      return tiny ? decode(paged, 2, 64, t) : decode(paged, db, ds, t);
    }});
  // One long sequence: split-KV spreads its keys over the cores (num_splits from the heuristic).
  // 32/8 heads (GQA 4) and 64/8 (GQA 8, as Llama 3 70B: half a group a head group,
  // cpu_pack_heads).
  for (int h : {32, 64})
    s.push_back({[=](int tiny, int t) {
      // The load probe needs the same key: enough keys for the same split-KV choice.
      return tiny ? decode(false, 1, 4096, t, 0, h)
                  : decode(false, 1, quick ? 4096 : 32768, t, 0, h);
    }});
  return s;
}

// In a second process, loads each kernel from the (now warm) cache and prints the load time.
std::map<int, double> probe_load_times() {
  std::map<int, double> result;
  char exe[4096];
  const ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
  if (n <= 0) return result;
  exe[n] = '\0';
  const std::string cmd = std::string(exe) + " bench --load-probe";
  FILE* pipe = popen(cmd.c_str(), "r");
  if (!pipe) return result;
  int index;
  double ms;
  while (std::fscanf(pipe, "probe %d %lf\n", &index, &ms) == 2) result[index] = ms;
  pclose(pipe);
  return result;
}

// One timed call just after a pass of `dram` (which also leaves the call cold caches): its
// milliseconds and its rate as a fraction of that pass (0 without a probe).
struct PairedCall {
  double ms, vs_read;
};
PairedCall call_after_read(const Problem& p, const DramReadProbe* dram) {
  const double ceiling = dram ? dram->gbs() : 0, start = now_ms();
  p.call();
  const double ms = now_ms() - start;
  return {ms, ceiling > 0 ? p.work / ms / 1e6 / ceiling : 0};
}

}  // namespace

// The b1 s_k 32k decode at each of `splits` (0: the heuristic), calls interleaved round by round
// so that all counts see the same memory weather, each against the DRAM read just before it.
int run_splits_sweep(int threads, const std::vector<int>& splits) {
  threads = threads > 0 ? threads : static_cast<int>(std::thread::hardware_concurrency());
  const DramReadProbe dram(threads);
  std::vector<std::unique_ptr<Problem>> problems;
  for (int n : splits) {
    problems.push_back(decode(false, 1, 32768, threads, n));
    problems.back()->call();  // compile or load, and a warm-up
  }
  std::vector<std::vector<double>> ratios(splits.size()), rates(splits.size());
  for (int r = 0; r < 30; ++r)
    for (size_t i = 0; i < splits.size(); ++i) {
      const PairedCall c = call_after_read(*problems[i], &dram);
      rates[i].push_back(problems[i]->work / c.ms / 1e6);
      ratios[i].push_back(c.vs_read);
    }
  auto median = [](std::vector<double> x) {
    std::sort(x.begin(), x.end());
    return x[x.size() / 2];
  };
  fmt::print("decode bf16 contiguous b1 s_k32768 32/8 heads d128, {} threads, 30 rounds\n",
             threads);
  fmt::print("| num_splits | median GB/s | median % of the DRAM read just before each call |\n");
  fmt::print("|---|---|---|\n");
  for (size_t i = 0; i < splits.size(); ++i)
    fmt::print("| {} | {:.1f} | {:.0f}% |\n",
               splits[i] ? std::to_string(splits[i]) : "0 (heuristic)", median(rates[i]),
               100 * median(ratios[i]));
  return 0;
}

// The b1 decode at each s_k with warm caches: the same call 200 times, so that K/V come from
// whichever cache level holds them (s_k 2k: 8 MiB of K/V, in a 32 MiB L3). Separates the kernel's
// own pace from the DRAM stream that run_splits_sweep measures.
int run_warm_decode(int threads, const std::vector<int>& seqlens) {
  threads = threads > 0 ? threads : static_cast<int>(std::thread::hardware_concurrency());
  fmt::print("decode bf16 contiguous b1 32/8 heads d128, {} threads, warm caches, 200 calls\n",
             threads);
  fmt::print(
      "| s_k | K+V MiB | median us | p10 us | GB/s at the median |\n|---|---|---|---|---|\n");
  for (int sk : seqlens) {
    const auto p = decode(false, 1, sk, threads);
    p->call();  // compile or load, and a warm-up
    std::vector<double> us;
    for (int r = 0; r < 200; ++r) {
      const double start = now_ms();
      p->call();
      us.push_back((now_ms() - start) * 1e3);
    }
    std::sort(us.begin(), us.end());
    fmt::print("| {} | {:.0f} | {:.1f} | {:.1f} | {:.1f} |\n", sk, p->work / (1 << 20), us[100],
               us[20], p->work / us[100] / 1e3);
  }
  return 0;
}

int run_bench(bool quick, int threads, bool load_probe) {
  if (load_probe) {
    const auto all = specs(true);
    for (size_t i = 0; i < all.size(); ++i) {
      // The main run's thread count: tiles and split-KV choices (so the keys) depend on it.
      auto p = all[i].make(1, static_cast<int>(std::thread::hardware_concurrency()));
      const CacheStats before = cache_stats();
      p->call();
      const CacheStats after = cache_stats();
      const double ms = after.disk_hits > before.disk_hits ? after.load_ms - before.load_ms : -1;
      std::printf("probe %zu %.3f\n", i, ms);
    }
    return 0;
  }
  // A private, empty cache so that first calls compile and the probe's loads hit.
  char dir[] = "/tmp/flashjit-bench-XXXXXX";
  if (!mkdtemp(dir)) return 1;
  setenv("FLASHJIT_CACHE_DIR", dir, 1);
  threads = threads > 0 ? threads : static_cast<int>(std::thread::hardware_concurrency());
  const Target& target = host_cpu_target();
  const bool amx = target.has_feature("amx-bf16");
  // bf16 kernels run on AMX, else on vdpbf16ps pairs, else on fp32 FMA (codegen/tile_config.cpp).
  const bool bf16_dot = !amx && target.has_feature("avx512bf16");
  fmt::print("flashjit {} bench: {} ({}), {} threads, AMX {}, AVX-512 BF16 {}\n", version(),
             target.triple, target.cpu, threads, amx ? "on" : "off", bf16_dot ? "on" : "off");
  const std::unique_ptr<DramReadProbe> dram =
      __builtin_cpu_supports("avx512f") ? std::make_unique<DramReadProbe>(threads) : nullptr;
  const Ceilings c = measure_ceilings(threads, amx, bf16_dot, dram.get());
  fmt::print(
      "ceilings (same run, {} threads): fp32 FMA {:.0f} GFLOP/s, AMX bf16 {:.0f} GFLOP/s, "
      "bf16 dot {:.0f} GFLOP/s, DRAM read {:.1f} GB/s\n\n",
      threads, c.fp32_fma_gflops, c.amx_bf16_gflops, c.dot_bf16_gflops, c.dram_read_gbs);
  fmt::print("| problem | median ms | best ms | throughput (median) | vs ceiling | compile ms |\n");
  fmt::print("|---|---|---|---|---|---|\n");
  const auto all = specs(quick);
  std::vector<double> compile_ms;
  double fp32_noncausal = 0, bf16_noncausal = 0;
  for (size_t i = 0; i < all.size(); ++i) {
    auto p = all[i].make(0, threads);
    const CacheStats before = cache_stats();
    p->call();
    compile_ms.push_back(cache_stats().compile_ms - before.compile_ms);
    const bool is_decode = p->label.rfind("decode", 0) == 0;
    const int reps = quick ? 2 : (is_decode ? 20 : 3);
    // Decode: each call is paired with a DRAM read just before it (which also leaves the call
    // cold caches), and set against that read.
    std::vector<double> times, ratios;
    for (int r = 0; r < reps; ++r) {
      const PairedCall c = call_after_read(*p, is_decode ? dram.get() : nullptr);
      times.push_back(c.ms);
      if (c.vs_read > 0) ratios.push_back(c.vs_read);
    }
    std::sort(times.begin(), times.end());
    const double best = times.front(), median = times[times.size() / 2];
    const double rate = p->work / median / 1e6;  // GFLOP/s or GB/s
    std::string versus;
    if (is_decode && !ratios.empty()) {
      std::sort(ratios.begin(), ratios.end());
      versus = fmt::format("{:.0f}% (best {:.0f}%) of the DRAM read just before each call",
                           100 * ratios[ratios.size() / 2], 100 * ratios.back());
    } else if (p->label.find("fp32") != std::string::npos) {
      versus = fmt::format("{:.0f}% of fp32 FMA peak", 100 * rate / c.fp32_fma_gflops);
      if (p->label.find("non-causal") != std::string::npos) fp32_noncausal = rate;
    } else {
      if (amx)
        versus = fmt::format("{:.0f}% of AMX peak", 100 * rate / c.amx_bf16_gflops);
      else if (bf16_dot)
        versus = fmt::format("{:.0f}% of bf16 dot peak", 100 * rate / c.dot_bf16_gflops);
      else
        versus = fmt::format("{:.0f}% of fp32 FMA peak", 100 * rate / c.fp32_fma_gflops);
      if (p->label.find("non-causal") != std::string::npos) bf16_noncausal = rate;
    }
    fmt::print("| {} | {:.2f} | {:.2f} | {:.1f} {} | {} | {:.0f} |\n", p->label, median, best, rate,
               is_decode ? "GB/s" : "GFLOP/s", versus, compile_ms.back());
  }
  if (fp32_noncausal > 0)
    fmt::print("\nbf16 / fp32 prefill (non-causal): {:.2f}x\n", bf16_noncausal / fp32_noncausal);
  const auto loads = probe_load_times();
  fmt::print("cache-hit load time per kernel (second process, warm disk cache):");
  for (const auto& [i, ms] : loads) fmt::print(" {:.2f}", ms);
  fmt::print(" ms\n");
  std::filesystem::remove_all(dir);
  return 0;
}

}  // namespace flashjit::tools
