// The FLASHJIT_* environment parser: well-formed values take effect; a malformed one keeps its
// default and produces a warning that names the variable, the expected form and the value.
#include <gtest/gtest.h>

#include <map>
#include <string>
#include <vector>

#include "runtime/config.h"

namespace flashjit {
namespace {

struct Parsed {
  JitConfig config;
  std::vector<std::string> warnings;
};

Parsed parse(const std::map<std::string, std::string>& env) {
  Parsed p;
  p.config = parse_config(
      [&](const char* name) -> const char* {
        const auto it = env.find(name);
        return it == env.end() ? nullptr : it->second.c_str();
      },
      p.warnings);
  return p;
}

TEST(JitConfigParse, AnEmptyEnvironmentGivesTheDefaults) {
  const Parsed p = parse({});
  EXPECT_TRUE(p.warnings.empty());
  EXPECT_FALSE(p.config.validate);
  EXPECT_EQ(p.config.num_threads, 0);
  EXPECT_EQ(p.config.lock_timeout_ms, JitConfig{}.lock_timeout_ms);
  EXPECT_EQ(p.config.cuda_block_m, 0);
  EXPECT_EQ(p.config.cuda_causal_section, 0);
  EXPECT_TRUE(p.config.nvrtc_options.empty());
  EXPECT_EQ(p.config.cuda_arch, "");
}

TEST(JitConfigParse, WellFormedValuesTakeEffect) {
  const Parsed p = parse({{"FLASHJIT_VALIDATE", "true"},
                          {"FLASHJIT_VERBOSE", "1"},
                          {"FLASHJIT_DISABLE_AMX", "off"},
                          {"FLASHJIT_NUM_THREADS", "3"},
                          {"FLASHJIT_LOCK_TIMEOUT_MS", "250"},
                          {"FLASHJIT_CUDA_TILES", "128,64,4"},
                          {"FLASHJIT_CUDA_CAUSAL_SECTION", "16"},
                          {"FLASHJIT_CUDA_ARCH", "compute_80"},
                          {"FLASHJIT_NVRTC_OPTIONS", " --time=t.csv  -lineinfo "}});
  EXPECT_TRUE(p.warnings.empty());
  EXPECT_TRUE(p.config.validate);
  EXPECT_TRUE(p.config.verbose);
  EXPECT_FALSE(p.config.disable_amx);
  EXPECT_EQ(p.config.num_threads, 3);
  EXPECT_EQ(p.config.lock_timeout_ms, 250);
  EXPECT_EQ(p.config.cuda_block_m, 128);
  EXPECT_EQ(p.config.cuda_block_n, 64);
  EXPECT_EQ(p.config.cuda_num_warps, 4);
  EXPECT_EQ(p.config.cuda_num_stages, 0);
  EXPECT_EQ(p.config.cuda_causal_section, 16);
  EXPECT_EQ(p.config.cuda_arch, "compute_80");
  EXPECT_EQ(p.config.nvrtc_options, (std::vector<std::string>{"--time=t.csv", "-lineinfo"}));
  EXPECT_EQ(parse({{"FLASHJIT_CUDA_TILES", "16,16,12,2"}}).config.cuda_num_stages, 2);
}

// Each malformed value: the setting keeps its default, and one warning names the variable, what
// it expects and the value given.
TEST(JitConfigParse, MalformedValuesKeepTheDefaultAndWarn) {
  struct Case {
    const char* name;
    const char* value;
    const char* expected;
  };
  const Case cases[] = {
      {"FLASHJIT_VALIDATE", "ture", "1/true/on/yes or 0/false/off/no"},
      {"FLASHJIT_DISABLE_JIT", "2", "1/true/on/yes or 0/false/off/no"},
      {"FLASHJIT_NUM_THREADS", "4x", "an integer from 0 to 2^30 - 1"},
      {"FLASHJIT_NUM_THREADS", "-1", "an integer from 0 to 2^30 - 1"},
      {"FLASHJIT_LOCK_TIMEOUT_MS", "99999999999", "an integer from 0 to 2^30 - 1"},
      {"FLASHJIT_CUDA_CAUSAL_SECTION", " 8", "an integer from 0 to 2^30 - 1"},
      {"FLASHJIT_CUDA_TILES", "128,64", "block_m,block_n,num_warps[,num_stages]"},
      {"FLASHJIT_CUDA_TILES", "128,64,4,2,1", "block_m,block_n,num_warps[,num_stages]"},
      {"FLASHJIT_CUDA_TILES", "128,,4", "block_m,block_n,num_warps[,num_stages]"},
      {"FLASHJIT_CUDA_TILES", "128x64x4", "block_m,block_n,num_warps[,num_stages]"},
      {"FLASHJIT_CUDA_ARCH", "sm80", "sm_XY, sm_XYa, compute_XY or compute_XYa"},
      {"FLASHJIT_CUDA_ARCH", "ampere", "sm_XY, sm_XYa, compute_XY or compute_XYa"},
  };
  const JitConfig defaults = parse({}).config;
  for (const Case& c : cases) {
    SCOPED_TRACE(std::string(c.name) + "=" + c.value);
    const Parsed p = parse({{c.name, c.value}});
    ASSERT_EQ(p.warnings.size(), 1u);
    EXPECT_NE(p.warnings[0].find(c.name), std::string::npos) << p.warnings[0];
    EXPECT_NE(p.warnings[0].find(c.expected), std::string::npos) << p.warnings[0];
    EXPECT_NE(p.warnings[0].find(std::string("\"") + c.value + "\""), std::string::npos)
        << p.warnings[0];
    EXPECT_EQ(p.config.validate, defaults.validate);
    EXPECT_EQ(p.config.disable_jit, defaults.disable_jit);
    EXPECT_EQ(p.config.num_threads, defaults.num_threads);
    EXPECT_EQ(p.config.lock_timeout_ms, defaults.lock_timeout_ms);
    EXPECT_EQ(p.config.cuda_causal_section, defaults.cuda_causal_section);
    EXPECT_EQ(p.config.cuda_block_m, defaults.cuda_block_m);
    EXPECT_EQ(p.config.cuda_num_warps, defaults.cuda_num_warps);
    EXPECT_EQ(p.config.cuda_arch, defaults.cuda_arch);
  }
}

}  // namespace
}  // namespace flashjit
