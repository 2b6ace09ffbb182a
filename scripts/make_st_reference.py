"""Write the sentence-transformers reference that tests/test_encoder.py compares SentenceEncoder against
(run once; needs the `reference` extra).

    pip install torch==2.13.0 && pip install -e ".[reference,test]"
    python scripts/make_st_reference.py

Writes tests/fixtures/st_reference_minilm.npz with, for ~200 varied texts (short, long, cut at max_seq_length,
empty, whitespace, non-ASCII, special-token look-alikes), computed by sentence_transformers.SentenceTransformer
on the real all-MiniLM-L6-v2 (CPU, batch size 32):
  sentences           (N,) str
  sentence_embedding  (N, 384) float32   encode() as the model ships: mean pooling, then its Normalize module
  pooled              (N, 384) float32   the same model without its Normalize module (raw mean pooling)
  token_counts        (N,) int64         tokens per text after truncation, [CLS] and [SEP] included
  token_rows          (K,) int64         the texts whose token embeddings are kept (a few, so the file stays small)
  token_embeddings    (sum of their token counts, 384) float32, those texts' rows one after the other
  versions            (1,) str           the library versions that produced the file
"""

from __future__ import annotations

import random
import sys
from pathlib import Path

import numpy as np
import sentence_transformers
import torch
import transformers
from sentence_transformers import SentenceTransformer

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from minibert.hub import DEFAULT_MODEL, packaged_model_dir  # noqa: E402

OUT = ROOT / "tests" / "fixtures" / "st_reference_minilm.npz"

WRITTEN = [
    "The cat sat on the mat.", "A man is playing a guitar.", "The bank raised interest rates again.",
    "We sat on the river bank and watched the boats.", "Is this the right way to the station?",
    "I can't believe it's not butter!", "She said, \"Let's go\" -- and went.", "3.14159 is roughly pi.",
    "Call 555-0199 before 9:30 a.m. on 2024-02-29.", "THE QUICK BROWN FOX JUMPS OVER THE LAZY DOG",
    "the quick brown fox jumps over the lazy dog", "Unbelievably, antidisestablishmentarianism trended.",
    "e-mail me at someone@example.com or visit https://example.org/a?b=c", "#hashtag @mention $TICKER 100%",
    "Attention lets every token look at every other token.", "A woman is slicing an onion.",
    "Two dogs are running through a field of snow.", "The stock market fell sharply on Monday.",
    "He deposited the cheque at the bank.", "Photosynthesis turns light into chemical energy.",
    "Yes.", "No!", "Why?", "OK", "a", "?", "...", "    leading and trailing spaces    ",
    "tabs\tand\nnewlines\r\ninside", "[CLS] looks special [SEP] but is text [MASK]", "[UNK] [PAD]",
    "", " ", "\t\n",
    # Non-ASCII: accents, other scripts, emoji, combining marks, zero-width and control characters.
    "Crème brûlée à la façade, naïve café.", "Über den Wolken muss die Freiheit wohl grenzenlos sein.",
    "¿Dónde está la biblioteca?", "Добрый день, как дела?", "Η γλώσσα είναι ελληνική.",
    "東京で猫が座った。", "我喜欢自然语言处理。", "한국어 문장입니다.", "مرحبا بالعالم", "नमस्ते दुनिया",
    "I love pizza 🍕🍕 and 🎉 parties 👩‍👩‍👧", "e\u0301le\u0300ve (combining accents)", "zero\u200bwidth\u200bspace",
    "soft\u00adhyphen and non\u00a0breaking space", "ﬁne ligatures ﬂow", "Ｆｕｌｌｗｉｄｔｈ ｔｅｘｔ",
    "control\x07char and \x00 nul", "𝔐𝔞𝔱𝔥 𝔣𝔯𝔞𝔨𝔱𝔲𝔯", "Ünïcödé ΑΒΓ добрый 東京 🙂",
]

PARAGRAPH = ("Attention lets every token look at every other token of its sentence, and that is how the vector "
             "of a word comes to depend on the words around it. A static table gives each word one vector, "
             "whatever its company; a transformer gives it a new one in every sentence. ")

WORDS = ("time year people way day man thing woman life child world school state family student group country "
         "problem hand part place case week company system program question work government number night point "
         "home water room mother area money story fact month lot right study book eye job word business issue "
         "side kind head house service friend father power hour game line end member law car city community "
         "name president team minute idea kid body information back parent face others level office door health "
         "person art war history party result change morning reason research girl guy moment air teacher force "
         "education run walk talk see think know make take come give look find tell ask seem feel try leave call "
         "good new first last long great little own other old big high different small large next early young "
         "important few public bad same able quickly slowly never always often really very still also just "
         "café naïve résumé Zürich São Paulo Kraków").split()


def varied_texts(rng: random.Random) -> list:
    texts = list(WRITTEN)
    # Long texts: around the 256-token limit, well over it (truncated), and far over it.
    for n_chars in (600, 900, 1000, 1100, 1200, 1500, 3000, 12000):
        texts.append((PARAGRAPH * (n_chars // len(PARAGRAPH) + 1))[:n_chars])
    while len(texts) < 200:
        n = rng.choice([1, 2, 3, 5, 8, 13, 21, 34, 55, 89, 144, 233])
        words = [rng.choice(WORDS) for _ in range(n)]
        if rng.random() < 0.3:
            words[0] = words[0].capitalize()
        texts.append(" ".join(words) + rng.choice(["", ".", "!", "?", " ..."]))
    return texts


def main() -> None:
    torch.manual_seed(0)
    texts = varied_texts(random.Random(0))
    model = SentenceTransformer(str(packaged_model_dir(DEFAULT_MODEL)), device="cpu")
    assert [type(m).__name__ for m in model] == ["Transformer", "Pooling", "Normalize"], list(model)
    without_normalize = SentenceTransformer(modules=[model[0], model[1]], device="cpu")

    embedded = model.encode(texts, batch_size=32, convert_to_numpy=True)
    pooled = without_normalize.encode(texts, batch_size=32, convert_to_numpy=True)
    tokens = model.encode(texts, batch_size=32, output_value="token_embeddings")
    counts = np.array([len(t) for t in tokens], dtype=np.int64)

    # A few texts of every kind for the token embeddings: short, empty, non-ASCII, and one cut at the limit.
    keep = [texts.index(t) for t in ("The cat sat on the mat.", "", "Crème brûlée à la façade, naïve café.",
                                     "東京で猫が座った。", "I love pizza 🍕🍕 and 🎉 parties 👩‍👩‍👧",
                                     "[CLS] looks special [SEP] but is text [MASK]")]
    keep.append(int(np.argmax(counts)))
    token_rows = np.array(keep, dtype=np.int64)
    versions = (f"sentence-transformers {sentence_transformers.__version__}, transformers "
                f"{transformers.__version__}, torch {torch.__version__}")
    np.savez_compressed(
        OUT, sentences=np.array(texts), sentence_embedding=embedded.astype(np.float32),
        pooled=pooled.astype(np.float32), token_counts=counts, token_rows=token_rows,
        token_embeddings=np.concatenate([tokens[i].numpy() for i in keep]).astype(np.float32),
        versions=np.array([versions]))
    print(f"{OUT.relative_to(ROOT)}: {len(texts)} texts, max {counts.max()} tokens, "
          f"{OUT.stat().st_size / 1e6:.2f} MB ({versions})")


if __name__ == "__main__":
    main()
