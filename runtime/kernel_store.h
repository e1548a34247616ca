// What every backend's kernel registry shares: the process-wide counters, the disk cache and its
// load / lock / load-again / build protocol, and an in-memory map with one build per key.
#pragma once

#include <atomic>
#include <functional>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <shared_mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "flashjit/flashjit.h"
#include "flashjit/kernel_key.h"

namespace flashjit {

struct CompiledBinary {
  std::string bytes;
  double compile_ms = 0;
  nlohmann::json meta;  // backend-specific metadata stored with the entry
};

struct ObtainedBinary {
  std::string bytes;
  bool from_disk = false;
};

// SHA-256 (hex) over length-prefixed fields.
std::string digest_fields(const std::vector<std::string>& fields);

// The binary of `key` under `digest_hex` in the disk cache (verified), if it is there.
std::optional<ObtainedBinary> find_binary(const KernelKey& key, const std::string& subdir,
                                          const std::string& digest_hex);

// The binary of `key`: from the disk cache (verified), else built by `compile` under the
// per-digest cross-process lock (after looking again) and stored. Throws when JIT is disabled
// and the cache has no entry, and whatever `compile` throws. Counts misses and compiles.
ObtainedBinary obtain_binary(const KernelKey& key, const std::string& subdir,
                             const std::string& digest_hex,
                             const std::function<CompiledBinary()>& compile);

// Counter updates for the backends.
void count_memory_hit();
void count_disk_load(double ms);  // a disk hit, loaded in `ms` (read + link/module load)

CacheStats registry_stats();

// Kernels by key, built once per key even when many threads ask at the same time.
template <typename Kernel>
class KernelMap {
 public:
  const Kernel& get(const KernelKey& key, const std::function<Kernel()>& build) {
    Slot* slot = nullptr;
    {
      std::shared_lock<std::shared_mutex> lock(mutex_);
      auto it = slots_.find(key);
      if (it != slots_.end()) slot = it->second.get();
    }
    if (!slot) {
      std::unique_lock<std::shared_mutex> lock(mutex_);
      auto& owned = slots_[key];
      if (!owned) owned = std::make_unique<Slot>();
      slot = owned.get();
    }
    if (!slot->ready.load(std::memory_order_acquire)) {
      std::lock_guard<std::mutex> lock(slot->build_mutex);
      if (!slot->ready.load(std::memory_order_acquire)) {
        slot->kernel = build();
        slot->ready.store(true, std::memory_order_release);
        return slot->kernel;
      }
    }
    count_memory_hit();
    return slot->kernel;
  }

 private:
  struct Slot {
    std::mutex build_mutex;
    std::atomic<bool> ready{false};
    Kernel kernel;
  };
  std::shared_mutex mutex_;
  std::unordered_map<KernelKey, std::unique_ptr<Slot>, KernelKeyHash> slots_;
};

}  // namespace flashjit
