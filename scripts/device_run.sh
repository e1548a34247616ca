#!/usr/bin/env bash
# Runs on the device machine (see docs/DEVICE.md), from the repository root, with .device carried:
# the CUDA test suite, once more under compute-sanitizer memcheck and racecheck (subsets), and the
# bench. Usage: scripts/device_run.sh [tests|archs|memcheck|racecheck|initcheck|synccheck|bench|all]
# Logs go to $OUT.
set -uo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build="$root/${DEVICE_BUILD:-.device/build}"  # DEVICE_BUILD: another bundle
out="${OUT:-/tmp/flashjit-out}"
mkdir -p "$out"
export FLASHJIT_CACHE_DIR="${FLASHJIT_CACHE_DIR:-/tmp/flashjit-cache}"
what="${1:-all}"
shift || true
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader || true
status=0
# The CUDA suite in TEST_SHARDS processes (GoogleTest sharding) that share the GPU and the kernel
# cache: most of the suite's time is NVRTC on the host CPU, which one process leaves mostly idle.
# $1: a prefix for its logs; the rest: arguments to the suite.
run_suite() {
  local prefix="$1"
  shift
  local shards="${TEST_SHARDS:-8}" pids=() i
  for ((i = 0; i < shards; ++i)); do
    GTEST_TOTAL_SHARDS="$shards" GTEST_SHARD_INDEX="$i" "$build/tests/cuda/flashjit_cuda_tests" \
      --gtest_output="json:$out/${prefix}_$i.json" "$@" >"$out/${prefix}_$i.log" 2>&1 &
    pids+=($!)
  done
  for pid in "${pids[@]}"; do wait "$pid" || status=1; done
  cat "$out/${prefix}"_[0-9]*.log >"$out/${prefix}.log"
  grep -hE "^\[  FAILED  \] [^0-9]|SKIPPED \]" "$out/${prefix}"_[0-9]*.log | sort -u | tail -40
  awk '/^\[==========\] [0-9]+ tests? from .* ran\./ {ran += $2} /^\[  PASSED  \]/ {passed += $4} /^\[  FAILED  \] [0-9]/ {failed += $4}
       END {printf "%s: %d ran in %d shards, %d passed, %d failed\n", p, ran, n, passed, failed}' \
    p="$prefix" n="$shards" "$out/${prefix}"_[0-9]*.log
}
if [ "$what" = tests ] || [ "$what" = all ]; then
  run_suite cuda_tests "$@"
  # Programs with their own main (each on an empty kernel cache).
  for program in launch concurrency; do
    [ -x "$build/tests/cuda/flashjit_cuda_${program}_tests" ] || continue  # older bundles
    "$build/tests/cuda/flashjit_cuda_${program}_tests" >"$out/cuda_${program}_tests.log" 2>&1 ||
      status=1
    grep -E "PASSED|FAILED|SKIPPED|Failure" "$out/cuda_${program}_tests.log" | tail -10
  done
fi
# The suite once per arch of ARCHS (FLASHJIT_CUDA_ARCH): PTX of older GPUs' code paths (sm_80's
# shared-memory tiles and P stores, sm_86's 99 KiB tiles), compiled by the driver for this GPU.
if [ "$what" = archs ] || [ "$what" = all ]; then
  for arch in ${ARCHS:-compute_80 compute_86}; do
    FLASHJIT_CUDA_ARCH="$arch" run_suite "cuda_tests_$arch" "$@"
  done
fi
if [ "$what" = memcheck ] || [ "$what" = all ]; then
  sanitizer="$(command -v compute-sanitizer || echo /usr/local/cuda/bin/compute-sanitizer)"
  "$sanitizer" --tool memcheck --error-exitcode 3 "$build/tests/cuda/flashjit_cuda_tests" \
    --gtest_filter="${MEMCHECK_FILTER:-Smoke/*:CudaMetamorphic.*:Level1/*q113_k203*:Level1/*q1_k128*:Level1/*q3_k1024*:CudaPlan.*:CudaMergeStates.*:*CudaDecodeMerge.*}" \
    >"$out/memcheck.log" 2>&1 || status=1
  tail -5 "$out/memcheck.log"
  # Garbage index values without validation: the kernels' clamps must keep every access in bounds.
  "$sanitizer" --tool memcheck --error-exitcode 3 "$build/tests/cuda/flashjit_cuda_launch_tests" \
    --gtest_filter='CudaLaunch.GarbageIndexValues*' >"$out/memcheck_launch.log" 2>&1 || status=1
  tail -3 "$out/memcheck_launch.log"
fi
if [ "$what" = racecheck ] || [ "$what" = all ]; then
  # Shared-memory hazards (a read of the tile's coordinates before the barrier that publishes
  # them passed the functional suite once): decode, prefill and split tiles of the sweep.
  sanitizer="$(command -v compute-sanitizer || echo /usr/local/cuda/bin/compute-sanitizer)"
  "$sanitizer" --tool racecheck --racecheck-report hazard --error-exitcode 3 \
    "$build/tests/cuda/flashjit_cuda_tests" --gtest_filter="${RACECHECK_FILTER:-Smoke/*:Level1/*q113_k203*:Level1/*q1_k128*:Level1/*q3_k1024*:*CudaDecodeMerge.*}" \
    >"$out/racecheck.log" 2>&1 || status=1
  tail -5 "$out/racecheck.log"
fi
# Reads of device memory nothing wrote (initcheck: e.g. a combine reading an empty split's
# partials) and barrier misuse (synccheck), on the memcheck subset. Not part of `all`.
for tool in initcheck synccheck; do
  [ "$what" = "$tool" ] || continue
  sanitizer="$(command -v compute-sanitizer || echo /usr/local/cuda/bin/compute-sanitizer)"
  "$sanitizer" --tool "$tool" --error-exitcode 3 "$build/tests/cuda/flashjit_cuda_tests" \
    --gtest_filter="${MEMCHECK_FILTER:-Smoke/*:CudaMetamorphic.*:Level1/*q113_k203*:Level1/*q1_k128*:Level1/*q3_k1024*:CudaPlan.*:CudaMergeStates.*:*CudaDecodeMerge.*}" \
    >"$out/$tool.log" 2>&1 || status=1
  tail -5 "$out/$tool.log"
done
if [ "$what" = bench ] || [ "$what" = all ]; then
  "$build/tools/flashjit_cuda_bench" "$@" >"$out/flashjit_bench.jsonl" || status=1
  PYTHONUNBUFFERED=1 python3 "$root/tools/bench_peers.py" "$out/peers.json" "$@" \
    >"$out/peers.log" 2>&1 || status=1
  python3 "$root/tools/bench_report.py" "$out/peers.json" "$out/flashjit_bench.jsonl" \
    | tee "$out/bench_report.md"
fi
exit $status
