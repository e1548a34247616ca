// DeviceMirrors on the CUDA driver that libflashjit loads.
#include "reference/device_mirrors.h"

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

DeviceMirrors::DeviceMirrors(Device device) : device_(device) {
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
#if FLASHJIT_HAVE_CUDA
  for (auto& [host, m] : mirrors_)
    cuda::driver()->cuMemFree(reinterpret_cast<CUdeviceptr>(m.device));
#endif
}

void* DeviceMirrors::place(void* host, size_t bytes) {
  if (device_.type != DeviceType::kCUDA) return host;
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
#if FLASHJIT_HAVE_CUDA
  auto it = mirrors_.find(host);
  if (it == mirrors_.end()) return;
  FLASHJIT_CU(cuCtxSynchronize());
  if (it->second.bytes)
    FLASHJIT_CU(
        cuMemcpyHtoD(reinterpret_cast<CUdeviceptr>(it->second.device), host, it->second.bytes));
#else
  (void)host;
#endif
}

void DeviceMirrors::copy_back(void* host) {
#if FLASHJIT_HAVE_CUDA
  auto it = mirrors_.find(host);
  if (it == mirrors_.end()) return;
  FLASHJIT_CU(cuCtxSynchronize());
  if (it->second.bytes)
    FLASHJIT_CU(
        cuMemcpyDtoH(host, reinterpret_cast<CUdeviceptr>(it->second.device), it->second.bytes));
#else
  (void)host;
#endif
}

}  // namespace flashjit::testing
