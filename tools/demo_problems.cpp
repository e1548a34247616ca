#include "tools/demo_problems.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <random>

#include "reference/attention_reference.h"

namespace flashjit::tools {
namespace {

// max |out - ref| against FA3's bound 2 * max |low - ref| + rounding noise, printed.
bool check_against_reference(const std::vector<std::vector<double>>& got,
                             const testing::RefInputs& in) {
  const testing::RefOutputs ref = testing::attention_reference(in);
  const testing::RefOutputs low = testing::attention_low_precision(in, DType::kBFloat16);
  double err = 0, base = 0, noise = 0;
  for (size_t b = 0; b < got.size(); ++b)
    for (size_t i = 0; i < got[b].size(); ++i) {
      const double r = ref.out[b][i];
      err = std::max(err, std::abs(got[b][i] - r));
      if (std::isnan(got[b][i])) err = INFINITY;
      base = std::max(base, std::abs(low.out[b][i] - r));
      noise = std::max(noise, std::abs(testing::round_to(r + 0.3, DType::kBFloat16) - 0.3 - r));
    }
  const double tol = 2 * base + 2 * noise;
  const bool ok = err <= tol;
  fmt::print("  check   : max |out - float64 reference| = {:.2e}, bound {:.2e} -> {}\n", err, tol,
             ok ? "PASS" : "FAIL");
  return ok;
}

}  // namespace

std::string how_obtained(const CacheStats& before, const CacheStats& after) {
  if (after.compiles > before.compiles)
    return fmt::format("compiled in {:.0f} ms (then stored in the disk cache)",
                       after.compile_ms - before.compile_ms);
  if (after.disk_hits > before.disk_hits)
    return fmt::format("loaded from the disk cache in {:.2f} ms (no compile)",
                       after.load_ms - before.load_ms);
  return "already loaded in this process";
}

DemoPrefill::DemoPrefill()
    : q(DType::kBFloat16, int64_t{total} * kHeads * kDim, 1),
      k(DType::kBFloat16, int64_t{total} * kHeadsK * kDim, 2),
      v(DType::kBFloat16, int64_t{total} * kHeadsK * kDim, 3),
      out(DType::kBFloat16, int64_t{total} * kHeads * kDim, 4) {}

const char* DemoPrefill::description() {
  return "prefill: varlen, 2 sequences (512 + 384 tokens), 16 query / 4 KV heads, d 128, bf16, "
         "causal";
}

VarlenArgs DemoPrefill::args(void* q_data, void* k_data, void* v_data, void* out_data,
                             void* cu_data, Device device) const {
  VarlenArgs a;
  a.q = Tensor::contiguous(q_data, DType::kBFloat16, {total, kHeads, kDim}, device);
  a.k = Tensor::contiguous(k_data, DType::kBFloat16, {total, kHeadsK, kDim}, device);
  a.v = Tensor::contiguous(v_data, DType::kBFloat16, {total, kHeadsK, kDim}, device);
  a.out = Tensor::contiguous(out_data, DType::kBFloat16, {total, kHeads, kDim}, device);
  a.cu_seqlens_q = Tensor::contiguous(cu_data, DType::kInt32, {3}, device);
  a.cu_seqlens_k = a.cu_seqlens_q;
  a.max_seqlen_q = a.max_seqlen_k = 512;
  a.causal = true;
  return a;
}

double DemoPrefill::flops() const {
  double flops = 0;
  for (int L : lens) flops += 4.0 * kHeads * kDim * (L * (L + 1) / 2.0);
  return flops;
}

bool DemoPrefill::check() const {
  testing::RefInputs in;
  in.batch = 2;
  in.num_heads = kHeads;
  in.num_heads_k = kHeadsK;
  in.head_dim = in.head_dim_v = kDim;
  in.lq = in.lk = lens;
  in.causal = true;
  in.softmax_scale = 1.0 / std::sqrt(static_cast<double>(kDim));
  std::vector<std::vector<double>> got(2);
  for (int s = 0; s < 2; ++s) {
    auto slice = [&](const HostTensor& t, int heads) {
      std::vector<double> x(int64_t{lens[s]} * heads * kDim);
      for (size_t i = 0; i < x.size(); ++i) x[i] = t.get(int64_t{cu_seqlens[s]} * heads * kDim + i);
      return x;
    };
    in.q.push_back(slice(q, kHeads));
    in.k.push_back(slice(k, kHeadsK));
    in.v.push_back(slice(v, kHeadsK));
    got[s] = slice(out, kHeads);
  }
  return check_against_reference(got, in);
}

DemoDecode::DemoDecode()
    : q(DType::kBFloat16, int64_t{kBatch} * kHeads * kDim, 5),
      out(DType::kBFloat16, int64_t{kBatch} * kHeads * kDim, 6),
      k(DType::kBFloat16, int64_t{kPages} * kPage * kHeadsK * kDim, 7),
      v(DType::kBFloat16, int64_t{kPages} * kPage * kHeadsK * kDim, 8),
      page_table(kPages),
      seqlens(kBatch) {
  std::iota(page_table.begin(), page_table.end(), 0);
  std::shuffle(page_table.begin(), page_table.end(), std::mt19937_64(9));
  for (int i = 0; i < kBatch; ++i) seqlens[i] = kLen - 97 * i;
}

const char* DemoDecode::description() {
  return "decode : batch 8, one query each, paged KV (page 16, ~2k keys), 32 query / 8 KV heads, "
         "d 128, bf16";
}

KvcacheArgs DemoDecode::args(void* q_data, void* k_data, void* v_data, void* out_data,
                             void* table_data, void* seqlens_data, Device device) const {
  KvcacheArgs a;
  a.q = Tensor::contiguous(q_data, DType::kBFloat16, {kBatch, 1, kHeads, kDim}, device);
  a.k_cache = Tensor::contiguous(k_data, DType::kBFloat16, {kPages, kPage, kHeadsK, kDim}, device);
  a.v_cache = Tensor::contiguous(v_data, DType::kBFloat16, {kPages, kPage, kHeadsK, kDim}, device);
  a.page_table = Tensor::contiguous(table_data, DType::kInt32, {kBatch, kPagesPerSeq}, device);
  a.cache_seqlens = Tensor::contiguous(seqlens_data, DType::kInt32, {kBatch}, device);
  a.out = Tensor::contiguous(out_data, DType::kBFloat16, {kBatch, 1, kHeads, kDim}, device);
  return a;
}

double DemoDecode::kv_bytes() const {
  double bytes = 0;
  for (int s : seqlens) bytes += 2.0 * s * kHeadsK * kDim * 2;
  return bytes;
}

bool DemoDecode::check() const {
  testing::RefInputs in;
  in.batch = kBatch;
  in.num_heads = kHeads;
  in.num_heads_k = kHeadsK;
  in.head_dim = in.head_dim_v = kDim;
  in.lq.assign(kBatch, 1);
  in.lk = seqlens;
  in.softmax_scale = 1.0 / std::sqrt(static_cast<double>(kDim));
  std::vector<std::vector<double>> got(kBatch);
  for (int s = 0; s < kBatch; ++s) {
    std::vector<double> qs(kHeads * kDim), ks, vs;
    for (int i = 0; i < kHeads * kDim; ++i) {
      qs[i] = q.get(int64_t{s} * kHeads * kDim + i);
      got[s].push_back(out.get(int64_t{s} * kHeads * kDim + i));
    }
    for (int j = 0; j < seqlens[s]; ++j) {
      const int64_t row = int64_t{page_table[s * kPagesPerSeq + j / kPage]} * kPage + j % kPage;
      for (int e = 0; e < kHeadsK * kDim; ++e) {
        ks.push_back(k.get(row * kHeadsK * kDim + e));
        vs.push_back(v.get(row * kHeadsK * kDim + e));
      }
    }
    in.q.push_back(qs);
    in.k.push_back(ks);
    in.v.push_back(vs);
  }
  return check_against_reference(got, in);
}

}  // namespace flashjit::tools
