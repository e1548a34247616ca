#!/usr/bin/env bash
# Installs the build tree into a temporary prefix, builds tests/install/consumer against it with
# find_package(flashjit) and runs it. $2: the build's FLASHJIT_SANITIZE, if any (an instrumented
# library needs its sanitizer runtimes linked into the program).
set -euo pipefail
build="$1"
sanitize="${2:-}"
src="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
cmake --install "$build" --prefix "$work/prefix" >/dev/null
flags=()
[ -n "$sanitize" ] && flags=(-DCMAKE_EXE_LINKER_FLAGS="-fsanitize=$sanitize")
cmake -S "$src/consumer" -B "$work/build" -G Ninja -DCMAKE_PREFIX_PATH="$work/prefix" "${flags[@]}" \
  >/dev/null
cmake --build "$work/build" >/dev/null
FLASHJIT_CACHE_DIR="$work/cache" "$work/build/consumer"
