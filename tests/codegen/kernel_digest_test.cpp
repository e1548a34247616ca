// cpu_kernel_digest(): 64 lowercase hex digits, a pure function of (key, source), and sensitive
// to every key field (each flag, dtypes, head dims, tiles, target triple / cpu / features,
// score_mod hash) and to any one-byte change of the source.
#include <gtest/gtest.h>

#include <map>
#include <set>
#include <string>

#include "codegen/generate_source.h"
#include "key_variants.h"
#include "runtime/kernel_registry.h"

namespace flashjit {
namespace {

using testing::base_cpu_key;
using testing::single_field_variants;

bool is_hex64(const std::string& s) {
  if (s.size() != 64) return false;
  for (char c : s) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  }
  return true;
}

TEST(KernelDigest, IsSixtyFourHexDigitsAndDeterministic) {
  const KernelKey key = base_cpu_key();
  const std::string source = generate_cpu_source(key);
  const std::string digest = cpu_kernel_digest(key, source);
  EXPECT_TRUE(is_hex64(digest)) << digest;
  EXPECT_EQ(cpu_kernel_digest(key, source), digest);
  EXPECT_EQ(cpu_kernel_digest(KernelKey(key), std::string(source)), digest);
  EXPECT_TRUE(is_hex64(cpu_kernel_digest(key, ""))) << cpu_kernel_digest(key, "");
}

TEST(KernelDigest, ChangesWithEveryKeyField) {
  const KernelKey base = base_cpu_key();
  const std::string source = generate_cpu_source(base);
  const std::string base_digest = cpu_kernel_digest(base, source);
  std::map<std::string, std::string> seen = {{base_digest, "base"}};
  std::set<std::string> fields;
  for (const testing::KeyVariant& v : single_field_variants()) {
    KernelKey k = base;
    v.apply(k);
    const std::string digest = cpu_kernel_digest(k, source);
    EXPECT_TRUE(is_hex64(digest)) << v.label;
    EXPECT_NE(digest, base_digest) << v.label;
    const auto [it, inserted] = seen.emplace(digest, v.label);
    EXPECT_TRUE(inserted) << v.label << " has the digest of " << it->second;
    fields.insert(v.field);
  }
  EXPECT_GE(fields.size(), 25u);
}

TEST(KernelDigest, ChangesWithEveryFlagOffFromAllOn) {
  KernelKey all_on = base_cpu_key();
#define FLASHJIT_FLAG_ON(name) all_on.name = true;
  FLASHJIT_KEY_FLAGS(FLASHJIT_FLAG_ON)
#undef FLASHJIT_FLAG_ON
  const std::string digest = cpu_kernel_digest(all_on, "source");
  int flags = 0;
#define FLASHJIT_FLAG_OFF(name)                                 \
  {                                                             \
    KernelKey k = all_on;                                       \
    k.name = false;                                             \
    EXPECT_NE(cpu_kernel_digest(k, "source"), digest) << #name; \
    ++flags;                                                    \
  }
  FLASHJIT_KEY_FLAGS(FLASHJIT_FLAG_OFF)
#undef FLASHJIT_FLAG_OFF
  EXPECT_EQ(flags, 15);
}

TEST(KernelDigest, ChangesWithAnyOneByteOfTheSource) {
  const KernelKey key = base_cpu_key();
  const std::string source = generate_cpu_source(key);
  const std::string digest = cpu_kernel_digest(key, source);
  std::set<std::string> digests = {digest};
  for (size_t i = 0; i < source.size(); i += 7) {
    std::string changed = source;
    changed[i] = static_cast<char>(changed[i] ^ 1);
    const std::string d = cpu_kernel_digest(key, changed);
    EXPECT_NE(d, digest) << "byte " << i;
    digests.insert(d);
  }
  for (const std::string& changed :
       {source + " ", source.substr(0, source.size() - 1), std::string(" ") + source}) {
    const std::string d = cpu_kernel_digest(key, changed);
    EXPECT_NE(d, digest);
    digests.insert(d);
  }
  EXPECT_EQ(digests.size(), 1 + (source.size() + 6) / 7 + 3);
}

TEST(KernelDigest, KeyAndSourceAreNotConcatenatedAmbiguously) {
  KernelKey a = base_cpu_key();
  KernelKey b = base_cpu_key();
  b.target.features = a.target.features + "x";
  EXPECT_NE(cpu_kernel_digest(a, "xsource"), cpu_kernel_digest(b, "source"));
}

}  // namespace
}  // namespace flashjit
