"""Cold start: a fresh process imports, loads all-MiniLM-L6-v2 and embeds one sentence; wall time (measured by
the parent, process start to exit) and peak resident memory (the child's ru_maxrss, from os.wait4), minibert vs
sentence-transformers, processes alternating.

    python bench/bench_cold_start.py [--rounds 5]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent))
from _harness import PAUSE, have, machine_line, thread_env, threads  # noqa: E402

SENTENCE = "The cat sat on the mat."
PROGRAMS = {
    "minibert": f"""
from minibert.encoder import SentenceEncoder
v = SentenceEncoder.from_pretrained().encode([{SENTENCE!r}])
assert v.shape == (1, 384)
""",
    "sentence-transformers": f"""
from sentence_transformers import SentenceTransformer
from minibert.hub import resolve_model_dir, DEFAULT_MODEL
v = SentenceTransformer(str(resolve_model_dir(DEFAULT_MODEL)), device="cpu").encode([{SENTENCE!r}])
assert v.shape == (1, 384)
""",
}


def measure(program: str, n_threads: int) -> tuple:
    """(wall seconds, peak RSS MiB) of one fresh `python -c program`.

    Peak memory is the child's VmHWM, which exec resets (the child prints it on exit); the child's ru_maxrss
    (os.wait4) is the fallback off Linux. On Linux ru_maxrss keeps the forked parent's resident size from before
    exec, so after the GEMM benchmark's big arrays it read 2229 MiB for both sides."""
    start = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-c", program + HWM], env=thread_env(n_threads),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    if status != 0:
        raise RuntimeError(f"cold-start program failed:\n{program}\n{proc.stderr.read().decode()[-2000:]}")
    hwm = proc.stdout.read().decode().split()
    return wall, float(hwm[-1]) / 1024 if hwm else usage.ru_maxrss / 1024  # KiB -> MiB


HWM = """
import os
if os.path.exists("/proc/self/status"):
    print(next(l.split()[1] for l in open("/proc/self/status") if l.startswith("VmHWM")))
"""


def run(rounds: int = 5) -> dict:
    n = threads()
    sides = ["minibert"]
    notes = []
    missing = have("sentence_transformers", "torch")
    if missing:
        notes.append(f"sentence-transformers side {missing}")
    else:
        sides.append("sentence-transformers")
    seen = {s: [] for s in sides}
    for s in sides:  # warm-up: the OS file cache holds both sides' files before anything is timed
        measure(PROGRAMS[s], n)
    for r in range(rounds):
        for s in (sides if r % 2 == 0 else sides[::-1]):
            seen[s].append(measure(PROGRAMS[s], n))
            time.sleep(PAUSE)
    result = {s: {"wall_s": statistics.median(w for w, _ in v), "peak_rss_mib": statistics.median(m for _, m in v)}
              for s, v in seen.items()}
    for s, v in result.items():
        print(f"{s:<22} wall {v['wall_s']:.2f} s  peak RSS {v['peak_rss_mib']:.0f} MiB", flush=True)
    return {"sides": result, "notes": notes, "rounds": rounds}


def markdown(result: dict) -> str:
    s = result["sides"]
    lines = ["| side | wall time (median) | peak RSS (median) |", "|---|---|---|"]
    for side, v in s.items():
        lines.append(f"| {side} | {v['wall_s']:.2f} s | {v['peak_rss_mib']:.0f} MiB |")
    if "sentence-transformers" in s:
        m, st = s["minibert"], s["sentence-transformers"]
        lines.append(f"| **ratio** (minibert / sentence-transformers) | **{m['wall_s'] / st['wall_s']:.3f}** "
                     f"(1/{st['wall_s'] / m['wall_s']:.1f}) | **{m['peak_rss_mib'] / st['peak_rss_mib']:.3f}** "
                     f"(1/{st['peak_rss_mib'] / m['peak_rss_mib']:.1f}) |")
    return "\n".join(lines + [f"\n{n}" for n in result["notes"]])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rounds", type=int, default=5)
    a = p.parse_args()
    print(machine_line(), f"| threads: {threads()}", flush=True)
    print(markdown(run(a.rounds)))


if __name__ == "__main__":
    main()
