// The guard pages that the CPU sweeps place their buffers against (reference/device_mirrors.h):
// a read one element past either end must crash, or those sweeps would prove nothing.
#include <gtest/gtest.h>

#include <cstdint>
#include <vector>

#include "reference/device_mirrors.h"

namespace flashjit::testing {
namespace {

int32_t read_at(const volatile int32_t* p, int64_t i) { return p[i]; }

TEST(GuardPagesDeathTest, ReadPastTheEndCrashes) {
  std::vector<int32_t> host(1000, 7);
  DeviceMirrors mirrors(Device{}, GuardSide::kAfter);
  auto* p = static_cast<int32_t*>(mirrors.place(host.data(), host.size() * 4));
  EXPECT_EQ(read_at(p, 999), 7);
  EXPECT_DEATH(read_at(p, 1000), "");
}

TEST(GuardPagesDeathTest, ReadBeforeTheStartCrashes) {
  std::vector<int32_t> host(1000, 7);
  DeviceMirrors mirrors(Device{}, GuardSide::kBefore);
  auto* p = static_cast<int32_t*>(mirrors.place(host.data(), host.size() * 4));
  EXPECT_EQ(read_at(p, 0), 7);
  EXPECT_DEATH(read_at(p, -1), "");
}

TEST(GuardPages, CopiesGoBothWays) {
  for (GuardSide side : {GuardSide::kAfter, GuardSide::kBefore}) {
    std::vector<int32_t> host(5000, 1);
    DeviceMirrors mirrors(Device{}, side);
    auto* p = static_cast<int32_t*>(mirrors.place(host.data(), host.size() * 4));
    ASSERT_NE(p, host.data());
    EXPECT_EQ(mirrors.place(host.data(), host.size() * 4), p);  // one copy per host buffer
    p[4999] = 5;
    mirrors.copy_back(host.data());
    EXPECT_EQ(host[4999], 5);
    host[0] = 9;
    mirrors.upload(host.data());
    EXPECT_EQ(p[0], 9);
  }
}

}  // namespace
}  // namespace flashjit::testing
