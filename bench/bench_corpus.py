"""Real corpus: SentenceEncoder.encode vs SentenceTransformer.encode on every sentence of the WiC train split
(columns 4 and 5 of data/wic/train.data.txt under MINIBERT_SHARED, default ../shared), batch size 32, sentences
per second, each side in its own process, alternating; the two sides' vectors must agree (cosine >= 0.99999 on
every row) or the benchmark fails.

    python bench/bench_corpus.py [--rounds 5]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent))
from _harness import (REPO, Worker, alternate, have, machine_line, minibert_sides, serve, side_label,  # noqa: E402
                      threads, time_calls)

MIN_COSINE = 0.99999
BATCH = 32


def wic_sentences() -> list:
    shared = Path(os.environ.get("MINIBERT_SHARED", REPO.parent / "shared"))
    path = shared / "data" / "wic" / "train.data.txt"
    if not path.exists():
        raise SystemExit(f"{path} not found: set MINIBERT_SHARED to the folder holding data/wic/")
    sentences = []
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            cols = line.rstrip("\n").split("\t")
            if len(cols) < 5:
                raise SystemExit(f"{path}:{n}: expected 5 tab-separated columns, got {len(cols)}")
            sentences += cols[3:5]
    return sentences


def worker(side: str, args: dict) -> None:
    sentences = json.loads(Path(args["sentences"]).read_text())
    if side.startswith("minibert"):
        from minibert.encoder import SentenceEncoder
        model = SentenceEncoder.from_pretrained()
        encode = lambda: model.encode(sentences, batch_size=BATCH)  # noqa: E731
    else:
        import torch
        from sentence_transformers import SentenceTransformer
        from minibert.hub import DEFAULT_MODEL, resolve_model_dir
        torch.set_num_threads(threads())
        model = SentenceTransformer(str(resolve_model_dir(DEFAULT_MODEL)), device="cpu")
        encode = lambda: model.encode(sentences, batch_size=BATCH)  # noqa: E731
    print(json.dumps({"side": side, "threads": threads()}), flush=True)

    def handle(job):
        if job.get("save"):
            import numpy as np
            np.save(job["save"], encode())
            return {"seconds": [0.0]}
        return {"seconds": time_calls(encode, job["reps"], warmup=0)}

    serve(handle)


def run(rounds: int = 5) -> dict:
    import numpy as np
    missing = have("sentence_transformers", "torch") or have("minibert.encoder")
    if missing:
        return {"skipped": f"corpus benchmark {missing}"}
    sentences = wic_sentences()
    with tempfile.TemporaryDirectory(prefix="minibert-corpus-") as tmp:
        path = Path(tmp) / "sentences.json"
        path.write_text(json.dumps(sentences))
        script = Path(__file__).resolve()
        ours = minibert_sides()
        workers = [Worker(script, s, [json.dumps({"sentences": str(path)})], threads())
                   for s in (*ours, "sentence-transformers")]
        try:
            vectors = {}
            for w in workers:  # warm-up run, which also gives the vectors to compare
                w.ask({"save": str(Path(tmp) / f"{w.side}.npy")})
                vectors[w.side] = np.load(Path(tmp) / f"{w.side}.npy")
            b, smallest = vectors["sentence-transformers"], 1.0
            for side in ours:
                a = vectors[side]
                cos = (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)
                if cos.min() < MIN_COSINE:
                    raise SystemExit(f"corpus benchmark FAILED: row {int(cos.argmin())} has cosine {cos.min():.7f} "
                                     f"< {MIN_COSINE} between {side} and sentence-transformers")
                smallest = min(smallest, float(cos.min()))
            medians = alternate(workers, {"reps": 1}, rounds)
        finally:
            for w in workers:
                w.close()
    result = {"sentences": len(sentences), "min_cosine": smallest, "seconds": medians,
              "sentences_per_s": {s: len(sentences) / t for s, t in medians.items()}}
    sps = result["sentences_per_s"]
    print(f"{len(sentences)} sentences, min cosine {smallest:.7f}: " + "  ".join(
        f"{s} {v:.0f}/s" for s, v in sps.items()) + "".join(
        f"  {side} x{sps[side] / sps['sentence-transformers']:.2f}" for side in ours))
    return result


def markdown(result: dict) -> str:
    if "skipped" in result:
        return result["skipped"]
    s, st = result["sentences_per_s"], result["sentences_per_s"]["sentence-transformers"]
    return "\n".join(["| side | sentences/s | vs sentence-transformers |", "|---|---|---|"] + [
        f"| {side_label(side)} | {v:,.0f} | **{v / st:.2f}x** |" for side, v in s.items()] + [
        f"\n{result['sentences']:,} sentences; smallest cosine to sentence-transformers' vector: "
        f"{result['min_cosine']:.7f}"])


def main() -> None:
    if len(sys.argv) > 2 and sys.argv[1] == "--worker":
        return worker(sys.argv[2], json.loads(sys.argv[3]))
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rounds", type=int, default=5)
    a = p.parse_args()
    print(machine_line(), f"| threads per side: {threads()}", flush=True)
    print(markdown(run(a.rounds)))


if __name__ == "__main__":
    main()
