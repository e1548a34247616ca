// KernelKey: the canonicalization rules, the name / string / JSON spellings and their round trips,
// the rejection of malformed spellings, check_supported(), equality and KernelKeyHash.
#include "flashjit/kernel_key.h"

#include <gtest/gtest.h>

#include <array>
#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <typeinfo>
#include <unordered_set>
#include <vector>

#include "flashjit/error.h"
#include "key_variants.h"

namespace flashjit {
namespace {

using testing::base_cpu_key;
using testing::single_field_variants;

bool is_filename_safe(const std::string& s) {
  if (s.empty()) return false;
  for (char c : s) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '_' || c == '-';
    if (!ok) return false;
  }
  return true;
}

// Every flag, both ways, set one at a time.
struct FlagRef {
  const char* name;
  bool KernelKey::*member;
};
const std::vector<FlagRef>& all_flags() {
  static const std::vector<FlagRef> flags = {
#define FLASHJIT_FLAG_REF(n) {#n, &KernelKey::n},
      FLASHJIT_KEY_FLAGS(FLASHJIT_FLAG_REF)
#undef FLASHJIT_FLAG_REF
  };
  return flags;
}

// Many keys derived from `base`: each flag on alone, each flag off from all-on, dtypes, head dims,
// score_mod hashes and tile fields.
std::vector<KernelKey> spelling_keys(const KernelKey& base) {
  std::vector<KernelKey> keys = {base};
  KernelKey all_on = base;
  for (const FlagRef& f : all_flags()) all_on.*f.member = true;
  keys.push_back(all_on);
  for (const FlagRef& f : all_flags()) {
    KernelKey on = base;
    on.*f.member = true;
    keys.push_back(on);
    KernelKey off = all_on;
    off.*f.member = false;
    keys.push_back(off);
  }
  const DType dtypes[] = {DType::kFloat32,    DType::kFloat16, DType::kBFloat16,
                          DType::kFloat8E4M3, DType::kInt32,   DType::kInt64};
  for (DType q : dtypes) {
    KernelKey k = base;
    k.dtype_q = k.dtype_kv = k.dtype_o = q;
    keys.push_back(k);
    for (DType other : dtypes) {
      KernelKey kv = k;
      kv.dtype_kv = other;
      keys.push_back(kv);
      KernelKey o = k;
      o.dtype_o = other;
      keys.push_back(o);
    }
  }
  const std::pair<int, int> head_dims[] = {{64, 64},   {128, 128}, {192, 128}, {64, 512},
                                           {256, 256}, {8, 8},     {96, 0},    {40, 72}};
  for (auto [qk, v] : head_dims) {
    KernelKey k = base;
    k.head_dim_qk = qk;
    k.head_dim_v = v;
    keys.push_back(k);
  }
  for (const char* hash : {"0", "deadbeef0123", "ABCdef789"}) {
    KernelKey k = base;
    k.score_mod_hash = hash;
    keys.push_back(k);
  }
  for (auto [bm, bn, w, s] : std::vector<std::array<int, 4>>{
           {0, 0, 0, 0}, {4, 32, 0, 0}, {16, 128, 4, 2}, {256, 512, 8, 0}, {64, 64, 0, 3}}) {
    KernelKey k = base;
    k.block_m = bm;
    k.block_n = bn;
    k.num_warps = w;
    k.num_stages = s;
    keys.push_back(k);
  }
  KernelKey no_features = base;
  no_features.target.features = "";
  keys.push_back(no_features);
  return keys;
}

KernelKey base_cuda_key() {
  KernelKey k = base_cpu_key();
  k.backend = Backend::kCuda;
  k.target = Target{"nvptx64-nvidia-cuda", "sm_90a", ""};
  k.num_warps = 8;
  k.num_stages = 2;
  return k;
}

// Expects `call` to throw exactly E (not a subclass) with every part in its message.
template <typename E, typename F>
void expect_throws_exactly(F&& call, const std::vector<std::string>& parts) {
  try {
    call();
    ADD_FAILURE() << "expected " << typeid(E).name() << ", nothing was thrown";
  } catch (const Error& e) {
    EXPECT_EQ(typeid(e), typeid(E)) << "wrong exception type for: " << e.what();
    for (const std::string& part : parts) {
      EXPECT_NE(std::string(e.what()).find(part), std::string::npos)
          << "message '" << e.what() << "' lacks '" << part << "'";
    }
  }
}

// --- canonicalize --------------------------------------------------------------------------------

TEST(Canonicalize, HeadDimVZeroMeansHeadDimQk) {
  KernelKey k = base_cpu_key();
  k.head_dim_qk = 96;
  k.head_dim_v = 0;
  EXPECT_EQ(k.canonicalize().head_dim_v, 96);
  k.head_dim_v = 64;
  EXPECT_EQ(k.canonicalize().head_dim_v, 64);
  EXPECT_EQ(k.canonicalize().head_dim_qk, 96);
}

TEST(Canonicalize, ChunkedImpliesLocal) {
  KernelKey k = base_cpu_key();
  k.chunked = true;
  const KernelKey c = k.canonicalize();
  EXPECT_TRUE(c.chunked);
  EXPECT_TRUE(c.local);
  k.chunked = false;
  EXPECT_FALSE(k.canonicalize().local);
}

TEST(Canonicalize, LocalClearsCausal) {
  KernelKey k = base_cpu_key();
  k.causal = true;
  EXPECT_TRUE(k.canonicalize().causal);
  k.local = true;
  const KernelKey c = k.canonicalize();
  EXPECT_FALSE(c.causal);
  EXPECT_TRUE(c.local);
}

TEST(Canonicalize, ChunkedClearsCausalThroughLocal) {
  KernelKey k = base_cpu_key();
  k.causal = true;
  k.chunked = true;
  const KernelKey c = k.canonicalize();
  EXPECT_FALSE(c.causal);
  EXPECT_TRUE(c.local);
  EXPECT_TRUE(c.chunked);
}

TEST(Canonicalize, CpuZeroesWarpsAndStages) {
  KernelKey k = base_cpu_key();
  k.num_warps = 4;
  k.num_stages = 3;
  const KernelKey c = k.canonicalize();
  EXPECT_EQ(c.num_warps, 0);
  EXPECT_EQ(c.num_stages, 0);
  EXPECT_EQ(c.block_m, k.block_m);
  EXPECT_EQ(c.block_n, k.block_n);
  k.backend = Backend::kCuda;
  EXPECT_EQ(k.canonicalize().num_warps, 4);
  EXPECT_EQ(k.canonicalize().num_stages, 3);
}

TEST(Canonicalize, PackGqaAndOtherFieldsStayAsGiven) {
  for (const testing::KeyVariant& v : single_field_variants()) {
    KernelKey k = base_cpu_key();
    v.apply(k);
    // chunked implies local, a CPU key has no warps or stages, a merge key clears the rest.
    if (v.field == "chunked" || v.field == "num_warps" || v.field == "num_stages" ||
        v.field == "op")
      continue;
    EXPECT_EQ(k.canonicalize(), k) << v.label << " is already canonical";
  }
  KernelKey k = base_cpu_key();
  k.pack_gqa = true;
  EXPECT_TRUE(k.canonicalize().pack_gqa);
}

TEST(Canonicalize, IsIdempotent) {
  int checked = 0;
  for (Backend backend : {Backend::kCpu, Backend::kCuda}) {
    for (int bits = 0; bits < 8; ++bits) {
      for (int head_dim_v : {0, 64, 128}) {
        KernelKey k = base_cpu_key();
        k.backend = backend;
        k.causal = bits & 1;
        k.local = bits & 2;
        k.chunked = bits & 4;
        k.head_dim_v = head_dim_v;
        k.num_warps = 4;
        k.num_stages = 2;
        const KernelKey once = k.canonicalize();
        EXPECT_EQ(once.canonicalize(), once) << k.to_string();
        EXPECT_FALSE(once.causal && once.local) << k.to_string();
        EXPECT_TRUE(!once.chunked || once.local) << k.to_string();
        EXPECT_NE(once.head_dim_v, 0) << k.to_string();
        ++checked;
      }
    }
  }
  EXPECT_EQ(checked, 48);
}

// --- name / to_string / from_string
// ---------------------------------------------------------------

TEST(KeySpelling, NameOfBaseKey) {
  KernelKey k = base_cpu_key();
  k.causal = true;
  k.lse = true;
  EXPECT_EQ(k.name(), "fa_fwd_cpu_bf16_hd128_causal_lse_bm64_bn64");
  EXPECT_EQ(k.to_string(),
            "fa_fwd_cpu_bf16_hd128_causal_lse_bm64_bn64@x86_64-unknown-linux-gnu@sapphirerapids@"
            "+amx-bf16,+amx-tile,+avx512f");
}

TEST(KeySpelling, NameOfKvCacheFeatureKey) {
  KernelKey k = base_cpu_key();
  k.seqused_k = true;
  k.split_kv = true;
  k.append_kv = true;
  k.leftpad = true;
  k.rotary = true;
  EXPECT_NO_THROW(k.check_supported());
  EXPECT_EQ(k.name(), "fa_fwd_cpu_bf16_hd128_sequsedk_splitkv_appendkv_leftpad_rotary_bm64_bn64");
  EXPECT_EQ(KernelKey::from_string(k.to_string()), k);
  for (const FlagRef& f : all_flags()) {
    const std::string name = f.name;
    if (name != "split_kv" && name != "append_kv" && name != "leftpad" && name != "rotary")
      continue;
    KernelKey one = k;
    one.*f.member = false;
    EXPECT_NE(one.name(), k.name()) << name;
    EXPECT_EQ(KernelKey::from_string(one.to_string()), one) << name;
    KernelKey only = base_cpu_key();
    only.*f.member = true;
    EXPECT_EQ(KernelKey::from_string(only.to_string()), only) << name;
    const nlohmann::json j = only;
    EXPECT_EQ(j.at(name), true) << name;
    EXPECT_EQ(j.get<KernelKey>(), only) << name;
  }
}

TEST(KeySpelling, CpuKeysRoundTripThroughString) {
  const std::vector<KernelKey> keys = spelling_keys(base_cpu_key());
  EXPECT_GT(keys.size(), 80u);
  for (const KernelKey& k : keys) {
    const std::string text = k.to_string();
    KernelKey back;
    ASSERT_NO_THROW(back = KernelKey::from_string(text)) << text;
    EXPECT_EQ(back, k) << text;
    EXPECT_EQ(back.to_string(), text);
    EXPECT_TRUE(is_filename_safe(k.name())) << k.name();
  }
}

TEST(KeySpelling, CudaKeysWithPlainArchRoundTripThroughString) {
  KernelKey base = base_cuda_key();
  base.target.cpu = "sm90a";
  for (const KernelKey& k : spelling_keys(base)) {
    const std::string text = k.to_string();
    KernelKey back;
    ASSERT_NO_THROW(back = KernelKey::from_string(text)) << text;
    EXPECT_EQ(back, k) << text;
    EXPECT_TRUE(is_filename_safe(k.name())) << k.name();
  }
}

// Disabled: KernelKey::from_string splits the name on '_', so the arch "sm_90a" that name() embeds
// as "cuda-sm_90a" cannot be parsed back (codegen/kernel_key.cpp, from_string). Enable once fixed.
TEST(KeySpelling, CudaKeysWithSm90aRoundTripThroughString) {
  for (const KernelKey& k : spelling_keys(base_cuda_key())) {
    const std::string text = k.to_string();
    EXPECT_TRUE(is_filename_safe(k.name())) << k.name();
    KernelKey back;
    ASSERT_NO_THROW(back = KernelKey::from_string(text)) << text;
    EXPECT_EQ(back, k) << text;
  }
}

TEST(KeySpelling, EveryFieldVariantRoundTrips) {
  for (const testing::KeyVariant& v : single_field_variants()) {
    KernelKey k = base_cpu_key();
    v.apply(k);
    if (k.backend == Backend::kCuda) continue;  // covered by the CUDA tests
    EXPECT_EQ(KernelKey::from_string(k.to_string()), k) << v.label;
    EXPECT_TRUE(is_filename_safe(k.name())) << v.label << ": " << k.name();
  }
}

TEST(KeySpelling, FromStringRejectsMalformedText) {
  const std::string tail = "@x86_64-unknown-linux-gnu@sapphirerapids@+avx512f";
  const std::string good = "fa_fwd_cpu_bf16_hd128_bm64_bn64";
  ASSERT_NO_THROW(KernelKey::from_string(good + tail));
  const std::vector<std::pair<std::string, std::string>> bad = {
      {"", "expected name@triple@cpu@features"},
      {good, "expected name@triple@cpu@features"},
      {good + "@x86_64-unknown-linux-gnu@sapphirerapids", "expected name@triple@cpu@features"},
      {good + tail + "@extra", "expected name@triple@cpu@features"},
      {"fb_fwd_cpu_bf16_hd128_bm64_bn64" + tail, "fa_fwd_"},
      {"fa_fwd_cpu" + tail, "fa_fwd_"},
      {"fa_fwd_cpu_bf16_hd128_bogus_bm64_bn64" + tail, "unknown token 'bogus'"},
      {"fa_fwd_cpu_bf16_hd128_causal__bm64_bn64" + tail, "unknown token ''"},
      {"fa_fwd_cpu_bf16_hd12a_bm64_bn64" + tail, "expected a number, got '12a'"},
      {"fa_fwd_cpu_bf16_hd_bm64_bn64" + tail, "expected a number, got ''"},
      {"fa_fwd_cpu_bf16_hd128x_bm64_bn64" + tail, "expected a number, got ''"},
      {"fa_fwd_cpu_bf16_hd128_bmxx_bn64" + tail, "expected a number, got 'xx'"},
      {"fa_fwd_cpu_bf16_hd128_bm64_bn99999999999" + tail, "expected a number"},
      {"fa_fwd_cpu_bf16_hd128_bm64_bn64_w4x" + tail, "expected a number, got '4x'"},
      {"fa_fwd_cpu_bf16_causal_bm64_bn64" + tail, "no head dim"},
      {"fa_fwd_tpu_bf16_hd128_bm64_bn64" + tail, "unknown backend 'tpu'"},
      {"fa_fwd_cuda-sm80_bf16_hd128_bm64_bn64@nvptx64-nvidia-cuda@sm90@",
       "arch in the name differs"},
      {"fa_fwd_cpu_bf17_hd128_bm64_bn64" + tail, "unknown dtype"},
  };
  for (const auto& [text, part] : bad) {
    SCOPED_TRACE(text);
    expect_throws_exactly<UsageError>([&] { KernelKey::from_string(text); }, {part});
  }
}

// --- JSON ----------------------------------------------------------------------------------------

TEST(KeyJson, RoundTripsEveryKey) {
  std::vector<KernelKey> keys = spelling_keys(base_cpu_key());
  for (const KernelKey& k : spelling_keys(base_cuda_key())) keys.push_back(k);
  for (const KernelKey& k : keys) {
    const nlohmann::json j = k;
    EXPECT_EQ(j.get<KernelKey>(), k) << j.dump();
    EXPECT_EQ(nlohmann::json::parse(j.dump()).get<KernelKey>(), k) << j.dump();
  }
}

TEST(KeyJson, MissingFieldIsUsageError) {
  const nlohmann::json good = base_cpu_key();
  ASSERT_NO_THROW(good.get<KernelKey>());
  int removed = 0;
  for (const auto& item : good.items()) {
    nlohmann::json bad = good;
    bad.erase(item.key());
    SCOPED_TRACE(item.key());
    expect_throws_exactly<UsageError>([&] { bad.get<KernelKey>(); }, {"kernel key JSON"});
    ++removed;
  }
  for (const char* field : {"triple", "cpu", "features"}) {
    nlohmann::json bad = good;
    bad["target"].erase(field);
    SCOPED_TRACE(field);
    expect_throws_exactly<UsageError>([&] { bad.get<KernelKey>(); }, {"kernel key JSON"});
  }
  EXPECT_EQ(removed, 14 + static_cast<int>(all_flags().size()));
}

TEST(KeyJson, BadValuesAreUsageErrors) {
  const nlohmann::json good = base_cpu_key();
  const std::vector<std::pair<std::string, nlohmann::json>> bad_fields = {
      {"dtype_q", "bf17"}, {"dtype_kv", "float"},  {"dtype_o", ""},
      {"backend", "tpu"},  {"head_dim_qk", "128"}, {"block_m", nullptr},
      {"causal", "yes"},   {"target", "x86"},      {"score_mod_hash", 5},
  };
  for (const auto& [field, value] : bad_fields) {
    nlohmann::json bad = good;
    bad[field] = value;
    SCOPED_TRACE(field + " = " + value.dump());
    expect_throws_exactly<UsageError>([&] { bad.get<KernelKey>(); }, {"kernel key JSON"});
  }
  nlohmann::json bad_dtype = good;
  bad_dtype["dtype_q"] = "bf17";
  expect_throws_exactly<UsageError>([&] { bad_dtype.get<KernelKey>(); }, {"dtype_q"});
  expect_throws_exactly<UsageError>([&] { nlohmann::json::array().get<KernelKey>(); },
                                    {"kernel key JSON"});
}

// Each variant changes exactly its JSON field, and together the variants touch every field.
TEST(KeyJson, VariantsCoverEveryField) {
  auto flatten = [](const nlohmann::json& j) {
    std::map<std::string, nlohmann::json> flat;
    for (const auto& item : j.items()) {
      if (item.value().is_object()) {
        for (const auto& sub : item.value().items())
          flat[item.key() + "." + sub.key()] = sub.value();
      } else {
        flat[item.key()] = item.value();
      }
    }
    return flat;
  };
  const auto base = flatten(nlohmann::json(base_cpu_key()));
  std::set<std::string> covered;
  for (const testing::KeyVariant& v : single_field_variants()) {
    KernelKey k = base_cpu_key();
    v.apply(k);
    const auto changed = flatten(nlohmann::json(k));
    ASSERT_EQ(changed.size(), base.size());
    for (const auto& [name, value] : base) {
      if (name == v.field) {
        EXPECT_NE(changed.at(name), value) << v.label;
      } else {
        EXPECT_EQ(changed.at(name), value) << v.label << " also changed " << name;
      }
    }
    covered.insert(v.field);
  }
  std::set<std::string> all;
  for (const auto& [name, value] : base) all.insert(name);
  EXPECT_EQ(covered, all);
}

TEST(MergeKey, CanonicalFormKeepsOnlyWhatAMergeUses) {
  KernelKey k = base_cpu_key();
  k.op = KernelOp::kMergeStates;
  k.dtype_o = DType::kFloat32;
  k.causal = k.paged_kv = k.lse = true;
  k.head_dim_v = 256;
  const KernelKey c = k.canonicalize();
  EXPECT_EQ(c, c.canonicalize());
  EXPECT_FALSE(c.causal || c.paged_kv);
  EXPECT_TRUE(c.lse);
  EXPECT_EQ(c.head_dim_qk, 256);
  EXPECT_EQ(c.block_m, 0);
  EXPECT_EQ(c.name(), "fa_merge_cpu_bf16_ofp32_hd256_lse_bm0_bn0");
  EXPECT_EQ(KernelKey::from_string(c.to_string()), c);
  EXPECT_EQ(nlohmann::json(c).get<KernelKey>(), c);
  EXPECT_NO_THROW(c.check_supported());
  KernelKey bad = c;
  bad.dtype_o = DType::kInt32;
  EXPECT_THROW(bad.check_supported(), UsageError);
  KernelKey attention = c;
  attention.op = KernelOp::kAttention;
  EXPECT_NE(KernelKeyHash()(attention), KernelKeyHash()(c));
}

// --- check_supported
// ------------------------------------------------------------------------------

TEST(CheckSupported, AcceptsSupportedKeys) {
  std::vector<KernelKey> keys;
  keys.push_back(base_cpu_key());
  for (DType d : {DType::kFloat32, DType::kFloat16, DType::kBFloat16}) {
    KernelKey k = base_cpu_key();
    k.dtype_q = k.dtype_kv = k.dtype_o = d;
    keys.push_back(k);
  }
  for (auto [qk, v] : std::vector<std::pair<int, int>>{
           {8, 8}, {64, 512}, {192, 128}, {256, 256}, {256, 512}, {40, 8}}) {
    KernelKey k = base_cpu_key();
    k.head_dim_qk = qk;
    k.head_dim_v = v;
    keys.push_back(k);
  }
  for (const FlagRef& f : all_flags()) {
    KernelKey k = base_cpu_key();
    k.*f.member = true;
    // The prerequisites of the KV-cache flags: per-sequence lengths, and append for rotary.
    if (k.rotary) k.append_kv = true;
    if (k.append_kv || k.leftpad) k.seqused_k = true;
    keys.push_back(k.canonicalize());
  }
  KernelKey many = base_cpu_key();
  for (const FlagRef& f : all_flags()) many.*f.member = true;
  many.varlen_k = false;
  keys.push_back(many.canonicalize());
  for (auto [bm, bn] : std::vector<std::pair<int, int>>{{16, 32}, {256, 512}, {48, 128}}) {
    KernelKey k = base_cpu_key();
    k.block_m = bm;
    k.block_n = bn;
    keys.push_back(k);
  }
  for (const KernelKey& k : keys) EXPECT_NO_THROW(k.check_supported()) << k.to_string();
}

TEST(CheckSupported, RejectsUnsupportedKeys) {
  struct Case {
    std::function<void(KernelKey&)> change;
    std::vector<std::string> parts;
  };
  const std::vector<Case> cases = {
      {[](KernelKey& k) { k.head_dim_qk = 60; }, {"head_dim_qk", "got 60"}},
      {[](KernelKey& k) { k.head_dim_qk = 0; }, {"head_dim_qk", "got 0"}},
      {[](KernelKey& k) { k.head_dim_qk = -8; }, {"head_dim_qk", "got -8"}},
      {[](KernelKey& k) { k.head_dim_qk = 264; }, {"head_dim_qk", "got 264"}},
      {[](KernelKey& k) { k.head_dim_v = 12; }, {"head_dim_v", "got 12"}},
      {[](KernelKey& k) { k.head_dim_v = 520; }, {"head_dim_v", "got 520"}},
      {[](KernelKey& k) { k.head_dim_v = 0; }, {"head_dim_v", "got 0"}},
      {[](KernelKey& k) { k.dtype_q = k.dtype_kv = k.dtype_o = DType::kFloat8E4M3; },
       {"dtype_q", "e4m3"}},
      {[](KernelKey& k) { k.dtype_q = k.dtype_kv = k.dtype_o = DType::kInt32; },
       {"dtype_q", "int32"}},
      {[](KernelKey& k) { k.dtype_kv = DType::kFloat16; }, {"dtype_kv", "bf16", "fp16"}},
      {[](KernelKey& k) { k.dtype_kv = DType::kFloat8E4M3; }, {"dtype_kv", "bf16", "e4m3"}},
      {[](KernelKey& k) { k.dtype_o = DType::kFloat32; }, {"dtype_o", "bf16", "fp32"}},
      {[](KernelKey& k) { k.paged_kv = k.varlen_k = true; }, {"paged_kv", "varlen_k"}},
      {[](KernelKey& k) { k.rotary = k.seqused_k = true; }, {"rotary", "append_kv"}},
      {[](KernelKey& k) { k.append_kv = true; }, {"append_kv", "seqused_k"}},
      {[](KernelKey& k) { k.append_kv = k.rotary = true; }, {"append_kv", "seqused_k"}},
      {[](KernelKey& k) { k.append_kv = k.seqused_k = k.varlen_k = true; },
       {"append_kv", "varlen_k = false", "got varlen_k"}},
      {[](KernelKey& k) { k.leftpad = true; }, {"leftpad", "seqused_k"}},
      {[](KernelKey& k) { k.leftpad = k.seqused_k = k.varlen_k = true; },
       {"leftpad", "varlen_k = false", "got varlen_k"}},
      {[](KernelKey& k) { k.block_m = 0; }, {"block_m", "got 0"}},
      {[](KernelKey& k) { k.block_m = 6; }, {"block_m", "got 6"}},
      {[](KernelKey& k) { k.block_m = 260; }, {"block_m", "got 260"}},
      {[](KernelKey& k) { k.block_n = 0; }, {"block_n", "got 0"}},
      {[](KernelKey& k) { k.block_n = 48; }, {"block_n", "got 48"}},
      {[](KernelKey& k) { k.block_n = 544; }, {"block_n", "got 544"}},
  };
  for (const Case& c : cases) {
    KernelKey k = base_cpu_key();
    c.change(k);
    SCOPED_TRACE(k.to_string());
    expect_throws_exactly<UsageError>([&] { k.check_supported(); }, c.parts);
  }
}

TEST(CheckSupported, ScoreModIsNotSupportedYet) {
  KernelKey k = base_cpu_key();
  k.score_mod_hash = "0123abcd";
  expect_throws_exactly<NotSupportedError>([&] { k.check_supported(); }, {"score_mod"});
}

// Disabled: check_supported() accepts block_m multiples of 4 even when the key runs on AMX, whose
// template static_asserts a multiple of 16, so such a key fails later with a CompileError
// (codegen/kernel_key.cpp, check_supported). Enable once fixed.
TEST(CheckSupported, RejectsBlockMNotAMultipleOf16) {
  KernelKey k = base_cpu_key();
  k.block_m = 16;
  EXPECT_NO_THROW(k.check_supported());
  for (int block_m : {4, 8, 12, 20, 36}) {
    k.block_m = block_m;
    SCOPED_TRACE(k.to_string());
    expect_throws_exactly<UsageError>([&] { k.check_supported(); },
                                      {"block_m", "got " + std::to_string(block_m)});
  }
}

// --- equality and hash
// ----------------------------------------------------------------------------

TEST(KeyIdentity, EqualKeysHashEqual) {
  const KernelKeyHash hash;
  std::vector<KernelKey> keys = spelling_keys(base_cpu_key());
  for (const testing::KeyVariant& v : single_field_variants()) {
    KernelKey k = base_cpu_key();
    v.apply(k);
    keys.push_back(k);
  }
  for (const KernelKey& k : keys) {
    const KernelKey copy = k;
    EXPECT_EQ(copy, k);
    EXPECT_EQ(hash(copy), hash(k)) << k.to_string();
    const KernelKey parsed = nlohmann::json::parse(nlohmann::json(k).dump()).get<KernelKey>();
    EXPECT_EQ(hash(parsed), hash(k)) << k.to_string();
    if (k.backend == Backend::kCpu) {
      EXPECT_EQ(hash(KernelKey::from_string(k.to_string())), hash(k)) << k.to_string();
    }
  }
}

TEST(KeyIdentity, EqualityDistinguishesEveryField) {
  const KernelKey base = base_cpu_key();
  const std::vector<testing::KeyVariant> variants = single_field_variants();
  std::unordered_set<KernelKey, KernelKeyHash> set = {base};
  for (const testing::KeyVariant& v : variants) {
    KernelKey k = base;
    v.apply(k);
    EXPECT_NE(k, base) << v.label;
    EXPECT_FALSE(k == base) << v.label;
    set.insert(k);
  }
  EXPECT_EQ(set.size(), variants.size() + 1);
  for (size_t i = 0; i < variants.size(); ++i) {
    for (size_t j = i + 1; j < variants.size(); ++j) {
      KernelKey a = base, b = base;
      variants[i].apply(a);
      variants[j].apply(b);
      EXPECT_NE(a, b) << variants[i].label << " vs " << variants[j].label;
    }
  }
}

TEST(KeyIdentity, HasFeatureMatchesWholeSignedNames) {
  const Target t{"x86_64-unknown-linux-gnu", "x", "+avx512f,-amx-tile,+amx-bf16x,+amx-bf16"};
  EXPECT_TRUE(t.has_feature("avx512f"));
  EXPECT_TRUE(t.has_feature("amx-bf16"));
  EXPECT_FALSE(t.has_feature("amx-tile"));
  EXPECT_FALSE(t.has_feature("avx512"));
  EXPECT_FALSE(t.has_feature("amx-bf16x-"));
  EXPECT_FALSE(Target{}.has_feature("avx512f"));
}

}  // namespace
}  // namespace flashjit
