"""Compare flashjit's own bench output with the peers measured by tools/bench_peers.py.

Usage: python3 tools/bench_report.py PEERS.json FLASHJIT.jsonl

FLASHJIT.jsonl: one JSON object per line from flashjit's C++ bench ("kind": "prefill" | "decode" |
"compile" | "meta"); lines that do not parse as a JSON object are ignored. Prints markdown: device and copy
ceiling, then (a) prefill TFLOP/s vs SDPA flash / cuDNN / flex with the ratio to SDPA flash (bar >= 1.0),
(b) decode TB/s vs SDPA flash / cuDNN and as % of the copy ceiling (bar >= 80 % for B >= 8), also as
% of the row's same-size copy ("copy_tbps" of the row, when the bench measured it), (b2) the decode
step with append through a plan (bars 70 % at B=1, 85 % at B >= 8), (c) compile / load ms per kernel
key with the max of each. Missing values print as "—", errors as
their first words. Rows missing the bar are marked "✗ MISS".
"""
import json
import sys

DASH = "—"


def num(x):
    """x as a float, or None when missing / an error / not numeric."""
    if isinstance(x, bool) or x is None:
        return None
    if isinstance(x, (int, float)):
        return float(x)
    return None


def cell(x, fmt="{:.1f}"):
    if x is None:
        return DASH
    v = num(x)
    if v is not None:
        return fmt.format(v)
    words = " ".join(str(x).replace("|", "/").split()[:4])
    return words[:40] if words else DASH


def table(header, rows):
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for r in rows:
        print("| " + " | ".join(r) + " |")
    print()


def load_jsonl(path):
    out = []
    with open(path, errors="replace") as f:
        for line in f:
            line = line.strip()
            if not line.startswith("{"):
                continue
            try:
                obj = json.loads(line)
            except ValueError:
                continue
            if isinstance(obj, dict):
                out.append(obj)
    return out


def pkey(r):
    H = r.get("H")
    return (r.get("D"), r.get("S"), r.get("B"), H, r.get("Hk", H), bool(r.get("causal")))


def sort_key(k):
    return tuple((0, v) if isinstance(v, (int, float)) else (1, str(v)) for v in k)


def err_of(r, field):
    """The measured field, else the object's error text (if any), else None."""
    if field in r:
        return r[field]
    return r.get("error") or r.get("err")


def prefill(peers, mine):
    p = {pkey(r): r for r in peers if r.get("kind") in ("prefill", "prefill_gqa")}
    m = {}
    for r in mine:
        if r.get("kind") == "prefill":
            m[pkey(r)] = r  # the last line for a shape wins
    rows, misses = [], 0
    for k in sorted(set(p) | set(m), key=sort_key):
        D, S, B, H, Hk, causal = k
        pr, mr = p.get(k, {}), m.get(k)
        fj = err_of(mr, "tflops") if mr else None
        ratio, mark = DASH, ""
        a, b = num(fj), num(pr.get("flash"))
        if a is not None and b:
            ratio = f"{a / b:.2f}"
            if a / b < 1.0:
                mark, misses = "✗ MISS", misses + 1
        elif mr is not None:
            mark = "? no ratio"
        rows.append([str(D), str(S), str(B), f"{H}/{Hk}", "yes" if causal else "no", cell(fj),
                     cell(pr.get("flash")), cell(pr.get("cudnn")), cell(pr.get("flex")), ratio, mark])
    print("## (a) Prefill, TFLOP/s (bar: flashjit / SDPA flash >= 1.0)\n")
    table(["D", "S", "B", "H/Hk", "causal", "flashjit", "SDPA flash", "cuDNN", "flex",
           "flashjit/flash", "bar"], rows)
    print(f"prefill: {len(m)} flashjit shapes, {misses} below the bar\n")


def against_copies(a, copy, same, bar):
    """Percent cells of a TB/s figure against the 2 GiB copy and the same-traffic copy, and the
    bar's verdict on each: met only where both are met; the mark says which one misses."""
    big = 100.0 * a / copy if a is not None and copy else None
    sm = 100.0 * a / same if a is not None and same else None
    cells = (f"{big:.0f} %" if big is not None else DASH, f"{sm:.0f} %" if sm is not None else DASH)
    if big is None or bar is None:
        return cells, "", False
    if big >= bar and (sm is None or sm >= bar):
        return cells, "", False
    if sm is not None and sm >= bar:
        return cells, f"✗ MISS vs 2 GiB copy (met vs same-size, bar {bar:.0f} %)", True
    return cells, f"✗ MISS (bar {bar:.0f} %)", True


def decode(peers, mine, copy):
    p = {(r.get("B"), r.get("Sk")): r for r in peers if r.get("kind") in ("decode", "decode_TBps")}
    m = {}
    for r in mine:
        if r.get("kind") == "decode" and not r.get("num_splits"):  # the heuristic's rows only
            m[(r.get("B"), r.get("Sk"), r.get("page"))] = r
    keys = set(m) | {bk + (None,) for bk in p if not any(mk[:2] == bk for mk in m)}
    rows, misses = [], 0
    for k in sorted(keys, key=sort_key):
        B, Sk, page = k
        pr, mr = p.get((B, Sk), {}), m.get(k)
        fj = err_of(mr, "tbps") if mr else None
        a = num(fj)
        bar = 80.0 if isinstance(B, int) and B >= 8 else None
        (pct, pct_same), mark, miss = against_copies(a, copy, num((mr or {}).get("copy_tbps")), bar)
        misses += miss
        if bar is None and a is not None:
            mark = "(no bar, B<8)"
        hk = f"{(mr or pr).get('H', DASH)}/{(mr or pr).get('Hk', DASH)}"
        rows.append([str(B), str(Sk), hk, cell(page, "{:.0f}"), cell(fj, "{:.2f}"),
                     cell(pr.get("flash"), "{:.2f}"), cell(pr.get("cudnn"), "{:.2f}"), pct,
                     pct_same, mark])
    print("## (b) Decode, TB/s of K+V read (bar: >= 80 % of copy ceiling for B >= 8; same-size copy:"
          " a device copy moving the same bytes, L2 cleared, in the same run)\n")
    table(["B", "Sk", "H/Hk", "page", "flashjit", "SDPA flash", "cuDNN", "% of 2 GiB copy",
           "% of same-size copy", "bar"], rows)
    print(f"decode: {len(m)} flashjit shapes, {misses} below the bar\n")


def decode_append(peers, mine, copy):
    # The serving step of issue 4: append + rotary fused, paged 16, through a plan in a CUDA graph.
    p = {(r.get("B"), r.get("Sk")): r for r in peers if r.get("kind") in ("decode", "decode_TBps")}
    m = [r for r in mine if r.get("kind") == "decode_append"]
    if not m:
        return
    rows, misses = [], 0
    for r in sorted(m, key=lambda r: (r.get("B"), r.get("Sk"))):
        B, Sk = r.get("B"), r.get("Sk")
        pr = p.get((B, Sk), {})
        a = num(err_of(r, "tbps"))
        (pct, pct_same), mark, miss = against_copies(a, copy, num(r.get("copy_tbps")),
                                                     70.0 if B == 1 else 85.0)
        misses += miss
        rows.append([str(B), str(Sk), str(r.get("num_splits", DASH)), cell(a, "{:.2f}"),
                     cell(r.get("ms", None) and r["ms"] * 1000, "{:.1f}"),
                     cell(pr.get("flash"), "{:.2f}"), cell(pr.get("cudnn"), "{:.2f}"), pct,
                     pct_same, cell(r.get("host_us"), "{:.1f}"), mark])
    print("## (b2) Decode step with append + rotary (paged 16, GQA 32/8, d128), CUDA graph replay of a"
          " plan; TB/s of K+V read (bars: B=1 >= 70 %, B >= 8 >= 85 % of copy)\n")
    table(["B", "Sk", "num_splits", "flashjit", "us", "SDPA flash (no append)", "cuDNN (no append)",
           "% of 2 GiB copy", "% of same-size copy", "host us / plain run", "bar"], rows)
    print(f"decode with append: {len(m)} shapes, {misses} below the bar\n")


def compile_table(mine):
    # A key's compile record, with the cache-hit load time of its {"kind": "load"} record.
    loads = {r.get("key"): r.get("load_ms") for r in mine if r.get("kind") == "load"}
    recs = []
    for r in mine:
        if r.get("kind") == "compile":
            recs.append(dict(r, load_ms=r.get("load_ms", loads.get(r.get("key")))))
    print("## (c) JIT compile / load, ms\n")
    if not recs:
        print("(no compile records)\n")
        return
    rows = [[str(r.get("key", DASH)).replace("|", "/"), cell(err_of(r, "compile_ms")),
             cell(err_of(r, "load_ms"), "{:.2f}")] for r in recs]
    cms = [v for v in (num(r.get("compile_ms")) for r in recs) if v is not None]
    lms = [v for v in (num(r.get("load_ms")) for r in recs) if v is not None]
    rows.append(["**max**", cell(max(cms)) if cms else DASH, cell(max(lms), "{:.2f}") if lms else DASH])
    table(["key", "compile_ms", "load_ms"], rows)


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    with open(sys.argv[1]) as f:
        peers = json.load(f)
    mine = load_jsonl(sys.argv[2])
    copy = num(peers.get("copy_tbps", peers.get("copy_TBps")))
    print("# flashjit vs peers\n")
    print(f"- device: {peers.get('device', DASH)} ({peers.get('sm_count', DASH)} SMs), "
          f"torch {peers.get('torch', DASH)}")
    print(f"- copy ceiling (read + write): {cell(peers.get('copy_tbps', peers.get('copy_TBps')), '{:.2f}')} TB/s")
    api = next((r.get("prefill_api") for r in mine if r.get("kind") == "meta"), "varlen")
    via = "flash_attn_with_kvcache on dense tensors" if api == "kvcache" else "flash_attn_varlen"
    print(f"- flashjit prefill through: {via}")
    arch = next((r.get("arch") for r in mine if r.get("kind") == "meta"), None)
    if arch:
        print(f"- flashjit kernels built for: {arch}")
    # How the L2 was cleared before each timed call: "write" (do_bench's memset) or "read".
    mine_scrub = next((r.get("scrub") for r in mine if r.get("kind") == "meta"), "write")
    peers_scrub = peers.get("scrub", "write")
    same = "" if mine_scrub == peers_scrub else " (differ: the peers' rows are not comparable)"
    print(f"- L2 cleared before each timed call by: flashjit {mine_scrub}, peers {peers_scrub}"
          f"{same}\n")
    prows = peers.get("rows", [])
    prefill(prows, mine)
    decode(prows, mine, copy)
    decode_append(prows, mine, copy)
    compile_table(mine)


if __name__ == "__main__":
    main()
