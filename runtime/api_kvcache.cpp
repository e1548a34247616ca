// flash_attn_with_kvcache: queries against a contiguous or paged KV cache (FA3 read path).
#include "flashjit/flashjit.h"
#include "runtime/api_common.h"
#include "runtime/attention_problem.h"
#include "runtime/checks.h"

namespace flashjit {
namespace {

// k / v (new keys and values), cu_seqlens_k_new and the rotary tables (spec sections 2 and 4).
void check_append(const KvcacheArgs& a, AttentionProblem& p, int64_t batch, int h_k, int d, int dv,
                  int64_t seqlen_k) {
  const Device device = a.q.device;
  FLASHJIT_CHECK(a.k.has_value() == a.v.has_value())
      << "k / v: expected both or neither, got only " << (a.k ? "k" : "v");
  const bool rotary = a.rotary_cos || a.rotary_sin;
  if (!a.k) {
    FLASHJIT_CHECK(!a.cu_seqlens_k_new)
        << "cu_seqlens_k_new: expected none since k / v are not given, got a tensor";
    FLASHJIT_CHECK(!rotary) << "rotary_cos / rotary_sin: expected none since k / v (the keys to "
                               "rotate) are not given, got tables";
    FLASHJIT_CHECK(!a.rotary_seqlens) << "rotary_seqlens: expected none since rotary_cos / "
                                         "rotary_sin are not given, got a tensor";
    return;
  }
  FLASHJIT_CHECK(a.cache_seqlens.has_value())
      << "cache_seqlens: expected a tensor since k / v are given (it sets where they are "
         "appended), got none";
  const bool ragged = a.cu_seqlens_k_new.has_value();
  int64_t seqlen_new = 0;
  if (ragged) {
    checks::index_vector(*a.cu_seqlens_k_new, "cu_seqlens_k_new", batch + 1, "(batch + 1,)",
                         device);
    checks::rank(*a.k, "k", 3, "(total_k_new, h_k, d) with cu_seqlens_k_new");
    checks::rank(*a.v, "v", 3, "(total_k_new, h_k, dv) with cu_seqlens_k_new");
    seqlen_new = a.k->size(0);
    checks::shape(*a.k, "k", {seqlen_new, h_k, d}, "(total_k_new, h_k, d)");
    checks::shape(*a.v, "v", {seqlen_new, h_k, dv}, "(total_k_new, h_k, dv)");
  } else {
    checks::rank(*a.k, "k", 4, "(b, s_new, h_k, d)");
    checks::rank(*a.v, "v", 4, "(b, s_new, h_k, dv)");
    seqlen_new = a.k->size(1);
    checks::shape(*a.k, "k", {batch, seqlen_new, h_k, d}, "(b, s_new, h_k, d)");
    checks::shape(*a.v, "v", {batch, seqlen_new, h_k, dv}, "(b, s_new, h_k, dv)");
    FLASHJIT_CHECK(seqlen_new <= seqlen_k)
        << "k: expected at most s_k = " << seqlen_k << " new keys per sequence (the capacity of "
        << "the cache), got s_new = " << seqlen_new;
  }
  for (auto [t, name] : {std::pair{&*a.k, "k"}, {&*a.v, "v"}}) {
    FLASHJIT_CHECK(t->dtype == a.q.dtype)
        << name << ": expected the dtype of q (" << dtype_name(a.q.dtype) << "), got "
        << dtype_name(t->dtype);
    checks::same_device(*t, name, device);
    checks::has_data(*t, name);
    checks::last_dim_contiguous(*t, name);
    checks::non_negative_strides(*t, name);
  }
  // The append writes the cache.
  checks::no_overlap(a.k_cache, "k_cache");
  checks::no_overlap(a.v_cache, "v_cache");
  p.k_new = a.k;
  p.v_new = a.v;
  p.cu_seqlens_k_new = ragged ? static_cast<const int32_t*>(a.cu_seqlens_k_new->data) : nullptr;
  p.seqlen_new = static_cast<int>(seqlen_new);
  if (!rotary) {
    FLASHJIT_CHECK(!a.rotary_seqlens) << "rotary_seqlens: expected none since rotary_cos / "
                                         "rotary_sin are not given, got a tensor";
    return;
  }
  FLASHJIT_CHECK(a.rotary_cos && a.rotary_sin)
      << "rotary_cos / rotary_sin: expected both or neither, got only "
      << (a.rotary_cos ? "rotary_cos" : "rotary_sin");
  const Tensor& cos = *a.rotary_cos;
  checks::rank(cos, "rotary_cos", 2, "(seqlen_ro, rotary_dim / 2)");
  const int64_t seqlen_ro = cos.size(0), rotary_dim = 2 * cos.size(1);
  checks::shape(*a.rotary_sin, "rotary_sin", {seqlen_ro, rotary_dim / 2},
                "(seqlen_ro, rotary_dim / 2) as rotary_cos");
  for (auto [t, name] : {std::pair{&cos, "rotary_cos"}, {&*a.rotary_sin, "rotary_sin"}}) {
    FLASHJIT_CHECK(t->dtype == a.q.dtype)
        << name << ": expected the dtype of q (" << dtype_name(a.q.dtype) << "), got "
        << dtype_name(t->dtype);
    checks::contiguous(*t, name);
    checks::has_data(*t, name);
    checks::same_device(*t, name, device);
  }
  FLASHJIT_CHECK(rotary_dim > 0 && rotary_dim <= d)
      << "rotary_cos: expected rotary_dim = 2 * shape[1] in [16, head_dim = " << d << "], got "
      << rotary_dim;
  FLASHJIT_CHECK(rotary_dim % 16 == 0)
      << "rotary_cos: expected rotary_dim = 2 * shape[1] to be a multiple of 16, got "
      << rotary_dim;
  if (a.rotary_seqlens) {
    checks::index_vector(*a.rotary_seqlens, "rotary_seqlens", batch, "(batch,)", device);
    p.rotary_seqlens = static_cast<const int32_t*>(a.rotary_seqlens->data);
  } else {
    // Positions are cache rows: the tables must cover the cache (validation mode also checks the
    // positions of the queries).
    FLASHJIT_CHECK(seqlen_ro >= seqlen_k)
        << "rotary_cos: expected at least s_k = " << seqlen_k
        << " rows (one per position of the cache), got " << seqlen_ro;
  }
  p.rotary_cos = a.rotary_cos;
  p.rotary_sin = a.rotary_sin;
  p.rotary_dim = static_cast<int>(rotary_dim);
  p.rotary_interleaved = a.rotary_interleaved;
}

}  // namespace

AttentionProblem kvcache_problem(const KvcacheArgs& a) {
  checks::not_supported_if(a.qv.has_value(), "qv");
  checks::not_supported_if(a.q_descale || a.k_descale || a.v_descale,
                           "q_descale / k_descale / v_descale (fp8)");
  checks::not_supported_if(a.scheduler_metadata.has_value(), "scheduler_metadata");
  checks::not_supported_if(a.score_mod.has_value(), "score_mod");

  const bool varlen_q = a.cu_seqlens_q.has_value();
  if (varlen_q) {
    checks::rank(a.q, "q", 3, "(total_q, h, d) with cu_seqlens_q");
  } else {
    checks::rank(a.q, "q", 4, "(b, s_q, h, d)");
  }
  const bool paged = a.page_table.has_value();
  checks::rank(a.k_cache, "k_cache", 4,
               paged ? "(num_pages, page_size, h_k, d)" : "(b_k, s_k, h_k, d)");
  checks::rank(a.v_cache, "v_cache", 4,
               paged ? "(num_pages, page_size, h_k, dv)" : "(b_k, s_k, h_k, dv)");
  check_qkv_dtypes(a.q, a.k_cache, a.v_cache, "k_cache", "v_cache");
  const Device device = a.q.device;
  const int h = static_cast<int>(a.q.size(-2)), d = static_cast<int>(a.q.size(-1));
  const int h_k = static_cast<int>(a.k_cache.size(2)), dv = static_cast<int>(a.v_cache.size(3));
  check_heads(h, h_k, d, dv);
  check_scalars(a.window_size, a.attention_chunk, a.softcap, a.softmax_scale, a.num_splits,
                a.sm_margin);

  int64_t batch = 0, seqlen_q = 0, total_q = 0;
  if (varlen_q) {
    FLASHJIT_CHECK(a.cu_seqlens_q->rank == 1 && a.cu_seqlens_q->size(0) >= 1)
        << "cu_seqlens_q: expected shape (batch + 1,), got " << a.cu_seqlens_q->shape_string();
    batch = a.cu_seqlens_q->size(0) - 1;
    checks::index_vector(*a.cu_seqlens_q, "cu_seqlens_q", batch + 1, "(batch + 1,)", device);
    FLASHJIT_CHECK(a.max_seqlen_q.has_value())
        << "max_seqlen_q: expected a value since cu_seqlens_q is given, got none";
    FLASHJIT_CHECK(*a.max_seqlen_q >= 0) << "max_seqlen_q: expected >= 0, got " << *a.max_seqlen_q;
    seqlen_q = *a.max_seqlen_q;
    total_q = a.q.size(0);
    check_out(a.out, a.q, {total_q, h, dv}, "(total_q, h, dv)");
    check_lse(a.softmax_lse, a.return_softmax_lse, {h, total_q}, "(h, total_q)", device);
  } else {
    batch = a.q.size(0);
    seqlen_q = a.q.size(1);
    total_q = batch * seqlen_q;
    check_out(a.out, a.q, {batch, seqlen_q, h, dv}, "(b, s_q, h, dv)");
    check_lse(a.softmax_lse, a.return_softmax_lse, {batch, h, seqlen_q}, "(b, h, s_q)", device);
  }

  AttentionProblem p;
  int64_t cache_rows = 0, seqlen_k = 0;
  if (paged) {
    const Tensor& pt = *a.page_table;
    checks::rank(pt, "page_table", 2, "(b_k, max_pages_per_seq)");
    checks::dtype(pt, "page_table", DType::kInt32);
    checks::last_dim_contiguous(pt, "page_table");
    checks::has_data(pt, "page_table");
    checks::non_negative_strides(pt, "page_table");
    checks::same_device(pt, "page_table", device);
    cache_rows = pt.size(0);
    const int64_t num_pages = a.k_cache.size(0), page_size = a.k_cache.size(1);
    FLASHJIT_CHECK(page_size >= 1) << "k_cache: expected page_size (dim 1) >= 1, got " << page_size;
    checks::shape(a.k_cache, "k_cache", {num_pages, page_size, h_k, d},
                  "(num_pages, page_size, h_k, d)");
    checks::shape(a.v_cache, "v_cache", {num_pages, page_size, h_k, dv},
                  "(num_pages, page_size, h_k, dv)");
    p.page_table = static_cast<const int32_t*>(pt.data);
    p.page_table_stride = pt.stride(0);
    p.max_pages = static_cast<int>(pt.size(1));
    p.page_size = static_cast<int>(page_size);
    p.num_pages = static_cast<int>(num_pages);
    seqlen_k = pt.size(1) * page_size;
    FLASHJIT_CHECK(seqlen_k <= checks::kMaxSize)
        << "page_table: expected max_pages_per_seq x page_size <= " << checks::kMaxSize
        << " keys per sequence, got " << pt.size(1) << " x " << page_size;
  } else {
    cache_rows = a.k_cache.size(0);
    seqlen_k = a.k_cache.size(1);
    checks::shape(a.k_cache, "k_cache", {cache_rows, seqlen_k, h_k, d}, "(b_k, s_k, h_k, d)");
    checks::shape(a.v_cache, "v_cache", {cache_rows, seqlen_k, h_k, dv}, "(b_k, s_k, h_k, dv)");
  }
  if (a.cache_batch_idx) {
    checks::index_vector(*a.cache_batch_idx, "cache_batch_idx", batch, "(batch,)", device);
    p.cache_batch_idx = static_cast<const int32_t*>(a.cache_batch_idx->data);
  } else {
    FLASHJIT_CHECK(cache_rows == batch)
        << (paged ? "page_table" : "k_cache") << ": expected " << batch
        << " rows (the batch of q) since cache_batch_idx is not given, got " << cache_rows;
  }
  FLASHJIT_CHECK(cache_rows > 0 || batch == 0)
      << (paged ? "page_table" : "k_cache") << ": expected at least one row, got 0";
  if (a.cache_seqlens) {
    checks::index_vector(*a.cache_seqlens, "cache_seqlens", batch, "(batch,)", device);
    p.seqused_k = static_cast<const int32_t*>(a.cache_seqlens->data);
  }
  check_sinks(a.sinks, h, device);
  if (a.cache_leftpad) {
    FLASHJIT_CHECK(a.cache_seqlens.has_value())
        << "cache_seqlens: expected a tensor since cache_leftpad is given (keys run from "
           "cache_leftpad[b] to cache_seqlens[b]), got none";
    checks::index_vector(*a.cache_leftpad, "cache_leftpad", batch, "(batch,)", device);
    p.leftpad_k = static_cast<const int32_t*>(a.cache_leftpad->data);
  }
  check_append(a, p, batch, h_k, d, dv, seqlen_k);

  p.q = a.q;
  p.k = a.k_cache;
  p.v = a.v_cache;
  p.out = a.out;
  if (a.return_softmax_lse) p.lse = a.softmax_lse;
  p.varlen_q = varlen_q;
  p.paged = paged;
  p.cu_seqlens_q = varlen_q ? static_cast<const int32_t*>(a.cu_seqlens_q->data) : nullptr;
  p.cache_rows = static_cast<int>(cache_rows);
  p.total_q = total_q;
  p.batch = static_cast<int>(batch);
  p.seqlen_q = static_cast<int>(seqlen_q);
  p.seqlen_k = static_cast<int>(seqlen_k);
  p.num_heads = h;
  p.num_heads_k = h_k;
  p.head_dim = d;
  p.head_dim_v = dv;
  p.num_splits = a.num_splits;
  p.sm_margin = a.sm_margin;
  fill_common(p, a.softmax_scale, a.causal, a.window_size, a.attention_chunk, a.softcap, a.sinks,
              a.pack_gqa, a.options);
  return p;
}

void flash_attn_with_kvcache(const KvcacheArgs& a) { run_attention(kvcache_problem(a)); }

}  // namespace flashjit
