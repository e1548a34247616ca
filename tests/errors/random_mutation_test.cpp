// Bad arguments in random places: each random many-feature case (reference/sweep_cases.h) gets
// one mutation that no valid call has (a wrong dtype, rank, stride, size, device, missing tensor,
// bad scalar or bad index value) just before its call, and the call must throw a UsageError (or
// NotSupportedError for the named unsupported features) that says what it expected and what it
// got. The hand-written error tests check the messages of single cases; this checks that no
// configuration lets a bad argument through.
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <string>
#include <typeinfo>
#include <vector>

#include "reference/attention_case.h"
#include "reference/sweep_cases.h"

namespace flashjit::testing {
namespace {

// A tensor argument and what may be done to it.
struct Field {
  std::string name;
  Tensor* t;
  bool index;  // int32 index tensor
  bool grows;  // a larger last dimension is always an error (not for tables or the LSE)
  bool sinks;  // any float dtype is valid
};

void add(std::vector<Field>& f, const char* name, OptionalTensor& t, bool index, bool grows) {
  if (t) f.push_back(Field{name, &*t, index, grows, false});
}

std::vector<Field> fields(VarlenArgs& a) {
  std::vector<Field> f = {{"q", &a.q, false, true, false},
                          {"k", &a.k, false, true, false},
                          {"v", &a.v, false, true, false},
                          {"out", &a.out, false, true, false},
                          {"cu_seqlens_q", &a.cu_seqlens_q, true, true, false},
                          {"cu_seqlens_k", &a.cu_seqlens_k, true, true, false}};
  add(f, "seqused_q", a.seqused_q, true, true);
  add(f, "seqused_k", a.seqused_k, true, true);
  add(f, "softmax_lse", a.softmax_lse, false, false);
  if (a.sinks) f.push_back(Field{"sinks", &*a.sinks, false, true, true});
  return f;
}

std::vector<Field> fields(KvcacheArgs& a) {
  std::vector<Field> f = {{"q", &a.q, false, true, false},
                          {"k_cache", &a.k_cache, false, true, false},
                          {"v_cache", &a.v_cache, false, true, false},
                          {"out", &a.out, false, true, false}};
  add(f, "k", a.k, false, true);
  add(f, "v", a.v, false, true);
  add(f, "rotary_cos", a.rotary_cos, false, false);
  add(f, "rotary_sin", a.rotary_sin, false, false);
  add(f, "cache_seqlens", a.cache_seqlens, true, true);
  add(f, "cache_batch_idx", a.cache_batch_idx, true, true);
  add(f, "cache_leftpad", a.cache_leftpad, true, true);
  add(f, "page_table", a.page_table, true, false);
  add(f, "cu_seqlens_q", a.cu_seqlens_q, true, true);
  add(f, "cu_seqlens_k_new", a.cu_seqlens_k_new, true, true);
  add(f, "rotary_seqlens", a.rotary_seqlens, true, true);
  add(f, "softmax_lse", a.softmax_lse, false, false);
  if (a.sinks) f.push_back(Field{"sinks", &*a.sinks, false, true, true});
  return f;
}

// One mutation: what it did, and whether the call must raise NotSupportedError (else UsageError).
struct Applied {
  std::string what;
  bool not_supported = false;
};

using Mutation = std::function<void()>;

// The mutations of one tensor that no valid call has.
void tensor_mutations(const Field& f, std::vector<std::pair<std::string, Mutation>>& out) {
  Tensor& t = *f.t;
  out.push_back({f.name + ": dtype int64 / int32",
                 [&t, index = f.index] { t.dtype = index ? DType::kInt64 : DType::kInt32; }});
  if (!f.index && !f.sinks)
    out.push_back({f.name + ": another float dtype", [&t] {
                     t.dtype = t.dtype == DType::kBFloat16 ? DType::kFloat16 : DType::kBFloat16;
                   }});
  if (t.rank < kMaxTensorRank)
    out.push_back({f.name + ": one more (leading) dimension", [&t] {
                     for (int i = t.rank; i > 0; --i) {
                       t.shape[i] = t.shape[i - 1];
                       t.strides[i] = t.strides[i - 1];
                     }
                     t.shape[0] = 1;
                     t.strides[0] = t.rank > 0 ? t.shape[1] * t.strides[1] : 1;
                     ++t.rank;
                   }});
  if (t.rank > 0 && t.shape[t.rank - 1] > 1 && f.name != "softmax_lse")
    out.push_back({f.name + ": last stride 2", [&t] { t.strides[t.rank - 1] = 2; }});
  if (t.rank > 0 && t.shape[0] > 1)
    out.push_back({f.name + ": negative stride", [&t] { t.strides[0] = -t.strides[0]; }});
  if (t.numel() > 0) out.push_back({f.name + ": null data", [&t] { t.data = nullptr; }});
  if (t.rank > 0) {
    out.push_back({f.name + ": first dimension -1", [&t] { t.shape[0] = -1; }});
    out.push_back({f.name + ": first dimension 2^31", [&t] { t.shape[0] = int64_t{1} << 31; }});
  }
  if (f.grows && t.rank > 0)
    out.push_back({f.name + ": last dimension 8 larger", [&t] { t.shape[t.rank - 1] += 8; }});
  out.push_back({f.name + ": on a CUDA device", [&t] { t.device = Device{DeviceType::kCUDA, 0}; }});
}

int32_t* ints(OptionalTensor& t) { return static_cast<int32_t*>(t->data); }

// Every mutation that applies to these arguments, one picked by rng.
template <typename Args>
Applied mutate(Args& a, std::mt19937_64& rng) {
  std::vector<Field> f = fields(a);
  std::vector<std::pair<std::string, Mutation>> all;
  for (const Field& field : f) tensor_mutations(field, all);
  all.push_back({"softcap -1", [&a] { a.softcap = -1; }});
  all.push_back({"window_size (-2, -1)", [&a] { a.window_size = {-2, -1}; }});
  all.push_back({"attention_chunk -1", [&a] { a.attention_chunk = -1; }});
  all.push_back({"num_splits 257", [&a] { a.num_splits = 257; }});
  all.push_back({"softmax_scale NaN", [&a] { a.softmax_scale = std::nan(""); }});
  all.push_back({"sm_margin -1", [&a] { a.sm_margin = -1; }});
  if (a.return_softmax_lse) all.push_back({"no softmax_lse", [&a] { a.softmax_lse.reset(); }});
  all.push_back({"score_mod", [&a] { a.score_mod = "softcap"; }});
  all.push_back({"q_descale", [&a] { a.q_descale = a.out; }});
  if constexpr (std::is_same_v<Args, VarlenArgs>) {
    all.push_back({"no max_seqlen_q", [&a] { a.max_seqlen_q.reset(); }});
    all.push_back(
        {"cu_seqlens_q[0] = 1", [&a] { static_cast<int32_t*>(a.cu_seqlens_q.data)[0] = 1; }});
    all.push_back({"cu_seqlens_k[b] past k", [&a] {
                     static_cast<int32_t*>(a.cu_seqlens_k.data)[a.cu_seqlens_k.shape[0] - 1] =
                         static_cast<int32_t>(a.k.shape[0] + 1);
                   }});
    if (a.seqused_q) all.push_back({"seqused_q[0] = -1", [&a] { ints(a.seqused_q)[0] = -1; }});
  } else {
    const bool paged = a.page_table.has_value();
    const int64_t capacity =
        paged ? a.page_table->shape[1] * a.k_cache.shape[1] : a.k_cache.shape[1];
    const int64_t rows = paged ? a.page_table->shape[0] : a.k_cache.shape[0];
    if (a.k) {
      all.push_back({"no cache_seqlens with k", [&a] { a.cache_seqlens.reset(); }});
      all.push_back({"no v with k", [&a] { a.v.reset(); }});
    }
    if (a.rotary_cos) all.push_back({"no rotary_sin", [&a] { a.rotary_sin.reset(); }});
    if (a.cu_seqlens_q) {
      all.push_back({"no max_seqlen_q", [&a] { a.max_seqlen_q.reset(); }});
      all.push_back({"cu_seqlens_q[0] = 1", [&a] { ints(a.cu_seqlens_q)[0] = 1; }});
    }
    if (a.cache_seqlens)
      all.push_back({"cache_seqlens[0] past the capacity", [&a, capacity] {
                       ints(a.cache_seqlens)[0] = static_cast<int32_t>(capacity + 1);
                     }});
    if (a.cache_batch_idx)
      all.push_back({"cache_batch_idx[0] past the rows",
                     [&a, rows] { ints(a.cache_batch_idx)[0] = static_cast<int32_t>(rows); }});
    if (a.cache_leftpad)
      all.push_back({"cache_leftpad[0] = -1", [&a] { ints(a.cache_leftpad)[0] = -1; }});
    if (a.rotary_seqlens)
      all.push_back({"rotary_seqlens[0] = -1", [&a] { ints(a.rotary_seqlens)[0] = -1; }});
    all.push_back({"scheduler_metadata", [&a] { a.scheduler_metadata = a.out; }});
  }
  const size_t pick = rng() % all.size();
  all[pick].second();
  const std::string& what = all[pick].first;
  const bool not_supported =
      what == "score_mod" || what == "q_descale" || what == "scheduler_metadata";
  return Applied{what, not_supported};
}

TEST(RandomMutations, EveryBadArgumentIsRejectedWithAMessage) {
  const int count = random_case_count(48) * 4;
  const std::vector<AttentionCase> cases =
      random_cases(SweepTarget{}, count, random_case_seed(1) + 17);
  for (size_t i = 0; i < cases.size(); ++i) {
    AttentionCase c = cases[i];
    std::mt19937_64 rng(c.seed);
    Applied applied;
    c.mutate_varlen = [&](VarlenArgs& a) { applied = mutate(a, rng); };
    c.mutate_kvcache = [&](KvcacheArgs& a) { applied = mutate(a, rng); };
    std::string outcome;
    try {
      run_case(c);
      outcome = "no error";
    } catch (const NotSupportedError& e) {
      if (!applied.not_supported) outcome = std::string("NotSupportedError: ") + e.what();
    } catch (const UsageError& e) {
      const std::string m = e.what();
      if (applied.not_supported)
        outcome = "UsageError: " + m;
      else if (m.find("expected") == std::string::npos || m.find("got") == std::string::npos)
        outcome = "a message without 'expected' and 'got': " + m;
    } catch (const std::exception& e) {
      outcome = std::string(typeid(e).name()) + ": " + e.what();
    }
    EXPECT_EQ(outcome, "") << c.name() << " with " << applied.what;
  }
  // The process stays usable.
  AttentionCase valid = cases.front();
  expect_matches_reference(valid);
}

}  // namespace
}  // namespace flashjit::testing
