"""Word-similarity evaluation (WordSim-353, SimLex-999, MEN...): Spearman correlation in NumPy."""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import GloVeFormatError
from .table import GloVe


def average_ranks(x: np.ndarray) -> np.ndarray:
    """1-based ranks of ``x`` (n,), tied values sharing the mean of their ranks. float64 (n,)."""
    x = np.asarray(x, dtype=np.float64)
    order = np.argsort(x, kind="stable")
    sorted_x = x[order]
    starts = np.flatnonzero(np.r_[True, sorted_x[1:] != sorted_x[:-1]])
    ends = np.r_[starts[1:], len(x)]  # exclusive
    group = np.repeat(np.arange(len(starts)), ends - starts)
    ranks = np.empty(len(x), dtype=np.float64)
    ranks[order] = ((starts + ends - 1) / 2 + 1)[group]
    return ranks


def spearman(x: np.ndarray, y: np.ndarray) -> float:
    """Spearman's rank correlation of two (n,) samples: Pearson's r of their average ranks."""
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if x.shape != y.shape or x.ndim != 1:
        raise ValueError(f"need two samples of the same length, got shapes {x.shape} and {y.shape}")
    if len(x) < 2:
        raise ValueError(f"Spearman correlation needs at least 2 pairs, got {len(x)}")
    rx, ry = average_ranks(x) - (len(x) + 1) / 2, average_ranks(y) - (len(y) + 1) / 2
    denom = np.sqrt((rx @ rx) * (ry @ ry))
    if denom == 0:
        raise ValueError("Spearman correlation is undefined when one sample is constant")
    return float(rx @ ry / denom)


@dataclass(frozen=True)
class WordSimResult:
    """``spearman`` over the ``pairs`` scored; ``skipped`` pairs had a word out of vocabulary (listed in ``oov``)."""

    path: str
    spearman: float
    pairs: int
    skipped: int
    oov: list[str]

    @property
    def coverage(self) -> float:
        """The share of the file's pairs that were scored (both words in the table)."""
        return self.pairs / (self.pairs + self.skipped)


LOW_COVERAGE = 0.9
"""Below this share of pairs scored, ``evaluate_wordsim`` warns: the correlation then describes a subset."""

_MAX_LINE_BYTES = 1 << 16  # a pair and a score: a few dozen bytes


def _lines(path: str | os.PathLike[str]) -> Iterator[tuple[int, bytes]]:
    """(line number, raw line) of a text file, a leading UTF-8 BOM removed; a line longer than any word pair
    could be is a ``GloVeFormatError`` (so a file without line breaks is never read whole)."""
    with open(path, "rb") as f:
        for lineno, raw in enumerate(iter(lambda: f.readline(_MAX_LINE_BYTES + 1), b""), 1):
            if len(raw) > _MAX_LINE_BYTES:
                raise GloVeFormatError(path, f"a line longer than {_MAX_LINE_BYTES} bytes; expected 'word1 word2 score' "
                                             "lines", line=lineno, excerpt=raw[:200])
            yield lineno, raw.removeprefix(b"\xef\xbb\xbf") if lineno == 1 else raw


def read_pairs(path: str | os.PathLike[str]) -> list[tuple[str, str, float, int]]:
    """(word1, word2, score, line number) per line of ``word1 word2 score`` (tabs or spaces; CRLF accepted).

    A first line whose score is not a number is taken as a header and skipped; blank lines are skipped. A score
    that is NaN or infinite is an error: it would make the correlation meaningless.
    """
    pairs = []
    for lineno, raw in _lines(path):
        try:
            fields = raw.decode("utf-8").split()
        except UnicodeDecodeError as e:
            raise GloVeFormatError(path, f"not valid UTF-8 ({e.reason})", line=lineno, excerpt=raw) from None
        if not fields:
            continue
        if len(fields) != 3:
            raise GloVeFormatError(path, f"expected 'word1 word2 score', found {len(fields)} fields", line=lineno, excerpt=raw)
        try:
            score = float(fields[2])
        except ValueError:
            if lineno == 1:
                continue
            raise GloVeFormatError(path, f"score {fields[2]!r} is not a number", line=lineno, excerpt=raw) from None
        if not math.isfinite(score):
            raise GloVeFormatError(path, f"score {fields[2]!r} is not a finite number", line=lineno, excerpt=raw)
        pairs.append((fields[0], fields[1], score, lineno))
    if not pairs:
        raise GloVeFormatError(path, "no word pairs found")
    return pairs


def evaluate_wordsim(table: GloVe, path: str | os.PathLike[str], *, lowercase: bool = True) -> WordSimResult:
    """Spearman correlation between the file's human scores and the table's cosine similarities.

    Words are lowercased first by default (GloVe 6B is lowercase; WordSim-353 capitalises proper nouns). Pairs
    with a word out of vocabulary are skipped; a ``UserWarning`` says so when under ``LOW_COVERAGE`` were scored.
    """
    human, model, oov, skipped = [], [], [], 0
    for w1, w2, score, _ in read_pairs(path):
        if lowercase:
            w1, w2 = w1.lower(), w2.lower()
        missing = [w for w in (w1, w2) if w not in table]
        if missing:
            skipped += 1
            oov.extend(w for w in missing if w not in oov)
            continue
        human.append(score)
        model.append(table.similarity(w1, w2))
    if len(human) < 2:
        raise ValueError(f"{path}: only {len(human)} pair(s) have both words in the vocabulary")
    result = WordSimResult(str(Path(path)), spearman(np.array(human), np.array(model)), len(human), skipped, oov)
    if result.coverage < LOW_COVERAGE:
        warnings.warn(f"{path}: only {result.pairs} of {result.pairs + skipped} pairs ({result.coverage:.0%}) have both "
                      "words in the table; the correlation describes those pairs only", stacklevel=2)
    return result
