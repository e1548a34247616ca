// dlopen/dlsym of libcuda and libnvrtc, once per process, and error translation.
#include "runtime/cuda_api.h"

#include <dlfcn.h>

#include <mutex>
#include <vector>

#include "flashjit/error.h"

namespace flashjit::cuda {
namespace {

void* open_first(const std::vector<const char*>& names, std::string& why) {
  for (const char* name : names) {
    if (void* handle = dlopen(name, RTLD_NOW | RTLD_LOCAL)) return handle;
  }
  const char* err = dlerror();
  why = std::string("cannot load ") + names.front() + (err ? std::string(": ") + err : "");
  return nullptr;
}

template <typename Api>
struct Loaded {
  Api api;
  bool ok = false;
  std::string why;
};

Loaded<DriverApi>& loaded_driver() {
  static Loaded<DriverApi> d = [] {
    Loaded<DriverApi> r;
    void* h = open_first({"libcuda.so.1", "libcuda.so"}, r.why);
    if (!h) return r;
#define FLASHJIT_RESOLVE(name, symbol)                                   \
  r.api.name = reinterpret_cast<decltype(r.api.name)>(dlsym(h, symbol)); \
  if (!r.api.name) {                                                     \
    r.why = std::string("libcuda has no ") + symbol;                     \
    return r;                                                            \
  }
    FLASHJIT_CUDA_DRIVER_FUNCTIONS(FLASHJIT_RESOLVE)
#undef FLASHJIT_RESOLVE
    const CUresult init = r.api.cuInit(0);
    if (init != CUDA_SUCCESS) {
      const char* name = nullptr;
      r.api.cuGetErrorName(init, &name);
      r.why = std::string("cuInit failed: ") + (name ? name : "unknown error");
      return r;
    }
    r.ok = true;
    return r;
  }();
  return d;
}

Loaded<NvrtcApi>& loaded_nvrtc() {
  static Loaded<NvrtcApi> n = [] {
    Loaded<NvrtcApi> r;
    void* h = open_first(
        {"libnvrtc.so.13", "libnvrtc.so.12", "libnvrtc.so", "/usr/local/cuda/lib64/libnvrtc.so"},
        r.why);
    if (!h) return r;
#define FLASHJIT_RESOLVE(name, symbol)                                   \
  r.api.name = reinterpret_cast<decltype(r.api.name)>(dlsym(h, symbol)); \
  if (!r.api.name) {                                                     \
    r.why = std::string("libnvrtc has no ") + symbol;                    \
    return r;                                                            \
  }
    FLASHJIT_NVRTC_FUNCTIONS(FLASHJIT_RESOLVE)
#undef FLASHJIT_RESOLVE
    r.ok = true;
    return r;
  }();
  return n;
}

}  // namespace

const DriverApi* driver(std::string* why) {
  Loaded<DriverApi>& d = loaded_driver();
  if (!d.ok && why) *why = d.why;
  return d.ok ? &d.api : nullptr;
}

const DriverApi& require_driver() {
  std::string why;
  const DriverApi* d = driver(&why);
  if (!d) FLASHJIT_NOT_SUPPORTED() << "CUDA tensors on this machine: " << why;
  return *d;
}

const NvrtcApi* nvrtc(std::string* why) {
  Loaded<NvrtcApi>& n = loaded_nvrtc();
  if (!n.ok && why) *why = n.why;
  return n.ok ? &n.api : nullptr;
}

std::string error_name(CUresult result) {
  const char* name = nullptr;
  if (const DriverApi* d = driver()) d->cuGetErrorName(result, &name);
  return name ? name : std::to_string(static_cast<int>(result));
}

void check(CUresult result, const char* call) {
  if (result == CUDA_SUCCESS) return;
  const char* text = nullptr;
  if (const DriverApi* d = driver()) d->cuGetErrorString(result, &text);
  throw Error(std::string("flashjit: CUDA driver call ") + call + " failed: " + error_name(result) +
              " (" + (text ? text : "no description") + ")");
}

void check(nvrtcResult result, const char* call) {
  if (result == NVRTC_SUCCESS) return;
  const NvrtcApi* n = nvrtc();
  throw Error(std::string("flashjit: NVRTC call ") + call + " failed: " +
              (n ? n->nvrtcGetErrorString(result) : std::to_string(static_cast<int>(result))));
}

}  // namespace flashjit::cuda
