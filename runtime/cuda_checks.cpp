// Checks of CUDA problems that need the driver: device pointers, alignment, index values.
#include <cstdint>
#include <vector>

#include "flashjit/error.h"
#include "runtime/attention_problem.h"
#include "runtime/cuda_api.h"
#include "runtime/cuda_device.h"

namespace flashjit {
namespace {

void check_aligned(const Tensor& t, const char* name, int bytes) {
  const int elems = bytes / dtype_size(t.dtype);
  FLASHJIT_CHECK(reinterpret_cast<uintptr_t>(t.data) % bytes == 0)
      << name << ": expected a data pointer aligned to " << bytes
      << " bytes for the CUDA kernels, got " << t.data;
  for (int i = 0; i + 1 < t.rank; ++i) {
    FLASHJIT_CHECK(t.strides[i] % elems == 0)
        << name << ": expected strides (other than the last) that are multiples of " << elems
        << " elements for the CUDA kernels, got stride " << t.strides[i] << " in dim " << i;
  }
}

// Copies n int32 values from the device.
std::vector<int32_t> to_host(const int32_t* device_ptr, size_t n) {
  std::vector<int32_t> host(n);
  if (n == 0 || !device_ptr) return host;
  FLASHJIT_CU(
      cuMemcpyDtoH(host.data(), reinterpret_cast<CUdeviceptr>(device_ptr), n * sizeof(int32_t)));
  return host;
}

}  // namespace

void check_cuda_problem(const AttentionProblem& p) {
  const int device = p.q.device.index;
  cuda_arch(device);  // loads the driver, rejects pre-Ampere devices
  check_cuda_pointer(p.q.data, device, "q");
  check_cuda_pointer(p.k.data, device, p.varlen_k ? "k" : "k_cache");
  check_cuda_pointer(p.v.data, device, p.varlen_k ? "v" : "v_cache");
  check_cuda_pointer(p.out.data, device, "out");
  if (p.lse) check_cuda_pointer(p.lse->data, device, "softmax_lse");
  if (p.sinks) check_cuda_pointer(p.sinks->data, device, "sinks");
  check_cuda_pointer(p.cu_seqlens_q, device, "cu_seqlens_q");
  check_cuda_pointer(p.cu_seqlens_k, device, "cu_seqlens_k");
  check_cuda_pointer(p.seqused_q, device, "seqused_q");
  check_cuda_pointer(p.seqused_k, device, p.varlen_k ? "seqused_k" : "cache_seqlens");
  check_cuda_pointer(p.cache_batch_idx, device, "cache_batch_idx");
  check_cuda_pointer(p.page_table, device, "page_table");
  check_aligned(p.q, "q", 16);
  check_aligned(p.k, p.varlen_k ? "k" : "k_cache", 16);
  check_aligned(p.v, p.varlen_k ? "v" : "v_cache", 16);
  check_aligned(p.out, "out", 4);
  check_cuda_pointer(p.leftpad_k, device, "cache_leftpad");
  check_cuda_pointer(p.cu_seqlens_k_new, device, "cu_seqlens_k_new");
  check_cuda_pointer(p.rotary_seqlens, device, "rotary_seqlens");
  for (auto [t, name] : {std::pair{&p.k_new, "k"}, {&p.v_new, "v"}}) {
    if (!*t) continue;
    check_cuda_pointer((*t)->data, device, name);
    check_aligned(**t, name, 16);
  }
  if (p.rotary_cos) check_cuda_pointer(p.rotary_cos->data, device, "rotary_cos");
  if (p.rotary_sin) check_cuda_pointer(p.rotary_sin->data, device, "rotary_sin");
}

void validate_index_values_on_host(const AttentionProblem& p) {
  AttentionProblem h = p;
  const std::vector<int32_t> cu_q = to_host(p.cu_seqlens_q, p.cu_seqlens_q ? p.batch + 1 : 0);
  const std::vector<int32_t> cu_k = to_host(p.cu_seqlens_k, p.cu_seqlens_k ? p.batch + 1 : 0);
  const std::vector<int32_t> used_q = to_host(p.seqused_q, p.seqused_q ? p.batch : 0);
  const std::vector<int32_t> used_k = to_host(p.seqused_k, p.seqused_k ? p.batch : 0);
  const std::vector<int32_t> batch_idx =
      to_host(p.cache_batch_idx, p.cache_batch_idx ? p.batch : 0);
  const size_t table_size =
      p.page_table && p.cache_rows > 0
          ? static_cast<size_t>((p.cache_rows - 1) * p.page_table_stride + p.max_pages)
          : 0;
  const std::vector<int32_t> table = to_host(p.page_table, table_size);
  const std::vector<int32_t> leftpad = to_host(p.leftpad_k, p.leftpad_k ? p.batch : 0);
  const std::vector<int32_t> cu_new =
      to_host(p.cu_seqlens_k_new, p.cu_seqlens_k_new ? p.batch + 1 : 0);
  const std::vector<int32_t> rotary = to_host(p.rotary_seqlens, p.rotary_seqlens ? p.batch : 0);
  h.leftpad_k = p.leftpad_k ? leftpad.data() : nullptr;
  h.cu_seqlens_k_new = p.cu_seqlens_k_new ? cu_new.data() : nullptr;
  h.rotary_seqlens = p.rotary_seqlens ? rotary.data() : nullptr;
  h.cu_seqlens_q = p.cu_seqlens_q ? cu_q.data() : nullptr;
  h.cu_seqlens_k = p.cu_seqlens_k ? cu_k.data() : nullptr;
  h.seqused_q = p.seqused_q ? used_q.data() : nullptr;
  h.seqused_k = p.seqused_k ? used_k.data() : nullptr;
  h.cache_batch_idx = p.cache_batch_idx ? batch_idx.data() : nullptr;
  h.page_table = p.page_table ? table.data() : nullptr;
  validate_index_values(h);
}

}  // namespace flashjit
