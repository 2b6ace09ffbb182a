"""`minibert serve` under load: requests per second and latency with 1 and 8 concurrent clients, one sentence
per request (POST /v1/embeddings), all-MiniLM-L6-v2, loopback only. Beside it, `encode` called in-process one
sentence at a time: what the HTTP round trip costs, and what dynamic batching wins back.

    python bench/bench_serve.py [--seconds 10] [--clients 1 8] [--max-wait-ms 2] [--plot serve.png]

The server runs in its own process (`python -m minibert serve --port 0`), the clients are threads of this one,
each with its own keep-alive connection; both share the machine's cores, as a server and its local clients do.
Server and in-process encode() use BENCH_THREADS threads (default: all cores); on a machine busy with other
work, BENCH_THREADS=1 (MINIBERT_NUM_THREADS=1 for a real server) avoids threads waiting on each other.
Every phase is bounded by --seconds and --max-requests; the server is stopped with SIGTERM at the end.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import re
import signal
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Dict, List

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent))
from _harness import REPO, machine_line, thread_env, threads  # noqa: E402

MODEL = "sentence-transformers/all-MiniLM-L6-v2"
WORDS = ("the cat sat on a mat while dogs barked at people walking through the park near river bank where "
         "boats drifted slowly and children played games under tall green trees in warm summer light").split()
WARMUP = 20  # requests per phase before the clock starts


def sentences(n: int, seed: int = 0) -> List[str]:
    """n varied sentences of 6 to 24 words (about 8 to 28 tokens)."""
    rng = random.Random(seed)
    return [" ".join(rng.choice(WORDS) for _ in range(rng.randint(6, 24))).capitalize() + "." for _ in range(n)]


def start_server(max_wait_ms: float) -> tuple:
    """(process, port) of `minibert serve` on 127.0.0.1, once it says where it listens."""
    proc = subprocess.Popen([sys.executable, "-m", "minibert", "serve", "--model", MODEL, "--port", "0",
                             "--max-wait-ms", str(max_wait_ms)], stderr=subprocess.PIPE, text=True, cwd=REPO)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        line = proc.stderr.readline()
        match = re.search(r"on http://127\.0\.0\.1:(\d+)", line)
        if match:
            return proc, int(match.group(1))
        if not line and proc.poll() is not None:
            break
    proc.kill()
    raise SystemExit("minibert serve did not start")


def request(conn: http.client.HTTPConnection, text: str) -> None:
    conn.request("POST", "/v1/embeddings", json.dumps({"input": text, "model": MODEL}),
                 {"Content-Type": "application/json"})
    response = conn.getresponse()
    body = response.read()
    if response.status != 200:
        raise RuntimeError(f"HTTP {response.status}: {body[:200]!r}")


def metrics(port: int) -> Dict[str, float]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    conn.request("GET", "/metrics")
    text = conn.getresponse().read().decode()
    conn.close()
    return {name: float(value) for name, value in re.findall(r"^(minibert_\w+) (\S+)$", text, re.M)}


def phase(port: int, clients: int, texts: List[str], seconds: float, max_requests: int) -> dict:
    """`clients` threads sending one sentence per request until `seconds` pass or `max_requests` are sent."""
    latencies: List[float] = []
    errors: List[str] = []
    lock = threading.Lock()
    sent = iter(range(max_requests))
    stop_at = [0.0]
    ready = threading.Barrier(clients + 1)  # every client warmed up
    go = threading.Event()  # the clock has started

    def client(k: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        try:
            for i in range(WARMUP // clients + 1):
                request(conn, texts[(k + i) % len(texts)])
            ready.wait()
            go.wait(60)
            while time.perf_counter() < stop_at[0]:
                with lock:
                    i = next(sent, None)
                if i is None:
                    return
                start = time.perf_counter()
                request(conn, texts[i % len(texts)])
                with lock:
                    latencies.append(time.perf_counter() - start)
        except Exception as e:  # recorded and reported: a benchmark with errors is not a result
            errors.append(repr(e))
            ready.abort()
        finally:
            conn.close()

    workers = [threading.Thread(target=client, args=(k,)) for k in range(clients)]
    for w in workers:
        w.start()
    before = None
    try:
        ready.wait()
        before = metrics(port)
        start = time.perf_counter()
        stop_at[0] = start + seconds
    except threading.BrokenBarrierError:
        pass
    go.set()
    for w in workers:
        w.join()
    if errors or before is None:
        raise SystemExit(f"{clients} clients: {len(errors)} errors, first: {errors[:1]}")
    wall = time.perf_counter() - start
    after = metrics(port)
    batches = after["minibert_batch_size_count"] - before["minibert_batch_size_count"]
    inputs = after["minibert_inputs_total"] - before["minibert_inputs_total"]
    return {"clients": clients, "requests": len(latencies), "seconds": wall, "rps": len(latencies) / wall,
            **percentiles(latencies), "batch": inputs / max(batches, 1)}


def percentiles(latencies: List[float]) -> Dict[str, float]:
    q = statistics.quantiles(latencies, n=100, method="inclusive")
    return {"p50": q[49] * 1000, "p95": q[94] * 1000, "p99": q[98] * 1000}


def in_process(texts: List[str], seconds: float, max_requests: int) -> dict:
    """`encode([text])` one sentence at a time in this process: the model alone, no HTTP."""
    from minibert import SentenceEncoder
    encoder = SentenceEncoder.from_pretrained(MODEL)
    for t in texts[:WARMUP]:
        encoder.encode([t])
    latencies: List[float] = []
    stop_at = time.perf_counter() + seconds
    start = time.perf_counter()
    while time.perf_counter() < stop_at and len(latencies) < max_requests:
        t0 = time.perf_counter()
        encoder.encode([texts[len(latencies) % len(texts)]])
        latencies.append(time.perf_counter() - t0)
    wall = time.perf_counter() - start
    return {"clients": "encode() in-process", "requests": len(latencies), "seconds": wall,
            "rps": len(latencies) / wall, **percentiles(latencies), "batch": 1.0}


def markdown(rows: List[dict]) -> str:
    out = ["| clients | requests | requests/s | p50 ms | p95 ms | p99 ms | mean inputs per forward pass |",
           "|---|---|---|---|---|---|---|"]
    for r in rows:
        out.append(f"| {r['clients']} | {r['requests']} | **{r['rps']:.0f}** | {r['p50']:.1f} | {r['p95']:.1f} | "
                   f"{r['p99']:.1f} | {r['batch']:.2f} |")
    return "\n".join(out)


def plot(rows: List[dict], path: str) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    labels = [str(r["clients"]) if isinstance(r["clients"], int) else "encode()\nin-process" for r in rows]
    fig, (left, right) = plt.subplots(1, 2, figsize=(9, 3.4))
    left.bar(labels, [r["rps"] for r in rows], color="#4c72b0")
    left.set_title("throughput (one sentence per request)")
    left.set_ylabel("requests / s")
    width = 0.4
    x = range(len(rows))
    right.bar([i - width / 2 for i in x], [r["p50"] for r in rows], width, label="p50")
    right.bar([i + width / 2 for i in x], [r["p95"] for r in rows], width, label="p95")
    right.set_xticks(list(x), labels)
    right.set_title("latency")
    right.set_ylabel("ms")
    right.legend()
    for ax in (left, right):
        ax.set_xlabel("concurrent clients")
    fig.suptitle(f"minibert serve, {MODEL.split('/')[-1]}, loopback")
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seconds", type=float, default=10.0, help="timed length of each phase (default: 10)")
    p.add_argument("--max-requests", type=int, default=20_000, help="requests per phase at most (default: 20000)")
    p.add_argument("--clients", type=int, nargs="+", default=[1, 8], help="concurrent clients per phase")
    p.add_argument("--max-wait-ms", type=float, default=2.0, help="the server's --max-wait-ms (default: 2)")
    p.add_argument("--plot", metavar="FILE.png", help="write a bar chart of the figures (needs matplotlib)")
    a = p.parse_args()
    os.environ.update(thread_env(threads()))  # before NumPy loads: in-process encode() gets the server's threads
    texts = sentences(256)
    print(machine_line(), f"| {threads()} threads | --max-wait-ms {a.max_wait_ms:g}", flush=True)
    proc, port = start_server(a.max_wait_ms)
    try:
        rows = [phase(port, c, texts, a.seconds, a.max_requests) for c in a.clients]
    finally:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(60)
    if code != 0:
        raise SystemExit(f"minibert serve exited with status {code} on SIGTERM")
    rows.append(in_process(texts, a.seconds, a.max_requests))
    print(markdown(rows))
    if a.plot:
        plot(rows, a.plot)
        print(f"figure: {a.plot}")


if __name__ == "__main__":
    main()
