// ThreadPool: workers sleep on a condition variable between jobs and pull chunks from an atomic
// counter, which balances causal masks and ragged batches without a planning pass.
#include "runtime/thread_pool.h"

#include <pthread.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>

#include "flashjit/error.h"
#include "runtime/config.h"

namespace flashjit {

ThreadPool::ThreadPool(int num_threads) {
  num_threads = std::max(1, num_threads);
  arenas_.resize(num_threads);
  for (int i = 1; i < num_threads; ++i) workers_.emplace_back([this, i] { worker_loop(i); });
}

ThreadPool::~ThreadPool() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stop_ = true;
  }
  wake_.notify_all();
  for (std::thread& t : workers_) t.join();
  for (Arena& a : arenas_) std::free(a.data);
}

namespace {

// The process-wide pool, created on first use and never destroyed: at exit its workers sleep on
// their condition variable, and in a child of fork() the parent's pool is dropped unjoined (its
// threads do not exist there).
std::mutex g_pool_mutex;
ThreadPool* g_pool = nullptr;

}  // namespace

// fork() waits for the pool's job in flight, so the child never inherits a half-done job or a
// held lock of the pool; the child then starts a pool of its own on its first call.
void ThreadPool::before_fork() {
  g_pool_mutex.lock();
  if (g_pool) g_pool->run_mutex_.lock();
}

void ThreadPool::after_fork_in_parent() {
  if (g_pool) g_pool->run_mutex_.unlock();
  g_pool_mutex.unlock();
}

void ThreadPool::after_fork_in_child() {
  g_pool = nullptr;  // leaked on purpose: a std::thread of the parent cannot be joined here
  g_pool_mutex.unlock();
}

ThreadPool& ThreadPool::global() {
  static const bool registered =
      pthread_atfork(before_fork, after_fork_in_parent, after_fork_in_child) == 0;
  (void)registered;
  std::lock_guard<std::mutex> lock(g_pool_mutex);
  if (!g_pool) {
    const int n = jit_config().num_threads;
    g_pool = new ThreadPool(
        n > 0 ? n : static_cast<int>(std::max(1u, std::thread::hardware_concurrency())));
  }
  return *g_pool;
}

void* ThreadPool::arena(int index, int64_t bytes) {
  Arena& a = arenas_[index];
  if (a.bytes < bytes + kCanaryBytes) {
    std::free(a.data);
    a.bytes = (bytes + kCanaryBytes + 4095) / 4096 * 4096;
    a.data = std::aligned_alloc(64, static_cast<size_t>(a.bytes));
    FLASHJIT_ICHECK(a.data != nullptr) << "out of memory for " << a.bytes << " bytes of scratch";
  }
  std::memset(static_cast<char*>(a.data) + bytes, kCanary, kCanaryBytes);
  return a.data;
}

void ThreadPool::check_canary(int index, int64_t bytes) const {
  const unsigned char* c = static_cast<const unsigned char*>(arenas_[index].data) + bytes;
  for (int i = 0; i < kCanaryBytes; ++i) {
    FLASHJIT_ICHECK(c[i] == kCanary)
        << "a kernel wrote past its " << bytes << " bytes of scratch (thread " << index << ")";
  }
}

void ThreadPool::work(int index) {
  void* scratch = arenas_[index].data;
  for (;;) {
    const int64_t begin = next_.fetch_add(chunk_);
    if (begin >= total_) break;
    (*task_)(begin, std::min(total_, begin + chunk_), scratch);
  }
}

void ThreadPool::worker_loop(int index) {
  uint64_t seen = 0;
  for (;;) {
    {
      std::unique_lock<std::mutex> lock(mutex_);
      wake_.wait(lock, [&] { return stop_ || generation_ != seen; });
      if (stop_) return;
      seen = generation_;
      if (index >= active_threads_) continue;
    }
    work(index);
    {
      std::lock_guard<std::mutex> lock(mutex_);
      if (--pending_ == 0) done_.notify_one();
    }
  }
}

void ThreadPool::run(int64_t total, int max_threads, int64_t scratch_bytes, const Task& fn) {
  if (total <= 0) return;
  std::lock_guard<std::mutex> run_lock(run_mutex_);
  int threads = max_threads > 0 ? std::min(max_threads, size()) : size();
  threads = static_cast<int>(std::min<int64_t>(threads, total));
  // Arenas are (re)allocated here, by the caller, only when a kernel needs more than before.
  for (int i = 0; i < threads; ++i) arena(i, std::max<int64_t>(scratch_bytes, 64));
  // NOTE: about 8 chunks per thread keeps the tail short without contending on the counter.
  chunk_ = std::max<int64_t>(1, total / (int64_t{threads} * 8));
  total_ = total;
  task_ = &fn;
  next_.store(0);
  {
    std::lock_guard<std::mutex> lock(mutex_);
    active_threads_ = threads;
    pending_ = threads - 1;
    ++generation_;
  }
  if (threads > 1) wake_.notify_all();
  work(0);
  {
    std::unique_lock<std::mutex> lock(mutex_);
    done_.wait(lock, [&] { return pending_ == 0; });
    task_ = nullptr;
  }
  for (int i = 0; i < threads; ++i) check_canary(i, std::max<int64_t>(scratch_bytes, 64));
}

}  // namespace flashjit
