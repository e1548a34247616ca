#!/usr/bin/env bash
# Installs what is missing, configures and builds flashjit into build/ (idempotent).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
"$root/scripts/install_deps.sh"
build="${FLASHJIT_BUILD_DIR:-$root/build}"
warnings=OFF
[ "${CI:-}" = "true" ] && warnings=ON
cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release \
  -DFLASHJIT_FATAL_WARNINGS="${FLASHJIT_FATAL_WARNINGS:-$warnings}" >/dev/null
cmake --build "$build" "$@"
