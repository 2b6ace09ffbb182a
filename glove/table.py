"""The ``GloVe`` table: gensim ``KeyedVectors`` names over memory-mapped arrays."""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple, Union, overload

import numpy as np

from .errors import GloVeError, GloVeFormatError
from .store import (
    MappedTable,
    TableWriter,
    Vocabulary,
    check_destination,
    check_words,
    open_folder,
    row_norms,
)

Key = Union[str, np.ndarray]
"""A word, or a (D,) vector, wherever ``most_similar`` takes words."""

# A cosine computed in float32 from a row and its stored norm strays from [-1, 1] by ~1e-6 at most; further
# means the row no longer matches its norm (a damaged vectors.npy).
_MAX_COSINE = 1.001


class WordNotFoundError(GloVeError, KeyError):
    """A word is not in the vocabulary. A ``KeyError`` whose message reads as plain text."""

    def __init__(self, word: str, message: str):
        self.word = word
        super().__init__(message)

    def __str__(self) -> str:
        return str(self.args[0])


class MeanVector(NamedTuple):
    """Result of ``GloVe.mean_vector``: the float32 (D,) mean and the words that were out of vocabulary."""

    vector: np.ndarray
    oov: list[str]


class KeyToIndex(Mapping[str, int]):
    """Read-only ``word -> row`` mapping, looked up by binary search (no 400,000-entry dict is built)."""

    def __init__(self, vocab: Vocabulary):
        self._vocab = vocab

    def __getitem__(self, word: str) -> int:
        i = self._vocab.index(word) if isinstance(word, str) else -1
        if i < 0:
            raise KeyError(word)
        return i

    def __contains__(self, word: object) -> bool:
        return isinstance(word, str) and self._vocab.index(word) >= 0

    def __iter__(self) -> Iterator[str]:
        return iter(self._vocab.all_words())

    def __len__(self) -> int:
        return len(self._vocab)


class IndexToKey(Sequence[str]):
    """Read-only ``row -> word`` sequence; slices return lists."""

    def __init__(self, vocab: Vocabulary):
        self._vocab = vocab

    @overload
    def __getitem__(self, i: int) -> str: ...
    @overload
    def __getitem__(self, i: slice) -> list[str]: ...
    def __getitem__(self, i: int | slice) -> str | list[str]:
        n = len(self._vocab)
        if isinstance(i, slice):
            return [self._vocab.word(j) for j in range(*i.indices(n))]
        j = int(i) + n if int(i) < 0 else int(i)
        if not 0 <= j < n:
            raise IndexError(f"row {i} out of range for a table of {n} words")
        return self._vocab.word(j)

    def __iter__(self) -> Iterator[str]:
        return iter(self._vocab.all_words())

    def __len__(self) -> int:
        return len(self._vocab)

    def __repr__(self) -> str:
        return f"IndexToKey({self[:5]!r}... {len(self)} words)"


class GloVe:
    """A static word-vector table with gensim ``KeyedVectors`` names.

    ``vectors`` is float32 (V, D), usually a read-only memory map; ``norms`` float32 (V,) holds each row's
    L2 norm. Queries follow gensim's arithmetic step by step, so ``most_similar`` and ``similarity`` give
    gensim's results on the same table. Opening does not read ``vectors``, so queries check what they read
    from it: a damaged row raises ``GloVeFormatError`` instead of answering NaN.
    """

    def __init__(
        self,
        vectors: np.ndarray,
        norms: np.ndarray,
        vocab: Vocabulary,
        *,
        manifest: dict[str, Any] | None = None,
        path: Path | None = None,
    ):
        self.vectors = vectors
        self.norms = norms
        self._vocab = vocab
        self.manifest: dict[str, Any] = manifest or {}
        self.path = path
        self.key_to_index = KeyToIndex(vocab)
        self.index_to_key = IndexToKey(vocab)
        zero = self.manifest.get("zero_vectors")
        if zero is None:
            zero = int(np.count_nonzero(norms == 0))
        # A zero row has no direction: give it similarity 0 instead of gensim's NaN.
        self._divisor = np.where(norms == 0, np.float32(np.inf), norms) if zero else norms

    # ------------------------------------------------------------------ construction

    @classmethod
    def open(cls, folder: str | os.PathLike[str]) -> GloVe:
        """Memory-map a folder written by ``save`` or by a conversion."""
        return cls.from_mapped(open_folder(Path(folder)), Path(folder))

    @classmethod
    def from_mapped(cls, mapped: MappedTable, folder: Path) -> GloVe:
        """The table of a folder already mapped and checked by ``open_folder``."""
        return cls(mapped.vectors, mapped.norms, mapped.vocab, manifest=mapped.manifest, path=folder)

    @classmethod
    def from_arrays(cls, words: Sequence[str], vectors: np.ndarray) -> GloVe:
        """A table from unique words and their (V, D) vectors (copied as float32, kept in memory).

        Any static table gets the same interface, e.g. a BERT model's input embeddings with its vocabulary.
        """
        words = list(words)
        vectors = np.array(vectors, dtype=np.float32, order="C")  # a private copy: the norms must stay true
        vectors.flags.writeable = False
        if vectors.ndim != 2 or len(words) != vectors.shape[0] or not words:
            raise ValueError(f"need V >= 1 words and a (V, D) matrix; got {len(words)} words and shape {vectors.shape}")
        norms = row_norms(vectors)
        if not np.isfinite(norms).all():
            bad = int(np.flatnonzero(~np.isfinite(norms))[0])
            raise ValueError(f"row {bad} of the vectors holds NaN or infinite values, or values so large that its "
                             "length overflows float32")
        check_words(words, "from_arrays(words)")
        return cls(vectors, norms, Vocabulary.build(words), manifest={"source": {"kind": "arrays"}})

    def save(self, folder: str | os.PathLike[str]) -> Path:
        """Write the converted form into ``folder`` (atomically); ``GloVe.open``/``glove.load`` read it back."""
        folder = Path(folder)
        check_destination(folder)
        words = self._vocab.all_words()
        with TableWriter(folder, self.dim) as writer:
            writer.add_table(words, self.vectors, folder)
            keep = ("source", "duplicates", "duplicate_examples", "word2vec_header")
            writer.commit({k: self.manifest[k] for k in keep if k in self.manifest})
        return folder

    # ------------------------------------------------------------------ mapping protocol

    @property
    def dim(self) -> int:
        return int(self.vectors.shape[1])

    vector_size = dim

    @property
    def duplicates(self) -> int:
        """How many duplicate words the source held (only the first occurrence of each was kept)."""
        return int(self.manifest.get("duplicates", 0))

    def __len__(self) -> int:
        return len(self._vocab)

    def __contains__(self, word: object) -> bool:
        return isinstance(word, str) and self._vocab.index(word) >= 0

    def __iter__(self) -> Iterator[str]:
        return iter(self.index_to_key)

    def __repr__(self) -> str:
        where = f", path={str(self.path)!r}" if self.path else ""
        return f"GloVe({len(self)} words x {self.dim} dims{where})"

    def get_index(self, word: str) -> int:
        """Row of ``word``; ``KeyError`` (with a casing hint) if absent."""
        i = self._vocab.index(word) if isinstance(word, str) else -1
        if i < 0:
            raise self._missing(word)
        return i

    def _missing(self, word: object) -> WordNotFoundError:
        if not isinstance(word, str):
            return WordNotFoundError(str(word), f"words are strings, got {type(word).__name__} {word!r}")
        variants = dict.fromkeys([word.lower(), word.capitalize(), word.title(), word.upper()])
        found = [v for v in variants if v != word and v in self]
        hint = f"; the table has {' and '.join(map(repr, found))} (it is case-sensitive)" if found else ""
        return WordNotFoundError(word, f"{word!r} is not in the vocabulary ({len(self)} words){hint}")

    @overload
    def __getitem__(self, word: str) -> np.ndarray: ...
    @overload
    def __getitem__(self, word: Iterable[str]) -> np.ndarray: ...
    def __getitem__(self, word: str | Iterable[str]) -> np.ndarray:
        """float32 (D,) for a word, (n, D) for a list of words; a copy, safe to modify."""
        if isinstance(word, str):
            return self._rows([self.get_index(word)])[0]
        return self._rows([self.get_index(w) for w in word])

    def get(self, word: str, default: Any = None) -> np.ndarray | Any:
        i = self._vocab.index(word) if isinstance(word, str) else -1
        return self._rows([i])[0] if i >= 0 else default

    def _rows(self, rows: list[int]) -> np.ndarray:
        """float32 (n, D): a checked copy of some rows of ``vectors``."""
        out = self.vectors[rows].reshape(-1, self.dim)  # fancy indexing copies
        bad = np.flatnonzero(~np.isfinite(out).all(axis=1))
        if len(bad):
            raise self._damaged(rows[bad[0]], "holds NaN or infinite values")
        return out

    def _damaged(self, row: int, problem: str) -> GloVeFormatError:
        where = self.path / "vectors.npy" if self.path else "vectors"
        return GloVeFormatError(
            where, f"row {row} ({self._vocab.word(row)!r}) {problem}: the file is damaged; delete the folder and convert "
            "the source again"
        )

    # ------------------------------------------------------------------ similarity

    def _unit_row(self, i: int) -> np.ndarray:
        """float32 (D,): row ``i`` divided by its norm, as gensim's ``get_vector(norm=True)``."""
        n = self.norms[i]
        return self._rows([i])[0] / n if n else np.zeros(self.dim, np.float32)

    def similarity(self, w1: str, w2: str) -> float:
        """Cosine similarity of two words."""
        a, b = self._rows([self.get_index(w1), self.get_index(w2)])
        return float(np.dot(_unitvec(a), _unitvec(b)))

    def most_similar(
        self, positive: Key | Sequence[Key] = (), negative: Key | Sequence[Key] = (), topn: int | None = 10
    ) -> list[tuple[str, float]] | np.ndarray:
        """The ``topn`` words nearest (cosine) to the mean of the unit ``positive`` minus ``negative`` vectors.

        The query words themselves are left out, as in gensim. ``most_similar(["king", "woman"], ["man"])``
        answers the analogy man : king :: woman : ?. With ``topn=None``, returns all V similarities,
        float32 (V,).
        """
        if isinstance(topn, int) and topn < 1:
            return []
        keys = [(k, 1.0) for k in _as_keys(positive)] + [(k, -1.0) for k in _as_keys(negative)]
        if not keys:
            raise ValueError("most_similar needs at least one positive or negative word or vector")
        mean = np.zeros(self.dim, np.float32)
        excluded: list[int] = []
        for key, weight in keys:
            if isinstance(key, str):
                i = self.get_index(key)
                excluded.append(i)
                vec = self._unit_row(i)
            else:
                vec = self._check_vector(key)
            mean += np.float64(weight) * vec  # gensim accumulates float64 products into a float32 mean
        mean = _unitvec(mean / np.float64(len(keys)))  # float64 division, as gensim
        return self._nearest(mean, topn, excluded)

    def most_similar_by_vector(self, vector: np.ndarray, topn: int | None = 10) -> list[tuple[str, float]] | np.ndarray:
        """The ``topn`` words nearest (cosine) to a (D,) vector; nothing is excluded."""
        return self.most_similar(positive=[self._check_vector(vector)], topn=topn)

    similar_by_vector = most_similar_by_vector

    def _check_vector(self, vector: object) -> np.ndarray:
        vec = np.asarray(vector, dtype=np.float32)
        if vec.shape != (self.dim,):
            raise ValueError(f"expected a vector of shape ({self.dim},), got {vec.shape}")
        if not np.isfinite(row_norms(vec[None]))[0]:
            raise ValueError("the vector holds NaN or infinite values, or values so large that its length overflows "
                             "float32")
        return vec

    def _nearest(self, query: np.ndarray, topn: int | None, excluded: list[int]) -> list[tuple[str, float]] | np.ndarray:
        """Rank all rows by ``vectors @ query / norms``: one pass over the mapped table."""
        dists = self.vectors @ query
        dists /= self._divisor
        bad = np.flatnonzero(~(np.abs(dists) <= _MAX_COSINE))  # also catches NaN
        if len(bad):
            self._rows([int(bad[0])])  # a row holding NaN/inf is named as such
            raise self._damaged(int(bad[0]), f"does not match its norm in norms.npy (cosine {dists[bad[0]]:.3g})")
        if topn is None:
            return dists
        best = top_indices(dists, topn + len(excluded))
        skip = set(excluded)
        return [(self._vocab.word(int(i)), float(dists[i])) for i in best if int(i) not in skip][:topn]

    def doesnt_match(self, words: Sequence[str]) -> str:
        """The word furthest from the mean of the others (unit vectors); unknown words are ignored with a warning."""
        used = [w for w in words if w in self]
        if len(used) != len(words):
            warnings.warn(f"ignoring words not in the vocabulary: {[w for w in words if w not in self]}", stacklevel=2)
        if not used:
            raise ValueError("doesnt_match: none of the words is in the vocabulary")
        units = np.vstack([self._unit_row(self.get_index(w)) for w in used]).astype(np.float32)
        total = np.zeros(self.dim, np.float32)
        for row in units:  # row by row, the order gensim sums in
            total += row
        mean = _unitvec(total / np.float32(len(used)))
        return sorted(zip(units @ mean, used), reverse=True)[-1][1]

    def mean_vector(self, words_or_text: str | Iterable[str], skip_oov: bool = True, lowercase: bool = False) -> MeanVector:
        """Plain mean of the raw vectors of some words (a string is split on whitespace).

        Returns ``MeanVector(vector, oov)``: float32 (D,) and the words skipped as out of vocabulary. With
        ``skip_oov=False`` an unknown word raises ``KeyError``; if no word is known, ``KeyError`` too.
        """
        words = words_or_text.split() if isinstance(words_or_text, str) else list(words_or_text)
        if lowercase:
            words = [w.lower() for w in words]
        rows, oov = [], []
        for w in words:
            i = self._vocab.index(w) if isinstance(w, str) else -1
            if i >= 0:
                rows.append(i)
            elif skip_oov:
                oov.append(w)
            else:
                raise self._missing(w)
        if not rows:
            raise WordNotFoundError(str(words[:5]), f"none of the {len(words)} words is in the vocabulary: {oov[:10]}")
        return MeanVector(self._rows(rows).mean(axis=0, dtype=np.float64).astype(np.float32), oov)


def top_indices(scores: np.ndarray, k: int, block: int = 256) -> np.ndarray:
    """Indices of the ``k`` largest of ``scores`` (V,), largest first, ties in index order. int64 (min(k, V),)

    Cheaper than an argpartition of all V: the k-th largest of the per-block maxima is a threshold that at
    least k scores reach, so only the few scores above it are sorted.
    """
    n_blocks = len(scores) // block
    if n_blocks <= k:
        return np.argsort(-scores, kind="stable")[:k]
    maxima = scores[: n_blocks * block].reshape(n_blocks, block).max(axis=1)
    threshold = np.partition(maxima, n_blocks - k)[n_blocks - k]
    candidates = np.flatnonzero(scores >= threshold)
    return candidates[np.argsort(-scores[candidates], kind="stable")[:k]]


def _as_keys(keys: Key | Sequence[Key]) -> list[Key]:
    """A single word or vector, or a sequence of them, as a list."""
    if isinstance(keys, str) or (isinstance(keys, np.ndarray) and keys.ndim == 1):
        return [keys]
    return list(keys)


def _unitvec(vec: np.ndarray) -> np.ndarray:
    """float32 (D,) unit vector computed as gensim's ``unitvec`` does (float64 norm and scaling, then float32),
    so similarities agree to the last bit. A zero vector stays zero."""
    vec64 = np.asarray(vec, dtype=np.float64)
    norm = float(np.linalg.norm(vec64))
    return (vec64 * (1.0 / norm) if norm > 0 else vec64).astype(np.float32)
