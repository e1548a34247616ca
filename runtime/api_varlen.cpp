// flash_attn_varlen: packed variable-length queries and keys (FA3 flash_attn_varlen_func).
#include "flashjit/flashjit.h"
#include "runtime/api_common.h"
#include "runtime/attention_problem.h"
#include "runtime/checks.h"

namespace flashjit {

AttentionProblem varlen_problem(const VarlenArgs& a) {
  checks::not_supported_if(a.qv.has_value(), "qv");
  checks::not_supported_if(a.q_descale || a.k_descale || a.v_descale,
                           "q_descale / k_descale / v_descale (fp8)");
  checks::not_supported_if(a.score_mod.has_value(), "score_mod");
  FLASHJIT_CHECK(!a.page_table)
      << "page_table: expected none with flash_attn_varlen (as in FA3, a paged cache goes to "
         "flash_attn_with_kvcache), got a tensor of shape "
      << a.page_table->shape_string();
  checks::rank(a.q, "q", 3, "(total_q, h, d)");
  checks::rank(a.k, "k", 3, "(total_k, h_k, d)");
  checks::rank(a.v, "v", 3, "(total_k, h_k, dv)");
  check_qkv_dtypes(a.q, a.k, a.v, "k", "v");
  const Device device = a.q.device;
  const int64_t total_q = a.q.size(0), total_k = a.k.size(0);
  const int h = static_cast<int>(a.q.size(1)), d = static_cast<int>(a.q.size(2));
  const int h_k = static_cast<int>(a.k.size(1)), dv = static_cast<int>(a.v.size(2));
  checks::shape(a.k, "k", {total_k, h_k, d}, "(total_k, h_k, d)");
  checks::shape(a.v, "v", {total_k, h_k, -1}, "(total_k, h_k, dv)");
  check_heads(h, h_k, d, dv);
  check_scalars(a.window_size, a.attention_chunk, a.softcap, a.softmax_scale, a.num_splits,
                a.sm_margin);

  FLASHJIT_CHECK(a.cu_seqlens_q.rank == 1 && a.cu_seqlens_q.size(0) >= 1)
      << "cu_seqlens_q: expected shape (batch + 1,), got " << a.cu_seqlens_q.shape_string();
  const int64_t batch = a.cu_seqlens_q.size(0) - 1;
  checks::index_vector(a.cu_seqlens_q, "cu_seqlens_q", batch + 1, "(batch + 1,)", device);
  checks::index_vector(a.cu_seqlens_k, "cu_seqlens_k", batch + 1, "(batch + 1,)", device);
  FLASHJIT_CHECK(a.max_seqlen_q && a.max_seqlen_k)
      << "max_seqlen_q and max_seqlen_k: expected both (required for FA3), got "
      << (a.max_seqlen_q   ? "max_seqlen_q only"
          : a.max_seqlen_k ? "max_seqlen_k only"
                           : "neither");
  FLASHJIT_CHECK(*a.max_seqlen_q >= 0 && *a.max_seqlen_k >= 0)
      << "max_seqlen_q / max_seqlen_k: expected >= 0, got " << *a.max_seqlen_q << " / "
      << *a.max_seqlen_k;
  if (a.seqused_q) checks::index_vector(*a.seqused_q, "seqused_q", batch, "(batch,)", device);
  if (a.seqused_k) checks::index_vector(*a.seqused_k, "seqused_k", batch, "(batch,)", device);
  check_out(a.out, a.q, {total_q, h, dv}, "(total_q, h, dv)");
  check_lse(a.softmax_lse, a.return_softmax_lse, {h, total_q}, "(h, total_q)", device);
  check_sinks(a.sinks, h, device);

  AttentionProblem p;
  p.q = a.q;
  p.k = a.k;
  p.v = a.v;
  p.out = a.out;
  if (a.return_softmax_lse) p.lse = a.softmax_lse;
  p.varlen_q = p.varlen_k = true;
  p.cu_seqlens_q = static_cast<const int32_t*>(a.cu_seqlens_q.data);
  p.cu_seqlens_k = static_cast<const int32_t*>(a.cu_seqlens_k.data);
  p.seqused_q = a.seqused_q ? static_cast<const int32_t*>(a.seqused_q->data) : nullptr;
  p.seqused_k = a.seqused_k ? static_cast<const int32_t*>(a.seqused_k->data) : nullptr;
  p.total_q = total_q;
  p.total_k = total_k;
  p.cache_rows = static_cast<int>(batch);
  p.batch = static_cast<int>(batch);
  p.seqlen_q = *a.max_seqlen_q;
  p.seqlen_k = *a.max_seqlen_k;
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

void flash_attn_varlen(const VarlenArgs& a) { run_attention(varlen_problem(a)); }

}  // namespace flashjit
