// The CUDA driver and NVRTC, loaded lazily with dlopen so that libflashjit links, loads and runs
// its CPU path on machines without them. The only place that names driver or NVRTC entry points.
#pragma once

#include <cuda.h>
#include <nvrtc.h>

#include <string>

namespace flashjit::cuda {

// Driver entry points used by flashjit (and by its GPU tests for memory and events).
#define FLASHJIT_CUDA_DRIVER_FUNCTIONS(X)                 \
  X(cuInit, "cuInit")                                     \
  X(cuDriverGetVersion, "cuDriverGetVersion")             \
  X(cuDeviceGet, "cuDeviceGet")                           \
  X(cuDeviceGetCount, "cuDeviceGetCount")                 \
  X(cuDeviceGetAttribute, "cuDeviceGetAttribute")         \
  X(cuDeviceGetName, "cuDeviceGetName")                   \
  X(cuDevicePrimaryCtxRetain, "cuDevicePrimaryCtxRetain") \
  X(cuCtxGetCurrent, "cuCtxGetCurrent")                   \
  X(cuCtxSetCurrent, "cuCtxSetCurrent")                   \
  X(cuCtxGetDevice, "cuCtxGetDevice")                     \
  X(cuCtxPushCurrent, "cuCtxPushCurrent_v2")              \
  X(cuCtxPopCurrent, "cuCtxPopCurrent_v2")                \
  X(cuCtxSynchronize, "cuCtxSynchronize")                 \
  X(cuModuleLoadData, "cuModuleLoadData")                 \
  X(cuModuleLoadDataEx, "cuModuleLoadDataEx")             \
  X(cuModuleUnload, "cuModuleUnload")                     \
  X(cuModuleGetFunction, "cuModuleGetFunction")           \
  X(cuFuncSetAttribute, "cuFuncSetAttribute")             \
  X(cuLaunchKernel, "cuLaunchKernel")                     \
  X(cuLaunchKernelEx, "cuLaunchKernelEx")                 \
  X(cuGetErrorName, "cuGetErrorName")                     \
  X(cuGetErrorString, "cuGetErrorString")                 \
  X(cuPointerGetAttribute, "cuPointerGetAttribute")       \
  X(cuPointerGetAttributes, "cuPointerGetAttributes")     \
  X(cuStreamIsCapturing, "cuStreamIsCapturing")           \
  X(cuStreamGetCtx, "cuStreamGetCtx")                     \
  X(cuStreamSynchronize, "cuStreamSynchronize")           \
  X(cuMemAlloc, "cuMemAlloc_v2")                          \
  X(cuMemFree, "cuMemFree_v2")                            \
  X(cuMemAllocAsync, "cuMemAllocAsync")                   \
  X(cuMemFreeAsync, "cuMemFreeAsync")                     \
  X(cuMemPoolCreate, "cuMemPoolCreate")                   \
  X(cuMemPoolSetAttribute, "cuMemPoolSetAttribute")       \
  X(cuMemAllocFromPoolAsync, "cuMemAllocFromPoolAsync")   \
  X(cuMemcpyHtoD, "cuMemcpyHtoD_v2")                      \
  X(cuMemcpyDtoH, "cuMemcpyDtoH_v2")                      \
  X(cuMemcpyDtoDAsync, "cuMemcpyDtoDAsync_v2")            \
  X(cuMemsetD8, "cuMemsetD8_v2")                          \
  X(cuMemsetD8Async, "cuMemsetD8Async")                   \
  X(cuMemsetD32Async, "cuMemsetD32Async")                 \
  X(cuMemsetD2D8Async, "cuMemsetD2D8Async")               \
  X(cuMemsetD2D32Async, "cuMemsetD2D32Async")             \
  X(cuEventCreate, "cuEventCreate")                       \
  X(cuEventRecord, "cuEventRecord")                       \
  X(cuEventSynchronize, "cuEventSynchronize")             \
  X(cuEventElapsedTime, "cuEventElapsedTime_v2")          \
  X(cuEventDestroy, "cuEventDestroy_v2")                  \
  X(cuStreamCreate, "cuStreamCreate")                     \
  X(cuStreamDestroy, "cuStreamDestroy_v2")                \
  X(cuStreamBeginCapture, "cuStreamBeginCapture_v2")      \
  X(cuStreamEndCapture, "cuStreamEndCapture")             \
  X(cuGraphInstantiate, "cuGraphInstantiateWithFlags")    \
  X(cuGraphLaunch, "cuGraphLaunch")                       \
  X(cuGraphExecDestroy, "cuGraphExecDestroy")             \
  X(cuGraphDestroy, "cuGraphDestroy")

#define FLASHJIT_NVRTC_FUNCTIONS(X)                   \
  X(nvrtcVersion, "nvrtcVersion")                     \
  X(nvrtcGetErrorString, "nvrtcGetErrorString")       \
  X(nvrtcCreateProgram, "nvrtcCreateProgram")         \
  X(nvrtcCompileProgram, "nvrtcCompileProgram")       \
  X(nvrtcGetProgramLogSize, "nvrtcGetProgramLogSize") \
  X(nvrtcGetProgramLog, "nvrtcGetProgramLog")         \
  X(nvrtcGetCUBINSize, "nvrtcGetCUBINSize")           \
  X(nvrtcGetCUBIN, "nvrtcGetCUBIN")                   \
  X(nvrtcGetPTXSize, "nvrtcGetPTXSize")               \
  X(nvrtcGetPTX, "nvrtcGetPTX")                       \
  X(nvrtcDestroyProgram, "nvrtcDestroyProgram")

#define FLASHJIT_DECLARE_POINTER(name, symbol) decltype(&::name) name = nullptr;
struct DriverApi {
  FLASHJIT_CUDA_DRIVER_FUNCTIONS(FLASHJIT_DECLARE_POINTER)
};
struct NvrtcApi {
  FLASHJIT_NVRTC_FUNCTIONS(FLASHJIT_DECLARE_POINTER)
};
#undef FLASHJIT_DECLARE_POINTER

// The driver, loaded and cuInit'ed once; nullptr (with the reason in *why) when unavailable.
const DriverApi* driver(std::string* why = nullptr);
// The driver for a CUDA call; NotSupportedError naming the reason when it is unavailable.
const DriverApi& require_driver();
// NVRTC, loaded once; nullptr (with the reason in *why) when unavailable.
const NvrtcApi* nvrtc(std::string* why = nullptr);

// The driver's name for a result ("CUDA_ERROR_INVALID_VALUE"), or its number without a driver.
std::string error_name(CUresult result);

// Throws flashjit::Error naming the call, the error name and its description.
void check(CUresult result, const char* call);
void check(nvrtcResult result, const char* call);

}  // namespace flashjit::cuda

// FLASHJIT_CU(cuCall(args)): calls through the loaded driver table and checks the result.
#define FLASHJIT_CU(call) ::flashjit::cuda::check(::flashjit::cuda::driver()->call, #call)
