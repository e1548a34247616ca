// DecodeLoop: host state of the toy serving loop, its device mirrors and the per-step reference.
#include "reference/decode_loop.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <numeric>
#include <random>
#include <vector>

#include "reference/attention_reference.h"
#include "reference/device_mirrors.h"
#include "reference/host_buffer.h"

namespace flashjit::testing {
struct DecodeLoop::State {
  DecodeLoopConfig c;
  std::mt19937_64 rng;
  DeviceMirrors mirrors;
  int pages_per_seq = 0, num_pages = 0;
  std::vector<uint16_t> q, out, k_new, v_new, k_cache, v_cache, cos, sin;
  std::vector<int32_t> page_table, cache_seqlens;
  std::vector<float> lse;
  std::vector<std::vector<double>> keys, values;  // logical K / V per sequence (rows x hk x d)
  std::vector<double> q_step, k_step, v_step;     // this step's inputs (double)
  bool started = false;
  KvcacheArgs args;

  explicit State(const DecodeLoopConfig& config)
      : c(config), rng(config.seed), mirrors(config.device, GuardSide::kAfter) {}

  double normal() { return round_to(std::normal_distribution<double>(0, 1)(rng), c.dtype); }
  int64_t cache_index(int b, int pos, int hh) const {
    const int page = page_table[b * pages_per_seq + pos / c.page_size];
    return ((int64_t{page} * c.page_size + pos % c.page_size) * c.num_heads_k + hh) * c.head_dim;
  }
  // GPT-NeoX rotary over the whole head dim at `pos`, in float64, rounded to the dtype.
  void rotate(const double* x, double* y, int pos) const {
    const int half = c.head_dim / 2;
    for (int m = 0; m < half; ++m) {
      const double co = from_bits(cos[pos * half + m], c.dtype);
      const double si = from_bits(sin[pos * half + m], c.dtype);
      y[m] = round_to(x[m] * co - x[m + half] * si, c.dtype);
      y[m + half] = round_to(x[m] * si + x[m + half] * co, c.dtype);
    }
  }
};

DecodeLoop::DecodeLoop(const DecodeLoopConfig& config) : s_(std::make_unique<State>(config)) {
  State& s = *s_;
  const DecodeLoopConfig& c = s.c;
  const int b = c.batch, h = c.num_heads, hk = c.num_heads_k, d = c.head_dim;
  s.pages_per_seq = c.capacity / c.page_size;
  s.num_pages = s.pages_per_seq * b + 2;
  std::vector<int32_t> perm(s.num_pages);
  std::iota(perm.begin(), perm.end(), 0);
  std::shuffle(perm.begin(), perm.end(), s.rng);
  s.page_table.assign(perm.begin(), perm.begin() + b * s.pages_per_seq);
  const uint16_t nan = to_bits(std::numeric_limits<double>::quiet_NaN(), c.dtype);
  s.k_cache.assign(size_t(s.num_pages) * c.page_size * hk * d, nan);
  s.v_cache = s.k_cache;
  s.q.assign(size_t(b) * h * d, 0);
  s.out.assign(size_t(b) * h * d, nan);
  s.k_new.assign(size_t(b) * hk * d, 0);
  s.v_new = s.k_new;
  s.lse.assign(size_t(b) * h, std::numeric_limits<float>::quiet_NaN());
  std::uniform_real_distribution<double> angle(0.0, 6.283185307179586);
  for (int i = 0; i < c.capacity * d / 2; ++i) {
    const double a = angle(s.rng);
    s.cos.push_back(to_bits(std::cos(a), c.dtype));
    s.sin.push_back(to_bits(std::sin(a), c.dtype));
  }
  // A prefix already in the cache (as a prefill would have left it: keys stored rotated).
  s.keys.resize(b);
  s.values.resize(b);
  s.cache_seqlens.resize(b);
  for (int i = 0; i < b; ++i) {
    s.cache_seqlens[i] = std::uniform_int_distribution<int>(1, c.capacity / 3)(s.rng);
    for (int pos = 0; pos < s.cache_seqlens[i]; ++pos)
      for (int hh = 0; hh < hk; ++hh)
        for (int e = 0; e < d; ++e) {
          const double kx = s.normal(), vx = s.normal();
          s.k_cache[s.cache_index(i, pos, hh) + e] = to_bits(kx, c.dtype);
          s.v_cache[s.cache_index(i, pos, hh) + e] = to_bits(vx, c.dtype);
          s.keys[i].push_back(kx);
          s.values[i].push_back(vx);
        }
  }
  auto place = [&](auto& v) { return s.mirrors.place(v.data(), v.size() * sizeof(v[0])); };
  const Device dev = c.device;
  KvcacheArgs& a = s.args;
  a.q = Tensor::contiguous(place(s.q), c.dtype, {b, 1, h, d}, dev);
  a.out = Tensor::contiguous(place(s.out), c.dtype, {b, 1, h, d}, dev);
  a.k_cache = Tensor::contiguous(place(s.k_cache), c.dtype, {s.num_pages, c.page_size, hk, d}, dev);
  a.v_cache = Tensor::contiguous(place(s.v_cache), c.dtype, {s.num_pages, c.page_size, hk, d}, dev);
  a.k = Tensor::contiguous(place(s.k_new), c.dtype, {b, 1, hk, d}, dev);
  a.v = Tensor::contiguous(place(s.v_new), c.dtype, {b, 1, hk, d}, dev);
  a.page_table = Tensor::contiguous(place(s.page_table), DType::kInt32, {b, s.pages_per_seq}, dev);
  a.cache_seqlens = Tensor::contiguous(place(s.cache_seqlens), DType::kInt32, {b}, dev);
  a.rotary_cos = Tensor::contiguous(place(s.cos), c.dtype, {c.capacity, d / 2}, dev);
  a.rotary_sin = Tensor::contiguous(place(s.sin), c.dtype, {c.capacity, d / 2}, dev);
  a.rotary_interleaved = false;
  a.causal = true;
  a.num_splits = c.num_splits;
  a.return_softmax_lse = true;
  a.softmax_lse = Tensor::contiguous(place(s.lse), DType::kFloat32, {b, h, 1}, dev);
}

DecodeLoop::~DecodeLoop() = default;

const KvcacheArgs& DecodeLoop::args() const { return s_->args; }

void DecodeLoop::next_step() {
  State& s = *s_;
  const DecodeLoopConfig& c = s.c;
  if (s.started)
    for (int& len : s.cache_seqlens) ++len;  // the caller increments cache_seqlens
  s.started = true;
  const uint16_t nan = to_bits(std::numeric_limits<double>::quiet_NaN(), c.dtype);
  s.q_step.clear();
  s.k_step.clear();
  s.v_step.clear();
  for (size_t e = 0; e < s.q.size(); ++e) {
    s.q_step.push_back(s.normal());
    s.q[e] = to_bits(s.q_step.back(), c.dtype);
  }
  for (size_t e = 0; e < s.k_new.size(); ++e) {
    s.k_step.push_back(s.normal());
    s.v_step.push_back(s.normal());
    s.k_new[e] = to_bits(s.k_step.back(), c.dtype);
    s.v_new[e] = to_bits(s.v_step.back(), c.dtype);
  }
  std::fill(s.out.begin(), s.out.end(), nan);
  std::fill(s.lse.begin(), s.lse.end(), std::numeric_limits<float>::quiet_NaN());
  for (void* host : {static_cast<void*>(s.q.data()), static_cast<void*>(s.out.data()),
                     static_cast<void*>(s.k_new.data()), static_cast<void*>(s.v_new.data()),
                     static_cast<void*>(s.lse.data()), static_cast<void*>(s.cache_seqlens.data())})
    s.mirrors.upload(host);
}

StepCheck DecodeLoop::check() {
  State& s = *s_;
  const DecodeLoopConfig& c = s.c;
  const int b = c.batch, h = c.num_heads, hk = c.num_heads_k, d = c.head_dim;
  s.mirrors.copy_back(s.out.data());
  s.mirrors.copy_back(s.k_cache.data());
  s.mirrors.copy_back(s.v_cache.data());
  StepCheck r;
  const double ulp_scale = std::ldexp(1.0, c.dtype == DType::kBFloat16 ? -7 : -10);
  RefInputs in;
  in.batch = b;
  in.num_heads = h;
  in.num_heads_k = hk;
  in.head_dim = in.head_dim_v = d;
  in.causal = true;
  in.softmax_scale = 1.0 / std::sqrt(double(d));
  std::vector<double> rot(d);
  for (int i = 0; i < b; ++i) {
    const int pos = s.cache_seqlens[i];
    for (int hh = 0; hh < hk; ++hh) {  // the appended row: rotated key, exact value
      s.rotate(&s.k_step[(size_t(i) * hk + hh) * d], rot.data(), pos);
      for (int e = 0; e < d; ++e) {
        const double got = from_bits(s.k_cache[s.cache_index(i, pos, hh) + e], c.dtype);
        if (!(std::abs(got - rot[e]) <= ulp_scale * std::max(std::abs(got), std::abs(rot[e]))))
          ++r.cache_mismatch;
        s.keys[i].push_back(got);
        const double v = s.v_step[(size_t(i) * hk + hh) * d + e];
        if (from_bits(s.v_cache[s.cache_index(i, pos, hh) + e], c.dtype) != v) ++r.cache_mismatch;
        s.values[i].push_back(v);
      }
    }
    std::vector<double> q(size_t(h) * d);
    for (int hh = 0; hh < h; ++hh) s.rotate(&s.q_step[(size_t(i) * h + hh) * d], &q[hh * d], pos);
    in.q.push_back(q);
    in.k.push_back(s.keys[i]);
    in.v.push_back(s.values[i]);
    in.lq.push_back(1);
    in.lk.push_back(pos + 1);
  }
  const RefOutputs ref = attention_reference(in), low = attention_low_precision(in, c.dtype);
  double noise = 0;
  for (int i = 0; i < b; ++i)
    for (int e = 0; e < h * d; ++e) {
      const double got = from_bits(s.out[size_t(i) * h * d + e], c.dtype), want = ref.out[i][e];
      if (std::isnan(got)) {
        ++r.unwritten;
        continue;
      }
      r.max_err = std::max(r.max_err, std::abs(got - want));
      r.tolerance = std::max(r.tolerance, std::abs(low.out[i][e] - want));
      noise = std::max(noise, std::abs(round_to(want + 0.3, c.dtype) - 0.3 - want));
    }
  r.tolerance = 2 * r.tolerance + 2 * noise + 1e-6;
  return r;
}

}  // namespace flashjit::testing
