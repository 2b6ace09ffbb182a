"""Loading memory-maps a checkpoint: measured by the resident memory (RSS) of a fresh process, not by timing.

A bert-base-shaped checkpoint (12 layers, hidden 768, vocabulary 30522: 110M parameters, 438 MB in float32, half
that in fp16) is written with random weights into a temporary folder. Loading it must grow RSS by far less than the
file; an fp16/bf16 checkpoint is widened to float32 once, on first use, and later calls add nothing.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from minibert import BertConfig
from minibert.params import expected_shapes
from wild import encode, write_safetensors

if not Path("/proc/self/statm").exists():
    pytest.skip("RSS is read from /proc/self/statm (Linux)", allow_module_level=True)

MB = 2**20
BERT_BASE = BertConfig(vocab_size=30522, hidden_size=768, num_hidden_layers=12, num_attention_heads=12,
                       intermediate_size=3072, max_position_embeddings=512)

# Runs in a fresh process: RSS before loading, after loading, and after each of several forward passes.
PROBE = textwrap.dedent("""
    import json, os, sys
    import numpy as np
    from minibert import BertModel

    def rss():
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")

    ids = np.arange(100, 116)[None]
    before = rss()
    model = BertModel.from_pretrained(sys.argv[1])
    loaded = rss()
    calls, first = [], None
    for _ in range(3):
        out = model(ids).last_hidden_state
        first = first if first is not None else model.weights
        calls.append(rss())
    print(json.dumps({"before": before, "loaded": loaded, "calls": calls, "same_weights": model.weights is first,
                      "finite": bool(np.isfinite(out).all())}))
""")


def write_bert_base(folder: Path, dtype: str) -> int:
    """A bert-base-shaped checkpoint with random weights (scaled like BERT's: std 0.02); returns the file size."""
    rng = np.random.default_rng(0)
    folder.mkdir()
    shapes = {**expected_shapes(BERT_BASE), "pooler.dense.weight": (768, 768), "pooler.dense.bias": (768,)}
    tensors = {}
    for name, shape in shapes.items():
        x = rng.standard_normal(shape, dtype=np.float32)
        x *= 0.02
        if "LayerNorm.weight" in name:
            x += 1
        tensors[name] = encode(x, dtype)
    write_safetensors(folder / "model.safetensors", tensors)
    (folder / "config.json").write_text(json.dumps(BERT_BASE.to_dict()))
    return (folder / "model.safetensors").stat().st_size


def probe(folder: Path) -> dict:
    # One BLAS thread: a memory test need not compete for the cores with the rest of the suite.
    env = {**os.environ, **{k: "1" for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")}}
    done = subprocess.run([sys.executable, "-c", PROBE, str(folder)], env=env, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("dtype", ["F32", "F16", "BF16"])
def test_loading_maps_and_half_precision_is_widened_once(dtype, tmp_path):
    size = write_bert_base(tmp_path / dtype, dtype)
    r = probe(tmp_path / dtype)
    print(f"\n{dtype}: file {size / MB:.0f} MB; RSS +{(r['loaded'] - r['before']) / MB:.1f} MB on loading, "
          f"+{(r['calls'][0] - r['loaded']) / MB:.0f} MB on first use, then "
          + ", ".join(f"{(b - a) / MB:+.1f}" for a, b in zip(r["calls"], r["calls"][1:])) + " MB per call")
    assert r["finite"] and r["same_weights"]
    # Loading reads config.json and the header only: a few MB at most for a 219-438 MB file.
    assert r["loaded"] - r["before"] < 0.03 * size
    if dtype != "F32":
        # First use widens once: the float32 copy (twice the file) is now resident ...
        assert r["calls"][0] - r["loaded"] > 1.5 * size
    # ... and later calls allocate only their activations, which are freed again: no growth per call.
    assert r["calls"][-1] - r["calls"][0] < 16 * MB
