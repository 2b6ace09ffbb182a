"""GloVe text -> converted folder: fast bulk parsing, source fingerprints, the cache and its lock.

Parsing speed: values are never converted one by one in Python. A chunk of lines is split into words and
"value parts", and the value parts are handed to ``np.loadtxt`` (C parser, one call per chunk), which also
checks that every line has exactly D values. Lines the fast path cannot take as is (words with spaces, tabs,
CRLF) are normalised individually; only when a chunk fails does a slow per-line pass run, to find the first
bad line and name it. Values are parsed to the nearest double and rounded to float32, as gensim's
``np.float32(token)`` does, so the vectors are bit-identical to gensim's.
"""

from __future__ import annotations

import bz2
import contextlib
import gzip
import hashlib
import lzma
import os
import queue
import re
import threading
import warnings
import zipfile
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import numpy as np

from .errors import GloVeFormatError
from .store import TableWriter, is_converted_folder, read_manifest

ProgressFn = Callable[[int, int], None]
"""Called as ``progress(done, total)`` in bytes of the source file."""

_CHUNK_BYTES = 8 << 20
_NUMBER = re.compile(rb"[+-]?(?:(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?|nan|inf|infinity)", re.IGNORECASE)
_MAGIC: dict[bytes, Callable[[IO[bytes]], IO[bytes]]] = {
    b"\x1f\x8b": lambda f: gzip.GzipFile(fileobj=f, mode="rb"),
    b"BZh": lambda f: bz2.BZ2File(f),
    b"\xfd7zXZ\x00": lambda f: lzma.LZMAFile(f),
}


@dataclass(frozen=True)
class TextSource:
    """A GloVe text file, possibly compressed, or one member of a zip archive."""

    path: Path
    member: str | None = None

    @property
    def display(self) -> str:
        return f"{self.path}!{self.member}" if self.member else str(self.path)


# ----------------------------------------------------------------------------------------------- reading


@contextlib.contextmanager
def _open_binary(src: TextSource) -> Iterator[tuple[IO[bytes], int, Callable[[], int]]]:
    """(decompressed stream, total bytes for progress, bytes done so far) for a text source."""
    with open(src.path, "rb") as raw:
        magic = raw.read(6)
        raw.seek(0)
        size = os.fstat(raw.fileno()).st_size
        if magic.startswith(b"PK\x03\x04"):
            with zipfile.ZipFile(raw) as zf, zf.open(zip_member(zf, src)) as member:
                info = zf.getinfo(member.name)
                yield member, info.compress_size, lambda: min(raw.tell(), info.compress_size)
            return
        if src.member is not None:
            raise GloVeFormatError(src.path, f"member={src.member!r} given, but the file is not a zip archive")
        opener = next((cls for m, cls in _MAGIC.items() if magic.startswith(m)), None)
        if opener is None:
            yield raw, size, raw.tell
        else:
            with opener(raw) as stream:
                yield stream, size, raw.tell


def zip_member(zf: zipfile.ZipFile, src: TextSource) -> str:
    """The member to read: the one asked for, else the only .txt in the archive."""
    names = [n for n in zf.namelist() if not n.endswith("/")]
    if src.member is not None:
        if src.member in names:
            return src.member
        matches = [n for n in names if n.rsplit("/", 1)[-1] == src.member]  # allow the bare file name
        if len(matches) == 1:
            return matches[0]
        raise GloVeFormatError(src.path, f"no member {src.member!r} in the archive; it holds {names}")
    texts = [n for n in names if n.endswith(".txt")]
    if len(texts) == 1:
        return texts[0]
    raise GloVeFormatError(src.path, f"the archive holds {names}: choose one with member=...")


def _line_chunks(stream: IO[bytes], path: Path, progress: Callable[[], None]) -> Iterator[bytes]:
    """Chunks of whole lines (the final newline dropped). Decompression runs in a thread (zlib releases the
    GIL), overlapping with parsing on a second core."""
    blocks: queue.Queue[bytes | BaseException | None] = queue.Queue(maxsize=4)
    stop = threading.Event()

    def read() -> None:
        try:
            while not stop.is_set():
                block = stream.read(_CHUNK_BYTES)
                if not block:
                    break
                blocks.put(block)
            blocks.put(None)
        except BaseException as e:  # handed to the consumer, which raises it with the file name
            blocks.put(e)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        tail = b""
        while True:
            block = blocks.get()
            if isinstance(block, BaseException):
                if isinstance(block, (EOFError, OSError, zipfile.BadZipFile, lzma.LZMAError)):
                    raise GloVeFormatError(path, f"corrupt or truncated compressed data: {block}") from block
                raise block
            if block is None:
                break
            progress()
            block = tail + block
            cut = block.rfind(b"\n")
            if cut < 0:
                tail = block
                continue
            tail = block[cut + 1 :]
            yield block[:cut]
        if tail:
            yield tail
    finally:
        stop.set()
        with contextlib.suppress(queue.Empty):  # unblock a reader waiting on a full queue
            while True:
                blocks.get_nowait()
        reader.join()


# ----------------------------------------------------------------------------------------------- parsing


def _is_number(token: bytes) -> bool:
    return _NUMBER.fullmatch(token) is not None


def _value_problem(values: list[bytes], dim: int) -> str | None:
    """Why these value fields are not D finite numbers, or None."""
    if len(values) != dim:
        return f"expected {dim} values after the word, found {len(values)}"
    for token in values:
        if not _is_number(token):
            return f"value {token.decode('utf-8', 'backslashreplace')!r} is not a number"
        if not np.isfinite(float(token)):
            return f"value {token.decode()!r} is not finite"
    return None


@dataclass
class ParseReport:
    """What the parser saw besides the vectors."""

    lines: int = 0
    duplicates: int = 0
    duplicate_examples: list[tuple[str, int]] | None = None
    header: tuple[int, int] | None = None


class _Parser:
    """Feeds whole-line chunks of a GloVe text file into a TableWriter-like sink."""

    def __init__(self, src: TextSource, first_chunk: bytes):
        self.src = src
        self.report = ParseReport(duplicate_examples=[])
        self.seen: set[str] = set()
        self.lineno = 0  # lines consumed so far
        self.dim, self.skip_header = self._sniff(first_chunk)

    def _error(self, message: str, line: int, raw: bytes) -> GloVeFormatError:
        return GloVeFormatError(self.src.display, message, line=line, excerpt=raw)

    def _sniff(self, chunk: bytes) -> tuple[int, bool]:
        """D from the commonest field count of the first lines; a word2vec ``count dim`` header is detected."""
        lines = chunk.split(b"\n", 101)[:101]
        if not chunk.strip():
            raise GloVeFormatError(self.src.display, "empty file: no vectors found")
        first = lines[0].split()
        rest = Counter(len(line.split()) for line in lines[1:] if line.strip())
        if len(first) == 2 and all(f.isdigit() for f in first) and rest and rest.most_common(1)[0][0] == int(first[1]) + 1 != 2:
            # word2vec's "count dim". With dim 1 it would look like a data line, so it is taken as one.
            self.report.header = (int(first[0]), int(first[1]))
            return int(first[1]), True
        fields = (Counter([len(first)]) + rest).most_common(1)[0][0]  # ties go to the first line's count
        if fields < 2:
            raise self._error("expected a word followed by numbers separated by spaces", 1, lines[0])
        return fields - 1, False

    def _normalise(self, line: bytes, lineno: int) -> tuple[bytes, bytes]:
        """(word, values joined by single spaces) for a line the fast path could not split."""
        fields = line.split()
        dim = self.dim
        if not fields:
            raise self._error("blank line", lineno, line)
        if len(fields) < dim + 1:
            raise self._error(f"expected a word and {dim} values, found {len(fields)} fields", lineno, line)
        if len(fields) > dim + 1 and all(_is_number(f) for f in fields[1:-dim]):
            # Extra fields that are numbers mean too many values, not a word with spaces (GloVe 840B has those).
            raise self._error(f"expected {dim} values after the word, found {len(fields) - 1}", lineno, line)
        return b" ".join(fields[:-dim]), b" ".join(fields[-dim:])

    def parse(self, chunk: bytes) -> tuple[list[str], np.ndarray]:
        """Words (duplicates dropped) and their float32 (n, D) rows for one chunk of whole lines."""
        lines = chunk.split(b"\n")
        first = self.lineno + 1
        self.lineno += len(lines)
        if self.skip_header:
            lines, first, self.skip_header = lines[1:], first + 1, False
        dim = self.dim
        words: list[bytes] = []
        values: list[bytes] = []
        for i, line in enumerate(lines):
            if line.count(b" ") == dim:  # the common case: "word v1 ... vD"
                word, _, rest = line.partition(b" ")
                if word and not rest.endswith(b"\r"):
                    words.append(word)
                    values.append(rest)
                    continue
            word, rest = self._normalise(line, first + i)
            words.append(word)
            values.append(rest)
        rows = self._to_floats(values, lines, first)
        return self._dedupe(self._decode(words, lines, first), rows, first)

    def _to_floats(self, values: list[bytes], lines: list[bytes], first: int) -> np.ndarray:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("error")
                rows = np.loadtxt(values, dtype=np.float32, delimiter=" ", comments=None, quotechar=None, ndmin=2)
            if rows.shape == (len(values), self.dim) and np.isfinite(rows).all():
                return rows
        except (ValueError, UserWarning):
            pass
        for i, rest in enumerate(values):  # slow path, only to name the first bad line
            problem = _value_problem(rest.split(b" "), self.dim)
            if problem:
                raise self._error(problem, first + i, lines[i])
        raise GloVeFormatError(self.src.display, f"could not parse the values of lines {first}-{first + len(lines) - 1}")

    def _decode(self, words: list[bytes], lines: list[bytes], first: int) -> list[str]:
        try:
            return b"\n".join(words).decode("utf-8").split("\n")
        except UnicodeDecodeError:
            for i, word in enumerate(words):
                try:
                    word.decode("utf-8")
                except UnicodeDecodeError as e:
                    raise self._error(f"the word is not valid UTF-8 ({e.reason} at byte {e.start})", first + i, lines[i]) from None
            raise

    def _dedupe(self, words: list[str], rows: np.ndarray, first: int) -> tuple[list[str], np.ndarray]:
        seen, keep = self.seen, []
        for i, word in enumerate(words):
            if word in seen:
                self.report.duplicates += 1
                if len(self.report.duplicate_examples) < 5:
                    self.report.duplicate_examples.append((word, first + i))
            else:
                seen.add(word)
                keep.append(i)
        if len(keep) == len(words):
            return words, rows
        return [words[i] for i in keep], rows[keep]


def convert_text(
    src: TextSource, dest: Path, *, manifest: dict[str, Any] | None = None, progress: ProgressFn | None = None
) -> ParseReport:
    """Parse a GloVe text source and write the converted folder ``dest`` atomically."""
    with _open_binary(src) as (stream, total, done):
        chunks = _line_chunks(stream, src.path, (lambda: progress(done(), total)) if progress else (lambda: None))
        first = next(chunks, b"")
        parser = _Parser(src, first)
        with TableWriter(dest, parser.dim) as writer:
            for chunk in _chain(first, chunks):
                writer.add(*parser.parse(chunk))
            report = parser.report
            report.lines = parser.lineno
            if report.header and report.header[0] != report.lines - 1:
                raise GloVeFormatError(
                    src.display, f"the header promises {report.header[0]} vectors, the file holds {report.lines - 1}"
                )
            if not writer.words:
                raise GloVeFormatError(src.display, "empty file: no vectors found")
            if report.duplicates:
                examples = ", ".join(f"{w!r} (line {n})" for w, n in report.duplicate_examples)
                warnings.warn(
                    f"{src.display}: {report.duplicates} duplicate word(s) skipped, the first occurrence kept: {examples}",
                    stacklevel=3,
                )
            writer.commit(
                {
                    **(manifest or {}),
                    "duplicates": report.duplicates,
                    "duplicate_examples": report.duplicate_examples,
                    "word2vec_header": report.header is not None,
                }
            )
    return report


def _chain(first: bytes, rest: Iterator[bytes]) -> Iterator[bytes]:
    yield first
    yield from rest


# ----------------------------------------------------------------------------------------------- fingerprint and cache


def fingerprint(paths: list[Path], extra: str = "") -> str:
    """A content fingerprint that costs ~1 MB of reading however large the files are.

    It hashes each file's size and 16 evenly spaced 64 KiB samples (first and last included), plus ``extra``
    (e.g. the zip member). Copies of a file share a fingerprint; an edit that changes the size or a sampled
    region changes it.
    """
    h = hashlib.sha256(f"glove-fingerprint-1\0{extra}\0".encode())
    block, samples = 1 << 16, 16
    for path in paths:
        with open(path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            h.update(size.to_bytes(8, "little"))
            for k in range(samples):
                f.seek(max(0, (size - block) * k // (samples - 1)))
                h.update(f.read(block))
    return h.hexdigest()


def default_cache_root() -> Path:
    """``$MINIBERT_CACHE/glove``, else ``$XDG_CACHE_HOME/minibert/glove``, else ``~/.cache/minibert/glove``."""
    if os.environ.get("MINIBERT_CACHE"):
        return Path(os.environ["MINIBERT_CACHE"]).expanduser() / "glove"
    base = os.environ.get("XDG_CACHE_HOME") or (
        os.environ.get("LOCALAPPDATA") if os.name == "nt" else None
    ) or Path.home() / ".cache"
    return Path(base).expanduser() / "minibert" / "glove"


def cache_is_valid(folder: Path, fp: str) -> bool:
    """True when ``folder`` is a finished conversion of the source with fingerprint ``fp``."""
    if not is_converted_folder(folder):
        return False
    try:
        return read_manifest(folder).get("source", {}).get("fingerprint") == fp
    except GloVeFormatError:
        return False


@contextlib.contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """An exclusive inter-process lock on ``path`` (created if needed), so two converters take turns."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+b") as f:
        if os.name == "nt":  # pragma: no cover - exercised on Windows only
            import msvcrt

            f.seek(0)
            while True:
                try:
                    msvcrt.locking(f.fileno(), msvcrt.LK_LOCK, 1)
                    break
                except OSError:  # LK_LOCK gives up after 10 s; keep waiting like flock does
                    continue
            try:
                yield
            finally:
                f.seek(0)
                msvcrt.locking(f.fileno(), msvcrt.LK_UNLCK, 1)
        else:
            import fcntl

            fcntl.flock(f.fileno(), fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(f.fileno(), fcntl.LOCK_UN)


def cached_folder(root: Path, name: str, fp: str) -> Path:
    """``<root>/<name>-<fp[:16]>``, with ``name`` made safe as a folder name."""
    safe = re.sub(r"[^\w.-]+", "_", name).strip("._")[:80] or "table"
    return root / f"{safe}-{fp[:16]}"
