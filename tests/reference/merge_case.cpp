// run_merge_case: builds the inputs on the host, runs the calls and merge_states on the device.
#include "reference/merge_case.h"

#include <cmath>
#include <cstring>
#include <limits>
#include <memory>
#include <random>
#include <vector>

#include "reference/attention_reference.h"
#include "reference/device_mirrors.h"
#include "reference/host_buffer.h"

namespace flashjit::testing {
MergeResult run_merge_case(Device device, DType dtype, bool out_fp32, uint64_t seed,
                           int context_device) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<double> normal(0, 1);
  const int b = 3, h = 4, hk = 2, d = 64;
  const std::vector<int> lq = {5, 1, 9}, lk = {40, 17, 70};
  std::vector<int32_t> cu_q = {0}, cu_k_all = {0};
  for (int i = 0; i < b; ++i) {
    cu_q.push_back(cu_q.back() + lq[i]);
    cu_k_all.push_back(cu_k_all.back() + lk[i]);
  }
  const int total_q = cu_q[b], total_k = cu_k_all[b];
  HostBuffer q(dtype, size_t(total_q) * h * d, 0), k(dtype, size_t(total_k) * hk * d, 0),
      v(dtype, size_t(total_k) * hk * d, 0);
  for (size_t i = 0; i < q.bytes.size() / dtype_size(dtype); ++i) q.set(i, normal(rng));
  for (size_t i = 0; i < k.bytes.size() / dtype_size(dtype); ++i) {
    k.set(i, normal(rng));
    v.set(i, normal(rng));
  }
  DeviceMirrors mirrors(device, GuardSide::kAfter);
  auto place = [&](std::vector<uint8_t>& bytes) {
    return mirrors.place(bytes.data(), bytes.size());
  };
  auto place_ints = [&](std::vector<int32_t>& x) {
    return Tensor::contiguous(mirrors.place(x.data(), x.size() * 4), DType::kInt32,
                              {static_cast<int64_t>(x.size())}, device);
  };
  const double nan = std::numeric_limits<double>::quiet_NaN();
  // One attention call over keys [lo_i, hi_i) of every sequence (rows of k / v in place).
  struct Part {
    std::vector<int32_t> cu_k;
    HostBuffer out;
    std::vector<float> lse;
  };
  std::vector<Part> parts;
  parts.reserve(5);
  std::vector<std::unique_ptr<HostBuffer>> keep;  // the packed keys outlive their device mirrors
  auto attend = [&](std::vector<int32_t> lo, std::vector<int32_t> hi) {
    Part part{{0}, HostBuffer(dtype, size_t(total_q) * h * d, nan), {}};
    // The keys of each call are a packed copy of the chosen ranges.
    std::vector<int32_t> rows;
    for (int i = 0; i < b; ++i) {
      for (int j = lo[i]; j < hi[i]; ++j) rows.push_back(cu_k_all[i] + j);
      part.cu_k.push_back(part.cu_k.back() + hi[i] - lo[i]);
    }
    part.lse.assign(size_t(h) * total_q, std::numeric_limits<float>::quiet_NaN());
    parts.push_back(std::move(part));
    Part& p = parts.back();
    const size_t n = std::max<size_t>(rows.size(), 1);
    HostBuffer* kp = keep.emplace_back(std::make_unique<HostBuffer>(dtype, n * hk * d, 0)).get();
    HostBuffer* vp = keep.emplace_back(std::make_unique<HostBuffer>(dtype, n * hk * d, 0)).get();
    for (size_t r = 0; r < rows.size(); ++r)
      for (int e = 0; e < hk * d; ++e) {
        kp->set(r * hk * d + e, k.get(size_t(rows[r]) * hk * d + e));
        vp->set(r * hk * d + e, v.get(size_t(rows[r]) * hk * d + e));
      }
    VarlenArgs a;
    a.q = Tensor::contiguous(place(q.bytes), dtype, {total_q, h, d}, device);
    a.k = Tensor::contiguous(place(kp->bytes), dtype, {int64_t(rows.size()), hk, d}, device);
    a.v = Tensor::contiguous(place(vp->bytes), dtype, {int64_t(rows.size()), hk, d}, device);
    a.out = Tensor::contiguous(place(p.out.bytes), dtype, {total_q, h, d}, device);
    a.cu_seqlens_q = place_ints(cu_q);
    a.cu_seqlens_k = place_ints(p.cu_k);
    a.max_seqlen_q = 9;
    a.max_seqlen_k = 70;
    a.return_softmax_lse = true;
    a.softmax_lse = Tensor::contiguous(mirrors.place(p.lse.data(), p.lse.size() * 4),
                                       DType::kFloat32, {h, total_q}, device);
    flash_attn_varlen(a);
    mirrors.copy_back(p.out.bytes.data());
    mirrors.copy_back(p.lse.data());
  };
  attend({0, 0, 0}, {40, 17, 70});  // one shot
  attend({0, 0, 0}, {13, 0, 30});   // three disjoint ranges (sequence 1's first is empty)
  attend({13, 0, 30}, {29, 9, 31});
  attend({29, 9, 31}, {40, 17, 70});
  attend({0, 0, 0}, {0, 0, 0});  // no keys at all: LSE +inf

  // Merge states 1..4 (partials in the input dtype, LSEs as transposed (total_q, h) views).
  const DType out_dtype = out_fp32 ? DType::kFloat32 : dtype;
  HostBuffer merged(out_dtype, size_t(total_q) * h * d, nan);
  std::vector<float> merged_lse(size_t(total_q) * h, std::numeric_limits<float>::quiet_NaN());
  MergeStatesArgs m;
  for (size_t s = 1; s < parts.size(); ++s) {
    m.outs.push_back(Tensor::contiguous(place(parts[s].out.bytes), dtype, {total_q, h, d}, device));
    m.lses.push_back(Tensor::strided(mirrors.place(parts[s].lse.data(), parts[s].lse.size() * 4),
                                     DType::kFloat32, {total_q, h}, {1, total_q}, device));
  }
  m.out = Tensor::contiguous(place(merged.bytes), out_dtype, {total_q, h, d}, device);
  m.lse = Tensor::contiguous(mirrors.place(merged_lse.data(), merged_lse.size() * 4),
                             DType::kFloat32, {total_q, h}, device);
  if (context_device >= 0) make_cuda_device_current(context_device);
  merge_states(m);
  const bool context_kept = context_device < 0 || current_cuda_device() == context_device;
  mirrors.copy_back(merged.bytes.data());
  mirrors.copy_back(merged_lse.data());

  MergeResult r;
  r.context_kept = context_kept;
  const Part& one = parts[0];
  for (int row = 0; row < total_q; ++row)
    for (int hh = 0; hh < h; ++hh) {
      for (int e = 0; e < d; ++e) {
        const size_t i = (size_t(row) * h + hh) * d + e;
        const double got = merged.get(i);
        if (std::isnan(got)) ++r.unwritten;
        r.out_diff = std::max(r.out_diff, std::abs(got - one.out.get(i)));
      }
      const double got = merged_lse[size_t(row) * h + hh],
                   want = one.lse[size_t(hh) * total_q + row];
      if (std::isinf(got) || std::isinf(want) || std::isnan(got)) {
        if (!(got == want)) ++r.lse_inf_mismatch;
      } else {
        r.lse_diff = std::max(r.lse_diff, std::abs(got - want));
      }
    }
  return r;
}

}  // namespace flashjit::testing
