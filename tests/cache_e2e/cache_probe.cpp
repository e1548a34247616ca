// A process that runs one small attention call and reports, as one JSON line, whether the output
// matched a float64 reference and what the kernel cache did. The end-to-end cache tests start it
// many times, alone and concurrently, against one cache directory.
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <string>
#include <vector>

#include "flashjit/flashjit.h"

int main(int argc, char** argv) {
  const int d = argc > 1 ? std::atoi(argv[1]) : 64;  // head dim: selects the kernel
  const int h = 2, sq = 3, sk = 37;
  std::mt19937 rng(7);
  std::normal_distribution<float> normal(0.f, 1.f);
  std::vector<float> q(sq * h * d), k(sk * h * d), v(sk * h * d), out(sq * h * d, NAN);
  for (auto* t : {&q, &k, &v})
    for (float& x : *t) x = normal(rng);
  bool ok = true;
  std::string error;
  try {
    flashjit::KvcacheArgs a;
    a.q = flashjit::Tensor::contiguous(q.data(), flashjit::DType::kFloat32, {1, sq, h, d});
    a.k_cache = flashjit::Tensor::contiguous(k.data(), flashjit::DType::kFloat32, {1, sk, h, d});
    a.v_cache = flashjit::Tensor::contiguous(v.data(), flashjit::DType::kFloat32, {1, sk, h, d});
    a.out = flashjit::Tensor::contiguous(out.data(), flashjit::DType::kFloat32, {1, sq, h, d});
    a.causal = true;
    flashjit::flash_attn_with_kvcache(a);
    for (int i = 0; i < sq; ++i)
      for (int hh = 0; hh < h; ++hh) {
        const int last = sk - sq + i;  // bottom-right causal
        std::vector<double> p(last + 1);
        double m = -INFINITY, z = 0;
        for (int j = 0; j <= last; ++j) {
          double s = 0;
          for (int e = 0; e < d; ++e)
            s += double{q[(i * h + hh) * d + e]} * k[(j * h + hh) * d + e];
          p[j] = s / std::sqrt(double(d));
          m = std::max(m, p[j]);
        }
        for (double& x : p) z += (x = std::exp(x - m));
        for (int e = 0; e < d; ++e) {
          double o = 0;
          for (int j = 0; j <= last; ++j) o += p[j] / z * v[(j * h + hh) * d + e];
          if (!(std::abs(o - out[(i * h + hh) * d + e]) < 1e-4)) ok = false;
        }
      }
  } catch (const flashjit::Error& e) {
    ok = false;
    error = e.what();
  }
  const flashjit::CacheStats s = flashjit::cache_stats();
  std::printf(
      "{\"ok\": %s, \"compiles\": %lld, \"disk_hits\": %lld, \"misses\": %lld, \"corrupt\": %lld, "
      "\"write_errors\": %lld, \"lock_timeouts\": %lld, \"load_ms\": %.3f, \"error\": \"%zu\"}\n",
      ok ? "true" : "false", (long long)s.compiles, (long long)s.disk_hits, (long long)s.misses,
      (long long)s.corrupt_entries, (long long)s.write_errors, (long long)s.lock_timeouts,
      s.load_ms, error.size());
  if (!error.empty()) std::fprintf(stderr, "%s\n", error.c_str());
  return ok ? 0 : 1;
}
