"""Benchmark encode_corpus on a Dask LocalCluster against a single-process encode, and the cost of a partition.

    python bench/bench_dask.py [--stsb PATH/sts-train.csv] [--sentences 2000] [--workers 2] [--repeats 3]

Each side runs in its own fresh process, on the same real sentences (STS-B train, both columns; default path:
$MINIBERT_SHARED/data/stsb or ../shared/data/stsb next to the repo):
    single      SentenceEncoder.encode of the whole list in one process (minibert's threads on every core), and
                the same with one thread (MINIBERT_NUM_THREADS=1, OPENBLAS_NUM_THREADS=1: the per-core figure)
    cluster     encode_corpus on a LocalCluster of --workers single-threaded worker processes (MINIBERT_NUM_THREADS=1
                in each, as encode_corpus starts it), already started and warm (model loaded on every worker),
                partitions of 500 lines; cluster start-up timed apart
    overhead    the same cluster on 200 one-word lines as 200 partitions of 1 line vs 1 partition of 200:
                (t200 - t1) / 199 is the wall-clock cost one extra partition adds (task, shard, manifest, fsync)
Prints the medians of --repeats runs as a Markdown table: wall-clock, and CPU time (which a busy machine does not
inflate; for the cluster, the workers' CPU time).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DEFAULT_STSB = Path(os.environ.get("MINIBERT_SHARED", REPO.parent / "shared")) / "data" / "stsb" / "sts-train.csv"

SINGLE = """
import json, statistics, sys, time
from minibert.encoder import SentenceEncoder
texts = open(sys.argv[1], encoding="utf-8").read().splitlines()
encoder = SentenceEncoder.from_pretrained("sentence-transformers/all-MiniLM-L6-v2")
encoder.encode(texts[:64])
times, cpu = [], []
for _ in range(int(sys.argv[2])):
    t, c = time.perf_counter(), time.process_time()
    encoder.encode(texts)
    times.append(time.perf_counter() - t); cpu.append(time.process_time() - c)
print(json.dumps({"seconds": statistics.median(times), "cpu": statistics.median(cpu)}))
"""

CLUSTER = """
import json, statistics, sys, tempfile, time
from pathlib import Path
from dask.distributed import Client, LocalCluster
from minibert.distributed import WORKER_ENV, encode_corpus
from minibert.encoder import SentenceEncoder

def workers_cpu(client):
    return sum(client.run(time.process_time).values())

def timed(path, client, encoder, partition_size, repeats):
    times, cpu = [], []
    for _ in range(repeats):
        with tempfile.TemporaryDirectory() as out:
            t, c = time.perf_counter(), workers_cpu(client)
            encode_corpus(path, out, model=encoder, client=client, partition_size=partition_size)
            times.append(time.perf_counter() - t); cpu.append(workers_cpu(client) - c)
    return statistics.median(times), statistics.median(cpu)

if __name__ == "__main__":
    corpus, tiny, workers, repeats = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    t = time.perf_counter()
    cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=":0",
                           env=WORKER_ENV)
    client = Client(cluster)
    startup = time.perf_counter() - t
    encoder = SentenceEncoder.from_pretrained("sentence-transformers/all-MiniLM-L6-v2")
    timed(tiny, client, encoder, 1, 1)  # warm: every worker loads the model once
    seconds, cpu = timed(corpus, client, encoder, 500, repeats)
    result = {"startup": startup, "seconds": seconds, "cpu": cpu,
              "tiny_1": timed(tiny, client, encoder, 200, repeats)[0],
              "tiny_200": timed(tiny, client, encoder, 1, repeats)[0]}
    client.close(); cluster.close()
    print(json.dumps(result))
"""


def run(code: str, *args: str, env: dict | None = None) -> dict:
    out = subprocess.run([sys.executable, "-c", textwrap.dedent(code), *args], capture_output=True, text=True,
                         cwd=REPO, env={**os.environ, **(env or {})})
    if out.returncode:
        sys.exit(f"benchmark process failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stsb", type=Path, default=DEFAULT_STSB)
    parser.add_argument("--sentences", type=int, default=2000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    rows = [line.split("\t") for line in args.stsb.read_text(encoding="utf-8").splitlines()]
    texts = [s for r in rows for s in r[5:7]][: args.sentences]
    with tempfile.TemporaryDirectory() as tmp:
        corpus, tiny = Path(tmp) / "corpus.txt", Path(tmp) / "tiny.txt"
        corpus.write_text("".join(t + "\n" for t in texts), encoding="utf-8")
        tiny.write_text("".join(f"word{i}\n" for i in range(200)), encoding="utf-8")
        single = run(SINGLE, str(corpus), str(args.repeats))
        one_thread = run(SINGLE, str(corpus), str(args.repeats), env={"MINIBERT_NUM_THREADS": "1",
                                                                       "OPENBLAS_NUM_THREADS": "1"})
        cluster = run(CLUSTER, str(corpus), str(tiny), str(args.workers), str(args.repeats))
    n = len(texts)
    overhead = (cluster["tiny_200"] - cluster["tiny_1"]) / 199
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from _harness import machine_line
    print(machine_line())
    print(f"{n} STS-B sentences, all-MiniLM-L6-v2, load average {os.getloadavg()[0]:.1f} at the end, "
          f"medians of {args.repeats}\n")
    print("| run | wall s | sentences/s | CPU s | sentences per CPU-second |\n|---|---:|---:|---:|---:|")
    for label, r in [("one process, all cores", single), ("one process, one thread (per core)", one_thread),
                     (f"encode_corpus, LocalCluster {args.workers} workers x 1 thread, partitions of 500 "
                      "(CPU: the workers')", cluster)]:
        print(f"| {label} | {r['seconds']:.2f} | {n / r['seconds']:.0f} | {r['cpu']:.2f} | {n / r['cpu']:.0f} |")
    print(f"\nLocalCluster start-up: {cluster['startup']:.2f} s; per extra partition: {overhead * 1000:.1f} ms "
          f"wall-clock on {args.workers} workers (200 one-word lines: {cluster['tiny_1']:.2f} s as 1 partition, "
          f"{cluster['tiny_200']:.2f} s as 200)")


if __name__ == "__main__":
    main()
