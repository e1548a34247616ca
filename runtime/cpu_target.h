// The host as a compile target: LLVM triple, CPU name and the full signed feature list. AMX
// features are kept only when the OS granted this process the AMX tile state.
#pragma once

#include "flashjit/kernel_key.h"

namespace flashjit {

// Detected once per process.
const Target& host_cpu_target();

}  // namespace flashjit
