// Key -> source text. Pure: no compiler, driver or file I/O. The generated translation unit
// includes the hand-written template and instantiates exactly one specialization behind fixed
// extern "C" entry points (each kernel lives in its own JIT dylib, so names never collide).
#pragma once

#include <string>

#include "flashjit/kernel_key.h"

namespace flashjit {

// Bump when the generated text or the template ABI changes in a way the digest would not see.
inline constexpr int kGeneratorVersion = 4;

// Entry points of a generated CPU kernel.
inline constexpr const char* kCpuEntryFwd = "flashjit_fwd";
inline constexpr const char* kCpuEntryScratchBytes = "flashjit_scratch_bytes";
inline constexpr const char* kCpuEntryAbiVersion = "flashjit_abi_version";
// Split-KV keys: merges the partials into out / lse; work items (b, query index).
inline constexpr const char* kCpuEntryCombine = "flashjit_combine";
// Append keys: writes the new keys / values into the cache; work items (b, KV head).
inline constexpr const char* kCpuEntryAppend = "flashjit_append";
// Merge keys (KernelOp::kMergeStates): flashjit_merge(const MergeParams*, begin, end, scratch)
// instead of flashjit_fwd; work items are rows.
inline constexpr const char* kCpuEntryMerge = "flashjit_merge";

// Source of the CPU kernel for a canonical, supported key. Deterministic: the same key gives
// byte-identical text.
std::string generate_cpu_source(const KernelKey& key);

// The entry point of a generated CUDA kernel: __global__ void flashjit_fwd(FwdParams).
inline constexpr const char* kCudaEntryFwd = "flashjit_fwd";
// Split-KV keys: __global__ flashjit_combine(FwdParams), 128 threads, grid
// (ceil(s_q * h / 4), 1, b): one warp per (query, head) row.
inline constexpr const char* kCudaEntryCombine = "flashjit_combine";
// Append keys: __global__ flashjit_append(FwdParams), 128 threads, grid (x, h_k, b): CTA x
// writes new keys x, x + gridDim.x, ...
inline constexpr const char* kCudaEntryAppend = "flashjit_append";
// Merge keys: __global__ flashjit_merge(MergeParams), 128 threads, grid ceil(rows * heads / 4).
inline constexpr const char* kCudaEntryMerge = "flashjit_merge";
// Threads of the combine, append and merge entries.
inline constexpr int kCudaAuxThreads = 128;

// Launch shape of the CUDA kernel of a key (also asserted inside the generated source).
struct CudaLaunchShape {
  int threads = 0;
  int smem_bytes = 0;  // dynamic shared memory
};
CudaLaunchShape cuda_launch_shape(const KernelKey& key);

// Elements between shared-memory rows of the Q / K tiles and of the V tiles (flashjit_cuda::Traits:
// swizzled rows of whole 128-byte lines, or rows padded by 16 bytes).
struct CudaRowStrides {
  int qk = 0, v = 0;
};
CudaRowStrides cuda_row_strides(const KernelKey& key);

// Row tiles of one m16 tile a warp with head_dim_v above 128 (templates/cuda/tile_traits.cuh,
// Traits::kColumnWarps): each warp accumulates O of all rows for its share of the columns.
bool cuda_column_warps(const KernelKey& key);

// Source of the CUDA kernel for a canonical, supported CUDA key. Deterministic.
std::string generate_cuda_source(const KernelKey& key);

}  // namespace flashjit
