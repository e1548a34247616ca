// DeviceMirrors on the CUDA driver that libflashjit loads.
#include "reference/device_mirrors.h"

#include <sys/mman.h>
#include <unistd.h>

#include <cstring>
#include <mutex>

#include "flashjit/error.h"
#if FLASHJIT_HAVE_CUDA
#include "runtime/cuda_api.h"
#endif

namespace flashjit::testing {

int cuda_device_count() {
#if FLASHJIT_HAVE_CUDA
  const cuda::DriverApi* d = cuda::driver();
  int count = 0;
  return d && d->cuDeviceGetCount(&count) == CUDA_SUCCESS ? count : 0;
#else
  return 0;
#endif
}

bool cuda_device_available() { return cuda_device_count() > 0; }

void make_cuda_device_current(int index) {
#if FLASHJIT_HAVE_CUDA
  // Each device's primary context is retained once and kept (every mirror call comes here).
  static std::mutex mutex;
  static std::map<int, CUcontext> contexts;
  CUcontext ctx = nullptr;
  {
    std::lock_guard<std::mutex> lock(mutex);
    CUcontext& retained = contexts[index];
    if (!retained) {
      CUdevice dev;
      FLASHJIT_CU(cuDeviceGet(&dev, index));
      FLASHJIT_CU(cuDevicePrimaryCtxRetain(&retained, dev));
    }
    ctx = retained;
  }
  FLASHJIT_CU(cuCtxSetCurrent(ctx));
#else
  FLASHJIT_ICHECK(false) << "this build has no CUDA backend (device " << index << ")";
#endif
}

int current_cuda_device() {
#if FLASHJIT_HAVE_CUDA
  CUcontext ctx = nullptr;
  FLASHJIT_CU(cuCtxGetCurrent(&ctx));
  if (!ctx) return -1;
  CUdevice dev = 0;
  FLASHJIT_CU(cuCtxGetDevice(&dev));
  return static_cast<int>(dev);
#else
  return -1;
#endif
}

DeviceMirrors::DeviceMirrors(Device device, GuardSide guard) : device_(device), guard_(guard) {
#if FLASHJIT_HAVE_CUDA
  if (device_.type != DeviceType::kCUDA) return;
  FLASHJIT_ICHECK(cuda_device_available()) << "a CUDA test case ran without a CUDA device";
  make_current();
#else
  FLASHJIT_ICHECK(device_.type == DeviceType::kCPU) << "this build has no CUDA backend";
#endif
}

void DeviceMirrors::make_current() const {
  if (device_.type == DeviceType::kCUDA) make_cuda_device_current(device_.index);
}

// Frees in the mirrors' context and then leaves the thread's context as it found it: a test that
// caught an error from a call checks which context the call left current.
DeviceMirrors::~DeviceMirrors() {
#if FLASHJIT_HAVE_CUDA
  CUcontext previous = nullptr;
  const bool switch_context = device_.type == DeviceType::kCUDA && !mirrors_.empty() &&
                              cuda::driver()->cuCtxGetCurrent(&previous) == CUDA_SUCCESS;
  if (switch_context) make_current();
#endif
  for (auto& [host, m] : mirrors_) {
    if (m.mapping) {
      munmap(m.mapping, m.mapping_bytes);
      continue;
    }
#if FLASHJIT_HAVE_CUDA
    cuda::driver()->cuMemFree(reinterpret_cast<CUdeviceptr>(m.device));
#endif
  }
#if FLASHJIT_HAVE_CUDA
  if (switch_context) cuda::driver()->cuCtxSetCurrent(previous);
#endif
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
  make_current();
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
  make_current();
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
  make_current();
  FLASHJIT_CU(cuCtxSynchronize());
  if (it->second.bytes)
    FLASHJIT_CU(
        cuMemcpyDtoH(host, reinterpret_cast<CUdeviceptr>(it->second.device), it->second.bytes));
#endif
}

}  // namespace flashjit::testing
