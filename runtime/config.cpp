// Parses the FLASHJIT_* environment variables once.
#include "runtime/config.h"

#include <cstdio>
#include <cstdlib>
#include <sstream>
#include <string>

#include "cache/disk_cache.h"

namespace flashjit {
namespace {

bool env_flag(const char* name) {
  const char* v = std::getenv(name);
  return v && *v && std::string(v) != "0";
}

int env_int(const char* name, int fallback) {
  const char* v = std::getenv(name);
  if (!v || !*v) return fallback;
  char* end = nullptr;
  const long n = std::strtol(v, &end, 10);
  return (end && *end == '\0' && n >= 0 && n < (1 << 30)) ? static_cast<int>(n) : fallback;
}

JitConfig read_config() {
  JitConfig c;
  c.cache_dir = cache::default_cache_root();
  c.disable_jit = env_flag("FLASHJIT_DISABLE_JIT");
  c.validate = env_flag("FLASHJIT_VALIDATE");
  c.num_threads = env_int("FLASHJIT_NUM_THREADS", 0);
  c.lock_timeout_ms = env_int("FLASHJIT_LOCK_TIMEOUT_MS", c.lock_timeout_ms);
  c.verbose = env_flag("FLASHJIT_VERBOSE");
  if (const char* d = std::getenv("FLASHJIT_DUMP_DIR")) c.dump_dir = d;
  c.disable_amx = env_flag("FLASHJIT_DISABLE_AMX");
  c.disable_bf16_dot = env_flag("FLASHJIT_DISABLE_BF16_DOT");
  if (const char* t = std::getenv("FLASHJIT_CUDA_TILES")) {
    const int n = std::sscanf(t, "%d,%d,%d,%d", &c.cuda_block_m, &c.cuda_block_n, &c.cuda_num_warps,
                              &c.cuda_num_stages);
    if (n < 3) c.cuda_block_m = c.cuda_block_n = c.cuda_num_warps = 0;
    if (n < 4) c.cuda_num_stages = 0;
  }
  c.cuda_causal_section = env_int("FLASHJIT_CUDA_CAUSAL_SECTION", 0);
  if (const char* o = std::getenv("FLASHJIT_NVRTC_OPTIONS")) {
    std::istringstream words(o);
    for (std::string w; words >> w;) c.nvrtc_options.push_back(w);
  }
  return c;
}

}  // namespace

const JitConfig& jit_config() {
  static const JitConfig config = read_config();
  return config;
}

}  // namespace flashjit
