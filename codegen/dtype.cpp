// Spellings of the enums of the public API and the key: one covered switch each.
#include <string>

#include "flashjit/error.h"
#include "flashjit/kernel_key.h"
#include "flashjit/tensor.h"

namespace flashjit {

const char* dtype_name(DType dtype) {
  switch (dtype) {
    case DType::kFloat32:
      return "fp32";
    case DType::kFloat16:
      return "fp16";
    case DType::kBFloat16:
      return "bf16";
    case DType::kFloat8E4M3:
      return "e4m3";
    case DType::kInt32:
      return "int32";
    case DType::kInt64:
      return "int64";
  }
  throw InternalError("dtype_name: unknown DType");
}

int dtype_size(DType dtype) {
  switch (dtype) {
    case DType::kFloat32:
    case DType::kInt32:
      return 4;
    case DType::kFloat16:
    case DType::kBFloat16:
      return 2;
    case DType::kFloat8E4M3:
      return 1;
    case DType::kInt64:
      return 8;
  }
  throw InternalError("dtype_size: unknown DType");
}

const char* backend_name(Backend backend) {
  switch (backend) {
    case Backend::kCpu:
      return "cpu";
    case Backend::kCuda:
      return "cuda";
  }
  throw InternalError("backend_name: unknown Backend");
}

std::string device_name(Device device) {
  switch (device.type) {
    case DeviceType::kCPU:
      return "cpu";
    case DeviceType::kCUDA:
      return "cuda:" + std::to_string(device.index);
  }
  throw InternalError("device_name: unknown DeviceType");
}

}  // namespace flashjit
