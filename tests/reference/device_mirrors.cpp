// DeviceMirrors on the CUDA driver that libflashjit loads.
#include "reference/device_mirrors.h"

#include <sys/mman.h>
#include <unistd.h>

#include <cstring>

#include "flashjit/error.h"
#if FLASHJIT_HAVE_CUDA
#include "runtime/cuda_api.h"
#endif

namespace flashjit::testing {

bool cuda_device_available() {
#if FLASHJIT_HAVE_CUDA
  const cuda::DriverApi* d = cuda::driver();
  int count = 0;
  return d && d->cuDeviceGetCount(&count) == CUDA_SUCCESS && count > 0;
#else
  return false;
#endif
}

DeviceMirrors::DeviceMirrors(Device device, GuardSide guard) : device_(device), guard_(guard) {
#if FLASHJIT_HAVE_CUDA
  if (device_.type != DeviceType::kCUDA) return;
  FLASHJIT_ICHECK(cuda_device_available()) << "a CUDA test case ran without a CUDA device";
  CUdevice dev;
  FLASHJIT_CU(cuDeviceGet(&dev, device_.index));
  CUcontext ctx;
  FLASHJIT_CU(cuDevicePrimaryCtxRetain(&ctx, dev));
  FLASHJIT_CU(cuCtxSetCurrent(ctx));
#else
  FLASHJIT_ICHECK(device_.type == DeviceType::kCPU) << "this build has no CUDA backend";
#endif
}

DeviceMirrors::~DeviceMirrors() {
  for (auto& [host, m] : mirrors_) {
    if (m.mapping) {
      munmap(m.mapping, m.mapping_bytes);
      continue;
    }
#if FLASHJIT_HAVE_CUDA
    cuda::driver()->cuMemFree(reinterpret_cast<CUdeviceptr>(m.device));
#endif
  }
}

// A mapping of one inaccessible page, the pages that hold `bytes`, and another inaccessible page;
// the copy touches the guard on its side.
void* DeviceMirrors::place_guarded(void* host, size_t bytes) {
  const size_t page = static_cast<size_t>(sysconf(_SC_PAGESIZE));
  const size_t data_pages = (bytes + page - 1) / page * page;
  const size_t total = data_pages + 2 * page;
  void* map = mmap(nullptr, total, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  FLASHJIT_ICHECK(map != MAP_FAILED) << "mmap of " << total << " bytes failed";
  char* first = static_cast<char*>(map) + page;
  FLASHJIT_ICHECK(data_pages == 0 || mprotect(first, data_pages, PROT_READ | PROT_WRITE) == 0)
      << "mprotect failed";
  char* data = guard_ == GuardSide::kAfter ? first + data_pages - bytes : first;
  if (bytes) std::memcpy(data, host, bytes);
  mirrors_[host] = Mirror{data, bytes, map, total};
  return data;
}

void* DeviceMirrors::place(void* host, size_t bytes) {
  if (device_.type != DeviceType::kCUDA) {
    if (guard_ == GuardSide::kNone) return host;
    auto it = mirrors_.find(host);
    return it != mirrors_.end() ? it->second.device : place_guarded(host, bytes);
  }
#if FLASHJIT_HAVE_CUDA
  auto it = mirrors_.find(host);
  if (it != mirrors_.end()) return it->second.device;
  CUdeviceptr ptr = 0;
  FLASHJIT_CU(cuMemAlloc(&ptr, bytes > 0 ? bytes : 16));
  if (bytes) FLASHJIT_CU(cuMemcpyHtoD(ptr, host, bytes));
  mirrors_[host] = Mirror{reinterpret_cast<void*>(ptr), bytes};
  return reinterpret_cast<void*>(ptr);
#else
  return host;
#endif
}

void DeviceMirrors::upload(void* host) {
  auto it = mirrors_.find(host);
  if (it == mirrors_.end()) return;
  if (it->second.mapping) {
    if (it->second.bytes) std::memcpy(it->second.device, host, it->second.bytes);
    return;
  }
#if FLASHJIT_HAVE_CUDA
  FLASHJIT_CU(cuCtxSynchronize());
  if (it->second.bytes)
    FLASHJIT_CU(
        cuMemcpyHtoD(reinterpret_cast<CUdeviceptr>(it->second.device), host, it->second.bytes));
#endif
}

void DeviceMirrors::copy_back(void* host) {
  auto it = mirrors_.find(host);
  if (it == mirrors_.end()) return;
  if (it->second.mapping) {
    if (it->second.bytes) std::memcpy(host, it->second.device, it->second.bytes);
    return;
  }
#if FLASHJIT_HAVE_CUDA
  FLASHJIT_CU(cuCtxSynchronize());
  if (it->second.bytes)
    FLASHJIT_CU(
        cuMemcpyDtoH(host, reinterpret_cast<CUdeviceptr>(it->second.device), it->second.bytes));
#endif
}

}  // namespace flashjit::testing
