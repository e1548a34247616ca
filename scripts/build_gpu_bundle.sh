#!/usr/bin/env bash
# Builds the GPU-only flashjit (no LLVM) with portable binaries into .device/build and keeps only
# what the device run needs (the library, the CUDA test, bench and demo programs). The device machine
# has CUDA but none of Debian's -dev packages, so its binaries are built here and carried there.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
"$root/scripts/install_deps.sh"
build="$root/.device/build"
cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DFLASHJIT_ENABLE_CPU_JIT=OFF \
  -DFLASHJIT_PORTABLE_BINARIES=ON -DFLASHJIT_FATAL_WARNINGS=ON >/dev/null
cmake --build "$build" --target flashjit flashjit_cuda_tests flashjit_cuda_launch_tests \
  flashjit_cuda_compile_tests flashjit_cuda_concurrency_tests \
  flashjit_cuda_bench flashjit_cuda_demo
du -sh "$build"/libflashjit.so* "$build"/tests/cuda/flashjit_cuda_tests 
