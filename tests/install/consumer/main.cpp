// Runs one small attention call through an installed flashjit and checks one output row.
#include <flashjit/flashjit.h>

#include <cmath>
#include <cstdio>
#include <vector>

int main() {
  const int s = 5, h = 2, d = 64;
  std::vector<float> q(s * h * d, 0.01f), k(s * h * d, 0.02f), v(s * h * d), out(s * h * d);
  for (size_t i = 0; i < v.size(); ++i) v[i] = static_cast<float>(i % 7);
  std::vector<int> cu = {0, s};
  flashjit::VarlenArgs a;
  a.q = flashjit::Tensor::contiguous(q.data(), flashjit::DType::kFloat32, {s, h, d});
  a.k = flashjit::Tensor::contiguous(k.data(), flashjit::DType::kFloat32, {s, h, d});
  a.v = flashjit::Tensor::contiguous(v.data(), flashjit::DType::kFloat32, {s, h, d});
  a.out = flashjit::Tensor::contiguous(out.data(), flashjit::DType::kFloat32, {s, h, d});
  a.cu_seqlens_q = a.cu_seqlens_k =
      flashjit::Tensor::contiguous(cu.data(), flashjit::DType::kInt32, {2});
  a.max_seqlen_q = a.max_seqlen_k = s;
  a.causal = true;
  flashjit::flash_attn_varlen(a);
  // Row 0 sees key 0 only (causal), so its output is v[0].
  for (int c = 0; c < d; ++c) {
    if (std::abs(out[c] - v[c]) > 1e-5f) {
      std::printf("consumer: wrong output at %d: %f vs %f\n", c, out[c], v[c]);
      return 1;
    }
  }
  std::printf("consumer: flashjit %s OK\n", flashjit::version());
  return 0;
}
