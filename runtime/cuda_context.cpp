// CudaCallContext on the driver API: cuStreamGetCtx for the stream's context, the primary context
// of the device otherwise, pushed onto the thread's context stack for the call.
#include "runtime/cuda_context.h"

#include <map>
#include <mutex>
#include <string>

#include "flashjit/error.h"
#include "runtime/cuda_api.h"

namespace flashjit {
namespace {

// Retained once per device and kept for the life of the process (loaded modules live in it).
CUcontext primary_context(CUdevice dev) {
  static std::mutex mutex;
  static std::map<CUdevice, CUcontext> contexts;
  std::lock_guard<std::mutex> lock(mutex);
  CUcontext& ctx = contexts[dev];
  if (!ctx)
    cuda::check(cuda::require_driver().cuDevicePrimaryCtxRetain(&ctx, dev),
                "cuDevicePrimaryCtxRetain");
  return ctx;
}

CUdevice current_device() {
  CUdevice dev = 0;
  cuda::check(cuda::require_driver().cuCtxGetDevice(&dev), "cuCtxGetDevice");
  return dev;
}

bool is_special_stream(CUstream s) {
  return s == nullptr || s == CU_STREAM_LEGACY || s == CU_STREAM_PER_THREAD;
}

}  // namespace

CudaCallContext::CudaCallContext(const Device& device, void* stream_ptr) {
  if (device.type != DeviceType::kCUDA) return;
  const cuda::DriverApi& d = cuda::require_driver();
  static const int count = [&] {  // fixed for the life of the process
    int n = 0;
    cuda::check(d.cuDeviceGetCount(&n), "cuDeviceGetCount");
    return n;
  }();
  if (count == 0) FLASHJIT_NOT_SUPPORTED() << "CUDA tensors on this machine: it has no CUDA device";
  FLASHJIT_CHECK(device.index >= 0 && device.index < count)
      << "q: expected a tensor of cuda:0 to cuda:" << count - 1
      << " (the devices of this machine), got one of cuda:" << device.index;
  CUdevice dev = 0;
  cuda::check(d.cuDeviceGet(&dev, device.index), "cuDeviceGet");
  CUcontext current = nullptr;
  cuda::check(d.cuCtxGetCurrent(&current), "cuCtxGetCurrent");
  const CUstream stream = static_cast<CUstream>(stream_ptr);
  // The default streams name the current context's, so they follow the context chosen here.
  CUcontext target = nullptr;
  if (!is_special_stream(stream)) {
    cuda::check(d.cuStreamGetCtx(stream, &target), "cuStreamGetCtx (of options.stream)");
  } else if (current && current_device() == dev) {
    target = current;
  } else {
    target = primary_context(dev);
  }
  if (target == current) return;
  if (current) {
    cuda::check(d.cuCtxPushCurrent(target), "cuCtxPushCurrent");
    pushed_ = true;
  } else {
    cuda::check(d.cuCtxSetCurrent(target), "cuCtxSetCurrent");
  }
  if (is_special_stream(stream)) return;
  CUdevice stream_dev = 0;
  const CUresult r = d.cuCtxGetDevice(&stream_dev);
  if (r == CUDA_SUCCESS && stream_dev == dev) return;
  // Leave the thread's contexts as they were before reporting the stream.
  if (pushed_) {
    CUcontext popped = nullptr;
    d.cuCtxPopCurrent(&popped);
    pushed_ = false;
  } else {
    d.cuCtxSetCurrent(nullptr);
  }
  cuda::check(r, "cuCtxGetDevice (of options.stream's context)");
  FLASHJIT_CHECK(stream_dev == dev) << "options.stream: expected a stream of cuda:" << device.index
                                    << " (the device of q), got a stream of cuda:" << stream_dev;
}

CudaCallContext::~CudaCallContext() {
  if (!pushed_) return;
  CUcontext popped = nullptr;
  if (const cuda::DriverApi* d = cuda::driver()) d->cuCtxPopCurrent(&popped);
}

}  // namespace flashjit
