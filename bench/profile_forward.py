"""Where minibert's forward time goes: the share of each step of the fast path, per forward shape.

    python bench/profile_forward.py [--rounds 5]   (B=1 shapes: 20 times as many)

Times every call of the fast path's steps (weight products, attention, activation, layer norm) with wrappers
around the functions of minibert/fast.py; "other" is the rest of the forward time (bias and residual additions,
embeddings, copies, Python). Batch shapes run on one thread with the BLAS single-threaded, which is what each of
the cores does in a batched forward (each thread takes its own sequences); B=1 runs as the default forward does,
on the BLAS's threads. A wrapped call costs about a microsecond, so B=1's "other" is slightly overstated.
Models: all-MiniLM-L6-v2 (real weights) and the bert-base-shaped random model of bench_forward.py.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections import defaultdict
from contextlib import nullcontext
from pathlib import Path

import numpy as np

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent))
from _harness import machine_line  # noqa: E402
from bench_forward import minilm_dir, write_bert_base  # noqa: E402

from minibert import BertModel, blas, fast  # noqa: E402
from minibert.model import ACTIVATIONS, position_ids  # noqa: E402

SHAPES = [("minilm", 1, 16), ("minilm", 32, 64), ("bert-base", 1, 128), ("bert-base", 32, 128)]
STEPS = ("weight products", "attention", "activation", "layer norm", "other")


class Timers:
    """Wraps fast.py's step functions so each call adds its wall time to its step."""

    def __init__(self):
        self.seconds = defaultdict(float)
        self.saved = []

    def wrap(self, owner, name: str, step: str, key=None) -> None:
        original = owner[key] if key is not None else getattr(owner, name)

        def timed(*args, **kwargs):
            t = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                self.seconds[step] += time.perf_counter() - t

        if key is not None:
            self.saved.append((owner, key, original, True))
            owner[key] = timed
        else:
            self.saved.append((owner, name, original, False))
            setattr(owner, name, timed)

    def restore(self) -> None:
        for owner, name, original, is_key in reversed(self.saved):
            if is_key:
                owner[name] = original
            else:
                setattr(owner, name, original)


def profile(model: BertModel, B: int, T: int, rounds: int) -> dict:
    rng = np.random.default_rng(0)
    ids = rng.integers(1000, min(20000, model.config.vocab_size), (B, T))
    mask, types = np.ones_like(ids), np.zeros_like(ids)
    batch = B > 1
    context = blas.single_threaded() if batch else nullcontext()
    positions = position_ids(ids, model.config)
    run = lambda: fast.packed_forward(ids, mask, types, positions, model.weights, model.config,  # noqa: E731
                                      threads=1 if batch else None)
    with context:
        run()  # warm-up: lays out the weights
        timers = Timers()
        timers.wrap(fast, "matmul", "weight products")
        timers.wrap(fast, "packed_attention", "attention")
        timers.wrap(fast, "layer_norm_", "layer norm")
        timers.wrap(fast.IN_PLACE, "", "activation", key=ACTIVATIONS[model.config.hidden_act])
        try:
            total = 0.0
            for _ in range(rounds):
                t = time.perf_counter()
                run()
                total += time.perf_counter() - t
        finally:
            timers.restore()
    shares = {step: timers.seconds[step] / total for step in STEPS[:-1]}
    shares["other"] = 1 - sum(shares.values())
    return {"ms": 1e3 * total / rounds, "shares": shares}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5, help="forward passes per batch shape (x20 at B=1)")
    args = parser.parse_args()
    print(machine_line())
    with tempfile.TemporaryDirectory() as tmp:
        models = {"minilm": BertModel.from_pretrained(str(minilm_dir())),
                  "bert-base": BertModel.from_pretrained(str(write_bert_base(Path(tmp))))}
        print("| model | B | T | threads | ms per forward | " + " | ".join(STEPS) + " |")
        print("|---|---|---|---|---|" + "---|" * len(STEPS))
        for name, B, T in SHAPES:
            r = profile(models[name], B, T, args.rounds * (20 if B == 1 else 1))  # B=1: short and noisy
            how = "1 (BLAS 1 thread)" if B > 1 else "BLAS's own"
            print(f"| {name} | {B} | {T} | {how} | {r['ms']:.1f} | "
                  + " | ".join(f"{100 * r['shares'][s]:.0f}%" for s in STEPS) + " |", flush=True)


if __name__ == "__main__":
    main()
