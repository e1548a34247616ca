// Tests of the disk cache under concurrency: whole-entry consistency with several threads and
// several processes writing and reading one digest, the cross-process per-digest lock, and the
// once-per-process warning about a refused cache root.
#include <signal.h>

#include <atomic>
#include <chrono>
#include <latch>
#include <thread>
#include <vector>

#include "cache/disk_cache.h"
#include "tests/cache/cache_test_util.h"

namespace flashjit::cache::test {
namespace {

using std::chrono::milliseconds;

// One distinct, valid entry per writer for the same digest and key; payload sizes differ too, so
// that a file mixing two writers' bytes cannot pass for either.
std::vector<CacheEntry> writer_entries(int writers) {
  std::vector<CacheEntry> entries;
  for (int writer = 0; writer < writers; ++writer) {
    CacheEntry entry{"key:fwd/bf16/d128", "{\"writer\":" + std::to_string(writer) + "}", ""};
    entry.payload.resize(65536 + writer * 4099);
    for (size_t i = 0; i < entry.payload.size(); ++i) {
      entry.payload[i] = static_cast<char>((i * 31 + writer * 7) & 0xff);
    }
    entries.push_back(std::move(entry));
  }
  return entries;
}

// True if `entry` is exactly what one writer stored: key, metadata and payload all from one file.
bool is_one_of(const CacheEntry& entry, const std::vector<CacheEntry>& written) {
  for (const CacheEntry& expected : written) {
    if (entry.meta_json == expected.meta_json) {
      return entry.key == expected.key && entry.payload == expected.payload;
    }
  }
  return false;
}

using DiskCacheConcurrencyTest = CacheTestBase;

TEST_F(DiskCacheConcurrencyTest, ThreadsSeeWholeEntries) {
  constexpr int kThreads = 8;
  DiskCache cache(root());
  std::atomic<int> failures{0};
  std::latch start(kThreads);
  const std::vector<CacheEntry> written = writer_entries(kThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      const CacheEntry& mine = written[t];
      start.arrive_and_wait();
      for (int i = 0; i < 40; ++i) {
        if (!cache.store("cpu", "fwd", digest_a_, mine)) ++failures;
        // The entry exists from our own store on; any load must be some writer's whole entry.
        const auto loaded = cache.try_load("cpu", "fwd", digest_a_, mine.key);
        if (!loaded || !is_one_of(*loaded, written)) ++failures;
      }
    });
  }
  for (auto& thread : threads) thread.join();
  EXPECT_EQ(failures, 0);
  EXPECT_EQ(cache.counters().corrupt_entries, 0);
  EXPECT_EQ(cache.counters().write_errors, 0);
  EXPECT_EQ(cache.counters().hits, kThreads * 40);
  EXPECT_EQ(count_temp_files(root()), 0);
}

TEST_F(DiskCacheConcurrencyTest, ProcessesSeeWholeEntries) {
  constexpr int kWriters = 8;
  constexpr int kReaders = 8;
  int gate[2];
  ASSERT_EQ(::pipe(gate), 0);
  const std::string dir = root();
  const Digest digest = digest_a_;
  const std::vector<CacheEntry> written = writer_entries(kWriters);
  const std::string& key = written[0].key;
  auto wait_for_gate = [&] {
    ::close(gate[1]);
    char byte;
    while (::read(gate[0], &byte, 1) < 0 && errno == EINTR) {
    }
  };
  std::vector<pid_t> children;
  for (int w = 0; w < kWriters; ++w) {
    children.push_back(spawn([&, w] {
      wait_for_gate();
      DiskCache cache(dir);
      for (int i = 0; i < 30; ++i) {
        if (!cache.store("cpu", "fwd", digest, written[w])) return 1;
      }
      return 0;
    }));
  }
  for (int r = 0; r < kReaders; ++r) {
    children.push_back(spawn([&] {
      wait_for_gate();
      DiskCache cache(dir);
      // Loads until 100 hits, while the writers keep replacing the entry; misses come only
      // before the first store.
      const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
      for (int hits = 0; hits < 100;) {
        if (std::chrono::steady_clock::now() > deadline) return 3;
        const auto loaded = cache.try_load("cpu", "fwd", digest, key);
        if (loaded && !is_one_of(*loaded, written)) return 1;
        hits += loaded.has_value();
      }
      return cache.counters().corrupt_entries == 0 ? 0 : 2;
    }));
  }
  ::close(gate[0]);
  ::close(gate[1]);  // opens the gate for every child at once
  for (pid_t child : children) EXPECT_EQ(wait_exit(child), 0) << "child " << child;
  DiskCache cache(dir);
  const auto final_entry = cache.try_load("cpu", "fwd", digest, key);
  ASSERT_TRUE(final_entry.has_value());
  EXPECT_TRUE(is_one_of(*final_entry, written));
  EXPECT_EQ(count_temp_files(dir), 0);
}

TEST_F(DiskCacheConcurrencyTest, LockHeldByAnotherProcessTimesOutUntilItDies) {
  DiskCache cache(root());
  int ready[2];
  ASSERT_EQ(::pipe(ready), 0);
  const std::string dir = root();
  const pid_t holder = spawn([&] {
    ::close(ready[0]);
    DiskCache child_cache(dir);
    KeyLock lock = child_cache.lock(digest_a_, milliseconds(5000));
    if (!lock.held() || ::write(ready[1], "x", 1) != 1) return 3;
    while (true) ::pause();
  });
  ::close(ready[1]);
  char byte = 0;
  ASSERT_EQ(::read(ready[0], &byte, 1), 1) << "the child could not take the lock";
  ::close(ready[0]);

  const auto start = std::chrono::steady_clock::now();
  EXPECT_FALSE(cache.lock(digest_a_, milliseconds(100)).held());
  EXPECT_GE(std::chrono::steady_clock::now() - start, milliseconds(95));
  EXPECT_EQ(cache.counters().lock_timeouts, 1);
  EXPECT_TRUE(cache.lock(digest_b_, milliseconds(0)).held()) << "other digests are independent";

  ASSERT_EQ(::kill(holder, SIGKILL), 0);
  EXPECT_EQ(wait_exit(holder), -1);
  EXPECT_TRUE(cache.lock(digest_a_, milliseconds(2000)).held());
  EXPECT_EQ(cache.counters().lock_timeouts, 1);
  const std::string lock_path = v1() + "/locks/" + to_hex(digest_a_) + ".lock";
  EXPECT_TRUE(S_ISREG(mode_of(lock_path)));
  EXPECT_EQ(mode_of(lock_path) & 07777, 0600u);
}

TEST_F(DiskCacheConcurrencyTest, LockExcludesWithinOneProcessAndMoves) {
  DiskCache cache(root());
  KeyLock first = cache.lock(digest_a_, milliseconds(100));
  ASSERT_TRUE(first.held());
  EXPECT_FALSE(cache.lock(digest_a_, milliseconds(20)).held());
  EXPECT_EQ(cache.counters().lock_timeouts, 1);

  KeyLock moved(std::move(first));
  EXPECT_FALSE(first.held());  // NOLINT(bugprone-use-after-move): checking the moved-from state
  EXPECT_TRUE(moved.held());
  EXPECT_FALSE(cache.lock(digest_a_, milliseconds(0)).held());
  EXPECT_EQ(cache.counters().lock_timeouts, 2);

  KeyLock other = cache.lock(digest_b_, milliseconds(100));
  ASSERT_TRUE(other.held());
  other = std::move(moved);  // releases the lock on B, takes over the one on A
  EXPECT_TRUE(cache.lock(digest_b_, milliseconds(100)).held());
  EXPECT_FALSE(cache.lock(digest_a_, milliseconds(0)).held());
  other = KeyLock();
  EXPECT_TRUE(cache.lock(digest_a_, milliseconds(100)).held());
  EXPECT_EQ(cache.counters().lock_timeouts, 3);
}

// Helper for WarnsOncePerProcess, run in a fresh process; disabled so that it is skipped otherwise.
TEST(DiskCacheWarningHelper, DISABLED_TwoRefusedRoots) {
  TempDir tmp;
  for (const char* name : {"/a", "/b"}) {
    const std::string path = tmp.path() + name;
    ASSERT_EQ(::mkdir(path.c_str(), 0700), 0);
    ASSERT_EQ(::chmod(path.c_str(), 0777), 0);
    EXPECT_FALSE(DiskCache(path).usable());
  }
}

TEST(DiskCacheWarningTest, WarnsOncePerProcess) {
  int err[2];
  ASSERT_EQ(::pipe(err), 0);
  const pid_t child = ::fork();
  if (child == 0) {
    ::dup2(err[1], STDERR_FILENO);
    const int null_fd = ::open("/dev/null", O_WRONLY);
    ::dup2(null_fd, STDOUT_FILENO);
    ::execl("/proc/self/exe", "flashjit_cache_tests",
            "--gtest_filter=DiskCacheWarningHelper.DISABLED_TwoRefusedRoots",
            "--gtest_also_run_disabled_tests", static_cast<char*>(nullptr));
    ::_exit(127);
  }
  ::close(err[1]);
  std::string output;
  char buffer[4096];
  for (ssize_t got; (got = ::read(err[0], buffer, sizeof(buffer))) > 0;) output.append(buffer, got);
  ::close(err[0]);
  EXPECT_EQ(wait_exit(child), 0) << output;
  int warnings = 0;
  for (size_t pos = 0; (pos = output.find("flashjit: warning", pos)) != std::string::npos; ++pos) {
    ++warnings;
  }
  EXPECT_EQ(warnings, 1) << output;
}

}  // namespace
}  // namespace flashjit::cache::test
