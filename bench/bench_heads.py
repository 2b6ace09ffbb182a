"""Task heads, wall time per call: minibert's CrossEncoder.rank and fill_mask vs sentence-transformers'
CrossEncoder.rank and transformers' fill-mask pipeline, each side in its own process (see _harness.py).

    python bench/bench_heads.py [--rounds 5] [--reps 5]

Two all-MiniLM-L6-v2-shaped checkpoints with random weights (H 384, 6 layers, 12 heads, vocabulary 30,522, the
packaged MiniLM's tokenizer) are written into a temporary folder: a one-label cross-encoder reranking 100
documents of 20 to 120 words for one query (batch 32, 512-token limit), and a masked-LM model filling the mask
of one sentence (top 5).
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent))
from _harness import main as bench_main, Worker, alternate, have, serve, threads, time_calls  # noqa: E402

MINILM = dict(vocab_size=30522, hidden_size=384, num_hidden_layers=6, num_attention_heads=12, intermediate_size=1536,
              max_position_embeddings=512, type_vocab_size=2, hidden_act="gelu", layer_norm_eps=1e-12,
              model_type="bert", pad_token_id=0)
WORDS = ("the river bank holds money while a cat sat on the mat and chased every mouse it could find near the old "
         "house by the sea where people live work and read books about history science music and art").split()
QUERY = "Where did the cat sit?"
SENTENCE = "The cat [MASK] on the mat."
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "special_tokens_map.json")


def documents(n: int = 100) -> list:
    import numpy as np
    rng = np.random.default_rng(0)
    return [" ".join(rng.choice(WORDS, int(rng.integers(20, 121)))).capitalize() + "." for _ in range(n)]


def write_checkpoint(folder: Path, head: str, seed: int) -> Path:
    """A MiniLM-shaped checkpoint with random weights (std 0.02) and a head: "classifier" (one label, with the
    pooler it reads) or "mlm" (tied decoder); the packaged MiniLM's tokenizer files beside it."""
    import numpy as np
    from safetensors.numpy import save_file
    from minibert import DEFAULT_MODEL
    from minibert.hub import resolve_model_dir
    rng = np.random.default_rng(seed)
    c = MINILM
    H, I, V = c["hidden_size"], c["intermediate_size"], c["vocab_size"]

    def normal(*shape):
        return rng.standard_normal(shape, dtype=np.float32) * np.float32(0.02)

    ones, zeros = (lambda n: np.ones(n, np.float32)), (lambda n: np.zeros(n, np.float32))
    t = {"bert.embeddings.word_embeddings.weight": normal(V, H),
         "bert.embeddings.position_embeddings.weight": normal(c["max_position_embeddings"], H),
         "bert.embeddings.token_type_embeddings.weight": normal(c["type_vocab_size"], H),
         "bert.embeddings.LayerNorm.weight": ones(H), "bert.embeddings.LayerNorm.bias": zeros(H)}
    for i in range(c["num_hidden_layers"]):
        p = f"bert.encoder.layer.{i}."
        for name, (out_dim, in_dim) in {"attention.self.query": (H, H), "attention.self.key": (H, H),
                                        "attention.self.value": (H, H), "attention.output.dense": (H, H),
                                        "intermediate.dense": (I, H), "output.dense": (H, I)}.items():
            t[p + name + ".weight"], t[p + name + ".bias"] = normal(out_dim, in_dim), normal(out_dim)
        for ln in ("attention.output.LayerNorm", "output.LayerNorm"):
            t[p + ln + ".weight"], t[p + ln + ".bias"] = ones(H), zeros(H)
    if head == "classifier":
        t.update({"bert.pooler.dense.weight": normal(H, H), "bert.pooler.dense.bias": zeros(H),
                  "classifier.weight": normal(1, H), "classifier.bias": zeros(1)})
        config = {**c, "architectures": ["BertForSequenceClassification"], "id2label": {"0": "LABEL_0"},
                  "label2id": {"LABEL_0": 0}}
    else:
        p = "cls.predictions."
        t.update({p + "transform.dense.weight": normal(H, H), p + "transform.dense.bias": zeros(H),
                  p + "transform.LayerNorm.weight": ones(H), p + "transform.LayerNorm.bias": zeros(H),
                  p + "bias": zeros(V)})
        config = {**c, "architectures": ["BertForMaskedLM"]}
    folder.mkdir(parents=True, exist_ok=True)
    save_file(t, str(folder / "model.safetensors"), metadata={"format": "pt"})
    (folder / "config.json").write_text(json.dumps(config, indent=1))
    source = resolve_model_dir(DEFAULT_MODEL)
    for name in TOKENIZER_FILES:
        if (source / name).is_file():
            shutil.copy(source / name, folder / name)
    return folder


# ---------------------------------------------------------------------------------------------------------------
# Workers: one per side, loading each model once
# ---------------------------------------------------------------------------------------------------------------

def worker(side: str, paths: dict) -> None:
    docs = documents()
    if side == "minibert":
        from minibert import AutoModelForMaskedLM, CrossEncoder, Tokenizer, fill_mask
        ranker = CrossEncoder.from_pretrained(paths["rerank"])
        mlm, tok = AutoModelForMaskedLM.from_pretrained(paths["fill"]), Tokenizer.from_pretrained(paths["fill"])
        jobs = {"rerank": lambda: ranker.rank(QUERY, docs), "fill": lambda: fill_mask(mlm, tok, SENTENCE)}
    else:
        import torch
        import transformers
        from sentence_transformers import CrossEncoder
        torch.set_num_threads(threads())
        ranker = CrossEncoder(paths["rerank"], device="cpu")
        pipe = transformers.pipeline("fill-mask", model=paths["fill"], device="cpu")

        def fill():
            with torch.inference_mode():
                return pipe(SENTENCE, top_k=5)
        jobs = {"rerank": lambda: ranker.rank(QUERY, docs), "fill": fill}
    print(json.dumps({"side": side, "threads": threads()}), flush=True)
    serve(lambda job: {"seconds": time_calls(jobs[job["task"]], job["reps"]), "top": _top(jobs[job["task"]]())})


def _top(result) -> object:
    """What a call found, to check the two sides agree: the best document's id, or the best token."""
    return result[0]["corpus_id"] if "corpus_id" in result[0] else result[0]["token"]


def run(rounds: int = 5, reps: int = 5) -> dict:
    missing = have("torch", "transformers", "sentence_transformers")
    if missing:
        return {"rows": [], "notes": [f"reference side {missing}"], "threads": threads()}
    tmp = tempfile.TemporaryDirectory(prefix="minibert-bench-heads-")
    folder = Path(tmp.name)
    paths = {"rerank": str(write_checkpoint(folder / "cross-encoder", "classifier", 0)),
             "fill": str(write_checkpoint(folder / "mlm", "mlm", 1))}
    script = Path(__file__).resolve()
    workers = [Worker(script, side, [json.dumps(paths)], threads()) for side in ("minibert", "reference")]
    rows = []
    try:
        for task, what in (("rerank", "CrossEncoder.rank, 1 query x 100 documents"),
                           ("fill", "fill-mask, one sentence, top 5")):
            job = {"task": task, "reps": reps}
            tops = {w.side: w.ask({**job, "reps": 1})["top"] for w in workers}  # warm-up; both must agree
            medians = alternate(workers, job, rounds)
            rows.append({"task": what, "seconds": medians, "same_top": len(set(tops.values())) == 1})
            print(format_row(rows[-1]), flush=True)
    finally:
        for w in workers:
            w.close()
        tmp.cleanup()
    return {"rows": rows, "notes": [], "threads": threads()}


def format_row(row: dict) -> str:
    s = row["seconds"]
    return (f"{row['task']:<45} minibert {s['minibert'] * 1e3:8.1f} ms  reference {s['reference'] * 1e3:8.1f} ms  "
            f"x{s['reference'] / s['minibert']:.2f}  same top result: {row['same_top']}")


def markdown(result: dict) -> str:
    lines = ["| task | minibert ms | reference ms | speed-up | same top result |", "|---|---|---|---|---|"]
    for r in result["rows"]:
        s = r["seconds"]
        lines.append(f"| {r['task']} | {s['minibert'] * 1e3:,.1f} | {s['reference'] * 1e3:,.1f} | "
                     f"**{s['reference'] / s['minibert']:.2f}x** | {r['same_top']} |")
    return "\n".join(lines + [f"\n{n}" for n in result["notes"]])


def main() -> None:
    if len(sys.argv) > 2 and sys.argv[1] == "--worker":
        return worker(sys.argv[2], json.loads(sys.argv[3]))
    bench_main(__doc__, run, markdown)


if __name__ == "__main__":
    main()
