// The process's single LLJIT. llvm::Error is converted to flashjit::Error here and nowhere else.
#include "runtime/cpu_jit.h"

#include <llvm/ExecutionEngine/Orc/ExecutionUtils.h>
#include <llvm/ExecutionEngine/Orc/JITTargetMachineBuilder.h>
#include <llvm/ExecutionEngine/Orc/LLJIT.h>
#include <llvm/Support/Error.h>
#include <llvm/Support/MemoryBuffer.h>
#include <llvm/Support/TargetSelect.h>

#include <memory>
#include <mutex>

#include "codegen/generate_source.h"
#include "flashjit/error.h"

namespace flashjit {
namespace {

template <typename T>
T unwrap(llvm::Expected<T> value, const std::string& what) {
  if (!value) throw Error("flashjit: " + what + ": " + llvm::toString(value.takeError()));
  return std::move(*value);
}

template <typename T>
T& unwrap(llvm::Expected<T&> value, const std::string& what) {
  if (!value) throw Error("flashjit: " + what + ": " + llvm::toString(value.takeError()));
  return *value;
}

void check(llvm::Error err, const std::string& what) {
  if (err) throw Error("flashjit: " + what + ": " + llvm::toString(std::move(err)));
}

class CpuJit {
 public:
  static CpuJit& instance() {
    static CpuJit jit;
    return jit;
  }

  CpuKernelSymbols load(const std::string& object, const std::string& dylib_name,
                        const CpuEntries& entries) {
    std::lock_guard<std::mutex> lock(mutex_);
    llvm::orc::JITDylib& dylib = unwrap(
        jit_->createJITDylib(dylib_name + "#" + std::to_string(counter_++)), "creating JIT dylib");
    // Kernels may call libm (log2f); resolve such symbols from the process.
    dylib.addGenerator(unwrap(llvm::orc::DynamicLibrarySearchGenerator::GetForCurrentProcess(
                                  jit_->getDataLayout().getGlobalPrefix()),
                              "process symbol generator"));
    check(jit_->addObjectFile(dylib, llvm::MemoryBuffer::getMemBufferCopy(object, dylib_name)),
          "adding kernel object " + dylib_name);
    CpuKernelSymbols s;
    s.fwd = unwrap(jit_->lookup(dylib, entries.merge ? kCpuEntryMerge : kCpuEntryFwd),
                   "linking " + dylib_name)
                .getValue();
    s.scratch_bytes =
        unwrap(jit_->lookup(dylib, kCpuEntryScratchBytes), "linking " + dylib_name).getValue();
    s.abi_version =
        unwrap(jit_->lookup(dylib, kCpuEntryAbiVersion), "linking " + dylib_name).getValue();
    if (entries.combine)
      s.combine = unwrap(jit_->lookup(dylib, kCpuEntryCombine), "linking " + dylib_name).getValue();
    if (entries.append)
      s.append = unwrap(jit_->lookup(dylib, kCpuEntryAppend), "linking " + dylib_name).getValue();
    return s;
  }

 private:
  CpuJit() {
    llvm::InitializeNativeTarget();
    llvm::InitializeNativeTargetAsmPrinter();
    auto jtmb = unwrap(llvm::orc::JITTargetMachineBuilder::detectHost(), "detecting host");
    jit_ = unwrap(llvm::orc::LLJITBuilder().setJITTargetMachineBuilder(std::move(jtmb)).create(),
                  "creating LLJIT");
  }
  std::mutex mutex_;
  std::unique_ptr<llvm::orc::LLJIT> jit_;
  uint64_t counter_ = 0;
};

}  // namespace

CpuKernelSymbols load_cpu_object(const std::string& object, const std::string& dylib_name,
                                 const CpuEntries& entries) {
  return CpuJit::instance().load(object, dylib_name, entries);
}

}  // namespace flashjit
