// clang CompilerInstance driven with hand-built cc1 arguments; the object is written to memory.
#include "runtime/cpu_compiler.h"

#include <clang/Basic/Diagnostic.h>
#include <clang/Basic/DiagnosticOptions.h>
#include <clang/Basic/Version.h>
#include <clang/CodeGen/CodeGenAction.h>
#include <clang/Frontend/CompilerInstance.h>
#include <clang/Frontend/CompilerInvocation.h>
#include <clang/Frontend/TextDiagnosticPrinter.h>
#include <llvm/ADT/SmallString.h>
#include <llvm/IR/LLVMContext.h>
#include <llvm/Support/MemoryBuffer.h>
#include <llvm/Support/TargetSelect.h>
#include <llvm/Support/VirtualFileSystem.h>
#include <llvm/Support/raw_ostream.h>

#include <chrono>
#include <mutex>

#include "flashjit/error.h"
#include "runtime/embedded_templates.h"

namespace flashjit {
namespace {

constexpr const char* kIncludeRoot = "/flashjit-jit/include";
constexpr const char* kSourcePath = "/flashjit-jit/kernel.cpp";

void init_llvm_targets() {
  static std::once_flag once;
  std::call_once(once, [] {
    llvm::InitializeNativeTarget();
    llvm::InitializeNativeTargetAsmPrinter();
    llvm::InitializeNativeTargetAsmParser();
  });
}

}  // namespace

std::string cpu_compiler_identity() { return clang::getClangFullVersion(); }

const std::vector<std::string>& cpu_compile_flags() {
  // NOTE: cc1 -O2 does not imply the vectorizers, and Intel tuning prefers 256-bit vectors for
  // generic code unless told otherwise (notes/cpu-jit.md: 66 -> 132 GFLOP/s).
  static const std::vector<std::string> flags = {"-O2",
                                                 "-vectorize-loops",
                                                 "-vectorize-slp",
                                                 "-mprefer-vector-width=512",
                                                 "-std=c++20",
                                                 "-ffp-contract=fast",
                                                 "-ffreestanding",
                                                 "-nostdsysteminc",
                                                 "-nobuiltininc",
                                                 "-mrelocation-model",
                                                 "pic",
                                                 "-pic-level",
                                                 "2",
                                                 "-fno-rtti",
                                                 "-w"};
  return flags;
}

CpuObject compile_cpu_object(const std::string& source, const Target& target,
                             const std::string& key_name) {
  init_llvm_targets();
  const auto start = std::chrono::steady_clock::now();

  std::vector<std::string> args = {"-triple", target.triple, "-target-cpu", target.cpu};
  size_t pos = 0;
  while (pos < target.features.size()) {
    size_t comma = target.features.find(',', pos);
    if (comma == std::string::npos) comma = target.features.size();
    args.push_back("-target-feature");
    args.push_back(target.features.substr(pos, comma - pos));
    pos = comma + 1;
  }
  for (const std::string& f : cpu_compile_flags()) args.push_back(f);
  args.insert(args.end(), {"-I", kIncludeRoot, "-emit-obj", "-x", "c++", kSourcePath});
  std::vector<const char*> argv;
  for (const std::string& a : args) argv.push_back(a.c_str());

  std::string diag_text;
  llvm::raw_string_ostream diag_stream(diag_text);
  llvm::IntrusiveRefCntPtr<clang::DiagnosticOptions> diag_opts(new clang::DiagnosticOptions);
  auto* printer = new clang::TextDiagnosticPrinter(diag_stream, diag_opts.get());
  llvm::IntrusiveRefCntPtr<clang::DiagnosticIDs> diag_ids(new clang::DiagnosticIDs);
  clang::DiagnosticsEngine diags(diag_ids, diag_opts, printer, /*ShouldOwnClient=*/true);

  auto invocation = std::make_shared<clang::CompilerInvocation>();
  if (!clang::CompilerInvocation::CreateFromArgs(*invocation, argv, diags)) {
    diag_stream.flush();
    throw CompileError(key_name, "invalid compiler arguments:\n" + diag_text);
  }
  invocation->getFrontendOpts().DisableFree = false;  // long-lived process: free per compile

  // Only the embedded templates and the source exist for this compile.
  llvm::IntrusiveRefCntPtr<llvm::vfs::InMemoryFileSystem> fs(new llvm::vfs::InMemoryFileSystem);
  for (const EmbeddedFile& f : embedded_templates()) {
    fs->addFile(std::string(kIncludeRoot) + "/" + f.path, 0,
                llvm::MemoryBuffer::getMemBuffer(f.text, f.path, /*RequiresNull=*/true));
  }
  fs->addFile(kSourcePath, 0, llvm::MemoryBuffer::getMemBufferCopy(source, kSourcePath));

  clang::CompilerInstance ci;
  ci.setInvocation(std::move(invocation));
  ci.createDiagnostics(new clang::TextDiagnosticPrinter(diag_stream, diag_opts.get()),
                       /*ShouldOwnClient=*/true);
  ci.createFileManager(fs);
  llvm::SmallString<0> object;
  ci.setOutputStream(std::make_unique<llvm::raw_svector_ostream>(object));
  llvm::LLVMContext context;
  clang::EmitObjAction action(&context);
  const bool ok = ci.ExecuteAction(action);
  diag_stream.flush();
  if (!ok || ci.getDiagnostics().hasErrorOccurred() || object.empty()) {
    throw CompileError(key_name, diag_text.empty() ? "clang produced no object" : diag_text);
  }
  CpuObject result;
  result.bytes.assign(object.data(), object.size());
  result.compile_ms =
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
  return result;
}

}  // namespace flashjit
