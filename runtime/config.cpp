// Parses the FLASHJIT_* environment variables once. A value that does not parse keeps the default
// and says so on stderr: a typo such as FLASHJIT_VALIDATE=ture must not pass unnoticed.
#include "runtime/config.h"

#include <cstdio>
#include <cstdlib>
#include <functional>
#include <sstream>
#include <string>

#include "cache/disk_cache.h"
#include "codegen/cuda_arch.h"

namespace flashjit {
namespace {

struct EnvReader {
  const EnvLookup& getenv;
  std::vector<std::string>& warnings;

  void warn(const char* name, const char* value, const char* expected, const std::string& kept) {
    warnings.push_back(std::string(name) + ": expected " + expected + ", got \"" + value +
                       "\"; keeping " + kept);
  }

  bool flag(const char* name) {
    const char* v = getenv(name);
    if (!v || !*v) return false;
    const std::string s(v);
    if (s == "1" || s == "true" || s == "on" || s == "yes") return true;
    if (s == "0" || s == "false" || s == "off" || s == "no") return false;
    warn(name, v, "1/true/on/yes or 0/false/off/no", "off");
    return false;
  }

  // The whole of `text` as a non-negative integer below 2^30, else -1.
  static int parse_int(const std::string& text) {
    if (text.empty() || text.size() > 10) return -1;
    long n = 0;
    for (char ch : text) {
      if (ch < '0' || ch > '9') return -1;
      n = n * 10 + (ch - '0');
    }
    return n < (1L << 30) ? static_cast<int>(n) : -1;
  }

  int integer(const char* name, int fallback) {
    const char* v = getenv(name);
    if (!v || !*v) return fallback;
    if (const int n = parse_int(v); n >= 0) return n;
    warn(name, v, "an integer from 0 to 2^30 - 1", std::to_string(fallback));
    return fallback;
  }

  // Comma-separated integers (each as parse_int); empty where any one does not parse.
  static std::vector<int> integers(const std::string& text) {
    std::vector<int> out;
    std::istringstream parts(text + ",");
    for (std::string part; std::getline(parts, part, ',');) {
      const int n = parse_int(part);
      if (n < 0) return {};
      out.push_back(n);
    }
    return out;
  }
};

}  // namespace

JitConfig parse_config(const EnvLookup& getenv, std::vector<std::string>& warnings) {
  EnvReader env{getenv, warnings};
  JitConfig c;
  c.cache_dir = cache::default_cache_root();
  c.disable_jit = env.flag("FLASHJIT_DISABLE_JIT");
  c.validate = env.flag("FLASHJIT_VALIDATE");
  c.num_threads = env.integer("FLASHJIT_NUM_THREADS", 0);
  c.lock_timeout_ms = env.integer("FLASHJIT_LOCK_TIMEOUT_MS", c.lock_timeout_ms);
  c.verbose = env.flag("FLASHJIT_VERBOSE");
  if (const char* d = getenv("FLASHJIT_DUMP_DIR")) c.dump_dir = d;
  c.disable_amx = env.flag("FLASHJIT_DISABLE_AMX");
  c.disable_bf16_dot = env.flag("FLASHJIT_DISABLE_BF16_DOT");
  if (const char* t = getenv("FLASHJIT_CUDA_TILES"); t && *t) {
    const std::vector<int> v = env.integers(t);
    if (v.size() == 3 || v.size() == 4) {
      c.cuda_block_m = v[0];
      c.cuda_block_n = v[1];
      c.cuda_num_warps = v[2];
      c.cuda_num_stages = v.size() == 4 ? v[3] : 0;
    } else {
      env.warn("FLASHJIT_CUDA_TILES", t, "block_m,block_n,num_warps[,num_stages]",
               "the tile heuristic");
    }
  }
  c.cuda_causal_section = env.integer("FLASHJIT_CUDA_CAUSAL_SECTION", 0);
  if (const char* a = getenv("FLASHJIT_CUDA_ARCH"); a && *a) {
    if (parse_cuda_arch(a))
      c.cuda_arch = a;
    else
      env.warn("FLASHJIT_CUDA_ARCH", a, "sm_XY, sm_XYa, compute_XY or compute_XYa",
               "the device's arch");
  }
  if (const char* o = getenv("FLASHJIT_NVRTC_OPTIONS")) {
    std::istringstream words(o);
    for (std::string w; words >> w;) c.nvrtc_options.push_back(w);
  }
  return c;
}

const JitConfig& jit_config() {
  static const JitConfig config = [] {
    std::vector<std::string> warnings;
    JitConfig c = parse_config([](const char* name) { return std::getenv(name); }, warnings);
    for (const std::string& w : warnings)
      std::fprintf(stderr, "flashjit: warning: %s\n", w.c_str());
    return c;
  }();
  return config;
}

}  // namespace flashjit
