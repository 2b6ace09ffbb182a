"""The BERT family at bert-base shape, tokens per second: minibert.AutoModel vs transformers.AutoModel (eager
attention, inference_mode) on random-weight BERT, MPNet and XLM-R checkpoints written into a temporary folder,
each side in its own process; MPNet's relative position bias as its cost over BERT on each side; and the
resident memory of loading the XLM-R checkpoint (a 768 MB embedding table) in a fresh process.

    python bench/bench_families.py [--rounds 5] [--reps 3] [--only speed|memory] [--json out.json]
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Dict, List

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent))
from _harness import main as bench_main, PAUSE, Worker, have, serve, thread_env, threads, time_calls  # noqa: E402
from bench_forward import BERT_BASE, write_bert_base  # noqa: E402

SHAPES = [(1, 128), (32, 128)]
MPNET = {**{k: v for k, v in BERT_BASE.items() if k != "type_vocab_size"}, "model_type": "mpnet",
         "architectures": ["MPNetModel"], "max_position_embeddings": 514, "pad_token_id": 1,
         "relative_attention_num_buckets": 32, "layer_norm_eps": 1e-5}
XLMR = {**BERT_BASE, "model_type": "xlm-roberta", "architectures": ["XLMRobertaModel"], "vocab_size": 250002,
        "type_vocab_size": 1, "max_position_embeddings": 514, "pad_token_id": 1, "layer_norm_eps": 1e-5}
MPNET_NAMES = {"attention.self.query": "attention.attn.q", "attention.self.key": "attention.attn.k",
               "attention.self.value": "attention.attn.v", "attention.output.dense": "attention.attn.o",
               "attention.output.LayerNorm": "attention.LayerNorm"}
MODELS = {"bert": (BERT_BASE, None), "mpnet": (MPNET, MPNET_NAMES), "xlm-r": (XLMR, None)}
SHORT_IDS = [0, 581, 7515, 11301, 98, 70, 5, 2]  # one short sentence's worth of token ids, for the memory test
PROBE_TOKENS = 4  # hidden states of the first tokens of the first sequence, compared between the sides


def write_checkpoints(folder: Path) -> Dict[str, str]:
    """Every model of MODELS as a random-weight checkpoint under folder/<name>; name -> folder."""
    return {name: str(write_bert_base(folder / name, config=config, names=names))
            for name, (config, names) in MODELS.items()}


# ---------------------------------------------------------------------------------------------------------------
# Speed: one worker per side, each model loaded once
# ---------------------------------------------------------------------------------------------------------------

def load(side: str, path: str):
    """(forward function of (ids, mask) -> last hidden state as NumPy, what loading left out: {} if nothing)."""
    if side == "minibert":
        from minibert import AutoModel
        m = AutoModel.from_pretrained(path)
        return (lambda ids, mask: m(ids, attention_mask=mask).last_hidden_state), {}
    import torch
    from transformers import AutoModel
    from transformers.utils import logging
    logging.disable_progress_bar()
    m, info = AutoModel.from_pretrained(path, attn_implementation="eager", output_loading_info=True)
    m.eval()

    def run(ids, mask):
        with torch.inference_mode():
            return m(input_ids=torch.from_numpy(ids), attention_mask=torch.from_numpy(mask)).last_hidden_state.numpy()
    return run, {k: sorted(v) for k, v in info.items() if v}


def worker(side: str, paths: Dict[str, str]) -> None:
    import numpy as np
    loaded = {}
    if side == "pytorch":
        import torch
        torch.set_num_threads(threads())
    print(json.dumps({"side": side, "threads": threads()}), flush=True)

    def handle(job):
        if job["model"] not in loaded:
            loaded[job["model"]] = load(side, paths[job["model"]])
        fn, left_out = loaded[job["model"]]
        B, T = job["shape"]
        ids = np.random.default_rng(0).integers(1000, 20000, (B, T)).astype(np.int64)
        mask = np.ones((B, T), dtype=np.int64)
        answer = {"seconds": time_calls(lambda: fn(ids, mask), job["reps"])}
        if job.get("probe"):
            answer.update(probe=fn(ids, mask)[0, :PROBE_TOKENS].tolist(), left_out=left_out)
        return answer

    serve(handle)


def measure(workers: List[Worker], B: int, T: int, rounds: int, reps: int) -> dict:
    """Every model on every side, `rounds` times: sides alternate, and within a side the models alternate (so
    each round's MPNet/BERT ratio compares two runs made moments apart). Medians over rounds, per-round ratios."""
    names = list(MODELS)
    probes, left_out = {}, {}
    for w in workers:  # warm-up (loads the model, lays out its weights) and the sides' first tokens, to compare
        for name in names:
            a = w.ask({"model": name, "shape": [B, T], "reps": 1, "probe": True})
            probes[w.side, name] = a["probe"]
            if a["left_out"]:
                left_out[name] = a["left_out"]
    seen = {(w.side, name): [] for w in workers for name in names}
    for r in range(rounds):
        for w in (workers if r % 2 == 0 else workers[::-1]):
            for name in (names if r % 2 == 0 else names[::-1]):
                seen[w.side, name].append(statistics.median(w.ask({"model": name, "shape": [B, T],
                                                                    "reps": reps})["seconds"]))
            time.sleep(PAUSE)
    row = {"B": B, "T": T, "seconds": {f"{s}/{n}": statistics.median(v) for (s, n), v in seen.items()},
           "mpnet_over_bert": {}, "max_diff": {}, "left_out": left_out}
    for w in workers:
        ratios = [m / b - 1 for m, b in zip(seen[w.side, "mpnet"], seen[w.side, "bert"])]
        row["mpnet_over_bert"][w.side] = {"median": statistics.median(ratios), "min": min(ratios),
                                          "max": max(ratios)}
    if len(workers) > 1:
        import numpy as np
        for name in names:
            row["max_diff"][name] = float(np.abs(np.array(probes["minibert", name])
                                                 - np.array(probes["pytorch", name])).max())
    print(format_row(row), flush=True)
    return row


def format_row(row: dict) -> str:
    B, T, s = row["B"], row["T"], row["seconds"]
    parts = [f"B={B:<3} T={T:<3}"]
    for name in MODELS:
        tps = {side: B * T / s[f"{side}/{name}"] for side in ("minibert", "pytorch") if f"{side}/{name}" in s}
        parts.append(f"{name} " + " ".join(f"{side} {v:,.0f}" for side, v in tps.items())
                     + (f" x{tps['minibert'] / tps['pytorch']:.2f}" if len(tps) == 2 else ""))
    parts += [f"mpnet/bert-1 {side} {v['median']:+.1%}" for side, v in row["mpnet_over_bert"].items()]
    return "  ".join(parts)


# ---------------------------------------------------------------------------------------------------------------
# Memory: a fresh process loads the XLM-R checkpoint, then runs one short sentence
# ---------------------------------------------------------------------------------------------------------------

def status_mib() -> Dict[str, float]:
    """This process's VmRSS, VmHWM (peak), RssAnon (its own memory) and RssFile (mapped file pages), in MiB."""
    with open("/proc/self/status") as f:
        fields = dict(line.split(":", 1) for line in f)
    return {k: int(fields[k].split()[0]) / 1024 for k in ("VmRSS", "VmHWM", "RssAnon", "RssFile")}


def memory_child(side: str, folder: str) -> None:
    """Print the memory figures after import, after from_pretrained and after the first forward, as JSON."""
    import numpy as np
    ids = np.array([SHORT_IDS])
    if side == "minibert":
        from minibert import AutoModel
        marks = {"imported": status_mib()}
        m = AutoModel.from_pretrained(folder)
        marks["loaded"] = status_mib()
        start = time.perf_counter()
        m(ids)
        marks["forward"] = {**status_mib(), "seconds": time.perf_counter() - start}
        base = m.weights.embeddings.word
        while isinstance(base, (np.ndarray, memoryview)):
            base = base.obj if isinstance(base, memoryview) else base.base
        marks["word_table"] = type(base).__name__  # "mmap": a view of the file, not a copy
    else:
        import torch
        from transformers import AutoModel
        torch.set_num_threads(threads())
        marks = {"imported": status_mib()}
        m = AutoModel.from_pretrained(folder, attn_implementation="eager").eval()
        marks["loaded"] = status_mib()
        start = time.perf_counter()
        with torch.inference_mode():
            m(input_ids=torch.from_numpy(ids))
        marks["forward"] = {**status_mib(), "seconds": time.perf_counter() - start}
    print(json.dumps(marks))


def memory(folder: str, sides: List[str], rounds: int) -> dict:
    """Each side `rounds` times in a fresh process, alternating; every run's marks."""
    runs = {s: [] for s in sides}
    for r in range(rounds):
        for s in (sides if r % 2 == 0 else sides[::-1]):
            out = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--memory-child", s, folder],
                                 env=thread_env(threads()), capture_output=True, text=True)
            if out.returncode:
                raise RuntimeError(f"memory run of {s} failed:\n{out.stderr[-2000:]}")
            runs[s].append(json.loads(out.stdout.splitlines()[-1]))
            time.sleep(PAUSE)
    for s, v in runs.items():
        print(f"{s:<9} " + "; ".join(f"load +{m['loaded']['VmRSS'] - m['imported']['VmRSS']:.1f} MiB, first forward "
                                     f"+{m['forward']['VmRSS'] - m['loaded']['VmRSS']:.1f} MiB" for m in v), flush=True)
    return runs


# ---------------------------------------------------------------------------------------------------------------
# The whole benchmark
# ---------------------------------------------------------------------------------------------------------------

def run(rounds: int = 5, reps: int = 3, only=None) -> dict:
    """Speed at every shape and the memory test, every available side."""
    notes, result = [], {"threads": threads(), "rows": [], "memory": {}}
    missing = have("torch", "transformers")
    sides = ["minibert"] + ([] if missing else ["pytorch"])
    if missing:
        notes.append(f"PyTorch side {missing}")
    with tempfile.TemporaryDirectory(prefix="minibert-bench-") as tmp:
        paths = write_checkpoints(Path(tmp))
        if only != "memory":
            script = Path(__file__).resolve()
            workers = [Worker(script, s, [json.dumps(paths)], threads()) for s in sides]
            try:
                result["rows"] = [measure(workers, B, T, rounds, reps) for B, T in SHAPES]
            finally:
                for w in workers:
                    w.close()
        if only != "speed":
            result["memory"] = memory(paths["xlm-r"], sides, max(2, rounds // 2))
    result["notes"] = notes
    return result


def markdown(result: dict) -> str:
    lines = []
    if result["rows"]:
        lines += ["| model | B | T | minibert tok/s | PyTorch tok/s | vs PyTorch | max abs diff (first tokens) |",
                  "|---|---|---|---|---|---|---|"]
        for r in result["rows"]:
            for name in MODELS:
                tps = {side: r["B"] * r["T"] / r["seconds"][f"{side}/{name}"] for side in ("minibert", "pytorch")
                       if f"{side}/{name}" in r["seconds"]}
                cell = lambda s: f"{tps[s]:,.0f}" if s in tps else "-"  # noqa: E731
                ratio = f"**{tps['minibert'] / tps['pytorch']:.2f}x**" if "pytorch" in tps else "-"
                diff = f"{r['max_diff'][name]:.1e}" if name in r["max_diff"] else "-"
                lines.append(f"| {name} | {r['B']} | {r['T']} | {cell('minibert')} | {cell('pytorch')} | {ratio} "
                             f"| {diff} |")
        lines += ["", "MPNet's time over BERT's, same side, same shape (median of the rounds' paired ratios; range):",
                  "", "| B | T | " + " | ".join(result["rows"][0]["mpnet_over_bert"]) + " |",
                  "|---|---|" + "---|" * len(result["rows"][0]["mpnet_over_bert"])]
        for r in result["rows"]:
            lines.append(f"| {r['B']} | {r['T']} | " + " | ".join(
                f"**{v['median']:+.1%}** ({v['min']:+.1%} to {v['max']:+.1%})" for v in r["mpnet_over_bert"].values())
                + " |")
        left_out = {name: v for r in result["rows"] for name, v in r["left_out"].items()}
        lines += ["", "transformers loaded every checkpoint without missing or unexpected keys." if not left_out
                  else f"transformers' loading info (not empty!): {left_out}"]
    if result["memory"]:
        lines += ["", "XLM-R checkpoint (1.1 GB, of which the word table 768 MB), fresh process; MiB, median of "
                  "the runs (range):", "",
                  "| side | RSS after import | load: RSS growth | first forward: RSS growth | of which anonymous | "
                  "peak RSS (VmHWM) | first forward, s | word table after the forward |",
                  "|---|---|---|---|---|---|---|---|"]
        for side, runs in result["memory"].items():
            def span(f):
                v = [f(m) for m in runs]
                return f"{statistics.median(v):,.1f} ({min(v):,.1f}-{max(v):,.1f})"
            lines.append(f"| {side} | {span(lambda m: m['imported']['VmRSS'])} "
                         f"| **+{span(lambda m: m['loaded']['VmRSS'] - m['imported']['VmRSS'])}** "
                         f"| +{span(lambda m: m['forward']['VmRSS'] - m['loaded']['VmRSS'])} "
                         f"| +{span(lambda m: m['forward']['RssAnon'] - m['loaded']['RssAnon'])} "
                         f"| {span(lambda m: m['forward']['VmHWM'])} | {span(lambda m: m['forward']['seconds'])} "
                         f"| {runs[0].get('word_table', '-')} |")
    return "\n".join(lines + [f"\n{n}" for n in result["notes"]])


def main() -> None:
    if len(sys.argv) > 2 and sys.argv[1] == "--worker":
        return worker(sys.argv[2], json.loads(sys.argv[3]))
    if len(sys.argv) > 3 and sys.argv[1] == "--memory-child":
        return memory_child(sys.argv[2], sys.argv[3])
    bench_main(__doc__, run, markdown, reps=3, only=["speed", "memory"])


if __name__ == "__main__":
    main()
