"""Write the PyTorch reference arrays the tests compare against (run once; needs the `reference` extra).

    pip install torch==2.13.0 && pip install -e ".[reference,test]"
    python scripts/make_reference.py

Writes into tests/fixtures/:
  odd-bert/                 a small randomly initialised BERT with odd shapes (5 heads of 16, intermediate 37,
                            3 layers, eps 1e-7, no pooler, non-trivial LayerNorm and bias values), saved as
                            safetensors, with a WordPiece vocab.txt (the first 3,000 pieces of MiniLM's) and no
                            tokenizer.json, so the vocab.txt path of the tokenizer is exercised too
  reference_minilm.npz      outputs of transformers.BertModel on the real all-MiniLM-L6-v2 weights
  reference_odd.npz         outputs of transformers.BertModel on odd-bert
Each npz holds, per input case `<case>/`: input_ids, attention_mask, token_type_ids (from transformers'
tokenizer), last_hidden_state, pooler_output (if any), hidden_states (L+1, B, R, H) and attentions (L, B, N, R, T)
at the token rows R listed in `rows`: every row, except for the 200-token case where every 10th row is kept, so
that the fixtures stay small (its last_hidden_state is kept whole).
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import numpy as np
import torch
from transformers import AutoTokenizer, BertConfig, BertModel

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from minibert.hub import DEFAULT_MODEL, packaged_model_dir  # noqa: E402

FIXTURES = ROOT / "tests" / "fixtures"

LONG_TEXT = ("Attention lets every token look at every other token of its sentence, and that is how the vector "
             "of a word comes to depend on the words around it. ") * 12

CASES = {
    "classic": (["The cat sat on the mat.", "The cat chased the mouse."], None),
    "pair": (["Is this the question?"], ["Yes, and this is the answer."]),
    "padded": (["A short one.", "A much longer sentence, with quite a few more words than the first one has.",
                "Of middling length, this one."], None),
    "empty": ([""], None),
    "unicode": (["Crème brûlée à la façade, naïve café.", "東京で猫が座った。", "Ünïcödé ΑΒΓ добрый день"], None),
    "long": ([LONG_TEXT], None),
}
LONG_TOKENS = 200


def make_odd_model(folder: Path) -> Path:
    """A small BERT with odd shapes and random, non-trivial weights, saved as safetensors with a vocab.txt."""
    torch.manual_seed(0)
    vocab = (packaged_model_dir(DEFAULT_MODEL) / "vocab.txt").read_text(encoding="utf-8").splitlines()[:3000]
    config = BertConfig(vocab_size=len(vocab), hidden_size=80, num_hidden_layers=3, num_attention_heads=5,
                        intermediate_size=37, max_position_embeddings=256, layer_norm_eps=1e-7,
                        hidden_act="gelu", type_vocab_size=2, initializer_range=0.1)
    model = BertModel(config, add_pooling_layer=False).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "LayerNorm.weight" in name:
                p.copy_(1 + 0.3 * torch.randn_like(p))
            elif name.endswith("bias") or "LayerNorm.bias" in name:
                p.copy_(0.1 * torch.randn_like(p))
    if folder.exists():
        shutil.rmtree(folder)
    model.save_pretrained(folder, safe_serialization=True)
    (folder / "vocab.txt").write_text("\n".join(vocab) + "\n", encoding="utf-8")
    (folder / "tokenizer_config.json").write_text(json.dumps({"do_lower_case": True, "model_max_length": 256}))
    return folder


def reference_arrays(folder: Path) -> dict:
    tokenizer = AutoTokenizer.from_pretrained(str(folder))
    from safetensors import safe_open
    with safe_open(str(folder / "model.safetensors"), "np") as f:
        has_pooler = any(k.endswith("pooler.dense.weight") for k in f.keys())
    # Without add_pooling_layer=False transformers would invent a randomly initialised pooler.
    model = BertModel.from_pretrained(str(folder), attn_implementation="eager", add_pooling_layer=has_pooler).eval()
    arrays = {}
    for case, (texts, pairs) in CASES.items():
        max_length = LONG_TOKENS if case == "long" else None
        batch = tokenizer(texts, pairs, padding=True, truncation=True, max_length=max_length, return_tensors="pt")
        with torch.inference_mode():
            out = model(**batch, output_hidden_states=True, output_attentions=True)
        T = batch["input_ids"].shape[1]
        rows = np.arange(0, T, 10) if case == "long" else np.arange(T)
        stored = {
            "input_ids": batch["input_ids"].numpy(),
            "attention_mask": batch["attention_mask"].numpy(),
            "token_type_ids": batch["token_type_ids"].numpy(),
            "last_hidden_state": out.last_hidden_state.numpy(),
            "hidden_states": torch.stack(out.hidden_states)[:, :, rows].numpy(),
            "attentions": torch.stack(out.attentions)[:, :, :, rows, :].numpy(),
            "rows": rows,
        }
        if out.pooler_output is not None:
            stored["pooler_output"] = out.pooler_output.numpy()
        arrays.update({f"{case}/{k}": v for k, v in stored.items()})
        print(f"  {case}: input_ids {tuple(stored['input_ids'].shape)}")
    return arrays


def main() -> None:
    FIXTURES.mkdir(parents=True, exist_ok=True)
    targets = {"minilm": packaged_model_dir(DEFAULT_MODEL), "odd": make_odd_model(FIXTURES / "odd-bert")}
    for name, folder in targets.items():
        print(f"{name}: {folder.name}")
        path = FIXTURES / f"reference_{name}.npz"
        tmp = path.with_suffix(".tmp.npz")
        np.savez_compressed(tmp, **reference_arrays(folder))
        tmp.replace(path)
        print(f"  wrote {path.relative_to(ROOT)} ({path.stat().st_size / 1e6:.1f} MB)")


if __name__ == "__main__":
    main()
