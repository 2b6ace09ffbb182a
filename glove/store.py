"""The converted on-disk form of a table, written atomically and memory-mapped back.

A converted folder holds::

    manifest.json      format name/version, shape, dtype, source fingerprint, duplicate count
    vectors.npy        float32 (V, D), row i is the vector of word i
    norms.npy          float32 (V,), L2 norm of each row (for cosine without touching a second table)
    words.txt          the V words, UTF-8, each followed by "\\n", in row order
    word_offsets.npy   int64 (V + 1,), byte offset of word i in words.txt; the last entry is the file size
    word_order.npy     int64 (V,), row indices sorted by the words' UTF-8 bytes (binary search, no dict to build)

Nothing here is read eagerly: loading maps the files, so a 400,000-word table opens in milliseconds and its
pages only become resident when a query touches them.
"""

from __future__ import annotations

import contextlib
import json
import mmap
import os
import shutil
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .errors import GloVeFormatError

FORMAT_NAME = "minibert-glove"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
_FILES = ("vectors.npy", "norms.npy", "words.txt", "word_offsets.npy", "word_order.npy")
# Data starts at this offset in vectors.npy: the header is rewritten once the row count is known.
_NPY_HEADER_BYTES = 128


@dataclass(frozen=True)
class Vocabulary:
    """Words stored as one UTF-8 blob, looked up by binary search over a sorted permutation.

    ``blob`` is bytes or a read-only mmap; ``offsets`` int64 (V + 1,); ``order`` int64 (V,).
    """

    blob: bytes | mmap.mmap
    offsets: np.ndarray
    order: np.ndarray

    def __len__(self) -> int:
        return len(self.order)

    def word_bytes(self, index: int) -> bytes:
        return self.blob[int(self.offsets[index]) : int(self.offsets[index + 1]) - 1]

    def word(self, index: int) -> str:
        return self.word_bytes(index).decode("utf-8")

    def index(self, word: str) -> int:
        """Row of ``word``, or -1 when absent."""
        try:
            key = word.encode("utf-8")
        except UnicodeEncodeError:  # lone surrogates can never be in a UTF-8 vocabulary
            return -1
        order, lo, hi = self.order, 0, len(self.order)
        while lo < hi:
            mid = (lo + hi) // 2
            if self.word_bytes(order[mid]) < key:
                lo = mid + 1
            else:
                hi = mid
        if lo < len(order) and self.word_bytes(order[lo]) == key:
            return int(order[lo])
        return -1

    def all_words(self) -> list[str]:
        """Every word in row order (decodes the whole blob once)."""
        return bytes(self.blob[: int(self.offsets[-1])]).decode("utf-8").split("\n")[:-1]

    @classmethod
    def build(cls, words: Sequence[str]) -> Vocabulary:
        """In-memory vocabulary; the caller guarantees unique words without newlines."""
        encoded = [w.encode("utf-8") for w in words]
        offsets = np.zeros(len(encoded) + 1, dtype=np.int64)
        np.cumsum([len(e) + 1 for e in encoded], out=offsets[1:])
        order = np.array(sorted(range(len(encoded)), key=encoded.__getitem__), dtype=np.int64)
        return cls(b"".join(e + b"\n" for e in encoded), offsets, order)


def check_words(words: Sequence[object], where: object) -> None:
    """Raise ``GloVeFormatError`` unless ``words`` are non-empty, unique strings without newlines."""
    seen: set[object] = set()
    for i, w in enumerate(words):
        if not isinstance(w, str) or not w or "\n" in w or "\r" in w:
            raise GloVeFormatError(where, f"word #{i} is {w!r}: words must be non-empty strings without line breaks")
        if w in seen:
            raise GloVeFormatError(where, f"word #{i} {w!r} appears twice; words must be unique")
        seen.add(w)


class TableWriter:
    """Writes a converted folder into a temporary sibling folder and renames it into place on ``commit``.

    An interrupted or failed write leaves only the temporary folder (removed on exit), never a folder that a
    later load would trust.
    """

    def __init__(self, dest: Path, dim: int):
        self.dest = Path(dest)
        self.dim = dim
        self.dest.parent.mkdir(parents=True, exist_ok=True)
        self.tmp = self.dest.parent / f".{self.dest.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self.tmp.mkdir()
        self.words: list[str] = []
        self._norms: list[np.ndarray] = []
        self._rows = 0
        self._vectors = open(self.tmp / "vectors.npy", "wb")
        self._vectors.write(b"\0" * _NPY_HEADER_BYTES)

    def add(self, words: Sequence[str], rows: np.ndarray) -> None:
        """Append ``len(words)`` rows, float32 (n, D)."""
        rows = np.ascontiguousarray(rows, dtype="<f4")
        if rows.shape != (len(words), self.dim):
            raise ValueError(f"expected {len(words)} rows of {self.dim} values, got shape {rows.shape}")
        self._vectors.write(memoryview(rows).cast("B"))
        self._norms.append(np.linalg.norm(rows, axis=1))  # the same per-row reduction gensim's fill_norms does
        self.words.extend(words)
        self._rows += len(words)

    def add_table(self, words: Sequence[str], vectors: np.ndarray, where: object, rows_per_chunk: int = 1 << 16) -> None:
        """Append a whole (V, D) table chunk by chunk, so a mapped table is never all in memory at once."""
        for start in range(0, len(vectors), rows_per_chunk):
            rows = vectors[start : start + rows_per_chunk]
            if not np.isfinite(rows).all():
                raise GloVeFormatError(where, f"non-finite values in the vectors of rows {start}..{start + len(rows) - 1}")
            self.add(words[start : start + len(rows)], rows)

    def commit(self, extra_manifest: dict[str, Any] | None = None) -> Path:
        """Finish the files, write the manifest last, and rename the folder into place."""
        header = "{'descr': '<f4', 'fortran_order': False, 'shape': (%d, %d), }" % (self._rows, self.dim)
        pad = _NPY_HEADER_BYTES - 10 - len(header) - 1
        self._vectors.seek(0)
        self._vectors.write(b"\x93NUMPY\x01\x00" + (pad + len(header) + 1).to_bytes(2, "little"))
        self._vectors.write(header.encode("latin1") + b" " * pad + b"\n")
        self._vectors.close()
        norms = np.concatenate(self._norms) if self._norms else np.zeros(0, np.float32)
        np.save(self.tmp / "norms.npy", norms.astype(np.float32))
        vocab = Vocabulary.build(self.words)
        (self.tmp / "words.txt").write_bytes(bytes(vocab.blob))
        np.save(self.tmp / "word_offsets.npy", vocab.offsets)
        np.save(self.tmp / "word_order.npy", vocab.order)
        manifest = {
            "format": FORMAT_NAME,
            "format_version": FORMAT_VERSION,
            "shape": [self._rows, self.dim],
            "dtype": "float32",
            "zero_vectors": int(np.count_nonzero(norms == 0)),
            **(extra_manifest or {}),
        }
        (self.tmp / MANIFEST).write_text(json.dumps(manifest, indent=1, ensure_ascii=False) + "\n", "utf-8")
        publish(self.tmp, self.dest)
        return self.dest

    def __enter__(self) -> TableWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        if not self._vectors.closed:
            self._vectors.close()
        shutil.rmtree(self.tmp, ignore_errors=True)


def publish(tmp: Path, dest: Path) -> None:
    """Rename the finished folder ``tmp`` to ``dest``, replacing an older converted folder there.

    The old folder is first moved aside (readers that already mapped its files keep working), so at no moment
    does ``dest`` hold a mixture of old and new files.
    """
    if dest.exists():
        if not is_converted_folder(dest) and any(dest.iterdir()):
            raise FileExistsError(f"{dest} exists and is not a folder converted by glove; refusing to replace it")
        trash = dest.parent / f".{dest.name}.old-{uuid.uuid4().hex[:8]}"
        with contextlib.suppress(FileNotFoundError):  # a concurrent writer may have moved it already
            os.rename(dest, trash)
        shutil.rmtree(trash, ignore_errors=True)
    os.rename(tmp, dest)


def is_converted_folder(path: Path) -> bool:
    return (Path(path) / MANIFEST).is_file()


def read_manifest(folder: Path) -> dict[str, Any]:
    """The manifest of a converted folder; ``GloVeFormatError`` if missing, unreadable or of another format."""
    path = Path(folder) / MANIFEST
    try:
        manifest = json.loads(path.read_text("utf-8"))
    except FileNotFoundError:
        raise GloVeFormatError(folder, f"not a converted GloVe folder (no {MANIFEST})") from None
    except (OSError, ValueError) as e:
        raise GloVeFormatError(path, f"unreadable manifest: {e}") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT_NAME:
        raise GloVeFormatError(path, f"not a {FORMAT_NAME} manifest")
    if manifest.get("format_version") != FORMAT_VERSION:
        raise GloVeFormatError(
            path, f"format version {manifest.get('format_version')!r}, this package reads {FORMAT_VERSION}"
        )
    return manifest


@dataclass(frozen=True)
class MappedTable:
    """The memory-mapped arrays of a converted folder. vectors (V, D) float32, norms (V,) float32."""

    vectors: np.ndarray
    norms: np.ndarray
    vocab: Vocabulary
    manifest: dict[str, Any]


def open_folder(folder: Path) -> MappedTable:
    """Map a converted folder, checking every file against the manifest's shape (cheap: headers only)."""
    folder = Path(folder)
    manifest = read_manifest(folder)
    try:
        v, d = (int(x) for x in manifest["shape"])
    except (KeyError, TypeError, ValueError):
        raise GloVeFormatError(folder / MANIFEST, f"bad shape {manifest.get('shape')!r}") from None
    expected = {
        "vectors.npy": ((v, d), np.float32),
        "norms.npy": ((v,), np.float32),
        "word_offsets.npy": ((v + 1,), np.int64),
        "word_order.npy": ((v,), np.int64),
    }
    arrays = {}
    for name, (shape, dtype) in expected.items():
        try:
            arr = np.load(folder / name, mmap_mode="r", allow_pickle=False)
        except (OSError, ValueError) as e:
            raise GloVeFormatError(folder / name, f"unreadable: {e}") from None
        if arr.shape != shape or arr.dtype != dtype:
            raise GloVeFormatError(
                folder / name, f"holds {arr.dtype} {arr.shape}, the manifest promises {np.dtype(dtype)} {shape}"
            )
        arrays[name] = arr.view(np.ndarray)  # plain ndarray over the map: no np.memmap overhead per access
    words_path = folder / "words.txt"
    with open(words_path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        if v == 0:
            raise GloVeFormatError(folder / MANIFEST, "the table is empty")
        if size != int(arrays["word_offsets.npy"][-1]):
            raise GloVeFormatError(words_path, f"{size} bytes, the offsets promise {int(arrays['word_offsets.npy'][-1])}")
        blob = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
    vocab = Vocabulary(blob, arrays["word_offsets.npy"], arrays["word_order.npy"])
    return MappedTable(arrays["vectors.npy"], arrays["norms.npy"], vocab, manifest)
