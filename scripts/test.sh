#!/usr/bin/env bash
# Every test: set up and build if needed, then run the whole GoogleTest suite through ctest.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
"$root/scripts/build.sh"
build="${FLASHJIT_BUILD_DIR:-$root/build}"
# A fresh kernel cache per run: the suite measures compiles and cache behaviour itself.
rm -rf "$build/test-cache"
ctest --test-dir "$build" --output-on-failure --timeout 1500 -j "$(nproc)" "$@"
