// flashjit_cuda_bench: flashjit's CUDA kernels on the shapes of docs/PERF.md, timed with CUDA
// events (median of 20 runs after 3 warm-ups, L2 cleared before each), one JSON line per result for
// tools/bench_report.py, which sets them beside the PyTorch peers of tools/bench_peers.py.
// --quick: smaller; --prefill-only; --decode-only; --append-only (the decode steps with append +
// rotary through a plan); --splits-sweep: decode rows for every num_splits too; --d N: one head
// dim (80, 96 and 192 only so), --dv M with it: head_dim_v M; --load-probe: (internal) report
// cache-hit load times from a warm cache (every run ends with it). Environment:
// FLASHJIT_BENCH_SCRUB, FLASHJIT_BENCH_DECODE_SHAPES (below), FLASHJIT_BENCH_PREFILL_API=kvcache
// (prefill through flash_attn_with_kvcache on dense tensors instead of flash_attn_varlen, the
// default "varlen").
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include "flashjit/flashjit.h"
#include "runtime/cuda_api.h"
#include "runtime/cuda_device.h"

namespace {

using flashjit::DType;
using flashjit::Tensor;
const flashjit::Device kGpu{flashjit::DeviceType::kCUDA, 0};

#define CU(call) ::flashjit::cuda::check(::flashjit::cuda::driver()->call, #call)

// A device buffer of n bf16 values: a 16M-element random block (N(0, 1)) repeated.
struct DeviceBuffer {
  CUdeviceptr ptr = 0;
  size_t bytes = 0;
  DeviceBuffer(size_t b, bool random) : bytes(b) {
    CU(cuMemAlloc(&ptr, std::max<size_t>(b, 256)));
    if (!random) return;
    static const std::vector<uint16_t> block = [] {
      std::vector<uint16_t> v(size_t{1} << 24);
      std::mt19937 rng(1);
      std::normal_distribution<float> normal(0.f, 1.f);
      for (uint16_t& x : v) {
        const float f = normal(rng);
        uint32_t w;
        std::memcpy(&w, &f, 4);
        x = static_cast<uint16_t>(w >> 16);
      }
      return v;
    }();
    for (size_t off = 0; off < b; off += block.size() * 2)
      CU(cuMemcpyHtoD(ptr + off, block.data(), std::min(block.size() * 2, b - off)));
  }
  ~DeviceBuffer() { flashjit::cuda::driver()->cuMemFree(ptr); }
  void* data() const { return reinterpret_cast<void*>(ptr); }
};

DeviceBuffer int_buffer(const std::vector<int32_t>& host) {
  DeviceBuffer b(host.size() * 4, false);
  CU(cuMemcpyHtoD(b.ptr, host.data(), host.size() * 4));
  return b;
}

// Environment variable `name`: `fallback` when unset or empty; a value other than `fallback` and
// `alternative` stops the bench with a message rather than measuring something else.
std::string env_choice(const char* name, const char* fallback, const char* alternative) {
  const char* e = std::getenv(name);
  if (!e || !*e) return fallback;
  if (std::strcmp(e, fallback) != 0 && std::strcmp(e, alternative) != 0) {
    std::fprintf(stderr, "%s: expected %s or %s, got %s\n", name, fallback, alternative, e);
    std::exit(2);
  }
  return e;
}

// Triton's do_bench (the peers' timer) clears the L2 before every timed call; so does this one,
// so that a KV cache smaller than the L2 (B=1 x 8k is 34 MB, the H200's L2 50 MB) is read from
// DRAM as in serving, where other layers' caches evict it.
// FLASHJIT_BENCH_SCRUB=read instead reads 256 MiB (a flashjit decode over a 256 MiB cache), which
// leaves the L2 full of clean lines: a memset leaves it dirty, and the timed kernel then pays for
// writing those lines back.
bool scrub_by_read() { return env_choice("FLASHJIT_BENCH_SCRUB", "write", "read") == "read"; }

std::string prefill_api() { return env_choice("FLASHJIT_BENCH_PREFILL_API", "varlen", "kvcache"); }

struct L2Scrub {
  DeviceBuffer buf{size_t{256} << 20, false};
  bool read = scrub_by_read();
  DeviceBuffer q{32 * 128 * 2, false}, o{32 * 128 * 2, false};
  L2Scrub() { CU(cuMemsetD8(buf.ptr, 0, buf.bytes)); }
  void operator()(CUstream stream) const {
    if (!read) {
      CU(cuMemsetD32Async(buf.ptr, 0, buf.bytes / 4, stream));
      return;
    }
    const int64_t sk = static_cast<int64_t>(buf.bytes) / 2 / (8 * 128 * 2);
    char* kv = static_cast<char*>(buf.data());
    flashjit::KvcacheArgs a;
    a.q = Tensor::contiguous(q.data(), DType::kBFloat16, {1, 1, 32, 128}, kGpu);
    a.out = Tensor::contiguous(o.data(), DType::kBFloat16, {1, 1, 32, 128}, kGpu);
    a.k_cache = Tensor::contiguous(kv, DType::kBFloat16, {1, sk, 8, 128}, kGpu);
    a.v_cache = Tensor::contiguous(kv + buf.bytes / 2, DType::kBFloat16, {1, sk, 8, 128}, kGpu);
    a.num_splits = 0;
    a.options.stream = stream;
    flashjit::flash_attn_with_kvcache(a);
  }
};

const L2Scrub& l2_scrub() {
  static const L2Scrub scrub;  // one buffer for every timer
  return scrub;
}

template <typename F>
double median_ms(F&& fn, int reps, CUstream stream = nullptr) {
  const L2Scrub& scrub = l2_scrub();
  for (int i = 0; i < 3; ++i) fn();
  CUevent start, stop;
  CU(cuEventCreate(&start, CU_EVENT_DEFAULT));
  CU(cuEventCreate(&stop, CU_EVENT_DEFAULT));
  std::vector<float> t;
  for (int i = 0; i < reps; ++i) {
    scrub(stream);
    CU(cuEventRecord(start, stream));
    fn();
    CU(cuEventRecord(stop, stream));
    CU(cuEventSynchronize(stop));
    float ms = 0;
    CU(cuEventElapsedTime(&ms, start, stop));
    t.push_back(ms);
  }
  CU(cuEventDestroy(start));
  CU(cuEventDestroy(stop));
  std::sort(t.begin(), t.end());
  return t[t.size() / 2];
}

// The copy ceiling at one size: a device-to-device copy that moves `bytes` in all (bytes / 2
// read, bytes / 2 written), timed like the kernels, in TB/s. A decode call that reads `bytes`
// is compared with it as well as with the 2 GiB copy of bench_peers.py: a copy's rate depends on
// its size (ramp-up and tail of one short wave), and this one moves the same traffic.
double copy_tbps(double bytes, int reps) {
  const size_t half = static_cast<size_t>(bytes / 2) / 16 * 16;
  DeviceBuffer src(half, false), dst(half, false);
  const double ms =
      median_ms([&] { CU(cuMemcpyDtoDAsync(dst.ptr, src.ptr, half, nullptr)); }, reps);
  return 2.0 * half / ms / 1e9;
}

// Runs fn once and reports how its kernel was obtained (compile or cache-hit load).
template <typename F>
void first_call(const std::string& label, F&& fn, bool probe) {
  const flashjit::CacheStats before = flashjit::cache_stats();
  fn();
  CU(cuCtxSynchronize());
  const flashjit::CacheStats after = flashjit::cache_stats();
  if (probe) {
    std::printf("{\"kind\": \"load\", \"key\": \"%s\", \"load_ms\": %.3f}\n", label.c_str(),
                after.disk_hits > before.disk_hits ? after.load_ms - before.load_ms : -1.0);
  } else if (after.compiles > before.compiles) {
    std::printf("{\"kind\": \"compile\", \"key\": \"%s\", \"compile_ms\": %.1f}\n", label.c_str(),
                after.compile_ms - before.compile_ms);
  }
}

void prefill(int d, int dv, int s, int b, int h, int hk, bool causal, bool probe, int reps) {
  const int64_t total = int64_t{b} * s;
  DeviceBuffer q(total * h * d * 2, true), k(total * hk * d * 2, true),
      v(total * hk * dv * 2, true), o(total * h * dv * 2, false);
  std::vector<int32_t> cu(b + 1);
  for (int i = 0; i <= b; ++i) cu[i] = i * s;
  DeviceBuffer cu_d = int_buffer(cu);
  flashjit::VarlenArgs a;
  a.q = Tensor::contiguous(q.data(), DType::kBFloat16, {total, h, d}, kGpu);
  a.k = Tensor::contiguous(k.data(), DType::kBFloat16, {total, hk, d}, kGpu);
  a.v = Tensor::contiguous(v.data(), DType::kBFloat16, {total, hk, dv}, kGpu);
  a.out = Tensor::contiguous(o.data(), DType::kBFloat16, {total, h, dv}, kGpu);
  a.cu_seqlens_q = a.cu_seqlens_k = Tensor::contiguous(cu_d.data(), DType::kInt32, {b + 1}, kGpu);
  a.max_seqlen_q = a.max_seqlen_k = s;
  a.causal = causal;
  // The same batch as dense (b, s, h, d) tensors through flash_attn_with_kvcache (a contiguous
  // cache of s keys per sequence): SDPA's layout, with no per-sequence lengths to read.
  flashjit::KvcacheArgs dense;
  dense.q = Tensor::contiguous(q.data(), DType::kBFloat16, {b, s, h, d}, kGpu);
  dense.k_cache = Tensor::contiguous(k.data(), DType::kBFloat16, {b, s, hk, d}, kGpu);
  dense.v_cache = Tensor::contiguous(v.data(), DType::kBFloat16, {b, s, hk, dv}, kGpu);
  dense.out = Tensor::contiguous(o.data(), DType::kBFloat16, {b, s, h, dv}, kGpu);
  dense.causal = causal;
  dense.num_splits = 1;
  const bool use_dense = prefill_api() == "kvcache";
  auto run = [&] {
    if (use_dense)
      flashjit::flash_attn_with_kvcache(dense);
    else
      flashjit::flash_attn_varlen(a);
  };
  std::string label = "prefill d" + std::to_string(d);
  if (dv != d) label.append("x").append(std::to_string(dv));
  if (causal) label.append(" causal");
  first_call(label, run, probe);
  if (probe) return;
  const double ms = median_ms(run, reps);
  const double flops = 2.0 * b * h * double(s) * s * (d + dv) / (causal ? 2 : 1);
  std::printf(
      "{\"kind\": \"prefill\", \"D\": %d, \"DV\": %d, \"S\": %d, \"B\": %d, \"H\": %d, "
      "\"Hk\": %d, \"causal\": %s, \"tflops\": %.1f, \"ms\": %.4f}\n",
      d, dv, s, b, h, hk, causal ? "true" : "false", flops / ms / 1e9, ms);
  std::fflush(stdout);
}

void decode(int b, int sk, int page, bool probe, int reps, int num_splits) {
  const int h = 32, hk = 8, d = 128;
  const int pages_per_seq = (sk + page - 1) / page, pages = b * pages_per_seq;
  DeviceBuffer q(int64_t{b} * h * d * 2, true), o(int64_t{b} * h * d * 2, false);
  DeviceBuffer k(int64_t{pages} * page * hk * d * 2, true),
      v(int64_t{pages} * page * hk * d * 2, true);
  std::vector<int32_t> table(pages), lens(b, sk);
  std::iota(table.begin(), table.end(), 0);
  std::shuffle(table.begin(), table.end(), std::mt19937(2));
  DeviceBuffer table_d = int_buffer(table), lens_d = int_buffer(lens);
  flashjit::KvcacheArgs a;
  a.q = Tensor::contiguous(q.data(), DType::kBFloat16, {b, 1, h, d}, kGpu);
  a.k_cache = Tensor::contiguous(k.data(), DType::kBFloat16, {pages, page, hk, d}, kGpu);
  a.v_cache = Tensor::contiguous(v.data(), DType::kBFloat16, {pages, page, hk, d}, kGpu);
  a.page_table = Tensor::contiguous(table_d.data(), DType::kInt32, {b, pages_per_seq}, kGpu);
  a.cache_seqlens = Tensor::contiguous(lens_d.data(), DType::kInt32, {b}, kGpu);
  a.out = Tensor::contiguous(o.data(), DType::kBFloat16, {b, 1, h, d}, kGpu);
  a.num_splits = num_splits;
  first_call(
      "decode page" + std::to_string(page), [&] { flashjit::flash_attn_with_kvcache(a); }, probe);
  if (probe) return;
  const double ms = median_ms([&] { flashjit::flash_attn_with_kvcache(a); }, reps);
  const double bytes = 2.0 * b * double(sk) * hk * d * 2;
  std::printf(
      "{\"kind\": \"decode\", \"B\": %d, \"Sk\": %d, \"H\": %d, \"Hk\": %d, \"D\": %d, \"page\": "
      "%d, \"num_splits\": %d, \"tbps\": %.3f, \"ms\": %.4f, \"copy_tbps\": %.3f}\n",
      b, sk, h, hk, d, page, num_splits, bytes / ms / 1e9, ms, copy_tbps(bytes, reps));
  std::fflush(stdout);
}

// A serving decode step: one new token per sequence appended (rotated, GPT-NeoX over the whole
// head) and attended to, launched through a plan with a preallocated workspace.
void decode_append(int b, int sk, int page, int reps, int num_splits) {
  const int h = 32, hk = 8, d = 128;
  const int pages_per_seq = (sk + page - 1) / page, pages = b * pages_per_seq;
  DeviceBuffer q(int64_t{b} * h * d * 2, true), o(int64_t{b} * h * d * 2, false);
  DeviceBuffer kn(int64_t{b} * hk * d * 2, true), vn(int64_t{b} * hk * d * 2, true);
  DeviceBuffer k(int64_t{pages} * page * hk * d * 2, true),
      v(int64_t{pages} * page * hk * d * 2, true);
  DeviceBuffer cos(int64_t{sk} * d, true), sin(int64_t{sk} * d, true);
  std::vector<int32_t> table(pages), lens(b, sk - 1);
  std::iota(table.begin(), table.end(), 0);
  std::shuffle(table.begin(), table.end(), std::mt19937(2));
  DeviceBuffer table_d = int_buffer(table), lens_d = int_buffer(lens);
  flashjit::KvcacheArgs a;
  a.q = Tensor::contiguous(q.data(), DType::kBFloat16, {b, 1, h, d}, kGpu);
  a.k_cache = Tensor::contiguous(k.data(), DType::kBFloat16, {pages, page, hk, d}, kGpu);
  a.v_cache = Tensor::contiguous(v.data(), DType::kBFloat16, {pages, page, hk, d}, kGpu);
  a.k = Tensor::contiguous(kn.data(), DType::kBFloat16, {b, 1, hk, d}, kGpu);
  a.v = Tensor::contiguous(vn.data(), DType::kBFloat16, {b, 1, hk, d}, kGpu);
  a.rotary_cos = Tensor::contiguous(cos.data(), DType::kBFloat16, {sk, d / 2}, kGpu);
  a.rotary_sin = Tensor::contiguous(sin.data(), DType::kBFloat16, {sk, d / 2}, kGpu);
  a.rotary_interleaved = false;
  a.causal = true;
  a.page_table = Tensor::contiguous(table_d.data(), DType::kInt32, {b, pages_per_seq}, kGpu);
  a.cache_seqlens = Tensor::contiguous(lens_d.data(), DType::kInt32, {b}, kGpu);
  a.out = Tensor::contiguous(o.data(), DType::kBFloat16, {b, 1, h, d}, kGpu);
  a.num_splits = num_splits;
  const flashjit::AttentionPlan plan(a);
  DeviceBuffer workspace(plan.workspace_bytes(), false);
  // Timed as a serving engine runs decode: the step captured once into a CUDA graph, replayed.
  CUstream stream;
  CU(cuStreamCreate(&stream, CU_STREAM_NON_BLOCKING));
  a.options.stream = stream;
  CUgraph graph;
  CUgraphExec exec;
  CU(cuStreamBeginCapture(stream, CU_STREAM_CAPTURE_MODE_GLOBAL));
  plan.run(a, workspace.data());
  CU(cuStreamEndCapture(stream, &graph));
  CU(cuGraphInstantiate(&exec, graph, 0));
  const double ms = median_ms([&] { CU(cuGraphLaunch(exec, stream)); }, reps, stream);
  // The host cost of one plain (uncaptured) plan run, for the record.
  CU(cuStreamSynchronize(stream));
  const auto t0 = std::chrono::steady_clock::now();
  for (int i = 0; i < 100; ++i) plan.run(a, workspace.data());
  const double host_us =
      std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t0).count() /
      100;
  CU(cuStreamSynchronize(stream));
  CU(cuGraphExecDestroy(exec));
  CU(cuGraphDestroy(graph));
  CU(cuStreamDestroy(stream));
  const double bytes = 2.0 * b * double(sk) * hk * d * 2;
  std::printf(
      "{\"kind\": \"decode_append\", \"B\": %d, \"Sk\": %d, \"H\": %d, \"Hk\": %d, \"D\": %d, "
      "\"page\": %d, \"num_splits\": %d, \"tbps\": %.3f, \"ms\": %.4f, \"host_us\": %.1f, "
      "\"copy_tbps\": %.3f}\n",
      b, sk, h, hk, d, page, plan.num_splits(), bytes / ms / 1e9, ms, host_us,
      copy_tbps(bytes, reps));
  std::fflush(stdout);
}

}  // namespace

int main(int argc, char** argv) {
  bool quick = false, probe = false, prefill_only = false, decode_only = false, append_only = false;
  bool splits_sweep = false;
  int only_d = 0, only_dv = 0;  // --d N [--dv M]: one head dim (head_dim_v M)
  for (int i = 1; i < argc; ++i) {
    quick |= std::strcmp(argv[i], "--quick") == 0;
    probe |= std::strcmp(argv[i], "--load-probe") == 0;
    prefill_only |= std::strcmp(argv[i], "--prefill-only") == 0;
    decode_only |= std::strcmp(argv[i], "--decode-only") == 0;
    append_only |= std::strcmp(argv[i], "--append-only") == 0;
    splits_sweep |= std::strcmp(argv[i], "--splits-sweep") == 0;
    if (std::strcmp(argv[i], "--d") == 0 && i + 1 < argc) only_d = std::atoi(argv[++i]);
    if (std::strcmp(argv[i], "--dv") == 0 && i + 1 < argc) only_dv = std::atoi(argv[++i]);
  }
  std::string why;
  if (!flashjit::cuda::driver(&why)) {
    std::fprintf(stderr, "flashjit_cuda_bench: no CUDA driver: %s\n", why.c_str());
    return 1;
  }
  char dir[] = "/tmp/flashjit-cuda-bench-XXXXXX";
  if (!probe) {
    if (!mkdtemp(dir)) return 1;
    setenv("FLASHJIT_CACHE_DIR", dir, 1);  // a fresh cache: first calls compile
    // The arch the kernels are built for: the device's, or FLASHJIT_CUDA_ARCH's.
    std::string arch;
    try {
      arch = flashjit::cuda_arch(0);
    } catch (const flashjit::Error& e) {
      std::fprintf(stderr, "%s\n", e.what());
      return 1;
    }
    std::printf(
        "{\"kind\": \"meta\", \"scrub\": \"%s\", \"prefill_api\": \"%s\", \"arch\": \"%s\"}\n",
        scrub_by_read() ? "read" : "write", prefill_api().c_str(), arch.c_str());
  }
  CUdevice dev;
  CUcontext ctx;
  CU(cuDeviceGet(&dev, 0));
  CU(cuDevicePrimaryCtxRetain(&ctx, dev));
  CU(cuCtxSetCurrent(ctx));
  const int reps = quick ? 5 : 20;
  try {
    // d 80, 96 and 192 only when asked for with --d (the table has 64, 128 and 256).
    for (int d : {64, 80, 96, 128, 192, 256})
      for (int s : {1024, 4096, 16384}) {
        const bool in_table = d == 64 || d == 128 || d == 256;
        if ((quick && s > 1024) || (only_d ? d != only_d : !in_table) || decode_only || append_only)
          continue;
        for (bool causal : {false, true})
          prefill(d, only_dv ? only_dv : d, probe ? 128 : s, probe ? 1 : 16384 / s, 2048 / d,
                  2048 / d, causal, probe, reps);
        if (probe) break;
      }
    if (!probe && !decode_only && !append_only && (!only_d || only_d == 128))
      prefill(128, 128, 4096, 4, 32, 8, true, false, reps);
    if (!probe && !prefill_only)
      for (auto [b, sk] : std::vector<std::pair<int, int>>{
               {1, 8192}, {1, 32768}, {8, 8192}, {64, 4096}, {128, 8192}}) {
        decode_append(b, sk, 16, reps, 0);
        if (splits_sweep)
          for (int n : {1, 2, 4, 8, 16, 32, 64, 128}) decode_append(b, sk, 16, reps, n);
      }
    std::vector<std::pair<int, int>> shapes = {
        {1, 8192}, {8, 8192}, {64, 4096}, {128, 8192}, {16, 32768}};
    // FLASHJIT_BENCH_DECODE_SHAPES="B:SK,B:SK,...": other decode shapes (e.g. to separate a fixed
    // cost from the streaming rate).
    if (const char* e = std::getenv("FLASHJIT_BENCH_DECODE_SHAPES")) {
      shapes.clear();
      for (const char* c = e; *c;) {
        int b = 0, sk = 0, used = 0;
        if (std::sscanf(c, "%d:%d%n", &b, &sk, &used) != 2 || b < 1 || sk < 1) break;
        shapes.emplace_back(b, sk);
        c += used;
        if (*c == ',') ++c;
      }
    }
    if (prefill_only || append_only) shapes.clear();
    for (int page : {16, 64})
      for (auto [b, sk] : shapes) {
        if (quick && b * int64_t{sk} > 8 * 8192) continue;
        decode(b, sk, page, probe, reps, 0);  // the probe loads the first shape's kernel (same key)
        if (probe) break;
        if (splits_sweep)
          for (int n : {1, 2, 4, 8, 16, 32, 64, 128}) decode(b, sk, page, false, reps, n);
      }
  } catch (const flashjit::Error& e) {
    std::fprintf(stderr, "%s\n", e.what());
    return 1;
  }
  if (!probe) {
    // Cache-hit loads, in a second process on the now warm cache.
    char exe[4096];
    const ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
    if (n > 0) {
      exe[n] = '\0';
      std::fflush(stdout);
      // The probe takes this run's options, so that it loads kernels this run compiled.
      std::string command = std::string(exe) + " --load-probe";
      for (int i = 1; i < argc; ++i) command += std::string(" ") + argv[i];
      const int rc = std::system(command.c_str());
      (void)rc;
    }
  }
  return 0;
}
