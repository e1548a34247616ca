// Library-wide queries: version and cache counters.
#include "flashjit/flashjit.h"
#include "runtime/kernel_store.h"

namespace flashjit {

const char* version() { return FLASHJIT_VERSION; }

CacheStats cache_stats() { return registry_stats(); }

}  // namespace flashjit
