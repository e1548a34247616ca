// Kernels by key: an in-memory map in front of the disk cache in front of the compiler, with the
// load / lock / load-again / build protocol and the process-wide counters.
#pragma once

#include <cstdint>
#include <string>

#include "flashjit/flashjit.h"
#include "flashjit/kernel_key.h"
#include "templates/fwd_params.h"
#include "templates/merge_params.h"

namespace flashjit {

using CpuFwdFn = void (*)(const flashjit_kernel::FwdParams*, long long, long long, void*);
using CpuMergeFn = void (*)(const flashjit_kernel::MergeParams*, long long, long long, void*);

struct CpuKernel {
  CpuFwdFn fwd = nullptr;
  CpuFwdFn combine = nullptr;  // split-KV keys: work items (b, query index)
  CpuFwdFn append = nullptr;   // append keys: work items (b, KV head)
  CpuMergeFn merge = nullptr;  // merge keys (instead of fwd): work items are rows
  int64_t scratch_bytes = 0;
  std::string name;
};

// Everything that can change a CPU kernel binary, hashed: generator version, full key, generated
// source, every embedded template, compiler identity and flags. Returned as 64 hex digits.
std::string cpu_kernel_digest(const KernelKey& key, const std::string& source);

// Returns the loaded kernel for a canonical CPU key whose target is the host. Thread-safe; the
// reference stays valid for the life of the process.
const CpuKernel& get_cpu_kernel(const KernelKey& key);

}  // namespace flashjit
