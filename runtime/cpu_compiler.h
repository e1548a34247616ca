// In-process C++ -> x86-64 object compiler: clang 19 as a library. Sources see only the embedded
// kernel templates through an in-memory file system (no system or resource headers), so a compile
// parses a few hundred lines instead of <immintrin.h>.
#pragma once

#include <string>
#include <vector>

#include "flashjit/kernel_key.h"

namespace flashjit {

struct CpuObject {
  std::string bytes;  // relocatable ELF object
  double compile_ms = 0;
};

// Identity of the compiler for the cache digest: clang's full version.
std::string cpu_compiler_identity();

// The cc1 options every kernel is compiled with, target excluded (also part of the digest).
const std::vector<std::string>& cpu_compile_flags();

// Compiles `source` for `target`. Throws CompileError (with the diagnostics and `key_name`).
CpuObject compile_cpu_object(const std::string& source, const Target& target,
                             const std::string& key_name);

}  // namespace flashjit
