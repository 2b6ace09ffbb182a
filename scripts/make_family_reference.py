"""Write one small random-weight checkpoint per model family, with PyTorch's outputs on it (run once; needs the
`reference` extra: `pip install torch==2.13.0 && pip install -e ".[reference,test]"`).

    python scripts/make_family_reference.py

Writes tests/fixtures/families/<family>/ (config.json, model.safetensors, a tokenizer of the family's own type
trained here on a few sentences: byte-level BPE for RoBERTa, Unigram for XLM-R and CamemBERT, WordPiece for
DistilBERT, ELECTRA and MPNet) and tests/fixtures/families/reference_<family>.npz. Every model has odd shapes:
3 heads of 16, intermediate 37, 2 layers, layer_norm_eps 1e-7 (DistilBERT's is fixed at 1e-12 in its code),
non-trivial LayerNorm and bias values; ELECTRA's embeddings are 24 wide, projected to 48; DistilBERT's position
table is sinusoidal; MPNet has its 32 relative-position buckets (transformers computes buckets for 32 whatever the config says). The MPNet and XLM-R folders are also
sentence-transformers models (mean pooling, normalised), with sentence-transformers' embeddings stored.

Each npz holds, per input case `<case>/`: texts and pairs (empty when none), input_ids, attention_mask (from
transformers' tokenizer, truncated at 60 tokens),
last_hidden_state, pooler_output (if any), hidden_states (L+1, B, T, H), attentions (L, B, N, T, T); and
`st/sentences`, `st/embeddings` where a sentence-transformers model was written; for MPNet, transformers'
relative-position buckets of distances -700..700 (`buckets/relative`, `buckets/bucket`).
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import numpy as np
import torch
import transformers
from tokenizers import ByteLevelBPETokenizer, SentencePieceUnigramTokenizer

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from minibert.hub import DEFAULT_MODEL, packaged_model_dir  # noqa: E402

OUT = ROOT / "tests" / "fixtures" / "families"
CORPUS = ["The cat sat on the mat.", "The cat chased the mouse.", "A bank by the river, and a bank for money.",
          "Crème brûlée à la façade, naïve café.", "東京で猫が座った。", "Ünïcödé ΑΒΓ добрый день",
          "She deposited her salary at the bank on Monday.", "Emoji too: 😀 🐈 and numbers 12345."] * 8
LONG = "Attention lets every token look at every other token of its sentence. " * 12
CASES = {
    "classic": (["The cat sat on the mat.", "The cat chased the mouse."], None),
    "pair": (["Is this the question?"], ["Yes, and this is the answer."]),
    "padded": (["A short one.", "A much longer sentence, with quite a few more words than the first one.",
                "Of middling length."], None),
    "empty": ([""], None),
    "unicode": (["Crème brûlée à la façade, naïve café.", "東京で猫が座った。", "Emoji 😀 🐈 Ünïcödé ΑΒΓ"], None),
    "long": ([LONG], None),
}
MAX_TOKENS = 60  # the position tables hold 64 tokens; the long case is truncated to this
COMMON = dict(hidden_size=48, num_hidden_layers=2, num_attention_heads=3, intermediate_size=37,
              layer_norm_eps=1e-7, initializer_range=0.1)
SPECIAL = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]


def wordpiece_vocab(specials) -> dict:
    pieces = (packaged_model_dir(DEFAULT_MODEL) / "vocab.txt").read_text(encoding="utf-8").split("\n")[:1500]
    words = list(dict.fromkeys(list(specials) + [p for p in pieces if p]))
    return {w: i for i, w in enumerate(words)}


def bpe_tokenizer(folder: Path):
    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(CORPUS, vocab_size=400, special_tokens=SPECIAL)
    bpe.save_model(str(folder))  # vocab.json + merges.txt: the legacy files, kept beside tokenizer.json
    vocab = json.loads((folder / "vocab.json").read_text(encoding="utf-8"))
    merges = [tuple(m.split()) for m in (folder / "merges.txt").read_text(encoding="utf-8").splitlines()[1:] if m]
    return transformers.RobertaTokenizer(vocab=vocab, merges=merges, model_max_length=MAX_TOKENS + 4)


def unigram_vocab() -> list:
    unigram = SentencePieceUnigramTokenizer()
    unigram.train_from_iterator(CORPUS, vocab_size=300, special_tokens=SPECIAL, unk_token="<unk>")
    return [tuple(v) for v in json.loads(unigram.to_str())["model"]["vocab"]]


def family_specs(folder: Path) -> dict:
    """model_type -> (model class, config, tokenizer, whether to write a sentence-transformers model)."""
    T = transformers
    specs = {}
    specs["roberta"] = (T.RobertaModel, lambda V: T.RobertaConfig(vocab_size=V, max_position_embeddings=66,
                                                                    type_vocab_size=1, pad_token_id=1, **COMMON),
                        lambda f: bpe_tokenizer(f), False)
    specs["xlm-roberta"] = (T.XLMRobertaModel, lambda V: T.XLMRobertaConfig(
        vocab_size=V, max_position_embeddings=66, type_vocab_size=1, pad_token_id=1, hidden_act="gelu_new", **COMMON),
        lambda f: T.XLMRobertaTokenizer(vocab=unigram_vocab(), model_max_length=MAX_TOKENS + 4), True)
    specs["camembert"] = (T.CamembertModel, lambda V: T.CamembertConfig(
        vocab_size=V, max_position_embeddings=66, type_vocab_size=1, pad_token_id=1, **COMMON),
        lambda f: T.CamembertTokenizer(vocab=unigram_vocab(), model_max_length=MAX_TOKENS + 4), False)
    specs["distilbert"] = (T.DistilBertModel, lambda V: T.DistilBertConfig(
        vocab_size=V, max_position_embeddings=64, dim=48, n_layers=2, n_heads=3, hidden_dim=37,
        sinusoidal_pos_embds=True, initializer_range=0.1),
        lambda f: T.DistilBertTokenizer(vocab=wordpiece_vocab(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]),
                                        model_max_length=MAX_TOKENS + 4), False)
    specs["electra"] = (T.ElectraModel, lambda V: T.ElectraConfig(vocab_size=V, max_position_embeddings=64,
                                                                    embedding_size=24, **COMMON),
                        lambda f: T.ElectraTokenizer(vocab=wordpiece_vocab(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]),
                                                     model_max_length=MAX_TOKENS + 4), False)
    specs["mpnet"] = (T.MPNetModel, lambda V: T.MPNetConfig(vocab_size=V, max_position_embeddings=66, pad_token_id=1,
                                                              relative_attention_num_buckets=32, **COMMON),
                      lambda f: T.MPNetTokenizer(vocab=wordpiece_vocab(SPECIAL[:4] + ["[UNK]", "<mask>"]),
                                                 model_max_length=MAX_TOKENS + 4), True)
    return specs


def randomise(model) -> None:
    """Non-trivial LayerNorm scales and biases (not the 1/0 initialisation), so that a swapped tensor shows."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "LayerNorm.weight" in name or "layer_norm.weight" in name:
                p.copy_(1 + 0.3 * torch.randn_like(p))
            elif name.endswith("bias"):
                p.copy_(0.1 * torch.randn_like(p))
            elif "relative_attention_bias" in name:
                p.copy_(torch.randn_like(p))


def write_sentence_transformers(folder: Path) -> None:
    (folder / "1_Pooling").mkdir(exist_ok=True)
    (folder / "1_Pooling" / "config.json").write_text(json.dumps(
        {"word_embedding_dimension": 48, "pooling_mode_mean_tokens": True}))
    (folder / "modules.json").write_text(json.dumps([
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
        {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"}]))
    (folder / "sentence_bert_config.json").write_text(json.dumps({"max_seq_length": 32, "do_lower_case": False}))


def references(folder: Path, model_class, st: bool) -> dict:
    tokenizer = transformers.AutoTokenizer.from_pretrained(str(folder))
    model = model_class.from_pretrained(str(folder), attn_implementation="eager").eval()
    arrays = {}
    for case, (texts, pairs) in CASES.items():
        batch = tokenizer(texts, pairs, padding=True, truncation=True, max_length=MAX_TOKENS, return_tensors="pt")
        batch.pop("token_type_ids", None)
        with torch.inference_mode():
            out = model(**batch, output_hidden_states=True, output_attentions=True)
        stored = {"texts": np.array(texts), "pairs": np.array(pairs if pairs is not None else [], dtype=str),
                  "input_ids": batch["input_ids"].numpy(), "attention_mask": batch["attention_mask"].numpy(),
                  "last_hidden_state": out.last_hidden_state.numpy(),
                  "hidden_states": torch.stack(out.hidden_states).numpy(),
                  "attentions": torch.stack(out.attentions).numpy()}
        if getattr(out, "pooler_output", None) is not None:
            stored["pooler_output"] = out.pooler_output.numpy()
        arrays.update({f"{case}/{k}": v for k, v in stored.items()})
    if st:
        from sentence_transformers import SentenceTransformer
        sentences = [t for texts, _ in CASES.values() for t in texts] + ["A sentence longer than the maximum. " * 8]
        encoder = SentenceTransformer(str(folder), device="cpu")
        arrays["st/sentences"] = np.array(sentences)
        arrays["st/embeddings"] = encoder.encode(sentences, convert_to_numpy=True)
    return arrays


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    for i, (family, (model_class, make_config, make_tokenizer, st)) in enumerate(family_specs(OUT).items()):
        folder = OUT / family
        if folder.exists():
            shutil.rmtree(folder)
        folder.mkdir()
        tokenizer = make_tokenizer(folder)
        torch.manual_seed(i)
        model = model_class(make_config(len(tokenizer))).eval()
        randomise(model)
        model.save_pretrained(folder, safe_serialization=True)
        tokenizer.save_pretrained(folder)
        if st:
            write_sentence_transformers(folder)
        arrays = references(folder, model_class, st)
        if family == "mpnet":  # buckets of distances far beyond the fixture's 64 tokens
            relative = torch.arange(-700, 701)[None, :]
            arrays["buckets/relative"] = relative.numpy()
            arrays["buckets/bucket"] = model.encoder.relative_position_bucket(relative).numpy()
        np.savez_compressed(OUT / f"reference_{family}.npz", **arrays)
        print(f"{family}: vocab {len(tokenizer)}, files {sorted(p.name for p in folder.iterdir())}")


if __name__ == "__main__":
    main()
