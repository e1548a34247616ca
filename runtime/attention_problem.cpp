// From a validated problem to a kernel key and run-time parameters; dispatch to the backend.
#include "runtime/attention_problem.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include "codegen/generate_source.h"
#include "codegen/tile_config.h"
#include "flashjit/error.h"
#include "runtime/checks.h"
#include "runtime/config.h"
#include "runtime/strided_fill.h"
#include "templates/fwd_params.h"
#if FLASHJIT_HAVE_CPU_JIT
#include "runtime/cpu_backend.h"
#include "runtime/cpu_target.h"
#endif
#if FLASHJIT_HAVE_CUDA
#include "runtime/cuda_backend.h"
#include "runtime/cuda_context.h"
#include "runtime/cuda_device.h"
#endif

namespace flashjit {

MaskSpec normalize_mask(const AttentionProblem& p) {
  int left = p.window_left, right = p.window_right;
  if (left >= p.seqlen_k - 1) left = -1;
  if (right >= p.seqlen_q - 1) right = -1;
  if (p.causal) right = 0;
  MaskSpec m;
  m.causal = left < 0 && right == 0 && p.attention_chunk == 0;
  m.local = (left >= 0 || right >= 0 || p.attention_chunk > 0) && !m.causal;
  if (m.local) {
    m.left = left < 0 ? flashjit_kernel::kUnbounded : left;
    m.right = right < 0 ? flashjit_kernel::kUnbounded : right;
  }
  return m;
}

namespace {

// Calls row(offset, width) for every run of contiguous elements of the view `t` (in elements).
template <class F>
void for_each_run(const Tensor& t, F row) {
  const int64_t unbounded = std::numeric_limits<int64_t>::max();
  const std::vector<FillRect> rects = *fill_rects(t, unbounded, unbounded);
  for (const FillRect& r : rects)
    for (int64_t y = 0; y < r.height; ++y) row(r.offset + y * r.pitch, r.width);
}

void zero_output(const AttentionProblem& p) {
  // Empty K for the whole call: out = 0 and LSE = +inf (spec 3.4), in every element of both
  // views, as FA3's out.zero_() and lse.fill_().
  const int bytes = dtype_size(p.out.dtype);
  char* out = static_cast<char*>(p.out.data);
  for_each_run(p.out, [&](int64_t at, int64_t n) {
    std::fill(out + at * bytes, out + (at + n) * bytes, char{0});
  });
  if (!p.lse) return;
  float* lse = static_cast<float*>(p.lse->data);
  for_each_run(*p.lse, [&](int64_t at, int64_t n) {
    std::fill(lse + at, lse + at + n, std::numeric_limits<float>::infinity());
  });
}

// A CUDA call without keys fills `t` by the 2D memsets of cuda_fill_rects.
void check_cuda_fill(const Tensor& t, const char* name) {
  FLASHJIT_CHECK(cuda_fill_rects(t).has_value())
      << name << ": expected a layout that at most 1024 two-dimensional memsets fill, got shape "
      << t.shape_string() << " with strides " << checks::strides_string(t)
      << " (not supported; a contiguous one always works)";
}

// The key fields every backend shares (mask, layout and feature flags).
KernelKey base_key(const AttentionProblem& p, const MaskSpec& mask, bool pack) {
  KernelKey key;
  key.dtype_q = key.dtype_kv = key.dtype_o = p.q.dtype;
  key.head_dim_qk = p.head_dim;
  key.head_dim_v = p.head_dim_v;
  key.causal = mask.causal;
  key.local = mask.local;
  key.chunked = p.attention_chunk > 0;
  key.softcap = p.softcap > 0;
  key.sinks = p.sinks.has_value();
  key.paged_kv = p.paged;
  key.varlen_q = p.varlen_q;
  key.varlen_k = p.varlen_k;
  key.seqused_k = p.seqused_k != nullptr;
  key.lse = p.lse.has_value();
  key.pack_gqa = pack;
  key.append_kv = p.k_new.has_value();
  key.leftpad = p.leftpad_k != nullptr;
  key.rotary = p.rotary_dim > 0;
  return key;
}

// What the tile heuristics see of a problem.
TileProblem tile_problem(const AttentionProblem& p, int pack_heads, bool pack) {
  TileProblem tp;
  tp.rows = p.seqlen_q * (pack ? pack_heads : 1);
  tp.head_groups = pack ? p.num_heads / pack_heads : p.num_heads;
  tp.groups_per_kv_head = pack ? p.num_heads / p.num_heads_k / pack_heads : 1;
  tp.batch = p.batch;
  return tp;
}

// The split count of a call: the caller's (at most one per key block), or the heuristic's.
int resolve_num_splits(const AttentionProblem& p, const KernelKey& key, long long tiles, int units,
                       int block_quantum) {
  const long long keys = p.seqlen_k;  // appended keys land inside the capacity
  const int key_blocks =
      static_cast<int>(std::max<long long>(1, (keys + key.block_n - 1) / key.block_n));
  if (p.num_splits > 0) return std::min(p.num_splits, key_blocks);
  return default_num_splits(SplitProblem{tiles, key_blocks, units, block_quantum});
}

// Bytes of the split-KV partials: num_splits x rows x heads x (dv + 1) floats.
size_t split_workspace_bytes(const flashjit_kernel::FwdParams& f, int head_dim_v) {
  return static_cast<size_t>(f.num_splits) * f.accum_rows * (head_dim_v + 1) * sizeof(float);
}

// The partials' layout in a workspace of split_workspace_bytes: out, then LSE.
void point_partials(flashjit_kernel::FwdParams& f, void* workspace, int head_dim_v) {
  f.out_accum = static_cast<float*>(workspace);
  f.lse_accum = f.out_accum + static_cast<int64_t>(f.num_splits) * f.accum_rows * head_dim_v;
}

// The kernel parameters of a problem (pointers are the caller's, on the problem's device).
flashjit_kernel::FwdParams kernel_params(const AttentionProblem& p, const MaskSpec& mask,
                                         const KernelKey& key, int group, bool pack,
                                         int pack_heads) {
  flashjit_kernel::FwdParams f{};
  f.q = p.q.data;
  f.k = p.k.data;
  f.v = p.v.data;
  f.out = p.out.data;
  f.lse = p.lse ? static_cast<float*>(p.lse->data) : nullptr;
  auto strides3 = [](const Tensor& t, bool packed, long long& batch, long long& row,
                     long long& head) {
    batch = packed ? 0 : t.stride(0);
    row = packed ? t.stride(0) : t.stride(1);
    head = packed ? t.stride(1) : t.stride(2);
  };
  strides3(p.q, p.varlen_q, f.q_batch_stride, f.q_row_stride, f.q_head_stride);
  strides3(p.out, p.varlen_q, f.o_batch_stride, f.o_row_stride, f.o_head_stride);
  strides3(p.k, p.varlen_k, f.k_batch_stride, f.k_row_stride, f.k_head_stride);
  strides3(p.v, p.varlen_k, f.v_batch_stride, f.v_row_stride, f.v_head_stride);
  if (p.lse) {
    const Tensor& l = *p.lse;
    f.lse_batch_stride = p.varlen_q ? 0 : l.stride(0);
    f.lse_head_stride = p.varlen_q ? l.stride(0) : l.stride(1);
    f.lse_row_stride = p.varlen_q ? l.stride(1) : l.stride(2);
  }
  f.cu_seqlens_q = p.cu_seqlens_q;
  f.seqused_q = p.seqused_q;
  f.cu_seqlens_k = p.cu_seqlens_k;
  f.seqused_k = p.seqused_k;
  f.cache_batch_idx = p.cache_batch_idx;
  f.page_table = p.page_table;
  f.page_table_stride = p.page_table_stride;
  if (p.sinks) {
    f.sinks = p.sinks->data;
    f.sinks_dtype = p.sinks->dtype == DType::kBFloat16  ? flashjit_kernel::kSinksBFloat16
                    : p.sinks->dtype == DType::kFloat16 ? flashjit_kernel::kSinksFloat16
                                                        : flashjit_kernel::kSinksFloat32;
  }
  f.batch = p.batch;
  f.seqlen_q = p.seqlen_q;
  f.seqlen_k = p.seqlen_k;
  f.num_heads = p.num_heads;
  f.num_heads_k = p.num_heads_k;
  f.group = group;
  f.pack_heads = pack ? pack_heads : 1;
  f.page_size = p.page_size;
  f.max_pages = p.max_pages;
  f.num_pages = p.num_pages;
  f.cache_rows = p.cache_rows;
  f.total_k = static_cast<int>(p.total_k);
  f.total_q = p.total_q;
  f.num_head_groups = pack ? p.num_heads / pack_heads : p.num_heads;
  f.num_head_chunks = (f.num_head_groups + key.block_h - 1) / key.block_h;
  const int64_t m_rows = int64_t{p.seqlen_q} * (pack ? pack_heads : 1);
  f.num_m_blocks = static_cast<int>((m_rows + key.block_m - 1) / key.block_m);
  f.leftpad_k = p.leftpad_k;
  if (p.k_new) {
    f.k_new = p.k_new->data;
    f.v_new = p.v_new->data;
    strides3(*p.k_new, p.cu_seqlens_k_new != nullptr, f.kn_batch_stride, f.kn_row_stride,
             f.kn_head_stride);
    strides3(*p.v_new, p.cu_seqlens_k_new != nullptr, f.vn_batch_stride, f.vn_row_stride,
             f.vn_head_stride);
    f.cu_seqlens_k_new = p.cu_seqlens_k_new;
    f.seqlen_new = p.seqlen_new;
  }
  if (p.rotary_dim > 0) {
    f.rotary_cos = p.rotary_cos->data;
    f.rotary_sin = p.rotary_sin->data;
    f.rotary_seqlens = p.rotary_seqlens;
    f.rotary_dim = p.rotary_dim;
    f.seqlen_ro = static_cast<int>(p.rotary_cos->size(0));
    f.rotary_interleaved = p.rotary_interleaved ? 1 : 0;
  }
  f.num_splits = 1;
  f.accum_rows = (p.varlen_q ? p.total_q : int64_t{p.batch} * p.seqlen_q) * p.num_heads;
  f.window_left = mask.left;
  f.window_right = mask.right;
  f.chunk = p.attention_chunk;
  constexpr double kLog2e = 1.4426950408889634;
  f.score_scale =
      static_cast<float>(p.softcap > 0 ? p.softmax_scale / p.softcap : p.softmax_scale * kLog2e);
  f.softcap_log2 = static_cast<float>(p.softcap * kLog2e);
  return f;
}

#if FLASHJIT_HAVE_CPU_JIT
void prepare_cpu(const AttentionProblem& p, const MaskSpec& mask, int group, bool pack,
                 PreparedCall& call) {
  KernelKey key = base_key(p, mask, pack);
  key.backend = Backend::kCpu;
  key.target = host_cpu_target();
  const int pack_heads = pack ? cpu_pack_heads(key, group, p.seqlen_q) : 1;
  TileProblem tp = tile_problem(p, pack_heads, pack);
  tp.threads = p.options.num_threads > 0 ? p.options.num_threads : cpu_pool_threads();
  tp.splittable = p.num_splits != 1;
  const TileConfig tiles = default_cpu_tiles(key, tp);
  key.block_m = tiles.block_m;
  key.block_n = tiles.block_n;
  key.block_h = tiles.block_h;
  flashjit_kernel::FwdParams f = kernel_params(p, mask, key, group, pack, pack_heads);
  const int64_t work = int64_t{p.batch} * f.num_head_chunks * f.num_m_blocks;
  // Four items a thread where the keys are split (the pool's threads pull items as they finish).
  // Measured, b1 s_k 32k decode on 2 threads, calls interleaved in one process, each against the
  // DRAM read just before it: 2 splits 49-51 % of that read, 8 splits 56 %, 16 splits 55-58 %.
  f.num_splits = resolve_num_splits(p, key, work, 4 * tp.threads, 1);
  key.split_kv = f.num_splits > 1;
  key = key.canonicalize();
  key.check_supported();
  call.cpu.append_items = key.append_kv ? int64_t{p.batch} * p.num_heads_k : 0;
  call.cpu.fwd_items = work * f.num_splits;
  call.cpu.combine_items = key.split_kv ? int64_t{p.batch} * p.seqlen_q : 0;
  call.key = key;
  call.params = f;
  call.workspace_bytes = key.split_kv ? split_workspace_bytes(f, p.head_dim_v) : 0;
}
#endif

#if FLASHJIT_HAVE_CUDA
void prepare_cuda(const AttentionProblem& p, const MaskSpec& mask, int group, bool pack,
                  PreparedCall& call) {
  const int device = p.q.device.index;
  KernelKey key = base_key(p, mask, pack);
  key.backend = Backend::kCuda;
  key.target = Target{"nvptx64-nvidia-cuda", cuda_arch(device), ""};
  TileConfig tiles = default_cuda_tiles(key, tile_problem(p, group, pack));
  const JitConfig& config = jit_config();
  if (config.cuda_block_m > 0) {
    tiles.block_m = config.cuda_block_m;
    tiles.block_n = config.cuda_block_n;
    tiles.num_warps = config.cuda_num_warps;
    tiles.num_stages = config.cuda_num_stages > 0
                           ? config.cuda_num_stages
                           : default_cuda_stages(tiles.block_m, tiles.num_warps);
  }
  key.block_m = tiles.block_m;
  key.block_n = tiles.block_n;
  key.num_warps = tiles.num_warps;
  key.num_stages = tiles.num_stages;
  key = key.canonicalize();
  if (config.cuda_block_m > 0) {
    const std::string unfit = cuda_tiles_unfit(key);
    FLASHJIT_CHECK(unfit.empty()) << "FLASHJIT_CUDA_TILES=" << config.cuda_block_m << ","
                                  << config.cuda_block_n << "," << config.cuda_num_warps << ","
                                  << key.num_stages << " does not fit this call: " << unfit;
  }
  flashjit_kernel::FwdParams f = kernel_params(p, mask, key, group, pack, group);
  // Paged K/V copies step through a page's rows with a 32-bit pitch in bytes
  // (templates/cuda/kv_load.cuh); one rule for every CUDA call keeps it simple.
  for (auto [stride, name] : {std::pair{f.k_row_stride, p.varlen_k ? "k" : "k_cache"},
                              {f.v_row_stride, p.varlen_k ? "v" : "v_cache"}})
    FLASHJIT_CHECK(stride < (int64_t{1} << 31))
        << name << ": expected a stride between keys below 2^31 elements on the CUDA backend, got "
        << stride;
  FLASHJIT_CHECK(p.batch <= 65535)
      << "batch: expected at most 65535 on the CUDA backend, got " << p.batch;
  const long long ctas = int64_t{f.num_m_blocks} * f.num_head_groups * p.batch;
  f.num_splits =
      resolve_num_splits(p, key, ctas, cuda_sm_count(device) - p.sm_margin,
                         cuda_tiles_split_keys(key.block_m, key.num_warps) ? key.num_warps : 1);
  key.split_kv = f.num_splits > 1;
  key = key.canonicalize();
  key.check_supported();
  // Grid limits: x (row blocks x splits) below 2^31, y (head groups) at most 65535.
  FLASHJIT_CHECK(int64_t{f.num_m_blocks} * f.num_splits <= 2147483647)
      << "seqlen_q: expected at most 2^31 - 1 row blocks x splits on the CUDA backend, got "
      << f.num_m_blocks << " x " << f.num_splits << " (block_m " << key.block_m << ")";
  FLASHJIT_CHECK(f.num_head_groups <= 65535)
      << "num_heads: expected at most 65535 head groups on the CUDA backend, got "
      << f.num_head_groups;
  // Causal grids run longest tiles first within sections of about a wave of tiles.
  const int slots = f.num_head_groups * p.batch;
  f.causal_sections = 1;
  if (key.causal && !key.split_kv) {
    FLASHJIT_CHECK(int64_t{f.num_m_blocks} * slots <= 2147483647)
        << "seqlen_q: expected at most 2^31 - 1 causal tiles (row blocks x heads x batch) on the "
           "CUDA backend, got "
        << f.num_m_blocks << " x " << f.num_head_groups << " x " << p.batch;
    const CudaLaunchShape shape = cuda_launch_shape(key);
    CausalOrderProblem order;
    order.slots = slots;
    order.m_blocks = f.num_m_blocks;
    order.resident_ctas =
        cuda_sm_count(device) * cuda_ctas_per_sm(key.target.cpu, shape.smem_bytes, shape.threads);
    order.l2_bytes = cuda_l2_bytes(device);
    // Query heads of one KV head are adjacent slots (without GQA packing) and share its K/V.
    order.kv_bytes_per_slot = int64_t{p.seqlen_k} * (p.head_dim + p.head_dim_v) *
                              dtype_size(key.dtype_kv) / (pack ? 1 : group);
    order.section_slots = config.cuda_causal_section;
    f.causal_sections = cuda_causal_sections(order);
  }
  call.cuda.fwd = CudaGrid{f.num_m_blocks * f.num_splits, f.num_head_groups, p.batch};
  if (key.append_kv)
    call.cuda.append = CudaGrid{std::clamp(p.seqlen_new, 1, 256), p.num_heads_k, p.batch};
  if (key.split_kv)
    call.cuda.combine =
        CudaGrid{static_cast<int>((int64_t{p.seqlen_q} * p.num_heads + 3) / 4), 1, p.batch};
  call.key = key;
  call.params = f;
  call.device = device;
  call.workspace_bytes = key.split_kv ? split_workspace_bytes(f, p.head_dim_v) : 0;
}
#endif

}  // namespace

PreparedCall prepare_attention(const AttentionProblem& p) {
  const JitConfig& config = jit_config();
  PreparedCall call;
  call.on_cuda = p.q.device.type == DeviceType::kCUDA;
#if !FLASHJIT_HAVE_CUDA
  if (call.on_cuda) FLASHJIT_NOT_SUPPORTED() << "CUDA tensors: this build has no CUDA backend";
#endif
#if !FLASHJIT_HAVE_CPU_JIT
  if (!call.on_cuda) FLASHJIT_NOT_SUPPORTED() << "CPU tensors: this build has no CPU backend";
#endif
#if FLASHJIT_HAVE_CUDA
  if (call.on_cuda) check_cuda_problem(p);
#endif
  // CPU index tensors are host memory: checking them costs a few reads per sequence and page, so
  // CPU calls always do it. On CUDA it copies them to the host and waits for the stream, which a
  // captured graph cannot do: opt-in there, and the kernels clamp instead.
  if (!call.on_cuda || p.options.validate || config.validate) {
#if FLASHJIT_HAVE_CUDA
    if (call.on_cuda) {
      validate_index_values_on_host(p);
    } else {
      validate_index_values(p);
    }
#else
    validate_index_values(p);
#endif
  }
  // Row numbers within a sequence (query row x head) are 32-bit in the kernels and their grids.
  FLASHJIT_CHECK(int64_t{p.seqlen_q} * p.num_heads <= 2147483647)
      << (p.varlen_q ? "max_seqlen_q" : "seqlen_q") << " x num_heads: expected at most 2^31 - 1, "
      << "got " << p.seqlen_q << " x " << p.num_heads;
  const int64_t rows = p.varlen_q ? p.total_q : int64_t{p.batch} * p.seqlen_q;
  if (rows == 0 || p.num_heads == 0) return call;  // nothing to compute
  const bool empty_k = p.varlen_k
                           ? p.total_k == 0
                           : (p.paged ? p.num_pages == 0 || p.max_pages == 0 : p.seqlen_k == 0);
  if (empty_k) {
    call.kind = PreparedCall::Kind::kEmptyKeys;
    // The CUDA path fills them by 2D memsets (cuda_fill_empty), a bounded number of them.
    if (call.on_cuda) {
      check_cuda_fill(p.out, "out (a CUDA call without keys)");
      if (p.lse) check_cuda_fill(*p.lse, "softmax_lse (a CUDA call without keys)");
    }
    return call;
  }
  call.kind = PreparedCall::Kind::kKernel;
  const MaskSpec mask = normalize_mask(p);
  const int group = p.num_heads / p.num_heads_k;
  const bool pack = group > 1 && p.pack_gqa.value_or(true);
#if FLASHJIT_HAVE_CUDA
  if (call.on_cuda) prepare_cuda(p, mask, group, pack, call);
#endif
#if FLASHJIT_HAVE_CPU_JIT
  if (!call.on_cuda) prepare_cpu(p, mask, group, pack, call);
#endif
  return call;
}

void load_prepared(const PreparedCall& call, void* stream) {
  if (call.kind != PreparedCall::Kind::kKernel) return;
#if FLASHJIT_HAVE_CUDA
  if (call.on_cuda) return load_cuda_kernel(call.key, stream);
#endif
#if FLASHJIT_HAVE_CPU_JIT
  load_cpu_kernel(call.key);
#endif
  (void)stream;
}

void launch_prepared(const AttentionProblem& p, const PreparedCall& call, void* workspace) {
  if (call.kind == PreparedCall::Kind::kNothing) return;
  if (call.kind == PreparedCall::Kind::kEmptyKeys) {
#if FLASHJIT_HAVE_CUDA
    if (call.on_cuda) return cuda_fill_empty(p.out, p.lse, p.options.stream);
#endif
    return zero_output(p);
  }
  flashjit_kernel::FwdParams f = call.params;
  if (call.workspace_bytes > 0) {
    FLASHJIT_CHECK(workspace != nullptr)
        << "workspace: expected " << call.workspace_bytes << " bytes for " << f.num_splits
        << " key splits, got none";
    point_partials(f, workspace, p.head_dim_v);
  }
#if FLASHJIT_HAVE_CUDA
  if (call.on_cuda) return run_cuda_kernel(call.key, f, call.cuda, p.options.stream);
#endif
#if FLASHJIT_HAVE_CPU_JIT
  run_cpu_kernel(call.key, f, call.cpu, p.options.num_threads);
#endif
}

void run_attention(const AttentionProblem& p) {
#if FLASHJIT_HAVE_CUDA
  const CudaCallContext context(p.q.device, p.options.stream);
#endif
  const PreparedCall call = prepare_attention(p);
  if (call.workspace_bytes == 0) return launch_prepared(p, call, nullptr);
#if FLASHJIT_HAVE_CUDA
  if (call.on_cuda) {
    CudaWorkspace workspace(call.workspace_bytes, call.device, p.options.stream);
    return launch_prepared(p, call, workspace.data());
  }
#endif
  // NOTE: one workspace per thread: calls on other threads never share partials.
  thread_local std::vector<float> workspace;
  workspace.resize((call.workspace_bytes + sizeof(float) - 1) / sizeof(float));
  launch_prepared(p, call, workspace.data());
}

}  // namespace flashjit
