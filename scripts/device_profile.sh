#!/usr/bin/env bash
# Runs on the device machine (docs/DEVICE.md): ncu profiles of flashjit's prefill kernel and of
# PyTorch SDPA-flash (FlashAttention-2) on one shape, side by side, at the GPU's own clocks.
# Usage: scripts/device_profile.sh D S   (batch 16384 / S, heads 2048 / D, bf16, not causal)
#    or: scripts/device_profile.sh step   (the decode step with append + rotary, B=1 s_k 8k: each
#        kernel of two consecutive steps, to $OUT/ncu_step.txt)
# The full reports go to $OUT/ncu_flashjit.txt and $OUT/ncu_flash.txt; a summary is printed.
set -uo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
out="${OUT:-/tmp/flashjit-out}"
mkdir -p "$out"
d="${1:-128}" s="${2:-1024}"
ncu="$(command -v ncu || echo /usr/local/cuda/bin/ncu)"
sections=(--section SpeedOfLight --section Occupancy --section WarpStateStats
  --section InstructionStats --section LaunchStats --section MemoryWorkloadAnalysis)
if [ "$d" = step ]; then
  # The bench's first append shape is B=1 s_k 8k; past its first call and warm-ups, three
  # consecutive kernels are one step (append, attention, combine). ncu serializes them, so the
  # durations leave out the overlap that programmatic launches give.
  "$ncu" --clock-control none "${sections[@]}" -k regex:flashjit --launch-skip 30 \
    --launch-count 6 "$root/.device/build/tools/flashjit_cuda_bench" --append-only \
    >"$out/ncu_step.txt" 2>&1
  grep -E "^  [a-zA-Z_].*\(|Duration|Grid Size|Block Size|Registers Per|Achieved Occupancy|DRAM Throughput|Memory Throughput|Warp Cycles Per Issued|Waves Per SM" \
    "$out/ncu_step.txt" | head -80
  exit 0
fi
# The bench's --quick prefill runs s = 1024 only; the third launch of the non-causal kernel is
# past the first call and the warm-ups.
[ "$s" = 1024 ] || echo "note: flashjit's side always runs s=1024 (the bench's --quick shape)"
"$ncu" --clock-control none "${sections[@]}" -k regex:flashjit_fwd --launch-skip 2 \
  --launch-count 1 "$root/.device/build/tools/flashjit_cuda_bench" --prefill-only --quick \
  --d "$d" >"$out/ncu_flashjit.txt" 2>&1
sdpa="$(mktemp --suffix=.py)"  # the SDPA-flash driver (not a result: kept out of $OUT)
trap 'rm -f "$sdpa"' EXIT
cat >"$sdpa" <<'PY'
import sys, torch
from torch.nn.attention import SDPBackend, sdpa_kernel
d, s = int(sys.argv[1]), int(sys.argv[2])
b, h = 16384 // s, 2048 // d
q, k, v = (torch.randn(b, h, s, d, device="cuda", dtype=torch.bfloat16) for _ in range(3))
with sdpa_kernel(SDPBackend.FLASH_ATTENTION):
    for _ in range(4):
        torch.nn.functional.scaled_dot_product_attention(q, k, v)
torch.cuda.synchronize()
PY
"$ncu" --clock-control none "${sections[@]}" -k regex:flash --launch-skip 2 --launch-count 1 \
  python3 "$sdpa" "$d" "$s" >"$out/ncu_flash.txt" 2>&1
pat='Duration|Registers Per|Executed Ipc A|Issue Slots Busy|Executed Instructions  |Achieved Occupancy|Warp Cycles Per Issued|Shared Memory Configuration Size|Dynamic Shared|Block Limit|Memory Throughput|L1/TEX Hit|L2 Hit|Compute \(SM\) Throughput|Stall'
for f in ncu_flashjit ncu_flash; do
  echo "== $f"
  grep -E "^  [a-zA-Z_].*\(|$pat" "$out/$f.txt" | head -40
done
# With SOURCE=1: both kernels once more with source counters; their SASS with execution counts and
# stall samples goes to $OUT/ncu_flashjit_sass.csv and $OUT/ncu_flash_sass.csv.
if [ "${SOURCE:-0}" = 1 ]; then
  "$ncu" --clock-control none --section SourceCounters --section WarpStateStats \
    -k regex:flashjit_fwd --launch-skip 2 --launch-count 1 -f -o "$out/flashjit_src" \
    "$root/.device/build/tools/flashjit_cuda_bench" --prefill-only --quick --d "$d" >/dev/null 2>&1
  "$ncu" --import "$out/flashjit_src.ncu-rep" --page source --csv --print-source sass \
    >"$out/ncu_flashjit_sass.csv" 2>&1
  "$ncu" --import "$out/flashjit_src.ncu-rep" --page details --print-details all \
    >"$out/ncu_flashjit_details.txt" 2>&1
  "$ncu" --clock-control none --section SourceCounters --section WarpStateStats \
    -k regex:flash --launch-skip 2 --launch-count 1 -f -o "$out/flash_src" \
    python3 "$sdpa" "$d" "$s" >/dev/null 2>&1
  "$ncu" --import "$out/flash_src.ncu-rep" --page source --csv --print-source sass \
    >"$out/ncu_flash_sass.csv" 2>&1
  rm -f "$out"/*.ncu-rep
  head -3 "$out/ncu_flashjit_sass.csv" "$out/ncu_flash_sass.csv"
fi
