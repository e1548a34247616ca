// merge_states: validation, the merge kernel key, and the launch on either backend.
#include <fmt/format.h>

#include <string>

#include "flashjit/flashjit.h"
#include "runtime/checks.h"
#include "runtime/config.h"
#include "templates/merge_params.h"
#if FLASHJIT_HAVE_CPU_JIT
#include "runtime/cpu_backend.h"
#include "runtime/cpu_target.h"
#endif
#if FLASHJIT_HAVE_CUDA
#include "runtime/cuda_backend.h"
#include "runtime/cuda_context.h"
#include "runtime/cuda_device.h"
#endif

namespace flashjit {
namespace {

bool merge_dtype(DType d) {
  return d == DType::kFloat32 || d == DType::kFloat16 || d == DType::kBFloat16;
}

}  // namespace

void merge_states(const MergeStatesArgs& a) {
  const int n_states = static_cast<int>(a.outs.size());
  FLASHJIT_CHECK(n_states >= 1 && n_states <= flashjit_kernel::kMaxMergeStates)
      << "outs: expected 1 to " << flashjit_kernel::kMaxMergeStates
      << " states (merge more in several calls), got " << n_states;
  FLASHJIT_CHECK(a.lses.size() == a.outs.size())
      << "lses: expected one per state (" << n_states << "), got " << a.lses.size();
  checks::rank(a.out, "out", 3, "(n, h, dv)");
  const int64_t rows = a.out.size(0), heads = a.out.size(1), dv = a.out.size(2);
  const Device device = a.out.device;
  FLASHJIT_CHECK(merge_dtype(a.out.dtype))
      << "out: expected dtype fp32, fp16 or bf16, got " << dtype_name(a.out.dtype);
  checks::has_data(a.out, "out");
  checks::last_dim_contiguous(a.out, "out");
  checks::non_negative_strides(a.out, "out");
  checks::no_overlap(a.out, "out");
  FLASHJIT_CHECK(dv % 8 == 0 && dv > 0 && dv <= 512)
      << "out: expected dv (shape[2]) a multiple of 8 in [8, 512], got " << dv;
  const DType in_dtype = a.outs[0].dtype;
  flashjit_kernel::MergeParams p{};
  for (int s = 0; s < n_states; ++s) {
    const std::string on = fmt::format("outs[{}]", s), ln = fmt::format("lses[{}]", s);
    const Tensor& o = a.outs[s];
    const Tensor& l = a.lses[s];
    checks::rank(o, on.c_str(), 3, "(n, h, dv)");
    checks::shape(o, on.c_str(), {rows, heads, dv}, "(n, h, dv) as out");
    FLASHJIT_CHECK(merge_dtype(o.dtype) && o.dtype == in_dtype)
        << on << ": expected dtype " << dtype_name(in_dtype)
        << " (fp32, fp16 or bf16, one for every state), got " << dtype_name(o.dtype);
    checks::has_data(o, on.c_str());
    checks::last_dim_contiguous(o, on.c_str());
    checks::non_negative_strides(o, on.c_str());
    checks::same_device(o, on.c_str(), device);
    checks::rank(l, ln.c_str(), 2, "(n, h)");
    checks::shape(l, ln.c_str(), {rows, heads}, "(n, h)");
    checks::dtype(l, ln.c_str(), DType::kFloat32);
    checks::has_data(l, ln.c_str());
    checks::non_negative_strides(l, ln.c_str());
    checks::same_device(l, ln.c_str(), device);
    p.outs[s] = o.data;
    p.lses[s] = static_cast<const float*>(l.data);
    p.out_row_stride[s] = o.stride(0);
    p.out_head_stride[s] = o.stride(1);
    p.lse_row_stride[s] = l.stride(0);
    p.lse_head_stride[s] = l.stride(1);
  }
  if (a.lse) {
    checks::rank(*a.lse, "lse", 2, "(n, h)");
    checks::shape(*a.lse, "lse", {rows, heads}, "(n, h)");
    checks::dtype(*a.lse, "lse", DType::kFloat32);
    checks::has_data(*a.lse, "lse");
    checks::non_negative_strides(*a.lse, "lse");
    checks::no_overlap(*a.lse, "lse");
    checks::same_device(*a.lse, "lse", device);
    p.lse = static_cast<float*>(a.lse->data);
    p.l_row_stride = a.lse->stride(0);
    p.l_head_stride = a.lse->stride(1);
  }
  p.out = a.out.data;
  p.o_row_stride = a.out.stride(0);
  p.o_head_stride = a.out.stride(1);
  p.num_states = n_states;
  p.rows = static_cast<int>(rows);
  p.heads = static_cast<int>(heads);
  FLASHJIT_CHECK(rows <= (int64_t{1} << 30) && heads <= (int64_t{1} << 20))
      << "out: expected at most 2^30 rows and 2^20 heads, got " << rows << " x " << heads;
  if (rows == 0 || heads == 0) return;

  KernelKey key;
  key.op = KernelOp::kMergeStates;
  key.dtype_q = key.dtype_kv = in_dtype;
  key.dtype_o = a.out.dtype;
  key.head_dim_qk = key.head_dim_v = static_cast<int>(dv);
  key.lse = a.lse.has_value();
  if (device.type == DeviceType::kCUDA) {
#if FLASHJIT_HAVE_CUDA
    const CudaCallContext context(device, a.options.stream);
    key.backend = Backend::kCuda;
    key.target = Target{"nvptx64-nvidia-cuda", cuda_arch(device.index), ""};
    for (int s = 0; s < n_states; ++s) {
      check_cuda_pointer(p.outs[s], device.index, "outs");
      check_cuda_pointer(p.lses[s], device.index, "lses");
    }
    check_cuda_pointer(p.out, device.index, "out");
    if (p.lse) check_cuda_pointer(p.lse, device.index, "lse");
    key = key.canonicalize();
    key.check_supported();
    const int64_t ctas = (rows * heads + 3) / 4;
    FLASHJIT_CHECK(ctas <= 0x7fffffff) << "out: expected at most 2^33 - 4 (row, head) pairs on "
                                       << "CUDA, got " << rows * heads;
    run_cuda_merge(key, p, CudaGrid{static_cast<int>(ctas), 1, 1}, a.options.stream);
    return;
#else
    FLASHJIT_NOT_SUPPORTED() << "CUDA tensors: this build has no CUDA backend";
#endif
  }
#if FLASHJIT_HAVE_CPU_JIT
  key.backend = Backend::kCpu;
  key.target = host_cpu_target();
  key = key.canonicalize();
  key.check_supported();
  run_cpu_merge(key, p, rows, a.options.num_threads);
#else
  FLASHJIT_NOT_SUPPORTED() << "CPU tensors: this build has no CPU backend";
#endif
}

}  // namespace flashjit
