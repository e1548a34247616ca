// Thin wrappers over the PTX the CUDA kernels use (sm_80+): cp.async, ldmatrix, mma.sync
// m16n8k16, packed conversions. Written as inline asm so that a kernel compiles under NVRTC with
// no CUDA headers (cuda_bf16.h alone costs ~40 ms of every compile).
#pragma once

namespace flashjit_cuda {

typedef unsigned int u32;
typedef unsigned short u16;

// Two floats moved as one 8-byte load or store.
struct __align__(8) Float2 {
  float x, y;
};

// Not volatile: the conversion is a pure function of the pointer, so the compiler may share it
// (as volatile asm, every call re-read the CTA's shared-memory window: an S2R per copy).
__device__ __forceinline__ u32 smem_addr(const void* p) {
  u32 r;
  asm("{ .reg .u64 t; cvta.to.shared.u64 t, %1; cvt.u32.u64 %0, t; }\n" : "=r"(r) : "l"(p));
  return r;
}

// A value the compiler cannot see through: derived addresses are then computed where they are
// used instead of being hoisted out of the key loop into one register each.
__device__ __forceinline__ u32 opaque(u32 x) {
  u32 r;
  asm volatile("mov.u32 %0, %1;\n" : "=r"(r) : "r"(x));
  return r;
}

// 16 bytes global -> shared; src_bytes < 16 zero-fills the rest (0: all zeros, nothing read).
__device__ __forceinline__ void cp_async_16(u32 dst, const void* src, int src_bytes) {
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(dst), "l"(src),
               "r"(src_bytes));
}
// L2 cache policies (createpolicy, sm_80+): a 64-bit value that cp_async_16_hint attaches to its
// copy. Not volatile, so that one policy serves every copy of a loop.
__device__ __forceinline__ unsigned long long l2_policy_evict_first() {
  unsigned long long r;
  asm("createpolicy.fractional.L2::evict_first.b64 %0, 1.0;\n" : "=l"(r));
  return r;
}
__device__ __forceinline__ unsigned long long l2_policy_evict_normal() {
  unsigned long long r;
  asm("createpolicy.fractional.L2::evict_normal.b64 %0, 1.0;\n" : "=l"(r));
  return r;
}
// cp_async_16 with an L2 cache policy for the lines it reads.
__device__ __forceinline__ void cp_async_16_hint(u32 dst, const void* src, int src_bytes,
                                                 unsigned long long policy) {
  asm volatile("cp.async.cg.shared.global.L2::cache_hint [%0], [%1], 16, %2, %3;\n" ::"r"(dst),
               "l"(src), "r"(src_bytes), "l"(policy));
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::); }
template <int N>  // until at most N of this thread's newest commit groups are pending
__device__ __forceinline__ void cp_async_wait() {
  asm volatile("cp.async.wait_group %0;\n" ::"n"(N) : "memory");
}
__device__ __forceinline__ void cp_async_wait_all() {
  asm volatile("cp.async.wait_group 0;\n" ::: "memory");
}

__device__ __forceinline__ void ldmatrix_x4(u32& r0, u32& r1, u32& r2, u32& r3, u32 addr) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(r0), "=r"(r1), "=r"(r2), "=r"(r3)
               : "r"(addr));
}
#if __CUDA_ARCH__ >= 900
// Stores four 8x8 b16 matrices held in the mma fragment layout (register i of a lane: row lane / 4,
// columns 2 (lane % 4) and + 1 of matrix i); lanes 8 i .. 8 i + 7 give matrix i's row addresses.
__device__ __forceinline__ void stmatrix_x4(u32 addr, u32 r0, u32 r1, u32 r2, u32 r3) {
  asm volatile("stmatrix.sync.aligned.m8n8.x4.shared.b16 [%0], {%1, %2, %3, %4};\n"
               :
               : "r"(addr), "r"(r0), "r"(r1), "r"(r2), "r"(r3)
               : "memory");
}
#endif
__device__ __forceinline__ void ldmatrix_x4_trans(u32& r0, u32& r1, u32& r2, u32& r3, u32 addr) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(r0), "=r"(r1), "=r"(r2), "=r"(r3)
               : "r"(addr));
}

// D = A B + D for a 16 x 8 tile, K = 16, fp32 accumulation.
template <bool kBf16>
__device__ __forceinline__ void mma_16816(float* d, const u32* a, u32 b0, u32 b1) {
  if constexpr (kBf16) {
    asm("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0, %1, %2, %3}, "
        "{%4, %5, %6, %7}, {%8, %9}, {%0, %1, %2, %3};\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
  } else {
    asm("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0, %1, %2, %3}, "
        "{%4, %5, %6, %7}, {%8, %9}, {%0, %1, %2, %3};\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
  }
}

// d = a b (the accumulator starts at zero): the first k step of a product, so that the
// accumulators need not be cleared first (ptxas reads the zero from RZ).
template <bool kBf16>
__device__ __forceinline__ void mma_16816_first(float* d, const u32* a, u32 b0, u32 b1) {
  const float z = 0.f;
  if constexpr (kBf16) {
    asm("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0, %1, %2, %3}, "
        "{%4, %5, %6, %7}, {%8, %9}, {%10, %10, %10, %10};\n"
        : "=f"(d[0]), "=f"(d[1]), "=f"(d[2]), "=f"(d[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1), "f"(z));
  } else {
    asm("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0, %1, %2, %3}, "
        "{%4, %5, %6, %7}, {%8, %9}, {%10, %10, %10, %10};\n"
        : "=f"(d[0]), "=f"(d[1]), "=f"(d[2]), "=f"(d[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1), "f"(z));
  }
}

// Two floats -> one register of two 16-bit values (lo in the low half), round to nearest even.
template <bool kBf16>
__device__ __forceinline__ u32 pack2(float lo, float hi) {
  u32 r;
  if constexpr (kBf16) {
    asm("cvt.rn.bf16x2.f32 %0, %1, %2;\n" : "=r"(r) : "f"(hi), "f"(lo));
  } else {
    asm("cvt.rn.f16x2.f32 %0, %1, %2;\n" : "=r"(r) : "f"(hi), "f"(lo));
  }
  return r;
}

// One 16-bit value -> float.
template <bool kBf16>
__device__ __forceinline__ float to_float(u16 x) {
  if constexpr (kBf16) {
    return __uint_as_float((u32)x << 16);
  } else {
    float f;
    asm("{ .reg .f16 h; mov.b16 h, %1; cvt.f32.f16 %0, h; }\n" : "=f"(f) : "h"(x));
    return f;
  }
}

// Programmatic dependent launch (sm_90+; no-ops below): a kernel launched with programmatic
// stream serialization may start while its predecessor runs, and waits here before it reads what
// the predecessor writes; the predecessor lets it start early with launch_dependents.
__device__ __forceinline__ void grid_dependency_wait() {
#if __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.wait;\n" ::: "memory");
#endif
}
__device__ __forceinline__ void grid_launch_dependents() {
#if __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.launch_dependents;\n" ::: "memory");
#endif
}

// 2^x on the special-function unit, subnormal results flushed to zero. exp2f() without fast math
// adds a range check and two predicated multiplies around the same instruction; attention weights
// below 2^-126 of the row maximum do not matter.
__device__ __forceinline__ float fast_exp2(float x) {
  float r;
  asm("ex2.approx.ftz.f32 %0, %1;\n" : "=f"(r) : "f"(x));
  return r;
}

__device__ __forceinline__ float neg_inf() { return __int_as_float(0xff800000); }

}  // namespace flashjit_cuda
