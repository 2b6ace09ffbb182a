"""Every minibert-vs-PyTorch benchmark from one command, figures written into bench/RESULTS.md.

    python bench/run.py [--rounds 5] [--reps 5] [--no-write]

Runs bench_forward (tokens/s vs transformers and onnxruntime), bench_gemm (the GEMM limit and minibert's fraction
of it, from the same forward figures), bench_cold_start, bench_corpus and bench_families (BERT, MPNet and XLM-R at
bert-base shape, and the XLM-R load's memory), then replaces this script's sections
of RESULTS.md (those whose titles are in SECTIONS), leaving every other section as it is.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the siblings import as top-level modules
import bench_cold_start  # noqa: E402
import bench_corpus  # noqa: E402
import bench_families  # noqa: E402
import bench_forward  # noqa: E402
import bench_gemm  # noqa: E402
from _harness import command_line, machine_line, threads  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "RESULTS.md"
SECTIONS = ("Forward pass", "GEMM limit", "Cold start", "Corpus", "Families")


def replace_sections(text: str, new: dict) -> str:
    """Replace (or append) the `## <title>` sections named in `new`; keep every other section unchanged."""
    parts = re.split(r"(?m)^(?=## )", text)
    head, sections = parts[0], parts[1:]
    out, done = [head], set()
    for s in sections:
        title = s.splitlines()[0][3:].strip()
        if title in new:
            out.append(new[title].rstrip("\n") + "\n\n")
            done.add(title)
        else:
            out.append(s)
    for title, body in new.items():
        if title not in done:
            out.append(body.rstrip("\n") + "\n\n")
    return "".join(out).rstrip("\n") + "\n"


def write_atomically(path: Path, text: str) -> None:
    tmp = path.with_suffix(".md.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--reps", type=int, default=5)
    p.add_argument("--no-write", action="store_true", help="print only; leave RESULTS.md alone")
    a = p.parse_args()
    machine, command = machine_line(), command_line()
    started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    print(machine, f"| threads per side: {threads()}", flush=True)
    forward = bench_forward.run(a.rounds, a.reps)
    gemm = bench_gemm.run(forward)
    cold = bench_cold_start.run(a.rounds)
    try:
        corpus = bench_corpus.run(a.rounds)
    except SystemExit as e:  # a disagreement or missing data is a result to record, not a reason to lose the rest
        corpus = {"skipped": str(e)}
    families = bench_families.run(a.rounds, a.reps)
    footer = (f"\nMachine: {machine}; {threads()} threads on every side. Run {started}, load average "
              f"{os.getloadavg()[0]:.1f} at the end. Command: `{command}`\n")
    new = {
        "Forward pass": f"## Forward pass\n\nTokens per second, medians of {a.rounds} alternating rounds of {a.reps} "
                        f"calls each, after warm-up; full (unpadded) random-id inputs.\n\n"
                        + bench_forward.markdown(forward) + footer,
        "GEMM limit": "## GEMM limit\n\n" + bench_gemm.markdown(gemm) + footer,
        "Cold start": f"## Cold start\n\nImport, load all-MiniLM-L6-v2, embed one sentence; fresh process each, "
                      f"medians of {a.rounds} alternating.\n\n" + bench_cold_start.markdown(cold) + footer,
        "Corpus": "## Corpus\n\nWiC train sentences, batch 32.\n\n" + bench_corpus.markdown(corpus) + footer,
        "Families": f"## Families\n\nbert-base-shaped BERT, MPNet and XLM-R, random weights; tokens per second, "
                    f"medians of {a.rounds} rounds of {a.reps} calls each, sides and models alternating, after "
                    f"warm-up; full random-id inputs.\n\n" + bench_families.markdown(families) + footer,
    }
    for body in new.values():
        print(body)
    if not a.no_write:
        write_atomically(RESULTS, replace_sections(RESULTS.read_text(encoding="utf-8") if RESULTS.exists()
                                                   else "# Benchmarks\n\n", new))
        print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
