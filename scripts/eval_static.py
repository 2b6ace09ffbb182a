"""BERT's own static vectors measured: STS-B dev Spearman and encode speed of each encoder, and word similarity
(SimLex-999, WordSim-353) of each static table, x 100.

    python scripts/eval_static.py DISTILLED_DIR... [--model M] [--data ../shared/data] [--json]

Rows: the model itself (SentenceEncoder: a word's vector is the one-word sentence's), each `minibert distill`
folder (StaticEncoder), and the baselines that need no forward pass: the model's input word-piece embeddings,
averaged the same way (a StaticEncoder on the model's own embedding table), as they are and after distill's own
PCA and Zipf weighting (what the forward pass adds is the difference between that row and a distilled one). Speed is the unique STS-B dev
sentences encoded per second (best of --repeats runs for the static encoders, one run for the model).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Dict, List, Sequence, Union

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))
from eval_stsb import cosine_rows, read_split  # noqa: E402
from glove.wordsim import read_pairs, spearman  # noqa: E402
from minibert import DEFAULT_MODEL, MinibertError, SentenceEncoder, StaticEncoder  # noqa: E402
from minibert.distill import DEFAULT_DIM, postprocess  # noqa: E402

WORDSIM = {"SimLex-999": "EN-SIMLEX-999.txt", "WS-353": "EN-WS-353-ALL.txt"}
Encoder = Union[SentenceEncoder, StaticEncoder]


def wordpiece_encoder(encoder: SentenceEncoder, postprocessed: bool = False) -> StaticEncoder:
    """The model's input word-piece embeddings (V, H) as a StaticEncoder with the model's tokenizer; with
    `postprocessed`, after distill's PCA to DEFAULT_DIM and Zipf weighting."""
    table = np.asarray(encoder.model.weights.embeddings.word, dtype=np.float32)  # (V, H)
    if postprocessed:
        table = postprocess(table, min(DEFAULT_DIM, table.shape[1]), "zipf")
    backend = encoder.tokenizer.backend
    unk = backend.token_to_id(backend.model.unk_token) if hasattr(backend.model, "unk_token") else None
    return StaticEncoder(table, backend, unk_id=unk, name_or_path=f"{encoder.name_or_path} input embeddings")


def stsb(encoder: Encoder, first: List[str], second: List[str], gold: np.ndarray, repeats: int) -> Dict[str, float]:
    """Spearman x 100 of the pairs' cosines against the gold scores, and unique sentences encoded per second."""
    unique = sorted(set(first) | set(second))
    seconds = []
    for _ in range(repeats):
        start = time.perf_counter()
        vectors = encoder.encode(unique)
        seconds.append(time.perf_counter() - start)
    row = {s: i for i, s in enumerate(unique)}
    cos = cosine_rows(vectors[[row[s] for s in first]], vectors[[row[s] for s in second]])
    return {"stsb_dev": round(100 * spearman(cos, gold), 2), "sentences_per_s": round(len(unique) / min(seconds), 1)}


def word_similarity(encoder: Encoder, path: Path) -> float:
    """Spearman x 100 of the human scores against the cosine of the two words' vectors (lower-cased words)."""
    pairs = read_pairs(path)
    words = sorted({w.lower() for a, b, _, _ in pairs for w in (a, b)})
    vectors = encoder.encode(words)
    row = {w: i for i, w in enumerate(words)}
    cos = cosine_rows(vectors[[row[a.lower()] for a, _, _, _ in pairs]], vectors[[row[b.lower()] for _, b, _, _ in pairs]])
    return round(100 * spearman(cos, np.array([s for _, _, s, _ in pairs])), 2)


def evaluate(model: str, distilled: Sequence[Path], data: Path, repeats: int) -> List[dict]:
    first, second, gold = read_split(data / "stsb" / "sts-dev.csv")
    contextual = SentenceEncoder.from_pretrained(model)
    rows = [("model (SentenceEncoder)", contextual, 1),
            ("input word-piece embeddings", wordpiece_encoder(contextual), repeats),
            ("input word-piece embeddings, PCA + Zipf", wordpiece_encoder(contextual, postprocessed=True), repeats)]
    rows += [(f"distilled {d.name}", StaticEncoder.from_pretrained(d), repeats) for d in distilled]
    out = []
    for name, encoder, n in rows:
        result = {"encoder": name, "dim": encoder.get_sentence_embedding_dimension()}
        result.update({k: word_similarity(encoder, data / "wordsim" / f) for k, f in WORDSIM.items()})
        result.update(stsb(encoder, first, second, gold, n))
        out.append(result)
    return out


def table(rows: List[dict]) -> List[str]:
    keys = ["encoder", "dim", *WORDSIM, "stsb_dev", "sentences_per_s"]
    base = next(r["sentences_per_s"] for r in rows if r["encoder"].startswith("model"))
    lines = ["| " + " | ".join(keys) + " | speed-up |", "|" + "---|" * (len(keys) + 1)]
    for r in rows:
        lines.append("| " + " | ".join(str(r[k]) for k in keys) + f" | {r['sentences_per_s'] / base:.0f}x |")
    return lines


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("distilled", nargs="*", type=Path, help="`minibert distill` output folders")
    parser.add_argument("--model", default=DEFAULT_MODEL, help=f"the model distilled (default: {DEFAULT_MODEL})")
    default_data = Path(os.environ.get("MINIBERT_SHARED", ROOT.parent / "shared")) / "data"
    parser.add_argument("--data", type=Path, default=default_data,
                        help="the folder holding stsb/sts-dev.csv and wordsim/ (default: $MINIBERT_SHARED/data or "
                             "../shared/data)")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs of each static encoder (default: 3)")
    parser.add_argument("--json", action="store_true", help="print the rows as JSON")
    args = parser.parse_args(argv)
    try:
        rows = evaluate(args.model, args.distilled, args.data, args.repeats)
    except (MinibertError, OSError) as e:
        print(f"eval_static: error: {e}", file=sys.stderr)
        return 1
    print(json.dumps(rows, indent=1) if args.json else "\n".join(table(rows)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
