// Index values checked on the host before the kernel runs (every CPU call; CUDA calls in
// validation mode), so bad values are rejected with a message instead of being clamped (the
// kernels' defence) or read out of bounds.
#include <algorithm>
#include <cstdint>
#include <string>

#include "flashjit/error.h"
#include "runtime/attention_problem.h"

namespace flashjit {
namespace {

void check_cu_seqlens(const int32_t* cu, int batch, int64_t total, int max_len, const char* name,
                      const char* max_name) {
  FLASHJIT_CHECK(cu[0] == 0) << name << "[0]: expected 0, got " << cu[0];
  for (int b = 0; b < batch; ++b) {
    const int64_t len = int64_t{cu[b + 1]} - cu[b];
    FLASHJIT_CHECK(len >= 0) << name << ": expected non-decreasing values, got " << name << "[" << b
                             << "] = " << cu[b] << " > " << name << "[" << b + 1
                             << "] = " << cu[b + 1];
    FLASHJIT_CHECK(len <= max_len) << name << ": expected sequence lengths of at most " << max_name
                                   << " = " << max_len << ", got " << len << " for sequence " << b;
  }
  FLASHJIT_CHECK(cu[batch] <= total) << name << "[" << batch << "]: expected at most " << total
                                     << " (rows of the tensor), got " << cu[batch];
}

}  // namespace

void validate_index_values(const AttentionProblem& p) {
  const MaskSpec mask = normalize_mask(p);
  if (p.cu_seqlens_q)
    check_cu_seqlens(p.cu_seqlens_q, p.batch, p.total_q, p.seqlen_q, "cu_seqlens_q",
                     "max_seqlen_q");
  if (p.cu_seqlens_k)
    check_cu_seqlens(p.cu_seqlens_k, p.batch, p.total_k, p.seqlen_k, "cu_seqlens_k",
                     "max_seqlen_k");
  if (p.cu_seqlens_k_new)
    check_cu_seqlens(p.cu_seqlens_k_new, p.batch, p.seqlen_new, p.seqlen_k, "cu_seqlens_k_new",
                     "s_k");
  for (int b = 0; b < p.batch; ++b) {
    if (p.seqused_q) {
      const int64_t len = int64_t{p.cu_seqlens_q[b + 1]} - p.cu_seqlens_q[b];
      FLASHJIT_CHECK(p.seqused_q[b] >= 0 && p.seqused_q[b] <= len)
          << "seqused_q[" << b << "]: expected a value in [0, " << len << "], got "
          << p.seqused_q[b];
    }
    int64_t capacity = p.seqlen_k;
    if (p.cu_seqlens_k) capacity = int64_t{p.cu_seqlens_k[b + 1]} - p.cu_seqlens_k[b];
    int64_t keys = capacity;
    if (p.seqused_k) {
      const char* name = p.cu_seqlens_k ? "seqused_k" : "cache_seqlens";
      FLASHJIT_CHECK(p.seqused_k[b] >= 0 && p.seqused_k[b] <= capacity)
          << name << "[" << b << "]: expected a value in [0, " << capacity
          << "] (the capacity of the sequence), got " << p.seqused_k[b];
      keys = p.seqused_k[b];
    }
    int64_t leftpad = 0, lnew = 0;
    if (p.leftpad_k) {
      leftpad = p.leftpad_k[b];
      FLASHJIT_CHECK(leftpad >= 0 && leftpad <= keys)
          << "cache_leftpad[" << b << "]: expected a value in [0, cache_seqlens[" << b
          << "] = " << keys << "], got " << leftpad;
    }
    if (p.k_new) {
      lnew = p.seqlen_new;
      if (p.cu_seqlens_k_new) lnew = int64_t{p.cu_seqlens_k_new[b + 1]} - p.cu_seqlens_k_new[b];
      FLASHJIT_CHECK(keys + lnew <= capacity)
          << "k: appending " << lnew << " keys to sequence " << b << " at cache_seqlens[" << b
          << "] = " << keys << " needs " << keys + lnew << " rows, expected at most the capacity "
          << capacity;
    }
    if (p.rotary_dim > 0) {
      const int64_t base = p.rotary_seqlens ? p.rotary_seqlens[b] : keys;
      FLASHJIT_CHECK(base >= 0) << "rotary_seqlens[" << b << "]: expected a position >= 0, got "
                                << base;
      int64_t lq = p.seqlen_q;
      if (p.cu_seqlens_q) lq = int64_t{p.cu_seqlens_q[b + 1]} - p.cu_seqlens_q[b];
      // Query rows at base + i only where the kernel's (normalized) mask is causal or local.
      const bool per_row = mask.causal || mask.local;
      const int64_t last = base + std::max<int64_t>({lnew, per_row ? lq : 1, 1}) - 1;
      FLASHJIT_CHECK(base >= 0 && last < p.rotary_cos->size(0))
          << "rotary_cos / rotary_sin: sequence " << b << " uses positions [" << base << ", "
          << last << "], expected positions in [0, " << p.rotary_cos->size(0)
          << ") (rows of the tables)";
    }
    keys += lnew;
    int row = b;
    if (p.cache_batch_idx) {
      row = p.cache_batch_idx[b];
      FLASHJIT_CHECK(row >= 0 && row < p.cache_rows)
          << "cache_batch_idx[" << b << "]: expected a value in [0, " << p.cache_rows << "), got "
          << row;
    }
    if (p.page_table) {
      const int64_t pages = (keys + p.page_size - 1) / p.page_size;
      for (int64_t j = 0; j < pages; ++j) {
        const int32_t page = p.page_table[row * p.page_table_stride + j];
        FLASHJIT_CHECK(page >= 0 && page < p.num_pages)
            << "page_table[" << row << ", " << j << "]: expected a page id in [0, " << p.num_pages
            << "), got " << page;
      }
    }
  }
}

}  // namespace flashjit
