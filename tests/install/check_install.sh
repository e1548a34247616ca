#!/usr/bin/env bash
# Installs the build tree into a temporary prefix, builds tests/install/consumer against it with
# find_package(flashjit) and runs it.
set -euo pipefail
build="$1"
src="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
cmake --install "$build" --prefix "$work/prefix" >/dev/null
cmake -S "$src/consumer" -B "$work/build" -G Ninja -DCMAKE_PREFIX_PATH="$work/prefix" >/dev/null
cmake --build "$work/build" >/dev/null
FLASHJIT_CACHE_DIR="$work/cache" "$work/build/consumer"
