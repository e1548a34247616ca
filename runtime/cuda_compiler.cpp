// NVRTC compile of generated CUDA sources.
#include "runtime/cuda_compiler.h"

#include <algorithm>
#include <chrono>
#include <regex>

#include "codegen/cuda_arch.h"
#include "flashjit/error.h"
#include "runtime/config.h"
#include "runtime/cuda_api.h"
#include "runtime/embedded_templates.h"

namespace flashjit {

// A module with several entries (attention, combine, append) reports each: the worst of them.
CudaResourceUsage parse_ptxas_info(const std::string& log) {
  CudaResourceUsage u;
  const std::regex regs(R"(Used (\d+) registers)");
  for (auto it = std::sregex_iterator(log.begin(), log.end(), regs); it != std::sregex_iterator();
       ++it)
    u.registers = std::max(u.registers, std::stoi((*it)[1]));
  const std::regex frame(
      R"((\d+) bytes stack frame, (\d+) bytes spill stores, (\d+) bytes spill loads)");
  for (auto it = std::sregex_iterator(log.begin(), log.end(), frame); it != std::sregex_iterator();
       ++it) {
    u.stack_bytes = std::max(u.stack_bytes, std::stoi((*it)[1]));
    u.spill_store_bytes = std::max(u.spill_store_bytes, std::stoi((*it)[2]));
    u.spill_load_bytes = std::max(u.spill_load_bytes, std::stoi((*it)[3]));
  }
  return u;
}

std::string nvrtc_identity() {
  const cuda::NvrtcApi* api = cuda::nvrtc();
  int major = 0, minor = 0;
  if (api) api->nvrtcVersion(&major, &minor);
  return "nvrtc " + std::to_string(major) + "." + std::to_string(minor);
}

std::string nvrtc_build_identity() {
  return "nvrtc " + std::to_string(CUDA_VERSION / 1000) + "." +
         std::to_string(CUDA_VERSION % 1000 / 10);
}

// --no-cache: NVRTC 12.9+ keeps its own compilation cache (measured on the device: a repeat
// compile in 26-42 ms instead of 0.4-0.8 s). flashjit's content-addressed cache is the one cache:
// its entries are checked and shared across processes, and a first call's compile time is real.
// --split-compile=0: the optimizer and ptxas take a key's entries (attention, split combine,
// append) on parallel threads, one per CPU (the serving decode key: 0.95 -> 0.86 s on 2 cores;
// one-entry keys unchanged).
// FLASHJIT_NVRTC_OPTIONS come last, so that a later option of theirs overrides an earlier one.
std::vector<std::string> nvrtc_options(const std::string& arch) {
  std::vector<std::string> options = {"--gpu-architecture=" + arch,
                                      "-std=c++17",
                                      "--ptxas-options=-v",
                                      "-DNDEBUG",
                                      "--device-int128",
                                      "--no-cache",
                                      "--split-compile=0"};
  for (const std::string& o : jit_config().nvrtc_options) options.push_back(o);
  return options;
}

CudaBinary compile_cuda_binary(const std::string& source, const std::string& arch,
                               const std::string& key_name) {
  std::string why;
  const cuda::NvrtcApi* api = cuda::nvrtc(&why);
  if (!api) FLASHJIT_NOT_SUPPORTED() << "compiling CUDA kernels: " << why;
  const auto start = std::chrono::steady_clock::now();
  std::vector<const char*> header_texts, header_names;
  for (const EmbeddedFile& f : embedded_templates()) {
    header_texts.push_back(f.text);
    header_names.push_back(f.path);
  }
  nvrtcProgram program = nullptr;
  cuda::check(api->nvrtcCreateProgram(&program, source.c_str(), "flashjit_kernel.cu",
                                      static_cast<int>(header_texts.size()), header_texts.data(),
                                      header_names.data()),
              "nvrtcCreateProgram");
  struct Destroy {
    const cuda::NvrtcApi* api;
    nvrtcProgram* program;
    ~Destroy() { api->nvrtcDestroyProgram(program); }
  } destroy{api, &program};
  const std::vector<std::string> options = nvrtc_options(arch);
  std::vector<const char*> argv;
  for (const std::string& o : options) argv.push_back(o.c_str());
  const nvrtcResult result =
      api->nvrtcCompileProgram(program, static_cast<int>(argv.size()), argv.data());
  size_t log_size = 0;
  api->nvrtcGetProgramLogSize(program, &log_size);
  CudaBinary out;
  out.log.resize(log_size);
  if (log_size) api->nvrtcGetProgramLog(program, out.log.data());
  while (!out.log.empty() && out.log.back() == '\0') out.log.pop_back();
  if (result != NVRTC_SUCCESS) {
    std::string hint;
    if (result == NVRTC_ERROR_INVALID_OPTION &&
        out.log.find("gpu-architecture") != std::string::npos)
      hint = (out.log.empty() || out.log.back() == '\n' ? "" : "\n") + nvrtc_identity() +
             " does not know " + arch +
             "; FLASHJIT_CUDA_ARCH=compute_XY builds PTX for an arch it knows, which the driver "
             "compiles for the GPU";
    throw CompileError(key_name,
                       std::string(api->nvrtcGetErrorString(result)) + "\n" + out.log + hint);
  }
  size_t size = 0;
  if (parse_cuda_arch(arch).value_or(CudaArch{}).ptx) {
    // PTX text with its terminating NUL, which the driver's loader expects.
    cuda::check(api->nvrtcGetPTXSize(program, &size), "nvrtcGetPTXSize");
    out.bytes.resize(size);
    cuda::check(api->nvrtcGetPTX(program, out.bytes.data()), "nvrtcGetPTX");
  } else {
    cuda::check(api->nvrtcGetCUBINSize(program, &size), "nvrtcGetCUBINSize");
    out.bytes.resize(size);
    cuda::check(api->nvrtcGetCUBIN(program, out.bytes.data()), "nvrtcGetCUBIN");
  }
  out.usage = parse_ptxas_info(out.log);
  out.compile_ms =
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
  return out;
}

}  // namespace flashjit
