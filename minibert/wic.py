"""Word-in-Context (WiC): does a word mean the same thing in two sentences? Scored by the cosine of its vectors.

    train, dev = read_splits(Path("wic"), "dev")      # train.data.txt + train.gold.txt, dev.*
    result = evaluate(model, tokenizer, train, dev)
    result.best_layer, result.rows[0].accuracy        # rows: static first, then layers 0..L

A WiC folder holds, per split, `<split>.data.txt` (word, PoS, index1-index2, sentence1, sentence2; tab-separated;
the indices count whitespace-separated tokens from 0) and `<split>.gold.txt` (one T or F per line), either side by
side or each split in its own sub-folder (`train/train.data.txt`, as the WiC package ships them). A classifier
"same sense iff cosine >= t" gets its threshold t, and the best layer, from train only; it is then measured on the
evaluated split. Errors name the file and line (`dev.data.txt:12: ...`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional, Tuple

import numpy as np

from .contextual import locate, word_vectors
from .errors import InputError
from .modeling import BertModel
from .retrieval import unit
from .tokenizer import Tokenizer

Array = np.ndarray
SPLIT_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")  # a name, never a path


class WicError(InputError):
    """A WiC folder, file or line that cannot be used; the message names the file (and line) and what was
    expected."""


@dataclass(frozen=True)
class WicPairs:
    """N sentence pairs with the target word's character span in each sentence.  N pairs."""

    sentences1: Tuple[str, ...]
    sentences2: Tuple[str, ...]
    spans1: Tuple[Tuple[int, int], ...]
    spans2: Tuple[Tuple[int, int], ...]
    labels: Array  # (N,) bool, True = same sense
    split: str
    source: Path  # the data file
    lines: Tuple[int, ...]  # (N,) the line of each pair in `source` (1-based)


@dataclass(frozen=True)
class WicRow:
    """One classifier: a static table (layer None) or one layer's contextual vectors."""

    name: str  # "static" or "layer k"
    layer: Optional[int]
    threshold: float  # "same sense" iff cosine >= threshold; chosen on train
    train_accuracy: float
    accuracy: float  # on the evaluated split
    predicts_one_class: bool  # on the evaluated split every pair got the same answer

    def to_json(self) -> dict:
        # the threshold unrounded: "all different" sits just above 1.0
        return {"name": self.name, "layer": self.layer, "threshold": self.threshold,
                "train_accuracy": _r(self.train_accuracy), "accuracy": _r(self.accuracy),
                "predicts_one_class": self.predicts_one_class}


@dataclass(frozen=True)
class WicResult:
    """Every classifier measured on one split, the best layer chosen on train."""

    split: str
    pairs: int
    train_pairs: int
    same_sense_share: float  # of the evaluated split
    rows: Tuple[WicRow, ...]  # static, then layers 0..L
    best_layer: int

    @property
    def best(self) -> WicRow:
        return next(row for row in self.rows if row.layer == self.best_layer)

    @property
    def static(self) -> WicRow:
        return self.rows[0]

    def to_json(self) -> dict:
        return {"split": self.split, "pairs": self.pairs, "train_pairs": self.train_pairs,
                "same_sense_share": _r(self.same_sense_share), "rows": [row.to_json() for row in self.rows],
                "best_layer": self.best_layer}


def _r(x: float) -> float:
    return round(float(x), 6)


# ----------------------------------------------------------------------------------------------------------------
# Reading
# ----------------------------------------------------------------------------------------------------------------

def split_files(folder: Path, split: str) -> Tuple[Path, Path]:
    """(data, gold) files of `split` in `folder`: side by side, or in the split's own sub-folder."""
    if not SPLIT_NAME.fullmatch(split):
        raise WicError(f"split {split!r}: expected a name such as train, dev or test (letters, digits, _ . -)")
    if not folder.is_dir():
        raise WicError(f"{folder}: {'not a folder' if folder.exists() else 'no such folder'}; expected a WiC folder "
                       "holding <split>.data.txt and <split>.gold.txt")
    for base in (folder, folder / split):
        data, gold = base / f"{split}.data.txt", base / f"{split}.gold.txt"
        if data.is_file():
            if not gold.is_file():
                raise WicError(f"{gold}: no such file; {data.name} has no labels beside it (WiC's test labels "
                               "are held out: evaluate on a split that has its gold file, such as dev)")
            return data, gold
    found = sorted({p.name[:-len(".data.txt")] for p in [*folder.glob("*.data.txt"), *folder.glob("*/*.data.txt")]})
    raise WicError(f"{folder}: no {split} split; expected {split}.data.txt and {split}.gold.txt there or in "
                   f"{split}/ (splits found: {', '.join(found) or 'none'})")


def read_lines(path: Path, limit: Optional[int] = None) -> List[str]:
    """The first `limit` lines of a UTF-8 file (all when None). Only \\n ends a line (a \\r before it is
    dropped): a WiC sentence holding another Unicode line separator stays one line."""
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise WicError(f"{path}: cannot be read ({e.strerror})") from None
    rows = raw.split(b"\n")
    if rows[-1] == b"":
        rows.pop()  # the file's final newline ends the last line; it starts none
    lines = []
    for number, row in enumerate(rows[:limit], 1):
        try:
            line = row.decode("utf-8")
        except UnicodeDecodeError as e:
            raise WicError(f"{path}:{number}: not UTF-8 text (byte 0x{row[e.start]:02x} at column {e.start + 1}); "
                           "expected UTF-8") from None
        if number == 1:
            line = line.removeprefix("\ufeff")  # a byte-order mark is not part of the text
        lines.append(line.removesuffix("\r"))
    return lines


def token_span(sentence: str, index: int, where: str) -> Tuple[int, int]:
    """Character span of the index-th whitespace-separated token (WiC's indices count those)."""
    tokens = [m.span() for m in re.finditer(r"\S+", sentence)]
    if not 0 <= index < len(tokens):
        raise WicError(f"{where}: token index {index} is out of range; the sentence has {len(tokens)} tokens")
    return tokens[index]


def read_wic(folder: Path, split: str, limit: Optional[int] = None) -> WicPairs:
    """The first `limit` pairs (all when None) of `split` in the WiC folder `folder`."""
    data, gold = split_files(folder, split)
    lines, labels = read_lines(data, limit), read_lines(gold, limit)
    if not lines:
        raise WicError(f"{data}: no pairs; expected one tab-separated pair per line")
    if len(labels) != len(lines):
        raise WicError(f"{gold}: {len(labels)} labels for {len(lines)} pairs in {data.name}; expected one T or F "
                       "per line")
    sentences: Tuple[List[str], List[str]] = ([], [])
    spans: Tuple[List[Tuple[int, int]], List[Tuple[int, int]]] = ([], [])
    for n, (line, label) in enumerate(zip(lines, labels), start=1):
        where = f"{data}:{n}"
        fields = line.split("\t")
        if len(fields) != 5:
            raise WicError(f"{where}: expected 5 tab-separated fields (word, PoS, index1-index2, sentence1, "
                           f"sentence2), got {len(fields)}")
        indices = re.fullmatch(r"(\d+)-(\d+)", fields[2])
        if indices is None:
            raise WicError(f"{where}: expected token indices like '2-5', got {fields[2]!r}")
        if label.strip() not in ("T", "F"):
            raise WicError(f"{gold}:{n}: expected T or F, got {label!r}")
        for side in (0, 1):
            sentences[side].append(fields[3 + side])
            spans[side].append(token_span(fields[3 + side], int(indices[1 + side]), where))
    return WicPairs(tuple(sentences[0]), tuple(sentences[1]), tuple(spans[0]), tuple(spans[1]),
                    np.array([label.strip() == "T" for label in labels]), split, data, tuple(range(1, len(lines) + 1)))


# ----------------------------------------------------------------------------------------------------------------
# Scoring
# ----------------------------------------------------------------------------------------------------------------

def pair_cosines(model: BertModel, tokenizer: Tokenizer, pairs: WicPairs, batch_size: int = 128) -> Array:
    """(N, L + 1): the cosine between the target word's vectors in the two sentences, at every layer."""
    sentences, spans = pairs.sentences1 + pairs.sentences2, pairs.spans1 + pairs.spans2
    try:
        vectors = word_vectors(model, tokenizer, sentences, spans, layers="all", batch_size=batch_size)
    except InputError:
        raise _unlocatable(tokenizer, pairs) from None
    n = len(pairs.labels)
    return (unit(vectors[:n]) * unit(vectors[n:])).sum(-1)  # (N, L + 1, H) each -> (N, L + 1)


def _unlocatable(tokenizer: Tokenizer, pairs: WicPairs) -> WicError:
    """The error for the first pair whose target word has no word pieces (word_vectors said one has none)."""
    for k, line in enumerate(pairs.lines):
        for sentence, span in ((pairs.sentences1[k], pairs.spans1[k]), (pairs.sentences2[k], pairs.spans2[k])):
            try:
                locate(tokenizer, [sentence], [span])
            except InputError as e:
                return WicError(f"{pairs.source}:{line}: {e}")
    return WicError(f"{pairs.source}: a target word could not be located")  # not reached: some pair failed


def best_threshold(cosines: Array, labels: Array) -> Tuple[float, float]:
    """The threshold t maximising the accuracy of "same sense iff cosine >= t", and that accuracy.
    cosines: (N,) float, labels: (N,) bool. Every cut between two distinct sorted cosines is tried, plus "all
    same" and "all different"."""
    order = np.argsort(cosines, kind="stable")
    c, y = cosines[order], labels[order]
    n = len(c)
    # cut k: the k lowest are called different, the rest same
    correct = np.concatenate([[0], np.cumsum(~y)]) + (y.sum() - np.concatenate([[0], np.cumsum(y)]))
    allowed = np.concatenate([[True], c[1:] > c[:-1], [True]])
    k = int(np.argmax(np.where(allowed, correct, -1)))
    threshold = c[0] if k == 0 else (np.nextafter(c[-1], np.inf) if k == n else (c[k - 1] + c[k]) / 2)
    return float(threshold), float(correct[k] / n)


def accuracy(cosines: Array, labels: Array, threshold: float) -> float:
    """Share of pairs where "same sense iff cosine >= threshold" is right.  cosines, labels: (N,)"""
    return float(np.mean((cosines >= threshold) == labels))


def score(train_cosines: Array, train_labels: Array, cosines: Array, labels: Array, split: str) -> WicResult:
    """Every classifier, thresholds and best layer chosen on train, measured on (cosines, labels).
    train_cosines: (M, L + 1), cosines: (N, L + 1); labels (M,) and (N,) bool."""
    # A static table gives the word one vector: the cosine of its two occurrences is always 1.
    candidates = [("static", None, np.ones(len(train_labels)), np.ones(len(labels)))] + [
        (f"layer {k}", k, train_cosines[:, k], cosines[:, k]) for k in range(train_cosines.shape[1])]
    rows = []
    for name, layer, train_column, column in candidates:
        threshold, train_accuracy = best_threshold(train_column, train_labels)
        rows.append(WicRow(name, layer, threshold, train_accuracy, accuracy(column, labels, threshold),
                           bool(len(set((column >= threshold).tolist())) == 1)))
    best = max(rows[1:], key=lambda row: row.train_accuracy)  # chosen on train, never on the evaluated split
    return WicResult(split, len(labels), len(train_labels), float(labels.mean()), tuple(rows), best.layer)


def read_splits(folder: Path, split: str, limit: Optional[int] = None) -> Tuple[WicPairs, WicPairs]:
    """(train, evaluated): the pairs thresholds are chosen on and those measured (train itself for "train")."""
    train = read_wic(folder, "train", limit)
    return train, train if split == "train" else read_wic(folder, split, limit)


def evaluate(model: BertModel, tokenizer: Tokenizer, train: WicPairs, evaluated: WicPairs) -> WicResult:
    """Accuracy of the static and every layer's contextual cosines on `evaluated`, thresholds chosen on
    `train` (which may be the same pairs)."""
    train_cosines = pair_cosines(model, tokenizer, train)  # (M, L + 1)
    cosines = train_cosines if evaluated is train else pair_cosines(model, tokenizer, evaluated)  # (N, L + 1)
    return score(train_cosines, train.labels, cosines, evaluated.labels, evaluated.split)
