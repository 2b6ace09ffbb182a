"""The converted on-disk form of a table, written atomically and memory-mapped back.

A converted folder holds::

    manifest.json      format name/version, shape, dtype, source fingerprint, duplicate count, CRC-32 of the
                       small files
    vectors.npy        float32 (V, D), row i is the vector of word i
    norms.npy          float32 (V,), L2 norm of each row (for cosine without touching a second table)
    words.txt          the V words, UTF-8, each followed by "\\n", in row order
    word_offsets.npy   int64 (V + 1,), byte offset of word i in words.txt; the last entry is the file size
    word_order.npy     int64 (V,), row indices sorted by the words' UTF-8 bytes (binary search, no dict to build)

Loading maps the files. The small ones (words, offsets, order, norms: ~11 MB for 400,000 words) are checked
whole on opening (checksum and structure), so a damaged folder fails there with the file named; ``vectors.npy``
is only checked against its header and size, its pages become resident when a query touches them, and queries
check what they read (see ``GloVe``).
"""

from __future__ import annotations

import codecs
import contextlib
import json
import mmap
import os
import reprlib
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .errors import GloVeFormatError

FORMAT_NAME = "minibert-glove"
FORMAT_VERSION = 2  # 2: the manifest records the small files' CRC-32
MANIFEST = "manifest.json"
_CHECKSUMMED = ("norms.npy", "words.txt", "word_offsets.npy", "word_order.npy")
_MAX_MANIFEST_BYTES = 1 << 20
_BLOCK_BYTES = 1 << 20  # what a check of a whole file reads at once


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


TOO_LARGE = "NaN or infinite values, or values so large that the vector's length overflows float32"


def row_norms(rows: np.ndarray) -> np.ndarray:
    """float32 (n,) L2 norms of rows (n, D), the per-row reduction gensim's ``fill_norms`` does.

    A norm is NaN or infinite exactly when the row holds NaN/inf or its squared length overflows float32;
    such a row would turn cosines into NaN, so every writer refuses it (one ``isfinite`` checks all three).
    """
    with np.errstate(over="ignore", invalid="ignore"):
        return np.linalg.norm(rows, axis=1)


def check_words(words: Sequence[object], where: object) -> None:
    """Raise ``GloVeFormatError`` unless ``words`` are non-empty, unique strings without newlines."""
    seen: set[object] = set()
    for i, w in enumerate(words):
        if not isinstance(w, str) or not w or "\n" in w or "\r" in w or not _encodable(w):
            raise GloVeFormatError(where, f"word #{i} is {reprlib.repr(w)}: words must be non-empty strings without "
                                          "line breaks, valid Unicode (no lone surrogates)")
        if w in seen:
            raise GloVeFormatError(where, f"word #{i} {reprlib.repr(w)} appears twice; words must be unique")
        seen.add(w)


def _encodable(word: str) -> bool:
    """Whether ``word`` can be stored as UTF-8 (a lone surrogate cannot)."""
    try:
        word.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


class TableWriter:
    """Writes a converted folder into a temporary sibling folder and renames it into place on ``commit``
    (``minibert.io.atomic_folder``: a previous converted folder there is replaced only by a complete new one).

    An interrupted or failed write, or a writer left without ``commit``, removes the temporary folder and leaves
    ``dest`` as it was: never a folder that a later load would trust.
    """

    def __init__(self, dest: Path, dim: int):
        # Imported here: `import glove` and loading a converted folder need NumPy only.
        from minibert.io import NPY_HEADER_BYTES, atomic_folder

        self.dest = Path(dest)
        self.dim = dim
        self.dest.parent.mkdir(parents=True, exist_ok=True)
        # OSError, not minibert's OutputError: what glove's callers and its command line already handle.
        output = atomic_folder(self.dest, check=check_destination, option="", error=OSError)
        with contextlib.ExitStack() as stack:  # a constructor that fails leaves no temporary folder
            self.tmp = stack.enter_context(output)
            self._vectors = stack.enter_context(open(self.tmp / "vectors.npy", "wb"))
            self._vectors.write(bytes(NPY_HEADER_BYTES))  # rewritten by commit once the row count is known
            self._output = stack.pop_all()  # left open until commit (renamed into place) or __exit__ (removed)
        self._finished = False  # commit() has run: the temporary folder is in place or gone
        self.words: list[str] = []
        self._norms: list[np.ndarray] = []
        self._rows = 0

    def add(self, words: Sequence[str], rows: np.ndarray) -> None:
        """Append ``len(words)`` rows, float32 (n, D), whose norms the caller has checked to be finite."""
        rows = np.ascontiguousarray(rows, dtype="<f4")
        if rows.shape != (len(words), self.dim):
            raise ValueError(f"expected {len(words)} rows of {self.dim} values, got shape {rows.shape}")
        self._vectors.write(rows.reshape(-1).view(np.uint8))  # a flat byte view: also right when there are no rows
        self._norms.append(row_norms(rows))
        self.words.extend(words)
        self._rows += len(words)

    def add_table(self, words: Sequence[str], vectors: np.ndarray, where: object, rows_per_chunk: int = 1 << 16) -> None:
        """Append a whole (V, D) table chunk by chunk, so a mapped table is never all in memory at once."""
        for start in range(0, len(vectors), rows_per_chunk):
            with np.errstate(over="ignore"):  # checked as float32, the type stored: float64 1e300 becomes inf
                rows = np.asarray(vectors[start : start + rows_per_chunk], dtype=np.float32)
            bad = np.flatnonzero(~np.isfinite(row_norms(rows)))
            if len(bad):
                raise GloVeFormatError(where, f"row {start + bad[0]}: {TOO_LARGE}")
            self.add(words[start : start + len(rows)], rows)

    def commit(self, extra_manifest: dict[str, Any] | None = None) -> Path:
        """Finish the files, write the manifest last, and rename the folder into place."""
        from minibert.io import npy_header
        self._vectors.seek(0)
        self._vectors.write(npy_header(self._rows, self.dim))
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
            "crc32": {name: _crc32(self.tmp / name) for name in _CHECKSUMMED},
        }
        (self.tmp / MANIFEST).write_text(json.dumps(manifest, indent=1, ensure_ascii=False) + "\n", "utf-8")
        self._finished = True
        self._output.close()  # atomic_folder's block ends without an error: the folder goes into place
        return self.dest

    def __enter__(self) -> TableWriter:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: object) -> None:
        if self._finished:
            return
        if exc is None:  # a caller's bug; the folder has no manifest yet, so it is removed, never put in place
            error = RuntimeError(f"{self.dest}: TableWriter left without commit()")
            self._output.__exit__(RuntimeError, error, None)
            raise error
        self._output.__exit__(exc_type, exc, tb)  # vectors.npy closed, the temporary folder removed


def check_destination(dest: Path) -> None:
    """``FileExistsError`` unless ``dest`` is absent, an empty folder or a converted folder: the only things a
    conversion may replace (never a file, a link to one, a device, a FIFO, or a folder of other files)."""
    if not os.path.lexists(dest):
        return
    if dest.is_symlink() or not dest.is_dir():
        raise FileExistsError(f"{dest} exists and is not a folder; refusing to replace it with a converted table")
    if not is_converted_folder(dest) and any(dest.iterdir()):
        raise FileExistsError(f"{dest} exists and is not a folder converted by glove; refusing to replace it")


def _crc32(path: Path) -> int:
    """CRC-32 of a file, read in blocks: a crafted folder's huge file costs time, not memory."""
    crc = 0
    with open(path, "rb") as f:
        while block := f.read(_BLOCK_BYTES):
            crc = zlib.crc32(block, crc)
    return crc


def is_converted_folder(path: Path) -> bool:
    return (Path(path) / MANIFEST).is_file()


def read_manifest(folder: Path) -> dict[str, Any]:
    """The manifest of a converted folder; ``GloVeFormatError`` if missing, unreadable or of another format."""
    path = Path(folder) / MANIFEST
    try:
        with open(path, "rb") as f:
            raw = f.read(_MAX_MANIFEST_BYTES + 1)
        if len(raw) > _MAX_MANIFEST_BYTES:
            raise GloVeFormatError(path, f"larger than {_MAX_MANIFEST_BYTES} bytes; a manifest is a few hundred")
        manifest = json.loads(raw.decode("utf-8"))
    except FileNotFoundError:
        raise GloVeFormatError(folder, f"not a converted GloVe folder (no {MANIFEST})") from None
    except (OSError, ValueError, RecursionError) as e:  # RecursionError: JSON nested thousands deep
        raise GloVeFormatError(path, f"unreadable manifest: {type(e).__name__}: {e}") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT_NAME:
        raise GloVeFormatError(path, f"not a {FORMAT_NAME} manifest")
    if manifest.get("format_version") != FORMAT_VERSION:
        raise GloVeFormatError(
            path, f"format version {manifest.get('format_version')!r}, this package reads {FORMAT_VERSION}; "
            "convert the source again"
        )
    return manifest


@dataclass(frozen=True)
class MappedTable:
    """The memory-mapped arrays of a converted folder. vectors (V, D) float32, norms (V,) float32."""

    vectors: np.ndarray
    norms: np.ndarray
    vocab: Vocabulary
    manifest: dict[str, Any]


def map_npy(path: Path) -> np.memmap:
    """Memory-map a ``.npy`` file read-only.

    ``FileNotFoundError`` passes through; anything else that is not one whole ``.npy`` file (bad magic or
    header, pickled objects, a size that does not match the header) is a ``GloVeFormatError`` naming the file.
    """
    try:
        arr = np.lib.format.open_memmap(path, mode="r")
    except FileNotFoundError:
        raise
    except Exception as e:  # numpy's header parser raises ValueError, EOFError, SyntaxError, tokenize.TokenError...
        raise GloVeFormatError(path, f"not a readable .npy file ({type(e).__name__}: {e})") from None
    size, expected = os.path.getsize(path), arr.offset + arr.nbytes
    if size != expected:
        raise GloVeFormatError(path, f"{size} bytes, but its header describes {arr.dtype} {arr.shape} ({expected} bytes)")
    return arr


def open_folder(folder: Path) -> MappedTable:
    """Map a converted folder and check it, raising ``GloVeFormatError`` naming the damaged file.

    The small files must match the manifest's CRC-32 (so no byte of them changed since they were written) and,
    against a crafted folder, be consistent (offsets, word terminators, UTF-8, row indices, finite norms); every
    file must match the manifest's shape. ``vectors.npy`` is checked by its header and size only (it stays on disk).
    """
    folder = Path(folder)
    manifest = read_manifest(folder)
    _check_crc32(folder, manifest.get("crc32"))
    shape = manifest.get("shape")
    if not (isinstance(shape, list) and len(shape) == 2 and all(type(x) is int and x > 0 for x in shape)):
        raise GloVeFormatError(folder / MANIFEST, f"shape {shape!r}; expected [words, dims], two positive integers")
    v, d = shape
    expected = {
        "vectors.npy": ((v, d), np.float32),
        "norms.npy": ((v,), np.float32),
        "word_offsets.npy": ((v + 1,), np.int64),
        "word_order.npy": ((v,), np.int64),
    }
    arrays = {}
    for name, (want, dtype) in expected.items():
        try:
            arr = map_npy(folder / name)
        except FileNotFoundError:
            raise GloVeFormatError(folder / name, "missing") from None
        if arr.shape != want or arr.dtype != dtype:
            raise GloVeFormatError(
                folder / name, f"holds {arr.dtype} {arr.shape}, the manifest promises {np.dtype(dtype)} {want}"
            )
        arrays[name] = arr.view(np.ndarray)  # plain ndarray over the map: no np.memmap overhead per access
    _check_norms(folder / "norms.npy", arrays["norms.npy"], manifest.get("zero_vectors"))
    offsets, order = arrays["word_offsets.npy"], arrays["word_order.npy"]
    words_path = folder / "words.txt"
    try:
        with open(words_path, "rb") as f:
            blob = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
    except (OSError, ValueError) as e:  # ValueError: mmap of an empty file
        raise GloVeFormatError(words_path, f"unreadable ({e})") from None
    _check_words_file(words_path, blob, offsets)
    if order.min() < 0 or order.max() >= v:
        raise GloVeFormatError(folder / "word_order.npy", f"holds row numbers outside 0..{v - 1}")
    vocab = Vocabulary(blob, offsets, order)
    return MappedTable(arrays["vectors.npy"], arrays["norms.npy"], vocab, manifest)


def _check_crc32(folder: Path, recorded: object) -> None:
    """Each small file's CRC-32 must be the one the manifest recorded when the folder was written."""
    if not isinstance(recorded, dict):
        raise GloVeFormatError(folder / MANIFEST, f"crc32 {recorded!r}; expected the checksums of {', '.join(_CHECKSUMMED)}")
    for name in _CHECKSUMMED:
        try:
            crc = _crc32(folder / name)
        except FileNotFoundError:
            raise GloVeFormatError(folder / name, "missing") from None
        if crc != recorded.get(name):
            raise GloVeFormatError(
                folder / name, f"CRC-32 {crc}, the manifest records {recorded.get(name)!r}: the file changed since it was written"
            )


def _check_norms(path: Path, norms: np.ndarray, zero_vectors: object) -> None:
    """norms (V,): finite, non-negative, with as many zeros as the manifest says (queries rely on that count)."""
    bad = np.flatnonzero(~(np.isfinite(norms) & (norms >= 0)))
    if len(bad):
        raise GloVeFormatError(path, f"row {bad[0]}: norm {norms[bad[0]]}; expected a finite length >= 0")
    zeros = int(np.count_nonzero(norms == 0))
    if zeros != zero_vectors:
        raise GloVeFormatError(path, f"{zeros} zero norms, the manifest promises zero_vectors = {zero_vectors!r}")


def _check_words_file(path: Path, blob: mmap.mmap, offsets: np.ndarray) -> None:
    """words.txt: V non-empty UTF-8 words, each ended by the file's only newlines, at the byte offsets given."""
    size, v, data = len(blob), len(offsets) - 1, np.frombuffer(blob, np.uint8)
    if offsets[0] != 0 or offsets[-1] != size or not (np.diff(offsets) >= 2).all():
        raise GloVeFormatError(
            path, f"{size} bytes; word_offsets.npy must rise from 0 to the file size by at least 2 bytes a word"
        )
    if not (data[offsets[1:] - 1] == ord("\n")).all() or _count_newlines(data) != v:
        raise GloVeFormatError(path, f"expected {v} words each ending in the file's only newlines, at word_offsets.npy")
    decoder = codecs.getincrementaldecoder("utf-8")()
    for start in range(0, size, _BLOCK_BYTES):  # in blocks: a crafted file's size costs time, not memory
        pending = len(decoder.getstate()[0])
        try:
            decoder.decode(blob[start : start + _BLOCK_BYTES], final=start + _BLOCK_BYTES >= size)
        except UnicodeDecodeError as e:
            raise GloVeFormatError(path, f"not valid UTF-8 ({e.reason} at byte {start - pending + e.start})") from None


def _count_newlines(data: np.ndarray) -> int:
    """How many newline bytes the uint8 array holds, counted block by block."""
    return sum(int(np.count_nonzero(data[i : i + _BLOCK_BYTES] == ord("\n"))) for i in range(0, len(data), _BLOCK_BYTES))
