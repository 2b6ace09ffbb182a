"""Write tiny checkpoints in the layouts found in the wild, and PyTorch reference outputs for each (run once;
needs the `reference` extra).

    python scripts/make_wild_reference.py

Writes into tests/fixtures/wild/ (all small: hidden 32-36, 2 layers, vocabularies of a few hundred pieces):
  base/          transformers.BertModel with a pooler, saved by save_pretrained; vocab.txt + tokenizer_config.json
                 (uncased), no tokenizer.json. The tests re-encode it at test time into the layouts that are pure
                 re-encodings of the same weights: sharded with an index, fp16, bf16, mixed dtypes, the `bert.`
                 prefix with LayerNorm gamma/beta and `cls.*` heads, no pooler.
  mlm/           BertForMaskedLM        (`bert.` prefix, `cls.predictions.*`, no pooler), same encoder as base
  seqcls/        BertForSequenceClassification (`bert.` prefix, pooler, `classifier.*`), same encoder as base
  tokcls/        BertForTokenClassification    (`bert.` prefix, no pooler, `classifier.*`), same encoder as base
  small-config/  a cased vocab.txt tokenizer and an unusual config: type_vocab_size 1, max_position_embeddings 16,
                 3 heads of size 12, layer_norm_eps 1e-5, hidden_act gelu_new
  reference.npz  per model and input case `<model>/<case>/`: input_ids, attention_mask, token_type_ids (from
                 transformers' tokenizer), last_hidden_state, pooler_output (if any), hidden_states (L+1, B, T, H);
                 per dtype variant `base@<variant>/...` the outputs of transformers.BertModel running base's weights
                 rounded to that storage dtype (fp16, bf16, or the mix listed in `mixed/dtypes`), in float32;
                 the input texts as `cases/<case>/text` (and `text_pair`).
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import numpy as np
import torch
from transformers import (AutoTokenizer, BertConfig, BertForMaskedLM, BertForSequenceClassification,
                          BertForTokenClassification, BertModel)

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "tests" / "fixtures" / "wild"

SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
CASES = {
    "plain": (["The cat sat on the mat.", "Paris is in France, and paris is a word."], None),
    "pair": (["Is this the question?"], ["Yes, it is the answer."]),
    "accents": (["Crème brûlée at the café!", "unbelievably tokenized WordPieces 東京"], None),
    "empty": ([""], None),
    "long": (["the cat sat on the mat and the dog sat on the cat and the answer is yes " * 3], None),
}
# Whole words put in the vocabularies; everything else is spelled out in word pieces (東京 stays [UNK]).
WORDS = ["the", "cat", "sat", "on", "mat", "is", "in", "and", "a", "word", "this", "question", "yes", "it",
         "answer", "at", "dog", "paris", "france", "The", "Paris", "France", "Is", "Yes", "un", "##believ", "##ably",
         "token", "##ized", "word", "##piece", "##s", "Word", "##P", "café", "crème", "brûlée", "Crème"]
ALPHABET = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.,!?'éèêûü"
MIXED_CYCLE = ("F32", "F16", "BF16", "F64")  # the storage dtype of the i-th tensor (sorted by name) in `mixed`


def vocabulary(cased: bool) -> list:
    chars = ALPHABET if cased else "".join(sorted({c.lower() for c in ALPHABET if c.lower() not in "éèêûü"}))
    words = WORDS if cased else [w for w in WORDS if w == w.lower() and w.isascii()]
    pieces = SPECIALS + list(chars) + ["##" + c for c in chars] + words
    return list(dict.fromkeys(pieces))


def randomise(model: torch.nn.Module, seed: int) -> None:
    """Non-trivial LayerNorm and bias values, so that a wrongly loaded tensor cannot go unnoticed."""
    torch.manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "LayerNorm.weight" in name:
                p.copy_(1 + 0.3 * torch.randn_like(p))
            elif name.endswith("bias"):
                p.copy_(0.1 * torch.randn_like(p))


def save(model: torch.nn.Module, folder: Path, vocab: list, *, lower: bool) -> Path:
    if folder.exists():
        shutil.rmtree(folder)
    model.save_pretrained(folder, safe_serialization=True)
    (folder / "vocab.txt").write_text("\n".join(vocab) + "\n", encoding="utf-8")
    (folder / "tokenizer_config.json").write_text(json.dumps({"do_lower_case": lower}))
    return folder


def rounded(state: dict, dtypes: dict) -> dict:
    """Each tensor rounded to its storage dtype and back to float32: what a float32 computation sees."""
    torch_dtype = {"F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16, "F64": torch.float64}
    return {k: v.to(torch_dtype[dtypes[k]]).to(torch.float32) for k, v in state.items()}


def outputs(model: BertModel, folder: Path, prefix: str) -> dict:
    tokenizer = AutoTokenizer.from_pretrained(str(folder))
    arrays = {}
    for case, (texts, pairs) in CASES.items():
        if pairs is not None and model.config.type_vocab_size < 2:
            continue  # a single token type cannot mark a pair's second text
        batch = tokenizer(texts, pairs, padding=True, truncation=True, max_length=model.config.max_position_embeddings,
                          return_tensors="pt")
        with torch.inference_mode():
            out = model(**batch, output_hidden_states=True)
        stored = {k: v.numpy() for k, v in batch.items()}
        stored["last_hidden_state"] = out.last_hidden_state.numpy()
        stored["hidden_states"] = torch.stack(out.hidden_states).numpy()
        if out.pooler_output is not None:
            stored["pooler_output"] = out.pooler_output.numpy()
        arrays.update({f"{prefix}/{case}/{k}": v for k, v in stored.items()})
    return arrays


def encoder(folder: Path, pooler: bool) -> BertModel:
    return BertModel.from_pretrained(str(folder), attn_implementation="eager", add_pooling_layer=pooler).eval()


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)  # the initial weights too, so that a re-run writes the same files
    arrays = {}
    uncased = vocabulary(cased=False)
    config = BertConfig(vocab_size=len(uncased), hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                        intermediate_size=37, max_position_embeddings=64, layer_norm_eps=1e-12, type_vocab_size=2,
                        initializer_range=0.2)
    base = BertModel(config).eval()
    randomise(base, 0)
    base_dir = save(base, OUT / "base", uncased, lower=True)
    arrays.update(outputs(encoder(base_dir, True), base_dir, "base"))

    # Task and pretraining checkpoints: the same encoder weights under `bert.`, with their heads randomised.
    for name, cls, pooler in (("mlm", BertForMaskedLM, False), ("seqcls", BertForSequenceClassification, True),
                              ("tokcls", BertForTokenClassification, False)):
        model = cls(BertConfig(**config.to_dict(), num_labels=3)).eval()
        randomise(model, 1)
        model.bert.load_state_dict(base.state_dict(), strict=False)
        folder = save(model, OUT / name, uncased, lower=True)
        arrays.update(outputs(encoder(folder, pooler), folder, name))

    # Storage dtypes: PyTorch computes in float32 on the weights rounded to the stored dtype.
    state = base.state_dict()
    names = sorted(k for k, v in state.items() if v.is_floating_point())
    variants = {"fp16": {k: "F16" for k in names}, "bf16": {k: "BF16" for k in names},
                "mixed": {k: MIXED_CYCLE[i % len(MIXED_CYCLE)] for i, k in enumerate(names)}}
    for variant, dtypes in variants.items():
        model = BertModel(config).eval()
        model.load_state_dict({**state, **rounded({k: state[k] for k in names}, dtypes)})
        arrays.update(outputs(model, base_dir, f"base@{variant}"))
    for case, (texts, pairs) in CASES.items():
        arrays[f"cases/{case}/text"] = np.array(texts)
        if pairs is not None:
            arrays[f"cases/{case}/text_pair"] = np.array(pairs)
    arrays["mixed/dtypes"] = np.array([f"{k}={d}" for k, d in variants["mixed"].items()])

    cased = vocabulary(cased=True)
    small = BertConfig(vocab_size=len(cased), hidden_size=36, num_hidden_layers=2, num_attention_heads=3,
                       intermediate_size=20, max_position_embeddings=16, layer_norm_eps=1e-5, type_vocab_size=1,
                       hidden_act="gelu_new", initializer_range=0.2)
    model = BertModel(small).eval()
    randomise(model, 2)
    folder = save(model, OUT / "small-config", cased, lower=False)
    arrays.update(outputs(encoder(folder, True), folder, "small-config"))

    path = OUT / "reference.npz"
    tmp = OUT / "reference.tmp.npz"
    np.savez_compressed(tmp, **arrays)
    tmp.replace(path)
    total = sum(f.stat().st_size for f in OUT.rglob("*") if f.is_file())
    print(f"wrote {OUT.relative_to(ROOT)}: {total / 1e6:.2f} MB in all")


if __name__ == "__main__":
    sys.exit(main())
