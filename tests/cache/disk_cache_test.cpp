// Tests for the on-disk kernel cache: round trips, detection and self-healing of damaged entries,
// refusal of insecure, unwritable or unusable locations, and default_cache_root(). Concurrency and
// locking are in disk_cache_concurrency_test.cpp.
#include "cache/disk_cache.h"

#include <pwd.h>
#include <signal.h>
#include <sys/resource.h>

#include <chrono>
#include <cstdlib>
#include <optional>

#include "tests/cache/cache_test_util.h"

namespace flashjit::cache::test {
namespace {

using std::chrono::milliseconds;

class DiskCacheTest : public CacheTestBase {
 protected:
  CacheEntry sample_entry() const {
    using namespace std::string_literals;
    return CacheEntry{"fwd:bf16:d128:causal", "{\"compile_ms\":12}",
                      "\x7f"
                      "ELF\0\0\x01\xff payload\0bytes"s +
                          std::string(500, 'p')};
  }

  // Puts `bytes` at entry A's path and expects try_load to reject it, count it and delete it; then
  // expects a fresh store to heal the entry.
  void expect_rejected(DiskCache& cache, const std::string& bytes, const std::string& what) {
    SCOPED_TRACE(what);
    const std::string path = cache.entry_path("cpu", "fwd", digest_a_);
    ASSERT_TRUE(write_bytes(path, bytes));
    const int64_t corrupt = cache.counters().corrupt_entries;
    const int64_t misses = cache.counters().misses;
    EXPECT_FALSE(cache.try_load("cpu", "fwd", digest_a_, sample_entry().key).has_value());
    EXPECT_EQ(cache.counters().corrupt_entries, corrupt + 1);
    EXPECT_EQ(cache.counters().misses, misses + 1);
    EXPECT_FALSE(exists(path)) << "a corrupt entry must be deleted";
    ASSERT_TRUE(cache.store("cpu", "fwd", digest_a_, sample_entry()));
    const auto healed = cache.try_load("cpu", "fwd", digest_a_, sample_entry().key);
    ASSERT_TRUE(healed.has_value());
    EXPECT_EQ(healed->payload, sample_entry().payload);
  }
};

TEST_F(DiskCacheTest, StoreThenLoadRoundTrips) {
  DiskCache cache(root());
  ASSERT_TRUE(cache.usable());
  EXPECT_EQ(cache.root(), root());
  ASSERT_TRUE(cache.store("cpu", "fwd", digest_a_, sample_entry()));
  const auto loaded = cache.try_load("cpu", "fwd", digest_a_, sample_entry().key);
  ASSERT_TRUE(loaded.has_value());
  EXPECT_EQ(loaded->key, sample_entry().key);
  EXPECT_EQ(loaded->meta_json, sample_entry().meta_json);
  EXPECT_EQ(loaded->payload, sample_entry().payload);
  EXPECT_EQ(cache.counters().hits, 1);
  EXPECT_EQ(cache.counters().misses, 0);

  const std::string path = cache.entry_path("cpu", "fwd", digest_a_);
  EXPECT_EQ(path, v1() + "/cpu/fwd." + to_hex(digest_a_).substr(0, 16) + ".fjk");
  EXPECT_TRUE(S_ISREG(mode_of(path)));
  EXPECT_EQ(mode_of(path) & 07777, 0600u);
  EXPECT_EQ(mode_of(root()) & 07777, 0700u);
  EXPECT_EQ(mode_of(v1()) & 07777, 0700u);
  EXPECT_EQ(mode_of(v1() + "/cpu") & 07777, 0700u);

  // Empty fields, and a second cache object reading what the first wrote.
  ASSERT_TRUE(cache.store("cpu", "fwd", digest_b_, CacheEntry{}));
  DiskCache reopened(root() + "/");
  const auto empty = reopened.try_load("cpu", "fwd", digest_b_, "");
  ASSERT_TRUE(empty.has_value());
  EXPECT_TRUE(empty->key.empty() && empty->meta_json.empty() && empty->payload.empty());
}

TEST_F(DiskCacheTest, CreatesMissingParentDirectories) {
  DiskCache cache(tmp_.path() + "/a/b/c");
  ASSERT_TRUE(cache.usable());
  EXPECT_EQ(mode_of(tmp_.path() + "/a/b/c") & 07777, 0700u);
  EXPECT_TRUE(cache.store("cpu", "fwd", digest_a_, sample_entry()));
}

TEST_F(DiskCacheTest, AbsentEntryIsAMiss) {
  DiskCache cache(root());
  EXPECT_FALSE(cache.try_load("cpu", "fwd", digest_a_, "k").has_value());
  ASSERT_TRUE(cache.store("cpu", "fwd", digest_a_, sample_entry()));
  EXPECT_FALSE(cache.try_load("cpu", "fwd", digest_b_, "k").has_value());
  EXPECT_FALSE(cache.try_load("cpu", "bwd", digest_a_, "k").has_value());
  EXPECT_EQ(cache.counters().misses, 3);
  EXPECT_EQ(cache.counters().hits, 0);
  EXPECT_EQ(cache.counters().corrupt_entries, 0);
  EXPECT_TRUE(exists(cache.entry_path("cpu", "fwd", digest_a_)));
}

TEST_F(DiskCacheTest, DetectsFlippedBytes) {
  DiskCache cache(root());
  ASSERT_TRUE(cache.store("cpu", "fwd", digest_a_, sample_entry()));
  const std::string good = read_bytes(cache.entry_path("cpu", "fwd", digest_a_));
  const size_t key_start = 4 + 4 + 32 + 8;
  // Magic, version, digest, key length, key, payload, last payload byte, checksum.
  std::vector<size_t> offsets = {0, 3, 4, 20, 40, key_start, key_start + 5, good.size() / 2};
  for (size_t from_end : {33, 32, 1}) offsets.push_back(good.size() - from_end);
  for (size_t offset : offsets) {
    std::string bad = good;
    bad[offset] ^= 0x01;
    expect_rejected(cache, bad, "flipped byte at " + std::to_string(offset));
  }
}

TEST_F(DiskCacheTest, DetectsTruncation) {
  DiskCache cache(root());
  ASSERT_TRUE(cache.store("cpu", "fwd", digest_a_, sample_entry()));
  const std::string good = read_bytes(cache.entry_path("cpu", "fwd", digest_a_));
  for (size_t length : {size_t{0}, size_t{1}, size_t{40}, size_t{95}, size_t{96}, good.size() / 2,
                        good.size() - 32, good.size() - 1}) {
    expect_rejected(cache, good.substr(0, length), "truncated to " + std::to_string(length));
  }
  expect_rejected(cache, good + "x", "one byte appended");
}

TEST_F(DiskCacheTest, DetectsBadHeaderAndLengthsEvenWithValidChecksum) {
  DiskCache cache(root());
  ASSERT_TRUE(cache.store("cpu", "fwd", digest_a_, sample_entry()));
  const std::string good = read_bytes(cache.entry_path("cpu", "fwd", digest_a_));
  std::string bad = good;
  bad.replace(0, 4, "FJKX");
  expect_rejected(cache, with_valid_checksum(bad), "wrong magic");
  bad = good;
  bad[4] = 2;
  expect_rejected(cache, with_valid_checksum(bad), "format version 2");
  bad = good;
  bad.replace(40, 8, std::string(8, '\xff'));
  expect_rejected(cache, with_valid_checksum(bad), "key length past the end");
  bad = good;
  bad.insert(bad.size() - 32, "junk");
  expect_rejected(cache, with_valid_checksum(bad), "bytes between payload and checksum");
}

TEST_F(DiskCacheTest, DetectsEntryOfAnotherDigestOrKey) {
  DiskCache cache(root());
  ASSERT_TRUE(cache.store("cpu", "fwd", digest_a_, sample_entry()));
  const std::string path_a = cache.entry_path("cpu", "fwd", digest_a_);
  const std::string path_b = cache.entry_path("cpu", "fwd", digest_b_);
  ASSERT_TRUE(write_bytes(path_b, read_bytes(path_a)));
  EXPECT_FALSE(cache.try_load("cpu", "fwd", digest_b_, sample_entry().key).has_value());
  EXPECT_EQ(cache.counters().corrupt_entries, 1);
  EXPECT_FALSE(exists(path_b));
  EXPECT_TRUE(exists(path_a));

  EXPECT_FALSE(cache.try_load("cpu", "fwd", digest_a_, "another key").has_value());
  EXPECT_EQ(cache.counters().corrupt_entries, 2);
  EXPECT_EQ(cache.counters().misses, 2);
  EXPECT_FALSE(exists(path_a));
  ASSERT_TRUE(cache.store("cpu", "fwd", digest_a_, sample_entry()));
  EXPECT_TRUE(cache.try_load("cpu", "fwd", digest_a_, sample_entry().key).has_value());
}

TEST_F(DiskCacheTest, UnwritableDirectoryCountsWriteErrorAndLeavesNoTemp) {
  if (::geteuid() == 0) GTEST_SKIP() << "root ignores directory permission bits";
  DiskCache cache(root());
  ASSERT_TRUE(cache.usable());
  ASSERT_EQ(::chmod(root().c_str(), 0500), 0);
  ASSERT_EQ(::chmod(v1().c_str(), 0500), 0);
  EXPECT_FALSE(cache.store("cpu", "fwd", digest_a_, sample_entry()));
  EXPECT_EQ(cache.counters().write_errors, 1);
  ASSERT_EQ(::chmod(v1().c_str(), 0700), 0);
  ASSERT_TRUE(cache.store("cpu", "fwd", digest_a_, sample_entry()));
  ASSERT_EQ(::chmod((v1() + "/cpu").c_str(), 0500), 0);
  EXPECT_FALSE(cache.store("cpu", "fwd", digest_b_, sample_entry()));
  EXPECT_EQ(cache.counters().write_errors, 2);
  EXPECT_EQ(count_temp_files(root()), 0);
  EXPECT_TRUE(cache.try_load("cpu", "fwd", digest_a_, sample_entry().key).has_value());
}

// A write that fails halfway (here: past RLIMIT_FSIZE, which also binds root) must leave no temp
// file behind. Runs in a child so that the limit does not leak into other tests.
TEST_F(DiskCacheTest, FailedWriteLeavesNoTempFile) {
  DiskCache warmup(root());
  ASSERT_TRUE(warmup.store("cpu", "fwd", digest_b_, sample_entry()));
  const std::string dir = root();
  const pid_t child = spawn([&] {
    ::signal(SIGXFSZ, SIG_IGN);
    struct rlimit limit = {16384, 16384};
    if (::setrlimit(RLIMIT_FSIZE, &limit) != 0) return 10;
    DiskCache cache(dir);
    CacheEntry big = sample_entry();
    big.payload.assign(1 << 20, 'x');
    if (cache.store("cpu", "fwd", digest_a_, big)) return 11;
    if (cache.counters().write_errors != 1) return 12;
    if (count_temp_files(dir) != 0) return 13;
    if (!cache.store("cpu", "fwd", digest_a_, sample_entry())) return 14;
    return 0;
  });
  EXPECT_EQ(wait_exit(child), 0);
  EXPECT_TRUE(warmup.try_load("cpu", "fwd", digest_a_, sample_entry().key).has_value());
}

TEST_F(DiskCacheTest, UnusableRootsFallBackToMemoryOnly) {
  const std::string regular_file = tmp_.path() + "/file";
  ASSERT_TRUE(write_bytes(regular_file, "x"));
  std::vector<std::string> roots = {regular_file + "/cache", regular_file,
                                    "/proc/self/flashjit-cache", ""};
  if (::geteuid() != 0) {
    const std::string read_only = tmp_.path() + "/read_only";
    ASSERT_EQ(::mkdir(read_only.c_str(), 0500), 0);
    roots.push_back(read_only + "/cache");
  }
  for (const std::string& path : roots) {
    SCOPED_TRACE("root '" + path + "'");
    std::optional<DiskCache> cache;
    EXPECT_NO_THROW(cache.emplace(path));
    EXPECT_FALSE(cache->usable());
    EXPECT_NO_THROW(EXPECT_FALSE(cache->store("cpu", "fwd", digest_a_, sample_entry())));
    EXPECT_NO_THROW(EXPECT_FALSE(cache->try_load("cpu", "fwd", digest_a_, "k").has_value()));
    EXPECT_FALSE(cache->lock(digest_a_, milliseconds(10)).held());
    EXPECT_EQ(cache->counters().write_errors, 0);
    EXPECT_EQ(cache->counters().misses, 1);
    EXPECT_EQ(cache->counters().corrupt_entries, 0);
    EXPECT_EQ(cache->counters().lock_timeouts, 0);
  }
  EXPECT_EQ(DiskCache("").entry_path("cpu", "fwd", digest_a_), "");
}

TEST_F(DiskCacheTest, RefusesGroupOrWorldWritableRoot) {
  for (mode_t mode : {mode_t{0777}, mode_t{0770}, mode_t{0702}, mode_t{01777}}) {
    ASSERT_EQ(::mkdir(root().c_str(), 0700), 0);
    ASSERT_EQ(::chmod(root().c_str(), mode), 0);
    EXPECT_FALSE(DiskCache(root()).usable()) << std::oct << mode;
    fs::remove_all(root());
  }
}

TEST_F(DiskCacheTest, RefusesSymlinkedRootOrVersionDir) {
  const std::string real = tmp_.path() + "/real";
  ASSERT_TRUE(DiskCache(real).usable());
  ASSERT_EQ(::symlink(real.c_str(), root().c_str()), 0);
  EXPECT_FALSE(DiskCache(root()).usable());
  EXPECT_FALSE(DiskCache(root() + "/").usable());

  const std::string other = tmp_.path() + "/other";
  ASSERT_EQ(::mkdir(other.c_str(), 0700), 0);
  ASSERT_EQ(::mkdir((other + "/elsewhere").c_str(), 0700), 0);
  ASSERT_EQ(::symlink((other + "/elsewhere").c_str(), (other + "/v1").c_str()), 0);
  EXPECT_FALSE(DiskCache(other).usable());
}

TEST_F(DiskCacheTest, RefusesRootOwnedByAnotherUser) {
  if (::geteuid() != 0) GTEST_SKIP() << "only root can give a directory to another user";
  ASSERT_EQ(::mkdir(root().c_str(), 0700), 0);
  ASSERT_EQ(::chown(root().c_str(), 12345, 12345), 0);
  EXPECT_FALSE(DiskCache(root()).usable());
}

TEST_F(DiskCacheTest, RefusesEntriesWithLoosePermissionsOrSymlinks) {
  DiskCache cache(root());
  ASSERT_TRUE(cache.store("cpu", "fwd", digest_a_, sample_entry()));
  const std::string path = cache.entry_path("cpu", "fwd", digest_a_);
  const std::string good = read_bytes(path);
  for (mode_t mode : {mode_t{0666}, mode_t{0620}, mode_t{0602}}) {
    ASSERT_EQ(::chmod(path.c_str(), mode), 0);
    EXPECT_FALSE(cache.try_load("cpu", "fwd", digest_a_, sample_entry().key).has_value());
    EXPECT_FALSE(exists(path)) << "our own loose entry is discarded";
    ASSERT_TRUE(cache.store("cpu", "fwd", digest_a_, sample_entry()));
  }
  EXPECT_EQ(cache.counters().corrupt_entries, 3);

  const std::string outside = tmp_.path() + "/outside.fjk";
  ASSERT_TRUE(write_bytes(outside, good));
  ASSERT_EQ(::unlink(path.c_str()), 0);
  ASSERT_EQ(::symlink(outside.c_str(), path.c_str()), 0);
  EXPECT_FALSE(cache.try_load("cpu", "fwd", digest_a_, sample_entry().key).has_value());
  EXPECT_EQ(cache.counters().corrupt_entries, 4);
  EXPECT_EQ(read_bytes(outside), good) << "the symlink target is left alone";
  ASSERT_TRUE(cache.store("cpu", "fwd", digest_a_, sample_entry()));
  EXPECT_FALSE(S_ISLNK(mode_of(path)));
  EXPECT_TRUE(cache.try_load("cpu", "fwd", digest_a_, sample_entry().key).has_value());
  EXPECT_TRUE(exists(outside));
}

TEST_F(DiskCacheTest, RefusesEntryOwnedByAnotherUserWithoutDeletingIt) {
  if (::geteuid() != 0) GTEST_SKIP() << "only root can give a file to another user";
  DiskCache cache(root());
  ASSERT_TRUE(cache.store("cpu", "fwd", digest_a_, sample_entry()));
  const std::string path = cache.entry_path("cpu", "fwd", digest_a_);
  ASSERT_EQ(::chown(path.c_str(), 12345, 12345), 0);
  EXPECT_FALSE(cache.try_load("cpu", "fwd", digest_a_, sample_entry().key).has_value());
  EXPECT_EQ(cache.counters().corrupt_entries, 1);
  EXPECT_TRUE(exists(path));
}

TEST_F(DiskCacheTest, RejectsNamesThatLeaveTheCache) {
  DiskCache cache(root());
  const std::pair<std::string, std::string> names[] = {
      {"../escape", "fwd"}, {"a/b", "fwd"}, {"", "fwd"}, {".hidden", "fwd"},
      {"locks", "fwd"},     {"cpu", "a/b"}, {"cpu", ""}, {"cpu", ".tmp.x"}};
  for (const auto& [subdir, stem] : names) {
    EXPECT_FALSE(cache.store(subdir, stem, digest_a_, sample_entry())) << subdir << " " << stem;
    EXPECT_FALSE(cache.try_load(subdir, stem, digest_a_, sample_entry().key).has_value());
  }
  EXPECT_EQ(cache.counters().write_errors, 8);
  EXPECT_EQ(cache.counters().misses, 8);
  EXPECT_FALSE(exists(tmp_.path() + "/escape"));
  EXPECT_FALSE(exists(root() + "/escape"));
}

TEST_F(DiskCacheTest, NoTempFilesRemainAfterManyStores) {
  DiskCache cache(root());
  for (int i = 0; i < 200; ++i) {
    CacheEntry entry = sample_entry();
    entry.payload += std::to_string(i);
    ASSERT_TRUE(cache.store("cpu", "stem" + std::to_string(i % 4),
                            sha256("digest " + std::to_string(i % 25)), entry));
  }
  EXPECT_EQ(count_temp_files(root()), 0);
  // (i % 4, i % 25) takes 100 distinct values: one entry file each.
  EXPECT_EQ(file_names_under(v1() + "/cpu").size(), 100u);
}

class DefaultCacheRootTest : public ::testing::Test {
 protected:
  void SetUp() override {
    for (const char* name : kVariables) {
      const char* value = std::getenv(name);
      saved_.emplace_back(name, value ? std::optional<std::string>(value) : std::nullopt);
      ::unsetenv(name);
    }
  }
  void TearDown() override {
    for (const auto& [name, value] : saved_) {
      if (value)
        ::setenv(name, value->c_str(), 1);
      else
        ::unsetenv(name);
    }
  }
  static constexpr const char* kVariables[] = {"FLASHJIT_CACHE_DIR", "XDG_CACHE_HOME", "HOME"};
  std::vector<std::pair<const char*, std::optional<std::string>>> saved_;
};

TEST_F(DefaultCacheRootTest, FollowsThePrecedenceOfVariables) {
  ::setenv("HOME", "/home/someone", 1);
  EXPECT_EQ(default_cache_root(), "/home/someone/.cache/flashjit");
  ::setenv("XDG_CACHE_HOME", "relative/ignored", 1);
  EXPECT_EQ(default_cache_root(), "/home/someone/.cache/flashjit");
  ::setenv("XDG_CACHE_HOME", "/xdg/cache", 1);
  EXPECT_EQ(default_cache_root(), "/xdg/cache/flashjit");
  ::setenv("FLASHJIT_CACHE_DIR", "/explicit/dir", 1);
  EXPECT_EQ(default_cache_root(), "/explicit/dir");
  ::setenv("FLASHJIT_CACHE_DIR", "", 1);
  EXPECT_EQ(default_cache_root(), "/xdg/cache/flashjit");
}

TEST_F(DefaultCacheRootTest, FallsBackToThePasswordDatabase) {
  const struct passwd* entry = ::getpwuid(::geteuid());
  const std::string expected = entry && entry->pw_dir && entry->pw_dir[0]
                                   ? std::string(entry->pw_dir) + "/.cache/flashjit"
                                   : "";
  EXPECT_EQ(default_cache_root(), expected);
}

}  // namespace
}  // namespace flashjit::cache::test
