// Process-wide settings read once from the environment (FLASHJIT_*), never on the call path.
#pragma once

#include <functional>
#include <string>
#include <vector>

namespace flashjit {

struct JitConfig {
  std::string cache_dir;          // FLASHJIT_CACHE_DIR (else XDG / home default; "" = memory only)
  bool disable_jit = false;       // FLASHJIT_DISABLE_JIT=1: a cache miss is an error
  bool validate = false;          // FLASHJIT_VALIDATE=1: check index values on every call
  int num_threads = 0;            // FLASHJIT_NUM_THREADS (0 = hardware concurrency)
  int lock_timeout_ms = 120000;   // FLASHJIT_LOCK_TIMEOUT_MS: wait for another process's compile
  bool verbose = false;           // FLASHJIT_VERBOSE=1: one line per compile / load on stderr
  std::string dump_dir;           // FLASHJIT_DUMP_DIR: write each generated source there
  bool disable_amx = false;       // FLASHJIT_DISABLE_AMX=1: never use AMX tiles
  bool disable_bf16_dot = false;  // FLASHJIT_DISABLE_BF16_DOT=1: no vdpbf16ps (bf16 on fp32 FMA)
  // FLASHJIT_CUDA_TILES="block_m,block_n,num_warps[,num_stages]": replaces the CUDA tile heuristic
  // (for tuning experiments; an unsupported combination fails the call with a clear error).
  int cuda_block_m = 0, cuda_block_n = 0, cuda_num_warps = 0, cuda_num_stages = 0;
  // FLASHJIT_CUDA_CAUSAL_SECTION=n: (sequence, head group) slots per section of a causal CUDA
  // grid's longest-first order instead of about a wave of tiles (for tuning experiments; 0 = off).
  int cuda_causal_section = 0;
  // FLASHJIT_CUDA_ARCH=compute_80 (or sm_XY, compute_XY[a]): the arch CUDA kernels are built for
  // instead of the device's own; a compute_ arch builds PTX that the driver compiles on load. It
  // runs the code of older GPUs on a newer one, or kernels on a GPU newer than this toolkit knows.
  // An arch whose kernels cannot run on the device fails each CUDA call, naming both.
  std::string cuda_arch;
  // FLASHJIT_NVRTC_OPTIONS="opt ...": NVRTC options appended to flashjit's own, split at
  // whitespace (compile-time experiments such as --ptxas-options=-O1). They are part of the cache
  // digest, so kernels built with and without them never share an entry.
  std::vector<std::string> nvrtc_options;
};

// The settings of the environment `getenv` reads. A value that does not parse keeps its default
// and adds a line to `warnings` naming the variable, the expected form and the value.
using EnvLookup = std::function<const char*(const char*)>;
JitConfig parse_config(const EnvLookup& getenv, std::vector<std::string>& warnings);

// The process's settings, parsed on first use; their warnings go to stderr then, once.
const JitConfig& jit_config();

}  // namespace flashjit
