// The demo's two problems on CUDA device 0: inputs copied to device memory, the output poisoned
// before the first call, each call timed with CUDA events on a stream of its own, the result copied
// back and checked against the float64 reference.
#include "tools/cuda_demo.h"

#include <fmt/format.h>

#ifdef FLASHJIT_HAVE_CUDA

#include <algorithm>
#include <string>
#include <utility>
#include <vector>

#include "runtime/cuda_api.h"
#include "runtime/cuda_device.h"
#include "tools/demo_problems.h"

namespace flashjit::tools {
namespace {

const Device kGpu{DeviceType::kCUDA, 0};

// Device memory holding a copy of `bytes` host bytes (or poisoned with 0xff where host is null).
struct DeviceCopy {
  CUdeviceptr ptr = 0;
  size_t bytes = 0;
  DeviceCopy(const void* host, size_t n) : bytes(n) {
    FLASHJIT_CU(cuMemAlloc(&ptr, std::max<size_t>(n, 16)));
    if (host)
      FLASHJIT_CU(cuMemcpyHtoD(ptr, host, n));
    else
      FLASHJIT_CU(cuMemsetD8(ptr, 0xff, n));
  }
  ~DeviceCopy() { cuda::driver()->cuMemFree(ptr); }
  DeviceCopy(const DeviceCopy&) = delete;
  DeviceCopy& operator=(const DeviceCopy&) = delete;
  void* data() const { return reinterpret_cast<void*>(ptr); }
  void copy_to(void* host) const { FLASHJIT_CU(cuMemcpyDtoH(host, ptr, bytes)); }
};

template <typename T>
DeviceCopy copy_of(const std::vector<T>& v) {
  return DeviceCopy(v.data(), v.size() * sizeof(T));
}

// Best and median milliseconds of `reps` calls of fn, each between two events on `stream`.
template <typename F>
std::pair<double, double> event_ms(int reps, CUstream stream, F&& fn) {
  CUevent start, stop;
  FLASHJIT_CU(cuEventCreate(&start, CU_EVENT_DEFAULT));
  FLASHJIT_CU(cuEventCreate(&stop, CU_EVENT_DEFAULT));
  std::vector<double> t;
  for (int i = 0; i < reps; ++i) {
    FLASHJIT_CU(cuEventRecord(start, stream));
    fn();
    FLASHJIT_CU(cuEventRecord(stop, stream));
    FLASHJIT_CU(cuEventSynchronize(stop));
    float ms = 0;
    FLASHJIT_CU(cuEventElapsedTime(&ms, start, stop));
    t.push_back(ms);
  }
  cuda::driver()->cuEventDestroy(start);
  cuda::driver()->cuEventDestroy(stop);
  std::sort(t.begin(), t.end());
  return {t.front(), t[t.size() / 2]};
}

bool prefill_on_gpu(CUstream stream) {
  DemoPrefill p;
  const DeviceCopy q(p.q.data(), p.q.bytes.size()), k(p.k.data(), p.k.bytes.size()),
      v(p.v.data(), p.v.bytes.size()), out(nullptr, p.out.bytes.size()), cu = copy_of(p.cu_seqlens);
  VarlenArgs a = p.args(q.data(), k.data(), v.data(), out.data(), cu.data(), kGpu);
  a.options.stream = stream;
  fmt::print("{}\n", DemoPrefill::description());
  const CacheStats before = cache_stats();
  flash_attn_varlen(a);
  FLASHJIT_CU(cuStreamSynchronize(stream));
  fmt::print("  kernel  : {}\n", how_obtained(before, cache_stats()));
  out.copy_to(p.out.data());  // the first call's result: unwritten elements stay poisoned
  const auto [best, median] = event_ms(20, stream, [&] { flash_attn_varlen(a); });
  fmt::print("  run     : {:.3f} ms median, {:.1f} TFLOP/s (best {:.1f})\n", median,
             p.flops() / median / 1e9, p.flops() / best / 1e9);
  return p.check();
}

bool decode_on_gpu(CUstream stream) {
  DemoDecode p;
  const DeviceCopy q(p.q.data(), p.q.bytes.size()), k(p.k.data(), p.k.bytes.size()),
      v(p.v.data(), p.v.bytes.size()), out(nullptr, p.out.bytes.size()),
      table = copy_of(p.page_table), seqlens = copy_of(p.seqlens);
  KvcacheArgs a =
      p.args(q.data(), k.data(), v.data(), out.data(), table.data(), seqlens.data(), kGpu);
  a.options.stream = stream;
  fmt::print("{}\n", DemoDecode::description());
  const CacheStats before = cache_stats();
  flash_attn_with_kvcache(a);
  FLASHJIT_CU(cuStreamSynchronize(stream));
  fmt::print("  kernel  : {}\n", how_obtained(before, cache_stats()));
  out.copy_to(p.out.data());
  const auto [best, median] = event_ms(20, stream, [&] { flash_attn_with_kvcache(a); });
  fmt::print("  run     : {:.4f} ms median, {:.0f} GB/s of K/V read (best {:.0f})\n", median,
             p.kv_bytes() / median / 1e6, p.kv_bytes() / best / 1e6);
  return p.check();
}

}  // namespace

bool run_cuda_demo() {
  std::string why;
  const cuda::DriverApi* d = cuda::driver(&why);
  int count = 0;
  if (d && d->cuDeviceGetCount(&count) != CUDA_SUCCESS) count = 0;
  if (!d || count == 0) {
    fmt::print("GPU: none here ({}): the CUDA half of the demo is skipped\n",
               d ? "the driver reports no device" : why);
    return true;
  }
  CUdevice dev = 0;
  CUcontext ctx = nullptr;
  char name[256] = {};
  FLASHJIT_CU(cuDeviceGet(&dev, 0));
  FLASHJIT_CU(cuDeviceGetName(name, sizeof(name), dev));
  FLASHJIT_CU(cuDevicePrimaryCtxRetain(&ctx, dev));
  FLASHJIT_CU(cuCtxSetCurrent(ctx));
  CUstream stream = nullptr;
  FLASHJIT_CU(cuStreamCreate(&stream, CU_STREAM_NON_BLOCKING));
  bool ok = false;
  try {
    fmt::print("GPU: {} ({} SMs), kernels built for {} with NVRTC, launched through the driver\n\n",
               name, cuda_sm_count(0), cuda_arch(0));
    const bool ok1 = prefill_on_gpu(stream);
    fmt::print("\n");
    const bool ok2 = decode_on_gpu(stream);
    ok = ok1 && ok2;
  } catch (const Error& e) {
    fmt::print("GPU: {}\n", e.what());
  }
  d->cuStreamDestroy(stream);
  return ok;
}

}  // namespace flashjit::tools

#else  // a build without the CUDA backend

namespace flashjit::tools {
bool run_cuda_demo() {
  fmt::print("GPU: this build has no CUDA backend (FLASHJIT_ENABLE_CUDA=OFF): skipped\n");
  return true;
}
}  // namespace flashjit::tools

#endif
