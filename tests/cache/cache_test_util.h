// Shared helpers for the cache tests: a self-removing temp directory, raw file access, forking
// helpers and the fixture that gives every test its own cache root.
#pragma once

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include "cache/disk_cache.h"

namespace flashjit::cache::test {

namespace fs = std::filesystem;

// A fresh directory under /tmp, removed with everything in it on destruction.
class TempDir {
 public:
  TempDir() {
    char pattern[] = "/tmp/flashjit-cache-test-XXXXXX";
    if (::mkdtemp(pattern) != nullptr) path_ = pattern;
  }
  ~TempDir() {
    if (path_.empty()) return;
    std::error_code ec;
    // Directories made read-only by a test must be writable again to be removed.
    ::chmod(path_.c_str(), 0700);
    for (auto it = fs::recursive_directory_iterator(path_, ec); !ec && it != fs::end(it);
         it.increment(ec)) {
      if (it->is_directory(ec) && !it->is_symlink(ec)) ::chmod(it->path().c_str(), 0700);
    }
    fs::remove_all(path_, ec);
  }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

inline std::string read_bytes(const std::string& path) {
  std::string bytes;
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return bytes;
  char buffer[65536];
  for (ssize_t got; (got = ::read(fd, buffer, sizeof(buffer))) > 0;) bytes.append(buffer, got);
  ::close(fd);
  return bytes;
}

inline bool write_bytes(const std::string& path, const std::string& bytes) {
  ::unlink(path.c_str());
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0) return false;
  const bool ok = ::write(fd, bytes.data(), bytes.size()) == static_cast<ssize_t>(bytes.size());
  return ::close(fd) == 0 && ok;
}

// Recomputes the trailing checksum, so that a test can reach the checks behind it.
inline std::string with_valid_checksum(std::string bytes) {
  bytes.resize(bytes.size() - 32);
  const Digest sum = sha256(bytes);
  return bytes.append(reinterpret_cast<const char*>(sum.data()), sum.size());
}

inline std::vector<std::string> file_names_under(const std::string& dir) {
  std::vector<std::string> names;
  std::error_code ec;
  for (auto it = fs::recursive_directory_iterator(dir, ec); !ec && it != fs::end(it);
       it.increment(ec)) {
    names.push_back(it->path().filename().string());
  }
  return names;
}

inline int count_temp_files(const std::string& dir) {
  int count = 0;
  for (const std::string& name : file_names_under(dir)) count += name.rfind(".tmp.", 0) == 0;
  return count;
}

inline mode_t mode_of(const std::string& path) {
  struct stat st;
  return ::lstat(path.c_str(), &st) == 0 ? st.st_mode : 0;
}

inline bool exists(const std::string& path) {
  struct stat st;
  return ::lstat(path.c_str(), &st) == 0;
}

// Forks a child that runs `body` and exits with its result.
inline pid_t spawn(const std::function<int()>& body) {
  const pid_t pid = ::fork();
  if (pid == 0) ::_exit(body());
  return pid;
}

// The child's exit status, or -1 if it did not exit normally.
inline int wait_exit(pid_t pid) {
  int status = 0;
  if (::waitpid(pid, &status, 0) != pid) return -1;
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

// Gives each test a fresh temp directory; the cache root inside it is not created up front.
class CacheTestBase : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_FALSE(tmp_.path().empty()) << "mkdtemp failed"; }

  std::string root() const { return tmp_.path() + "/cache"; }
  std::string v1() const { return root() + "/v1"; }

  TempDir tmp_;
  const Digest digest_a_ = sha256("kernel A");
  const Digest digest_b_ = sha256("kernel B");
};

}  // namespace flashjit::cache::test
