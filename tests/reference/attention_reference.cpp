// Straightforward attention: per row, the visible key interval, scores, softmax, weighted sum.
#include "reference/attention_reference.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

namespace flashjit::testing {
namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();

long long floor_div(long long a, long long b) {
  long long q = a / b;
  return (a % b != 0 && ((a < 0) != (b < 0))) ? q - 1 : q;
}

// Visible keys of query i (spec 3.3): window sides -1 are unbounded; causal is right = 0.
void visible(const RefInputs& in, int i, int lq, int lk, long long& lo, long long& hi) {
  const long long pos = static_cast<long long>(i) + lk - lq;
  lo = 0;
  hi = lk;
  const int right = in.causal ? 0 : in.window_right;
  if (in.window_left >= 0) lo = std::max(lo, pos - in.window_left);
  if (right >= 0) hi = std::min(hi, pos + right + 1);
  if (in.attention_chunk > 0) {
    const long long c0 = floor_div(pos, in.attention_chunk) * in.attention_chunk;
    lo = std::max(lo, c0);
    hi = std::min(hi, c0 + in.attention_chunk);
  }
  if (hi < lo) hi = lo;
}

RefOutputs run(const RefInputs& in, bool low, DType dtype) {
  auto rnd = [&](double x) { return low ? round_to(x, dtype) : x; };
  const int h = in.num_heads, hk = in.num_heads_k, d = in.head_dim, dv = in.head_dim_v;
  const int group = h / hk;
  RefOutputs o;
  o.out.resize(in.batch);
  o.lse.resize(in.batch);
  std::vector<double> s, p;
  for (int b = 0; b < in.batch; ++b) {
    const int lq = in.lq[b], lk = in.lk[b];
    o.out[b].assign(static_cast<size_t>(lq) * h * dv, 0.0);
    o.lse[b].assign(static_cast<size_t>(h) * lq, -kInf);
    for (int hq = 0; hq < h; ++hq) {
      const int kh = hq / group;
      for (int i = 0; i < lq; ++i) {
        long long lo, hi;
        visible(in, i, lq, lk, lo, hi);
        const double* qr = &in.q[b][(static_cast<size_t>(i) * h + hq) * d];
        s.assign(std::max<long long>(hi - lo, 0), 0.0);
        double m = -kInf;
        for (long long j = lo; j < hi; ++j) {
          const double* kr = &in.k[b][(static_cast<size_t>(j) * hk + kh) * d];
          double acc = 0;
          if (low && dtype == DType::kFloat32) {
            float f = 0;
            for (int c = 0; c < d; ++c) f += static_cast<float>(qr[c]) * static_cast<float>(kr[c]);
            acc = f;
          } else {
            for (int c = 0; c < d; ++c) acc += qr[c] * kr[c];
          }
          double x = acc * in.softmax_scale;
          if (in.softcap > 0) x = in.softcap * std::tanh(x / in.softcap);
          x = rnd(x);
          s[j - lo] = x;
          m = std::max(m, x);
        }
        const bool has_sink = !in.sinks.empty() && lk > 0;
        const double sink = has_sink ? in.sinks[hq] : -kInf;
        const double mf = std::max(m, sink);
        if (mf == -kInf) continue;  // no key and no sink: out 0, lse -inf
        double z = has_sink ? std::exp(sink - mf) : 0.0;
        p.assign(s.size(), 0.0);
        for (size_t j = 0; j < s.size(); ++j) {
          p[j] = std::exp(s[j] - mf);
          z += p[j];
        }
        o.lse[b][static_cast<size_t>(hq) * lq + i] = mf + std::log(z);
        double* out = &o.out[b][(static_cast<size_t>(i) * h + hq) * dv];
        for (size_t j = 0; j < s.size(); ++j) {
          const double w = rnd(p[j] / z);
          const double* vr = &in.v[b][((lo + j) * hk + kh) * dv];
          for (int c = 0; c < dv; ++c) out[c] += w * vr[c];
        }
        for (int c = 0; c < dv; ++c) out[c] = rnd(out[c]);
      }
    }
  }
  return o;
}

}  // namespace

double round_to(double x, DType dtype) {
  const float f = static_cast<float>(x);
  if (dtype == DType::kFloat32 || !std::isfinite(f)) return f;
  if (dtype == DType::kFloat16) return static_cast<double>(static_cast<_Float16>(f));
  uint32_t bits;
  std::memcpy(&bits, &f, 4);
  bits += 0x7fffu + ((bits >> 16) & 1u);
  bits &= 0xffff0000u;
  float r;
  std::memcpy(&r, &bits, 4);
  return r;
}

RefOutputs attention_reference(const RefInputs& in) { return run(in, false, DType::kFloat32); }

RefOutputs attention_low_precision(const RefInputs& in, DType dtype) {
  return run(in, true, dtype);
}

}  // namespace flashjit::testing
