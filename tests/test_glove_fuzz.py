"""glove parsers under random and adversarial input (hypothesis): GloVe text, gzip, zip and gensim pickles.

Each input is loaded in a forked child with a capped address space (``RLIMIT_AS``) and a deadline, so a hang,
a runaway allocation or a crash fails the test instead of the test run. The only allowed outcomes are glove's
own ``GloVeError`` or a correct table; nothing may be written outside the cache folder, and no temporary file
may be left behind.
"""

from __future__ import annotations

import contextlib
import gzip
import io
import os
import pickle
import resource
import select
import signal
import sys
import time
import types
import warnings
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import mutate

import glove

pytestmark = pytest.mark.skipif(not (hasattr(os, "fork") and Path("/proc/self/status").exists()),
                                reason="the limited child process needs fork and /proc (Linux)")

FUZZ = settings(max_examples=40, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                       HealthCheck.filter_too_much])  # vectors are drawn finite by filtering
MEMORY_MB = 300  # what a child may allocate beyond what it inherited: far above any input here
TIMEOUT = 30.0


# ------------------------------------------------------------------------------------------ the limited child


def _address_space() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmSize:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmSize in /proc/self/status")


def run_limited(fn: Callable[..., Any], *args: Any, memory_mb: int = MEMORY_MB, timeout: float = TIMEOUT) -> tuple:
    """``fn(*args)`` in a forked child allowed ``memory_mb`` more address space and ``timeout`` seconds.

    Returns ``("ok", value)``, ``("raised", type name, is a GloVeError, message)``, ``("timeout",)`` or
    ``("signal", name)``.
    """
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never returns into pytest
        os.close(read_end)
        try:
            resource.setrlimit(resource.RLIMIT_AS, (_address_space() + (memory_mb << 20), resource.RLIM_INFINITY))
            warnings.simplefilter("ignore")
            try:
                result: tuple = ("ok", fn(*args))
            except BaseException as e:
                result = ("raised", type(e).__name__, isinstance(e, glove.GloVeError), str(e)[:2000])
            with os.fdopen(write_end, "wb") as out:
                pickle.dump(result, out)
        finally:
            os._exit(0)
    os.close(write_end)
    chunks, deadline = [], time.monotonic() + timeout
    try:
        while (left := deadline - time.monotonic()) > 0 and select.select([read_end], [], [], left)[0]:
            chunk = os.read(read_end, 1 << 16)
            if not chunk:
                break
            chunks.append(chunk)
        else:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            return ("timeout",)
    finally:
        os.close(read_end)
    _, status = os.waitpid(pid, 0)
    if os.WIFSIGNALED(status):
        return ("signal", signal.Signals(os.WTERMSIG(status)).name)
    return pickle.loads(b"".join(chunks))


def load_table(source: Path, cache: Path) -> tuple[list[str], np.ndarray]:
    g = glove.load(source, cache_dir=cache)
    return list(g.index_to_key), np.array(g.vectors)


def outcome(source: Path, cache: Path) -> tuple[list[str], np.ndarray] | None:
    """The table loaded from ``source`` in a limited child, or None after a GloVeError; anything else fails."""
    result = run_limited(load_table, source, cache)
    assert result[0] in ("ok", "raised"), f"{source.name}: {result}"
    if result[0] == "raised":
        assert result[2], f"{source.name}: {result[1]} instead of a GloVeError: {result[3]}"
        assert str(source) in result[3], f"the error does not name the file: {result[3]}"
        return None
    return result[1]


def leftovers(work: Path, source: Path) -> list[str]:
    """Files under ``work`` other than the source, the lock files and one complete converted folder."""
    found = []
    for path in sorted(work.rglob("*")):
        rel = path.relative_to(work)
        if path == source or path.name.endswith(".lock") or rel.parts == ("cache",):
            continue
        if len(rel.parts) in (2, 3) and rel.parts[0] == "cache" and not rel.parts[1].startswith("."):
            continue  # a published table: its folder and its files
        found.append(str(rel))
    return found


@pytest.fixture
def fresh(tmp_path_factory) -> Callable[[], Path]:
    """A new empty folder per hypothesis example."""
    return lambda: tmp_path_factory.mktemp("ex", numbered=True)


# ------------------------------------------------------------------------------------------ GloVe text

WORD_CHARS = st.characters(blacklist_categories=("Cs", "Cc", "Zs", "Zl", "Zp"), max_codepoint=0x2FFFF)
WORDS = st.lists(st.text(WORD_CHARS, min_size=1, max_size=6).filter(lambda w: w != "\ufeff" and not w.startswith("\ufeff")),
                 min_size=1, max_size=20, unique=True)
FLOAT32 = st.floats(width=32, allow_nan=False, allow_infinity=False, min_value=-1e6, max_value=1e6)
NUMBER_FORMATS = st.sampled_from(["{:.6f}", "{!r}", "{:e}", "{:.3g}", "{:+.2f}"])


@st.composite
def tables(draw) -> tuple[list[str], list[list[str]]]:
    """Unique words and, per word, D number tokens as GloVe or another writer might spell them."""
    words = draw(WORDS)
    dim = draw(st.integers(1, 6))
    fmt = draw(NUMBER_FORMATS)
    rows = [[fmt.format(float(draw(FLOAT32))) for _ in range(dim)] for _ in words]
    return words, rows


def encode_text(words: list[str], rows: list[list[str]], newline: str, bom: bool, final_newline: bool) -> bytes:
    text = newline.join(f"{w} {' '.join(r)}" for w, r in zip(words, rows)) + (newline if final_newline else "")
    return (b"\xef\xbb\xbf" if bom else b"") + text.encode("utf-8")


def pack(data: bytes, kind: str, path: Path) -> Path:
    """Write ``data`` as ``kind`` ("txt", "gz" or "zip") at ``path``."""
    if kind == "gz":
        data = gzip.compress(data, mtime=0)
    elif kind == "zip":
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as zf:
            zf.writestr("vectors.txt", data)
        data = buffer.getvalue()
    path.write_bytes(data)
    return path


def expected_rows(rows: list[list[str]]) -> np.ndarray:
    return np.array([[np.float32(float(t)) for t in r] for r in rows], np.float32).reshape(len(rows), -1)


@FUZZ
@given(table=tables(), kind=st.sampled_from(["txt", "gz", "zip"]), newline=st.sampled_from(["\n", "\r\n"]),
       bom=st.booleans(), final_newline=st.booleans(), repeat=st.booleans())
def test_valid_tables_load_exactly(fresh, table, kind, newline, bom, final_newline, repeat):
    words, rows = table
    all_words, all_rows = (words + words, rows + rows) if repeat else (words, rows)  # a table concatenated with itself
    work = fresh()
    source = pack(encode_text(all_words, all_rows, newline, bom, final_newline), kind, work / f"t.{kind}")
    result = outcome(source, work / "cache")
    assert result is not None, "a valid table was refused"
    got_words, got_vectors = result
    assert got_words == words
    assert np.array_equal(got_vectors.view(np.uint32), expected_rows(rows).view(np.uint32))
    assert leftovers(work, source) == []


def independent_parse(text: bytes, dim: int) -> dict[str, list[np.float32]]:
    """Word -> values of the first line naming it, read the simplest way (used to check a table that loaded)."""
    first: dict[str, list[np.float32]] = {}
    for line in text.removeprefix(b"\xef\xbb\xbf").split(b"\n"):
        fields = line.split()
        if len(fields) > dim:
            word = b" ".join(fields[:-dim]).decode("utf-8", "surrogateescape")  # invalid UTF-8 matches no word
            first.setdefault(word, [np.float32(float(t)) for t in fields[-dim:]])
    return first


def check_consistent(result: tuple[list[str], np.ndarray] | None, text: bytes) -> None:
    """A table that loaded holds, for each word, the values of the first line naming it, and all are finite."""
    if result is None:
        return
    words, vectors = result
    assert len(set(words)) == len(words) and np.isfinite(vectors).all()
    reference = independent_parse(text, vectors.shape[1])
    for word, row in zip(words, vectors):
        assert word in reference and np.array_equal(np.array(reference[word], np.float32), row), word


TOKENS = [b"nan", b"-inf", b"1e39", b"3e19", b"\n", b"\r", b"\t", b" ", b"  ", b"\xef\xbb\xbf", b"\xff", b"\x00",
          b"-", b"e", b".", b"0x1p3", b"\xc3", b"1 2 3", b"\n\n", b"5 3\n"]
EDIT = st.tuples(st.sampled_from(["set", "insert", "delete", "token", "repeat"]), st.integers(0, 1 << 16),
                 st.integers(0, 255), st.sampled_from(TOKENS))


@FUZZ
@given(table=tables(), edits=st.lists(EDIT, min_size=1, max_size=4), kind=st.sampled_from(["txt", "gz", "zip"]))
def test_mutated_text_is_refused_or_read_correctly(fresh, table, edits, kind):
    work = fresh()
    text = mutate(encode_text(*table, "\n", False, True), edits)
    source = pack(text, kind, work / f"t.{kind}")
    check_consistent(outcome(source, work / "cache"), text)
    assert leftovers(work, source) == []


@FUZZ
@given(table=tables(), edits=st.lists(st.tuples(st.integers(0, 1 << 16), st.integers(0, 255)), min_size=1, max_size=3),
       kind=st.sampled_from(["gz", "zip"]))
def test_damaged_archives_are_refused_or_read_correctly(fresh, table, edits, kind):
    work = fresh()
    text = encode_text(*table, "\n", False, True)
    source = pack(text, kind, work / f"t.{kind}")
    raw = bytearray(source.read_bytes())
    for pos, value in edits:
        raw[pos % len(raw)] = value
    source.write_bytes(bytes(raw))
    check_consistent(outcome(source, work / "cache"), text)
    assert leftovers(work, source) == []


@FUZZ
@given(data=st.binary(max_size=400), kind=st.sampled_from(["txt", "gz", "zip"]))
def test_random_bytes_are_refused_or_read_correctly(fresh, data, kind):
    work = fresh()
    source = pack(data, kind, work / f"t.{kind}")
    check_consistent(outcome(source, work / "cache"), data)
    assert leftovers(work, source) == []


def compressed_run(byte: bytes, size: int) -> bytes:
    """gzip of ``size`` copies of ``byte`` without holding them all in memory (about 1 KB per MB)."""
    out = io.BytesIO()
    with gzip.GzipFile(fileobj=out, mode="wb", mtime=0) as f:
        block = byte * (1 << 20)
        for _ in range(size >> 20):
            f.write(block)
    return out.getvalue()


@pytest.mark.parametrize("prefix", [b"", b"the 1 2 3\n"])
def test_a_gzip_without_line_breaks_fails_fast_in_bounded_memory(tmp_path, prefix):
    """~300 KB of gzip, 300 MB of one line: refused at the line limit, naming the file and line, in a child
    that could not even hold the line."""
    source = tmp_path / "one-line.txt.gz"
    source.write_bytes(gzip.compress(prefix, mtime=0) + compressed_run(b"a", 300 << 20))  # two gzip members
    started = time.monotonic()
    result = run_limited(load_table, source, tmp_path / "cache", memory_mb=200)
    assert result[:3] == ("raised", "GloVeFormatError", True), result
    line = 2 if prefix else 1
    assert result[3].startswith(f"{source}, line {line}: a line longer than {glove.textfile.MAX_LINE_BYTES} bytes")
    assert time.monotonic() - started < 10
    assert leftovers(tmp_path, source) == []


# ------------------------------------------------------------------------------------------ gensim pickles


@contextlib.contextmanager
def gensim_classes() -> Iterator[types.ModuleType]:
    """A stand-in ``gensim.models.keyedvectors`` in sys.modules, only to *write* gensim-shaped pickles."""
    names = ("gensim", "gensim.models", "gensim.models.keyedvectors")
    saved = {n: sys.modules.get(n) for n in names}
    module = types.ModuleType(names[-1])
    for name in ("KeyedVectors", "Word2VecKeyedVectors", "Vocab"):
        setattr(module, name, type(name, (), {"__module__": module.__name__}))
    sys.modules.update({names[0]: types.ModuleType(names[0]), names[1]: types.ModuleType(names[1]), names[2]: module})
    try:
        yield module
    finally:
        for name, old in saved.items():
            if old is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = old


def gensim_pickle(words: list[str], vectors: np.ndarray, protocol: int, beside: Path | None) -> bytes:
    """A KeyedVectors as gensim 4 saves it: vectors inline, or in ``beside`` (the ``.vectors.npy`` file)."""
    with gensim_classes() as module:
        kv = module.KeyedVectors()
        kv.__dict__.update(index_to_key=list(words), key_to_index={w: i for i, w in enumerate(words)},
                           vector_size=vectors.shape[1], expandos={"count": np.arange(len(words), dtype=np.int64)})
        if beside is None:
            kv.vectors = vectors
        else:
            np.save(beside, vectors)
            kv.__dict__.update({"__numpys": ["vectors"], "__scipys": [], "__ignoreds": []})
        return pickle.dumps(kv, protocol=protocol)


@st.composite
def gensim_files(draw) -> tuple[list[str], np.ndarray, int, bool]:
    words = draw(WORDS)
    dim = draw(st.integers(1, 5))
    dtype = draw(st.sampled_from([np.float32, np.float64, np.float16]))
    vectors = np.array(draw(st.lists(FLOAT32.filter(lambda v: abs(v) < 6e4), min_size=len(words) * dim,
                                     max_size=len(words) * dim)), dtype).reshape(len(words), dim)
    return words, vectors, draw(st.sampled_from([2, 4])), draw(st.booleans())


@FUZZ
@given(case=gensim_files())
def test_valid_gensim_pickles_load_exactly(fresh, case):
    words, vectors, protocol, beside = case
    work = fresh()
    source = work / "kv.model"
    source.write_bytes(gensim_pickle(words, vectors, protocol, work / "kv.model.vectors.npy" if beside else None))
    result = outcome(source, work / "cache")
    assert result is not None, "a valid gensim file was refused"
    assert result[0] == words and np.array_equal(result[1], vectors.astype(np.float32))
    assert leftovers(work, source) == ([] if not beside else ["kv.model.vectors.npy"])


def check_gensim_consistent(result: tuple[list[str], np.ndarray] | None) -> None:
    if result is not None:
        words, vectors = result
        assert len(set(words)) == len(words) == len(vectors) and np.isfinite(vectors).all()


@FUZZ
@given(case=gensim_files(), edits=st.lists(EDIT, min_size=1, max_size=4))
def test_mutated_gensim_pickles_are_refused_or_read_consistently(fresh, case, edits):
    words, vectors, protocol, _ = case
    work = fresh()
    source = work / "kv.model"
    source.write_bytes(mutate(gensim_pickle(words, vectors, protocol, None), edits))
    check_gensim_consistent(outcome(source, work / "cache"))
    assert leftovers(work, source) == []


# Pieces of pickles that attack the reader: globals, calls, huge lengths, deep nesting, memo abuse.
PIECES = [
    b"cnumpy\nndarray\n", b"cnumpy._core.multiarray\n_reconstruct\n", b"cnumpy\ndtype\n", b"c_codecs\nencode\n",
    b"cnumpy._core.multiarray\nscalar\n", b"cgensim.models.keyedvectors\nKeyedVectors\n", b"cos\nsystem\n",
    b"(", b"t", b"\x85", b"\x86", b"\x87", b"R", b"b", b"s", b"u", b"a", b"e", b"0", b"2", b"\x94", b"h\x00",
    b"h\x07", b"}", b"]", b")", b"N", b"K\x05", b"J\x00\x00\x00\x40", b"X\x02\x00\x00\x00ab", b"X\xff\xff\xff\x7f",
    b"C\x01b", b"C\x08\x00\x00\x80?\x00\x00\x80?", b"U\x03f4\x89\x88", b"\x85" * 5000, b"(" * 3000, b"]" * 2000,
    b"\x81", b"\x92", b"\x93", b"Q", b"\x82\x01", b"B\xff\xff\xff\xff", b"\x8e\xff\xff\xff\xff\xff\xff\x00\x00",
    b"cnumpy\nndarray\n(J\x00\x00\x00\x40tR",  # numpy.ndarray((2**30,)): 1 GiB of uninitialised memory
    b"cnumpy._core.multiarray\n_reconstruct\ncnumpy\nndarray\nJ\x00\x00\x00\x40\x85C\x01b\x87R",  # the same
    b"}N" + b"\x85" * 100_000 + b"Ns",  # a dict key nested 100,000 deep: hashing it overflows the C stack
    b"c_codecs\nencode\nX\x02\x00\x00\x00\xc4\x80X\x06\x00\x00\x00latin1\x86R",  # not latin-1
]


@FUZZ
@given(pieces=st.lists(st.sampled_from(PIECES), min_size=1, max_size=25), protocol=st.sampled_from([b"\x80\x02", b"\x80\x04"]))
def test_hostile_pickles_are_refused(fresh, pieces, protocol):
    work = fresh()
    source = work / "kv.model"
    source.write_bytes(protocol + b"".join(pieces) + b".")
    check_gensim_consistent(outcome(source, work / "cache"))
    assert leftovers(work, source) == []
