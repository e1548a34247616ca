// In-process CUDA C++ -> cubin (or PTX) with NVRTC for one exact arch. Sources see only the
// embedded templates (passed to NVRTC as in-memory headers): no CUDA or CCCL headers are parsed.
#pragma once

#include <string>
#include <vector>

namespace flashjit {

// What ptxas reported for the kernel (--ptxas-options=-v), -1 where the log says nothing.
struct CudaResourceUsage {
  int registers = -1;
  int stack_bytes = -1;
  int spill_store_bytes = -1;
  int spill_load_bytes = -1;
};
CudaResourceUsage parse_ptxas_info(const std::string& log);

struct CudaBinary {
  std::string bytes;  // a cubin; for a compute_ arch, PTX text ending in its NUL

  std::string log;
  CudaResourceUsage usage;
  double compile_ms = 0;
};

// "nvrtc 13.0": the NVRTC loaded at run time (loading it, a 5-40 ms dlopen); "nvrtc 0.0"
// without one. The digest covers it.
std::string nvrtc_identity();
// The same for the NVRTC of the toolkit this library was built with, without loading any.
std::string nvrtc_build_identity();

// The options every kernel is compiled with for `arch` ("sm_90a").
std::vector<std::string> nvrtc_options(const std::string& arch);

// Compiles `source` for `arch`: a cubin, or PTX for a compute_ arch. Throws CompileError with
// NVRTC's log and `key_name`, or NotSupportedError when NVRTC cannot be loaded.
CudaBinary compile_cuda_binary(const std::string& source, const std::string& arch,
                               const std::string& key_name);

}  // namespace flashjit
