// The CPU kernels' SIMD vocabulary: 16-lane vectors written with clang vector extensions and
// builtins only, so a kernel compiles with no system or resource headers (no 200 ms parse of
// <immintrin.h>). With AVX-512 a vector is one zmm register; elsewhere clang splits it.
#pragma once

namespace flashjit_cpu {

typedef float f32x16 __attribute__((ext_vector_type(16)));
typedef int i32x16 __attribute__((ext_vector_type(16)));
typedef unsigned u32x16 __attribute__((ext_vector_type(16)));
typedef unsigned short u16x16 __attribute__((ext_vector_type(16)));
typedef unsigned short u16x32 __attribute__((ext_vector_type(32)));
typedef _Float16 f16x16 __attribute__((ext_vector_type(16)));

constexpr int kLanes = 16;

struct bf16 {
  unsigned short bits;
};
struct fp16 {
  _Float16 value;
};

inline f32x16 load(const float* p) {
  f32x16 v;
  __builtin_memcpy(&v, p, sizeof(v));
  return v;
}
inline void store(float* p, f32x16 v) { __builtin_memcpy(p, &v, sizeof(v)); }
inline u32x16 load_u32(const void* p) {
  u32x16 v;
  __builtin_memcpy(&v, p, sizeof(v));
  return v;
}
inline void store_u32(void* p, u32x16 v) { __builtin_memcpy(p, &v, sizeof(v)); }

// Element conversions: 16 elements of T <-> 16 floats.
inline f32x16 load_f32(const float* p) { return load(p); }
inline f32x16 load_f32(const bf16* p) {
  u16x16 h;
  __builtin_memcpy(&h, p, sizeof(h));
  u32x16 w = __builtin_convertvector(h, u32x16) << 16;
  return __builtin_bit_cast(f32x16, w);
}
inline f32x16 load_f32(const fp16* p) {
  f16x16 h;
  __builtin_memcpy(&h, p, sizeof(h));
  return __builtin_convertvector(h, f32x16);
}
inline void store_f32(float* p, f32x16 v) { store(p, v); }
// Round to nearest even (inputs are finite or inf; NaN stays NaN through the quiet bit).
inline u16x16 to_bf16_bits(f32x16 v) {
  u32x16 w = __builtin_bit_cast(u32x16, v);
  w += 0x7fffu + ((w >> 16) & 1u);
  return __builtin_convertvector(w >> 16, u16x16);
}
inline void store_f32(bf16* p, f32x16 v) {
  u16x16 h = to_bf16_bits(v);
  __builtin_memcpy(p, &h, sizeof(h));
}
inline void store_f32(fp16* p, f32x16 v) {
  f16x16 h = __builtin_convertvector(v, f16x16);
  __builtin_memcpy(p, &h, sizeof(h));
}

inline float to_float(float x) { return x; }
inline float to_float(bf16 x) { return __builtin_bit_cast(float, (unsigned)x.bits << 16); }
inline float to_float(fp16 x) { return (float)x.value; }
// One float to T, rounded to nearest even (as store_f32).
template <typename T>
inline T from_float(float x);
template <>
inline float from_float<float>(float x) {
  return x;
}
template <>
inline bf16 from_float<bf16>(float x) {
  unsigned w = __builtin_bit_cast(unsigned, x);
  w += 0x7fffu + ((w >> 16) & 1u);
  return bf16{(unsigned short)(w >> 16)};
}
template <>
inline fp16 from_float<fp16>(float x) {
  return fp16{(_Float16)x};
}

// Loads n < 16 elements, zero-filling the rest; never touches memory past p + n.
template <typename T>
inline f32x16 load_f32_partial(const T* p, int n) {
  float tmp[kLanes] = {};
  for (int i = 0; i < n; ++i) tmp[i] = to_float(p[i]);
  return load(tmp);
}
template <typename T>
inline void store_f32_partial(T* p, f32x16 v, int n) {
  T tmp[kLanes];
  store_f32(tmp, v);
  for (int i = 0; i < n; ++i) p[i] = tmp[i];
}

inline float reduce_max(f32x16 v) { return __builtin_reduce_max(v); }
inline float reduce_add(f32x16 v) {
  typedef float f32x8 __attribute__((ext_vector_type(8)));
  typedef float f32x4 __attribute__((ext_vector_type(4)));
  f32x8 a = __builtin_shufflevector(v, v, 0, 1, 2, 3, 4, 5, 6, 7) +
            __builtin_shufflevector(v, v, 8, 9, 10, 11, 12, 13, 14, 15);
  f32x4 b = __builtin_shufflevector(a, a, 0, 1, 2, 3) + __builtin_shufflevector(a, a, 4, 5, 6, 7);
  return (b[0] + b[2]) + (b[1] + b[3]);
}

// Plain compare-and-select (one vmaxps / vminps): the elementwise builtins add NaN handling.
inline f32x16 vmax(f32x16 a, f32x16 b) { return a > b ? a : b; }
inline f32x16 vmin(f32x16 a, f32x16 b) { return a < b ? a : b; }

// 2^x for x in log2 units; -inf and x < -127 give 0. Relative error ~2e-7: round-to-nearest
// split, then a degree-6 Taylor polynomial of e^(f ln 2) on |f| <= 0.5.
inline f32x16 exp2(f32x16 x) {
  x = vmin(vmax(x, (f32x16)(-127.0f)), (f32x16)(128.0f));
  f32x16 n = __builtin_elementwise_roundeven(x);
  f32x16 f = (x - n) * 0.69314718055994531f;
  f32x16 p = 1.0f / 720.0f;
  p = p * f + 1.0f / 120.0f;
  p = p * f + 1.0f / 24.0f;
  p = p * f + 1.0f / 6.0f;
  p = p * f + 0.5f;
  p = p * f + 1.0f;
  p = p * f + 1.0f;
  i32x16 bits = (__builtin_convertvector(n, i32x16) + 127) << 23;
  return p * __builtin_bit_cast(f32x16, bits);
}

// tanh(x) = sign(x) (1 - e) / (1 + e), e = exp(-2|x|): absolute error ~1e-7.
inline f32x16 tanh(f32x16 x) {
  f32x16 ax = __builtin_elementwise_abs(x);
  f32x16 e = exp2(ax * (-2.0f * 1.4426950408889634f));
  f32x16 t = (1.0f - e) / (1.0f + e);
  return x < 0.0f ? -t : t;
}

// 2^x for one float (the scalar tails of the softmax).
inline float exp2(float x) { return exp2((f32x16)x)[0]; }

// Transposes a 16 x 16 block of 32-bit elements held in 16 vectors (rows) in place. Each round
// swaps one bit of the row index with the same bit of the column index.
template <int S>
inline void transpose_round(u32x16* r) {
#define FJ_LO(c) (((c)&S) ? 16 + ((c) ^ S) : (c))
#define FJ_HI(c) (((c)&S) ? 16 + (c) : ((c) ^ S))
  for (int i = 0; i < 16; ++i) {
    if (i & S) continue;
    u32x16 a = r[i], b = r[i + S];
    r[i] = __builtin_shufflevector(a, b, FJ_LO(0), FJ_LO(1), FJ_LO(2), FJ_LO(3), FJ_LO(4), FJ_LO(5),
                                   FJ_LO(6), FJ_LO(7), FJ_LO(8), FJ_LO(9), FJ_LO(10), FJ_LO(11),
                                   FJ_LO(12), FJ_LO(13), FJ_LO(14), FJ_LO(15));
    r[i + S] = __builtin_shufflevector(a, b, FJ_HI(0), FJ_HI(1), FJ_HI(2), FJ_HI(3), FJ_HI(4),
                                       FJ_HI(5), FJ_HI(6), FJ_HI(7), FJ_HI(8), FJ_HI(9), FJ_HI(10),
                                       FJ_HI(11), FJ_HI(12), FJ_HI(13), FJ_HI(14), FJ_HI(15));
  }
#undef FJ_LO
#undef FJ_HI
}
inline void transpose16(u32x16* r) {
  transpose_round<8>(r);
  transpose_round<4>(r);
  transpose_round<2>(r);
  transpose_round<1>(r);
}

// One level of the reduction tree: lanes of a and b in groups of 2 H, each group's two halves
// added, a's groups and b's interleaved.
template <int H>
inline f32x16 fold(f32x16 a, f32x16 b) {
#define FJ_LO(i) (((i) / H) % 2 * 16 + (i) / (2 * H) * 2 * H + (i) % H)
#define FJ_HI(i) (FJ_LO(i) + H)
  return __builtin_shufflevector(a, b, FJ_LO(0), FJ_LO(1), FJ_LO(2), FJ_LO(3), FJ_LO(4), FJ_LO(5),
                                 FJ_LO(6), FJ_LO(7), FJ_LO(8), FJ_LO(9), FJ_LO(10), FJ_LO(11),
                                 FJ_LO(12), FJ_LO(13), FJ_LO(14), FJ_LO(15)) +
         __builtin_shufflevector(a, b, FJ_HI(0), FJ_HI(1), FJ_HI(2), FJ_HI(3), FJ_HI(4), FJ_HI(5),
                                 FJ_HI(6), FJ_HI(7), FJ_HI(8), FJ_HI(9), FJ_HI(10), FJ_HI(11),
                                 FJ_HI(12), FJ_HI(13), FJ_HI(14), FJ_HI(15));
#undef FJ_LO
#undef FJ_HI
}

// Sums each of 16 vectors' lanes: lane i of the result is the sum of acc[bitrev4(i)] (a tree of
// 15 folds). The 4-row decode scores (fp32_tiles.h, bf16_dot_tiles.h) feed the dot product meant
// for lane i as acc[kBitrev4[i]], so that lane i holds its sum.
constexpr int kBitrev4[16] = {0, 8, 4, 12, 2, 10, 6, 14, 1, 9, 5, 13, 3, 11, 7, 15};
inline f32x16 reduce16(const f32x16* acc) {
  f32x16 l8[8], l4[4], l2[2];
  for (int i = 0; i < 8; ++i) l8[i] = fold<8>(acc[2 * i], acc[2 * i + 1]);
  for (int i = 0; i < 4; ++i) l4[i] = fold<4>(l8[2 * i], l8[2 * i + 1]);
  for (int i = 0; i < 2; ++i) l2[i] = fold<2>(l4[2 * i], l4[2 * i + 1]);
  return fold<1>(l2[0], l2[1]);
}

// Asks for the lines of [p, p + bytes) in L2 (prefetcht1); never faults.
inline void prefetch_l2(const void* p, int bytes) {
  for (int b = 0; b < bytes; b += 64) __builtin_prefetch((const char*)p + b, 0, 2);
}
// How many K/V rows (tokens) ahead the decode walks prefetch: 8, 16 and 32 measured the same.
constexpr int kPrefetchRows = 16;

// Lanes 4 h .. 4 h + 3 of v (h < n) to dst[h] + at.
inline void store_quads(f32x16 v, float* const* dst, long long at, int n) {
  float out[16];
  store(out, v);
  for (int h = 0; h < 4 && h < n; ++h) __builtin_memcpy(dst[h] + at, out + 4 * h, 16);
}

}  // namespace flashjit_cpu
