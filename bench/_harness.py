"""What every benchmark here shares: the machine line, side-by-side workers in their own processes, medians.

Each side of a comparison runs in its own long-lived worker process (PyTorch's and onnxruntime's thread pools
keep spinning after work and would slow whatever ran next in the same process). The parent sends the same job to
each worker in turn, alternating, several rounds; each worker warms up, times, and answers; figures are medians.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence

REPO = Path(__file__).resolve().parents[1]
PAUSE = 0.3  # seconds between two sides' turns, for the previous side's spinning threads to go to sleep


def threads() -> int:
    """Threads for every side: BENCH_THREADS if set, else all cores of the machine."""
    return int(os.environ.get("BENCH_THREADS") or os.cpu_count() or 1)


def thread_env(n: int, side: str = "") -> Dict[str, str]:
    env = dict(os.environ)
    if side == OWN_KERNELS:
        env.pop("OPENBLAS_CORETYPE", None)
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "MINIBERT_NUM_THREADS"):
        env[var] = str(n)
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    env.setdefault("TOKENIZERS_PARALLELISM", "false")
    env.setdefault("TRANSFORMERS_VERBOSITY", "error")
    return env


def machine_line() -> str:
    """CPU model, cores, BLAS (which kernels, and whether OPENBLAS_CORETYPE holds them back), NumPy, Python."""
    import numpy as np
    from minibert import blas
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return (f"{cpu} ({blas.cpu_isa() or 'ISA unknown'}), {os.cpu_count()} cores, {blas.describe()}, "
            f"NumPy {np.__version__}, Python {platform.python_version()}, "
            f"load average {os.getloadavg()[0]:.1f} at start")


OWN_KERNELS = "minibert-own-kernels"  # the minibert side again, with OPENBLAS_CORETYPE removed from its environment


def minibert_sides() -> List[str]:
    """minibert as this environment runs it, and, when OPENBLAS_CORETYPE holds OpenBLAS below this CPU, minibert
    with OpenBLAS's own choice of kernels too: both are what a user of this machine may get."""
    from minibert import blas
    return ["minibert"] + ([OWN_KERNELS] if blas.pinned_kernels() else [])


def side_label(side: str) -> str:
    """How a table heads a side: the held minibert side says what holds it."""
    from minibert import blas
    if side == "minibert" and blas.pinned_kernels():
        return f"minibert (OPENBLAS_CORETYPE={os.environ.get('OPENBLAS_CORETYPE')})"
    return {OWN_KERNELS: "minibert (OpenBLAS's own kernels)", "pytorch": "PyTorch"}.get(side, side)


def have(*modules: str) -> Optional[str]:
    """None if every module imports, else a message naming the first missing one."""
    import importlib.util
    for m in modules:
        if importlib.util.find_spec(m) is None:
            return f"skipped: {m} is not installed (pip install -e '.[bench]')"
    return None


class Worker:
    """A side of a comparison in its own process: `python <script> --worker <side> ...`, JSON lines both ways."""

    def __init__(self, script: Path, side: str, args: List[str], n_threads: int):
        self.side = side
        self.proc = subprocess.Popen([sys.executable, str(script), "--worker", side, *args],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                                     env=thread_env(n_threads, side), cwd=str(REPO))
        self.ready = self._read()  # the worker's first line: what it loaded, its thread count

    def ask(self, job: dict) -> dict:
        self.proc.stdin.write(json.dumps(job) + "\n")
        self.proc.stdin.flush()
        return self._read()

    def _read(self) -> dict:
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"benchmark worker {self.side!r} died (exit {self.proc.wait()}); see its stderr")
        return json.loads(line)

    def close(self) -> None:
        self.proc.stdin.close()
        self.proc.wait()


def serve(handle) -> None:
    """The worker's loop: one JSON job per line on stdin, one JSON answer per line on stdout."""
    for line in sys.stdin:
        print(json.dumps(handle(json.loads(line))), flush=True)


def time_calls(fn, reps: int, warmup: int = 2) -> List[float]:
    """Seconds per call of fn(), `reps` times after `warmup` untimed calls."""
    for _ in range(warmup):
        fn()
    out = []
    for _ in range(reps):
        t = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t)
    return out


def alternate(workers: List[Worker], job: dict, rounds: int) -> Dict[str, float]:
    """Send `job` to each worker in turn, `rounds` times; median over rounds of each answer's median seconds."""
    seen: Dict[str, List[float]] = {w.side: [] for w in workers}
    for r in range(rounds):
        order = workers if r % 2 == 0 else workers[::-1]
        for w in order:
            seen[w.side].append(statistics.median(w.ask(job)["seconds"]))
            time.sleep(PAUSE)
    return {side: statistics.median(s) for side, s in seen.items()}


def command_line() -> str:
    """The command as typed from the repository root (`python -m bench ...` or `python bench/<script> ...`)."""
    script = Path(sys.argv[0]).resolve()
    entry = "-m bench" if script.name == "__main__.py" else str(script.relative_to(REPO))
    return " ".join(["python", entry, *sys.argv[1:]])


def main(doc: str, run: Callable[..., dict], markdown: Callable[[dict], str], *, reps: int = 5,
         only: Optional[Sequence[str]] = None) -> None:
    """A side-by-side benchmark's own command line: --rounds, --reps, --only (when it has parts), --json; prints the
    machine line, then the markdown table of `run(rounds, reps[, only])`."""
    p = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--reps", type=int, default=reps)
    if only:
        p.add_argument("--only", choices=list(only))
    p.add_argument("--json", type=Path)
    a = p.parse_args()
    print(machine_line(), f"| threads per side: {threads()}", flush=True)
    result = run(a.rounds, a.reps, a.only) if only else run(a.rounds, a.reps)
    print(markdown(result))
    if a.json:
        a.json.write_text(json.dumps(result, indent=1))
