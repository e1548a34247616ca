// The declarative sweeps shared by the CPU and CUDA suites (spec section 7, CPU-sized): axis lists
// crossed one or two at a time at level 1, dtype x head dim x mask x lengths at level 2.
#include "reference/sweep_cases.h"

#include <algorithm>
#include <cstdlib>
#include <random>
#include <set>
#include <string>
#include <utility>

namespace flashjit::testing {
namespace {

SweepTarget g_target;

const std::vector<std::pair<int, int>> kHeadDims = {{64, 64},   {80, 80},   {96, 96},   {128, 128},
                                                    {192, 192}, {256, 256}, {192, 128}, {64, 512}};
const std::vector<std::pair<int, int>> kSeqlens = {{1, 1},       {239, 1}, {799, 3},  {113, 203},
                                                   {1023, 1024}, {3, 513}, {128, 217}};
// MHA, GQA, MQA, and GQA 8 (a CPU decode tile packs half of its query heads: cpu_pack_heads).
const std::vector<std::pair<int, int>> kHeads = {{4, 4}, {6, 2}, {4, 1}, {8, 1}};

enum class Mask { kNone, kCausal, kWindow, kCausalWindow, kChunk, kSoftcap, kSinks };
const std::vector<Mask> kMasks = {Mask::kNone,  Mask::kCausal,  Mask::kWindow, Mask::kCausalWindow,
                                  Mask::kChunk, Mask::kSoftcap, Mask::kSinks};

void apply(Mask m, AttentionCase& c) {
  switch (m) {
    case Mask::kNone:
      break;
    case Mask::kCausal:
      c.causal = true;
      break;
    case Mask::kWindow:
      c.window_left = c.seqlen_k / 3;
      c.window_right = c.seqlen_q / 4;
      break;
    case Mask::kCausalWindow:
      c.causal = true;
      c.window_left = c.seqlen_k / 5 + 1;
      break;
    case Mask::kChunk:
      c.causal = true;
      c.attention_chunk = c.seqlen_k / 3 + 1;
      break;
    case Mask::kSoftcap:
      c.softcap = 0.8;  // small enough that tanh saturates on the random scores
      break;
    case Mask::kSinks:
      c.sinks = true;
      break;
  }
}

// Cheap cases stay cheap: the float64 reference costs b * h * s_q * s_k * (d + dv).
AttentionCase base(DType dt, std::pair<int, int> hd, std::pair<int, int> seq, uint64_t seed) {
  AttentionCase c;
  c.device = g_target.device;
  if (std::find(g_target.dtypes.begin(), g_target.dtypes.end(), dt) == g_target.dtypes.end())
    dt = g_target.dtypes.front();
  c.dtype = dt;
  c.head_dim = hd.first;
  c.head_dim_v = hd.second;
  c.seqlen_q = seq.first;
  c.seqlen_k = seq.second;
  c.num_heads = 6;
  c.num_heads_k = 2;
  const long long work = 1LL * seq.first * seq.second * (hd.first + hd.second);
  c.batch = work > 20'000'000 ? 1 : (work > 2'000'000 ? 2 : 3);
  c.seed = seed;
  return c;
}

// Rotates through the layouts so every axis meets every layout somewhere.
void layout(int i, AttentionCase& c) {
  switch (i % 5) {
    case 0:
      c.api = Api::kVarlen;
      c.random_lengths = true;
      break;
    case 1:
      c.api = Api::kKvcache;
      c.page_size = 16;
      c.cache_seqlens = true;
      c.random_lengths = true;
      break;
    case 2:
      c.api = Api::kKvcache;
      break;
    case 3:
      c.api = Api::kKvcache;
      c.page_size = 3;
      c.cache_batch_idx = true;
      break;
    case 4:
      c.api = Api::kVarlen;
      c.strided = true;
      c.seqused = true;
      break;
  }
}

std::vector<AttentionCase> kvcache_update_cases();

std::vector<AttentionCase> level1_cases() {
  const std::vector<DType>& kDTypes = g_target.dtypes;
  std::vector<AttentionCase> cases;
  int n = 0;
  // dtype x head dim.
  for (DType dt : kDTypes)
    for (auto hd : kHeadDims) {
      if (hd.second > g_target.max_head_dim_v) continue;
      AttentionCase c = base(dt, hd, {113, 203}, ++n);
      c.causal = n % 2 == 0;
      layout(n, c);
      cases.push_back(c);
    }
  // Decode tiles x head dim (one query, GQA packed: the CUDA backend's key-warp tiles), split
  // counts rotating: K/V loads of head dims whose 16-byte columns do not divide a warp's lanes.
  for (auto hd : kHeadDims) {
    if (hd.second > g_target.max_head_dim_v) continue;
    AttentionCase c = base(DType::kBFloat16, hd, {1, 333}, ++n);
    layout(n, c);
    const int splits[] = {1, 3, 0};
    c.num_splits = splits[n % 3];
    cases.push_back(c);
  }
  // dtype x mask.
  for (DType dt : kDTypes)
    for (Mask m : kMasks) {
      ++n;
      AttentionCase c = base(dt, {128, 128}, kSeqlens[n % kSeqlens.size()], n);
      if (c.seqlen_q * c.seqlen_k > 200'000) c = base(dt, {128, 128}, {128, 217}, n);
      apply(m, c);
      layout(n, c);
      cases.push_back(c);
    }
  // dtype x lengths.
  for (DType dt : kDTypes)
    for (auto seq : kSeqlens) {
      AttentionCase c = base(dt, {64, 64}, seq, ++n);
      apply(kMasks[n % kMasks.size()], c);
      layout(n, c);
      cases.push_back(c);
    }
  // heads x packing.
  for (auto heads : kHeads)
    for (std::optional<bool> pack :
         {std::optional<bool>(), std::optional<bool>(false), std::optional<bool>(true)}) {
      AttentionCase c = base(DType::kBFloat16, {128, 128}, {1, 300}, ++n);
      c.num_heads = heads.first;
      c.num_heads_k = heads.second;
      c.pack_gqa = pack;
      c.batch = 4;
      layout(n, c);
      cases.push_back(c);
      c.seqlen_q = 77;
      c.causal = true;
      c.seed = ++n;
      cases.push_back(c);
    }
  // Paged layouts with every page size, decode and extend.
  for (int page : {1, 3, 16, 64})
    for (DType dt : {DType::kBFloat16, DType::kFloat32}) {
      AttentionCase c = base(dt, {128, 128}, {page == 64 ? 5 : 1, 257}, ++n);
      c.page_size = page;
      c.cache_seqlens = true;
      c.random_lengths = true;
      c.cache_batch_idx = page % 2 == 1;
      c.num_heads = 8;
      c.batch = 4;
      c.causal = true;
      cases.push_back(c);
    }
  // Edge semantics.
  {
    AttentionCase c = base(DType::kFloat32, {64, 64}, {40, 90}, ++n);
    c.window_left = 7;  // (L, -1): right unbounded
    cases.push_back(c);
    c.window_left = -1;
    c.window_right = 5;  // (-1, R)
    c.seed = ++n;
    cases.push_back(c);
    c.window_right = -1;
    c.attention_chunk = 16;  // bidirectional within chunks, s_q > s_k below
    c.seqlen_q = 90;
    c.seqlen_k = 40;
    c.seed = ++n;
    cases.push_back(c);
    c.attention_chunk = 0;
    c.causal = true;  // rows before the first key see nothing: LSE -inf, out 0
    c.seed = ++n;
    cases.push_back(c);
    c.sinks = true;  // ... and with sinks: out 0, LSE = sink
    c.seed = ++n;
    cases.push_back(c);
    c.sinks = false;
    c.causal = false;
    c.softmax_scale = 0.37;
    c.seed = ++n;
    cases.push_back(c);
    // A negative scale: the maximum of the raw scores is then not that of the scaled ones (the
    // CUDA kernel scales before its softmax there).
    c.softmax_scale = -0.25;
    c.causal = true;
    c.seed = ++n;
    cases.push_back(c);
    c.causal = false;
    c.softmax_scale.reset();
    c.lse = false;
    c.seed = ++n;
    cases.push_back(c);
  }
  {
    AttentionCase c = base(DType::kBFloat16, {128, 128}, {64, 64}, ++n);
    c.api = Api::kKvcache;
    c.varlen_q = true;  // kvcache with cu_seqlens_q
    c.random_lengths = true;
    c.page_size = 16;
    c.causal = true;
    cases.push_back(c);
    c.api = Api::kVarlen;  // zero-length keys with sinks: LSE stays -inf
    c.varlen_q = false;
    c.page_size = 0;
    c.sinks = true;
    c.seed = ++n;
    cases.push_back(c);
    c.sinks = false;
    c.softcap = 5;
    c.window_left = 10;
    c.window_right = 3;
    c.seed = ++n;
    cases.push_back(c);
  }
  // No keys in the whole call: out 0 and LSE +inf in every element of both views, strided ones
  // included (spec 3.4).
  for (Api api : {Api::kKvcache, Api::kVarlen})
    for (bool strided : {false, true}) {
      AttentionCase c = base(DType::kBFloat16, {64, 64}, {5, 0}, ++n);
      c.api = api;
      c.strided = strided;
      cases.push_back(c);
    }
  // The same with sinks: the sink changes neither (spec 3.4). No queries at all (total_q == 0):
  // nothing to write, and no error.
  for (Api api : {Api::kKvcache, Api::kVarlen}) {
    AttentionCase c = base(DType::kBFloat16, {64, 64}, {5, 0}, ++n);
    c.api = api;
    c.sinks = true;
    cases.push_back(c);
    c = base(DType::kBFloat16, {64, 64}, {0, 40}, ++n);
    c.api = api;
    cases.push_back(c);
  }
  // A window wider than the cache and the queries is no window (spec 3.3), so the queries rotate
  // at one position (spec 4.1): the tables need only the rows of the cache. Fixed lengths put
  // cache_seqlens one below the capacity.
  {
    AttentionCase c = base(DType::kBFloat16, {64, 64}, {4, 24}, ++n);
    c.api = Api::kKvcache;
    c.seqlen_new = 1;
    c.rotary_fraction = 1;
    c.window_right = 10;
    cases.push_back(c);
  }
  // More new keys than query rows under a window or a chunk: every new key is written, also those
  // no query row sees (issue 4; the reference kernel may skip them).
  for (int variant = 0; variant < 2; ++variant) {
    AttentionCase c = base(DType::kBFloat16, {64, 64}, {2, 96}, ++n);
    c.api = Api::kKvcache;
    c.seqlen_new = 16;
    c.random_lengths = true;
    c.rotary_fraction = 0.5;
    if (variant == 0) {
      c.window_left = 2;
      c.window_right = 0;
    } else {
      c.page_size = 4;
      c.causal = true;
      c.attention_chunk = 4;
    }
    cases.push_back(c);
  }
  // Sinks with more than 64 query heads (one sink a head, spec 7.5).
  {
    AttentionCase c = base(DType::kBFloat16, {64, 64}, {33, 70}, ++n);
    c.num_heads = 80;
    c.num_heads_k = 8;
    c.sinks = true;
    c.causal = true;
    cases.push_back(c);
    for (DType sinks_dtype : {DType::kFloat16, DType::kFloat32}) {  // beyond FA3's bf16
      c.sinks_dtype = sinks_dtype;
      c.num_heads = 6;
      c.num_heads_k = 2;
      c.seed = ++n;
      cases.push_back(c);
    }
  }
  // The split heuristic with SMs left to others (sm_margin, CUDA): fewer units, other splits.
  {
    AttentionCase c = base(DType::kBFloat16, {128, 128}, {1, 2000}, ++n);
    c.api = Api::kKvcache;
    c.batch = 1;
    c.num_heads = 8;
    c.cache_seqlens = true;
    c.random_lengths = true;
    c.num_splits = 0;
    c.sm_margin = 100;
    cases.push_back(c);
  }
  for (const AttentionCase& c : kvcache_update_cases()) cases.push_back(c);
  return cases;
}

// The kvcache-update grid of spec section 7.2, CPU-sized: every axis value several times, values
// assigned round-robin with different periods so that they meet in many combinations.
std::vector<AttentionCase> kvcache_update_cases() {
  const std::vector<std::pair<int, int>> pairs = {{1, 128},   {1, 339},  {3, 1024},  {64, 800},
                                                  {64, 256},  {3, 799},  {64, 2048}, {16, 20000},
                                                  {128, 128}, {256, 512}};
  const std::vector<std::pair<int, int>> heads = {{6, 6}, {6, 1}, {6, 3}};
  const int pages[] = {0, 1, 4, 16, 128};
  const double fractions[] = {0.0, 0.5, 1.0};
  std::vector<AttentionCase> cases;
  int n = 5000;
  for (auto seq : pairs)
    for (int variant = 0; variant < 4; ++variant) {
      ++n;
      AttentionCase c = base(DType::kBFloat16, {128, 128}, seq, n);
      c.api = Api::kKvcache;
      c.num_heads = heads[n % 3].first;
      c.num_heads_k = heads[n % 3].second;
      const long long work = 1LL * seq.first * seq.second;
      c.batch = work > 200'000 ? 2 : 5;
      c.cache_seqlens = true;
      c.random_lengths = true;
      const bool new_kv = n % 4 != 3;
      if (new_kv) {
        c.seqlen_new = seq.first;
        c.ragged_new = n % 2 == 1;  // L_new random in [0, L_q] (cu_seqlens_k_new)
        c.rotary_fraction = fractions[(n / 2) % 3];
        c.rotary_interleaved = n % 3 != 0;
        c.rotary_seqlens = c.rotary_fraction > 0 && n % 7 == 0;
      }
      switch (n % 3) {
        case 1:
          c.causal = true;
          break;
        case 2:
          c.window_left = seq.second / 4;
          c.window_right = n % 2 ? 0 : -1;
          if (n % 5 == 0) c.attention_chunk = seq.second / 3 + 1;
          break;
        default:
          break;
      }
      c.page_size = pages[n % 5];
      c.leftpad = n % 3 == 1;
      c.cache_batch_idx = n % 4 == 2;
      c.varlen_q = n % 5 == 3;
      const int splits[] = {1, 3, 0};
      c.num_splits = splits[(n / 3) % 3];
      cases.push_back(c);
    }
  return cases;
}

std::vector<AttentionCase> level2_cases() {
  const std::vector<DType>& kDTypes = g_target.dtypes;
  std::vector<AttentionCase> cases;
  int n = 1000;
  for (DType dt : kDTypes)
    for (auto hd : kHeadDims)
      if (hd.second <= g_target.max_head_dim_v)
        for (Mask m : kMasks)
          for (auto seq : kSeqlens) {
            AttentionCase c = base(dt, hd, seq, ++n);
            apply(m, c);
            layout(n, c);
            cases.push_back(c);
          }
  return cases;
}

// One case with every axis drawn from rng, within what run_case can build: appends fit the cache,
// and the float64 reference stays under about 60 M multiply-adds.
AttentionCase random_case(std::mt19937_64& rng, uint64_t seed) {
  auto pick = [&](int n) { return static_cast<int>(rng() % static_cast<uint64_t>(n)); };
  auto coin = [&](int percent) { return pick(100) < percent; };
  AttentionCase c;
  c.device = g_target.device;
  c.seed = seed;
  c.dtype = g_target.dtypes[pick(static_cast<int>(g_target.dtypes.size()))];
  std::vector<std::pair<int, int>> dims;
  for (auto hd : kHeadDims)
    if (hd.second <= g_target.max_head_dim_v) dims.push_back(hd);
  const auto hd = dims[pick(static_cast<int>(dims.size()))];
  c.head_dim = hd.first;
  c.head_dim_v = hd.second;
  const std::pair<int, int> heads[] = {{4, 4}, {6, 2}, {4, 1}, {8, 1}, {8, 2}, {12, 3}};
  const auto hh = heads[pick(6)];
  c.num_heads = hh.first;
  c.num_heads_k = hh.second;
  const int shape = pick(10);
  if (shape < 4) {  // decode (a few queries for speculative decoding)
    c.seqlen_q = coin(75) ? 1 : 2 + pick(4);
    c.seqlen_k = 1 + pick(900);
  } else if (shape < 7) {  // extend: a chunk of queries after a longer prefix
    c.seqlen_q = 2 + pick(64);
    c.seqlen_k = c.seqlen_q + pick(600);
  } else {  // prefill, either side longer
    c.seqlen_q = 1 + pick(300);
    c.seqlen_k = 1 + pick(400);
  }
  c.api = coin(35) ? Api::kVarlen : Api::kKvcache;
  c.random_lengths = coin(70);
  if (c.api == Api::kVarlen) {
    c.seqused = coin(30);
  } else {
    const int pages[] = {0, 0, 1, 3, 16, 64};
    c.page_size = pages[pick(6)];
    c.cache_seqlens = coin(60);
    c.cache_batch_idx = coin(30);
    c.varlen_q = coin(25);
    c.leftpad = coin(25);
    if (coin(40)) {
      c.seqlen_new = 1 + pick(c.seqlen_q);
      c.ragged_new = coin(40);
      const double fractions[] = {0.0, 0.5, 1.0};
      c.rotary_fraction = fractions[pick(3)];
      c.rotary_interleaved = coin(50);
      c.rotary_seqlens = c.rotary_fraction > 0 && coin(30);
      c.seqlen_k = std::max(c.seqlen_k, c.seqlen_q + c.seqlen_new);  // room for the append
    }
  }
  c.causal = coin(45);
  if (coin(25)) {
    c.window_left = coin(70) ? pick(c.seqlen_k) : -1;
    c.window_right = c.causal ? -1 : (coin(50) ? pick(c.seqlen_q + 1) : -1);
  }
  if (coin(12)) c.attention_chunk = 1 + pick(c.seqlen_k);
  const double softcaps[] = {0.8, 5, 30};
  if (coin(15)) c.softcap = softcaps[pick(3)];
  c.sinks = coin(20);
  c.lse = coin(80);
  c.strided = coin(20);
  const int pack = pick(3);
  if (pack > 0) c.pack_gqa = pack == 2;
  const int splits[] = {-1, 1, 2, 3, 0};
  if (const int s = splits[pick(5)]; s >= 0) c.num_splits = s;
  if (coin(10)) c.softmax_scale = coin(50) ? 0.37 : -0.25;
  // The reference costs b * h * s_q * s_k * (d + dv).
  const long long per_seq =
      1LL * c.num_heads * (c.seqlen_k + c.seqlen_new) * (hd.first + hd.second);
  while (c.seqlen_q > 1 && per_seq * c.seqlen_q > 60'000'000) c.seqlen_q /= 2;
  c.seqlen_new = std::min(c.seqlen_new, c.seqlen_q);
  const long long work = per_seq * c.seqlen_q;
  c.batch = work > 20'000'000 ? 1 : (work > 4'000'000 ? 2 : 1 + pick(4));
  return c;
}

std::vector<AttentionCase> smoke_cases() {
  const std::vector<DType>& kDTypes = g_target.dtypes;
  std::vector<AttentionCase> cases;
  for (DType dt : kDTypes) {
    AttentionCase c = base(dt, {64, 64}, {16, 16}, 1);
    cases.push_back(c);
  }
  return cases;
}

}  // namespace

std::vector<AttentionCase> random_cases(const SweepTarget& target, int count, uint64_t seed) {
  g_target = target;
  std::vector<AttentionCase> cases;
  std::set<std::string> names;
  for (int i = 0; i < count; ++i) {
    std::mt19937_64 rng(seed * 1000003 + static_cast<uint64_t>(i));
    AttentionCase c = random_case(rng, seed * 1000003 + static_cast<uint64_t>(i));
    if (names.insert(c.name()).second) cases.push_back(c);
  }
  return cases;
}

int random_case_count(int fallback) {
  const char* env = std::getenv("FLASHJIT_RANDOM_CASES");
  return env && *env ? std::atoi(env) : fallback;
}

uint64_t random_case_seed(uint64_t fallback) {
  const char* env = std::getenv("FLASHJIT_RANDOM_SEED");
  return env && *env ? std::strtoull(env, nullptr, 10) : fallback;
}

std::vector<AttentionCase> random_sweep(const SweepTarget& target, bool planned) {
  if (test_level() < 1) return {};
  std::vector<AttentionCase> cases =
      random_cases(target, random_case_count(48), random_case_seed(1));
  for (AttentionCase& c : cases) c.planned = planned;
  return cases;
}

int test_level() {
  const char* env = std::getenv("FLASHJIT_TEST_LEVEL");
  return env && *env ? std::atoi(env) : FLASHJIT_TEST_LEVEL;
}

std::vector<AttentionCase> sweep_cases(const SweepTarget& target, int level) {
  g_target = target;
  const std::vector<AttentionCase> all =
      level == 0 ? smoke_cases() : (level == 1 ? level1_cases() : level2_cases());
  // A dtype the target lacks falls back to its first one, which can repeat a case: keep one.
  std::vector<AttentionCase> unique;
  std::set<std::string> names;
  for (const AttentionCase& c : all)
    if (names.insert(c.name()).second) unique.push_back(c);
  return unique;
}

}  // namespace flashjit::testing
