"""GloVe text -> converted folder: reading (plain, gzip, bz2, xz, zip member) and fast bulk parsing.

Parsing speed: values are never converted one by one in Python. A chunk of lines is split into words and
"value parts", and the value parts are handed to ``np.loadtxt`` (C parser, one call per chunk), which also
checks that every line has exactly D values. Lines the fast path cannot take as is (words with spaces, tabs,
CRLF) are normalised individually; only when a chunk fails does a slow per-line pass run, to find the first
bad line and name it. Values are parsed to the nearest double and rounded to float32, as gensim's
``np.float32(token)`` does, so the vectors are bit-identical to gensim's.

Parsing runs in the calling process (decompression overlaps with it in a thread): parser processes would have
to re-import the caller's script, which hangs a script without an ``if __name__ == "__main__":`` guard, and one
process already converts GloVe 6B 100d (400,000 lines) in seconds.
"""

from __future__ import annotations

import bz2
import contextlib
import gzip
import lzma
import os
import queue
import re
import threading
import warnings
import zipfile
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import numpy as np

from .errors import GloVeFormatError
from .store import TableWriter, row_norms

ProgressFn = Callable[[int, int], None]
"""Called as ``progress(done, total)`` in bytes of the source file."""

_CHUNK_BYTES = 8 << 20
# A GloVe line is a word and D numbers: a few KB (840B 300d: under 4 KB). Longer means not a vector table, and
# bounding it bounds the partial line carried between blocks.
MAX_LINE_BYTES = 1 << 20
_BOM = b"\xef\xbb\xbf"
_OTHER_SPACE = re.compile(rb"[\t\r\x0b\x0c]")  # whitespace that bytes.split() splits on, besides space and newline
_NUMBER = re.compile(rb"[+-]?(?:(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?|nan|inf|infinity)", re.IGNORECASE)
# bzip2's "BZh" + level is followed by a block or end-of-stream magic: a text file may start with "BZh".
_MAGIC: list[tuple[re.Pattern[bytes], Callable[[IO[bytes]], IO[bytes]]]] = [
    (re.compile(rb"\x1f\x8b"), lambda f: gzip.GzipFile(fileobj=f, mode="rb")),
    (re.compile(rb"BZh[1-9](?:1AY&SY|\x17rE8P\x90)"), lambda f: bz2.BZ2File(f)),
    (re.compile(rb"\xfd7zXZ\x00"), lambda f: lzma.LZMAFile(f)),
]


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
        magic = raw.read(10)
        raw.seek(0)
        size = os.fstat(raw.fileno()).st_size
        if magic.startswith(b"PK\x03\x04"):
            with _zip_member(raw, src) as (zf, member):
                info = zf.getinfo(member.name)
                yield member, info.compress_size, lambda: min(raw.tell(), info.compress_size)
            return
        if src.member is not None:
            raise GloVeFormatError(src.path, f"member={src.member!r} given, but the file is not a zip archive")
        opener = next((cls for m, cls in _MAGIC if m.match(magic)), None)
        if opener is None:
            yield raw, size, raw.tell
        else:
            with opener(raw) as stream:
                yield stream, size, raw.tell


@contextlib.contextmanager
def _zip_member(raw: IO[bytes], src: TextSource) -> Iterator[tuple[zipfile.ZipFile, IO[bytes]]]:
    """The archive ``raw`` and its chosen member, opened; ``GloVeFormatError`` if it only starts like a zip."""
    with contextlib.ExitStack() as stack:
        try:
            zf = stack.enter_context(zipfile.ZipFile(raw))
            member = stack.enter_context(zf.open(zip_member(zf, src)))
        except (zipfile.BadZipFile, OSError, EOFError, NotImplementedError, RuntimeError) as e:
            raise GloVeFormatError(src.path, f"not a readable zip archive ({type(e).__name__}: {e})") from None
        yield zf, member


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


Chunk = tuple[bytes, int]
"""Whole lines joined by newlines (the last one's dropped), and the 1-based number of the first line."""


def _line_chunks(stream: IO[bytes], where: str, progress: Callable[[], None]) -> Iterator[Chunk]:
    """Numbered chunks of whole lines, a leading UTF-8 BOM removed. Decompression runs in a thread (zlib
    releases the GIL), overlapping with parsing on a second core.

    The partial line carried from one block to the next is at most ``MAX_LINE_BYTES``, so a file without line
    breaks fails at once instead of growing a buffer re-copied with every block.
    """
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
        tail, line = b"", 1
        while True:
            block = blocks.get()
            if isinstance(block, Exception) and not isinstance(block, MemoryError):  # whatever a decompressor raises
                raise GloVeFormatError(where, f"corrupt or truncated compressed data: {block}") from block
            if isinstance(block, BaseException):
                raise block
            if block is None:
                break
            progress()
            cut = block.rfind(b"\n")
            if cut < 0:
                tail += block
                _check_line_length(where, line, tail)
                continue
            chunk = tail + block[:cut]
            if line == 1:
                chunk = chunk.removeprefix(_BOM)
            tail = block[cut + 1 :]
            first, line = line, line + chunk.count(b"\n") + 1
            _check_line_length(where, line, tail)
            yield chunk, first
        if tail:
            yield tail.removeprefix(_BOM) if line == 1 else tail, line
    finally:
        stop.set()
        with contextlib.suppress(queue.Empty):  # unblock a reader waiting on a full queue
            while True:
                blocks.get_nowait()
        reader.join()


def _check_line_length(where: str, line: int, text: bytes) -> None:
    """``GloVeFormatError`` if ``text``, part of line ``line``, is already longer than any GloVe line can be."""
    if len(text) > MAX_LINE_BYTES:
        raise GloVeFormatError(
            where, f"a line longer than {MAX_LINE_BYTES} bytes; a GloVe line is a word and its numbers (a few KB)",
            line=line, excerpt=text[:200],
        )


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
    with np.errstate(over="ignore"):
        row = np.array([[float(t) for t in values]], np.float32)
    if not np.isfinite(row_norms(row)[0]):
        return "values so large that the vector's length overflows float32"
    return None


@dataclass
class ParseReport:
    """What the parser saw besides the vectors."""

    lines: int = 0
    duplicates: int = 0
    duplicate_examples: list[tuple[str, int]] = field(default_factory=list)
    header: tuple[int, int] | None = None


def _sniff(display: str, chunk: bytes) -> tuple[int, tuple[int, int] | None]:
    """(D, word2vec ``count dim`` header or None) from the commonest field count of the first lines."""
    lines = chunk.split(b"\n", 101)[:101]
    if not chunk.strip():
        raise GloVeFormatError(display, "empty file: no vectors found")
    first = lines[0].split()
    rest = Counter(len(line.split()) for line in lines[1:] if line.strip())
    if len(first) == 2 and all(f.isdigit() for f in first) and rest and rest.most_common(1)[0][0] == int(first[1]) + 1 != 2:
        # word2vec's "count dim". With dim 1 it would look like a data line, so it is taken as one.
        return int(first[1]), (int(first[0]), int(first[1]))
    fields = (Counter([len(first)]) + rest).most_common(1)[0][0]  # ties go to the first line's count
    if fields < 2:
        raise GloVeFormatError(display, "expected a word followed by numbers separated by spaces", line=1, excerpt=lines[0])
    return fields - 1, None


@dataclass(frozen=True)
class _ChunkParser:
    """Parses one chunk of whole lines into words and float32 (n, D) rows. Stateless, so worker processes can
    run it; duplicates are dropped afterwards, in file order, by the caller."""

    display: str
    dim: int

    def _error(self, message: str, line: int, raw: bytes) -> GloVeFormatError:
        return GloVeFormatError(self.display, message, line=line, excerpt=raw)

    def __call__(self, chunk: bytes, first: int, skip_first: bool) -> tuple[list[str], np.ndarray]:
        """``first``: line number of the chunk's first line; ``skip_first``: it is the word2vec header."""
        lines = chunk.split(b"\n")
        if skip_first:
            lines, first = lines[1:], first + 1
        if lines and max(map(len, lines)) > MAX_LINE_BYTES:  # the same limit wherever the block boundaries fall
            i = next(i for i, line in enumerate(lines) if len(line) > MAX_LINE_BYTES)
            _check_line_length(self.display, first + i, lines[i])
        dim = self.dim
        odd = _OTHER_SPACE.search(chunk) is not None  # rare: then the lines holding tabs, CRs... are normalised
        words: list[bytes] = []
        values: list[bytes] = []
        for i, line in enumerate(lines):
            if line.count(b" ") == dim and not (odd and _OTHER_SPACE.search(line)):  # the common "word v1 ... vD"
                word, _, rest = line.partition(b" ")
                if word:
                    words.append(word)
                    values.append(rest)
                    continue
            word, rest = self._normalise(line, first + i)
            words.append(word)
            values.append(rest)
        rows = self._to_floats(values, lines, first)
        return self._decode(words, lines, first), rows

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

    def _to_floats(self, values: list[bytes], lines: list[bytes], first: int) -> np.ndarray:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("error")
                rows = np.loadtxt(values, dtype=np.float32, delimiter=" ", comments=None, quotechar=None, ndmin=2)
            if rows.shape == (len(values), self.dim) and np.isfinite(row_norms(rows)).all():
                return rows
        except (ValueError, UserWarning):
            pass
        for i, rest in enumerate(values):  # slow path, only to name the first bad line
            problem = _value_problem(rest.split(b" "), self.dim)
            if problem:
                raise self._error(problem, first + i, lines[i])
        raise GloVeFormatError(self.display, f"could not parse the values of lines {first}-{first + len(lines) - 1}")

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


def _drop_duplicates(
    words: list[str], rows: np.ndarray, first: int, seen: set[str], report: ParseReport
) -> tuple[list[str], np.ndarray]:
    """Keep each word's first occurrence in the file; count the others (a few examples with line numbers)."""
    unique = set(words)
    if len(unique) == len(words) and seen.isdisjoint(unique):  # the usual case, decided at C speed
        seen |= unique
        return words, rows
    keep = []
    for i, word in enumerate(words):
        if word not in seen:
            seen.add(word)
            keep.append(i)
        else:
            report.duplicates += 1
            if len(report.duplicate_examples) < 5:
                report.duplicate_examples.append((word, first + i))
    if len(keep) == len(words):
        return words, rows
    return [words[i] for i in keep], rows[keep]


def convert_text(
    src: TextSource,
    dest: Path,
    *,
    manifest: dict[str, Any] | None = None,
    progress: ProgressFn | None = None,
) -> ParseReport:
    """Parse a GloVe text source and write the converted folder ``dest`` atomically."""
    report = ParseReport()
    with _open_binary(src) as (stream, total, done), contextlib.closing(
        _line_chunks(stream, src.display, (lambda: progress(done(), total)) if progress else (lambda: None))
    ) as chunks:  # closed (reader thread joined) before the stream is
        first_chunk, _ = next(chunks, (b"", 1))
        dim, report.header = _sniff(src.display, first_chunk)
        seen: set[str] = set()
        parser = _ChunkParser(src.display, dim)
        with TableWriter(dest, dim) as writer:
            for chunk, first in _chain((first_chunk, 1), chunks):
                skip = first == 1 and report.header is not None
                words, rows = parser(chunk, first, skip)
                writer.add(*_drop_duplicates(words, rows, first + skip, seen, report))
                report.lines = first + chunk.count(b"\n")
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


def _chain(first: Chunk, rest: Iterator[Chunk]) -> Iterator[Chunk]:
    yield first
    yield from rest
