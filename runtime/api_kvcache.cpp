// flash_attn_with_kvcache: queries against a contiguous or paged KV cache (FA3 read path).
#include "flashjit/flashjit.h"
#include "runtime/api_common.h"
#include "runtime/attention_problem.h"
#include "runtime/checks.h"

namespace flashjit {

void flash_attn_with_kvcache(const KvcacheArgs& a) {
  checks::not_supported_if(a.k.has_value() || a.v.has_value(),
                           "k / v (appending new keys and values to the cache)");
  checks::not_supported_if(a.qv.has_value(), "qv");
  checks::not_supported_if(a.rotary_cos || a.rotary_sin || a.rotary_seqlens,
                           "rotary_cos / rotary_sin / rotary_seqlens");
  checks::not_supported_if(a.cache_leftpad.has_value(), "cache_leftpad");
  checks::not_supported_if(a.cu_seqlens_k_new.has_value(), "cu_seqlens_k_new");
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
  check_scalars(a.window_size, a.attention_chunk, a.softcap, a.softmax_scale, a.num_splits);

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
  fill_common(p, a.softmax_scale, a.causal, a.window_size, a.attention_chunk, a.softcap, a.sinks,
              a.pack_gqa, a.options);
  run_attention(p);
}

}  // namespace flashjit
