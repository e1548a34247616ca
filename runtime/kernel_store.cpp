// The shared half of the kernel registries: counters, disk protocol, digests.
#include "runtime/kernel_store.h"

#include <fmt/format.h>

#include <chrono>
#include <cstdio>

#include "cache/disk_cache.h"
#include "cache/sha256.h"
#include "runtime/config.h"

namespace flashjit {
namespace {

struct Counters {
  std::atomic<int64_t> memory_hits{0}, disk_hits{0}, misses{0}, compiles{0};
  std::mutex time_mutex;
  double compile_ms = 0, load_ms = 0;
};

Counters& counters() {
  static Counters c;
  return c;
}

cache::DiskCache& disk_cache() {
  static cache::DiskCache cache(jit_config().cache_dir);
  return cache;
}

cache::Digest parse_hex(const std::string& hex) {
  cache::Digest d{};
  for (size_t i = 0; i < d.size(); ++i)
    d[i] = static_cast<uint8_t>(std::stoi(hex.substr(2 * i, 2), nullptr, 16));
  return d;
}

}  // namespace

std::string digest_fields(const std::vector<std::string>& fields) {
  cache::Sha256 h;
  for (const std::string& f : fields) h.update_field(f);
  return cache::to_hex(h.finish());
}

void count_memory_hit() { counters().memory_hits++; }

void count_disk_load(double ms) {
  counters().disk_hits++;
  std::lock_guard<std::mutex> lock(counters().time_mutex);
  counters().load_ms += ms;
}

std::optional<ObtainedBinary> find_binary(const KernelKey& key, const std::string& subdir,
                                          const std::string& digest_hex) {
  std::optional<cache::CacheEntry> entry =
      disk_cache().try_load(subdir, key.name(), parse_hex(digest_hex), key.to_string());
  if (!entry) return std::nullopt;
  return ObtainedBinary{std::move(entry->payload), true};
}

ObtainedBinary obtain_binary(const KernelKey& key, const std::string& subdir,
                             const std::string& digest_hex,
                             const std::function<CompiledBinary()>& compile) {
  const JitConfig& config = jit_config();
  const cache::Digest digest = parse_hex(digest_hex);
  auto try_disk = [&] { return find_binary(key, subdir, digest_hex); };
  if (auto hit = try_disk()) return *hit;
  counters().misses++;
  if (config.disable_jit) {
    throw UsageError(fmt::format(
        "flashjit: FLASHJIT_DISABLE_JIT=1 and kernel {} (digest {}) is not in the cache {}",
        key.name(), digest_hex.substr(0, 16), disk_cache().root()));
  }
  cache::KeyLock lock =
      disk_cache().lock(digest, std::chrono::milliseconds(config.lock_timeout_ms));
  if (lock.held()) {
    if (auto hit = try_disk()) return *hit;  // another process built it meanwhile
  }
  CompiledBinary built = compile();
  counters().compiles++;
  {
    std::lock_guard<std::mutex> guard(counters().time_mutex);
    counters().compile_ms += built.compile_ms;
  }
  nlohmann::json meta = built.meta;
  meta["key"] = key;
  meta["name"] = key.name();
  meta["digest"] = digest_hex;
  meta["compile_ms"] = built.compile_ms;
  meta["flashjit_version"] = version();
  disk_cache().store(subdir, key.name(), digest,
                     cache::CacheEntry{key.to_string(), meta.dump(), built.bytes});
  if (config.verbose) {
    std::fprintf(stderr, "flashjit: compiled %s (%.1f ms, %zu bytes)\n", key.name().c_str(),
                 built.compile_ms, built.bytes.size());
  }
  return ObtainedBinary{std::move(built.bytes), false};
}

CacheStats registry_stats() {
  CacheStats s;
  Counters& c = counters();
  s.memory_hits = c.memory_hits;
  s.disk_hits = c.disk_hits;
  s.misses = c.misses;
  s.compiles = c.compiles;
  {
    std::lock_guard<std::mutex> lock(c.time_mutex);
    s.compile_ms = c.compile_ms;
    s.load_ms = c.load_ms;
  }
  const cache::DiskCacheCounters& d = disk_cache().counters();
  s.corrupt_entries = d.corrupt_entries;
  s.write_errors = d.write_errors;
  s.lock_timeouts = d.lock_timeouts;
  return s;
}

}  // namespace flashjit
