// CUDA arch names as NVRTC spells them, and which of them run on a device. "sm_XY[a]" builds a
// cubin; "compute_XY[a]" builds PTX, which the driver compiles for the device that loads it (how a
// kernel for an older arch, or for a GPU newer than the toolkit, runs).
#pragma once

#include <optional>
#include <string>

namespace flashjit {

struct CudaArch {
  int cc = 0;             // compute capability x 10 + minor: 80, 86, 90, 100, ...
  bool ptx = false;       // "compute_": PTX for the driver to compile
  bool specific = false;  // the "a" suffix: features of exactly this compute capability
};

// "sm_90a" -> {90, false, true}; nullopt for anything not of the form (sm|compute)_<digits>[a].
std::optional<CudaArch> parse_cuda_arch(const std::string& arch);

// The compute capability x 10 of an arch name, 0 when it does not parse.
int cuda_arch_cc(const std::string& arch);

// "" when kernels built for `arch` run on a device of compute capability major.minor; else why not,
// as a sentence naming both. A cubin runs on its own major version at its minor or above (sm_80 on
// 8.6, not on 9.0); PTX on its compute capability or above; an "a" arch on exactly its own.
std::string cuda_arch_unrunnable(const std::string& arch, int major, int minor);

}  // namespace flashjit
