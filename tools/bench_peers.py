"""Time flashjit's GPU peers side by side in one process and write them as JSON.

Usage: python3 tools/bench_peers.py OUT.json [--quick] [--decode-only | --prefill-only] [--d D]

Measures (bf16, torch.randn inputs, triton.testing.do_bench median):
  - copy ceiling: device-to-device copy of a 2 GiB tensor, TB/s of bytes read + written;
  - prefill: SDPA flash / cuDNN and compiled FlexAttention, TFLOP/s (4*B*H*S*S*D, causal halves it),
    b*s = 16k tokens, heads = 2048 / D, plus one GQA 32/8 row;
  - decode: q length 1, GQA 32/8, D=128, contiguous KV, SDPA flash / cuDNN, TB/s of K+V read.
The L2 is cleared before each timed call: by do_bench's memset, or with FLASHJIT_BENCH_SCRUB=read by
a read of 256 MiB (clean lines, as the previous layers' weight and KV reads leave it in decode; a
memset leaves 50 MB of dirty lines whose write-back the timed kernel pays for), as
flashjit_cuda_bench does with the same variable.
A backend that fails stores "ERR <type>: <message>" instead of a number.
Output: {"device", "torch", "sm_count", "copy_tbps", "rows": [...]}; each row is printed as measured.
"""
import gc
import json
import os
import sys

import torch
import torch.nn.functional as F
import triton
from torch.nn.attention import SDPBackend, sdpa_kernel

DEV = "cuda"
DT = torch.bfloat16
QUICK = "--quick" in sys.argv[1:]
DECODE_ONLY = "--decode-only" in sys.argv[1:]
PREFILL_ONLY = "--prefill-only" in sys.argv[1:]


def flag_value(name):
    """The integer after `name` on the command line, or None."""
    argv = sys.argv[1:]
    return int(argv[argv.index(name) + 1]) if name in argv[:-1] else None


ONLY_D = flag_value("--d")  # one head dim, as flashjit_cuda_bench --d
WARMUP, REP = (5, 20) if QUICK else (25, 100)
SCRUB = os.environ.get("FLASHJIT_BENCH_SCRUB", "write")
_SCRUB_BUF = []


def bench(fn):
    """Median milliseconds of fn (one call first, so lazy setup / compilation is not timed)."""
    fn()
    torch.cuda.synchronize()
    if SCRUB != "read":
        return triton.testing.do_bench(fn, warmup=WARMUP, rep=REP, return_mode="median")
    # do_bench's loop with a read in place of its memset.
    if not _SCRUB_BUF:
        _SCRUB_BUF.append(torch.ones(64 << 20, device=DEV, dtype=torch.float32))
    for _ in range(3):
        fn()
    reps = 20 if QUICK else 50
    events = [(torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True))
              for _ in range(reps)]
    for start, end in events:
        _SCRUB_BUF[0].sum()
        start.record()
        fn()
        end.record()
    torch.cuda.synchronize()
    times = sorted(start.elapsed_time(end) for start, end in events)
    return times[len(times) // 2]


def err(e):
    return f"ERR {type(e).__name__}: {' '.join(str(e).split())[:160]}"


def free():
    gc.collect()
    torch.cuda.empty_cache()


def rnd(*shape):
    return torch.randn(*shape, device=DEV, dtype=DT)


# ---- FlexAttention (compiled once per shape; raise the recompile limit so no shape falls back to eager)
try:
    from torch.nn.attention.flex_attention import create_block_mask, flex_attention
    for _name in ("recompile_limit", "cache_size_limit"):
        if hasattr(torch._dynamo.config, _name):
            setattr(torch._dynamo.config, _name, 256)
    FLEX = torch.compile(flex_attention, dynamic=False)
    FLEX_ERR = None
except Exception as e:  # noqa: BLE001
    FLEX, FLEX_ERR = None, err(e)


def causal_mod(b, h, qi, ki):
    return qi >= ki


def time_sdpa(backend, q, k, v, causal, gqa):
    try:
        with sdpa_kernel(backend):
            return bench(lambda: F.scaled_dot_product_attention(q, k, v, is_causal=causal, enable_gqa=gqa))
    except Exception as e:  # noqa: BLE001
        return err(e)


def time_flex(q, k, v, causal, gqa):
    if FLEX is None:
        return FLEX_ERR
    try:
        S = q.shape[2]
        bm = create_block_mask(causal_mod, B=None, H=None, Q_LEN=S, KV_LEN=S, device=DEV) if causal else None
        return bench(lambda: FLEX(q, k, v, block_mask=bm, enable_gqa=gqa))
    except Exception as e:  # noqa: BLE001
        return err(e)


def rate(ms, work):
    """work / ms / 1e9: TFLOP/s for FLOPs, TB/s for bytes; passes error strings through."""
    return work / ms / 1e9 if isinstance(ms, float) else ms


def prefill_row(D, S, B, H, Hk, causal):
    row = {"kind": "prefill", "D": D, "S": S, "B": B, "H": H, "Hk": Hk, "causal": causal}
    flops = 4 * B * H * S * S * D / (2 if causal else 1)
    gqa = Hk != H
    try:
        q, k, v = rnd(B, H, S, D), rnd(B, Hk, S, D), rnd(B, Hk, S, D)
        row["flash"] = rate(time_sdpa(SDPBackend.FLASH_ATTENTION, q, k, v, causal, gqa), flops)
        row["cudnn"] = rate(time_sdpa(SDPBackend.CUDNN_ATTENTION, q, k, v, causal, gqa), flops)
        row["flex"] = rate(time_flex(q, k, v, causal, gqa), flops)
    except Exception as e:  # noqa: BLE001  (e.g. allocation failure)
        for name in ("flash", "cudnn", "flex"):
            row.setdefault(name, err(e))
    q = k = v = None
    free()
    return row


def decode_row(B, Sk, H=32, Hk=8, D=128):
    row = {"kind": "decode", "B": B, "Sk": Sk, "H": H, "Hk": Hk, "D": D}
    nbytes = 2 * B * Hk * Sk * D * 2  # K and V, bf16
    try:
        q, k, v = rnd(B, H, 1, D), rnd(B, Hk, Sk, D), rnd(B, Hk, Sk, D)
        row["flash"] = rate(time_sdpa(SDPBackend.FLASH_ATTENTION, q, k, v, False, True), nbytes)
        row["cudnn"] = rate(time_sdpa(SDPBackend.CUDNN_ATTENTION, q, k, v, False, True), nbytes)
    except Exception as e:  # noqa: BLE001
        for name in ("flash", "cudnn"):
            row.setdefault(name, err(e))
    q = k = v = None
    free()
    return row


def copy_ceiling():
    try:
        x = rnd(1 << 30)  # 2 GiB of bf16
        y = torch.empty_like(x)
        ms = bench(lambda: y.copy_(x))
        return 2 * x.numel() * x.element_size() / ms / 1e9
    except Exception as e:  # noqa: BLE001
        return err(e)
    finally:
        x = y = None
        free()


def main():
    argv = sys.argv[1:]
    values = {i + 1 for i, a in enumerate(argv) if a in ("--d", "--dv")}
    args = [a for i, a in enumerate(argv) if not a.startswith("--") and i not in values]
    if len(args) != 1:
        sys.exit(__doc__)
    out = args[0]
    torch.manual_seed(0)
    props = torch.cuda.get_device_properties(0)
    res = {"device": torch.cuda.get_device_name(), "torch": torch.__version__,
           "sm_count": props.multi_processor_count, "quick": QUICK, "scrub": SCRUB}
    res["copy_tbps"] = copy_ceiling()
    print("copy_tbps", res["copy_tbps"], flush=True)
    rows = res["rows"] = []

    def emit(row):
        rows.append(row)
        print(json.dumps(row), flush=True)
        with open(out, "w") as f:  # rewrite after every row, so a crash keeps what was measured
            json.dump(res, f, indent=1)

    dims = () if DECODE_ONLY or flag_value("--dv") else (ONLY_D,) if ONLY_D else (64, 128, 256)
    for D in dims:
        for S in (1024, 4096, 16384):
            B, H = 16384 // S, 2048 // D
            for causal in (False, True):
                emit(prefill_row(D, S, B, H, H, causal))
    if not DECODE_ONLY and ONLY_D in (None, 128):
        emit(prefill_row(128, 4096, 4, 32, 8, True))  # GQA 32/8
    decode_shapes = ((1, 8192), (8, 8192), (64, 4096), (128, 8192), (16, 32768))
    for B, Sk in () if PREFILL_ONLY else decode_shapes:
        emit(decode_row(B, Sk))
    print("peers done", flush=True)


if __name__ == "__main__":
    main()
