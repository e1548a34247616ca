// Shared by the error tests: small valid calls of both entry points over owned CPU buffers, and
// expect_rejected(), which runs the valid call, then a mutated one that must throw exactly the
// expected exception type naming the parameter and values, then the valid call again.
#pragma once

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <initializer_list>
#include <optional>
#include <string>
#include <typeinfo>
#include <vector>

#include "flashjit/flashjit.h"

namespace flashjit::errors_test {

inline uint16_t bf16_bits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return static_cast<uint16_t>(u >> 16);
}

inline float bf16_value(uint16_t bits) {
  const uint32_t u = uint32_t{bits} << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

inline int64_t numel_of(std::initializer_list<int64_t> shape) {
  int64_t n = 1;
  for (int64_t s : shape) n *= s;
  return n;
}

// Owns every buffer of a case. Floating buffers hold twice the elements of their shape, so that
// views with doubled strides stay inside them.
class Buffers {
 public:
  // bf16 (or another 2-byte dtype) filled with small finite values, or with NaN for outputs.
  Tensor half(std::initializer_list<int64_t> shape, bool nan = false,
              DType dtype = DType::kBFloat16) {
    const int64_t n = 2 * numel_of(shape);
    std::vector<uint64_t>& storage = alloc(n * 2);
    uint16_t* data = reinterpret_cast<uint16_t*>(storage.data());
    for (int64_t i = 0; i < n; ++i) {
      data[i] = nan ? uint16_t{0x7fc0} : bf16_bits(static_cast<float>((i * 37) % 17 - 8) / 16.0f);
    }
    return Tensor::contiguous(data, dtype, shape);
  }
  Tensor f32(std::initializer_list<int64_t> shape, float value = 0.0f) {
    const int64_t n = 2 * numel_of(shape);
    float* data = reinterpret_cast<float*>(alloc(n * 4).data());
    for (int64_t i = 0; i < n; ++i) data[i] = value;
    return Tensor::contiguous(data, DType::kFloat32, shape);
  }
  // int32 values with the given shape (1-D by default); room for twice the values.
  Tensor i32(const std::vector<int32_t>& values, std::initializer_list<int64_t> shape = {}) {
    int32_t* data = reinterpret_cast<int32_t*>(alloc(values.size() * 2 * 4).data());
    std::memcpy(data, values.data(), values.size() * 4);
    if (shape.size() == 0) {
      return Tensor::contiguous(data, DType::kInt32, {static_cast<int64_t>(values.size())});
    }
    return Tensor::contiguous(data, DType::kInt32, shape);
  }
  Tensor i64(const std::vector<int64_t>& values) {
    int64_t* data = reinterpret_cast<int64_t*>(alloc(values.size() * 8).data());
    std::memcpy(data, values.data(), values.size() * 8);
    return Tensor::contiguous(data, DType::kInt64, {static_cast<int64_t>(values.size())});
  }

 private:
  std::vector<uint64_t>& alloc(size_t bytes) {
    storage_.emplace_back((bytes + 7) / 8 + 1, 0);
    return storage_.back();
  }
  std::vector<std::vector<uint64_t>> storage_;
};

// The same view with every stride doubled: the last stride becomes 2.
inline Tensor doubled_strides(Tensor t) {
  for (int i = 0; i < t.rank; ++i) t.strides[i] *= 2;
  return t;
}

// A strided (n,) int32 view (stride 2) over {v0, -1, v1, -1, ...}.
inline Tensor strided_i32(Buffers& buf, const std::vector<int32_t>& values) {
  std::vector<int32_t> spread;
  for (int32_t v : values) {
    spread.push_back(v);
    spread.push_back(-1);
  }
  Tensor t = buf.i32(spread);
  return Tensor::strided(t.data, DType::kInt32, {static_cast<int64_t>(values.size())}, {2});
}

inline bool all_finite(const Tensor& t) {
  const int64_t n = t.numel();
  for (int64_t i = 0; i < n; ++i) {
    const float v = t.dtype == DType::kFloat32
                        ? static_cast<const float*>(t.data)[i]
                        : bf16_value(static_cast<const uint16_t*>(t.data)[i]);
    if (!std::isfinite(v)) return false;
  }
  return true;
}

// flash_attn_with_kvcache: q (2, 3, 4, 64) bf16 against h_k = 2 KV heads with cache_seqlens {5, 8}
// and the LSE. Contiguous cache: 3 rows of 8 keys read through cache_batch_idx {2, 0}. Paged: 4
// pages of 4 keys, page_table {{3, 2}, {1, 0}}. varlen_q: q (5, 4, 64), cu_seqlens_q {0, 2, 5}.
struct KvConfig {
  int d = 64, dv = 64;
  int h = 4, h_k = 2;
  bool paged = false;
  bool varlen_q = false;
  bool validate = false;
};

class KvCase {
 public:
  static constexpr int kBatch = 2, kSeqlenQ = 3, kCacheRows = 3, kSeqlenK = 8, kPageSize = 4,
                       kNumPages = 4, kTotalQ = 5;

  explicit KvCase(const KvConfig& c = {}) {
    if (c.varlen_q) {
      args.q = buf.half({kTotalQ, c.h, c.d});
      args.out = buf.half({kTotalQ, c.h, c.dv}, true);
      args.softmax_lse = buf.f32({c.h, kTotalQ});
      args.cu_seqlens_q = buf.i32({0, 2, 5});
      args.max_seqlen_q = kSeqlenQ;
    } else {
      args.q = buf.half({kBatch, kSeqlenQ, c.h, c.d});
      args.out = buf.half({kBatch, kSeqlenQ, c.h, c.dv}, true);
      args.softmax_lse = buf.f32({kBatch, c.h, kSeqlenQ});
    }
    if (c.paged) {
      args.k_cache = buf.half({kNumPages, kPageSize, c.h_k, c.d});
      args.v_cache = buf.half({kNumPages, kPageSize, c.h_k, c.dv});
      args.page_table = buf.i32({3, 2, 1, 0}, {kBatch, 2});
    } else {
      args.k_cache = buf.half({kCacheRows, kSeqlenK, c.h_k, c.d});
      args.v_cache = buf.half({kCacheRows, kSeqlenK, c.h_k, c.dv});
      args.cache_batch_idx = buf.i32({2, 0});
    }
    args.cache_seqlens = buf.i32({5, 8});
    args.return_softmax_lse = true;
    args.options.validate = c.validate;
  }
  KvCase(const KvCase&) = delete;
  KvCase& operator=(const KvCase&) = delete;

  void run() const { flash_attn_with_kvcache(args); }

  Buffers buf;
  KvcacheArgs args;
};

// flash_attn_varlen: q (5, 4, 64), k / v (9, 2, 64) bf16, cu_seqlens_q {0, 2, 5}, cu_seqlens_k
// {0, 4, 9}, max_seqlen_q 3, max_seqlen_k 5, with the LSE (4, 5).
struct VarlenConfig {
  int d = 64, dv = 64;
  int h = 4, h_k = 2;
  bool validate = false;
};

class VarlenCase {
 public:
  static constexpr int kTotalQ = 5, kTotalK = 9;

  explicit VarlenCase(const VarlenConfig& c = {}) {
    args.q = buf.half({kTotalQ, c.h, c.d});
    args.k = buf.half({kTotalK, c.h_k, c.d});
    args.v = buf.half({kTotalK, c.h_k, c.dv});
    args.cu_seqlens_q = buf.i32({0, 2, 5});
    args.cu_seqlens_k = buf.i32({0, 4, 9});
    args.max_seqlen_q = 3;
    args.max_seqlen_k = 5;
    args.out = buf.half({kTotalQ, c.h, c.dv}, true);
    args.softmax_lse = buf.f32({c.h, kTotalQ});
    args.return_softmax_lse = true;
    args.options.validate = c.validate;
  }
  VarlenCase(const VarlenCase&) = delete;
  VarlenCase& operator=(const VarlenCase&) = delete;

  void run() const { flash_attn_varlen(args); }

  Buffers buf;
  VarlenArgs args;
};

inline void call(const KvcacheArgs& a) { flash_attn_with_kvcache(a); }
inline void call(const VarlenArgs& a) { flash_attn_varlen(a); }

// The valid call of `c` succeeds; `bad` throws exactly E whose message contains every part; and
// the valid call still succeeds afterwards.
template <typename E, typename Case, typename Args>
void expect_rejected(const Case& c, const Args& bad, const std::vector<std::string>& parts) {
  ASSERT_NO_THROW(c.run()) << "the valid call must succeed";
  try {
    call(bad);
    ADD_FAILURE() << "expected " << typeid(E).name() << ", the call succeeded";
  } catch (const Error& e) {
    EXPECT_EQ(typeid(e), typeid(E)) << "wrong exception type for: " << e.what();
    for (const std::string& part : parts) EXPECT_THAT(e.what(), ::testing::HasSubstr(part));
  } catch (const std::exception& e) {
    ADD_FAILURE() << "not a flashjit::Error: " << e.what();
  }
  ASSERT_NO_THROW(c.run()) << "the valid call must still succeed after the error";
}

}  // namespace flashjit::errors_test
