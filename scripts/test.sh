#!/usr/bin/env bash
# Every test: set up and build if needed, then run the whole GoogleTest suite through ctest; then
# the same suite once more on a build with AddressSanitizer and UndefinedBehaviorSanitizer (the
# host code: API checks, cache, codegen, JIT glue; any report fails the test), and the cache and
# concurrency programs under ThreadSanitizer. Arguments go to both ctest runs.
# FLASHJIT_SANITIZE_TESTS=0 skips the sanitizer passes (a quick local check).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
"$root/scripts/build.sh"
build="${FLASHJIT_BUILD_DIR:-$root/build}"
# A fresh kernel cache per run: the suite measures compiles and cache behaviour itself.
rm -rf "$build/test-cache"
ctest --test-dir "$build" --output-on-failure --timeout 1500 -j "$(nproc)" "$@"
[ "${FLASHJIT_SANITIZE_TESTS:-1}" = 0 ] && exit 0

# Warnings stay non-fatal here: GCC's -Wmaybe-uninitialized gives false positives inside
# libstdc++ under -fsanitize=address (the Release build above enforces the warnings).
sanitized="$build-sanitize"
cmake -S "$root" -B "$sanitized" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DFLASHJIT_SANITIZE=address,undefined -DFLASHJIT_FATAL_WARNINGS=OFF >/dev/null
cmake --build "$sanitized"
rm -rf "$sanitized/test-cache"
# Leak checking stays off: LeakSanitizer's stop-the-world tracer itself crashes now and then at
# exit ("Tracer caught signal 11", google/sanitizers#1353; seen here once in three runs, in a test
# that had passed), which would make this pass flaky. Memory errors and UB still fail it.
ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=0}" \
  ctest --test-dir "$sanitized" --output-on-failure --timeout 1500 -j "$(nproc)" "$@"

# The programs that run many threads or processes against one kernel cache (its locks, publish
# and the compile-once path), once more under ThreadSanitizer; any report fails the run.
tsan="$build-tsan"
cmake -S "$root" -B "$tsan" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DFLASHJIT_SANITIZE=thread -DFLASHJIT_FATAL_WARNINGS=OFF >/dev/null
cmake --build "$tsan" --target flashjit_cache_tests flashjit_cpu_concurrency_tests \
  flashjit_cache_e2e_tests flashjit_cache_probe
for program in cache/flashjit_cache_tests runtime/flashjit_cpu_concurrency_tests \
  cache_e2e/flashjit_cache_e2e_tests; do
  rm -rf "$tsan/test-cache"
  FLASHJIT_CACHE_DIR="$tsan/test-cache" "$tsan/tests/$program" --gtest_brief=1
done
