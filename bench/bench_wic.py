"""How long `python compare.py` takes as a user runs it: the default report (offline, so with the word-piece
fallback) and `--wic DIR` on the dev split (which also encodes the 5,428 train pairs for the thresholds).

    python bench/bench_wic.py WIC_DIR [--runs 3]

Each run is a fresh process; the figures are medians of wall-clock and CPU time (user + system, all threads).
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _harness import REPO, machine_line


def timed(args: list, env: dict) -> tuple:
    """(wall seconds, CPU seconds) of one fresh `compare.py` process."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run([sys.executable, str(REPO / "compare.py"), *args], env=env, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("wic", type=Path, help="folder with WiC's train/dev .data.txt and .gold.txt")
    p.add_argument("--runs", type=int, default=3)
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as empty:
        env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HOME": empty}  # no GloVe table: the fallback path
        print(machine_line())
        for name, cli in (("compare.py (default report)", []), ("compare.py --wic DIR (dev)", ["--wic", args.wic])):
            runs = [timed(cli, env) for _ in range(args.runs)]
            wall, cpu = (statistics.median(r[i] for r in runs) for i in (0, 1))
            print(f"{name:<32} wall {wall:6.1f} s   CPU {cpu:6.1f} s   (median of {args.runs})")
        print(f"load average at end: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
