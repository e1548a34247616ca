// Loads compiled CPU kernel objects into the process with one LLVM ORC LLJIT; each kernel gets its
// own JITDylib, so every kernel exports the same fixed entry-point names.
#pragma once

#include <cstdint>
#include <string>

namespace flashjit {

struct CpuKernelSymbols {
  uint64_t fwd = 0;
  uint64_t scratch_bytes = 0;
  uint64_t abi_version = 0;
  uint64_t combine = 0;  // split-KV keys only
  uint64_t append = 0;   // append keys only
  uint64_t merge = 0;    // merge keys: instead of fwd
};

// The optional entry points a kernel object must have.
struct CpuEntries {
  bool combine = false;
  bool append = false;
  bool merge = false;  // a merge kernel: flashjit_merge instead of flashjit_fwd
};

// Links `object` into a new dylib named `dylib_name` and resolves the entry points. Throws
// flashjit::Error when the object does not link or lacks an entry point.
CpuKernelSymbols load_cpu_object(const std::string& object, const std::string& dylib_name,
                                 const CpuEntries& entries);

}  // namespace flashjit
