// FlashAttention-2-style forward for NVIDIA GPUs (sm_80 .. sm_90): one CTA = (row block of BM
// query rows, head group, sequence); each warp owns 16 rows. S = Q K^T and O += P V run on
// mma.sync m16n8k16 with ldmatrix operands; K/V blocks stream through two cp.async stages; the
// online softmax lives in registers with exp2 and the scale folded in. Instantiated once per key.
#pragma once

#include "flashjit/attention_math.h"
#include "flashjit/cuda/kv_append.cuh"
#include "flashjit/cuda/kv_load.cuh"
#include "flashjit/cuda/ptx.cuh"
#include "flashjit/cuda/split_combine.cuh"
#include "flashjit/cuda/tile_coords.cuh"
#include "flashjit/cuda/tile_traits.cuh"
#include "flashjit/fwd_params.h"

namespace flashjit_cuda {

using flashjit_kernel::FwdParams;
using flashjit_kernel::kUnbounded;

__device__ __forceinline__ float sink_logit(const FwdParams& p, int hq) {
  if (p.sinks_dtype == flashjit_kernel::kSinksBFloat16)
    return to_float<true>(((const u16*)p.sinks)[hq]);
  if (p.sinks_dtype == flashjit_kernel::kSinksFloat16)
    return to_float<false>(((const u16*)p.sinks)[hq]);
  return ((const float*)p.sinks)[hq];
}

template <class Cfg>
__device__ __forceinline__ void flash_fwd(const FwdParams& p) {
  using T = Traits<Cfg>;
  constexpr int BN = T::BN, Dp = T::Dp, DVp = T::DVp, kMT = T::kMT, kR = 2 * T::kMT;
  constexpr bool kBf16 = T::kBf16;
  extern __shared__ __align__(128) unsigned char smem[];
  u16* sq = (u16*)smem;
  Tile& ts = *reinterpret_cast<Tile*>(sq + T::kQElems);
  KeyInterval* s_iv = reinterpret_cast<KeyInterval*>(sq + T::kQElems + T::kTileBytes / 2);
  u16* sk = reinterpret_cast<u16*>(s_iv + T::BM);
  u16* sv = sk + T::kStages * T::kKElems;
  u16* sp = sv + T::kStages * T::kVElems;                        // column warps: P
  float* s_rowf = reinterpret_cast<float*>(sp + T::BM * T::BN);  // column warps: a float a row
  // Row mt 16 + 8 h + q at (8 h + q) kMTo + mt: a lane's rows of all m-tiles are adjacent.
  auto rowf_index = [](int row) { return (row % 16) * T::kMTo + row / 16; };
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int wm = warp % T::kRowWarps;  // row warp
  const int wg = warp / T::kRowWarps;  // key warp (0 without key splitting)

  if constexpr (Cfg::kSplitKV) grid_launch_dependents();  // the combine waits for completion
  Tile t;
  if (!locate<Cfg>(p, t)) return;

  // Key range of the tile. The masks' bounds never decrease with the query index, so the first
  // and last rows bound every row: keys [n_lo, n_hi) cover all, [max_lo, min_hi) need no mask.
  int i_first, i_last, hq_unused;
  row_coords<Cfg>(p, t, 0, i_first, hq_unused);
  row_coords<Cfg>(p, t, t.nrows - 1, i_last, hq_unused);
  const KeyInterval first = visible_keys<Cfg>(p, i_first, t.lq, t.lk);
  const KeyInterval last = visible_keys<Cfg>(p, i_last, t.lq, t.lk);
  int n_lo = first.lo;
  const int n_hi = last.hi;
  t.full_lo = last.lo;
  t.full_hi = first.hi;
  static_assert(sizeof(Tile) <= T::kTileBytes, "Tile outgrew its shared-memory slot");
  if (threadIdx.x == 0) ts = t;  // read after the key loop's first barrier
  // Decode tiles (key warps) have registers to spare and are latency-bound: they keep theirs.
  const Tile& tk = T::kSplit > 1 ? t : ts;

  // This thread's rows: in m-tile mt, lane / 4 and lane / 4 + 8 (index r = 2 mt + {0, 1}).
  // NOTE: rows are recomputed where needed and their key intervals kept in shared memory, not
  // in registers: registers are what limits the tile size.
  auto row_of = [&](int r) { return (wm * kMT + r / 2) * 16 + lane / 4 + (r % 2) * 8; };
  for (int r = threadIdx.x; r < T::BM; r += T::kThreads) {
    KeyInterval iv{0, 0};
    if (r < t.nrows) {
      int i, hq;
      row_coords<Cfg>(p, t, r, i, hq);
      iv = visible_keys<Cfg>(p, i, t.lq, t.lk);
    }
    s_iv[r] = iv;  // read after the key loop's first barrier
  }

  // Q tile (rows past nrows and the head-dim padding zero-filled).
  const u16* q = (const u16*)p.q;
  constexpr int kQChunks = Dp / 8, kQStep = walk_rows(T::kThreads, kQChunks);
  if constexpr (!Cfg::kPackGqa && !Cfg::kRotary && T::kStages == 1 && T::kSplit == 1 &&
                kQStep > 0 && T::BM % kQStep == 0) {
    // Rows of one query head: each thread keeps one chunk column and walks its rows by a fixed
    // stride (like load_kv), instead of computing every chunk's address (16 per thread at
    // d 256: per-tile work that s = 1k prefill tiles amortize over only 16 key blocks).
    // NOTE: one-stage tiles only: with it two sm_90a d128 keys of two stages (at the register
    // cap) spilled.
    const int ch = threadIdx.x % kQChunks, r0 = threadIdx.x / kQChunks;
    if (kQStep * kQChunks == T::kThreads || threadIdx.x < kQStep * kQChunks) {
      const bool col = ch * 8 < T::D;
      const u16* src = q + t.q_base + (long long)(t.m0 + r0) * p.q_row_stride +
                       (long long)t.hg * p.q_head_stride + ch * 8;
      const long long step = kQStep * p.q_row_stride;
      const u32 c0 = (T::kSwizzle ? ch ^ (r0 & 7) : ch) * 16;
      const u32 dst = smem_addr(sq + r0 * T::kQStride);
#pragma unroll
      for (int i = 0; i < T::BM / kQStep; ++i) {
        const bool valid = col && r0 + i * kQStep < t.nrows;
        const u32 c = T::kSwizzle ? c0 ^ (u32)((i * kQStep) % 8 * 16) : c0;
        cp_async_16(dst + i * kQStep * T::kQStride * 2 + c, valid ? src : q, valid ? 16 : 0);
        src += step;
      }
    }
  } else {
    constexpr int kChunks = kQChunks;
    for (int c = threadIdx.x; c < T::BM * kChunks; c += T::kThreads) {
      const int r = c / kChunks, ch = c % kChunks;
      const bool valid = r < t.nrows && ch * 8 < T::D;
      const u16* src = q;
      if (valid) {
        int i, hq;
        row_coords<Cfg>(p, t, r, i, hq);
        const u16* row =
            q + t.q_base + (long long)i * p.q_row_stride + (long long)hq * p.q_head_stride;
        src = row + ch * 8;
        if constexpr (Cfg::kRotary) {  // rotated through registers (the caller's q is unchanged)
          if (ch * 8 < p.rotary_dim) {
            const int partner = ch + p.rotary_dim / 16;
            Chunk lo = load_chunk(src), hi;
            if (!p.rotary_interleaved && ch * 8 < p.rotary_dim / 2)
              hi = load_chunk(row + partner * 8);
            if (rotate_chunk<kBf16>(p, flashjit_kernel::rotary_query_pos<Cfg>(t.rotary_base, i), ch,
                                    lo, hi)) {
              store_chunk(sq + tile_offset<T, T::kQStride>(r, ch), lo);
              if (!p.rotary_interleaved)
                store_chunk(sq + tile_offset<T, T::kQStride>(r, partner), hi);
            }
            continue;
          }
        }
      }
      cp_async_16(smem_addr(sq + tile_offset<T, T::kQStride>(r, ch)), src, valid ? 16 : 0);
    }
  }
  // The append kernel (launched just before, possibly still running) has written the new rows.
  // Key warps wait only before the first block that holds new rows (below).
  if constexpr (Cfg::kAppendKV && T::kSplit == 1) grid_dependency_wait();
  int nblocks = n_lo < n_hi ? (n_hi - n_lo + BN - 1) / BN : 0;
  if constexpr (Cfg::kSplitKV) {  // this split's share of the key blocks
    int b0, b1;
    flashjit_kernel::split_blocks(nblocks, p.num_splits, tile_split<Cfg>(p), b0, b1);
    n_lo += b0 * BN;
    nblocks = b1 - b0;
  }
  float m[kR], l[kR];
  float o[T::kMTo][T::DVo / 8][4];
#pragma unroll
  for (int r = 0; r < kR; ++r) {
    m[r] = neg_inf();
    l[r] = 0.f;
  }
#pragma unroll
  for (int mt = 0; mt < T::kMTo; ++mt)
#pragma unroll
    for (int d = 0; d < T::DVo / 8; ++d)
      o[mt][d][0] = o[mt][d][1] = o[mt][d][2] = o[mt][d][3] = 0.f;

  // Scores stay unscaled where the scale commutes with the row maximum (see softmax).
  const bool raw_scores = !Cfg::kSoftcap && p.score_scale > 0.f;
  const float exp_scale = raw_scores ? p.score_scale : 1.f;
  // Scores of one key block [n0, n0 + BN) from shared memory k: qk(k) computes S = Q K^T,
  // softmax(n0) masks it and runs the online softmax (O rescaled), scores does both; then
  // accumulate(v) adds P V. process does all three.
  float s[kMT][BN / 8][4];
  // Per-lane shared-memory addresses (bytes); the steps below add compile-time offsets. Column
  // warps (d 192, 256: registers to spare) compute them once before the key loop and keep them
  // (opaque: not rematerialized from the thread index, which cost a d256 block about 60 integer
  // instructions and an S2R wait); other tiles, at the register cap, recompute them per block.
  constexpr bool kKeepLanes = T::kColumnWarps;
  auto keep = [](u32 x) { return kKeepLanes ? opaque(x) : 0u; };
  // Q and K: the lane's address of chunk pair c (c < 4) of each 128-byte line, c ^ the lane's
  // swizzle already applied, so that step kk = 4 a + c adds only the constant 128 a (column warps
  // own one m tile; rows of whole lines).
  u32 q_at[4], k_at[4];
#pragma unroll
  for (int c = 0; c < 4; ++c) {
    q_at[c] = keep(smem_addr(sq) + (wm * 16 + lane % 16) * T::kQStride * 2 +
                   chunk_pair<T>(c, lane_col<T>(lane / 16, lane)));
    k_at[c] = keep((lane % 8 + (lane / 16) * 8) * T::kQStride * 2 +
                   chunk_pair<T>(c, lane_col<T>((lane / 8) % 2, lane)));
  }
  const u32 v_row_kept = keep((lane % 8 + ((lane / 8) % 2) * 8) * T::kVStride * 2);
  const u32 v_col_kept = keep(lane_col<T>(lane / 16, lane));
  // Column warps: this lane's stmatrix row of P (row 16 wm + 8 ((L / 8) % 2) + L % 8, chunk
  // (2 j + L / 16) ^ (L % 8) = ((2 j) ^ (L & 6)) + ((L / 16 ^ L) & 1)), and its rows' rescale
  // factors (rows mt 16 + L / 4 + 8 h).
  const u32 p_row = keep(smem_addr(sp) + (wm * 16 + ((lane / 8) % 2) * 8 + lane % 8) * BN * 2 +
                         (((lane / 16) ^ lane) & 1) * 16);
  const u32 p_col = keep((lane & 6) * 16);
  const float* rowf_lane = s_rowf + (lane / 4) * T::kMTo;
  auto qk = [&](const u16* k) {
    const u32 q_lane = kKeepLanes ? 0u : opaque(smem_addr(sq) + (lane % 16) * T::kQStride * 2);
    const u32 k_lane = kKeepLanes
                           ? smem_addr(k)
                           : opaque(smem_addr(k) + (lane % 8 + (lane / 16) * 8) * T::kQStride * 2);
    const u32 q_col = kKeepLanes ? 0u : lane_col<T>(lane / 16, lane);
    const u32 k_col = kKeepLanes ? 0u : lane_col<T>((lane / 8) % 2, lane);
    // Lane addresses of step kk's Q (m tile mt) and K (key tile n2) fragments.
    auto q_addr = [&](int kk, int mt) {
      if constexpr (kKeepLanes) return q_at[kk % 4] + 128 * (kk / 4);
      return q_lane + ((wm * kMT + mt) * 16) * T::kQStride * 2 + chunk_pair<T>(kk, q_col);
    };
    auto k_addr = [&](int kk, int n2) {
      if constexpr (kKeepLanes)
        return k_lane + k_at[kk % 4] + n2 * 16 * T::kQStride * 2 + 128 * (kk / 4);
      return k_lane + n2 * 16 * T::kQStride * 2 + chunk_pair<T>(kk, k_col);
    };
    // S = Q K^T for the warp's kMT x 16 rows x BN keys; every K fragment feeds kMT tiles. The
    // first k step writes the accumulators (no clearing pass: 2 kMT BN / 8 instructions a block).
    // NOTE: with 32 rows per warp, d <= 64 fully unrolled (4 steps: the next steps' ldmatrix
    // loads overlap the MMAs, H200 d64 +4-7 %), larger d not unrolled, so that one step's A
    // fragments are live at a time: unrolled by 4, d128 measured 3 % slower (docs/PERF.md), and
    // ptxas spills at the 255-register cap for most feature keys. With 16 rows (decode tiles)
    // fully unrolled.
    auto qk_step = [&](int kk, bool first) {  // first: inlined with a constant
      u32 a[kMT][4];
#pragma unroll
      for (int mt = 0; mt < kMT; ++mt)
        ldmatrix_x4(a[mt][0], a[mt][1], a[mt][2], a[mt][3], q_addr(kk, mt));
#pragma unroll
      for (int n2 = 0; n2 < BN / 16; ++n2) {
        u32 b0, b1, b2, b3;
        ldmatrix_x4(b0, b1, b2, b3, k_addr(kk, n2));
#pragma unroll
        for (int mt = 0; mt < kMT; ++mt) {
          if (first) {
            mma_16816_first<kBf16>(s[mt][2 * n2], a[mt], b0, b1);
            mma_16816_first<kBf16>(s[mt][2 * n2 + 1], a[mt], b2, b3);
          } else {
            mma_16816<kBf16>(s[mt][2 * n2], a[mt], b0, b1);
            mma_16816<kBf16>(s[mt][2 * n2 + 1], a[mt], b2, b3);
          }
        }
      }
    };
    qk_step(0, true);
    constexpr int kQkUnroll = kMT == 1 || Dp <= 64 ? Dp / 16 : 1;
#pragma unroll kQkUnroll
    for (int kk = 1; kk < Dp / 16; ++kk) qk_step(kk, false);
  };
  auto softmax = [&](int n0) {
    // Scale (log2 units), softcap, mask; online softmax over the block. With a positive scale and
    // no softcap the raw scores are kept: the maximum commutes with the scale, which is then
    // folded into the exponent's FFMA (one instruction per score instead of two).
    if (!raw_scores) {
#pragma unroll
      for (int mt = 0; mt < kMT; ++mt)
#pragma unroll
        for (int n = 0; n < BN / 8; ++n)
#pragma unroll
          for (int e = 0; e < 4; ++e) {
            float x = s[mt][n][e] * p.score_scale;
            if constexpr (Cfg::kSoftcap) x = tanhf(x) * p.softcap_log2;
            s[mt][n][e] = x;
          }
    }
    if (!(n0 >= tk.full_lo && n0 + BN <= tk.full_hi)) {  // a block some row sees only in part
#pragma unroll
      for (int r = 0; r < kR; ++r) {
        const KeyInterval iv = s_iv[row_of(r)];
#pragma unroll
        for (int n = 0; n < BN / 8; ++n)
#pragma unroll
          for (int e = 0; e < 2; ++e) {
            const int key = n0 + n * 8 + 2 * (lane % 4) + e;
            if (key < iv.lo || key >= iv.hi) s[r / 2][n][2 * (r % 2) + e] = neg_inf();
          }
      }
    }
    float mx[kR];
#pragma unroll
    for (int r = 0; r < kR; ++r) mx[r] = neg_inf();
#pragma unroll
    for (int mt = 0; mt < kMT; ++mt)
#pragma unroll
      for (int n = 0; n < BN / 8; ++n)
#pragma unroll
        for (int e = 0; e < 4; ++e) mx[2 * mt + e / 2] = fmaxf(mx[2 * mt + e / 2], s[mt][n][e]);
    float alpha[kR], use[kR];
#pragma unroll
    for (int r = 0; r < kR; ++r) {
      mx[r] = fmaxf(mx[r], __shfl_xor_sync(0xffffffffu, mx[r], 1));
      mx[r] = fmaxf(mx[r], __shfl_xor_sync(0xffffffffu, mx[r], 2));
      const float m_new = fmaxf(m[r], mx[r] * exp_scale);
      use[r] = m_new == neg_inf() ? 0.f : m_new;
      alpha[r] = fast_exp2(m[r] - use[r]);
      m[r] = m_new;
      l[r] *= alpha[r];
    }
#pragma unroll
    for (int mt = 0; mt < kMT; ++mt)
#pragma unroll
      for (int n = 0; n < BN / 8; ++n)
#pragma unroll
        for (int e = 0; e < 4; ++e) {
          s[mt][n][e] = fast_exp2(fmaf(s[mt][n][e], exp_scale, -use[2 * mt + e / 2]));
          l[2 * mt + e / 2] += s[mt][n][e];
        }
    if constexpr (T::kColumnWarps) {
      // P and the rows' rescale factors go to shared memory; every warp rescales its columns of
      // O after the barrier in accumulate. P's 16-byte chunks are XOR-swizzled by the row.
#if __CUDA_ARCH__ >= 900
      // Matrices (rows 0-7 | 8-15) x (columns of key tiles 2 j | 2 j + 1): lane L gives row
      // 16 wm + 8 ((L / 8) % 2) + L % 8 of key tile 2 j + L / 16.
#pragma unroll
      for (int j = 0; j < BN / 16; ++j)
        stmatrix_x4(p_row + ((2 * j * 16) ^ p_col), pack2<kBf16>(s[0][2 * j][0], s[0][2 * j][1]),
                    pack2<kBf16>(s[0][2 * j][2], s[0][2 * j][3]),
                    pack2<kBf16>(s[0][2 * j + 1][0], s[0][2 * j + 1][1]),
                    pack2<kBf16>(s[0][2 * j + 1][2], s[0][2 * j + 1][3]));
#else
      const int r0 = row_of(0);
#pragma unroll
      for (int n = 0; n < BN / 8; ++n) {
        const int c = ((n ^ (r0 & 7)) * 8) + 2 * (lane % 4);  // rows r0 and r0 + 8: same swizzle
        *(u32*)(sp + r0 * BN + c) = pack2<kBf16>(s[0][n][0], s[0][n][1]);
        *(u32*)(sp + (r0 + 8) * BN + c) = pack2<kBf16>(s[0][n][2], s[0][n][3]);
      }
#endif
      if (lane % 4 == 0) {
        s_rowf[rowf_index(row_of(0))] = alpha[0];
        s_rowf[rowf_index(row_of(1))] = alpha[1];
      }
    } else {
      // O is rescaled only when some row's maximum moved (after the first blocks it rarely
      // does): decode tiles are bound by instruction issue, and this is DV / 2 multiplies a lane.
      bool moved = false;
#pragma unroll
      for (int r = 0; r < kR; ++r) moved |= alpha[r] != 1.f;
      if (__any_sync(0xffffffffu, moved)) {
#pragma unroll
        for (int mt = 0; mt < kMT; ++mt)
#pragma unroll
          for (int d = 0; d < DVp / 8; ++d) {
            o[mt][d][0] *= alpha[2 * mt];
            o[mt][d][1] *= alpha[2 * mt];
            o[mt][d][2] *= alpha[2 * mt + 1];
            o[mt][d][3] *= alpha[2 * mt + 1];
          }
      }
    }
  };
  auto scores = [&](const u16* k, int n0) {
    qk(k);
    softmax(n0);
  };
  auto accumulate = [&](const u16* v, bool published = false) {
    const u32 v_lane =
        kKeepLanes ? smem_addr(v) + v_row_kept
                   : opaque(smem_addr(v) + (lane % 8 + ((lane / 8) % 2) * 8) * T::kVStride * 2);
    const u32 v_col = kKeepLanes ? v_col_kept : lane_col<T>(lane / 16, lane);
    if constexpr (T::kColumnWarps) {
      if (!published) __syncthreads();  // every row's P and rescale factor are in shared memory
      float alpha[2][T::kMTo];          // rows mt 16 + lane / 4 + 8 h: contiguous in s_rowf
      bool moved = false;
#pragma unroll
      for (int h = 0; h < 2; ++h)
#pragma unroll
        for (int mt = 0; mt < T::kMTo; mt += 2) {
          const Float2 a = *reinterpret_cast<const Float2*>(rowf_lane + 8 * h * T::kMTo + mt);
          alpha[h][mt] = a.x;
          alpha[h][mt + 1] = a.y;
          moved |= a.x != 1.f || a.y != 1.f;
        }
      if (__any_sync(0xffffffffu, moved)) {
#pragma unroll
        for (int mt = 0; mt < T::kMTo; ++mt)
#pragma unroll
          for (int d = 0; d < T::DVo / 8; ++d) {
            o[mt][d][0] *= alpha[0][mt];
            o[mt][d][1] *= alpha[0][mt];
            o[mt][d][2] *= alpha[1][mt];
            o[mt][d][3] *= alpha[1][mt];
          }
      }
      // A fragments of P: row mt 16 + lane % 16, chunk 2 kk + lane / 16 (swizzled by lane % 8).
      const u32 p_lane = smem_addr(sp) + (lane % 16) * BN * 2;
#pragma unroll
      for (int kk = 0; kk < BN / 16; ++kk) {
        u32 a[T::kMTo][4];
#pragma unroll
        for (int mt = 0; mt < T::kMTo; ++mt)
          ldmatrix_x4(a[mt][0], a[mt][1], a[mt][2], a[mt][3],
                      p_lane + mt * 16 * BN * 2 + ((2 * kk + lane / 16) ^ (lane & 7)) * 16);
#pragma unroll
        for (int d2 = 0; d2 < T::DVo / 16; ++d2) {
          u32 b0, b1, b2, b3;
          ldmatrix_x4_trans(
              b0, b1, b2, b3,
              v_lane + kk * 16 * T::kVStride * 2 + chunk_pair<T>(wm * (T::DVo / 16) + d2, v_col));
#pragma unroll
          for (int mt = 0; mt < T::kMTo; ++mt) {
            mma_16816<kBf16>(o[mt][2 * d2], a[mt], b0, b1);
            mma_16816<kBf16>(o[mt][2 * d2 + 1], a[mt], b2, b3);
          }
        }
      }
    } else {
      // O += P V: the S accumulators of two key tiles are the A operand of one 16-key step.
#pragma unroll
      for (int kk = 0; kk < BN / 16; ++kk) {
        u32 a[kMT][4];
#pragma unroll
        for (int mt = 0; mt < kMT; ++mt) {
          a[mt][0] = pack2<kBf16>(s[mt][2 * kk][0], s[mt][2 * kk][1]);
          a[mt][1] = pack2<kBf16>(s[mt][2 * kk][2], s[mt][2 * kk][3]);
          a[mt][2] = pack2<kBf16>(s[mt][2 * kk + 1][0], s[mt][2 * kk + 1][1]);
          a[mt][3] = pack2<kBf16>(s[mt][2 * kk + 1][2], s[mt][2 * kk + 1][3]);
        }
#pragma unroll
        for (int d2 = 0; d2 < DVp / 16; ++d2) {
          u32 b0, b1, b2, b3;
          ldmatrix_x4_trans(b0, b1, b2, b3,
                            v_lane + kk * 16 * T::kVStride * 2 + chunk_pair<T>(d2, v_col));
#pragma unroll
          for (int mt = 0; mt < kMT; ++mt) {
            mma_16816<kBf16>(o[mt][2 * d2], a[mt], b0, b1);
            mma_16816<kBf16>(o[mt][2 * d2 + 1], a[mt], b2, b3);
          }
        }
      }
    }
  };
  auto process = [&](const u16* k, const u16* v, int n0) {
    scores(k, n0);
    accumulate(v);
  };

  if constexpr (T::kSplit == 1 && T::kStages == 1) {
    // One K and one V buffer, staggered (FlashAttention-2's order): V of block blk loads during
    // its Q K^T, K of block blk + 1 during its softmax and P V. Half the shared memory of two
    // stages, so that two CTAs fit on an SM where the head dim is large. (With K issued after
    // the softmax, d256 spent 11 % of its stall samples waiting for K at the loop's barrier.)
    // NOTE: one loop whose last pass ends the tile; for a tile without key blocks its first
    // barrier is the one that publishes the tile to the epilogue (before: a loop over the blocks
    // and an extra barrier after it). Same operations, d256 prefill 1.5-3 % faster (H200).
    if (nblocks > 0) load_kv<Cfg, T::kThreads, kLoadK>(p, t, n_lo, n_hi, sk, sv, threadIdx.x);
    cp_async_commit();
    for (int blk = 0;;) {
      const bool in_block = blk < nblocks;
      const int n0 = n_lo + blk * BN;
      cp_async_wait_all();  // K of block blk (and Q) has landed
      __syncthreads();      // ... for every thread; all warps are done with V of block blk - 1
      if (in_block) {
        load_kv<Cfg, T::kThreads, kLoadV>(p, tk, n0, n_hi, sk, sv, threadIdx.x);
        cp_async_commit();
        qk(sk);
        // Column warps publish P before the barrier, which then also makes every row's P visible.
        if constexpr (T::kColumnWarps) softmax(n0);
        cp_async_wait_all();  // V of block blk has landed
        __syncthreads();      // ... for every thread; all warps are done with K of block blk
      }
      if (in_block && blk + 1 < nblocks)
        load_kv<Cfg, T::kThreads, kLoadK>(p, tk, n0 + BN, n_hi, sk, sv, threadIdx.x);
      cp_async_commit();
      if (!in_block) break;
      if constexpr (!T::kColumnWarps) softmax(n0);
      accumulate(sv, T::kColumnWarps);
      if (++blk == nblocks) break;
    }
  } else if constexpr (T::kSplit == 1) {
    constexpr int S = T::kStages;
    // One commit group per block, empty past the last: block blk is group blk (+1 for Q's).
#pragma unroll
    for (int st = 0; st < S - 1; ++st) {
      if (st < nblocks)
        load_kv<Cfg, T::kThreads>(p, t, n_lo + st * BN, n_hi, sk + st * T::kKElems,
                                  sv + st * T::kVElems, threadIdx.x);
      cp_async_commit();
    }
    for (int blk = 0; blk < nblocks; ++blk) {
      const int n0 = n_lo + blk * BN;
      const int stage = blk % S;
      cp_async_wait<S - 2>();  // block blk has landed
      __syncthreads();         // ... for every thread; all warps are done with block blk - 1
      const int next = blk + S - 1, next_stage = next % S;  // next_stage held block blk - 1
      if (next < nblocks)
        load_kv<Cfg, T::kThreads>(p, tk, n_lo + next * BN, n_hi, sk + next_stage * T::kKElems,
                                  sv + next_stage * T::kVElems, threadIdx.x);
      cp_async_commit();
      process(sk + stage * T::kKElems, sv + stage * T::kVElems, n0);
    }
    if (nblocks == 0) __syncthreads();  // the epilogue reads the tile from shared memory
  } else {
    static_assert(kMT == 1, "key-split warps own one m-tile");
    // Key warps: warp wg takes blocks wg, wg + kSplit, ... into its own buffers.
    constexpr int S = T::kStages;
    auto buffer = [&](int i) { return sk + (wg * S + i % S) * (T::kKElems + T::kVElems); };
    // With an append, blocks of old keys load while the append kernel still runs (it writes only
    // keys [lk_old, lk)); a warp waits for it before its first block that holds new keys, and
    // before the epilogue in any case, so that this grid completes after the append does.
    // NOTE: this assumes a sequence's appended rows are no other sequence's old rows, as FA3's
    // kernel (which appends and attends per tile) does.
    bool appended = !Cfg::kAppendKV;
    auto await_append = [&](int n0) {
      if (!appended && n0 + BN > tk.lk_old) {
        grid_dependency_wait();
        appended = true;
      }
    };
    cp_async_commit();  // Q
    // Block i of this warp is key block wg + i kSplit. Its loads have one call site, so that the
    // paged address walk is inlined once (the serving decode key compiles 0.1 s faster). The
    // first block's loads go out before the wait for Q: one DRAM round trip less before the first
    // scores (decode is latency-bound at small batch). With two stages block i + 1 loads while
    // block i is processed; with one, block i loads just before.
    const int mine = wg < nblocks ? (nblocks - wg + T::kSplit - 1) / T::kSplit : 0;
    auto block_keys = [&](int i) { return n_lo + (wg + i * T::kSplit) * BN; };
    constexpr int kFirst = S == 2 ? -1 : 0;
    for (int i = kFirst;; ++i) {
      const int j = S == 2 ? i + 1 : i;
      if (j < mine) {
        await_append(block_keys(j));
        load_kv<Cfg, 32>(p, tk, block_keys(j), n_hi, buffer(j), buffer(j) + T::kKElems, lane);
      }
      cp_async_commit();
      if (i == kFirst) {
        cp_async_wait<1>();  // Q has landed (block j may still be in flight) ...
        __syncthreads();     // ... for every warp
      }
      if (i < 0) continue;
      if (i >= mine) break;
      if constexpr (S == 2)
        cp_async_wait<1>();  // block i has landed
      else
        cp_async_wait_all();
      __syncwarp();
      process(buffer(i), buffer(i) + T::kKElems, block_keys(i));
      __syncwarp();  // the next block overwrites the buffers
    }
    // The append kernel completes before this grid does (the epilogue merges the warps' states).
    if (!appended) grid_dependency_wait();
  }

  // Epilogue: row sums across the quad, sinks, normalization, output and LSE.
  u16* out = (u16*)p.out;
  auto accum_row = [&](int i, int hq) {  // split-KV partials: row (q row) * h + hq
    const long long row0 =
        Cfg::kVarlenQ ? flashjit_kernel::packed_q_row0(p, tk.b) : (long long)tk.b * p.seqlen_q;
    return (row0 + i) * p.num_heads + hq;
  };
  // Row `row` with maximum mr and sum lr (its final state): 1 / l with the sink folded in, and
  // the LSE, written (where write_lse) where the call wants it (or the split's partial LSE).
  auto finish = [&](int row, float mr, float lr, float& inv, bool write_lse) {
    int i, hq;
    row_coords<Cfg>(p, tk, row, i, hq);
    float mf = mr, o_scale = 1.f;
    if constexpr (Cfg::kSinks) {
      // A sequence with no keys keeps LSE -inf (spec 3.4); split-KV counts the sink in split 0.
      if (tk.lk > 0 && tile_split<Cfg>(p) == 0) {
        const float sink = sink_logit(p, hq) * 1.4426950408889634f;
        mf = fmaxf(sink, mr);
        o_scale = exp2f(mr - mf);
        lr = lr * o_scale + exp2f(sink - mf);
      }
    }
    inv = lr > 0.f ? o_scale / lr : 0.f;
    const float lse = lr > 0.f ? (mf + log2f(lr)) * 0.69314718055994531f : neg_inf();
    if (!write_lse) return;
    if constexpr (Cfg::kSplitKV) {
      p.lse_accum[tile_split<Cfg>(p) * p.accum_rows + accum_row(i, hq)] = lse;
    } else if constexpr (Cfg::kLse) {
      p.lse[tk.lse_base + (long long)hq * p.lse_head_stride + (long long)i * p.lse_row_stride] =
          lse;
    }
  };
  // Row r of this lane (below nrows), from the lane's own state.
  auto finish_row = [&](int r, float& inv) { finish(row_of(r), m[r], l[r], inv, lane % 4 == 0); };
  // Where O row `row` goes: its fp32 partial row (split-KV, for the combine entry) or its row of
  // out; put() stores columns col, col + 1 there.
  auto row_dst = [&](int row, float*& prow, u16*& orow) {
    int i, hq;
    row_coords<Cfg>(p, tk, row, i, hq);
    prow = nullptr;
    orow = nullptr;
    if constexpr (Cfg::kSplitKV)
      prow = p.out_accum + (tile_split<Cfg>(p) * p.accum_rows + accum_row(i, hq)) * T::DV;
    else
      orow = out + tk.o_base + (long long)i * p.o_row_stride + (long long)hq * p.o_head_stride;
  };
  auto put = [&](float* prow, u16* orow, int col, float x, float y) {
    if (col >= T::DV) return;
    if constexpr (Cfg::kSplitKV) {
      prow[col] = x;
      prow[col + 1] = y;
    } else {
      *(u32*)(orow + col) = pack2<kBf16>(x, y);
    }
  };
  // Tiles of row warps or column warps (not split-KV, rows of whole 128-byte lines) send out
  // through shared memory (the K/V buffers, free after the key loop) as 16-byte chunks of rows:
  // at d 256 16 stmatrix and 16 row stores a thread instead of 64 4-byte stores to eight rows each.
  constexpr bool kStagedO = T::kSplit == 1 && !Cfg::kSplitKV && T::kSwizzle &&
                            T::BM * DVp <= T::kStages * (T::kKElems + T::kVElems);
  u16* so = sk;  // row r's 16-byte chunk c at (c ^ (r % 8)), as K and V
  // Rows [row0, row0 + 16) of one m-tile of O, column chunks [chunk0, chunk0 + DVo / 8), scaled
  // by inv0 (row row0 + lane / 4) and inv1 (8 rows further), to so.
  auto stage_mtile = [&](int row0, int chunk0, const float(&om)[T::DVo / 8][4], float inv0,
                         float inv1) {
#if __CUDA_ARCH__ >= 900
    // Matrices (rows 0-7 | 8-15) x (column chunks 2 j | 2 j + 1), as P in softmax.
    const u32 o_row = smem_addr(so) + (row0 + ((lane / 8) % 2) * 8 + lane % 8) * DVp * 2;
#pragma unroll
    for (int j = 0; j < T::DVo / 16; ++j)
      stmatrix_x4(o_row + ((chunk0 + 2 * j + lane / 16) ^ (lane & 7)) * 16,
                  pack2<kBf16>(om[2 * j][0] * inv0, om[2 * j][1] * inv0),
                  pack2<kBf16>(om[2 * j][2] * inv1, om[2 * j][3] * inv1),
                  pack2<kBf16>(om[2 * j + 1][0] * inv0, om[2 * j + 1][1] * inv0),
                  pack2<kBf16>(om[2 * j + 1][2] * inv1, om[2 * j + 1][3] * inv1));
#else
    const int r0 = row0 + lane / 4;  // rows r0 and r0 + 8: the same swizzle
#pragma unroll
    for (int d = 0; d < T::DVo / 8; ++d) {
      const int c = ((chunk0 + d) ^ (r0 & 7)) * 8 + 2 * (lane % 4);
      *(u32*)(so + r0 * DVp + c) = pack2<kBf16>(om[d][0] * inv0, om[d][1] * inv0);
      *(u32*)(so + (r0 + 8) * DVp + c) = pack2<kBf16>(om[d][2] * inv1, om[d][3] * inv1);
    }
#endif
  };
  // After a barrier: so's rows below nrows to out. Each thread keeps one chunk column and steps
  // over the rows; out needs only 4-byte alignment (the API's rule), so 16-byte stores go where
  // the pointer and strides allow them.
  auto copy_out = [&]() {
    constexpr int kOChunks = DVp / 8, kStep = walk_rows(T::kThreads, kOChunks);
    static_assert(!kStagedO || (kStep > 0 && T::BM % kStep == 0), "out rows: whole passes");
    const bool vec16 =
        (((unsigned long long)p.out |
          (unsigned long long)(p.o_row_stride | p.o_head_stride | p.o_batch_stride) * 2) &
         15) == 0;
    const int c = threadIdx.x % kOChunks, r0 = threadIdx.x / kOChunks;
    if ((kStep * kOChunks < T::kThreads && threadIdx.x >= kStep * kOChunks) || c * 8 >= T::DV)
      return;
    const int rows = tk.nrows;
#pragma unroll
    for (int i = 0; i < T::BM / kStep; ++i) {
      const int row = r0 + i * kStep;
      if (row >= rows) break;
      const Chunk chunk = *reinterpret_cast<const Chunk*>(so + row * DVp + (c ^ (row & 7)) * 8);
      float* prow;
      u16* orow;
      row_dst(row, prow, orow);
      u16* dst = orow + c * 8;
      if (vec16) {
        store_chunk(dst, chunk);
      } else {
#pragma unroll
        for (int e = 0; e < 4; ++e)
          reinterpret_cast<u32*>(dst)[e] = (u32)chunk.e[2 * e] | (u32)chunk.e[2 * e + 1] << 16;
      }
    }
  };
  if constexpr (T::kSplit > 1) {
    // Key warps: every warp's state (row maxima and sums, O) goes to shared memory, then each
    // thread merges one (row, column pair) over the warps and finishes it. O moves in passes of
    // the rows the K/V buffers hold (one pass for decode: GQA 4, one token fills 4 of 16 rows).
    // NOTE: warp 0 merging the other warps' states in turn cost 8 % of a batch-1 decode (H100:
    // 1.38 vs 1.27 TB/s with the merge skipped), mostly in the latency of that chain.
    // Space (the K/V buffers): (m, l) of every warp's rows, then O rows of every warp, padded
    // by 8 floats so that the 8-byte stores of 8 rows fall into distinct banks. A 16-key buffer
    // holds far more than one row a warp, so every tile fits.
    constexpr int kOStride = DVp + 8, kMlFloats = T::kSplit * T::BM * 2;
    constexpr int kRowsFit = (T::kSplit * T::kStages * (T::kKElems + T::kVElems) / 2 - kMlFloats) /
                             (T::kSplit * kOStride);
    constexpr int kPassRows = kRowsFit < T::BM ? kRowsFit : T::BM;
    static_assert(kPassRows >= 1, "the K/V buffers must hold one merged row per warp");
    Float2* s_ml = reinterpret_cast<Float2*>(sk);           // [warp][row]
    float* s_o = reinterpret_cast<float*>(sk) + kMlFloats;  // [warp][row - r0][kOStride]
#pragma unroll
    for (int r = 0; r < 2; ++r) {
      l[r] += __shfl_xor_sync(0xffffffffu, l[r], 1);
      l[r] += __shfl_xor_sync(0xffffffffu, l[r], 2);
    }
    // (The row count is read from the shared tile: a register held across the key loop for it
    // made the 16-warp serving key spill.)
    const int rows = ts.nrows;
    __syncthreads();  // every warp is done with its K/V buffers
    if (lane % 4 == 0) {
      s_ml[wg * T::BM + row_of(0)] = Float2{m[0], l[0]};
      s_ml[wg * T::BM + row_of(1)] = Float2{m[1], l[1]};
    }
    for (int r0 = 0; r0 < rows; r0 += kPassRows) {
      if (r0 > 0) __syncthreads();  // the previous pass is read
#pragma unroll
      for (int h = 0; h < 2; ++h) {
        const int rr = row_of(h) - r0;
        if (rr >= 0 && rr < kPassRows && row_of(h) < rows) {
          float* dst = s_o + (wg * kPassRows + rr) * kOStride + 2 * (lane % 4);
#pragma unroll
          for (int d = 0; d < DVp / 8; ++d)
            *reinterpret_cast<Float2*>(dst + d * 8) = Float2{o[0][d][2 * h], o[0][d][2 * h + 1]};
        }
      }
      __syncthreads();
      constexpr int kPairs = T::DV / 2;
      const int n_items = (rows - r0 < kPassRows ? rows - r0 : kPassRows) * kPairs;
      for (int item = threadIdx.x; item < n_items; item += T::kThreads) {
        const int rr = item / kPairs, col = item % kPairs * 2, row = r0 + rr;
        float mx = neg_inf();
#pragma unroll
        for (int w = 0; w < T::kSplit; ++w) mx = fmaxf(mx, s_ml[w * T::BM + row].x);
        const float use = mx == neg_inf() ? 0.f : mx;
        float lr = 0.f, ox = 0.f, oy = 0.f;
#pragma unroll
        for (int w = 0; w < T::kSplit; ++w) {
          const Float2 ml = s_ml[w * T::BM + row];
          const Float2 x =
              *reinterpret_cast<const Float2*>(s_o + (w * kPassRows + rr) * kOStride + col);
          const float sc = fast_exp2(ml.x - use);
          lr += ml.y * sc;
          ox += x.x * sc;
          oy += x.y * sc;
        }
        float inv;
        finish(row, mx, lr, inv, col == 0);
        float* prow;
        u16* orow;
        row_dst(row, prow, orow);
        put(prow, orow, col, ox * inv, oy * inv);
      }
    }
  } else if constexpr (T::kColumnWarps) {
    // Row owners finish their rows and publish 1 / l; then every warp writes its columns of all
    // rows.
    __syncthreads();  // every warp has read the last block's rescale factors
#pragma unroll
    for (int r = 0; r < kR; ++r) {
      l[r] += __shfl_xor_sync(0xffffffffu, l[r], 1);
      l[r] += __shfl_xor_sync(0xffffffffu, l[r], 2);
      float inv = 0.f;
      if (row_of(r) < tk.nrows) finish_row(r, inv);
      if (lane % 4 == 0) s_rowf[rowf_index(row_of(r))] = inv;
    }
    __syncthreads();
    if constexpr (kStagedO) {
#pragma unroll
      for (int mt = 0; mt < T::kMTo; ++mt)
        stage_mtile(mt * 16, wm * (T::DVo / 8), o[mt], s_rowf[rowf_index(mt * 16 + lane / 4)],
                    s_rowf[rowf_index(mt * 16 + lane / 4 + 8)]);
      __syncthreads();
      copy_out();
    } else {
#pragma unroll
      for (int mt = 0; mt < T::kMTo; ++mt)
#pragma unroll
        for (int h = 0; h < 2; ++h) {
          const int row = mt * 16 + lane / 4 + 8 * h;
          if (row >= tk.nrows) continue;
          const float inv = s_rowf[rowf_index(row)];
          float* prow;
          u16* orow;
          row_dst(row, prow, orow);
#pragma unroll
          for (int d = 0; d < T::DVo / 8; ++d)
            put(prow, orow, wm * T::DVo + d * 8 + 2 * (lane % 4), o[mt][d][2 * h] * inv,
                o[mt][d][2 * h + 1] * inv);
        }
    }
  } else if constexpr (kStagedO) {
    float inv[kR];
#pragma unroll
    for (int r = 0; r < kR; ++r) {
      l[r] += __shfl_xor_sync(0xffffffffu, l[r], 1);
      l[r] += __shfl_xor_sync(0xffffffffu, l[r], 2);
      inv[r] = 0.f;
      if (row_of(r) < tk.nrows) finish_row(r, inv[r]);
    }
    __syncthreads();  // every warp is done with the last block's V
#pragma unroll
    for (int mt = 0; mt < kMT; ++mt)
      stage_mtile((wm * kMT + mt) * 16, 0, o[mt], inv[2 * mt], inv[2 * mt + 1]);
    __syncthreads();
    copy_out();
  } else {
#pragma unroll
    for (int r = 0; r < kR; ++r) {
      l[r] += __shfl_xor_sync(0xffffffffu, l[r], 1);
      l[r] += __shfl_xor_sync(0xffffffffu, l[r], 2);
      if (row_of(r) >= tk.nrows) continue;
      float inv;
      finish_row(r, inv);
      float* prow;
      u16* orow;
      row_dst(row_of(r), prow, orow);
#pragma unroll
      for (int d = 0; d < T::DVo / 8; ++d)
        put(prow, orow, d * 8 + 2 * (lane % 4), o[r / 2][d][2 * (r % 2)] * inv,
            o[r / 2][d][2 * (r % 2) + 1] * inv);
    }
  }
}

}  // namespace flashjit_cuda
