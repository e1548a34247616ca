// The on-disk kernel store: one file per digest holding the binary, the key and metadata, published
// atomically and verified on every load. Knows bytes and keys only, nothing of CUDA or LLVM.
// Contract: try_load() and store() never throw for problems with the disk or an entry; they count
// them. Only construction with impossible options throws.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "cache/sha256.h"

namespace flashjit::cache {

struct CacheEntry {
  std::string key;        // the full kernel key string; must match on load
  std::string meta_json;  // free-form metadata (versions, flags, compile time)
  std::string payload;    // the binary (object file or cubin)
};

struct DiskCacheCounters {
  std::atomic<int64_t> hits{0};
  std::atomic<int64_t> misses{0};
  std::atomic<int64_t> corrupt_entries{0};  // failed verification: discarded and counted
  std::atomic<int64_t> write_errors{0};
  std::atomic<int64_t> lock_timeouts{0};
};

// Where the cache lives: $FLASHJIT_CACHE_DIR, else $XDG_CACHE_HOME/flashjit, else
// ~/.cache/flashjit. Returns "" when none of them can be formed.
std::string default_cache_root();

class DiskCache;

// A cross-process lock on one digest (flock on a lock file; the kernel releases it if the holder
// dies). Unlocks on destruction.
class KeyLock {
 public:
  KeyLock() = default;
  KeyLock(KeyLock&&) noexcept;
  KeyLock& operator=(KeyLock&&) noexcept;
  ~KeyLock();
  bool held() const { return fd_ >= 0; }

 private:
  friend class DiskCache;
  explicit KeyLock(int fd) : fd_(fd) {}
  int fd_ = -1;
};

class DiskCache {
 public:
  // root: the cache directory ("" = memory only). It is created 0700 if missing. A root (or its
  // versioned subdirectory) that is a symlink, owned by another user or writable by group/others
  // is refused: one warning on stderr, then the cache runs memory-only (usable() == false).
  explicit DiskCache(std::string root);
  ~DiskCache();
  DiskCache(const DiskCache&) = delete;
  DiskCache& operator=(const DiskCache&) = delete;

  bool usable() const;
  const std::string& root() const;
  // Path the entry for (subdir, stem, digest) is stored at; for messages and tools.
  std::string entry_path(const std::string& subdir, const std::string& stem,
                         const Digest& digest) const;

  // Loads and verifies an entry: magic, format version, checksum over the whole file, embedded
  // digest and key. A bad entry is deleted, counted as corrupt and reported as a miss.
  std::optional<CacheEntry> try_load(const std::string& subdir, const std::string& stem,
                                     const Digest& digest, const std::string& expected_key);

  // Publishes atomically: random temp name in the same directory, write, fsync, rename. Returns
  // false (and counts a write error) on any failure; leaves no temp file behind.
  bool store(const std::string& subdir, const std::string& stem, const Digest& digest,
             const CacheEntry& entry);

  // Waits up to `timeout` for the per-digest lock. On timeout or when the lock file cannot be
  // created, returns a KeyLock with held() == false (counted in lock_timeouts for the former):
  // the lock only avoids duplicate compiles, correctness never depends on it.
  KeyLock lock(const Digest& digest, std::chrono::milliseconds timeout);

  const DiskCacheCounters& counters() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace flashjit::cache
