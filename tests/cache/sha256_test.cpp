// Tests for the self-contained SHA-256: the FIPS 180-4 / NIST example vectors, padding edge cases,
// incremental hashing against one-shot hashing, and the length-prefixed update_field encoding.
#include "cache/sha256.h"

#include <gtest/gtest.h>

#include <string>

namespace flashjit::cache {
namespace {

TEST(Sha256Test, NistShortVectors) {
  EXPECT_EQ(to_hex(sha256("")), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(to_hex(sha256("abc")),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(to_hex(sha256("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq")),
            "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
  EXPECT_EQ(
      to_hex(sha256("abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmnhijklmnoijklmnopjk"
                    "lmnopqklmnopqrlmnopqrsmnopqrstnopqrstu")),
      "cf5b16a778af8380036ce59e7b0492370b249b11e8f07a51afac45037afee9d1");
}

TEST(Sha256Test, OneMillionA) {
  const std::string expected = "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0";
  EXPECT_EQ(to_hex(sha256(std::string(1000000, 'a'))), expected);
  Sha256 hasher;
  const std::string chunk(1000, 'a');
  for (int i = 0; i < 1000; ++i) hasher.update(chunk);
  EXPECT_EQ(to_hex(hasher.finish()), expected);
}

// Lengths around the 55/56 and 64-byte padding boundaries (expected values from Python hashlib).
TEST(Sha256Test, PaddingBoundaries) {
  const std::pair<size_t, const char*> cases[] = {
      {55, "9f4390f8d30c2dd92ec9f095b65e2b9ae9b0a925a5258e241c9f1e910f734318"},
      {56, "b35439a4ac6f0948b6d6f9e3c6af0f5f590ce20f1bde7090ef7970686ec6738a"},
      {63, "7d3e74a05d7db15bce4ad9ec0658ea98e3f06eeecf16b4c6fff2da457ddc2f34"},
      {64, "ffe054fe7ae0cb6dc65c3af9b61d5209f439851db43d0ba5997337df154668eb"},
      {65, "635361c48bb9eab14198e76ea8ab7f1a41685d6ad62aa9146d301d4f17eb0ae0"},
      {119, "31eba51c313a5c08226adf18d4a359cfdfd8d2e816b13f4af952f7ea6584dcfb"},
      {120, "2f3d335432c70b580af0e8e1b3674a7c020d683aa5f73aaaedfdc55af904c21c"},
      {128, "6836cf13bac400e9105071cd6af47084dfacad4e5e302c94bfed24e013afb73e"},
  };
  for (const auto& [length, expected] : cases) {
    EXPECT_EQ(to_hex(sha256(std::string(length, 'a'))), expected) << "length " << length;
  }
}

TEST(Sha256Test, IncrementalEqualsOneShot) {
  std::string message;
  for (int i = 0; i < 300; ++i) message.push_back(static_cast<char>((i * 37 + 11) & 0xff));
  const Digest expected = sha256(message);
  // Every split point, so that the first part ends at every offset within a block.
  for (size_t split = 0; split <= message.size(); ++split) {
    Sha256 hasher;
    hasher.update(message.substr(0, split)).update(message.substr(split));
    ASSERT_EQ(hasher.finish(), expected) << "split at " << split;
  }
  Sha256 bytewise;
  for (char c : message) bytewise.update(&c, 1);
  EXPECT_EQ(bytewise.finish(), expected);
  Sha256 uneven;
  for (size_t pos = 0, step = 1; pos < message.size(); pos += step, step = step * 2 + 1) {
    uneven.update(message.substr(pos, step));
  }
  EXPECT_EQ(uneven.finish(), expected);
}

TEST(Sha256Test, FinishResetsForTheNextMessage) {
  Sha256 hasher;
  hasher.update("abc");
  EXPECT_EQ(hasher.finish(), sha256("abc"));
  EXPECT_EQ(hasher.finish(), sha256(""));
  EXPECT_EQ(hasher.update("abc").finish(), sha256("abc"));
}

TEST(Sha256Test, UpdateFieldIsLengthPrefixed) {
  Digest ab_c = Sha256().update_field("ab").update_field("c").finish();
  Digest a_bc = Sha256().update_field("a").update_field("bc").finish();
  EXPECT_NE(ab_c, a_bc);
  EXPECT_NE(Sha256().update_field("").finish(), Sha256().finish());
  EXPECT_NE(Sha256().update_field("abc").finish(), sha256("abc"));

  // The prefix is the length as 8 bytes little-endian.
  const std::string text(300, 'x');
  const std::string prefix("\x2c\x01\0\0\0\0\0\0", 8);
  EXPECT_EQ(Sha256().update_field(text).finish(), sha256(prefix + text));
  EXPECT_EQ(Sha256().update_field("").finish(), sha256(std::string(8, '\0')));
}

TEST(Sha256Test, HexIsLowercaseAndFullLength) {
  Digest digest{};
  digest[0] = 0xAB;
  digest[31] = 0x0f;
  const std::string hex = to_hex(digest);
  ASSERT_EQ(hex.size(), 64u);
  EXPECT_EQ(hex.substr(0, 2), "ab");
  EXPECT_EQ(hex.substr(62), "0f");
  EXPECT_EQ(hex.substr(2, 60), std::string(60, '0'));
}

}  // namespace
}  // namespace flashjit::cache
