"""Generate the stored GloVe reference fixtures with gensim (run once; tests never import gensim).

    pip install gensim      # the "reference" extra
    python scripts/make_glove_reference.py

Writes into tests/fixtures/glove/:

- ``small.txt``: a 400-word x 25-dim table in GloVe text format, with clusters so that neighbours mean something;
- ``gensim/glove-small.model`` (+ ``.model.vectors.npy``): the same table as gensim's ``KeyedVectors.save``
  writes it, vectors stored beside the pickle as in ``fse/glove-wiki-gigaword-100``;
- ``reference.json``: gensim's ``most_similar`` (words, analogies, vectors), ``similarity`` and ``doesnt_match``
  answers on that table.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
from gensim.models import KeyedVectors

OUT = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "glove"
N_WORDS, DIM, N_CLUSTERS = 400, 25, 20


def make_table() -> tuple[list[str], np.ndarray]:
    rng = np.random.default_rng(20240601)
    centres = rng.normal(0, 1, (N_CLUSTERS, DIM))
    words = ["the", ",", ".", "king", "queen", "man", "woman", "Paris", "café", "北京"]
    words += [f"w{i:03d}" for i in range(N_WORDS - len(words))]
    vecs = centres[np.arange(N_WORDS) % N_CLUSTERS] + rng.normal(0, 0.6, (N_WORDS, DIM))
    vecs[6] = vecs[4] - vecs[3] + vecs[5] + rng.normal(0, 0.05, DIM)  # woman ~ queen - king + man
    return words, vecs


def main() -> None:
    words, vecs = make_table()
    OUT.mkdir(parents=True, exist_ok=True)
    text = OUT / "small.txt"
    # GloVe's own formatting: up to 6 decimals, trailing zeros dropped.
    lines = [w + " " + " ".join(f"{v:.6f}".rstrip("0").rstrip(".") for v in row) for w, row in zip(words, vecs)]
    text.write_text("\n".join(lines) + "\n", encoding="utf-8")

    kv = KeyedVectors.load_word2vec_format(str(text), binary=False, no_header=True)
    (OUT / "gensim").mkdir(exist_ok=True)
    # gensim logs every load and save, with absolute paths, inside the pickle: keep this machine's paths out.
    kv.lifecycle_events = []
    cwd = os.getcwd()
    os.chdir(OUT / "gensim")
    try:
        kv.save("glove-small.model", sep_limit=0)  # before most_similar fills the norms
    finally:
        os.chdir(cwd)

    queries = ["the", "king", "Paris", "café", "w000", "w123", "w389"]
    analogies = [(["queen", "man"], ["king"]), (["w001", "w002"], ["w003"]), (["Paris"], ["北京", "w050"])]
    probes = [vecs[11] * 0.5, vecs[200] - vecs[201]]
    pairs = [("king", "queen"), ("man", "woman"), ("the", ","), ("w010", "w030"), ("café", "北京"), ("w000", "w001")]
    odd = [["w000", "w020", "w040", "w001"], ["king", "queen", "man", "w123"]]
    ref = {
        "most_similar": {q: kv.most_similar(q, topn=10) for q in queries},
        "analogies": [{"positive": p, "negative": n, "result": kv.most_similar(positive=p, negative=n, topn=10)} for p, n in analogies],
        "by_vector": [{"vector": v.astype(np.float32).tolist(), "result": kv.similar_by_vector(v.astype(np.float32), topn=10)} for v in probes],
        "similarity": [[a, b, float(kv.similarity(a, b))] for a, b in pairs],
        "doesnt_match": [[ws, kv.doesnt_match(ws)] for ws in odd],
    }
    (OUT / "reference.json").write_text(json.dumps(ref, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"wrote {text}, gensim/glove-small.model, reference.json into {OUT}")


if __name__ == "__main__":
    main()
