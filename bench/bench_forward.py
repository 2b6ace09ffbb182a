"""Forward pass, tokens per second: minibert.BertModel vs transformers.BertModel (eager, inference_mode) vs
onnxruntime (the same model exported to ONNX here, into a temporary folder), each in its own process.

    python bench/bench_forward.py [--rounds 5] [--reps 5] [--only minilm|bert-base] [--json out.json]
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Optional

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent))
from _harness import (main as bench_main, Worker, alternate, have, minibert_sides, serve, side_label,  # noqa: E402
                      threads, time_calls)

SHAPES = {"minilm": [(1, 16), (32, 64), (128, 32)], "bert-base": [(1, 128), (8, 128), (32, 128)]}
BERT_BASE = dict(vocab_size=30522, hidden_size=768, num_hidden_layers=12, num_attention_heads=12,
                 intermediate_size=3072, max_position_embeddings=512, type_vocab_size=2, hidden_act="gelu",
                 layer_norm_eps=1e-12, model_type="bert", architectures=["BertModel"])


def minilm_dir() -> Path:
    from minibert.hub import resolve_model_dir
    from minibert import DEFAULT_MODEL
    return resolve_model_dir(DEFAULT_MODEL)


def write_bert_base(folder: Path, seed: int = 0, config: Optional[dict] = None,
                    names: Optional[dict] = None) -> Path:
    """A bert-base-shaped checkpoint with random weights (std 0.02, LayerNorm 1/0): config.json + safetensors.

    `config` is the config.json written (BERT_BASE, or another family's: token types only when type_vocab_size,
    MPNet's relative position bias when relative_attention_num_buckets); `names` renames a layer's tensors from
    BERT's names to the family's ("attention.self.query" -> "attention.attn.q")."""
    import numpy as np
    from safetensors.numpy import save_file
    rng = np.random.default_rng(seed)
    c, names = config or BERT_BASE, names or {}
    H, I = c["hidden_size"], c["intermediate_size"]

    def normal(*shape):
        return (rng.standard_normal(shape, dtype=np.float32) * np.float32(0.02))

    t = {"embeddings.word_embeddings.weight": normal(c["vocab_size"], H),
         "embeddings.position_embeddings.weight": normal(c["max_position_embeddings"], H)}
    if c.get("type_vocab_size"):
        t["embeddings.token_type_embeddings.weight"] = normal(c["type_vocab_size"], H)
    t["embeddings.LayerNorm.weight"], t["embeddings.LayerNorm.bias"] = np.ones(H, np.float32), np.zeros(H, np.float32)
    t["pooler.dense.weight"], t["pooler.dense.bias"] = normal(H, H), np.zeros(H, np.float32)
    if c.get("relative_attention_num_buckets"):
        t["encoder.relative_attention_bias.weight"] = normal(c["relative_attention_num_buckets"],
                                                             c["num_attention_heads"])
    for i in range(c["num_hidden_layers"]):
        p = f"encoder.layer.{i}."
        for name, (out_dim, in_dim) in {"attention.self.query": (H, H), "attention.self.key": (H, H),
                                        "attention.self.value": (H, H), "attention.output.dense": (H, H),
                                        "intermediate.dense": (I, H), "output.dense": (H, I)}.items():
            t[p + names.get(name, name) + ".weight"] = normal(out_dim, in_dim)
            t[p + names.get(name, name) + ".bias"] = normal(out_dim)
        for ln in ("attention.output.LayerNorm", "output.LayerNorm"):
            t[p + names.get(ln, ln) + ".weight"] = np.ones(H, np.float32)
            t[p + names.get(ln, ln) + ".bias"] = np.zeros(H, np.float32)
    folder.mkdir(parents=True, exist_ok=True)
    save_file(t, str(folder / "model.safetensors"), metadata={"format": "pt"})
    (folder / "config.json").write_text(json.dumps(c, indent=1))
    return folder


def export_onnx(model_dir: Path, out: Path) -> Path:
    """transformers.BertModel -> ONNX (batch and sequence axes dynamic), in the calling process."""
    import torch
    from transformers import BertModel
    bert = BertModel.from_pretrained(str(model_dir)).eval()

    class LastHiddenState(torch.nn.Module):  # plain positional inputs, one output, for the TorchScript exporter
        def __init__(self):
            super().__init__()
            self.bert = bert

        def forward(self, input_ids, attention_mask):
            return self.bert(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state

    model = LastHiddenState().eval()
    ids = torch.ones((2, 8), dtype=torch.long)
    dynamic = {"input_ids": {0: "batch", 1: "seq"}, "attention_mask": {0: "batch", 1: "seq"},
               "last_hidden_state": {0: "batch", 1: "seq"}}
    with torch.no_grad():
        torch.onnx.export(model, (ids, torch.ones_like(ids)), str(out), input_names=["input_ids", "attention_mask"],
                          output_names=["last_hidden_state"], dynamic_axes=dynamic, opset_version=17, dynamo=False)
    return out


# ---------------------------------------------------------------------------------------------------------------
# Workers: one per side, loading each model once
# ---------------------------------------------------------------------------------------------------------------

def worker(side: str, models: dict) -> None:
    import numpy as np
    loaded = {}

    def load(name):
        if name not in loaded:
            path = models[name]
            if side.startswith("minibert"):
                from minibert import BertModel
                m = BertModel.from_pretrained(path)
                loaded[name] = lambda ids, mask: m(ids, attention_mask=mask)
            elif side == "pytorch":
                import torch
                from transformers import BertModel
                m = BertModel.from_pretrained(path).eval()

                def run(ids, mask, m=m):
                    with torch.inference_mode():
                        return m(input_ids=torch.from_numpy(ids), attention_mask=torch.from_numpy(mask))
                loaded[name] = run
            else:
                import onnxruntime as ort
                opts = ort.SessionOptions()
                opts.intra_op_num_threads, opts.inter_op_num_threads = threads(), 1
                s = ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])
                loaded[name] = lambda ids, mask, s=s: s.run(None, {"input_ids": ids, "attention_mask": mask})
        return loaded[name]

    if side == "pytorch":
        import torch
        torch.set_num_threads(threads())
    print(json.dumps({"side": side, "threads": threads()}), flush=True)

    def handle(job):
        B, T = job["shape"]
        rng = np.random.default_rng(0)
        ids = rng.integers(1000, 20000, (B, T)).astype(np.int64)
        mask = np.ones((B, T), dtype=np.int64)
        fn = load(job["model"])
        return {"seconds": time_calls(lambda: fn(ids, mask), job["reps"])}

    serve(handle)


def run(rounds: int = 5, reps: int = 5, only=None) -> dict:
    """Every shape, every available side; returns {"rows": [...], "notes": [...], "threads": n}."""
    n = threads()
    notes, rows = [], []
    tmp = tempfile.TemporaryDirectory(prefix="minibert-bench-")
    folder = Path(tmp.name)
    paths = {"minilm": {"minibert": str(minilm_dir())},
             "bert-base": {"minibert": str(write_bert_base(folder / "bert-base"))}}
    missing_torch = have("torch", "transformers")
    if missing_torch:
        notes.append(f"PyTorch side {missing_torch}")
    missing_ort = missing_torch or have("onnxruntime", "onnx")
    if missing_ort:
        notes.append(f"onnxruntime side {missing_ort}")
    for name in paths:
        paths[name]["pytorch"] = paths[name]["minibert"]
        if not missing_ort and "onnxruntime" in os.environ.get("BENCH_SIDES", "onnxruntime"):
            paths[name]["onnxruntime"] = str(export_onnx(Path(paths[name]["minibert"]), folder / f"{name}.onnx"))
    ours = minibert_sides()
    sides = ours + ([] if missing_torch else ["pytorch"]) + ([] if missing_ort else ["onnxruntime"])
    wanted = os.environ.get("BENCH_SIDES", ",".join(sides)).split(",")
    sides = [s for s in sides if s in wanted or (s in ours and "minibert" in wanted)]  # "minibert": both ways
    script = Path(__file__).resolve()
    workers = [Worker(script, s, [json.dumps({k: v.get("minibert" if s in ours else s) for k, v in paths.items()})],
                      n) for s in sides]
    try:
        for name, shapes in SHAPES.items():
            if only and name != only:
                continue
            for B, T in shapes:
                job = {"model": name, "shape": [B, T], "reps": reps}
                for w in workers:  # warm-up round (first call loads and lays out the weights)
                    w.ask({**job, "reps": 1})
                medians = alternate(workers, job, rounds)
                rows.append({"model": name, "B": B, "T": T, "seconds": medians,
                             "tokens_per_s": {s: B * T / t for s, t in medians.items()}})
                print(format_row(rows[-1]), flush=True)
    finally:
        for w in workers:
            w.close()
        tmp.cleanup()
    return {"rows": rows, "notes": notes, "threads": n, "minibert_sides": ours}


REFERENCES = ("pytorch", "onnxruntime")


def format_row(row: dict) -> str:
    tps = row["tokens_per_s"]
    parts = [f"{row['model']:<9} B={row['B']:<3} T={row['T']:<3}"] + [f"{s} {v:9.0f} tok/s" for s, v in tps.items()]
    for ours in (s for s in tps if s.startswith("minibert")):
        parts += [f"{ours} x{tps[ours] / tps[ref]:.2f} vs {ref}" for ref in REFERENCES if ref in tps]
    return "  ".join(parts)


def markdown(result: dict) -> str:
    """One column of tokens/s per side, then each minibert side's ratio to each reference."""
    ours = result.get("minibert_sides", ["minibert"])
    ratios = [(o, r) for o in ours for r in REFERENCES]
    head = [side_label(s) + " tok/s" for s in [*ours, *REFERENCES]] + \
        [f"{side_label(o)} vs {side_label(r)}" for o, r in ratios]
    lines = ["| model | B | T | " + " | ".join(head) + " |", "|---" * (3 + len(head)) + "|"]
    for r in result["rows"]:
        t = r["tokens_per_s"]
        cells = [f"{t[s]:,.0f}" if s in t else "-" for s in [*ours, *REFERENCES]] + \
            [f"**{t[o] / t[ref]:.2f}x**" if ref in t and o in t else "-" for o, ref in ratios]
        lines.append(f"| {r['model']} | {r['B']} | {r['T']} | " + " | ".join(cells) + " |")
    return "\n".join(lines + [f"\n{n}" for n in result["notes"]])


def main() -> None:
    if len(sys.argv) > 2 and sys.argv[1] == "--worker":
        return worker(sys.argv[2], json.loads(sys.argv[3]))
    bench_main(__doc__, run, markdown, only=list(SHAPES))


if __name__ == "__main__":
    main()
