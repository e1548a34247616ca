// A process that forks after its CPU calls (a server's prefork workers, Python multiprocessing)
// keeps a working flashjit in the child: the parent's worker threads do not exist there, so the
// child must not hand its jobs to them (it used to wait for them forever). Run with
// FLASHJIT_NUM_THREADS=3 (tests/runtime/CMakeLists.txt), so that the pool has workers to lose.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <thread>

#include "reference/attention_case.h"
#include "runtime/thread_pool.h"

namespace flashjit::testing {
namespace {

AttentionCase prefill_case() {
  AttentionCase c;
  c.api = Api::kVarlen;
  c.batch = 3;
  c.num_heads = 4;
  c.num_heads_k = 2;
  c.head_dim = 64;
  c.seqlen_q = c.seqlen_k = 200;  // several work items for each thread of the pool
  c.causal = true;
  return c;
}

// Runs `c` in a child of fork() and compares its output bitwise with `want`; the child has 120 s
// before SIGALRM ends it (the hang this guards against).
void expect_child_matches(const AttentionCase& c, const CaseResult& want) {
  const pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    alarm(120);
    const CaseResult got = run_case(c);
    bool same = got.out.size() == want.out.size() && got.unwritten == 0;
    for (size_t i = 0; same && i < got.out.size(); ++i) same = got.out[i] == want.out[i];
    _exit(same ? 0 : 1);
  }
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  ASSERT_FALSE(WIFSIGNALED(status)) << "the child died of signal " << WTERMSIG(status)
                                    << (WTERMSIG(status) == SIGALRM ? " (SIGALRM: it hung)" : "");
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0) << "the child's output differs from the parent's";
}

TEST(CpuFork, AChildRunsCallsAfterItsParentDid) {
  ASSERT_GE(ThreadPool::global().size(), 2) << "FLASHJIT_NUM_THREADS=3 expected";
  const AttentionCase c = prefill_case();
  const CaseResult parent = run_case(c);  // the pool's workers run jobs before the fork
  ASSERT_EQ(parent.unwritten, 0);
  ASSERT_LE(parent.max_err, parent.tolerance);
  expect_child_matches(c, parent);
  expect_child_matches(c, parent);  // again: the parent's pool still works after a fork
  const CaseResult after = run_case(c);
  EXPECT_EQ(after.out, parent.out);
}

// fork() while another thread runs calls: fork waits for the job in flight, and the child starts
// clean.
TEST(CpuFork, ForksWhileAnotherThreadRunsCalls) {
  const AttentionCase c = prefill_case();
  const CaseResult want = run_case(c);
  std::atomic<bool> stop{false};
  std::atomic<int> calls{0}, mismatches{0};
  std::thread busy([&] {
    while (!stop.load()) {
      mismatches += run_case(c).out != want.out;
      ++calls;
    }
  });
  for (int i = 0; i < 5; ++i) expect_child_matches(c, want);
  stop = true;
  busy.join();
  EXPECT_GT(calls.load(), 0);
  EXPECT_EQ(mismatches.load(), 0);
}

}  // namespace
}  // namespace flashjit::testing
