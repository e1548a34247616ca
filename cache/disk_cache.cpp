// The on-disk kernel store: directory trust checks, the entry file format, atomic publication by
// rename and the per-digest flock. POSIX only. Every entry operation works relative to a directory
// fd held open from construction, so a path swapped underneath us cannot redirect it.
#include "cache/disk_cache.h"

#include <fcntl.h>
#include <pwd.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <new>
#include <string_view>
#include <system_error>
#include <thread>
#include <utility>
#include <vector>

namespace flashjit::cache {
namespace {

// Entry file layout (integers little-endian):
//   "FJKC" | u32 version | digest[32] | u64 n, key | u64 n, meta_json | u64 n, payload | sha256[32]
// where the trailing SHA-256 covers every byte before it.
constexpr char kMagic[4] = {'F', 'J', 'K', 'C'};
constexpr uint32_t kFormatVersion = 1;
constexpr size_t kDigestOffset = sizeof(kMagic) + 4;
constexpr size_t kHeaderBytes = kDigestOffset + 32;
constexpr size_t kChecksumBytes = 32;
constexpr size_t kMinEntryBytes = kHeaderBytes + 3 * 8 + kChecksumBytes;
constexpr uint64_t kMaxEntryBytes = uint64_t{1} << 30;

constexpr char kVersionDir[] = "v1";
constexpr char kLocksDir[] = "locks";
constexpr char kEntrySuffix[] = ".fjk";
constexpr char kLockSuffix[] = ".lock";
constexpr char kTempPrefix[] = ".tmp.";

// Owns a file descriptor; closes it on destruction.
class Fd {
 public:
  Fd() = default;
  explicit Fd(int fd) : fd_(fd) {}
  Fd(Fd&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}
  Fd& operator=(Fd&& other) noexcept {
    if (this != &other) {
      reset();
      fd_ = std::exchange(other.fd_, -1);
    }
    return *this;
  }
  ~Fd() { reset(); }
  int get() const { return fd_; }
  bool valid() const { return fd_ >= 0; }
  int release() { return std::exchange(fd_, -1); }
  void reset() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }

 private:
  int fd_ = -1;
};

template <typename F>
auto retry_on_eintr(F call) {
  decltype(call()) result;
  do {
    result = call();
  } while (result == -1 && errno == EINTR);
  return result;
}

std::string error_text(int error) {
  return std::error_code(error, std::generic_category()).message();
}

// Why a file or directory we are about to trust must not be trusted, or nullptr if it may be.
const char* untrusted_reason(const struct stat& st) {
  if (st.st_uid != geteuid()) return "owned by another user";
  if ((st.st_mode & (S_IWGRP | S_IWOTH)) != 0) return "writable by group or others";
  return nullptr;
}

// Opens (and with `create`, first creates with mode 0700) the directory `name` relative to
// `parent`, refusing symlinks and directories we do not control. On failure returns an invalid Fd
// and says why in `why`.
Fd open_private_dir(int parent, const std::string& name, bool create, std::string* why) {
  bool created = false;
  if (create) {
    if (::mkdirat(parent, name.c_str(), 0700) == 0) {
      created = true;
    } else if (errno != EEXIST) {
      *why = "cannot create '" + name + "': " + error_text(errno);
      return Fd();
    }
  }
  Fd dir(retry_on_eintr([&] {
    return ::openat(parent, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  }));
  if (!dir.valid()) {
    *why = errno == ELOOP ? "'" + name + "' is a symbolic link"
                          : "cannot open '" + name + "': " + error_text(errno);
    return Fd();
  }
  // NOTE: mkdir's mode is filtered by the umask; a directory we just made gets exactly 0700.
  if (created) ::fchmod(dir.get(), 0700);
  struct stat st;
  if (::fstat(dir.get(), &st) != 0) {
    *why = "cannot stat '" + name + "': " + error_text(errno);
    return Fd();
  }
  if (const char* reason = untrusted_reason(st)) {
    *why = "'" + name + "' is " + reason;
    return Fd();
  }
  return dir;
}

// Creates the missing directories leading to `path` (not `path` itself). Failures are ignored
// here: they surface when the root itself is created and opened.
void make_parent_dirs(const std::string& path) {
  for (size_t slash = path.find('/', 1); slash != std::string::npos;
       slash = path.find('/', slash + 1)) {
    if (path[slash - 1] == '/') continue;
    ::mkdir(path.substr(0, slash).c_str(), 0700);
  }
}

void warn_once(const std::string& root, const std::string& why) {
  static std::atomic<bool> warned{false};
  if (warned.exchange(true)) return;
  std::fprintf(stderr,
               "flashjit: warning: not using the disk cache at '%s': %s; compiled kernels are "
               "kept in memory only\n",
               root.c_str(), why.c_str());
}

// A subdirectory or stem must be a single, non-hidden path component (hidden names are reserved
// for temp files) and short enough for the entry name to fit in NAME_MAX.
bool valid_component(const std::string& name) {
  return !name.empty() && name.size() <= 200 && name[0] != '.' &&
         name.find_first_of(std::string_view("/\0", 2)) == std::string::npos;
}

bool valid_names(const std::string& subdir, const std::string& stem) {
  return valid_component(subdir) && subdir != kLocksDir && valid_component(stem);
}

std::string entry_file_name(const std::string& stem, const Digest& digest) {
  return stem + "." + to_hex(digest).substr(0, 16) + kEntrySuffix;
}

void append_le(std::string& out, uint64_t value, int bytes) {
  for (int i = 0; i < bytes; ++i) out.push_back(static_cast<char>(value >> (8 * i)));
}

uint64_t load_le(const char* p, int bytes) {
  uint64_t value = 0;
  for (int i = 0; i < bytes; ++i) value |= uint64_t{static_cast<uint8_t>(p[i])} << (8 * i);
  return value;
}

bool write_all(int fd, std::string_view bytes) {
  while (!bytes.empty()) {
    const ssize_t written = ::write(fd, bytes.data(), bytes.size());
    if (written < 0 && errno == EINTR) continue;
    if (written <= 0) return false;
    bytes.remove_prefix(static_cast<size_t>(written));
  }
  return true;
}

bool random_hex(std::string* hex) {
  std::array<uint8_t, 8> bytes;
  ssize_t got = retry_on_eintr([&] { return ::getrandom(bytes.data(), bytes.size(), 0); });
  if (got != static_cast<ssize_t>(bytes.size())) {
    Fd urandom(::open("/dev/urandom", O_RDONLY | O_CLOEXEC));
    if (!urandom.valid()) return false;
    got = retry_on_eintr([&] { return ::read(urandom.get(), bytes.data(), bytes.size()); });
    if (got != static_cast<ssize_t>(bytes.size())) return false;
  }
  static constexpr char kHexDigits[] = "0123456789abcdef";
  hex->clear();
  for (uint8_t byte : bytes) {
    hex->push_back(kHexDigits[byte >> 4]);
    hex->push_back(kHexDigits[byte & 0xf]);
  }
  return true;
}

// Writes the entry to a fresh temp file in `dir` and renames it to `name`. Returns false, with no
// temp file left behind, on any failure.
bool publish_entry(int dir, const std::string& name, const Digest& digest,
                   const CacheEntry& entry) {
  const uint64_t total =
      kMinEntryBytes + entry.key.size() + entry.meta_json.size() + entry.payload.size();
  if (total > kMaxEntryBytes) return false;  // try_load would refuse it anyway

  std::string temp_name;
  Fd file;
  // NOTE: O_EXCL on a random name: a collision (or a planted file) makes us pick another name
  // rather than write through somebody else's file.
  for (int attempt = 0; attempt < 4 && !file.valid(); ++attempt) {
    std::string hex;
    if (!random_hex(&hex)) return false;
    temp_name = kTempPrefix + hex;
    file = Fd(retry_on_eintr([&] {
      return ::openat(dir, temp_name.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
                      0600);
    }));
    if (!file.valid() && errno != EEXIST) return false;
  }
  if (!file.valid()) return false;

  std::string header(kMagic, sizeof(kMagic));
  append_le(header, kFormatVersion, 4);
  header.append(reinterpret_cast<const char*>(digest.data()), digest.size());
  Sha256 checksum;
  auto put = [&](std::string_view bytes) {
    checksum.update(bytes);
    return write_all(file.get(), bytes);
  };
  auto put_field = [&](const std::string& field) {
    std::string length;
    append_le(length, field.size(), 8);
    return put(length) && put(field);
  };
  bool ok = ::fchmod(file.get(), 0600) == 0 && put(header) && put_field(entry.key) &&
            put_field(entry.meta_json) && put_field(entry.payload);
  if (ok) {
    const Digest sum = checksum.finish();
    ok = write_all(file.get(),
                   std::string_view(reinterpret_cast<const char*>(sum.data()), sum.size()));
  }
  // NOTE: fsync before the rename, or a crash could publish a name whose data never hit the disk.
  ok = ok && retry_on_eintr([&] { return ::fsync(file.get()); }) == 0;
  ok = ok && ::close(file.release()) == 0;
  ok = ok && ::renameat(dir, temp_name.c_str(), dir, name.c_str()) == 0;
  if (!ok) {
    ::unlinkat(dir, temp_name.c_str(), 0);
    return false;
  }
  // NOTE: makes the rename itself durable. A failure here is ignored: the entry is already
  // published, and at worst a crash loses it, which is only a miss.
  ::fsync(dir);
  return true;
}

enum class LoadStatus { kHit, kMissing, kCorrupt };

// Checks a whole entry file's bytes and, if it is valid for (digest, expected_key), moves its
// fields into `out`.
bool parse_entry(std::string data, const Digest& digest, const std::string& expected_key,
                 CacheEntry* out) {
  if (data.size() < kMinEntryBytes) return false;
  const size_t body = data.size() - kChecksumBytes;
  const Digest sum = sha256(std::string_view(data.data(), body));
  if (std::memcmp(sum.data(), data.data() + body, kChecksumBytes) != 0) return false;
  if (std::memcmp(data.data(), kMagic, sizeof(kMagic)) != 0) return false;
  if (load_le(data.data() + sizeof(kMagic), 4) != kFormatVersion) return false;
  if (std::memcmp(data.data() + kDigestOffset, digest.data(), digest.size()) != 0) return false;

  size_t begin[3];
  size_t size[3];
  size_t pos = kHeaderBytes;
  for (int field = 0; field < 3; ++field) {
    if (body - pos < 8) return false;
    const uint64_t length = load_le(data.data() + pos, 8);
    pos += 8;
    if (length > body - pos) return false;
    begin[field] = pos;
    size[field] = static_cast<size_t>(length);
    pos += size[field];
  }
  if (pos != body) return false;
  if (std::string_view(data.data() + begin[0], size[0]) != expected_key) return false;

  out->key.assign(data, begin[0], size[0]);
  out->meta_json.assign(data, begin[1], size[1]);
  // NOTE: the payload can be large; reuse the buffer instead of copying it.
  data.resize(begin[2] + size[2]);
  data.erase(0, begin[2]);
  out->payload = std::move(data);
  return true;
}

// Deletes a bad entry, but only a regular file we own, and only the very file that was judged bad
// (`judged`, when known): a writer may have renamed a fresh valid entry over the name since.
void discard_entry(int dir, const std::string& name, const struct stat* judged) {
  struct stat st;
  if (::fstatat(dir, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) return;
  if (!S_ISREG(st.st_mode) || st.st_uid != geteuid()) return;
  if (judged != nullptr && (st.st_dev != judged->st_dev || st.st_ino != judged->st_ino)) return;
  ::unlinkat(dir, name.c_str(), 0);
}

LoadStatus load_entry(int dir, const std::string& name, const Digest& digest,
                      const std::string& expected_key, CacheEntry* out) {
  // NOTE: O_NONBLOCK so that a FIFO planted under the entry name cannot hang the load.
  Fd file(retry_on_eintr([&] {
    return ::openat(dir, name.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
  }));
  if (!file.valid()) {
    if (errno == ELOOP || errno == EACCES || errno == EPERM || errno == ENXIO) {
      discard_entry(dir, name, nullptr);
      return LoadStatus::kCorrupt;
    }
    // Absent, or a transient failure (out of fds, memory): not the entry's fault.
    return LoadStatus::kMissing;
  }
  struct stat st;
  if (::fstat(file.get(), &st) != 0) return LoadStatus::kMissing;
  if (!S_ISREG(st.st_mode) || untrusted_reason(st) != nullptr) {
    discard_entry(dir, name, &st);
    return LoadStatus::kCorrupt;
  }
  if (st.st_size < static_cast<off_t>(kMinEntryBytes) ||
      static_cast<uint64_t>(st.st_size) > kMaxEntryBytes) {
    discard_entry(dir, name, &st);
    return LoadStatus::kCorrupt;
  }
  // NOTE: read(), never mmap: a mapped file truncated by someone else would SIGBUS us.
  std::string data;
  try {
    data.resize(static_cast<size_t>(st.st_size));
  } catch (const std::bad_alloc&) {
    return LoadStatus::kMissing;  // no memory for it right now; the entry itself may be fine
  }
  size_t filled = 0;
  while (filled < data.size()) {
    const ssize_t got = ::read(file.get(), data.data() + filled, data.size() - filled);
    if (got < 0 && errno == EINTR) continue;
    if (got <= 0) break;
    filled += static_cast<size_t>(got);
  }
  if (filled != data.size() || !parse_entry(std::move(data), digest, expected_key, out)) {
    discard_entry(dir, name, &st);
    return LoadStatus::kCorrupt;
  }
  return LoadStatus::kHit;
}

}  // namespace

std::string default_cache_root() {
  if (const char* dir = std::getenv("FLASHJIT_CACHE_DIR"); dir != nullptr && dir[0] != '\0') {
    return dir;
  }
  // NOTE: the XDG base directory spec says a relative $XDG_CACHE_HOME is invalid and is ignored.
  if (const char* xdg = std::getenv("XDG_CACHE_HOME"); xdg != nullptr && xdg[0] == '/') {
    return std::string(xdg) + "/flashjit";
  }
  std::string home;
  if (const char* env_home = std::getenv("HOME"); env_home != nullptr && env_home[0] != '\0') {
    home = env_home;
  } else {
    std::vector<char> buffer(16384);
    struct passwd entry;
    struct passwd* found = nullptr;
    int error;
    while ((error = ::getpwuid_r(geteuid(), &entry, buffer.data(), buffer.size(), &found)) ==
               ERANGE &&
           buffer.size() < (size_t{1} << 20)) {
      buffer.resize(buffer.size() * 2);
    }
    if (error == 0 && found != nullptr && found->pw_dir != nullptr) home = found->pw_dir;
  }
  if (home.empty()) return "";
  return home + "/.cache/flashjit";
}

KeyLock::KeyLock(KeyLock&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}

KeyLock& KeyLock::operator=(KeyLock&& other) noexcept {
  if (this != &other) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = std::exchange(other.fd_, -1);
  }
  return *this;
}

// Closing the last fd of the open file description releases the flock.
KeyLock::~KeyLock() {
  if (fd_ >= 0) ::close(fd_);
}

struct DiskCache::Impl {
  std::string root;
  Fd version_dir;  // <root>/v1; valid iff the cache is usable
  DiskCacheCounters counters;
};

DiskCache::DiskCache(std::string root) : impl_(std::make_unique<Impl>()) {
  while (root.size() > 1 && root.back() == '/') root.pop_back();
  impl_->root = std::move(root);
  const std::string& path = impl_->root;
  if (path.empty()) return;  // memory only, as asked: nothing to warn about

  std::string why;
  make_parent_dirs(path);
  Fd root_dir = open_private_dir(AT_FDCWD, path, /*create=*/true, &why);
  if (root_dir.valid()) {
    impl_->version_dir = open_private_dir(root_dir.get(), kVersionDir, /*create=*/true, &why);
  }
  if (!impl_->version_dir.valid()) warn_once(path, why);
}

DiskCache::~DiskCache() = default;

bool DiskCache::usable() const { return impl_->version_dir.valid(); }

const std::string& DiskCache::root() const { return impl_->root; }

std::string DiskCache::entry_path(const std::string& subdir, const std::string& stem,
                                  const Digest& digest) const {
  if (impl_->root.empty()) return "";
  return impl_->root + "/" + kVersionDir + "/" + subdir + "/" + entry_file_name(stem, digest);
}

std::optional<CacheEntry> DiskCache::try_load(const std::string& subdir, const std::string& stem,
                                              const Digest& digest,
                                              const std::string& expected_key) {
  DiskCacheCounters& counters = impl_->counters;
  std::string why;
  Fd dir;
  if (usable() && valid_names(subdir, stem)) {
    dir = open_private_dir(impl_->version_dir.get(), subdir, /*create=*/false, &why);
  }
  if (!dir.valid()) {
    ++counters.misses;
    return std::nullopt;
  }
  CacheEntry entry;
  switch (load_entry(dir.get(), entry_file_name(stem, digest), digest, expected_key, &entry)) {
    case LoadStatus::kHit:
      ++counters.hits;
      return entry;
    case LoadStatus::kCorrupt:
      ++counters.corrupt_entries;
      break;
    case LoadStatus::kMissing:
      break;
  }
  ++counters.misses;
  return std::nullopt;
}

bool DiskCache::store(const std::string& subdir, const std::string& stem, const Digest& digest,
                      const CacheEntry& entry) {
  if (!usable()) return false;  // memory-only by configuration: not a write error
  std::string why;
  Fd dir;
  if (valid_names(subdir, stem)) {
    dir = open_private_dir(impl_->version_dir.get(), subdir, /*create=*/true, &why);
  }
  if (!dir.valid() || !publish_entry(dir.get(), entry_file_name(stem, digest), digest, entry)) {
    ++impl_->counters.write_errors;
    return false;
  }
  return true;
}

KeyLock DiskCache::lock(const Digest& digest, std::chrono::milliseconds timeout) {
  if (!usable()) return KeyLock();
  std::string why;
  const Fd locks = open_private_dir(impl_->version_dir.get(), kLocksDir, /*create=*/true, &why);
  if (!locks.valid()) return KeyLock();
  // NOTE: lock files are never deleted: unlinking one while another process waits on its open fd
  // would let a third process lock a new file of the same name, and two would hold "the" lock.
  const std::string name = to_hex(digest) + kLockSuffix;
  Fd file(retry_on_eintr([&] {
    return ::openat(locks.get(), name.c_str(),
                    O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK, 0600);
  }));
  if (!file.valid()) return KeyLock();

  using Clock = std::chrono::steady_clock;
  const auto deadline = Clock::now() + std::max(timeout, std::chrono::milliseconds(0));
  std::chrono::microseconds backoff = std::chrono::milliseconds(1);
  while (true) {
    if (::flock(file.get(), LOCK_EX | LOCK_NB) == 0) return KeyLock(file.release());
    if (errno == EINTR) continue;
    if (errno != EWOULDBLOCK) return KeyLock();
    const auto now = Clock::now();
    if (now >= deadline) {
      ++impl_->counters.lock_timeouts;
      return KeyLock();
    }
    std::this_thread::sleep_for(std::min<Clock::duration>(backoff, deadline - now));
    backoff = std::min<std::chrono::microseconds>(backoff * 2, std::chrono::milliseconds(20));
  }
}

const DiskCacheCounters& DiskCache::counters() const { return impl_->counters; }

}  // namespace flashjit::cache
