// What flashjit asks of a CUDA device (arch, SM count, L2), and whether a pointer is its memory.
#include "runtime/cuda_device.h"

#include <fmt/format.h>

#include <map>
#include <mutex>

#include "codegen/cuda_arch.h"
#include "flashjit/error.h"
#include "runtime/config.h"
#include "runtime/cuda_api.h"

namespace flashjit {
namespace {
// What flashjit asks of a device, queried once per device: every CUDA call needs the arch (its
// key's target) and split-KV the SM count, and neither can change. A pre-Ampere device throws
// (and is not cached, so every call reports it).
struct DeviceInfo {
  std::string arch;             // the device's own, or FLASHJIT_CUDA_ARCH's
  std::string arch_unrunnable;  // why FLASHJIT_CUDA_ARCH's kernels cannot run here, "" if they can
  int sms = 0;
  int64_t l2_bytes = 0;
};

const DeviceInfo& device_info(int device) {
  static std::mutex mutex;
  static std::map<int, DeviceInfo> infos;
  std::lock_guard<std::mutex> lock(mutex);
  auto it = infos.find(device);
  if (it != infos.end()) return it->second;
  const cuda::DriverApi& d = cuda::require_driver();
  CUdevice dev;
  cuda::check(d.cuDeviceGet(&dev, device), "cuDeviceGet");
  int major = 0, minor = 0, sms = 0;
  cuda::check(d.cuDeviceGetAttribute(&major, CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR, dev),
              "cuDeviceGetAttribute");
  cuda::check(d.cuDeviceGetAttribute(&minor, CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR, dev),
              "cuDeviceGetAttribute");
  FLASHJIT_CHECK(major >= 8) << "device cuda:" << device << ": expected compute capability 8.0 "
                             << "or newer (Ampere+), got " << major << "." << minor;
  cuda::check(d.cuDeviceGetAttribute(&sms, CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT, dev),
              "cuDeviceGetAttribute(MULTIPROCESSOR_COUNT)");
  int l2 = 0;
  cuda::check(d.cuDeviceGetAttribute(&l2, CU_DEVICE_ATTRIBUTE_L2_CACHE_SIZE, dev),
              "cuDeviceGetAttribute(L2_CACHE_SIZE)");
  DeviceInfo info;
  info.l2_bytes = l2;
  info.arch = fmt::format("sm_{}{}{}", major, minor, major == 9 && minor == 0 ? "a" : "");
  if (const std::string& wanted = jit_config().cuda_arch; !wanted.empty()) {
    info.arch_unrunnable = cuda_arch_unrunnable(wanted, major, minor);
    if (info.arch_unrunnable.empty()) info.arch = wanted;
  }
  info.sms = sms;
  return infos[device] = info;
}
}  // namespace

std::string cuda_arch(int device) {
  const DeviceInfo& info = device_info(device);
  FLASHJIT_CHECK(info.arch_unrunnable.empty())
      << "FLASHJIT_CUDA_ARCH: expected an arch whose kernels run on cuda:" << device << " ("
      << info.arch << "), got " << jit_config().cuda_arch << ": " << info.arch_unrunnable;
  return info.arch;
}

int cuda_sm_count(int device) { return device_info(device).sms; }

int64_t cuda_l2_bytes(int device) { return device_info(device).l2_bytes; }

void check_cuda_pointer(const void* data, int device, const char* name) {
  if (!data) return;
  const cuda::DriverApi& d = cuda::require_driver();
  // One query for both attributes; a pointer the driver does not know reads as memory type 0.
  unsigned int memory_type = 0;
  int ordinal = -1;
  CUpointer_attribute attributes[] = {CU_POINTER_ATTRIBUTE_MEMORY_TYPE,
                                      CU_POINTER_ATTRIBUTE_DEVICE_ORDINAL};
  void* values[] = {&memory_type, &ordinal};
  const CUresult r =
      d.cuPointerGetAttributes(2, attributes, values, reinterpret_cast<CUdeviceptr>(data));
  FLASHJIT_CHECK(r == CUDA_SUCCESS &&
                 (memory_type == CU_MEMORYTYPE_DEVICE || memory_type == CU_MEMORYTYPE_UNIFIED))
      << name << ": expected device memory of cuda:" << device
      << " for a CUDA call, got a pointer the driver does not know as device memory";
  FLASHJIT_CHECK(ordinal < 0 || ordinal == device)
      << name << ": expected memory of cuda:" << device
      << " (the device of q), got memory of cuda:" << ordinal;
}

}  // namespace flashjit
