// The kernel registry. A miss in memory tries the disk cache, then takes the per-digest lock
// (so N processes compile a key once), tries the disk again, compiles, stores and loads.
#include "runtime/kernel_registry.h"

#include <fmt/format.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <shared_mutex>
#include <unordered_map>

#include "cache/disk_cache.h"
#include "cache/sha256.h"
#include "codegen/generate_source.h"
#include "runtime/config.h"
#include "runtime/cpu_compiler.h"
#include "runtime/cpu_jit.h"
#include "runtime/embedded_templates.h"

namespace flashjit {
namespace {

using Clock = std::chrono::steady_clock;
double ms_since(Clock::time_point t) {
  return std::chrono::duration<double, std::milli>(Clock::now() - t).count();
}

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

struct Slot {
  std::mutex build_mutex;
  std::atomic<bool> ready{false};
  CpuKernel kernel;
};

class Registry {
 public:
  static Registry& instance() {
    static Registry r;
    return r;
  }

  const CpuKernel& get(const KernelKey& key) {
    Slot* slot = nullptr;
    {
      std::shared_lock<std::shared_mutex> lock(map_mutex_);
      auto it = slots_.find(key);
      if (it != slots_.end()) slot = it->second.get();
    }
    if (!slot) {
      std::unique_lock<std::shared_mutex> lock(map_mutex_);
      auto& owned = slots_[key];
      if (!owned) owned = std::make_unique<Slot>();
      slot = owned.get();
    }
    if (slot->ready.load(std::memory_order_acquire)) {
      counters().memory_hits++;
      return slot->kernel;
    }
    std::lock_guard<std::mutex> lock(slot->build_mutex);
    if (!slot->ready.load(std::memory_order_acquire)) {
      slot->kernel = build(key);
      slot->ready.store(true, std::memory_order_release);
    } else {
      counters().memory_hits++;
    }
    return slot->kernel;
  }

 private:
  static CpuKernel link(const std::string& object, const KernelKey& key) {
    const CpuKernelSymbols sym = load_cpu_object(object, key.name());
    const int abi = reinterpret_cast<int (*)()>(sym.abi_version)();
    FLASHJIT_ICHECK(abi == FLASHJIT_CPU_ABI_VERSION)
        << "kernel " << key.name() << " has ABI " << abi << ", expected "
        << FLASHJIT_CPU_ABI_VERSION;
    CpuKernel k;
    k.fwd = reinterpret_cast<CpuFwdFn>(sym.fwd);
    k.scratch_bytes = reinterpret_cast<long long (*)()>(sym.scratch_bytes)();
    k.name = key.name();
    return k;
  }

  static std::optional<CpuKernel> try_disk(const std::string& subdir, const KernelKey& key,
                                           const cache::Digest& digest) {
    const auto start = Clock::now();
    std::optional<cache::CacheEntry> entry =
        disk_cache().try_load(subdir, key.name(), digest, key.to_string());
    if (!entry) return std::nullopt;
    CpuKernel k = link(entry->payload, key);
    const double ms = ms_since(start);
    counters().disk_hits++;
    {
      std::lock_guard<std::mutex> lock(counters().time_mutex);
      counters().load_ms += ms;
    }
    if (jit_config().verbose)
      std::fprintf(stderr, "flashjit: loaded %s (%.2f ms)\n", key.name().c_str(), ms);
    return k;
  }

  static CpuKernel build(const KernelKey& key) {
    const JitConfig& config = jit_config();
    const std::string source = generate_cpu_source(key);
    const std::string digest_hex = cpu_kernel_digest(key, source);
    cache::Digest digest{};
    for (size_t i = 0; i < digest.size(); ++i)
      digest[i] = static_cast<uint8_t>(std::stoi(digest_hex.substr(2 * i, 2), nullptr, 16));
    const std::string subdir = "cpu-" + key.target.triple;
    if (!config.dump_dir.empty()) {
      std::ofstream(config.dump_dir + "/" + key.name() + ".cpp") << source;
    }
    if (auto k = try_disk(subdir, key, digest)) return *k;
    counters().misses++;
    if (config.disable_jit) {
      throw UsageError(fmt::format(
          "flashjit: FLASHJIT_DISABLE_JIT=1 and kernel {} (digest {}) is not in the cache {}",
          key.name(), digest_hex.substr(0, 16), disk_cache().root()));
    }
    cache::KeyLock lock =
        disk_cache().lock(digest, std::chrono::milliseconds(config.lock_timeout_ms));
    if (lock.held()) {
      if (auto k = try_disk(subdir, key, digest)) return *k;  // another process built it
    }
    CpuObject object = compile_cpu_object(source, key.target, key.name());
    counters().compiles++;
    {
      std::lock_guard<std::mutex> guard(counters().time_mutex);
      counters().compile_ms += object.compile_ms;
    }
    nlohmann::json meta = {{"key", key},
                           {"name", key.name()},
                           {"digest", digest_hex},
                           {"generator_version", kGeneratorVersion},
                           {"compiler", cpu_compiler_identity()},
                           {"flags", cpu_compile_flags()},
                           {"compile_ms", object.compile_ms},
                           {"flashjit_version", version()}};
    disk_cache().store(subdir, key.name(), digest,
                       cache::CacheEntry{key.to_string(), meta.dump(), object.bytes});
    if (config.verbose) {
      std::fprintf(stderr, "flashjit: compiled %s (%.1f ms, %zu bytes)\n", key.name().c_str(),
                   object.compile_ms, object.bytes.size());
    }
    return link(object.bytes, key);
  }

  std::shared_mutex map_mutex_;
  std::unordered_map<KernelKey, std::unique_ptr<Slot>, KernelKeyHash> slots_;
};

}  // namespace

std::string cpu_kernel_digest(const KernelKey& key, const std::string& source) {
  cache::Sha256 h;
  h.update_field("flashjit-kernel-digest-v1");
  h.update_field(std::to_string(kGeneratorVersion));
  h.update_field(key.to_string());
  h.update_field(source);
  for (const EmbeddedFile& f : embedded_templates()) {
    const std::string path = f.path;
    // NOTE: only what a CPU kernel can include, so a CUDA template edit keeps CPU entries valid.
    if (path.rfind("flashjit/cpu/", 0) != 0 && path != "flashjit/fwd_params.h") continue;
    h.update_field(f.path);
    h.update_field(f.text);
  }
  h.update_field(cpu_compiler_identity());
  for (const std::string& flag : cpu_compile_flags()) h.update_field(flag);
  return cache::to_hex(h.finish());
}

const CpuKernel& get_cpu_kernel(const KernelKey& key) { return Registry::instance().get(key); }

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
