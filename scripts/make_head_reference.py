"""Write small random-weight checkpoints with task heads, with transformers' and sentence-transformers' outputs on
them (run once; needs the `reference` extra: `pip install torch==2.13.0 && pip install -e ".[reference,test]"`).

    python scripts/make_head_reference.py

Writes tests/fixtures/heads/<name>/ and tests/fixtures/heads/reference_<name>.npz (+ reference_fill_mask.json):

    <family> (bert, roberta, xlm-roberta, camembert, distilbert, electra, mpnet): one checkpoint holding the
        encoder, the family's masked-LM head (decoder tied: not stored) and its sequence-classification head with
        three NLI labels (id2label), as the two task classes read them from one file. Shapes as in
        make_family_reference.py (H 48, 2 layers, 3 heads of 16, intermediate 37), the same tokenizers (copied
        from tests/fixtures/families/; BERT's is ELECTRA's WordPiece, with clean_up_tokenization_spaces on).
        Activations chosen so that a head using the wrong one shows: BERT's hidden_act gelu_new (its MLM head
        follows it), XLM-R's gelu_new (its head does not), DistilBERT's relu.
    bert-pretraining: BertForPreTraining's layout (cls.predictions + cls.seq_relationship) with an untied
        decoder (tie_word_embeddings false, cls.predictions.decoder.weight stored).
    cross-encoder: a one-label BERT classifier with a 24-token limit, scored by sentence-transformers'
        CrossEncoder.

Each npz holds per case `<case>/`: input_ids, attention_mask, token_type_ids and the head's logits
(`mlm/...`, `cls/...`: (B, T, V) and (B, C)); `cls/<case>/probs` the softmax. `ce/` holds the cross-encoder's
pairs, predict() scores and rank() order. reference_fill_mask.json holds the fill-mask pipeline's output.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import numpy as np
import torch
import transformers
from safetensors.torch import load_file, save_file

from make_family_reference import COMMON, randomise  # the families' shapes; non-trivial LayerNorm and bias values

ROOT = Path(__file__).resolve().parents[1]
FAMILIES = ROOT / "tests" / "fixtures" / "families"
OUT = ROOT / "tests" / "fixtures" / "heads"
LABELS = {0: "contradiction", 1: "entailment", 2: "neutral"}
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "vocab.json", "merges.txt")
CASES = {
    "classic": (["The cat sat on the mat.", "The cat chased the mouse."], None),
    "padded": (["A short one.", "A much longer sentence, with quite a few more words than the first one."], None),
    "pair": (["Is this the question?", "Short."], ["Yes, and this is the answer.", "A longer second text here."]),
}
MASKED = ["The cat {m} on the mat.", "A bank by the {m}, and a bank for money.", "{m} {m} deposited her salary."]
CE_PAIRS = [("How many cats sat on the mat?", "The cat sat on the mat."),
            ("How many cats sat on the mat?", "She deposited her salary at the bank on Monday."),
            ("", "The cat chased the mouse."),
            ("How many cats sat on the mat?", "A much longer sentence, with quite a few more words than the first one, "
             "and then more words still, far beyond the limit of this model."),
            ("How many cats sat on the mat?", "")]
CE_MAX = 24


def family_config(family: str, **extra):
    """The family fixture's config (its odd shapes), as a config object of the family's class, with `extra`."""
    T = transformers
    if family == "bert":
        vocab = json.loads((FAMILIES / "electra" / "config.json").read_text())["vocab_size"]
        return T.BertConfig(vocab_size=vocab, max_position_embeddings=64, **{**COMMON, "hidden_act": "gelu_new"},
                            **extra)
    config = T.AutoConfig.from_pretrained(str(FAMILIES / family))
    for key, value in extra.items():
        setattr(config, key, value)
    return config


def copy_tokenizer(family: str, folder: Path, **settings) -> None:
    source = FAMILIES / ("electra" if family == "bert" else family)
    for name in TOKENIZER_FILES:
        if (source / name).is_file():
            shutil.copy(source / name, folder / name)
    config = json.loads((folder / "tokenizer_config.json").read_text())
    (folder / "tokenizer_config.json").write_text(json.dumps({**config, **settings}, indent=2))


def write_family(family: str, seed: int) -> Path:
    """One checkpoint with both heads: the masked-LM model's file plus the classifier's own tensors."""
    folder = OUT / family
    config = family_config(family, num_labels=3, id2label=LABELS, label2id={v: k for k, v in LABELS.items()})
    if family == "xlm-roberta":
        config.hidden_act = "gelu_new"
    if family == "distilbert":
        config.activation = "relu"
    torch.manual_seed(seed)
    mlm = transformers.AutoModelForMaskedLM.from_config(config).eval()
    randomise(mlm)
    mlm.save_pretrained(folder, safe_serialization=True)
    classifier = transformers.AutoModelForSequenceClassification.from_config(config).eval()
    randomise(classifier)
    ours = load_file(folder / "model.safetensors")
    theirs = classifier.state_dict()
    prefix = mlm.base_model_prefix + "."
    extra = {k: v.contiguous() for k, v in theirs.items() if k not in ours and not k.startswith(prefix)}
    extra.update({k: v.contiguous() for k, v in theirs.items() if k.startswith(prefix + "pooler.")})
    save_file({**ours, **extra}, folder / "model.safetensors", metadata={"format": "pt"})
    config.architectures = [type(mlm).__name__, type(classifier).__name__]
    config.save_pretrained(folder)
    copy_tokenizer(family, folder, **({"clean_up_tokenization_spaces": True} if family == "bert" else {}))
    return folder


def write_pretraining() -> Path:
    folder = OUT / "bert-pretraining"
    torch.manual_seed(100)
    model = transformers.BertForPreTraining(family_config("bert", tie_word_embeddings=False)).eval()
    randomise(model)
    model.save_pretrained(folder, safe_serialization=True)
    copy_tokenizer("bert", folder)
    return folder


def write_cross_encoder() -> Path:
    folder = OUT / "cross-encoder"
    torch.manual_seed(200)
    model = transformers.BertForSequenceClassification(family_config("bert", num_labels=1)).eval()
    randomise(model)
    model.save_pretrained(folder, safe_serialization=True)
    copy_tokenizer("bert", folder, model_max_length=CE_MAX)
    return folder


def batch(tokenizer, texts, pairs):
    return tokenizer(texts, pairs, padding=True, return_tensors="pt")


def mlm_references(folder: Path) -> dict:
    tokenizer = transformers.AutoTokenizer.from_pretrained(str(folder))
    model = transformers.AutoModelForMaskedLM.from_pretrained(str(folder), attn_implementation="eager").eval()
    texts = [t.format(m=tokenizer.mask_token) for t in MASKED]
    cases = {"pair": CASES["pair"], "masked": (texts, None)}  # pairs of unequal length: padding and segments
    arrays = {}
    for case, (a, b) in cases.items():
        inputs = batch(tokenizer, a, b)
        with torch.inference_mode():
            logits = model(**inputs).logits
        arrays.update({f"mlm/{case}/{k}": v.numpy() for k, v in inputs.items()})
        arrays[f"mlm/{case}/logits"] = logits.numpy()
    return arrays


def fill_mask_references(folder: Path) -> dict:
    pipe = transformers.pipeline("fill-mask", model=str(folder), device="cpu")
    texts = [t.format(m=pipe.tokenizer.mask_token) for t in MASKED]
    return {"texts": texts, "top_k": 5, "results": [pipe(t, top_k=5) for t in texts]}


def classifier_references(folder: Path) -> dict:
    tokenizer = transformers.AutoTokenizer.from_pretrained(str(folder))
    model = transformers.AutoModelForSequenceClassification.from_pretrained(
        str(folder), attn_implementation="eager").eval()
    arrays = {}
    for case, (a, b) in CASES.items():
        inputs = batch(tokenizer, a, b)
        with torch.inference_mode():
            logits = model(**inputs).logits
        arrays.update({f"cls/{case}/{k}": v.numpy() for k, v in inputs.items()})
        arrays[f"cls/{case}/logits"] = logits.numpy()
        arrays[f"cls/{case}/probs"] = logits.softmax(-1).numpy()
    return arrays


def cross_encoder_references(folder: Path) -> dict:
    from sentence_transformers import CrossEncoder
    model = CrossEncoder(str(folder), device="cpu")
    query = CE_PAIRS[0][0]
    documents = [d for q, d in CE_PAIRS if q == query]
    ranked = model.rank(query, documents)
    return {"ce/pairs": np.array(CE_PAIRS), "ce/scores": model.predict(CE_PAIRS),
            "ce/logits": model.predict(CE_PAIRS, activation_fn=torch.nn.Identity()),
            "ce/max_length": np.array(model.max_seq_length),
            "ce/query": np.array(query), "ce/documents": np.array(documents),
            "ce/rank_ids": np.array([r["corpus_id"] for r in ranked]),
            "ce/rank_scores": np.array([r["score"] for r in ranked])}


def main() -> None:
    if OUT.exists():
        shutil.rmtree(OUT)
    OUT.mkdir(parents=True)
    fill = {}
    for seed, family in enumerate(["bert", "roberta", "xlm-roberta", "camembert", "distilbert", "electra", "mpnet"]):
        folder = write_family(family, seed)
        arrays = {**mlm_references(folder), **classifier_references(folder)}
        np.savez_compressed(OUT / f"reference_{family}.npz", **arrays)
        fill[family] = fill_mask_references(folder)
        print(f"{family}: {sorted(p.name for p in folder.iterdir())}")
    folder = write_pretraining()
    np.savez_compressed(OUT / "reference_bert-pretraining.npz", **mlm_references(folder))
    fill["bert-pretraining"] = fill_mask_references(folder)
    folder = write_cross_encoder()
    np.savez_compressed(OUT / "reference_cross-encoder.npz", **cross_encoder_references(folder),
                        **classifier_references(folder))
    (OUT / "reference_fill_mask.json").write_text(json.dumps(fill, indent=1, ensure_ascii=False))


if __name__ == "__main__":
    sys.exit(main())
