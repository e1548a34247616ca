// A persistent worker pool for the CPU kernels, with one reusable 64-byte-aligned scratch arena
// per worker, so that a call does no thread creation and (after the first) no heap allocation.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

namespace flashjit {

class ThreadPool {
 public:
  // fn(begin, end, scratch) processes work items [begin, end) with a private scratch arena.
  using Task = std::function<void(int64_t, int64_t, void*)>;

  explicit ThreadPool(int num_threads);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int size() const { return static_cast<int>(workers_.size()) + 1; }

  // Runs fn over [0, total) in dynamically scheduled chunks on up to max_threads threads (0 = all),
  // the caller included; returns when every item is done. Calls from several threads queue.
  void run(int64_t total, int max_threads, int64_t scratch_bytes, const Task& fn);

  // The process-wide pool (FLASHJIT_NUM_THREADS or the machine's cores). A child of fork() gets
  // a pool of its own on its first call: the parent's workers do not exist in the child, and a
  // job handed to them would never finish.
  static ThreadPool& global();

 private:
  struct Arena {
    void* data = nullptr;
    int64_t bytes = 0;
  };
  void worker_loop(int index);
  void work(int index);
  // NOTE: each arena ends in a canary written before and checked after every job, so a kernel
  // that overruns its scratch is reported (InternalError) instead of corrupting the heap later.
  static constexpr int kCanaryBytes = 64;
  static constexpr unsigned char kCanary = 0xA5;
  void* arena(int index, int64_t bytes);
  static void before_fork();
  static void after_fork_in_parent();
  static void after_fork_in_child();
  void check_canary(int index, int64_t bytes) const;

  std::vector<std::thread> workers_;
  std::vector<Arena> arenas_;
  std::mutex run_mutex_;  // one job at a time
  std::mutex mutex_;
  std::condition_variable wake_;
  std::condition_variable done_;
  uint64_t generation_ = 0;
  bool stop_ = false;
  // The current job.
  const Task* task_ = nullptr;
  int64_t total_ = 0;
  int64_t chunk_ = 1;
  int active_threads_ = 0;
  int64_t scratch_bytes_ = 0;
  std::atomic<int64_t> next_{0};
  int pending_ = 0;
};

}  // namespace flashjit
