// KernelKey: canonicalization, support checks and its three spellings (name, string, JSON). Every
// spelling is driven by the field list in kernel_key.h, so a new flag needs no serializer edits.
#include "flashjit/kernel_key.h"

#include <fmt/format.h>

#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>
#include <string_view>
#include <vector>

#include "codegen/tile_config.h"
#include "flashjit/error.h"

namespace flashjit {
namespace {

struct FlagInfo {
  const char* name;   // field name: "paged_kv"
  std::string token;  // name() token: "pagedkv"
  bool KernelKey::*member;
};

const std::vector<FlagInfo>& flag_table() {
  static const std::vector<FlagInfo> table = [] {
    std::vector<FlagInfo> t;
#define FLASHJIT_FLAG_ROW(n) t.push_back({#n, "", &KernelKey::n});
    FLASHJIT_KEY_FLAGS(FLASHJIT_FLAG_ROW)
#undef FLASHJIT_FLAG_ROW
    for (FlagInfo& f : t) {
      for (const char* c = f.name; *c; ++c) {
        if (*c != '_') f.token += *c;
      }
    }
    return t;
  }();
  return table;
}

constexpr DType kAllDTypes[] = {DType::kFloat32,    DType::kFloat16, DType::kBFloat16,
                                DType::kFloat8E4M3, DType::kInt32,   DType::kInt64};

std::optional<DType> parse_dtype(std::string_view text) {
  for (DType d : kAllDTypes) {
    if (text == dtype_name(d)) return d;
  }
  return std::nullopt;
}

std::vector<std::string> split(const std::string& text, char sep) {
  std::vector<std::string> parts;
  std::string part;
  std::istringstream stream(text);
  while (std::getline(stream, part, sep)) parts.push_back(part);
  if (!text.empty() && text.back() == sep) parts.push_back("");
  return parts;
}

int parse_int(const std::string& text, const std::string& whole) {
  size_t used = 0;
  int value = 0;
  try {
    value = std::stoi(text, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  FLASHJIT_CHECK(used == text.size() && !text.empty())
      << "kernel key '" << whole << "': expected a number, got '" << text << "'";
  return value;
}

// Name tokens are separated by '_', so they carry none ("sm_90a" is spelled "sm90a").
std::string without_underscores(const std::string& text) {
  std::string out;
  for (char c : text)
    if (c != '_') out += c;
  return out;
}

bool starts_with(const std::string& s, std::string_view prefix) {
  return s.size() >= prefix.size() && s.compare(0, prefix.size(), prefix) == 0;
}

}  // namespace

bool Target::has_feature(const std::string& name) const {
  const std::string needle = "+" + name;
  size_t pos = 0;
  while ((pos = features.find(needle, pos)) != std::string::npos) {
    const size_t end = pos + needle.size();
    if ((pos == 0 || features[pos - 1] == ',') && (end == features.size() || features[end] == ','))
      return true;
    pos = end;
  }
  return false;
}

// Rules (each has a test in tests/codegen/kernel_key_test.cpp):
// 1. head_dim_v 0 means "same as head_dim_qk".
// 2. A chunked mask is evaluated by the window machinery: chunked implies local.
// 3. The local mask subsumes causal (causal + window is the window (left, 0)): local clears causal.
// 4. Warps and stages mean nothing on the CPU, head-group blocks nothing on CUDA: reset them.
// 5. Without GQA packing nothing else changes; pack_gqa stays as given (it changes the layout).
// 6. A merge key keeps its op, backend, target, dtypes, head_dim_v and lse; the rest is reset.
KernelKey KernelKey::canonicalize() const {
  KernelKey k = *this;
  if (k.op == KernelOp::kMergeStates) {  // 6. a merge has no mask, layout or tiles
    KernelKey m;
    m.op = k.op;
    m.backend = k.backend;
    m.target = k.target;
    m.dtype_q = m.dtype_kv = k.dtype_q;
    m.dtype_o = k.dtype_o;
    m.head_dim_qk = m.head_dim_v = k.head_dim_v == 0 ? k.head_dim_qk : k.head_dim_v;
    m.lse = k.lse;
    m.block_m = m.block_n = 0;
    return m;
  }
  if (k.head_dim_v == 0) k.head_dim_v = k.head_dim_qk;
  if (k.chunked) k.local = true;
  if (k.local) k.causal = false;
  if (k.backend == Backend::kCpu) {
    k.num_warps = 0;
    k.num_stages = 0;
  } else {
    k.block_h = 1;
  }
  return k;
}

const char* op_name(KernelOp op) { return op == KernelOp::kMergeStates ? "merge" : "fwd"; }

void KernelKey::check_supported() const {
  if (op == KernelOp::kMergeStates) {
    for (auto [dt, name] : {std::pair{dtype_q, "dtype_q (partials)"}, {dtype_o, "dtype_o"}})
      FLASHJIT_CHECK(dt == DType::kFloat32 || dt == DType::kFloat16 || dt == DType::kBFloat16)
          << name << ": expected fp32, fp16 or bf16 for a merge, got " << dtype_name(dt);
    FLASHJIT_CHECK(head_dim_v > 0 && head_dim_v % 8 == 0 && head_dim_v <= 512)
        << "head_dim_v: expected a multiple of 8 in [8, 512], got " << head_dim_v;
    return;
  }
  FLASHJIT_CHECK(head_dim_qk > 0 && head_dim_qk % 8 == 0 && head_dim_qk <= 256)
      << "head_dim_qk: expected a multiple of 8 in [8, 256], got " << head_dim_qk;
  FLASHJIT_CHECK(head_dim_v > 0 && head_dim_v % 8 == 0 && head_dim_v <= 512)
      << "head_dim_v: expected a multiple of 8 in [8, 512], got " << head_dim_v;
  if (backend == Backend::kCpu) {
    FLASHJIT_CHECK(dtype_q == DType::kFloat32 || dtype_q == DType::kFloat16 ||
                   dtype_q == DType::kBFloat16)
        << "dtype_q: expected fp32, fp16 or bf16 on the CPU backend, got " << dtype_name(dtype_q);
  } else {
    FLASHJIT_CHECK(dtype_q == DType::kFloat16 || dtype_q == DType::kBFloat16)
        << "dtype_q: expected fp16 or bf16 on the CUDA backend, got " << dtype_name(dtype_q);
    if (head_dim_v > 256) FLASHJIT_NOT_SUPPORTED() << "head_dim_v above 256 on the CUDA backend";
  }
  FLASHJIT_CHECK(dtype_kv == dtype_q) << "dtype_kv: expected the dtype of q ("
                                      << dtype_name(dtype_q) << "), got " << dtype_name(dtype_kv);
  FLASHJIT_CHECK(dtype_o == dtype_q) << "dtype_o: expected the dtype of q (" << dtype_name(dtype_q)
                                     << "), got " << dtype_name(dtype_o);
  FLASHJIT_CHECK(!(paged_kv && varlen_k)) << "paged_kv and varlen_k cannot be combined";
  for (auto [on, name] : {std::pair{append_kv, "append_kv"}, {leftpad, "leftpad"}}) {
    if (!on) continue;
    FLASHJIT_CHECK(seqused_k) << name
                              << ": expected seqused_k (a KV cache with per-sequence lengths), "
                                 "got seqused_k = false";
    FLASHJIT_CHECK(!varlen_k) << name << ": expected a KV cache (varlen_k = false), got varlen_k";
  }
  FLASHJIT_CHECK(!rotary || append_kv)
      << "rotary: expected append_kv (rotary applies to appended keys), got append_kv = false";
  if (!score_mod_hash.empty()) FLASHJIT_NOT_SUPPORTED() << "score_mod";
  const int max_m = backend == Backend::kCpu ? 256 : 128;
  FLASHJIT_CHECK(block_m > 0 && block_m % 16 == 0 && block_m <= max_m)
      << "block_m: expected a multiple of 16 in [16, " << max_m << "], got " << block_m;
  if (backend == Backend::kCpu) {
    FLASHJIT_CHECK(block_n > 0 && block_n % 32 == 0 && block_n <= 512)
        << "block_n: expected a multiple of 32 in [32, 512], got " << block_n;
  } else {
    FLASHJIT_CHECK(block_n > 0 && block_n % 16 == 0 && block_n <= 128)
        << "block_n: expected a multiple of 16 in [16, 128], got " << block_n;
    const std::string unfit = cuda_tiles_unfit(*this);
    FLASHJIT_CHECK(unfit.empty()) << unfit;
  }
  FLASHJIT_CHECK(block_h >= 1 && block_h <= 16)
      << "block_h: expected a value in [1, 16], got " << block_h;
}

std::string KernelKey::name() const {
  std::string s = fmt::format("fa_{}_{}", op_name(op), backend_name(backend));
  if (backend == Backend::kCuda) {
    s += '-';
    s += without_underscores(target.cpu);
  }
  s += fmt::format("_{}", dtype_name(dtype_q));
  if (dtype_kv != dtype_q) s += fmt::format("_kv{}", dtype_name(dtype_kv));
  if (dtype_o != dtype_q) s += fmt::format("_o{}", dtype_name(dtype_o));
  s += fmt::format("_hd{}", head_dim_qk);
  if (head_dim_v != head_dim_qk) s += fmt::format("x{}", head_dim_v);
  for (const FlagInfo& f : flag_table()) {
    if (this->*f.member) s += "_" + f.token;
  }
  if (!score_mod_hash.empty()) s += "_sm" + score_mod_hash;
  s += fmt::format("_bm{}_bn{}", block_m, block_n);
  if (block_h != 1) s += fmt::format("_bh{}", block_h);
  if (num_warps) s += fmt::format("_w{}", num_warps);
  if (num_stages) s += fmt::format("_s{}", num_stages);
  return s;
}

std::string KernelKey::to_string() const {
  return name() + "@" + target.triple + "@" + target.cpu + "@" + target.features;
}

KernelKey KernelKey::from_string(const std::string& text) {
  const std::vector<std::string> parts = split(text, '@');
  FLASHJIT_CHECK(parts.size() == 4)
      << "kernel key '" << text << "': expected name@triple@cpu@features";
  KernelKey key;
  key.target = Target{parts[1], parts[2], parts[3]};
  const std::vector<std::string> tokens = split(parts[0], '_');
  FLASHJIT_CHECK(tokens.size() >= 5 && tokens[0] == "fa" &&
                 (tokens[1] == "fwd" || tokens[1] == "merge"))
      << "kernel key '" << text << "': expected a name starting with fa_fwd_ or fa_merge_";
  key.op = tokens[1] == "merge" ? KernelOp::kMergeStates : KernelOp::kAttention;
  size_t t = 2;
  const std::string backend_token = tokens[t++];
  if (backend_token == "cpu") {
    key.backend = Backend::kCpu;
  } else if (starts_with(backend_token, "cuda-")) {
    key.backend = Backend::kCuda;
    FLASHJIT_CHECK(backend_token.substr(5) == without_underscores(key.target.cpu))
        << "kernel key '" << text << "': arch in the name differs from the target";
  } else {
    FLASHJIT_CHECK(false) << "kernel key '" << text << "': unknown backend '" << backend_token
                          << "'";
  }
  const std::optional<DType> q = parse_dtype(tokens[t++]);
  FLASHJIT_CHECK(q.has_value()) << "kernel key '" << text << "': unknown dtype";
  key.dtype_q = key.dtype_kv = key.dtype_o = *q;
  bool have_head_dim = false;
  for (; t < tokens.size(); ++t) {
    const std::string& tok = tokens[t];
    bool matched = false;
    for (const FlagInfo& f : flag_table()) {
      if (tok == f.token) {
        key.*f.member = true;
        matched = true;
      }
    }
    if (matched) continue;
    if (starts_with(tok, "kv") && parse_dtype(tok.substr(2))) {
      key.dtype_kv = *parse_dtype(tok.substr(2));
    } else if (starts_with(tok, "o") && parse_dtype(tok.substr(1))) {
      key.dtype_o = *parse_dtype(tok.substr(1));
    } else if (starts_with(tok, "hd")) {
      const size_t x = tok.find('x');
      key.head_dim_qk = parse_int(tok.substr(2, x == std::string::npos ? x : x - 2), text);
      key.head_dim_v =
          x == std::string::npos ? key.head_dim_qk : parse_int(tok.substr(x + 1), text);
      have_head_dim = true;
    } else if (starts_with(tok, "sm")) {
      key.score_mod_hash = tok.substr(2);
    } else if (starts_with(tok, "bm")) {
      key.block_m = parse_int(tok.substr(2), text);
    } else if (starts_with(tok, "bn")) {
      key.block_n = parse_int(tok.substr(2), text);
    } else if (starts_with(tok, "bh")) {
      key.block_h = parse_int(tok.substr(2), text);
    } else if (starts_with(tok, "w")) {
      key.num_warps = parse_int(tok.substr(1), text);
    } else if (starts_with(tok, "s")) {
      key.num_stages = parse_int(tok.substr(1), text);
    } else {
      FLASHJIT_CHECK(false) << "kernel key '" << text << "': unknown token '" << tok << "'";
    }
  }
  FLASHJIT_CHECK(have_head_dim) << "kernel key '" << text << "': no head dim (hd...)";
  return key;
}

void to_json(nlohmann::json& j, const KernelKey& key) {
  j = nlohmann::json{
      {"op", op_name(key.op)},
      {"backend", backend_name(key.backend)},
      {"target",
       {{"triple", key.target.triple}, {"cpu", key.target.cpu}, {"features", key.target.features}}},
      {"dtype_q", dtype_name(key.dtype_q)},
      {"dtype_kv", dtype_name(key.dtype_kv)},
      {"dtype_o", dtype_name(key.dtype_o)},
      {"head_dim_qk", key.head_dim_qk},
      {"head_dim_v", key.head_dim_v},
      {"score_mod_hash", key.score_mod_hash},
      {"block_m", key.block_m},
      {"block_n", key.block_n},
      {"block_h", key.block_h},
      {"num_warps", key.num_warps},
      {"num_stages", key.num_stages}};
  for (const FlagInfo& f : flag_table()) j[f.name] = key.*f.member;
}

void from_json(const nlohmann::json& j, KernelKey& key) {
  try {
    const std::string backend = j.at("backend").get<std::string>();
    FLASHJIT_CHECK(backend == "cpu" || backend == "cuda")
        << "kernel key JSON: unknown backend '" << backend << "'";
    key.backend = backend == "cpu" ? Backend::kCpu : Backend::kCuda;
    const std::string op = j.at("op").get<std::string>();
    FLASHJIT_CHECK(op == "fwd" || op == "merge") << "kernel key JSON: unknown op '" << op << "'";
    key.op = op == "merge" ? KernelOp::kMergeStates : KernelOp::kAttention;
    key.target.triple = j.at("target").at("triple").get<std::string>();
    key.target.cpu = j.at("target").at("cpu").get<std::string>();
    key.target.features = j.at("target").at("features").get<std::string>();
    auto dtype = [&](const char* field) {
      const std::optional<DType> d = parse_dtype(j.at(field).get<std::string>());
      FLASHJIT_CHECK(d.has_value()) << "kernel key JSON: bad " << field;
      return *d;
    };
    key.dtype_q = dtype("dtype_q");
    key.dtype_kv = dtype("dtype_kv");
    key.dtype_o = dtype("dtype_o");
    key.head_dim_qk = j.at("head_dim_qk").get<int>();
    key.head_dim_v = j.at("head_dim_v").get<int>();
    key.score_mod_hash = j.at("score_mod_hash").get<std::string>();
    key.block_m = j.at("block_m").get<int>();
    key.block_n = j.at("block_n").get<int>();
    key.block_h = j.at("block_h").get<int>();
    key.num_warps = j.at("num_warps").get<int>();
    key.num_stages = j.at("num_stages").get<int>();
    for (const FlagInfo& f : flag_table()) key.*f.member = j.at(f.name).get<bool>();
  } catch (const nlohmann::json::exception& e) {
    throw UsageError(std::string("flashjit: kernel key JSON: ") + e.what());
  }
}

size_t KernelKeyHash::operator()(const KernelKey& key) const {
  size_t h = 0;
  auto mix = [&h](size_t v) { h ^= v + 0x9e3779b97f4a7c15ull + (h << 6) + (h >> 2); };
  mix(static_cast<size_t>(key.backend) | static_cast<size_t>(key.op) << 8);
  mix(std::hash<std::string>()(key.target.features));
  mix(std::hash<std::string>()(key.target.cpu));
  mix(static_cast<size_t>(key.dtype_q) | static_cast<size_t>(key.dtype_kv) << 8 |
      static_cast<size_t>(key.dtype_o) << 16);
  mix(static_cast<size_t>(key.head_dim_qk) << 16 | static_cast<size_t>(key.head_dim_v));
  size_t flags = 0;
  for (const FlagInfo& f : flag_table()) flags = flags << 1 | (key.*f.member ? 1 : 0);
  mix(flags);
  mix(std::hash<std::string>()(key.score_mod_hash));
  mix(static_cast<size_t>(key.block_m) << 40 | static_cast<size_t>(key.block_n) << 24 |
      static_cast<size_t>(key.block_h) << 16 | static_cast<size_t>(key.num_warps) << 8 |
      static_cast<size_t>(key.num_stages));
  mix(std::hash<std::string>()(key.target.triple));
  return h;
}

}  // namespace flashjit
