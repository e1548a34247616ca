// generate_cpu_source(): byte-exact golden sources for four representative keys, determinism, the
// banner, the AMX switch, one config line per key field, the split-KV / append entries (also of
// generate_cuda_source()), and the rejection of non-canonical and unsupported keys.
// FLASHJIT_UPDATE_GOLDEN=1 rewrites the golden files instead of failing.
#include "codegen/generate_source.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <typeinfo>
#include <vector>

#include "codegen/tile_config.h"
#include "flashjit/error.h"
#include "key_variants.h"

namespace flashjit {
namespace {

using testing::base_cpu_key;

const Target kAmxTarget{"x86_64-unknown-linux-gnu", "sapphirerapids",
                        "+amx-bf16,+amx-tile,+avx512f"};
const Target kNoAmxTarget{"x86_64-unknown-linux-gnu", "skylake",
                          "+avx2,+fma,-amx-bf16,-amx-tile,-avx512f"};

KernelKey bf16_causal_paged_key() {
  KernelKey k;
  k.target = kAmxTarget;
  k.dtype_q = k.dtype_kv = k.dtype_o = DType::kBFloat16;
  k.head_dim_qk = k.head_dim_v = 128;
  k.causal = true;
  k.paged_kv = true;
  k.seqused_k = true;
  k.lse = true;
  k.pack_gqa = true;
  k.block_m = 16;
  k.block_n = 128;
  return k;
}

KernelKey fp32_local_chunked_key() {
  KernelKey k;
  k.target = kNoAmxTarget;
  k.dtype_q = k.dtype_kv = k.dtype_o = DType::kFloat32;
  k.head_dim_qk = k.head_dim_v = 64;
  k.local = true;
  k.chunked = true;
  k.softcap = true;
  k.sinks = true;
  k.block_m = 32;
  k.block_n = 64;
  return k;
}

// Decode against a paged cache with every KV-cache feature: split-KV, append, left padding and
// rotary (the paged decode key above, without GQA packing, plus those).
KernelKey bf16_split_append_rotary_key() {
  KernelKey k = bf16_causal_paged_key();
  k.pack_gqa = false;
  k.split_kv = k.append_kv = k.leftpad = k.rotary = true;
  return k;
}

KernelKey fp16_varlen_key() {
  KernelKey k;
  k.target = Target{"x86_64-unknown-linux-gnu", "sapphirerapids",
                    "+amx-bf16,+amx-tile,+avx512f,+avx512fp16"};
  k.dtype_q = k.dtype_kv = k.dtype_o = DType::kFloat16;
  k.head_dim_qk = 192;
  k.head_dim_v = 128;
  k.varlen_q = true;
  k.varlen_k = true;
  k.seqused_k = true;
  k.lse = true;
  k.block_m = 64;
  k.block_n = 64;
  return k;
}

std::string golden_path(const KernelKey& key) {
  return std::string(FLASHJIT_SOURCE_DIR) + "/tests/codegen/golden/" + key.name() + ".cpp";
}

void check_golden(const KernelKey& key) {
  ASSERT_EQ(key, key.canonicalize());
  const std::string source = generate_cpu_source(key);
  const std::string path = golden_path(key);
  const char* update = std::getenv("FLASHJIT_UPDATE_GOLDEN");
  if (update != nullptr && std::string(update) == "1") {
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out << source;
    ASSERT_TRUE(out.good()) << "cannot write " << path;
    std::printf("rewrote %s\n", path.c_str());
  }
  std::ifstream in(path, std::ios::binary);
  ASSERT_TRUE(in.good()) << "missing golden " << path << " (run with FLASHJIT_UPDATE_GOLDEN=1)";
  std::stringstream golden;
  golden << in.rdbuf();
  EXPECT_EQ(source, golden.str()) << "generated source differs from " << path
                                  << "; if intended, rerun with FLASHJIT_UPDATE_GOLDEN=1";
}

std::string line_for(const char* constant, bool value) {
  return std::string("static constexpr bool ") + constant + " = " + (value ? "true" : "false") +
         ";";
}

bool contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

// Sets the flags that the flags of `k` require (check_supported): append_kv, leftpad and rotary
// need per-sequence lengths (seqused_k), rotary also needs append_kv.
void with_prerequisites(KernelKey& k) {
  if (k.rotary) k.append_kv = true;
  if (k.append_kv || k.leftpad) k.seqused_k = true;
}

KernelKey cuda_key() {
  KernelKey k;
  k.backend = Backend::kCuda;
  k.target = Target{"nvptx64-nvidia-cuda", "sm_90a", ""};
  k.dtype_q = k.dtype_kv = k.dtype_o = DType::kBFloat16;
  k.head_dim_qk = k.head_dim_v = 128;
  k.block_m = 128;
  k.block_n = 32;
  k.num_warps = 4;
  k.num_stages = 2;
  return k;
}

TEST(GenerateSourceGolden, Bf16CausalPagedAmx) { check_golden(bf16_causal_paged_key()); }

TEST(GenerateSourceGolden, Fp32LocalChunkedSoftcapSinksNoAmx) {
  check_golden(fp32_local_chunked_key());
}

TEST(GenerateSourceGolden, Fp16Varlen192x128) { check_golden(fp16_varlen_key()); }

TEST(GenerateSourceGolden, Bf16SplitAppendLeftpadRotary) {
  check_golden(bf16_split_append_rotary_key());
}

// bf16 prefill on AVX-512 BF16 without AMX (AMD Zen 4): bf16 pair dot products.
TEST(GenerateSourceGolden, Bf16CausalSoftcapVarlenDotNoAmx) {
  KernelKey k;
  k.target = Target{"x86_64-unknown-linux-gnu", "znver4", "+avx512bf16,+avx512bw,+avx512f"};
  k.dtype_q = k.dtype_kv = k.dtype_o = DType::kBFloat16;
  k.head_dim_qk = k.head_dim_v = 128;
  k.causal = k.softcap = k.varlen_q = k.varlen_k = true;
  k.block_m = 64;
  k.block_n = 64;
  check_golden(k);
}

TEST(GenerateSource, IsDeterministic) {
  for (const KernelKey& key : {bf16_causal_paged_key(), fp32_local_chunked_key(), fp16_varlen_key(),
                               bf16_split_append_rotary_key(), base_cpu_key()}) {
    const std::string first = generate_cpu_source(key);
    const std::string second = generate_cpu_source(key);
    EXPECT_EQ(first, second) << key.name();
    EXPECT_EQ(generate_cpu_source(KernelKey(key)), first) << key.name();
  }
}

TEST(GenerateSource, BannerNamesTheKeyAndEntryPoints) {
  for (const KernelKey& key : {bf16_causal_paged_key(), fp32_local_chunked_key(), fp16_varlen_key(),
                               bf16_split_append_rotary_key()}) {
    const std::string source = generate_cpu_source(key);
    EXPECT_TRUE(contains(source, "// key: " + key.name() + "\n")) << source;
    EXPECT_EQ(
        source.rfind("// Generated by flashjit codegen v" + std::to_string(kGeneratorVersion) + ".",
                     0),
        0u);
    for (const char* entry : {kCpuEntryFwd, kCpuEntryScratchBytes, kCpuEntryAbiVersion}) {
      EXPECT_TRUE(contains(source, std::string("extern \"C\"")) && contains(source, entry))
          << entry;
    }
  }
}

// Which matmul path a CPU key's source selects (its constant) and the predicate codegen uses.
struct PathCase {
  DType dtype;
  std::string features;
  bool selected;
};

void expect_path(const std::vector<PathCase>& cases, const char* constant,
                 bool (*uses)(const KernelKey&)) {
  for (const PathCase& c : cases) {
    KernelKey key = base_cpu_key();
    key.dtype_q = key.dtype_kv = key.dtype_o = c.dtype;
    key.target.features = c.features;
    key.block_m = 16;
    const std::string source = generate_cpu_source(key);
    EXPECT_TRUE(contains(source, line_for(constant, c.selected))) << key.to_string();
    EXPECT_EQ(uses(key), c.selected) << key.to_string();
  }
}

TEST(GenerateSource, UsesAmxIffTargetHasAmx) {
  expect_path(
      {
          {DType::kBFloat16, "+amx-bf16,+amx-tile,+avx512f", true},
          {DType::kBFloat16, "+avx512f,+amx-tile,+amx-bf16,+amx-int8", true},
          {DType::kBFloat16, "+amx-bf16,-amx-tile,+avx512f", false},
          {DType::kBFloat16, "-amx-bf16,+amx-tile,+avx512f", false},
          {DType::kBFloat16, "+amx-bf16,+amx-tile", false},
          {DType::kBFloat16, "+avx2,+fma", false},
          {DType::kBFloat16, "", false},
          {DType::kFloat16, "+amx-bf16,+amx-tile,+avx512f", false},
          {DType::kFloat32, "+amx-bf16,+amx-tile,+avx512f", false},
      },
      "kUseAmx", cpu_uses_amx);
}

TEST(GenerateSource, UsesBf16DotIffBf16WithAvx512Bf16AndNoAmx) {
  expect_path(
      {
          {DType::kBFloat16, "+avx512bf16,+avx512bw,+avx512f", true},
          {DType::kBFloat16, "+avx512bf16,+avx512bw,+avx512f,-amx-bf16,+amx-tile", true},
          {DType::kBFloat16, "+amx-bf16,+amx-tile,+avx512bf16,+avx512bw,+avx512f", false},  // AMX
          {DType::kBFloat16, "-avx512bf16,+avx512bw,+avx512f", false},
          {DType::kBFloat16, "+avx512bf16,-avx512bw,+avx512f", false},
          {DType::kBFloat16, "+avx2,+fma", false},
          {DType::kFloat16, "+avx512bf16,+avx512bw,+avx512f", false},
          {DType::kFloat32, "+avx512bf16,+avx512bw,+avx512f", false},
      },
      "kUseBf16Dot", cpu_uses_bf16_dot);
}

// Every flag, the dtypes, head dims and tiles appear in the config struct.
TEST(GenerateSource, ConfigReflectsEveryKeyField) {
  const KernelKey base = base_cpu_key();
  const std::string base_source = generate_cpu_source(base);
  // The config constant of each flag; a new flag without an entry here fails the test.
  const std::map<std::string, std::string> constants = {
      {"causal", "kCausal"},      {"local", "kLocal"},
      {"chunked", "kChunked"},    {"softcap", "kSoftcap"},
      {"sinks", "kSinks"},        {"paged_kv", "kPagedKV"},
      {"varlen_q", "kVarlenQ"},   {"varlen_k", "kVarlenK"},
      {"seqused_k", "kSequsedK"}, {"lse", "kLse"},
      {"pack_gqa", "kPackGqa"},   {"split_kv", "kSplitKV"},
      {"append_kv", "kAppendKV"}, {"leftpad", "kLeftpad"},
      {"rotary", "kRotary"}};
  struct FlagRef {
    const char* name;
    bool KernelKey::*member;
  };
  const std::vector<FlagRef> flags = {
#define FLASHJIT_FLAG_REF(n) {#n, &KernelKey::n},
      FLASHJIT_KEY_FLAGS(FLASHJIT_FLAG_REF)
#undef FLASHJIT_FLAG_REF
  };
  for (const FlagRef& f : flags) {
    ASSERT_EQ(constants.count(f.name), 1u) << f.name;
    const std::string& constant = constants.at(f.name);
    KernelKey k = base;
    k.*f.member = true;
    with_prerequisites(k);
    k = k.canonicalize();
    const std::string source = generate_cpu_source(k);
    EXPECT_NE(source, base_source) << f.name;
    EXPECT_TRUE(contains(source, line_for(constant.c_str(), true))) << constant;
    EXPECT_TRUE(contains(base_source, line_for(constant.c_str(), false))) << constant;
  }
  KernelKey k = fp16_varlen_key();
  const std::string source = generate_cpu_source(k);
  EXPECT_TRUE(contains(source, "using ElementQ = flashjit_cpu::fp16;"));
  EXPECT_TRUE(contains(source, "static constexpr int kHeadDimQK = 192;"));
  EXPECT_TRUE(contains(source, "static constexpr int kHeadDimV = 128;"));
  EXPECT_TRUE(contains(source, "static constexpr int kBlockM = 64;"));
  EXPECT_TRUE(contains(source, "static constexpr int kBlockN = 64;"));
  k = fp32_local_chunked_key();
  EXPECT_TRUE(contains(generate_cpu_source(k), "using ElementKV = float;"));
  EXPECT_TRUE(contains(base_source, "using ElementO = flashjit_cpu::bf16;"));
}

// The split-KV combine and the append entry exist exactly when their flag is set, in both the
// CPU and the CUDA source.
TEST(GenerateSource, ExtraEntriesFollowSplitKvAndAppendKv) {
  struct Generator {
    const char* name;
    KernelKey base;
    std::string (*generate)(const KernelKey&);
    const char* combine;
    const char* append;
  };
  const std::vector<Generator> generators = {
      {"cpu", base_cpu_key(), &generate_cpu_source, kCpuEntryCombine, kCpuEntryAppend},
      {"cuda", cuda_key(), &generate_cuda_source, kCudaEntryCombine, kCudaEntryAppend},
  };
  for (const Generator& g : generators) {
    SCOPED_TRACE(g.name);
    EXPECT_STREQ(g.combine, "flashjit_combine");
    EXPECT_STREQ(g.append, "flashjit_append");
    const std::string plain = g.generate(g.base);
    EXPECT_TRUE(contains(plain, "flashjit_fwd"));
    EXPECT_FALSE(contains(plain, "flashjit_combine"));
    EXPECT_FALSE(contains(plain, "flashjit_append"));

    KernelKey split = g.base;
    split.split_kv = true;
    const std::string split_source = g.generate(split);
    EXPECT_TRUE(contains(split_source, "flashjit_fwd"));
    EXPECT_TRUE(contains(split_source, "flashjit_combine"));
    EXPECT_FALSE(contains(split_source, "flashjit_append"));
    EXPECT_TRUE(contains(split_source, line_for("kSplitKV", true)));

    KernelKey append = g.base;
    append.append_kv = true;
    append.seqused_k = true;
    const std::string append_source = g.generate(append);
    EXPECT_TRUE(contains(append_source, "flashjit_fwd"));
    EXPECT_TRUE(contains(append_source, "flashjit_append"));
    EXPECT_FALSE(contains(append_source, "flashjit_combine"));
    EXPECT_TRUE(contains(append_source, line_for("kAppendKV", true)));

    KernelKey both = append;
    both.split_kv = true;
    both.rotary = true;
    both.leftpad = true;
    const std::string both_source = g.generate(both);
    EXPECT_TRUE(contains(both_source, "flashjit_combine"));
    EXPECT_TRUE(contains(both_source, "flashjit_append"));
    EXPECT_TRUE(contains(both_source, line_for("kRotary", true)));
    EXPECT_TRUE(contains(both_source, line_for("kLeftpad", true)));
  }
}

TEST(GenerateSource, NonCanonicalKeyIsInternalError) {
  std::vector<KernelKey> keys;
  KernelKey k = base_cpu_key();
  k.head_dim_v = 0;
  keys.push_back(k);
  k = base_cpu_key();
  k.chunked = true;
  keys.push_back(k);
  k = base_cpu_key();
  k.local = k.causal = true;
  keys.push_back(k);
  k = base_cpu_key();
  k.num_warps = 4;
  keys.push_back(k);
  k = base_cpu_key();
  k.backend = Backend::kCuda;
  keys.push_back(k);
  for (const KernelKey& key : keys) {
    try {
      generate_cpu_source(key);
      ADD_FAILURE() << "no exception for " << key.to_string();
    } catch (const Error& e) {
      EXPECT_EQ(typeid(e), typeid(InternalError)) << key.to_string() << ": " << e.what();
    }
  }
}

TEST(GenerateSource, UnsupportedKeyIsUsageError) {
  std::vector<std::pair<KernelKey, std::string>> keys;
  KernelKey k = base_cpu_key();
  k.head_dim_qk = 60;
  keys.emplace_back(k, "head_dim_qk");
  k = base_cpu_key();
  k.dtype_q = k.dtype_kv = k.dtype_o = DType::kFloat8E4M3;
  keys.emplace_back(k, "dtype_q");
  k = base_cpu_key();
  k.paged_kv = k.varlen_k = true;
  keys.emplace_back(k, "paged_kv");
  k = base_cpu_key();
  k.block_n = 40;
  keys.emplace_back(k, "block_n");
  k = base_cpu_key();
  k.rotary = k.seqused_k = true;
  keys.emplace_back(k, "rotary");
  k = base_cpu_key();
  k.append_kv = true;
  keys.emplace_back(k, "append_kv");
  k = base_cpu_key();
  k.leftpad = k.seqused_k = k.varlen_k = true;
  keys.emplace_back(k, "leftpad");
  for (const auto& [key, part] : keys) {
    try {
      generate_cpu_source(key);
      ADD_FAILURE() << "no exception for " << key.to_string();
    } catch (const Error& e) {
      EXPECT_EQ(typeid(e), typeid(UsageError)) << key.to_string() << ": " << e.what();
      EXPECT_TRUE(contains(e.what(), part)) << e.what();
    }
  }
  k = base_cpu_key();
  k.score_mod_hash = "0123abcd";
  EXPECT_THROW(generate_cpu_source(k), NotSupportedError);
}

}  // namespace
}  // namespace flashjit
