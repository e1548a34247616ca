// Shared-memory tile layout of the CUDA forward kernel (flash_fwd.cuh): the warps, stages and
// buffer sizes of a key's tile configuration, and the swizzled addressing of Q/K/V rows.
#pragma once

#include "flashjit/cuda/ptx.cuh"

namespace flashjit_cuda {

template <class Cfg>
struct Traits {
  static constexpr int D = Cfg::kHeadDimQK, DV = Cfg::kHeadDimV;
  static constexpr int Dp = (D + 15) / 16 * 16, DVp = (DV + 15) / 16 * 16;  // mma K granule
  static constexpr int BM = Cfg::kBlockM, BN = Cfg::kBlockN;
  // Warps: BM / 16 along the rows times kSplit along the keys. With kSplit > 1 (decode tiles of
  // one row warp) each key warp takes every kSplit-th key block into its own buffers, and the
  // warps' partial softmax states are merged at the end.
  // Row warps each own kMT m16 tiles (32 rows with kMT = 2 reuse every K/V fragment twice).
  static constexpr int kSplit = BM == 16 ? Cfg::kNumWarps : 1;
  static constexpr int kWarps = Cfg::kNumWarps, kThreads = kWarps * 32;
  static constexpr int kRowWarps = kWarps / kSplit;
  static constexpr int kMT = BM / (16 * kRowWarps);
  // K/V stages: a ring of kNumStages blocks for row warps (1: one K and one V buffer, loaded
  // staggered), one buffer per key warp.
  static constexpr int kStages = Cfg::kNumStages;
  static constexpr bool kBf16 = Cfg::kBf16;
  // Shared-memory rows that are whole 128-byte lines (head dims 64, 128, 192, 256) keep their
  // 16-byte chunks XOR-swizzled by the row (chunk c of row r at c ^ (r % 8) within its line):
  // the 8 rows an ldmatrix phase reads fall into distinct bank groups, and the 8 chunks a quarter
  // warp copies fill one aligned line. Other rows are padded by 16 bytes, which keeps ldmatrix
  // conflict-free, but cp.async then writes a line in 2-3 wavefronts and asks the L2 for 1.5x
  // the sectors (ncu, d256 prefill: 121 M shared wavefronts vs 93 M). Key-warp tiles with 8 warps
  // or fewer keep the padding (the key with all six masking features spilled 8 bytes with
  // swizzled rows).
  static constexpr bool kSwizzle = Dp % 64 == 0 && DVp % 64 == 0 && (kSplit == 1 || kSplit > 8);
  static constexpr int kQStride = kSwizzle ? Dp : Dp + 8, kVStride = kSwizzle ? DVp : DVp + 8;
  static constexpr int kQElems = BM * kQStride, kKElems = BN * kQStride, kVElems = BN * kVStride;
  // The tile's coordinates (kTileBytes) and the rows' key intervals (BM KeyIntervals) sit between
  // Q and the K/V stages: the key loop and the epilogue read them from shared memory rather than
  // keep them in registers, which the accumulators need (128 x 64 d128 tiles spill otherwise).
  static constexpr int kTileBytes = 128;
  static constexpr int kIvBytes = kTileBytes + BM * 8;
  // Column warps (row tiles of one m16 tile a warp, head_dim_v above 128): warp w computes S and
  // the softmax of rows [16 w, 16 w + 16) as usual, but P (bf16) and the rows' rescale factors go
  // through shared memory, and warp w accumulates O of all BM rows for columns [w DVo, w DVo +
  // DVo). Every V fragment then feeds BM / 16 MMAs instead of one. These tiles are bound by
  // shared-memory instructions (halving the V ldmatrix, results aside, ran d256 8-9 % faster):
  // per warp and 64-key block 136 instead of 144 (P stored by stmatrix on sm_90), measured d256
  // +0.5-2 % (H100). NOTE: with a third barrier (P published after the V barrier) it was 1-2 %
  // slower; P goes out before that barrier instead.
  static constexpr bool kColumnWarps = kSplit == 1 && kMT == 1 && kWarps % 2 == 0 && DVp > 128 &&
                                       BN % 64 == 0 && DVp % (16 * kWarps) == 0;
  static constexpr int kMTo = kColumnWarps ? BM / 16 : kMT;                // O m-tiles of a warp
  static constexpr int DVo = kColumnWarps ? DVp / kWarps : DVp;            // O columns of a warp
  static constexpr int kPBytes = kColumnWarps ? BM * BN * 2 + BM * 4 : 0;  // P, a float a row
  static constexpr int kSmemBytes =
      (kQElems + kSplit * kStages * (kKElems + kVElems)) * 2 + kIvBytes + kPBytes;
  static_assert(BM % 16 == 0 && BM <= 128, "block_m: 16 rows per warp, at most 8 warps");
  static_assert(BN % 16 == 0, "block_n must be a multiple of 16");
  static_assert(kSplit > 1 ? kStages == 1 || kStages == 2 : kStages >= 1 && kStages <= 3,
                "num_stages: 1 or 2 for key warps, 1 to 3 for row warps");
  static_assert(D % 8 == 0 && DV % 8 == 0, "head dims must be multiples of 8");
  static_assert(!Cfg::kRotary || Cfg::kAppendKV, "rotary applies to appended keys");
  static_assert(!Cfg::kLeftpad || !Cfg::kVarlenK, "left padding is a KV-cache feature");
  static_assert(DV <= 256, "head_dim_v above 256 does not fit the O accumulators in registers");
  static_assert(kMT >= 1 && kMT * 16 * kRowWarps == BM, "block_m must be 16 x row warps x kMT");
};

// Element offset of 16-byte chunk ch of row r in a tile whose rows are kStride elements apart.
template <class T, int kStride>
__device__ __forceinline__ int tile_offset(int r, int ch) {
  return r * kStride + (T::kSwizzle ? ch ^ (r & 7) : ch) * 8;
}

// Byte offset within a row of logical 16-byte chunk 2 s + h, for a lane whose row is lane % 8
// modulo 8 (every ldmatrix row address here is one); col = lane_col<T>(h, lane).
template <class T>
__device__ __forceinline__ u32 lane_col(int h, int lane) {
  return T::kSwizzle ? (u32)((h ^ (lane & 7)) * 16) : (u32)(h * 16);
}
template <class T>
__device__ __forceinline__ u32 chunk_pair(int s, u32 col) {
  return T::kSwizzle ? (u32)(32 * s) ^ col : (u32)(32 * s) + col;
}

}  // namespace flashjit_cuda
