// The causal CUDA grid's tile order (templates/attention_math.h, causal_tile_order): a kernel
// that skipped or repeated a (slot, row block) pair would leave rows of out unwritten or race on
// them, so every pair must come up exactly once, whatever the section size.
#include <gtest/gtest.h>

#include <vector>

#include "flashjit/attention_math.h"

namespace flashjit_kernel {
namespace {

TEST(CausalTileOrder, VisitsEveryTileOnceLongestFirstWithinEachSection) {
  for (int slots : {1, 2, 3, 7, 16, 25, 128}) {
    for (int m_blocks : {1, 2, 5, 16, 33}) {
      for (int sections : {1, 2, 3, 5, 8, 25, 127, 128}) {
        if (sections > slots) continue;
        SCOPED_TRACE(testing::Message() << "slots " << slots << ", m_blocks " << m_blocks
                                        << ", sections " << sections);
        // Section of each slot, as the order defines it: the first slots % sections hold one
        // slot more than the others.
        std::vector<int> section_of(slots);
        for (int s = 0, slot = 0; s < sections; ++s)
          for (int n = 0; n < slots / sections + (s < slots % sections); ++n)
            section_of[slot++] = s;
        std::vector<int> seen(slots * m_blocks, 0);
        int prev_m = 0, prev_section = -1;
        for (int lin = 0; lin < slots * m_blocks; ++lin) {
          int m = -1, slot = -1;
          causal_tile_order(lin, slots, m_blocks, sections, m, slot);
          ASSERT_GE(m, 0);
          ASSERT_LT(m, m_blocks);
          ASSERT_GE(slot, 0);
          ASSERT_LT(slot, slots);
          ++seen[slot * m_blocks + m];
          // Sections come one after another, and within one no tile is shorter than a later one.
          const int s = section_of[slot];
          ASSERT_GE(s, prev_section) << "lin " << lin;
          if (s == prev_section) {
            ASSERT_LE(m, prev_m) << "lin " << lin;
          }
          prev_section = s;
          prev_m = m;
        }
        for (int i = 0; i < slots * m_blocks; ++i) ASSERT_EQ(seen[i], 1) << "tile " << i;
      }
    }
  }
}

TEST(CausalTileOrder, OneSectionIsTheGlobalLongestFirstOrder) {
  // One section: row block m_blocks - 1 of every slot first, then the next row block.
  const int slots = 6, m_blocks = 4;
  for (int lin = 0; lin < slots * m_blocks; ++lin) {
    int m = -1, slot = -1;
    causal_tile_order(lin, slots, m_blocks, 1, m, slot);
    EXPECT_EQ(m, m_blocks - 1 - lin / slots);
    EXPECT_EQ(slot, lin % slots);
  }
}

}  // namespace
}  // namespace flashjit_kernel
