// What flashjit asks of a CUDA device, queried once per device through the driver: its arch (the
// key's target, or FLASHJIT_CUDA_ARCH's), SM count and L2; and whether a pointer is its memory.
#pragma once

#include <cstdint>
#include <string>

namespace flashjit {

// "sm_80", "sm_86", "sm_90a", ... for a device ordinal, or FLASHJIT_CUDA_ARCH where its kernels
// run there (a usage error naming both where they do not). Throws NotSupportedError without a GPU.
std::string cuda_arch(int device);

// Multiprocessors of a device (cached per device).
int cuda_sm_count(int device);
// Its L2 cache in bytes.
int64_t cuda_l2_bytes(int device);

// Usage checks that need the driver: `data` is device memory of device `device`.
void check_cuda_pointer(const void* data, int device, const char* name);

}  // namespace flashjit
