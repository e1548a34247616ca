// Which keys a query row sees. Every mask flashjit supports (causal, sliding window, attention
// chunk, key padding) leaves each row an interval of keys [lo, hi), so a row is two integers.
#pragma once

#include "flashjit/fwd_params.h"

namespace flashjit_cpu {

using flashjit_kernel::FwdParams;
using flashjit_kernel::kUnbounded;

struct KeyInterval {
  int lo;
  int hi;  // exclusive; lo >= hi means the row sees no key
};

inline long long floor_div(long long a, long long b) {
  long long q = a / b;
  return (a % b != 0 && ((a < 0) != (b < 0))) ? q - 1 : q;
}

// Query i of a sequence with lq queries and lk keys; bottom-right aligned (spec section 3.3).
template <class Cfg>
inline KeyInterval visible_keys(const FwdParams& p, int i, int lq, int lk) {
  const long long pos = (long long)i + lk - lq;  // the key position query i is "at"
  long long lo = 0, hi = lk;
  if constexpr (Cfg::kCausal) {
    hi = hi < pos + 1 ? hi : pos + 1;
  }
  if constexpr (Cfg::kLocal) {
    if (p.window_left != kUnbounded && pos - p.window_left > lo) lo = pos - p.window_left;
    if (p.window_right != kUnbounded && pos + p.window_right + 1 < hi)
      hi = pos + p.window_right + 1;
  }
  if constexpr (Cfg::kChunked) {
    const long long c0 = floor_div(pos, p.chunk) * p.chunk;
    if (c0 > lo) lo = c0;
    if (c0 + p.chunk < hi) hi = c0 + p.chunk;
  }
  if (hi < lo) hi = lo;
  return KeyInterval{(int)lo, (int)hi};
}

}  // namespace flashjit_cpu
