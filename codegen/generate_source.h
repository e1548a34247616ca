// Key -> source text. Pure: no compiler, driver or file I/O. The generated translation unit
// includes the hand-written template and instantiates exactly one specialization behind fixed
// extern "C" entry points (each kernel lives in its own JIT dylib, so names never collide).
#pragma once

#include <string>

#include "flashjit/kernel_key.h"

namespace flashjit {

// Bump when the generated text or the template ABI changes in a way the digest would not see.
inline constexpr int kGeneratorVersion = 3;

// Entry points of a generated CPU kernel.
inline constexpr const char* kCpuEntryFwd = "flashjit_fwd";
inline constexpr const char* kCpuEntryScratchBytes = "flashjit_scratch_bytes";
inline constexpr const char* kCpuEntryAbiVersion = "flashjit_abi_version";

// Source of the CPU kernel for a canonical, supported key. Deterministic: the same key gives
// byte-identical text.
std::string generate_cpu_source(const KernelKey& key);

// The entry point of a generated CUDA kernel: __global__ void flashjit_fwd(FwdParams).
inline constexpr const char* kCudaEntryFwd = "flashjit_fwd";

// Launch shape of the CUDA kernel of a key (also asserted inside the generated source).
struct CudaLaunchShape {
  int threads = 0;
  int smem_bytes = 0;  // dynamic shared memory
};
CudaLaunchShape cuda_launch_shape(const KernelKey& key);

// Source of the CUDA kernel for a canonical, supported CUDA key. Deterministic.
std::string generate_cuda_source(const KernelKey& key);

}  // namespace flashjit
