// The demo's two problems (a causal varlen prefill and a paged decode) as host data, with the call
// arguments over buffers of any device and the check against the float64 reference. The CPU demo
// runs them on host memory, the CUDA demo on copies in device memory.
#pragma once

#include <string>
#include <vector>

#include "flashjit/flashjit.h"
#include "tools/tool_common.h"

namespace flashjit::tools {

// How the kernel of one call was obtained, from the counters before and after it.
std::string how_obtained(const CacheStats& before, const CacheStats& after);

struct DemoPrefill {
  static constexpr int kHeads = 16, kHeadsK = 4, kDim = 128;
  std::vector<int> lens = {512, 384};
  std::vector<int32_t> cu_seqlens = {0, 512, 896};
  int total = 896;  // declared before the tensors, which it sizes
  HostTensor q, k, v, out;
  DemoPrefill();
  static const char* description();
  // The call over q, k, v, out and cu_seqlens at these addresses, on `device`.
  VarlenArgs args(void* q_data, void* k_data, void* v_data, void* out_data, void* cu_data,
                  Device device) const;
  double flops() const;
  // `out` against the float64 reference within FA3's bound; prints one line.
  bool check() const;
};

struct DemoDecode {
  static constexpr int kBatch = 8, kHeads = 32, kHeadsK = 8, kDim = 128, kPage = 16, kLen = 2048;
  static constexpr int kPagesPerSeq = kLen / kPage, kPages = kBatch * kPagesPerSeq;
  HostTensor q, out, k, v;
  std::vector<int32_t> page_table, seqlens;
  DemoDecode();
  static const char* description();
  KvcacheArgs args(void* q_data, void* k_data, void* v_data, void* out_data, void* table_data,
                   void* seqlens_data, Device device) const;
  double kv_bytes() const;  // K and V bytes one call reads
  bool check() const;
};

}  // namespace flashjit::tools
