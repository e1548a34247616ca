// Runs CUDA kernels: the kernel registry (NVRTC cubins in the disk cache,
// one module per CUDA context) and the launch on the caller's stream.
#pragma once

#include <cstdint>
#include <string>

#include "flashjit/kernel_key.h"
#include "runtime/launch_shapes.h"
#include "templates/fwd_params.h"
#include "templates/merge_params.h"

namespace flashjit {

// The functions below run inside the call's CudaCallContext (runtime/cuda_context.h).

// Compiles or loads the kernel of `key` and its module on the current context.
// Compiling while `stream` is being captured is an error naming the key.
void load_cuda_kernel(const KernelKey& key, void* stream);

// Compiles (or loads) the kernel of `key` and launches it on `stream` (a CUstream) without
// synchronizing. Compiling while the stream is being captured is an error naming the key.
void run_cuda_kernel(const KernelKey& key, const flashjit_kernel::FwdParams& params,
                     const CudaLaunch& launch, void* stream);

// Launches the merge kernel of a merge key (KernelOp::kMergeStates) on `stream`.
void run_cuda_merge(const KernelKey& key, const flashjit_kernel::MergeParams& params, CudaGrid grid,
                    void* stream);

// Device memory from the stream-ordered pool, freed in stream order when the object goes away
// (after the launches that use it were enqueued): capturable into a CUDA graph.
class CudaWorkspace {
 public:
  CudaWorkspace(size_t bytes, int device, void* stream);
  ~CudaWorkspace();
  CudaWorkspace(const CudaWorkspace&) = delete;
  CudaWorkspace& operator=(const CudaWorkspace&) = delete;
  void* data() const { return data_; }

 private:
  void* data_ = nullptr;
  void* stream_ = nullptr;
};

// out = 0 and lse = +inf in every element (empty K for the whole call) on the stream, by the 2D
// memsets of cuda_fill_rects (runtime/strided_fill.h), which the caller checked to exist.
void cuda_fill_empty(const Tensor& out, const OptionalTensor& lse, void* stream);

}  // namespace flashjit
