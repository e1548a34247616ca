// The host target honours FLASHJIT_DISABLE_AMX and FLASHJIT_DISABLE_BF16_DOT: ctest runs this
// binary again with each set (tests/runtime/CMakeLists.txt), and a disabled feature must be off
// in the target that every CPU kernel key carries, so that no kernel is generated for it.
#include <gtest/gtest.h>

#include <cstdlib>
#include <string>

#include "codegen/tile_config.h"
#include "runtime/cpu_target.h"

namespace flashjit {
namespace {

bool env_set(const char* name) {
  const char* v = std::getenv(name);
  return v != nullptr && std::string(v) == "1";
}

TEST(CpuTarget, DisabledFeaturesAreOffInTheHostTarget) {
  const Target& target = host_cpu_target();
  ASSERT_FALSE(target.features.empty());
  KernelKey key;
  key.target = target;
  key.dtype_q = key.dtype_kv = key.dtype_o = DType::kBFloat16;
  if (env_set("FLASHJIT_DISABLE_AMX")) {
    EXPECT_FALSE(target.has_feature("amx-bf16")) << target.features;
    EXPECT_FALSE(target.has_feature("amx-tile")) << target.features;
    EXPECT_FALSE(cpu_uses_amx(key));
  }
  if (env_set("FLASHJIT_DISABLE_BF16_DOT")) {
    EXPECT_FALSE(target.has_feature("avx512bf16")) << target.features;
    EXPECT_FALSE(cpu_uses_bf16_dot(key));
  }
  // A bf16 kernel takes exactly one path: AMX, pairs or fp32 FMA.
  EXPECT_FALSE(cpu_uses_amx(key) && cpu_uses_bf16_dot(key));
}

}  // namespace
}  // namespace flashjit
