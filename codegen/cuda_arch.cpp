#include "codegen/cuda_arch.h"

#include <fmt/format.h>

#include <cctype>

namespace flashjit {

std::optional<CudaArch> parse_cuda_arch(const std::string& arch) {
  CudaArch out;
  std::string rest;
  if (arch.rfind("sm_", 0) == 0) {
    rest = arch.substr(3);
  } else if (arch.rfind("compute_", 0) == 0) {
    rest = arch.substr(8);
    out.ptx = true;
  } else {
    return std::nullopt;
  }
  if (!rest.empty() && rest.back() == 'a') {
    out.specific = true;
    rest.pop_back();
  }
  if (rest.size() < 2 || rest.size() > 3) return std::nullopt;
  for (char c : rest)
    if (!std::isdigit(static_cast<unsigned char>(c))) return std::nullopt;
  out.cc = std::stoi(rest);
  return out;
}

int cuda_arch_cc(const std::string& arch) {
  const std::optional<CudaArch> a = parse_cuda_arch(arch);
  return a ? a->cc : 0;
}

std::string cuda_arch_unrunnable(const std::string& arch, int major, int minor) {
  const std::optional<CudaArch> a = parse_cuda_arch(arch);
  if (!a)
    return fmt::format("{} is not a CUDA arch (sm_XY, sm_XYa, compute_XY or compute_XYa)", arch);
  const int device = major * 10 + minor;
  const std::string what = a->ptx ? "PTX" : "a cubin";
  if (a->specific && a->cc != device)
    return fmt::format("{} for {} runs only on compute capability {}.{}, not on {}.{}", what, arch,
                       a->cc / 10, a->cc % 10, major, minor);
  if (a->cc > device)
    return fmt::format("{} for {} needs compute capability {}.{} or newer, the device has {}.{}",
                       what, arch, a->cc / 10, a->cc % 10, major, minor);
  if (!a->ptx && a->cc / 10 != major)
    return fmt::format(
        "a cubin for {} runs only on compute capability {}.x, the device has {}.{} "
        "(compute_{} builds PTX that does)",
        arch, a->cc / 10, major, minor, a->cc);
  return "";
}

}  // namespace flashjit
