// Every axis of the CUDA kernel key compiles under NVRTC, for sm_80 and sm_90a (and sm_86 where
// its tiles differ), with the default tiles, and ptxas reports no local-memory spills and
// registers within the limit. Runs without a GPU. FLASHJIT_TEST_LEVEL=2 compiles the full cross
// product of dtype x head dims x flags.
#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>
#include <string>
#include <vector>

#include "cache/sha256.h"
#include "codegen/generate_source.h"
#include "codegen/tile_config.h"
#include "flashjit/error.h"
#include "runtime/config.h"
#include "runtime/cuda_api.h"
#include "runtime/cuda_compiler.h"

namespace flashjit {
namespace {

int test_level() {
  const char* env = std::getenv("FLASHJIT_TEST_LEVEL");
  return env && *env ? std::atoi(env) : FLASHJIT_TEST_LEVEL;
}

struct CudaCase {
  KernelKey key;
  std::string name;
};

// The key with the default tiles for its flags.
KernelKey tiled(KernelKey k, int rows, int batch = 1) {
  TileProblem tp;
  tp.rows = rows;
  tp.batch = batch;
  const TileConfig t = default_cuda_tiles(k, tp);
  k.block_m = t.block_m;
  k.block_n = t.block_n;
  k.num_warps = t.num_warps;
  k.num_stages = t.num_stages;
  return k;
}

KernelKey cuda_key(const std::string& arch, DType dtype, int d, int dv, int rows) {
  KernelKey k;
  k.backend = Backend::kCuda;
  k.target = Target{"nvptx64-nvidia-cuda", arch, ""};
  k.dtype_q = k.dtype_kv = k.dtype_o = dtype;
  k.head_dim_qk = d;
  k.head_dim_v = dv;
  return tiled(k, rows);
}

std::vector<CudaCase> cases() {
  std::vector<CudaCase> out;
  auto add = [&](KernelKey k) {
    k = k.canonicalize();
    std::string name = k.name();
    for (char& c : name)
      if (c == '-') c = '_';
    for (const CudaCase& c : out)
      if (c.name == name) return;  // level 2 repeats the level-1 keys
    out.push_back({k, name});
  };
  const std::vector<std::pair<int, int>> dims = {{64, 64},   {80, 80},   {96, 96},  {128, 128},
                                                 {192, 192}, {256, 256}, {192, 128}};
  for (const char* arch : {"sm_80", "sm_90a"}) {
    // Every head dim and dtype, prefill- and decode-shaped.
    for (auto [d, dv] : dims)
      for (DType dt : {DType::kBFloat16, DType::kFloat16}) {
        add(cuda_key(arch, dt, d, dv, 4096));
        add(cuda_key(arch, dt, d, dv, 4));
      }
    // Every flag once, on bf16 d128 prefill tiles.
    const std::vector<bool KernelKey::*> flags = {
        &KernelKey::causal,    &KernelKey::local,    &KernelKey::chunked,  &KernelKey::softcap,
        &KernelKey::sinks,     &KernelKey::paged_kv, &KernelKey::varlen_q, &KernelKey::varlen_k,
        &KernelKey::seqused_k, &KernelKey::lse,      &KernelKey::pack_gqa, &KernelKey::split_kv,
        &KernelKey::append_kv, &KernelKey::leftpad,  &KernelKey::rotary};
    // What a flag needs alongside (append, left padding and rotary are KV-cache features).
    auto with_flag = [](KernelKey k, bool KernelKey::*flag) {
      k.*flag = true;
      if (k.append_kv || k.leftpad || k.rotary) k.seqused_k = true;
      if (k.rotary) k.append_kv = true;
      return k;
    };
    // Tiled after the flag is set, as the runtime does (a flag may change the tiles).
    for (auto flag : flags)
      add(tiled(with_flag(cuda_key(arch, DType::kBFloat16, 128, 128, 4096), flag), 4096));
    // Everything a decode step of a serving engine uses: split-KV, append, rotary, left padding.
    auto serving = [](KernelKey k) {
      k.split_kv = k.append_kv = k.rotary = k.leftpad = true;
      return k;
    };
    // The common serving combinations, and everything at once on d256.
    KernelKey decode = cuda_key(arch, DType::kBFloat16, 128, 128, 4);
    decode.paged_kv = decode.seqused_k = decode.pack_gqa = decode.lse = true;
    add(decode);
    add(serving(decode));
    // Decode at large batch: 16 key warps of one stage (small batches get 12 warps of two).
    add(tiled(serving(decode), 4, 256));
    add(tiled(decode, 4, 256));
    for (auto [d, dv] : dims) {  // decode tiles have the fewest registers per thread
      KernelKey k = cuda_key(arch, DType::kFloat16, d, dv, 4);
      k.causal = k.local = k.chunked = k.softcap = k.sinks = k.paged_kv = true;
      k.varlen_q = k.seqused_k = k.lse = k.pack_gqa = true;
      if (test_level() >= 2 || d == 128 || d == 80) add(tiled(serving(k), 4));
    }
    KernelKey all128 = cuda_key(arch, DType::kBFloat16, 128, 128, 4096);
    all128.causal = all128.local = all128.chunked = all128.softcap = all128.sinks = true;
    all128.paged_kv = all128.varlen_q = all128.seqused_k = all128.lse = all128.pack_gqa = true;
    add(tiled(all128, 4096));
    add(tiled(serving(all128), 4096));
    for (DType in : {DType::kFloat32, DType::kBFloat16})  // merge_states kernels
      for (DType o : {DType::kFloat32, DType::kFloat16}) {
        KernelKey m;
        m.op = KernelOp::kMergeStates;
        m.backend = Backend::kCuda;
        m.target = Target{"nvptx64-nvidia-cuda", arch, ""};
        m.dtype_q = in;
        m.dtype_o = o;
        m.head_dim_v = in == DType::kFloat32 ? 128 : 512;
        m.lse = o == DType::kFloat32;
        add(m);
      }
    KernelKey ring3 = cuda_key(arch, DType::kBFloat16, 64, 64, 4096);  // a 3-stage K/V ring
    ring3.block_n = 64;
    ring3.num_stages = 3;
    add(ring3);
    KernelKey all = cuda_key(arch, DType::kFloat16, 256, 256, 4096);
    all.causal = all.local = all.chunked = all.softcap = all.sinks = all.paged_kv = true;
    all.varlen_q = all.seqused_k = all.lse = all.pack_gqa = true;
    add(serving(all));
    if (test_level() >= 2) {
      for (auto [d, dv] : dims)
        for (auto flag : flags) {
          KernelKey k = with_flag(cuda_key(arch, DType::kBFloat16, d, dv, 4096), flag);
          if (!(k.paged_kv && k.varlen_k)) add(k);
        }
    }
  }
  // sm_86 and sm_89 (99 KiB of shared memory a CTA): the keys whose tiles differ from sm_80's,
  // prefill- and decode-shaped, and a serving decode step.
  auto same_tiles = [](const KernelKey& a, const KernelKey& b) {
    return a.block_m == b.block_m && a.block_n == b.block_n && a.num_warps == b.num_warps &&
           a.num_stages == b.num_stages;
  };
  for (auto [d, dv] : dims)
    for (int rows : {4096, 4}) {
      KernelKey k = cuda_key("sm_86", DType::kBFloat16, d, dv, rows);
      k.paged_kv = k.seqused_k = k.pack_gqa = k.lse = rows == 4;
      k.split_kv = k.append_kv = k.rotary = k.leftpad = rows == 4;
      KernelKey on_sm80 = k;
      on_sm80.target.cpu = "sm_80";
      k = tiled(k, rows);
      if (!same_tiles(k, tiled(on_sm80, rows))) add(k);
    }
  return out;
}

class CudaCompile : public ::testing::TestWithParam<CudaCase> {};

TEST_P(CudaCompile, CompilesWithoutSpills) {
  std::string why;
  if (!cuda::nvrtc(&why)) GTEST_SKIP() << "NVRTC unavailable: " << why;
  const KernelKey& key = GetParam().key;
  const std::string source = generate_cuda_source(key);
  const CudaBinary cubin = compile_cuda_binary(source, key.target.cpu, key.name());
  // FLASHJIT_DUMP_DIR (as for the runtime): the source and the cubin, e.g. for readelf's section
  // sizes or, where the CUDA toolkit has it, nvdisasm.
  if (const std::string& dir = jit_config().dump_dir; !dir.empty()) {
    std::ofstream(dir + "/" + key.name() + ".cu") << source;
    std::ofstream(dir + "/" + key.name() + ".cubin", std::ios::binary)
        .write(reinterpret_cast<const char*>(cubin.bytes.data()),
               static_cast<std::streamsize>(cubin.bytes.size()));
  }
  EXPECT_GT(cubin.bytes.size(), 1000u);
  ASSERT_GE(cubin.usage.registers, 0) << "no ptxas report in the log:\n" << cubin.log;
  EXPECT_LE(cubin.usage.registers, 255);
  EXPECT_EQ(cubin.usage.spill_store_bytes, 0) << cubin.log;
  EXPECT_EQ(cubin.usage.spill_load_bytes, 0) << cubin.log;
  // A stack frame means a local array the compiler could not keep in registers.
  EXPECT_EQ(cubin.usage.stack_bytes, 0) << cubin.log;
  EXPECT_LE(cuda_launch_shape(key).smem_bytes, cuda_smem_limit(key.target.cpu));
  RecordProperty("registers", cubin.usage.registers);
  RecordProperty("compile_ms", static_cast<int>(cubin.compile_ms));
  // Two runs' reports (--gtest_output=json) compared by scripts/cubin_diff.py show which keys a
  // template change recompiles to different code: none, for a change meant to move code only.
  RecordProperty("cubin_sha256",
                 cache::to_hex(cache::sha256(std::string_view(
                     reinterpret_cast<const char*>(cubin.bytes.data()), cubin.bytes.size()))));
}

// FLASHJIT_NVRTC_OPTIONS reach NVRTC, after flashjit's own options. The ctest variant
// CudaCompileExtraOptions sets them to "-lineinfo --ptxas-options=-O1"; line info shows as a
// .debug_line section in the cubin, so the test fails when the options are dropped.
TEST(CudaCompileOptions, EnvironmentOptionsAreAppendedAndReachNvrtc) {
  const char* env = std::getenv("FLASHJIT_NVRTC_OPTIONS");
  if (!env || !*env) GTEST_SKIP() << "runs in the ctest variant CudaCompileExtraOptions";
  std::string why;
  if (!cuda::nvrtc(&why)) GTEST_SKIP() << "NVRTC unavailable: " << why;
  const std::vector<std::string> options = nvrtc_options("sm_90a");
  ASSERT_GE(options.size(), 2u);
  EXPECT_EQ(options[options.size() - 2], "-lineinfo");
  EXPECT_EQ(options.back(), "--ptxas-options=-O1");
  const KernelKey key = cuda_key("sm_90a", DType::kBFloat16, 128, 128, 4096).canonicalize();
  const CudaBinary cubin =
      compile_cuda_binary(generate_cuda_source(key), key.target.cpu, key.name());
  ASSERT_GT(cubin.usage.registers, 0) << cubin.log;
  const std::string bytes(cubin.bytes.begin(), cubin.bytes.end());
  EXPECT_NE(bytes.find(".debug_line"), std::string::npos) << "no line info in the cubin";
}

// A compute_ arch builds PTX (for the driver to compile where it loads) of that arch's code: the
// sm_80 paths store P with shared-memory stores and launch without programmatic dependence, the
// sm_90 ones use stmatrix and griddepcontrol.
TEST(CudaCompilePtx, ComputeArchsBuildPtxOfTheirOwnCode) {
  std::string why;
  if (!cuda::nvrtc(&why)) GTEST_SKIP() << "NVRTC unavailable: " << why;
  auto ptx = [](const std::string& arch, bool split) {
    KernelKey k = cuda_key(arch, DType::kBFloat16, 256, 256, split ? 1 : 4096);
    k.split_kv = split;
    k = tiled(k, split ? 1 : 4096).canonicalize();
    const CudaBinary built = compile_cuda_binary(generate_cuda_source(k), arch, k.name());
    EXPECT_EQ(built.usage.registers, -1) << "ptxas ran for " << arch;
    EXPECT_FALSE(built.bytes.empty());
    EXPECT_EQ(built.bytes.back(), '\0') << "PTX for the driver ends in its NUL";
    return std::string(built.bytes.c_str());
  };
  const std::string prefill80 = ptx("compute_80", false), prefill90 = ptx("compute_90", false);
  const std::string split80 = ptx("compute_80", true), split90 = ptx("compute_90", true);
  EXPECT_NE(prefill80.find(".target sm_80"), std::string::npos);
  EXPECT_NE(prefill90.find(".target sm_90"), std::string::npos);
  for (const std::string* text : {&prefill80, &prefill90, &split80, &split90})
    EXPECT_NE(text->find(std::string(".entry ") + kCudaEntryFwd), std::string::npos);
  EXPECT_NE(split80.find(std::string(".entry ") + kCudaEntryCombine), std::string::npos);
  EXPECT_EQ(prefill80.find("stmatrix"), std::string::npos);
  EXPECT_NE(prefill90.find("stmatrix"), std::string::npos);
  EXPECT_EQ(split80.find("griddepcontrol"), std::string::npos);
  EXPECT_NE(split90.find("griddepcontrol"), std::string::npos);
}

// An arch this NVRTC does not know (a GPU newer than the toolkit) fails naming it and the way out.
TEST(CudaCompileErrors, UnknownArchPointsToPtx) {
  std::string why;
  if (!cuda::nvrtc(&why)) GTEST_SKIP() << "NVRTC unavailable: " << why;
  try {
    compile_cuda_binary("extern \"C\" __global__ void f() {}", "sm_990", "probe_key");
    ADD_FAILURE() << "NVRTC compiled for sm_990";
  } catch (const CompileError& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find("probe_key"), std::string::npos) << what;
    EXPECT_NE(what.find("does not know sm_990"), std::string::npos) << what;
    EXPECT_NE(what.find("FLASHJIT_CUDA_ARCH=compute_XY"), std::string::npos) << what;
  }
}

INSTANTIATE_TEST_SUITE_P(Keys, CudaCompile, ::testing::ValuesIn(cases()),
                         [](const auto& info) { return info.param.name; });

}  // namespace
}  // namespace flashjit
