// Host CPU target detection (LLVM) and the once-per-process AMX permission request.
#include "runtime/cpu_target.h"

#include <llvm/ADT/StringMap.h>
#include <llvm/TargetParser/Host.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <string>
#include <vector>

#include "runtime/config.h"

namespace flashjit {
namespace {

// Linux asks a process to request the AMX tile-data state before its first tile instruction;
// without it the first AMX instruction faults.
bool request_amx_permission() {
#if defined(__x86_64__) && defined(SYS_arch_prctl)
  constexpr int kArchReqXcompPerm = 0x1023;
  constexpr int kXfeatureXtiledata = 18;
  return syscall(SYS_arch_prctl, kArchReqXcompPerm, kXfeatureXtiledata) == 0;
#else
  return false;
#endif
}

Target detect() {
  Target t;
  t.triple = llvm::sys::getProcessTriple();
  t.cpu = llvm::sys::getHostCPUName().str();
  const llvm::StringMap<bool, llvm::MallocAllocator> features = llvm::sys::getHostCPUFeatures();
  const bool amx_allowed = !jit_config().disable_amx && request_amx_permission();
  std::vector<std::string> list;
  for (const auto& f : features) {
    std::string name = f.getKey().str();
    bool on = f.getValue();
    if (name.rfind("amx", 0) == 0 && !amx_allowed) on = false;
    if (name == "avx512bf16" && jit_config().disable_bf16_dot) on = false;
    list.push_back((on ? "+" : "-") + name);
  }
  // NOTE: sorted so that the string (part of the kernel key and digest) is stable across runs.
  std::sort(list.begin(), list.end(),
            [](const std::string& a, const std::string& b) { return a.substr(1) < b.substr(1); });
  for (size_t i = 0; i < list.size(); ++i) t.features += (i ? "," : "") + list[i];
  return t;
}

}  // namespace

const Target& host_cpu_target() {
  static const Target target = detect();
  return target;
}

}  // namespace flashjit
