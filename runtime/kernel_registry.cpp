// The CPU kernel registry: memory map -> disk cache -> clang, then ORC link.
#include "runtime/kernel_registry.h"

#include <chrono>
#include <cstdio>
#include <fstream>

#include "codegen/generate_source.h"
#include "runtime/config.h"
#include "runtime/cpu_compiler.h"
#include "runtime/cpu_jit.h"
#include "runtime/embedded_templates.h"
#include "runtime/kernel_store.h"

namespace flashjit {
namespace {

CpuKernel link(const std::string& object, const KernelKey& key) {
  const CpuKernelSymbols sym =
      load_cpu_object(object, key.name(),
                      CpuEntries{key.split_kv, key.append_kv, key.op == KernelOp::kMergeStates});
  const int abi = reinterpret_cast<int (*)()>(sym.abi_version)();
  FLASHJIT_ICHECK(abi == FLASHJIT_CPU_ABI_VERSION)
      << "kernel " << key.name() << " has ABI " << abi << ", expected " << FLASHJIT_CPU_ABI_VERSION;
  CpuKernel k;
  if (key.op == KernelOp::kMergeStates) {
    k.merge = reinterpret_cast<CpuMergeFn>(sym.fwd);
  } else {
    k.fwd = reinterpret_cast<CpuFwdFn>(sym.fwd);
  }
  k.combine = reinterpret_cast<CpuFwdFn>(sym.combine);
  k.append = reinterpret_cast<CpuFwdFn>(sym.append);
  k.scratch_bytes = reinterpret_cast<long long (*)()>(sym.scratch_bytes)();
  k.name = key.name();
  return k;
}

CpuKernel build(const KernelKey& key) {
  const JitConfig& config = jit_config();
  const std::string source = generate_cpu_source(key);
  if (!config.dump_dir.empty())
    std::ofstream(config.dump_dir + "/" + key.name() + ".cpp") << source;
  const auto start = std::chrono::steady_clock::now();
  const ObtainedBinary binary =
      obtain_binary(key, "cpu-" + key.target.triple, cpu_kernel_digest(key, source), [&] {
        CpuObject object = compile_cpu_object(source, key.target, key.name());
        CompiledBinary out;
        out.bytes = std::move(object.bytes);
        out.compile_ms = object.compile_ms;
        out.meta = {{"generator_version", kGeneratorVersion},
                    {"compiler", cpu_compiler_identity()},
                    {"flags", cpu_compile_flags()}};
        return out;
      });
  CpuKernel kernel = link(binary.bytes, key);
  if (binary.from_disk) {
    const double ms =
        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
    count_disk_load(ms);
    if (config.verbose)
      std::fprintf(stderr, "flashjit: loaded %s (%.2f ms)\n", key.name().c_str(), ms);
  }
  return kernel;
}

}  // namespace

std::string cpu_kernel_digest(const KernelKey& key, const std::string& source) {
  std::vector<std::string> fields = {"flashjit-kernel-digest-v1", std::to_string(kGeneratorVersion),
                                     key.to_string(), source};
  for (const EmbeddedFile& f : embedded_templates()) {
    const std::string path = f.path;
    // NOTE: only what a CPU kernel can include, so a CUDA template edit keeps CPU entries valid.
    if (path.rfind("flashjit/cpu/", 0) != 0 && path != "flashjit/fwd_params.h" &&
        path != "flashjit/merge_params.h" && path != "flashjit/attention_math.h")
      continue;
    fields.push_back(path);
    fields.push_back(f.text);
  }
  fields.push_back(cpu_compiler_identity());
  for (const std::string& flag : cpu_compile_flags()) fields.push_back(flag);
  return digest_fields(fields);
}

const CpuKernel& get_cpu_kernel(const KernelKey& key) {
  static KernelMap<CpuKernel> kernels;
  return kernels.get(key, [&] { return build(key); });
}

}  // namespace flashjit
