#!/usr/bin/env bash
# A/B timing on the device machine: the bench of .device/build_old (a bundle of the baseline
# commit, made with scripts/build_gpu_bundle.sh and moved there) against .device/build, alternated
# in one call so that both see the same GPU and clocks. Extra arguments go to flashjit_cuda_bench
# (e.g. --prefill-only --d 128). AB_VARIANTS="tag=ENV=VALUE ..." adds runs of the new build with
# extra environment (e.g. "bn32=FLASHJIT_CUDA_TILES=128,32,4,2"); AB_BUILDS="tag=DIR ..." adds
# other bundles (DIR relative to the repository root, laid out like .device/build, e.g. made by
# scripts/build_ab_bundles.sh; tag=DIR@ENV=VALUE runs one with extra environment). Compile rows
# (ms) come from the first round, where each build or variant compiles its own keys.
# Usage: scripts/device_ab.sh [rounds] [bench args...]   Results go to $OUT/ab.jsonl.
set -uo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
out="${OUT:-/tmp/flashjit-out}"
mkdir -p "$out"
rounds="${1:-2}"
shift || true
: >"$out/ab.jsonl"
run_one() {  # tag build [env assignment]
  local tag="$1" build="$2"
  shift 2
  env "$@" "$build/tools/flashjit_cuda_bench" "${bench_args[@]}" 2>>"$out/ab.err" |
    grep '"kind": "\(prefill\|decode\|decode_append\|compile\)"' |
    sed "s/^{/{\"tag\": \"$tag\", /" >>"$out/ab.jsonl"
}
bench_args=("$@")
for ((r = 0; r < rounds; ++r)); do
  [ -x "$root/.device/build_old/tools/flashjit_cuda_bench" ] &&
    run_one old "$root/.device/build_old"
  run_one new "$root/.device/build"
  for b in ${AB_BUILDS:-}; do
    dir="${b#*=}"
    if [[ "$dir" == *@* ]]; then  # tag=DIR@ENV=VALUE: that bundle with extra environment
      run_one "${b%%=*}" "$root/${dir%%@*}" "${dir#*@}"
    else
      run_one "${b%%=*}" "$root/$dir"
    fi
  done
  for v in ${AB_VARIANTS:-}; do
    run_one "${v%%=*}" "$root/.device/build" "${v#*=}"
  done
done
python3 - "$out/ab.jsonl" <<'PY'
import collections, json, sys
rows = collections.OrderedDict()
for line in open(sys.argv[1]):
    r = json.loads(line)
    shape = tuple((k, r[k]) for k in ("kind", "key", "D", "DV", "S", "B", "Sk", "H", "Hk", "page",
                                      "causal", "num_splits")
                  if k in r)
    val = r.get("tflops", r.get("tbps", r.get("compile_ms")))  # compile: first round only
    if "host_us" in r:
        val = f"{val:g} ({r['host_us']:g} us host)"
    rows.setdefault(shape, collections.defaultdict(list))[r["tag"]].append(val)
tags = []
for per in rows.values():
    tags += [t for t in per if t not in tags]
print("| shape | " + " | ".join(tags) + " |")
for shape, per in rows.items():
    name = " ".join(f"{k}={v}" for k, v in shape)
    cells = [" / ".join(x if isinstance(x, str) else f"{x:g}" for x in per.get(t, []))
             for t in tags]
    print(f"| {name} | " + " | ".join(cells) + " |")
PY
