"""The machine's limit: NumPy float32 GEMM throughput on the products the model makes, per forward shape, and
minibert's achieved FLOP/s as a fraction of it.

    python bench/bench_gemm.py [--forward results.json]   (without --forward, minibert is timed here, own process)

For a shape (B, T) the limit is the time NumPy takes for that forward pass's matrix products alone, each at its
own shape on all cores (M = B T rows: (M, H) x (H, 3H), (M, H) x (H, H), (M, H) x (H, I), (M, I) x (I, H); and
per sequence and head (T, D) x (D, T) and (T, T) x (T, D)), times the layers; each product's time is the fastest
of 7 runs (a limit: a disturbance from outside must not lower it). minibert's fast path computes the same
products transposed (W @ x, one column per token: the same FLOPs, measured as fast or faster). minibert's fraction
of the limit is that time over minibert's whole forward time: everything that is not a matrix product counts
against it.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent))
from _harness import machine_line, threads  # noqa: E402

MODELS = {"minilm": dict(H=384, N=12, I=1536, L=6), "bert-base": dict(H=768, N=12, I=3072, L=12)}


def products(model: str, B: int, T: int):
    """(count per layer, batch of matrices, M, K, N) of every product in one layer."""
    c = MODELS[model]
    H, N, I, M = c["H"], c["N"], c["I"], B * T
    D = H // N
    return [(1, 1, M, H, 3 * H), (1, 1, M, H, H), (1, 1, M, H, I), (1, 1, M, I, H),
            (1, B * N, T, D, T), (1, B * N, T, T, D)]


def flops(model: str, B: int, T: int) -> float:
    """FLOPs of one forward pass's matrix products."""
    return MODELS[model]["L"] * sum(2 * n * g * m * k * nn for n, g, m, k, nn in products(model, B, T))


def gemm_seconds(g: int, M: int, K: int, N: int, reps: int = 7) -> float:
    """Seconds of NumPy's (g, M, K) @ (g, K, N) float32 product: the fastest of `reps`, since this is the
    machine's limit (a disturbance from outside can only slow a run down, and must not lower the limit)."""
    import numpy as np
    rng = np.random.default_rng(0)
    a = rng.standard_normal((g, M, K), dtype=np.float32)
    b = rng.standard_normal((g, K, N), dtype=np.float32)
    if g == 1:
        a, b = a[0], b[0]
    np.matmul(a, b)
    times = []
    for _ in range(reps):
        t = time.perf_counter()
        np.matmul(a, b)
        times.append(time.perf_counter() - t)
    return min(times)


def limit(model: str, B: int, T: int) -> dict:
    per_layer = 0.0
    rows = []
    for n, g, M, K, N in products(model, B, T):
        s = gemm_seconds(g, M, K, N)
        per_layer += n * s
        rows.append({"shape": f"{g}x({M},{K})x({K},{N})" if g > 1 else f"({M},{K})x({K},{N})",
                     "gflops": 2 * g * M * K * N / s / 1e9})
    seconds = per_layer * MODELS[model]["L"]
    return {"seconds": seconds, "gflops": flops(model, B, T) / seconds / 1e9, "products": rows}


def run(forward: dict) -> dict:
    """forward: bench_forward's result (minibert's seconds per shape)."""
    out = []
    for r in forward["rows"]:
        lim = limit(r["model"], r["B"], r["T"])
        achieved = flops(r["model"], r["B"], r["T"]) / r["seconds"]["minibert"] / 1e9
        row = {"model": r["model"], "B": r["B"], "T": r["T"], "limit_gflops": lim["gflops"],
               "minibert_gflops": achieved, "fraction": achieved / lim["gflops"], "products": lim["products"]}
        for side in ("pytorch", "onnxruntime"):
            if side in r["seconds"]:
                row[f"{side}_gflops"] = flops(r["model"], r["B"], r["T"]) / r["seconds"][side] / 1e9
        out.append(row)
        print(f"{r['model']:<9} B={r['B']:<3} T={r['T']:<3} limit {lim['gflops']:6.1f} GFLOP/s  minibert "
              f"{achieved:6.1f} ({achieved / lim['gflops']:.0%})  "
              + "  ".join(f"{p['shape']} {p['gflops']:.0f}" for p in lim["products"]), flush=True)
    return {"rows": out}


def markdown(result: dict) -> str:
    lines = ["| model | B | T | GEMM limit GFLOP/s | minibert GFLOP/s | fraction | PyTorch GFLOP/s | onnxruntime GFLOP/s "
             "| per product GFLOP/s (QKV, out, up, down, scores, context) |", "|---|---|---|---|---|---|---|---|---|"]
    for r in result["rows"]:
        other = lambda s: f"{r[s + '_gflops']:.0f}" if s + "_gflops" in r else "-"  # noqa: E731
        lines.append(f"| {r['model']} | {r['B']} | {r['T']} | {r['limit_gflops']:.0f} | {r['minibert_gflops']:.0f} | "
                     f"**{r['fraction']:.0%}** | {other('pytorch')} | {other('onnxruntime')} | "
                     + ", ".join(f"{p['gflops']:.0f}" for p in r["products"]) + " |")
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--forward", type=Path, help="bench_forward.py --json output (else minibert is timed now)")
    a = p.parse_args()
    print(machine_line(), f"| threads: {threads()}", flush=True)
    if a.forward:
        forward = json.loads(a.forward.read_text())
    else:
        import os
        os.environ["BENCH_SIDES"] = "minibert"
        import bench_forward
        forward = bench_forward.run(rounds=5, reps=5)
    print(markdown(run(forward)))


if __name__ == "__main__":
    main()
