"""STS Benchmark: Spearman correlation between the cosine similarity of two sentences' embeddings and the gold
similarity score (Cer et al., 2017), x 100 as the sentence-transformers papers report it.

    python scripts/eval_stsb.py DIR [--split dev] [--model M]          minibert's SentenceEncoder
    python scripts/eval_stsb.py DIR --sentence-transformers            the same model run by sentence-transformers
                                                                       (needs the `reference` extra)
    python scripts/eval_stsb.py DIR --precision float32 int8 ubinary   quantized vectors, as sentence-transformers'
                                                                       EmbeddingSimilarityEvaluator(precision=...)

With --precision, the vectors are encoded once (normalized), then quantized by the encoder's own library
(int8/uint8 ranges from all the sentences encoded) and compared by the cosine of the integers (binary ones
unpacked to 0/1 bits), as sentence-transformers' evaluator compares them.

DIR holds sts-<split>.csv: tab-separated, score in column 5, the two sentences in columns 6 and 7 (1-based);
some lines carry extra fields after those, and quotes are literal, so lines are split on tabs (no CSV parser).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import List, Sequence, Tuple

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from minibert import DEFAULT_MODEL, InputError, MinibertError, SentenceEncoder  # noqa: E402
from minibert.hub import resolve_model_dir  # noqa: E402


def read_split(path: Path) -> Tuple[List[str], List[str], np.ndarray]:
    """The sentence pairs and gold scores (0 to 5) of an STS-B file."""
    first, second, scores = [], [], []
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise InputError(f"{path}: not found; expected an STS-B split file (sts-dev.csv, sts-test.csv)") from None
    except UnicodeDecodeError as e:
        raise InputError(f"{path}: not UTF-8 ({e})") from None
    for number, line in enumerate(lines, 1):
        fields = line.split("\t")
        if len(fields) < 7:
            raise InputError(f"{path}:{number}: {len(fields)} tab-separated fields; expected at least 7 "
                             "(genre, file, year, id, score, sentence 1, sentence 2)")
        try:
            score = float(fields[4])
        except ValueError:
            score = float("nan")
        if not 0 <= score <= 5:
            raise InputError(f"{path}:{number}: score {fields[4]!r} in column 5; expected a number from 0 to 5")
        scores.append(score)
        first.append(fields[5])
        second.append(fields[6])
    if not scores:
        raise InputError(f"{path}: no lines")
    return first, second, np.array(scores)


def rank(x: np.ndarray) -> np.ndarray:
    """1-based ranks, tied values sharing the mean of their ranks."""
    values, inverse, counts = np.unique(x, return_inverse=True, return_counts=True)
    first = np.cumsum(counts) - counts + 1  # the rank of each distinct value's first occurrence
    return (first + (counts - 1) / 2)[inverse.ravel()]


def spearman(x: np.ndarray, y: np.ndarray) -> float:
    """Spearman's rank correlation: Pearson's correlation of the ranks."""
    rx, ry = rank(np.asarray(x, dtype=np.float64)), rank(np.asarray(y, dtype=np.float64))
    rx, ry = rx - rx.mean(), ry - ry.mean()
    return float((rx * ry).sum() / np.sqrt((rx * rx).sum() * (ry * ry).sum()))


def cosine_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a, b = a.astype(np.float64), b.astype(np.float64)
    return (a * b).sum(1) / np.maximum(np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1), 1e-12)


def as_float(vectors: np.ndarray, precision: str) -> np.ndarray:
    """Quantized vectors as the float32 numbers compared: binary ones unpacked to their 0/1 bits."""
    if precision == "binary":
        vectors = vectors.astype(np.int16) + 128
    if precision.endswith("binary"):
        vectors = np.unpackbits(vectors.astype(np.uint8), axis=1)
    return vectors.astype(np.float32)


def quantizer(with_sentence_transformers: bool):
    if with_sentence_transformers:
        from sentence_transformers import quantize_embeddings
        return quantize_embeddings
    from minibert import quantize_embeddings
    return quantize_embeddings


def embed(sentences: List[str], model: str, batch_size: int, with_sentence_transformers: bool,
          normalize: bool = False) -> np.ndarray:
    if with_sentence_transformers:
        try:
            from sentence_transformers import SentenceTransformer  # only here: not a dependency of minibert
        except ImportError:
            raise MinibertError("--sentence-transformers needs the sentence-transformers package, which is not "
                                "installed: pip install sentence-transformers (in a clone of minibert: pip install "
                                "-e '.[reference]')") from None
        st = SentenceTransformer(str(resolve_model_dir(model)), device="cpu")
        return np.asarray(st.encode(sentences, batch_size=batch_size, convert_to_numpy=True,
                                    normalize_embeddings=normalize))
    return SentenceEncoder.from_pretrained(model).encode(sentences, batch_size=batch_size,
                                                         normalize_embeddings=normalize)


def evaluate(folder: Path, split: str, model: str, batch_size: int = 32, with_sentence_transformers: bool = False,
             limit: int = 0, precisions: Sequence[str] = ()) -> dict:
    path = folder / f"sts-{split}.csv"
    first, second, gold = read_split(path)
    if limit:
        first, second, gold = first[:limit], second[:limit], gold[:limit]
    unique = sorted(set(first) | set(second))  # each distinct sentence encoded once
    start = time.perf_counter()
    vectors = embed(unique, model, batch_size, with_sentence_transformers, normalize=bool(precisions))
    seconds = time.perf_counter() - start
    row = {s: i for i, s in enumerate(unique)}
    left, right = [row[s] for s in first], [row[s] for s in second]
    result = {"split": split, "pairs": len(gold), "sentences": len(unique), "model": model,
              "encoder": "sentence-transformers" if with_sentence_transformers else "minibert",
              "spearman_x100": round(100 * spearman(cosine_rows(vectors[left], vectors[right]), gold), 2),
              "encode_seconds": round(seconds, 1)}
    quantize = quantizer(with_sentence_transformers) if precisions else None
    for precision in precisions:
        compared = as_float(quantize(vectors, precision), precision)
        result[f"spearman_x100_{precision}"] = round(100 * spearman(cosine_rows(compared[left], compared[right]),
                                                                    gold), 2)
    return result


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folder", type=Path, help="the folder holding sts-<split>.csv")
    parser.add_argument("--split", default="dev", help="dev (default), test or train")
    parser.add_argument("--model", default=DEFAULT_MODEL, help=f"default: {DEFAULT_MODEL}")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--limit", type=int, default=0, help="only the first N pairs (default: all)")
    parser.add_argument("--sentence-transformers", "--reference", dest="reference", action="store_true",
                        help="embed with sentence-transformers itself instead of minibert")
    parser.add_argument("--precision", nargs="+", default=[], choices=["float32", "int8", "uint8", "binary", "ubinary"],
                        help="also score the vectors quantized to these precisions")
    parser.add_argument("--json", action="store_true", help="print the result as one JSON object")
    args = parser.parse_args(argv)
    try:
        result = evaluate(args.folder, args.split, args.model, args.batch_size, args.reference, args.limit,
                          args.precision)
    except MinibertError as e:
        print(f"eval_stsb: error: {e}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(result))
    else:
        print(f"STS-B {result['split']}: Spearman x 100 = {result['spearman_x100']:.2f} ({result['pairs']} pairs, "
              f"{result['encoder']}, {result['model']}, {result['sentences']} sentences encoded in "
              f"{result['encode_seconds']} s)")
        for precision in args.precision:
            print(f"  {precision}: Spearman x 100 = {result[f'spearman_x100_{precision}']:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
