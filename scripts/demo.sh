#!/usr/bin/env bash
# The main job: set up and build if needed, then JIT-compile, run and check attention on this CPU.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
"$root/scripts/build.sh" --target flashjit_cli >/dev/null
exec "${FLASHJIT_BUILD_DIR:-$root/build}/tools/flashjit" demo "$@"
