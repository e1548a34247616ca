#!/usr/bin/env bash
# Builds GPU bundles of other commits for A/B runs on the device (scripts/device_ab.sh AB_BUILDS,
# scripts/device_run.sh DEVICE_BUILD): each REF is checked out in a temporary worktree, built
# GPU-only like scripts/build_gpu_bundle.sh, and its library, bench and test programs are kept in
# .device/NAME (the ref with '/' replaced by '-', or NAME=REF).
# Usage: scripts/build_ab_bundles.sh [NAME=]REF ...
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
for arg in "$@"; do
  ref="${arg#*=}"
  name="${arg%%=*}"
  [ "$name" = "$arg" ] && name="${ref//\//-}"
  wt="$(mktemp -d)"
  git -C "$root" worktree add -q --detach "$wt" "$ref"
  cmake -S "$wt" -B "$wt/b" -G Ninja -DCMAKE_BUILD_TYPE=Release -DFLASHJIT_ENABLE_CPU_JIT=OFF \
    -DFLASHJIT_PORTABLE_BINARIES=ON >/dev/null
  cmake --build "$wt/b" --target flashjit flashjit_cuda_tests flashjit_cuda_launch_tests \
    flashjit_cuda_bench >/dev/null
  out="$root/.device/$name"
  rm -rf "$out"
  mkdir -p "$out/tools" "$out/tests/cuda"
  cp -a "$wt/b"/libflashjit.so* "$out/"
  cp "$wt/b/tools/flashjit_cuda_bench" "$out/tools/"
  cp "$wt/b/tests/cuda/flashjit_cuda_tests" "$wt/b/tests/cuda/flashjit_cuda_launch_tests" \
    "$out/tests/cuda/"
  git -C "$root" worktree remove --force "$wt"
  echo "$name: $(git -C "$root" rev-parse --short "$ref") -> .device/$name ($(du -sh "$out" | cut -f1))"
done
