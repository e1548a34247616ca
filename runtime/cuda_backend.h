// Runs CUDA kernels: the arch of a device, the kernel registry (NVRTC cubins in the disk cache,
// one module per CUDA context) and the launch on the caller's stream.
#pragma once

#include <string>

#include "flashjit/kernel_key.h"
#include "templates/fwd_params.h"

namespace flashjit {

struct CudaGrid {
  int x = 1, y = 1, z = 1;
};

// "sm_80", "sm_86", "sm_90a", ... for a device ordinal. Throws NotSupportedError without a GPU.
std::string cuda_arch(int device);

// Usage checks that need the driver: `data` is device memory of device `device`.
void check_cuda_pointer(const void* data, int device, const char* name);

// Compiles (or loads) the kernel of `key` and launches it on `stream` (a CUstream) without
// synchronizing. Compiling while the stream is being captured is an error naming the key.
void run_cuda_kernel(const KernelKey& key, const flashjit_kernel::FwdParams& params, CudaGrid grid,
                     int device, void* stream);

// out = 0 and lse = +inf (empty K for the whole call) on the stream; both must be contiguous.
void cuda_fill_empty(void* out, size_t out_bytes, float* lse, size_t lse_count, void* stream);

}  // namespace flashjit
