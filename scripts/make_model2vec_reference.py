"""Write tests/fixtures/model2vec-odd: the odd-bert fixture distilled by model2vec itself (8 dimensions, its default
float16 storage, its own folder layout), and model2vec's encode of a few texts beside it (expected.npz), so that a
test can check that minibert.StaticEncoder loads model2vec's format and gives model2vec's vectors.

    pip install model2vec torch transformers     # in a separate venv: never a dependency of minibert
    python scripts/make_model2vec_reference.py
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SOURCE = "tests/fixtures/odd-bert"  # relative to ROOT: config.json's tokenizer_name is written as given
OUTPUT = ROOT / "tests" / "fixtures" / "model2vec-odd"
TEXTS = ["The cat sat on the mat.", "A dog barked at the moon!", "zyxwvut qqq", "", "Ünïcödé text, déjà vu."]


def main() -> int:
    from model2vec.distill import distill  # only here: the reference side

    os.chdir(ROOT)
    model = distill(SOURCE, pca_dims=8)
    model.save_pretrained(str(OUTPUT))
    (OUTPUT / "model.safetensors").chmod(0o644)  # safetensors writes it private
    (OUTPUT / "README.md").unlink(missing_ok=True)  # the model card: not part of the format
    vectors = model.encode(TEXTS)
    np.savez(OUTPUT / "expected.npz", texts=np.array(TEXTS), vectors=np.asarray(vectors, dtype=np.float32))
    print(f"{OUTPUT}: {model.embedding.shape} {model.embedding.dtype}; {len(TEXTS)} texts encoded", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
