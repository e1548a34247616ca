#!/usr/bin/env bash
# Installs flashjit's build dependencies from Debian packages. Idempotent: installs only what is missing.
set -euo pipefail
packages=(
  build-essential cmake ninja-build git pkg-config
  llvm-19-dev libclang-19-dev libclang-cpp19-dev clang-19   # clang-19 carries ClangConfig.cmake
  libzstd-dev libfmt-dev nlohmann-json3-dev libgtest-dev libgmock-dev libcli11-dev
  clang-format
)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
echo "install_deps: installing ${missing[*]}"
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
