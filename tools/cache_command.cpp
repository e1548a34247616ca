// `flashjit cache info|list|clear`: where the kernel cache is and what it holds.
#include <fmt/format.h>

#include <filesystem>

#include "cache/disk_cache.h"
#include "tools/tool_common.h"

namespace flashjit::tools {

int run_cache_command(const std::string& action) {
  namespace fs = std::filesystem;
  const std::string root = cache::default_cache_root();
  if (root.empty()) {
    fmt::print("no cache directory can be formed (set FLASHJIT_CACHE_DIR)\n");
    return 1;
  }
  const fs::path v1 = fs::path(root) / "v1";
  std::error_code ec;
  if (action == "clear") {
    const auto removed = fs::remove_all(v1, ec);
    fmt::print("removed {} files under {}\n", ec ? 0 : removed, v1.string());
    return ec ? 1 : 0;
  }
  int64_t entries = 0, bytes = 0;
  for (auto it = fs::recursive_directory_iterator(v1, ec); !ec && it != fs::end(it);
       it.increment(ec)) {
    if (!it->is_regular_file() || it->path().extension() != ".fjk") continue;
    ++entries;
    bytes += static_cast<int64_t>(it->file_size());
    if (action == "list")
      fmt::print("{}  {} bytes\n", fs::relative(it->path(), v1).string(), it->file_size());
  }
  fmt::print("cache {}: {} kernels, {:.1f} KiB\n", v1.string(), entries, bytes / 1024.0);
  return 0;
}

}  // namespace flashjit::tools
