// Builds the buffers of an AttentionCase, runs flashjit and measures its error.
#include "reference/attention_case.h"

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <numeric>
#include <random>
#include <type_traits>

#include "reference/attention_reference.h"
#include "reference/device_mirrors.h"
#include "reference/host_buffer.h"

namespace flashjit::testing {
namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

// A typed host buffer of `count` elements filled with NaN (poison).
struct Buffer : HostBuffer {
  Buffer(DType t, int64_t count) : HostBuffer(t, count, kNaN) {}
};

// A (rows, heads, dim) view with optional padding of every dimension (strided = views into a
// larger buffer), optionally with a leading batch dimension.
struct View {
  int64_t rows_alloc, heads_alloc, dim_alloc;
  int64_t row_stride, head_stride;
};
View make_view(int64_t rows, int64_t heads, int64_t dim, bool strided, int dim_pad = 8) {
  View v;
  v.rows_alloc = rows;
  v.heads_alloc = heads + (strided ? 1 : 0);
  v.dim_alloc = dim + (strided ? dim_pad : 0);
  v.head_stride = v.dim_alloc;
  v.row_stride = v.heads_alloc * v.dim_alloc;
  return v;
}

template <typename V>
size_t bytes_of(V& v) {
  if constexpr (std::is_same_v<V, Buffer>) {
    return v.bytes.size();
  } else {
    return v.size() * sizeof(v[0]);
  }
}

// Whether queries rotate at P0 + i (a causal or local mask after the normalization of spec 3.3:
// sides wider than the static lengths are unbounded) or all at P0.
bool queries_rotate_per_row(const AttentionCase& c, int seqlen_k) {
  int left = c.window_left, right = c.window_right;
  if (left >= seqlen_k - 1) left = -1;
  if (right >= c.seqlen_q - 1) right = -1;
  if (c.causal) right = 0;
  return left >= 0 || right >= 0 || c.attention_chunk > 0;
}

}  // namespace

std::string AttentionCase::name() const {
  std::string s =
      fmt::format("{}_{}_b{}_h{}x{}_d{}x{}_q{}_k{}", api == Api::kVarlen ? "varlen" : "kvc",
                  dtype_name(dtype), batch, num_heads, num_heads_k, head_dim,
                  head_dim_v ? head_dim_v : head_dim, seqlen_q, seqlen_k);
  if (random_lengths) s += "_rl";
  if (varlen_q) s += "_vq";
  if (page_size) s += fmt::format("_pg{}", page_size);
  if (cache_batch_idx) s += "_bidx";
  if (cache_seqlens) s += "_cs";
  if (seqused) s += "_used";
  if (causal) s += "_causal";
  if (window_left >= 0 || window_right >= 0) s += fmt::format("_w{}_{}", window_left, window_right);
  if (attention_chunk) s += fmt::format("_chunk{}", attention_chunk);
  if (softcap > 0) s += "_softcap";
  if (sinks) s += "_sinks";
  if (sinks && sinks_dtype != DType::kBFloat16) s += dtype_name(sinks_dtype);
  if (!lse) s += "_nolse";
  if (strided) s += "_strided";
  if (pack_gqa) s += *pack_gqa ? "_pack" : "_nopack";
  if (softmax_scale) s += "_scale";
  if (seqlen_new) s += fmt::format("_new{}{}", seqlen_new, ragged_new ? "r" : "");
  if (rotary_fraction > 0)
    s += fmt::format("_rot{}{}{}", static_cast<int>(rotary_fraction * 100),
                     rotary_interleaved ? "i" : "n", rotary_seqlens ? "s" : "");
  if (leftpad) s += "_leftpad";
  if (num_splits) s += fmt::format("_splits{}", *num_splits);
  if (planned) s += "_plan";
  if (sm_margin) s += fmt::format("_margin{}", sm_margin);
  if (context_device >= 0) s += "_ctx" + std::to_string(context_device);
  if (guard == GuardSide::kBefore) s += "_guardbefore";
  if (guard == GuardSide::kNone) s += "_noguard";
  for (char& ch : s)
    if (ch == '-') ch = 'm';
  return s;
}

CaseResult run_case(const AttentionCase& c) {
  std::mt19937_64 rng(c.seed);
  std::normal_distribution<double> normal(0.0, 1.0);
  const int b = c.batch, h = c.num_heads, hk = c.num_heads_k, d = c.head_dim;
  const int dv = c.head_dim_v ? c.head_dim_v : c.head_dim;
  const DType dt = c.dtype;

  // Logical lengths.
  RefInputs in;
  in.batch = b;
  in.num_heads = h;
  in.num_heads_k = hk;
  in.head_dim = d;
  in.head_dim_v = dv;
  // A paged cache holds whole pages: without cache_seqlens every sequence has them all.
  int seqlen_k = c.seqlen_k;
  if (c.api == Api::kKvcache && c.page_size > 0)
    seqlen_k = (seqlen_k + c.page_size - 1) / c.page_size * c.page_size;
  std::vector<int> qlen_alloc(b, c.seqlen_q), klen_alloc(b, seqlen_k);
  in.lq.assign(b, c.seqlen_q);
  in.lk.assign(b, seqlen_k);
  const bool ragged_q = c.api == Api::kVarlen || c.varlen_q;
  for (int i = 0; i < b; ++i) {
    if (c.random_lengths && ragged_q)
      qlen_alloc[i] =
          std::uniform_int_distribution<int>(std::max(1, c.seqlen_q - 20), c.seqlen_q)(rng);
    if (c.random_lengths && (c.api == Api::kVarlen || c.cache_seqlens)) {
      klen_alloc[i] = (i % 5 == 4 || (b > 1 && i == b - 1))
                          ? 0
                          : std::uniform_int_distribution<int>(0, seqlen_k)(rng);
    }
    in.lq[i] = qlen_alloc[i];
    in.lk[i] = klen_alloc[i];
    if (c.seqused && c.api == Api::kVarlen) {
      in.lq[i] = std::uniform_int_distribution<int>(0, qlen_alloc[i])(rng);
      in.lk[i] = std::uniform_int_distribution<int>(0, klen_alloc[i])(rng);
    }
  }
  const bool append = c.api == Api::kKvcache && c.seqlen_new > 0;
  const bool with_seqlens = c.cache_seqlens || append || c.leftpad;
  if (c.api == Api::kKvcache && !with_seqlens) {
    std::fill(klen_alloc.begin(), klen_alloc.end(), seqlen_k);
    in.lk = klen_alloc;
  }
  // Appends: lnew[i] new keys land at rows [klen_alloc[i], + lnew[i]) (klen_alloc = cache_seqlens);
  // left padding hides rows [0, leftpad[i]). The logical keys are rows [leftpad, cache_seqlens)
  // followed by the new ones.
  std::vector<int> lnew(b, 0), leftpad(b, 0);
  if (c.api == Api::kKvcache) {
    for (int i = 0; i < b; ++i) {
      if (append) {
        lnew[i] =
            c.ragged_new ? std::uniform_int_distribution<int>(0, c.seqlen_new)(rng) : c.seqlen_new;
        // Room for the new keys, and rotary positions of the queries inside the tables: from
        // cache_seqlens on, one per query row (causal / local) or one for all.
        const bool rotary = c.rotary_fraction > 0 && !c.rotary_seqlens;
        const bool rotary_rows = rotary && queries_rotate_per_row(c, seqlen_k);
        const int top =
            seqlen_k - std::max({lnew[i], rotary_rows ? c.seqlen_q : 0, rotary ? 1 : 0});
        klen_alloc[i] = c.random_lengths ? std::uniform_int_distribution<int>(0, top)(rng) : top;
      }
      if (c.leftpad) leftpad[i] = std::uniform_int_distribution<int>(0, klen_alloc[i])(rng);
      in.lk[i] = klen_alloc[i] - leftpad[i] + lnew[i];
    }
  }
  auto randv = [&](size_t n) {
    std::vector<double> x(n);
    for (double& e : x) e = round_to(normal(rng), dt);
    return x;
  };
  in.q.resize(b);
  in.k.resize(b);
  in.v.resize(b);
  std::vector<std::vector<double>> new_k(b), new_v(b);
  for (int i = 0; i < b; ++i) {
    in.q[i] = randv(static_cast<size_t>(in.lq[i]) * h * d);
    in.k[i] = randv(static_cast<size_t>(klen_alloc[i]) * hk * d);
    in.v[i] = randv(static_cast<size_t>(klen_alloc[i]) * hk * dv);
    new_k[i] = randv(static_cast<size_t>(lnew[i]) * hk * d);
    new_v[i] = randv(static_cast<size_t>(lnew[i]) * hk * dv);
  }
  const std::vector<std::vector<double>> q_in = in.q;  // what the kernel reads (before rotary)
  in.softmax_scale = c.softmax_scale.value_or(1.0 / std::sqrt(static_cast<double>(d)));
  in.causal = c.causal;
  in.window_left = c.window_left;
  in.window_right = c.window_right;
  in.attention_chunk = c.attention_chunk;
  in.softcap = c.softcap;
  Buffer sinks_buf(c.sinks_dtype, h);
  if (c.sinks) {
    for (int i = 0; i < h; ++i) {
      in.sinks.push_back(round_to(normal(rng), c.sinks_dtype));
      sinks_buf.set(i, in.sinks[i]);
    }
  }

  // Query / output layout.
  std::vector<int32_t> cu_q(b + 1, 0), cu_k(b + 1, 0), used_q(b), used_k(b);
  for (int i = 0; i < b; ++i) {
    cu_q[i + 1] = cu_q[i] + (ragged_q ? qlen_alloc[i] : c.seqlen_q);
    cu_k[i + 1] = cu_k[i] + klen_alloc[i];
    used_q[i] = in.lq[i];
    used_k[i] = in.lk[i];
  }
  const int64_t total_q = cu_q[b], total_k = cu_k[b];
  // A strided out is only 4-byte aligned (rows 2 elements past a 16-byte multiple): the CUDA
  // epilogue that stores 16-byte chunks must fall back to 4-byte stores there.
  const View qv = make_view(total_q, h, d, c.strided),
             ov = make_view(total_q, h, dv, c.strided, /*dim_pad=*/2);
  Buffer qbuf(dt, qv.rows_alloc * qv.row_stride), obuf(dt, ov.rows_alloc * ov.row_stride);
  for (int i = 0; i < b; ++i)
    for (int r = 0; r < in.lq[i]; ++r)
      for (int hh = 0; hh < h; ++hh)
        for (int e = 0; e < d; ++e)
          qbuf.set((cu_q[i] + r) * qv.row_stride + hh * qv.head_stride + e,
                   in.q[i][(static_cast<size_t>(r) * h + hh) * d + e]);
  // Rows of q past seqused_q (and the padding of strided views) keep the NaN poison: a kernel
  // may compute such rows but must not let them into the rows it writes.

  // The LSE: (h, total_q) with packed queries, else (b, h, s_q); strided cases pad each head's
  // row of positions. Element [(i,) hh, r] of sequence i's query row r is at lse_at(i, hh, r).
  const bool lse_packed = c.varlen_q || c.api == Api::kVarlen;
  const int64_t lse_positions = lse_packed ? total_q : c.seqlen_q;
  const int64_t lse_head_stride = lse_positions + (c.strided ? 3 : 0);
  auto lse_at = [&](int i, int hh, int r) -> int64_t {
    return lse_packed ? hh * lse_head_stride + cu_q[i] + r
                      : (static_cast<int64_t>(i) * h + hh) * lse_head_stride + r;
  };
  std::vector<float> lse_buf(static_cast<size_t>(lse_packed ? h : b * h) * lse_head_stride + 1,
                             std::numeric_limits<float>::quiet_NaN());

  // Keys/values layout.
  std::vector<int32_t> page_table, batch_idx(b), cache_seqlens(b);
  int64_t kv_rows = 0;  // rows of the k/v buffers in their first two dims
  int cache_rows = b, pages_per_seq = 0, page_table_stride = 0, num_pages = 0;
  if (c.cache_batch_idx) cache_rows = b + 2;
  std::vector<int> row_of(b);
  std::iota(row_of.begin(), row_of.end(), 0);
  if (c.cache_batch_idx) {
    std::vector<int> perm(cache_rows);
    std::iota(perm.begin(), perm.end(), 0);
    std::shuffle(perm.begin(), perm.end(), rng);
    for (int i = 0; i < b; ++i) row_of[i] = batch_idx[i] = perm[i];
  }
  // Logical key j of sequence i lives at storage row key_row(i, j) of a (rows, hk, dim) array.
  std::vector<int32_t> page_perm;
  if (c.api == Api::kVarlen) {
    kv_rows = total_k;
  } else if (c.page_size > 0) {
    pages_per_seq = seqlen_k / c.page_size;
    num_pages = pages_per_seq * cache_rows + 3;
    page_perm.resize(num_pages);
    std::iota(page_perm.begin(), page_perm.end(), 0);
    std::shuffle(page_perm.begin(), page_perm.end(), rng);
    // Strided cases pad the rows with page ids no sequence may read.
    page_table_stride = pages_per_seq + (c.strided ? 2 : 0);
    page_table.assign(static_cast<size_t>(cache_rows) * page_table_stride, -7);
    for (int r = 0; r < cache_rows; ++r)
      for (int pgi = 0; pgi < pages_per_seq; ++pgi)
        page_table[r * page_table_stride + pgi] = page_perm[r * pages_per_seq + pgi];
    kv_rows = static_cast<int64_t>(num_pages) * c.page_size;
  } else {
    kv_rows = static_cast<int64_t>(cache_rows) * seqlen_k;
  }
  auto key_row = [&](int i, int j) -> int64_t {
    if (c.api == Api::kVarlen) return cu_k[i] + j;
    if (c.page_size > 0)
      return static_cast<int64_t>(page_table[row_of[i] * page_table_stride + j / c.page_size]) *
                 c.page_size +
             j % c.page_size;
    return static_cast<int64_t>(row_of[i]) * seqlen_k + j;
  };
  const View kview = make_view(kv_rows, hk, d, c.strided),
             vview = make_view(kv_rows, hk, dv, c.strided);
  Buffer kbuf(dt, kview.rows_alloc * kview.row_stride),
      vbuf(dt, vview.rows_alloc * vview.row_stride);
  // Rows no sequence uses, and rows before a sequence's left padding, keep the NaN poison: a
  // kernel that loads them must mask them out of both products (0 x NaN is NaN).
  for (int i = 0; i < b; ++i)
    for (int j = leftpad[i]; j < klen_alloc[i]; ++j)
      for (int hh = 0; hh < hk; ++hh) {
        for (int e = 0; e < d; ++e)
          kbuf.set(key_row(i, j) * kview.row_stride + hh * kview.head_stride + e,
                   in.k[i][(static_cast<size_t>(j) * hk + hh) * d + e]);
        for (int e = 0; e < dv; ++e)
          vbuf.set(key_row(i, j) * vview.row_stride + hh * vview.head_stride + e,
                   in.v[i][(static_cast<size_t>(j) * hk + hh) * dv + e]);
      }
  // The logical K/V the reference sees: rows [leftpad, leftpad + lk) of what is stored (the
  // appended keys join after the call, from the cache the kernel wrote).
  for (int i = 0; i < b; ++i) {
    const int old_keys = in.lk[i] - lnew[i];
    in.k[i] =
        std::vector<double>(in.k[i].begin() + static_cast<size_t>(leftpad[i]) * hk * d,
                            in.k[i].begin() + static_cast<size_t>(leftpad[i] + old_keys) * hk * d);
    in.v[i] =
        std::vector<double>(in.v[i].begin() + static_cast<size_t>(leftpad[i]) * hk * dv,
                            in.v[i].begin() + static_cast<size_t>(leftpad[i] + old_keys) * hk * dv);
  }
  for (int i = 0; i < b; ++i) cache_seqlens[i] = c.api == Api::kVarlen ? in.lk[i] : klen_alloc[i];

  // New keys / values, rotary tables and the cache the append must leave.
  std::vector<int32_t> cu_new(b + 1, 0), rotary_pos0(b);
  for (int i = 0; i < b; ++i) cu_new[i + 1] = cu_new[i] + (c.ragged_new ? lnew[i] : c.seqlen_new);
  const int64_t new_rows = c.ragged_new ? cu_new[b] : int64_t{b} * c.seqlen_new;
  const View knv = make_view(new_rows, hk, d, c.strided),
             vnv = make_view(new_rows, hk, dv, c.strided);
  Buffer knbuf(dt, std::max<int64_t>(1, knv.rows_alloc * knv.row_stride)),
      vnbuf(dt, std::max<int64_t>(1, vnv.rows_alloc * vnv.row_stride));
  auto new_row = [&](int i, int t) -> int64_t {
    return c.ragged_new ? cu_new[i] + t : int64_t{i} * c.seqlen_new + t;
  };
  for (int i = 0; i < b; ++i)
    for (int t = 0; t < lnew[i]; ++t)
      for (int hh = 0; hh < hk; ++hh) {
        for (int e = 0; e < d; ++e)
          knbuf.set(new_row(i, t) * knv.row_stride + hh * knv.head_stride + e,
                    new_k[i][(static_cast<size_t>(t) * hk + hh) * d + e]);
        for (int e = 0; e < dv; ++e)
          vnbuf.set(new_row(i, t) * vnv.row_stride + hh * vnv.head_stride + e,
                    new_v[i][(static_cast<size_t>(t) * hk + hh) * dv + e]);
      }
  const int rotary_dim = append ? static_cast<int>(c.rotary_fraction * d / 16) * 16 : 0;
  const int seqlen_ro = seqlen_k + (c.rotary_seqlens ? seqlen_k + c.seqlen_q + c.seqlen_new : 0);
  Buffer cos_buf(dt, std::max(1, seqlen_ro * rotary_dim / 2)),
      sin_buf(dt, std::max(1, seqlen_ro * rotary_dim / 2));
  std::uniform_real_distribution<double> angle(0.0, 6.283185307179586);
  for (int64_t e = 0; e < int64_t{seqlen_ro} * rotary_dim / 2; ++e) {
    const double a = angle(rng);
    cos_buf.set(e, round_to(std::cos(a), dt));
    sin_buf.set(e, round_to(std::sin(a), dt));
  }
  for (int i = 0; i < b; ++i)
    rotary_pos0[i] =
        c.rotary_seqlens ? std::uniform_int_distribution<int>(0, seqlen_k)(rng) : klen_alloc[i];
  // One row rotated at a position in float64 (spec 4.1), rounded to the dtype.
  auto rotate = [&](const double* x, double* out, int64_t pos) {
    std::copy(x, x + d, out);
    for (int m = 0; m < rotary_dim / 2; ++m) {
      const int c0 = c.rotary_interleaved ? 2 * m : m;
      const int c1 = c.rotary_interleaved ? 2 * m + 1 : m + rotary_dim / 2;
      const double co = cos_buf.get(pos * (rotary_dim / 2) + m);
      const double si = sin_buf.get(pos * (rotary_dim / 2) + m);
      out[c0] = round_to(x[c0] * co - x[c1] * si, dt);
      out[c1] = round_to(x[c0] * si + x[c1] * co, dt);
    }
  };
  // Expected cache: the old one with every new row written (K rotated).
  std::vector<uint8_t> expected_k = kbuf.bytes, expected_v = vbuf.bytes;
  std::vector<char> rotated_elem(kbuf.bytes.size() / dtype_size(dt), 0);
  {
    Buffer ek(dt, 0), ev(dt, 0);
    ek.bytes = kbuf.bytes;
    ev.bytes = vbuf.bytes;
    std::vector<double> rot(d);
    for (int i = 0; i < b; ++i)
      for (int t = 0; t < lnew[i]; ++t)
        for (int hh = 0; hh < hk; ++hh) {
          const double* src = &new_k[i][(static_cast<size_t>(t) * hk + hh) * d];
          rotate(src, rot.data(), int64_t{rotary_pos0[i]} + t);
          const int64_t row = key_row(i, klen_alloc[i] + t);
          for (int e = 0; e < d; ++e) {
            ek.set(row * kview.row_stride + hh * kview.head_stride + e, rot[e]);
            rotated_elem[row * kview.row_stride + hh * kview.head_stride + e] = e < rotary_dim;
          }
          for (int e = 0; e < dv; ++e)
            ev.set(row * vview.row_stride + hh * vview.head_stride + e,
                   new_v[i][(static_cast<size_t>(t) * hk + hh) * dv + e]);
        }
    expected_k = ek.bytes;
    expected_v = ev.bytes;
  }

  // Run, on the host or on copies in device memory.
  DeviceMirrors mirrors(c.device, c.guard);
  // Every buffer the call sees, with its bytes before the call: the ones it only reads must be
  // unchanged afterwards, and the outputs unchanged outside their valid elements.
  struct Placed {
    void* host;
    std::string name;
    std::vector<uint8_t> before;
  };
  std::vector<Placed> placed;
  auto place = [&](void* host, size_t bytes, const char* name) {
    const uint8_t* p = static_cast<const uint8_t*>(host);
    placed.push_back(Placed{host, name, std::vector<uint8_t>(p, p + bytes)});
    return mirrors.place(host, bytes);
  };
  auto view3 = [&](Buffer& buf, const View& v, int64_t rows, int64_t heads, int64_t dim,
                   const char* name) {
    return Tensor::strided(place(buf.data(), buf.bytes.size(), name), dt, {rows, heads, dim},
                           {v.row_stride, v.head_stride, 1}, c.device);
  };
  auto view4 = [&](Buffer& buf, const View& v, int64_t n0, int64_t n1, int64_t heads, int64_t dim,
                   const char* name) {
    return Tensor::strided(place(buf.data(), buf.bytes.size(), name), dt, {n0, n1, heads, dim},
                           {n1 * v.row_stride, v.row_stride, v.head_stride, 1}, c.device);
  };
  auto lse_view = [&]() {
    float* data = static_cast<float*>(place(lse_buf.data(), bytes_of(lse_buf), "softmax_lse"));
    return lse_packed ? Tensor::strided(data, DType::kFloat32, {h, total_q}, {lse_head_stride, 1},
                                        c.device)
                      : Tensor::strided(data, DType::kFloat32, {b, h, c.seqlen_q},
                                        {h * lse_head_stride, lse_head_stride, 1}, c.device);
  };
  // The call: plain, or through a plan made from the same arguments (its workspace placed like
  // the other buffers).
  std::vector<uint8_t> workspace;
  bool context_kept = true;
  auto run = [&](const auto& args) {
    if (!c.planned) {
      if constexpr (std::is_same_v<std::decay_t<decltype(args)>, VarlenArgs>) {
        flash_attn_varlen(args);
      } else {
        flash_attn_with_kvcache(args);
      }
      return;
    }
    const AttentionPlan plan(args);
    workspace.assign(std::max<size_t>(plan.workspace_bytes(), 1), 0);
    void* placed_workspace = mirrors.place(workspace.data(), workspace.size());
    if (c.context_device >= 0) make_cuda_device_current(c.context_device);  // placing set its own
    plan.run(args, placed_workspace);
  };
  // With context_device set, the call starts from that device's context and must leave it
  // current; the mirrors then go back to their own.
  auto call = [&](const auto& args) {
    if (c.context_device >= 0) make_cuda_device_current(c.context_device);
    run(args);
    if (c.context_device < 0) return;
    context_kept = current_cuda_device() == c.context_device;
    mirrors.make_current();
  };
  Tensor sinks_t = Tensor::contiguous(place(sinks_buf.data(), bytes_of(sinks_buf), "sinks"),
                                      c.sinks_dtype, {h}, c.device);
  if (c.api == Api::kVarlen) {
    VarlenArgs a;
    a.q = view3(qbuf, qv, total_q, h, d, "q");
    a.k = view3(kbuf, kview, total_k, hk, d, "k");
    a.v = view3(vbuf, vview, total_k, hk, dv, "v");
    a.out = view3(obuf, ov, total_q, h, dv, "out");
    a.cu_seqlens_q = Tensor::contiguous(place(cu_q.data(), bytes_of(cu_q), "cu_seqlens_q"),
                                        DType::kInt32, {b + 1}, c.device);
    a.cu_seqlens_k = Tensor::contiguous(place(cu_k.data(), bytes_of(cu_k), "cu_seqlens_k"),
                                        DType::kInt32, {b + 1}, c.device);
    a.max_seqlen_q = c.seqlen_q;
    a.max_seqlen_k = c.seqlen_k;
    if (c.seqused) {
      a.seqused_q = Tensor::contiguous(place(used_q.data(), bytes_of(used_q), "seqused_q"),
                                       DType::kInt32, {b}, c.device);
      a.seqused_k = Tensor::contiguous(place(used_k.data(), bytes_of(used_k), "seqused_k"),
                                       DType::kInt32, {b}, c.device);
    }
    a.softmax_scale = c.softmax_scale;
    a.causal = c.causal;
    a.window_size = {c.window_left, c.window_right};
    a.attention_chunk = c.attention_chunk;
    a.softcap = c.softcap;
    a.pack_gqa = c.pack_gqa;
    if (c.sinks) a.sinks = sinks_t;
    a.return_softmax_lse = c.lse;
    if (c.lse) a.softmax_lse = lse_view();
    if (c.num_splits) a.num_splits = *c.num_splits;
    a.sm_margin = c.sm_margin;
    a.options.validate = true;
    if (c.mutate_varlen) c.mutate_varlen(a);
    call(a);
  } else {
    KvcacheArgs a;
    if (c.varlen_q) {
      a.q = view3(qbuf, qv, total_q, h, d, "q");
      a.out = view3(obuf, ov, total_q, h, dv, "out");
      a.cu_seqlens_q = Tensor::contiguous(place(cu_q.data(), bytes_of(cu_q), "cu_seqlens_q"),
                                          DType::kInt32, {b + 1}, c.device);
      a.max_seqlen_q = c.seqlen_q;
      if (c.lse) a.softmax_lse = lse_view();
    } else {
      a.q = view4(qbuf, qv, b, c.seqlen_q, h, d, "q");
      a.out = view4(obuf, ov, b, c.seqlen_q, h, dv, "out");
      if (c.lse) a.softmax_lse = lse_view();
    }
    if (c.page_size > 0) {
      a.k_cache = view4(kbuf, kview, num_pages, c.page_size, hk, d, "k_cache");
      a.v_cache = view4(vbuf, vview, num_pages, c.page_size, hk, dv, "v_cache");
      a.page_table = Tensor::strided(place(page_table.data(), bytes_of(page_table), "page_table"),
                                     DType::kInt32, {cache_rows, pages_per_seq},
                                     {page_table_stride, 1}, c.device);
    } else {
      a.k_cache = view4(kbuf, kview, cache_rows, seqlen_k, hk, d, "k_cache");
      a.v_cache = view4(vbuf, vview, cache_rows, seqlen_k, hk, dv, "v_cache");
    }
    if (c.cache_batch_idx)
      a.cache_batch_idx =
          Tensor::contiguous(place(batch_idx.data(), bytes_of(batch_idx), "cache_batch_idx"),
                             DType::kInt32, {b}, c.device);
    if (with_seqlens)
      a.cache_seqlens =
          Tensor::contiguous(place(cache_seqlens.data(), bytes_of(cache_seqlens), "cache_seqlens"),
                             DType::kInt32, {b}, c.device);
    if (append) {
      if (c.ragged_new) {
        a.k = view3(knbuf, knv, new_rows, hk, d, "k");
        a.v = view3(vnbuf, vnv, new_rows, hk, dv, "v");
        a.cu_seqlens_k_new =
            Tensor::contiguous(place(cu_new.data(), bytes_of(cu_new), "cu_seqlens_k_new"),
                               DType::kInt32, {b + 1}, c.device);
      } else {
        a.k = view4(knbuf, knv, b, c.seqlen_new, hk, d, "k");
        a.v = view4(vnbuf, vnv, b, c.seqlen_new, hk, dv, "v");
      }
    }
    if (rotary_dim > 0) {
      a.rotary_cos = Tensor::contiguous(place(cos_buf.data(), bytes_of(cos_buf), "rotary_cos"), dt,
                                        {seqlen_ro, rotary_dim / 2}, c.device);
      a.rotary_sin = Tensor::contiguous(place(sin_buf.data(), bytes_of(sin_buf), "rotary_sin"), dt,
                                        {seqlen_ro, rotary_dim / 2}, c.device);
      a.rotary_interleaved = c.rotary_interleaved;
      if (c.rotary_seqlens)
        a.rotary_seqlens =
            Tensor::contiguous(place(rotary_pos0.data(), bytes_of(rotary_pos0), "rotary_seqlens"),
                               DType::kInt32, {b}, c.device);
    }
    if (c.leftpad)
      a.cache_leftpad = Tensor::contiguous(
          place(leftpad.data(), bytes_of(leftpad), "cache_leftpad"), DType::kInt32, {b}, c.device);
    if (c.num_splits) a.num_splits = *c.num_splits;
    a.sm_margin = c.sm_margin;
    a.softmax_scale = c.softmax_scale;
    a.causal = c.causal;
    a.window_size = {c.window_left, c.window_right};
    a.attention_chunk = c.attention_chunk;
    a.softcap = c.softcap;
    a.pack_gqa = c.pack_gqa;
    if (c.sinks) a.sinks = sinks_t;
    a.return_softmax_lse = c.lse;
    a.options.validate = true;
    if (c.mutate_kvcache) c.mutate_kvcache(a);
    call(a);
  }

  mirrors.copy_back(obuf.data());
  mirrors.copy_back(lse_buf.data());
  CaseResult res;
  res.context_kept = context_kept;
  const std::vector<uint8_t>* out_before = nullptr;
  const std::vector<uint8_t>* lse_before = nullptr;
  for (Placed& p : placed) {
    if (p.host == obuf.data()) {
      out_before = &p.before;
    } else if (p.host == lse_buf.data()) {
      lse_before = &p.before;
    } else if (!(append && (p.host == kbuf.data() || p.host == vbuf.data()))) {
      mirrors.copy_back(p.host);
      if (!p.before.empty() && std::memcmp(p.host, p.before.data(), p.before.size()) != 0)
        res.modified_inputs.push_back(p.name);
    }
  }
  // An empty K tensor for the whole call (varlen lengths all zero, or a cache of no rows and
  // nothing appended) has out 0 and LSE +inf in every row, not the -inf of rows that see no key
  // (spec 3.4).
  int64_t k_rows = 0;
  for (int i = 0; i < b; ++i)
    k_rows += (c.api == Api::kVarlen ? klen_alloc[i] : seqlen_k) + lnew[i];
  // Outputs outside the valid rows (padding of strided views, rows past seqused_q, the LSE's
  // spare element) keep their poison bytes: spec 3.5 leaves those rows unwritten (but an empty K
  // tensor fills the whole of out and the LSE, as FA3's out.zero_() and lse.fill_()).
  {
    std::vector<char> out_valid(obuf.bytes.size() / dtype_size(dt), 0);
    std::vector<char> lse_valid(lse_buf.size(), 0);
    for (int i = 0; i < b; ++i)
      for (int r = 0; r < (k_rows == 0 ? cu_q[i + 1] - cu_q[i] : in.lq[i]); ++r)
        for (int hh = 0; hh < h; ++hh) {
          for (int e = 0; e < dv; ++e)
            out_valid[(cu_q[i] + r) * ov.row_stride + hh * ov.head_stride + e] = 1;
          lse_valid[lse_at(i, hh, r)] = 1;
        }
    const int es = dtype_size(dt);
    for (size_t e = 0; e < out_valid.size(); ++e)
      if (!out_valid[e] && std::memcmp(&obuf.bytes[e * es], out_before->data() + e * es, es) != 0)
        ++res.written_outside;
    if (lse_before)
      for (size_t e = 0; e < lse_valid.size(); ++e)
        if (!lse_valid[e] && std::memcmp(&lse_buf[e], lse_before->data() + e * 4, 4) != 0)
          ++res.written_outside;
  }
  if (append) {
    mirrors.copy_back(kbuf.data());
    mirrors.copy_back(vbuf.data());
    const int mantissa = dt == DType::kBFloat16 ? 7 : (dt == DType::kFloat16 ? 10 : 23);
    Buffer ek(dt, 0), ev(dt, 0);
    ek.bytes = expected_k;
    ev.bytes = expected_v;
    const int es = dtype_size(dt);
    for (size_t e = 0; e < rotated_elem.size(); ++e) {
      if (rotated_elem[e]) {
        const double got = kbuf.get(e), want = ek.get(e);
        const double ulp = std::ldexp(std::max(std::abs(got), std::abs(want)), -mantissa) + 1e-7;
        if (!(std::abs(got - want) <= ulp)) ++res.cache_mismatch;
      } else if (std::memcmp(&kbuf.bytes[e * es], &expected_k[e * es], es) != 0) {
        ++res.cache_mismatch;
      }
    }
    if (vbuf.bytes != expected_v) {
      for (size_t e = 0; e < vbuf.bytes.size(); e += es)
        if (std::memcmp(&vbuf.bytes[e], &expected_v[e], es) != 0) ++res.cache_mismatch;
    }
    // The reference attends to the appended keys as the kernel stored them (checked just above).
    for (int i = 0; i < b; ++i)
      for (int t = 0; t < lnew[i]; ++t) {
        const int64_t row = key_row(i, klen_alloc[i] + t);
        for (int hh = 0; hh < hk; ++hh)
          for (int e = 0; e < d; ++e)
            in.k[i].push_back(kbuf.get(row * kview.row_stride + hh * kview.head_stride + e));
      }
    for (int i = 0; i < b; ++i) {  // V rows in (key, head, dim) order as K above
      std::vector<double> appended;
      for (int t = 0; t < lnew[i]; ++t)
        for (int hh = 0; hh < hk; ++hh)
          for (int e = 0; e < dv; ++e)
            appended.push_back(new_v[i][(static_cast<size_t>(t) * hk + hh) * dv + e]);
      in.v[i].insert(in.v[i].end(), appended.begin(), appended.end());
    }
  }
  // Queries rotate at position P0 + i for causal / local calls (after the mask normalization of
  // spec 3.3), at P0 otherwise.
  if (rotary_dim > 0) {
    const bool per_row = queries_rotate_per_row(c, seqlen_k);
    std::vector<double> rot(d);
    for (int i = 0; i < b; ++i)
      for (int r = 0; r < in.lq[i]; ++r)
        for (int hh = 0; hh < h; ++hh) {
          double* qrow = &in.q[i][(static_cast<size_t>(r) * h + hh) * d];
          rotate(&q_in[i][(static_cast<size_t>(r) * h + hh) * d], rot.data(),
                 int64_t{rotary_pos0[i]} + (per_row ? r : 0));
          std::copy(rot.begin(), rot.end(), qrow);
        }
  }

  // Compare (an empty K tensor: LSE +inf, see above).
  RefOutputs ref = attention_reference(in);
  if (k_rows == 0)
    for (auto& lse : ref.lse)
      std::fill(lse.begin(), lse.end(), std::numeric_limits<double>::infinity());
  const RefOutputs low = attention_low_precision(in, dt);
  double noise = 0;
  for (int i = 0; i < b; ++i) {
    for (int r = 0; r < in.lq[i]; ++r) {
      for (int hh = 0; hh < h; ++hh) {
        for (int e = 0; e < dv; ++e) {
          const size_t li = (static_cast<size_t>(r) * h + hh) * dv + e;
          const double got = obuf.get((cu_q[i] + r) * ov.row_stride + hh * ov.head_stride + e);
          const double want = ref.out[i][li];
          res.out.push_back(got);
          if (std::isnan(got)) {
            ++res.unwritten;
            continue;
          }
          res.max_err = std::max(res.max_err, std::abs(got - want));
          res.baseline_err = std::max(res.baseline_err, std::abs(low.out[i][li] - want));
          noise = std::max(noise, std::abs(round_to(want + 0.3, dt) - 0.3 - want));
        }
        if (!c.lse) continue;
        const double got = lse_buf[lse_at(i, hh, r)],
                     want = ref.lse[i][static_cast<size_t>(hh) * in.lq[i] + r];
        res.lse_out.push_back(got);
        if (std::isinf(want) || std::isinf(got) || std::isnan(got)) {
          if (!(got == want)) ++res.lse_mismatch;
        } else {
          res.lse_err = std::max(res.lse_err, std::abs(got - want));
          res.lse_tolerance = std::max(res.lse_tolerance, 2e-4 * std::max(1.0, std::abs(want)));
        }
      }
    }
  }
  res.tolerance = (c.softcap > 0 ? 3 : 2) * res.baseline_err + 2 * noise + 1e-6;
  if (res.lse_tolerance == 0) res.lse_tolerance = 2e-4;
  return res;
}

void expect_matches_reference(const AttentionCase& c) {
  const CaseResult r = run_case(c);
  EXPECT_EQ(r.unwritten, 0) << "valid output elements left unwritten";
  EXPECT_EQ(r.cache_mismatch, 0)
      << "cache elements differ from the expected cache after the append";
  EXPECT_EQ(r.written_outside, 0) << "out / LSE elements outside the valid rows were written";
  EXPECT_TRUE(r.modified_inputs.empty()) << "the call changed buffers it only reads: "
                                         << fmt::format("{}", fmt::join(r.modified_inputs, ", "));
  EXPECT_LE(r.max_err, r.tolerance) << "baseline error " << r.baseline_err;
  EXPECT_TRUE(r.context_kept) << "the call left another CUDA context current than the caller's";
  if (c.lse) {
    EXPECT_EQ(r.lse_mismatch, 0) << "infinite LSE values differ from the reference";
    EXPECT_LE(r.lse_err, r.lse_tolerance);
  }
}

}  // namespace flashjit::testing
