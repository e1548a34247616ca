// Calls from many threads at once, as a server's request threads make them, on either backend:
// threads that hit one cold key together build it once and agree bit for bit, and a mix of keys
// (prefill, decode, append with rotary, split-KV, a plan) run concurrently gives each call its
// serial result bit for bit. The programs that use these start on an empty kernel cache.
#pragma once

#include "flashjit/tensor.h"

namespace flashjit::testing {

constexpr int kConcurrencyThreads = 8;

// kConcurrencyThreads threads run one case on a key no other test of the process uses: one
// compile, every result within tolerance and equal to the others bit for bit.
void expect_cold_key_built_once(Device device);

// Every case of a mixed set first alone, then rounds of all of them from kConcurrencyThreads
// threads: each concurrent result equals its serial one bit for bit.
void expect_mixed_calls_match_serial(Device device, int rounds);

// Runs the GoogleTest cases on a kernel cache made empty for this process (removed afterwards).
int run_tests_on_an_empty_cache(int argc, char** argv);

}  // namespace flashjit::testing
