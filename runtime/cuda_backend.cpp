// The CUDA launch path. Modules are loaded once per (kernel, context) and their functions cached;
// the launch itself does no allocation, no synchronization and no compilation. Every entry runs
// inside the call's CudaCallContext (runtime/cuda_context.h): the current context is the call's.
#include "runtime/cuda_backend.h"

#include <fmt/format.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <map>
#include <memory>
#include <mutex>

#include "codegen/cuda_arch.h"
#include "codegen/generate_source.h"
#include "flashjit/error.h"
#include "runtime/config.h"
#include "runtime/cuda_api.h"
#include "runtime/cuda_compiler.h"
#include "runtime/embedded_templates.h"
#include "runtime/kernel_store.h"
#include "runtime/strided_fill.h"

namespace flashjit {
namespace {

// A loaded module; unloads on destruction (tolerating a driver that is already shut down).
struct Module {
  CUmodule module = nullptr;
  CUfunction function = nullptr;
  CUfunction combine = nullptr;  // split-KV keys
  CUfunction append = nullptr;   // append keys
  ~Module() {
    if (module) {
      if (const cuda::DriverApi* d = cuda::driver()) d->cuModuleUnload(module);
    }
  }
};

struct CudaKernel {
  std::string binary;  // a cubin, or PTX for a compute_ arch
  std::string name;
  CudaLaunchShape shape;
  std::shared_ptr<std::mutex> mutex = std::make_shared<std::mutex>();
  std::shared_ptr<std::map<CUcontext, std::unique_ptr<Module>>> modules =
      std::make_shared<std::map<CUcontext, std::unique_ptr<Module>>>();
};

// `compiler`: nvrtc_identity() or nvrtc_build_identity().
std::string cuda_kernel_digest(const KernelKey& key, const std::string& source,
                               const std::string& compiler) {
  std::vector<std::string> fields = {"flashjit-cuda-digest-v1", std::to_string(kGeneratorVersion),
                                     key.to_string(), source};
  for (const EmbeddedFile& f : embedded_templates()) {
    const std::string path = f.path;
    if (path.rfind("flashjit/cuda/", 0) != 0 && path != "flashjit/fwd_params.h" &&
        path != "flashjit/merge_params.h" && path != "flashjit/attention_math.h")
      continue;
    fields.push_back(path);
    fields.push_back(f.text);
  }
  fields.push_back(compiler);
  for (const std::string& o : nvrtc_options(key.target.cpu)) fields.push_back(o);
  return digest_fields(fields);
}

// Compiles the kernel of `key` with NVRTC, refusing while its stream is being captured.
CompiledBinary compile_kernel(const KernelKey& key, const std::string& source, CUstream stream) {
  CUstreamCaptureStatus capture = CU_STREAM_CAPTURE_STATUS_NONE;
  if (stream) FLASHJIT_CU(cuStreamIsCapturing(stream, &capture));
  FLASHJIT_CHECK(capture == CU_STREAM_CAPTURE_STATUS_NONE)
      << "kernel " << key.name()
      << " must be compiled, but its stream is being captured into a CUDA graph; run "
         "the call once before capturing, or precompile it";
  CudaBinary built = compile_cuda_binary(source, key.target.cpu, key.name());
  CompiledBinary out;
  out.bytes = std::move(built.bytes);
  out.compile_ms = built.compile_ms;
  out.meta = {{"generator_version", kGeneratorVersion},
              {"compiler", nvrtc_identity()},
              {"options", nvrtc_options(key.target.cpu)},
              {"registers", built.usage.registers},
              {"spill_store_bytes", built.usage.spill_store_bytes}};
  return out;
}

CudaKernel build(const KernelKey& key, CUstream stream) {
  const JitConfig& config = jit_config();
  const std::string source = generate_cuda_source(key);
  if (!config.dump_dir.empty()) std::ofstream(config.dump_dir + "/" + key.name() + ".cu") << source;
  const auto start = std::chrono::steady_clock::now();
  const std::string subdir = "cuda-" + key.target.cpu;
  // The digest names the NVRTC that built the cubin. It is looked up first for the NVRTC of this
  // build's toolkit, which needs no libnvrtc: a cache hit (a precompiled kernel) loads none (a
  // 5-40 ms dlopen; a deployment may not ship it). Only on a miss is NVRTC loaded; where its
  // version differs, its own entry is the one looked up or built.
  const std::string built_with = nvrtc_build_identity();
  const std::string digest = cuda_kernel_digest(key, source, built_with);
  std::optional<ObtainedBinary> binary = find_binary(key, subdir, digest);
  if (!binary) {
    const std::string loaded = nvrtc_identity();
    binary = obtain_binary(key, subdir,
                           loaded == built_with ? digest : cuda_kernel_digest(key, source, loaded),
                           [&] { return compile_kernel(key, source, stream); });
  }
  CudaKernel k;
  k.binary = std::move(binary->bytes);
  k.name = key.name();
  k.shape = cuda_launch_shape(key);
  if (binary->from_disk) {
    count_disk_load(
        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start)
            .count());
  }
  return k;
}

// Loads a cubin, or PTX that the driver compiles for this device; a failure carries the driver's
// log (for PTX, what its compiler refused) and the key.
CUmodule load_module(const std::string& bytes, const KernelKey& key) {
  const cuda::DriverApi& d = cuda::require_driver();
  char log[4096] = {};
  CUjit_option options[] = {CU_JIT_ERROR_LOG_BUFFER, CU_JIT_ERROR_LOG_BUFFER_SIZE_BYTES};
  void* values[] = {log, reinterpret_cast<void*>(sizeof(log))};
  CUmodule module = nullptr;
  const CUresult r = d.cuModuleLoadDataEx(&module, bytes.data(), 2, options, values);
  if (r != CUDA_SUCCESS) {
    throw Error(fmt::format("flashjit: loading kernel {} ({}) failed: {}{}{}", key.name(),
                            key.target.cpu, cuda::error_name(r), *log ? "\n" : "", log));
  }
  return module;
}

const Module& module_for_context(const CudaKernel& k, const KernelKey& key) {
  const cuda::DriverApi& d = cuda::require_driver();
  CUcontext ctx = nullptr;
  cuda::check(d.cuCtxGetCurrent(&ctx), "cuCtxGetCurrent");
  FLASHJIT_ICHECK(ctx) << "kernel " << key.name() << " used outside a CudaCallContext";
  std::lock_guard<std::mutex> lock(*k.mutex);
  std::unique_ptr<Module>& m = (*k.modules)[ctx];
  if (!m) {
    auto loaded = std::make_unique<Module>();
    loaded->module = load_module(k.binary, key);
    const char* entry = key.op == KernelOp::kMergeStates ? kCudaEntryMerge : kCudaEntryFwd;
    cuda::check(d.cuModuleGetFunction(&loaded->function, loaded->module, entry),
                "cuModuleGetFunction");
    cuda::check(
        d.cuFuncSetAttribute(loaded->function, CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES,
                             k.shape.smem_bytes),
        "cuFuncSetAttribute(MAX_DYNAMIC_SHARED_SIZE_BYTES)");
    if (key.split_kv)
      cuda::check(d.cuModuleGetFunction(&loaded->combine, loaded->module, kCudaEntryCombine),
                  "cuModuleGetFunction(flashjit_combine)");
    if (key.append_kv)
      cuda::check(d.cuModuleGetFunction(&loaded->append, loaded->module, kCudaEntryAppend),
                  "cuModuleGetFunction(flashjit_append)");
    m = std::move(loaded);
  }
  return *m;
}

}  // namespace

namespace {
const CudaKernel& cuda_kernel(const KernelKey& key, CUstream stream) {
  static KernelMap<CudaKernel> kernels;
  return kernels.get(key, [&] { return build(key, stream); });
}
}  // namespace

void load_cuda_kernel(const KernelKey& key, void* stream) {
  module_for_context(cuda_kernel(key, static_cast<CUstream>(stream)), key);
}

namespace {
// Launches one entry of a loaded module; `programmatic`: as a programmatic dependent of the kernel
// before it on the stream (Hopper only: templates/cuda/ptx.cuh, grid_dependency_wait). Failures
// name the key, the entry, the grid, the block and the shared memory.
void launch_entry(const KernelKey& key, CUfunction f, const char* entry, CudaGrid grid, int threads,
                  int smem, bool programmatic, CUstream stream, void** args) {
  FLASHJIT_ICHECK(f) << "kernel " << key.name() << " lacks the entry " << entry;
  CUlaunchAttribute attr{};
  attr.id = CU_LAUNCH_ATTRIBUTE_PROGRAMMATIC_STREAM_SERIALIZATION;
  attr.value.programmaticStreamSerializationAllowed = 1;
  CUlaunchConfig config{};
  config.gridDimX = grid.x;
  config.gridDimY = grid.y;
  config.gridDimZ = grid.z;
  config.blockDimX = threads;
  config.blockDimY = config.blockDimZ = 1;
  config.sharedMemBytes = smem;
  config.hStream = stream;
  config.attrs = &attr;
  config.numAttrs = programmatic && cuda_arch_cc(key.target.cpu) >= 90 ? 1 : 0;
  const CUresult r = cuda::require_driver().cuLaunchKernelEx(&config, f, args, nullptr);
  if (r != CUDA_SUCCESS) {
    throw Error(fmt::format(
        "flashjit: launching {} ({}) failed: {} (grid ({}, {}, {}), block {}, shared memory {} "
        "bytes)",
        key.name(), entry, cuda::error_name(r), grid.x, grid.y, grid.z, threads, smem));
  }
}
}  // namespace

void run_cuda_kernel(const KernelKey& key, const flashjit_kernel::FwdParams& params,
                     const CudaLaunch& launch, void* stream_ptr) {
  CUstream stream = static_cast<CUstream>(stream_ptr);
  const CudaKernel& k = cuda_kernel(key, stream);
  const Module& m = module_for_context(k, key);
  flashjit_kernel::FwdParams p = params;
  void* args[] = {&p};
  // The attention kernel after an append, and the combine, depend on the kernel before them.
  if (launch.append.x)
    launch_entry(key, m.append, kCudaEntryAppend, launch.append, kCudaAuxThreads, 0, false, stream,
                 args);
  if (launch.fwd.x)
    launch_entry(key, m.function, kCudaEntryFwd, launch.fwd, k.shape.threads, k.shape.smem_bytes,
                 key.append_kv, stream, args);
  if (launch.combine.x)
    launch_entry(key, m.combine, kCudaEntryCombine, launch.combine, kCudaAuxThreads, 0, true,
                 stream, args);
}

void run_cuda_merge(const KernelKey& key, const flashjit_kernel::MergeParams& params, CudaGrid grid,
                    void* stream_ptr) {
  CUstream stream = static_cast<CUstream>(stream_ptr);
  const Module& m = module_for_context(cuda_kernel(key, stream), key);
  flashjit_kernel::MergeParams p = params;
  void* args[] = {&p};
  launch_entry(key, m.function, kCudaEntryMerge, grid, kCudaAuxThreads, 0, false, stream, args);
}

namespace {
// flashjit's own stream-ordered pool per device. It keeps freed memory reserved: the device's
// default pool returns it to the driver at every synchronization (release threshold 0), which
// made each split-KV call map fresh memory (measured: decode b8 s_k 8k 2.0 vs 3.1 TB/s).
CUmemoryPool workspace_pool(int device) {
  static std::mutex mutex;
  static std::map<int, CUmemoryPool> pools;
  std::lock_guard<std::mutex> lock(mutex);
  CUmemoryPool& pool = pools[device];
  if (pool) return pool;
  const cuda::DriverApi& d = cuda::require_driver();
  CUmemPoolProps props{};
  props.allocType = CU_MEM_ALLOCATION_TYPE_PINNED;
  props.handleTypes = CU_MEM_HANDLE_TYPE_NONE;
  props.location.type = CU_MEM_LOCATION_TYPE_DEVICE;
  props.location.id = device;
  cuda::check(d.cuMemPoolCreate(&pool, &props), "cuMemPoolCreate (split-KV workspace)");
  cuuint64_t keep = ~cuuint64_t{0};
  cuda::check(d.cuMemPoolSetAttribute(pool, CU_MEMPOOL_ATTR_RELEASE_THRESHOLD, &keep),
              "cuMemPoolSetAttribute(RELEASE_THRESHOLD)");
  return pool;
}
}  // namespace

CudaWorkspace::CudaWorkspace(size_t bytes, int device, void* stream) : stream_(stream) {
  if (bytes == 0) return;
  CUdeviceptr ptr = 0;
  cuda::check(cuda::require_driver().cuMemAllocFromPoolAsync(&ptr, bytes, workspace_pool(device),
                                                             static_cast<CUstream>(stream)),
              "cuMemAllocFromPoolAsync (split-KV workspace)");
  data_ = reinterpret_cast<void*>(ptr);
}

CudaWorkspace::~CudaWorkspace() {
  if (!data_) return;
  if (const cuda::DriverApi* d = cuda::driver())
    d->cuMemFreeAsync(reinterpret_cast<CUdeviceptr>(data_), static_cast<CUstream>(stream_));
}

void cuda_fill_empty(const Tensor& out, const OptionalTensor& lse, void* stream) {
  const cuda::DriverApi& d = cuda::require_driver();
  CUstream s = static_cast<CUstream>(stream);
  const size_t bytes = static_cast<size_t>(dtype_size(out.dtype));
  const std::vector<FillRect> out_rects = *cuda_fill_rects(out);
  for (const FillRect& r : out_rects)
    cuda::check(d.cuMemsetD2D8Async(reinterpret_cast<CUdeviceptr>(out.data) + r.offset * bytes,
                                    r.pitch * bytes, 0, r.width * bytes, r.height, s),
                "cuMemsetD2D8Async (out of a call without keys)");
  if (!lse) return;
  const std::vector<FillRect> lse_rects = *cuda_fill_rects(*lse);
  for (const FillRect& r : lse_rects)
    cuda::check(d.cuMemsetD2D32Async(reinterpret_cast<CUdeviceptr>(lse->data) + r.offset * 4,
                                     r.pitch * 4, 0x7f800000u, r.width, r.height, s),
                "cuMemsetD2D32Async (softmax_lse of a call without keys)");
}

}  // namespace flashjit
