// Shared argument checks (spec section 2) for both entry points.
#include "runtime/api_common.h"

#include <cmath>

#include "runtime/checks.h"

namespace flashjit {

void check_qkv_dtypes(const Tensor& q, const Tensor& k, const Tensor& v, const char* k_name,
                      const char* v_name) {
  checks::not_supported_if(q.dtype == DType::kFloat8E4M3, "q: dtype e4m3 (fp8 inputs)");
  FLASHJIT_CHECK(q.dtype == DType::kFloat32 || q.dtype == DType::kFloat16 ||
                 q.dtype == DType::kBFloat16)
      << "q: expected dtype fp16, bf16 or fp32, got " << dtype_name(q.dtype);
  FLASHJIT_CHECK(k.dtype == q.dtype) << k_name << ": expected the dtype of q ("
                                     << dtype_name(q.dtype) << "), got " << dtype_name(k.dtype);
  FLASHJIT_CHECK(v.dtype == q.dtype) << v_name << ": expected the dtype of q ("
                                     << dtype_name(q.dtype) << "), got " << dtype_name(v.dtype);
  checks::same_device(k, k_name, q.device);
  checks::same_device(v, v_name, q.device);
  for (auto [t, name] : {std::pair{&q, "q"}, {&k, k_name}, {&v, v_name}}) {
    checks::has_data(*t, name);
    checks::last_dim_contiguous(*t, name);
    checks::non_negative_strides(*t, name);
  }
}

void check_heads(int h, int h_k, int d, int dv) {
  FLASHJIT_CHECK(h_k > 0 && h % h_k == 0)
      << "num_heads_k: expected a divisor of num_heads (" << h << "), got " << h_k;
  FLASHJIT_CHECK(d % 8 == 0 && d > 0 && d <= 256)
      << "head_dim (q.shape[-1]): expected a multiple of 8 in [8, 256], got " << d;
  FLASHJIT_CHECK(dv % 8 == 0 && dv > 0 && dv <= 512)
      << "head_dim_v (v.shape[-1]): expected a multiple of 8 in [8, 512], got " << dv;
}

void check_scalars(const std::array<int, 2>& window_size, int attention_chunk, double softcap,
                   const std::optional<double>& softmax_scale, int num_splits, int sm_margin) {
  FLASHJIT_CHECK(window_size[0] >= -1 && window_size[1] >= -1)
      << "window_size: expected values >= -1 (-1 = unbounded), got (" << window_size[0] << ", "
      << window_size[1] << ")";
  FLASHJIT_CHECK(attention_chunk >= 0)
      << "attention_chunk: expected >= 0 (0 = off), got " << attention_chunk;
  FLASHJIT_CHECK(std::isfinite(softcap) && softcap >= 0)
      << "softcap: expected a finite value >= 0 (0 = off), got " << softcap;
  FLASHJIT_CHECK(!softmax_scale || std::isfinite(*softmax_scale))
      << "softmax_scale: expected a finite value, got " << *softmax_scale;
  FLASHJIT_CHECK(num_splits <= 256) << "num_splits: expected <= 256, got " << num_splits;
  FLASHJIT_CHECK(sm_margin >= 0) << "sm_margin: expected >= 0, got " << sm_margin;
}

void check_out(const Tensor& out, const Tensor& q, std::initializer_list<int64_t> shape,
               const char* dims) {
  checks::shape(out, "out", shape, dims);
  FLASHJIT_CHECK(out.dtype == q.dtype) << "out: expected the dtype of q (" << dtype_name(q.dtype)
                                       << "), got " << dtype_name(out.dtype);
  checks::same_device(out, "out", q.device);
  checks::has_data(out, "out");
  checks::last_dim_contiguous(out, "out");
  checks::non_negative_strides(out, "out");
  checks::no_overlap(out, "out");
}

void check_lse(const OptionalTensor& lse, bool wanted, std::initializer_list<int64_t> shape,
               const char* dims, Device device) {
  FLASHJIT_CHECK(!wanted || lse.has_value())
      << "softmax_lse: expected a buffer " << dims << " since return_softmax_lse is set, got none";
  if (!wanted || !lse) return;
  checks::dtype(*lse, "softmax_lse", DType::kFloat32);
  checks::shape(*lse, "softmax_lse", shape, dims);
  checks::same_device(*lse, "softmax_lse", device);
  checks::has_data(*lse, "softmax_lse");
  checks::non_negative_strides(*lse, "softmax_lse");
  checks::no_overlap(*lse, "softmax_lse");
}

void check_sinks(const OptionalTensor& sinks, int h, Device device) {
  if (!sinks) return;
  FLASHJIT_CHECK(sinks->dtype == DType::kBFloat16 || sinks->dtype == DType::kFloat16 ||
                 sinks->dtype == DType::kFloat32)
      << "sinks: expected dtype bf16, fp16 or fp32, got " << dtype_name(sinks->dtype);
  checks::shape(*sinks, "sinks", {h}, "(num_heads,)");
  checks::contiguous(*sinks, "sinks");
  checks::has_data(*sinks, "sinks");
  checks::same_device(*sinks, "sinks", device);
}

void fill_common(AttentionProblem& p, const std::optional<double>& softmax_scale, bool causal,
                 const std::array<int, 2>& window_size, int attention_chunk, double softcap,
                 const OptionalTensor& sinks, const std::optional<bool>& pack_gqa,
                 const ExecOptions& options) {
  p.softmax_scale = softmax_scale.value_or(1.0 / std::sqrt(static_cast<double>(p.head_dim)));
  p.causal = causal;
  p.window_left = window_size[0];
  p.window_right = window_size[1];
  p.attention_chunk = attention_chunk;
  p.softcap = softcap;
  p.sinks = sinks;
  p.pack_gqa = pack_gqa;
  p.options = options;
}

}  // namespace flashjit
