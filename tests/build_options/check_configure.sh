#!/usr/bin/env bash
# Configures the source tree with each optional backend off (no CUDA; no CPU JIT, as the GPU-only
# device bundle is built), so that a CMake change that breaks a variant fails here and not on the
# machine that needs it. $1: the source directory. Configure only: building them takes minutes.
set -euo pipefail
src="$1"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
for variant in "-DFLASHJIT_ENABLE_CUDA=OFF" "-DFLASHJIT_ENABLE_CPU_JIT=OFF"; do
  if ! cmake -S "$src" -B "$work/build${variant//[^A-Z_]/}" -G Ninja "$variant" \
    >"$work/log" 2>&1; then
    echo "configuring with $variant failed:"
    cat "$work/log"
    exit 1
  fi
  echo "configured with $variant"
done
