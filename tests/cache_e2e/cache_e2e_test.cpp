// End-to-end cache behaviour across processes: a second process compiles nothing, corrupt entries
// are detected and rebuilt, eight processes starting together on a cold key compile it once and
// all succeed, FLASHJIT_DISABLE_JIT proves a warm cache, and unusable cache directories still give
// correct results. Each case runs tests/cache_e2e/cache_probe.cpp as separate processes.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace {

namespace fs = std::filesystem;

struct Probe {
  pid_t pid = -1;
  int fd = -1;
};

// Starts the probe with FLASHJIT_CACHE_DIR=dir and the extra environment; stdout to a pipe.
Probe start_probe(const std::string& dir, const std::string& head_dim,
                  const std::map<std::string, std::string>& env = {}) {
  int fds[2];
  EXPECT_EQ(pipe(fds), 0);
  Probe p;
  p.pid = fork();
  if (p.pid == 0) {
    dup2(fds[1], 1);
    close(fds[0]);
    close(fds[1]);
    setenv("FLASHJIT_CACHE_DIR", dir.c_str(), 1);
    unsetenv("FLASHJIT_DISABLE_JIT");
    for (const auto& [k, v] : env) setenv(k.c_str(), v.c_str(), 1);
    execl(FLASHJIT_CACHE_PROBE, FLASHJIT_CACHE_PROBE, head_dim.c_str(), nullptr);
    _exit(127);
  }
  close(fds[1]);
  p.fd = fds[0];
  return p;
}

struct Result {
  int exit_code = -1;
  nlohmann::json report;
};

Result finish(Probe p) {
  std::string out;
  char buf[4096];
  ssize_t n;
  while ((n = read(p.fd, buf, sizeof(buf))) > 0) out.append(buf, n);
  close(p.fd);
  int status = 0;
  waitpid(p.pid, &status, 0);
  Result r;
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  try {
    r.report = nlohmann::json::parse(out);
  } catch (const nlohmann::json::exception&) {
    ADD_FAILURE() << "probe printed no report: '" << out << "'";
    r.report = nlohmann::json{{"ok", false}};
  }
  return r;
}

Result run_probe(const std::string& dir, const std::string& head_dim = "64",
                 const std::map<std::string, std::string>& env = {}) {
  return finish(start_probe(dir, head_dim, env));
}

class CacheE2E : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/flashjit-e2e-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    root_ = tmpl;
    dir_ = root_ + "/cache";
  }
  void TearDown() override {
    std::error_code ec;
    fs::permissions(root_, fs::perms::owner_all, ec);
    fs::remove_all(root_, ec);
  }
  std::vector<fs::path> entries() const {
    std::vector<fs::path> out;
    std::error_code ec;
    for (auto it = fs::recursive_directory_iterator(dir_, ec); !ec && it != fs::end(it);
         it.increment(ec))
      if (it->is_regular_file() && it->path().extension() == ".fjk") out.push_back(it->path());
    return out;
  }
  std::string root_, dir_;
};

TEST_F(CacheE2E, SecondProcessCompilesNothing) {
  const Result first = run_probe(dir_);
  EXPECT_EQ(first.exit_code, 0);
  EXPECT_TRUE(first.report["ok"]);
  EXPECT_EQ(first.report["compiles"], 1);
  EXPECT_EQ(entries().size(), 1u);
  const Result second = run_probe(dir_);
  EXPECT_TRUE(second.report["ok"]);
  EXPECT_EQ(second.report["compiles"], 0);
  EXPECT_EQ(second.report["disk_hits"], 1);
  EXPECT_LT(second.report["load_ms"].get<double>(), 50.0);
}

TEST_F(CacheE2E, DisableJitServesAWarmCacheAndRefusesACold) {
  const Result cold = run_probe(dir_, "64", {{"FLASHJIT_DISABLE_JIT", "1"}});
  EXPECT_NE(cold.exit_code, 0);
  EXPECT_FALSE(cold.report["ok"]);
  EXPECT_EQ(cold.report["compiles"], 0);
  EXPECT_TRUE(run_probe(dir_).report["ok"]);
  const Result warm = run_probe(dir_, "64", {{"FLASHJIT_DISABLE_JIT", "1"}});
  EXPECT_EQ(warm.exit_code, 0);
  EXPECT_TRUE(warm.report["ok"]);
  EXPECT_EQ(warm.report["compiles"], 0);
  EXPECT_EQ(warm.report["disk_hits"], 1);
}

// Damages the only entry, then checks one run detects and rebuilds it and the next one hits.
void expect_rebuilt(const std::string& dir, const std::string& head_dim) {
  const Result healed = run_probe(dir, head_dim);
  EXPECT_TRUE(healed.report["ok"]);
  EXPECT_EQ(healed.report["corrupt"], 1);
  EXPECT_EQ(healed.report["compiles"], 1);
  const Result again = run_probe(dir, head_dim);
  EXPECT_TRUE(again.report["ok"]);
  EXPECT_EQ(again.report["corrupt"], 0);
  EXPECT_EQ(again.report["compiles"], 0);
  EXPECT_EQ(again.report["disk_hits"], 1);
}

TEST_F(CacheE2E, FlippedByteIsDetectedAndRebuilt) {
  ASSERT_TRUE(run_probe(dir_).report["ok"]);
  const fs::path entry = entries().at(0);
  std::fstream f(entry, std::ios::in | std::ios::out | std::ios::binary);
  const auto size = fs::file_size(entry);
  f.seekg(size / 2);
  char c = 0;
  f.read(&c, 1);
  c ^= 0x10;
  f.seekp(size / 2);
  f.write(&c, 1);
  f.close();
  expect_rebuilt(dir_, "64");
}

TEST_F(CacheE2E, TruncatedEntryIsDetectedAndRebuilt) {
  ASSERT_TRUE(run_probe(dir_).report["ok"]);
  const fs::path entry = entries().at(0);
  fs::resize_file(entry, fs::file_size(entry) / 2);
  expect_rebuilt(dir_, "64");
}

TEST_F(CacheE2E, EntryOfAnotherKeyIsDetectedAndRebuilt) {
  ASSERT_TRUE(run_probe(dir_, "64").report["ok"]);
  const fs::path entry64 = entries().at(0);
  ASSERT_TRUE(run_probe(dir_, "128").report["ok"]);
  fs::path entry128;
  for (const fs::path& e : entries())
    if (e != entry64) entry128 = e;
  ASSERT_FALSE(entry128.empty());
  // A valid entry (right checksum) of the d128 kernel, placed where the d64 kernel is looked up.
  fs::copy_file(entry128, entry64, fs::copy_options::overwrite_existing);
  expect_rebuilt(dir_, "64");
}

TEST_F(CacheE2E, EightProcessesOnAColdKeyCompileItOnce) {
  std::vector<Probe> probes;
  for (int i = 0; i < 8; ++i) probes.push_back(start_probe(dir_, "64"));
  int compiles = 0, ok = 0;
  for (Probe& p : probes) {
    const Result r = finish(p);
    compiles += r.report["compiles"].get<int>();
    ok += r.exit_code == 0 && r.report["ok"] == true;
  }
  EXPECT_EQ(ok, 8);
  EXPECT_EQ(compiles, 1);
  EXPECT_EQ(entries().size(), 1u);
}

TEST_F(CacheE2E, UnusableCacheDirectoriesStillGiveCorrectResults) {
  // A path below a regular file can never be created, by root either.
  std::ofstream(root_ + "/file") << "x";
  for (const std::string& dir : {root_ + "/file/cache", std::string("/proc/flashjit-cache")}) {
    const Result r = run_probe(dir);
    EXPECT_EQ(r.exit_code, 0) << dir;
    EXPECT_TRUE(r.report["ok"]) << dir;
    EXPECT_EQ(r.report["compiles"], 1) << dir;
  }
  // A directory others can write is refused (memory only), whoever we are.
  fs::create_directories(dir_);
  chmod(dir_.c_str(), 0777);
  const Result loose = run_probe(dir_);
  EXPECT_TRUE(loose.report["ok"]);
  EXPECT_TRUE(entries().empty()) << "an entry was written into a world-writable directory";
}

TEST_F(CacheE2E, ReadOnlyCacheDirectoryStillGivesCorrectResults) {
  if (geteuid() == 0) GTEST_SKIP() << "root ignores directory permissions";
  ASSERT_TRUE(run_probe(dir_).report["ok"]);
  for (const fs::path& e : entries()) fs::remove(e);
  std::error_code ec;
  for (auto it = fs::recursive_directory_iterator(dir_, ec); !ec && it != fs::end(it);
       it.increment(ec))
    if (it->is_directory()) chmod(it->path().c_str(), 0500);
  chmod(dir_.c_str(), 0500);
  const Result r = run_probe(dir_);
  EXPECT_TRUE(r.report["ok"]);
  EXPECT_EQ(r.report["compiles"], 1);
  EXPECT_GE(r.report["write_errors"].get<int>(), 1);
}

}  // namespace
