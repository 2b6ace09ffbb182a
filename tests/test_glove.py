"""glove: text parsing, bad input, the cache, the table API, and agreement with gensim's stored answers."""

from __future__ import annotations

import bz2
import gzip
import io
import json
import os
import subprocess
import re
import shutil
import sys
import zipfile
import zlib
from pathlib import Path

import numpy as np
import pytest

import glove
from glove import GloVeFormatError

FIXTURES = Path(__file__).parent / "fixtures" / "glove"
REPO = Path(__file__).resolve().parent.parent


def write_table(path: Path, words: list[str], vecs: np.ndarray, *, header: bool = False, newline: str = "\n") -> Path:
    """A GloVe text file in GloVe's own number format (``-0.038194``)."""
    lines = [f"{len(words)} {vecs.shape[1]}"] if header else []
    lines += [w + " " + " ".join(f"{v:.6f}".rstrip("0").rstrip(".") for v in row) for w, row in zip(words, vecs)]
    data = (newline.join(lines) + newline).encode("utf-8")
    if path.suffix == ".gz":
        data = gzip.compress(data)
    elif path.suffix == ".bz2":
        data = bz2.compress(data)
    path.write_bytes(data)
    return path


def reference_parse(path: Path) -> tuple[list[str], np.ndarray]:
    """What gensim does: each value through Python float, then float32."""
    words, rows = [], []
    for line in path.read_text("utf-8").splitlines():
        parts = line.split(" ")
        words.append(parts[0])
        rows.append([np.float32(float(x)) for x in parts[1:]])
    return words, np.array(rows, dtype=np.float32)


@pytest.fixture
def cache(tmp_path: Path) -> Path:
    return tmp_path / "cache"


@pytest.fixture
def small(tmp_path: Path) -> tuple[list[str], np.ndarray]:
    rng = np.random.default_rng(1)
    words = [f"w{i}" for i in range(50)] + ["Paris", "café", "new-york"]
    return words, rng.normal(0, 0.5, (len(words), 7))


# ------------------------------------------------------------------------------------------ parsing


def test_vectors_are_bit_identical_to_float32_of_the_text(tmp_path, cache):
    src = FIXTURES / "small.txt"
    g = glove.load(src, cache_dir=cache)
    words, expected = reference_parse(src)
    assert list(g.index_to_key) == words
    assert g.vectors.dtype == np.float32 and g.vectors.shape == expected.shape == (400, 25)
    assert np.array_equal(g.vectors.view(np.uint32), expected.view(np.uint32))


def test_bulk_path_matches_slow_path_on_awkward_numbers(tmp_path, cache):
    values = ["1e-05", "-3.25e+10", "0.1", "-0", "7", ".5", "+2.5", "1.0000001", "123456789", "-0.000001"]
    src = tmp_path / "odd.txt"
    src.write_text("a " + " ".join(values) + "\nb " + " ".join(reversed(values)) + "\n")
    g = glove.load(src, cache_dir=cache)
    expected = np.array([[np.float32(float(v)) for v in values]], np.float32)
    assert np.array_equal(g["a"].view(np.uint32), expected[0].view(np.uint32))
    assert np.array_equal(g["b"].view(np.uint32), expected[0][::-1].view(np.uint32))


@pytest.mark.parametrize("suffix", [".txt", ".txt.gz", ".txt.bz2", ".zip"])
def test_compressed_sources_give_the_same_table(tmp_path, cache, small, suffix):
    words, vecs = small
    plain = write_table(tmp_path / "t.txt", words, vecs)
    if suffix == ".zip":
        src = tmp_path / "glove.6B.zip"
        with zipfile.ZipFile(src, "w", zipfile.ZIP_DEFLATED) as zf:
            zf.write(plain, "glove.6B.7d.txt")
            zf.writestr("glove.6B.3d.txt", "x 1 2 3\n")
        g = glove.load(src, member="glove.6B.7d.txt", cache_dir=cache)
        assert len(glove.load(src, member="glove.6B.3d.txt", cache_dir=cache)) == 1
    else:
        src = write_table(tmp_path / f"t{suffix}", words, vecs)
        g = glove.load(src, cache_dir=cache)
    ref = glove.load(plain, cache_dir=cache)
    assert list(g.index_to_key) == words
    assert np.array_equal(g.vectors, ref.vectors)


def test_zip_member_must_be_named_when_ambiguous(tmp_path, cache):
    src = tmp_path / "glove.6B.zip"
    with zipfile.ZipFile(src, "w") as zf:
        zf.writestr("glove.6B.50d.txt", "a 1 2\n")
        zf.writestr("glove.6B.100d.txt", "a 1 2 3\n")
    with pytest.raises(GloVeFormatError, match=r"glove.6B.50d.txt.*member="):
        glove.load(src, cache_dir=cache)
    with pytest.raises(GloVeFormatError, match=r"no member 'glove.6B.300d.txt'.*glove.6B.100d.txt"):
        glove.load(src, member="glove.6B.300d.txt", cache_dir=cache)


def test_word2vec_header_is_detected(tmp_path, cache, small):
    words, vecs = small
    g = glove.load(write_table(tmp_path / "h.txt", words, vecs, header=True), cache_dir=cache)
    assert len(g) == len(words) and g.dim == 7 and g.manifest["word2vec_header"] is True
    assert "53" not in g


def test_header_count_must_match(tmp_path, cache, small):
    words, vecs = small
    src = write_table(tmp_path / "h.txt", words, vecs, header=True)
    src.write_text(src.read_text().replace(f"{len(words)} 7", f"{len(words) + 2} 7", 1))
    with pytest.raises(GloVeFormatError, match=rf"promises {len(words) + 2} vectors, the file holds {len(words)}"):
        glove.load(src, cache_dir=cache)


def test_numeric_first_word_with_one_dim_is_not_a_header(tmp_path, cache):
    src = tmp_path / "one.txt"
    src.write_text("5 1\n6 2\nx 3\n")
    g = glove.load(src, cache_dir=cache)
    assert list(g.index_to_key) == ["5", "6", "x"] and g["5"].tolist() == [1.0]


def test_words_with_spaces_take_the_last_d_fields(tmp_path, cache):
    src = tmp_path / "840b.txt"
    src.write_text("the 1 2 3\n. . . 4 5 6\nat name@domain.com 7 8 9\nx 0.5 0.5 0.5\n")
    g = glove.load(src, cache_dir=cache)
    assert list(g.index_to_key) == ["the", ". . .", "at name@domain.com", "x"]
    assert g[". . ."].tolist() == [4, 5, 6]


def test_crlf_and_tabs_are_accepted(tmp_path, cache, small):
    words, vecs = small
    g = glove.load(write_table(tmp_path / "crlf.txt", words, vecs, newline="\r\n"), cache_dir=cache)
    ref = glove.load(write_table(tmp_path / "lf.txt", words, vecs), cache_dir=cache)
    assert list(g.index_to_key) == words and np.array_equal(g.vectors, ref.vectors)


def test_duplicates_keep_the_first_and_are_counted(tmp_path, cache):
    src = tmp_path / "dup.txt"
    src.write_text("a 1 2\nb 3 4\na 5 6\nc 7 8\nb 9 9\n")
    with pytest.warns(UserWarning, match=r"2 duplicate word\(s\).*'a' \(line 3\), 'b' \(line 5\)"):
        g = glove.load(src, cache_dir=cache)
    assert list(g.index_to_key) == ["a", "b", "c"]
    assert g["a"].tolist() == [1, 2] and g["b"].tolist() == [3, 4] and g["c"].tolist() == [7, 8]
    assert g.duplicates == 2
    assert glove.load(src, cache_dir=cache).duplicates == 2  # still known from the manifest, no re-parse


# ------------------------------------------------------------------------------------------ bad input

BAD_CASES = {
    "too few values": (b"a 1 2 3\nb 1 2\nc 1 2 3\n", 2, r"expected a word and 3 values, found 3 fields", "b 1 2"),
    "too many values": (b"a 1 2 3\nb 1 2 3\nc 1 2 3 4\n", 3, r"expected 3 values after the word, found 4", "c 1 2 3 4"),
    "not a number": (b"a 1 2 3\nb 1 x2 3\n", 2, r"value 'x2' is not a number", "b 1 x2 3"),
    "two numbers glued": (b"a 1 2 3\nb 1 2-3 4\n", 2, r"value '2-3' is not a number", "b 1 2-3 4"),
    "nan": (b"a 1 2 3\nb 1 nan 3\n", 2, r"value 'nan' is not finite", "b 1 nan 3"),
    "not utf-8": (b"a 1 2 3\ncaf\xe9 1 2 3\n", 2, r"not valid UTF-8", "caf\\xe9 1 2 3"),
    "blank line": (b"a 1 2 3\n\nb 1 2 3\n", 2, r"blank line", ""),
    "empty word": (b"a 1 2 3\n 1 2 3\n", 2, r"expected a word and 3 values, found 3 fields", " 1 2 3"),
    # Finite in float32, but the squared length is not: the norm would be inf and cosines NaN.
    "too large": (b"a 1 2 3\nb 1 2e19 3\n", 2, r"values so large that the vector's length overflows float32", "b 1 2e19"),
    "beyond float32": (b"a 1 2 3\nb 1 1e39 3\n", 2, r"values so large that the vector's length overflows float32", "b 1 1e"),
}


@pytest.mark.parametrize("case", BAD_CASES)
def test_bad_lines_name_file_line_and_excerpt(tmp_path, cache, case):
    data, line, message, excerpt = BAD_CASES[case]
    src = tmp_path / "bad.txt"
    src.write_bytes(data)
    with pytest.raises(GloVeFormatError, match=message) as info:
        glove.load(src, cache_dir=cache)
    err = info.value
    assert err.line == line and str(src) in str(err) and f"line {line}:" in str(err)
    assert excerpt in str(err).splitlines()[-1]
    assert not cache.exists() or not [p for p in cache.iterdir() if not p.name.endswith(".lock")]


def test_bad_line_deep_in_a_large_file_is_found(tmp_path, cache, monkeypatch):
    monkeypatch.setattr(glove.textfile, "_CHUNK_BYTES", 1 << 14)  # many chunks: line numbers carry across them
    rng = np.random.default_rng(3)
    words = [f"w{i}" for i in range(12_000)]
    src = write_table(tmp_path / "big.txt.gz", words, rng.normal(size=(12_000, 5)))
    lines = gzip.decompress(src.read_bytes()).split(b"\n")
    lines[10_000] = lines[10_000].replace(b" ", b" 0.5 ", 1)
    src.write_bytes(gzip.compress(b"\n".join(lines)))
    with pytest.raises(GloVeFormatError, match=r"line 10001: expected 5 values after the word, found 6"):
        glove.load(src, cache_dir=cache)


@pytest.mark.parametrize("data", [b"", b"\n\n", b"   \n"])
def test_empty_file(tmp_path, cache, data):
    src = tmp_path / "empty.txt"
    src.write_bytes(data)
    with pytest.raises(GloVeFormatError, match="empty file"):
        glove.load(src, cache_dir=cache)


def test_truncated_gzip(tmp_path, cache, small):
    src = write_table(tmp_path / "t.txt.gz", *small)
    src.write_bytes(src.read_bytes()[:-30])
    with pytest.raises(GloVeFormatError, match="corrupt or truncated"):
        glove.load(src, cache_dir=cache)


def test_corrupt_deflate_data_in_a_gzip(tmp_path, cache, small):
    src = write_table(tmp_path / "t.txt.gz", *small)
    data = bytearray(src.read_bytes())
    data[12] ^= 0xFF  # the first byte of the deflate stream: zlib.error, not one of gzip's own exceptions
    src.write_bytes(data)
    with pytest.raises(GloVeFormatError, match=rf"^{re.escape(str(src))}: corrupt or truncated compressed data: Error -3 "
                                               r"while decompressing data: invalid code lengths set$"):
        glove.load(src, cache_dir=cache)


@pytest.mark.parametrize("data,problem", [
    (b"PK\x03\x04", "BadZipFile: File is not a zip file"),
    (b"PK\x03\x04 1 2 3\nb 4 5 6\n", "BadZipFile: File is not a zip file"),
])
def test_text_that_starts_like_a_zip(tmp_path, cache, data, problem):
    src = tmp_path / "vectors.txt"
    src.write_bytes(data)
    with pytest.raises(GloVeFormatError, match=rf"^{re.escape(str(src))}: not a readable zip archive \({problem}\)$"):
        glove.load(src, cache_dir=cache)


def test_zip_with_a_damaged_member_header(tmp_path, cache, small):
    src = tmp_path / "t.zip"
    with zipfile.ZipFile(src, "w") as zf:
        zf.writestr("t.txt", write_table(tmp_path / "t.txt", *small).read_bytes())
    data = src.read_bytes()
    src.write_bytes(data[:30] + b"u" + data[31:])  # the member's own header renames it; the directory is intact
    with pytest.raises(GloVeFormatError, match=rf"^{re.escape(str(src))}: not a readable zip archive \(BadZipFile: "
                                               r"File name in directory 't\.txt' and header b'u\.txt' differ\.\)$"):
        glove.load(src, cache_dir=cache)


def test_missing_source_is_a_clear_error(tmp_path, cache):
    with pytest.raises(FileNotFoundError, match="no such file or folder"):
        glove.load(tmp_path / "nope.txt", cache_dir=cache)


# ------------------------------------------------------------------------------------------ cache


def test_later_loads_map_the_cache_without_reading_the_text(tmp_path, cache, small, monkeypatch):
    src = write_table(tmp_path / "t.txt.gz", *small)
    first = glove.load(src, cache_dir=cache)
    assert first.path.parent == cache and first.path.name.startswith("t-")
    assert {p.name for p in first.path.iterdir()} == {
        "manifest.json", "vectors.npy", "norms.npy", "words.txt", "word_offsets.npy", "word_order.npy"
    }
    monkeypatch.setattr(glove.loader, "convert_text", lambda *a, **k: pytest.fail("converted twice"))
    again = glove.load(src, cache_dir=cache)
    assert again.path == first.path
    assert isinstance(again.vectors.base, np.memmap) or isinstance(again.vectors.base.base, __import__("mmap").mmap)
    assert not again.vectors.flags.writeable


def test_changed_source_gets_a_new_cache(tmp_path, cache, small):
    words, vecs = small
    src = write_table(tmp_path / "t.txt", words, vecs)
    a = glove.load(src, cache_dir=cache)
    write_table(src, words, vecs + 1)
    b = glove.load(src, cache_dir=cache)
    assert a.path != b.path and np.allclose(b["w0"], a["w0"] + 1, atol=1e-5)


def test_cache_whose_manifest_does_not_match_is_rebuilt(tmp_path, cache, small):
    src = write_table(tmp_path / "t.txt", *small)
    folder = glove.load(src, cache_dir=cache).path
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["source"]["fingerprint"] = "0" * 64
    (folder / "manifest.json").write_text(json.dumps(manifest))
    (folder / "vectors.npy").write_bytes(b"garbage")
    g = glove.load(src, cache_dir=cache)
    assert g.path == folder and g.manifest["source"]["fingerprint"] != "0" * 64
    assert np.array_equal(g.vectors, reference_parse(src)[1])


def test_interrupted_conversion_leaves_nothing_trusted(tmp_path, cache, small, monkeypatch):
    src = write_table(tmp_path / "t.txt", *small)

    def crash(self, *args, **kwargs):
        raise KeyboardInterrupt

    with monkeypatch.context() as m:
        m.setattr(glove.store.TableWriter, "commit", crash)
        with pytest.raises(KeyboardInterrupt):
            glove.load(src, cache_dir=cache)
    assert [p.name for p in cache.iterdir() if not p.name.endswith(".lock")] == []
    assert list(glove.load(src, cache_dir=cache).index_to_key) == small[0]


def test_a_folder_without_manifest_is_not_trusted(tmp_path, cache, small):
    g = glove.load(write_table(tmp_path / "t.txt", *small), cache_dir=cache)
    (g.path / "manifest.json").unlink()
    with pytest.raises(GloVeFormatError, match="no manifest.json"):
        glove.load(g.path)


# ------------------------------------------------------------------------------------------ damaged converted folders


def tamper(folder: Path, name: str, data: bytes) -> Path:
    """Replace a file of a converted folder *and* record its new CRC-32: a crafted folder, not a damaged one."""
    (folder / name).write_bytes(data)
    manifest = json.loads((folder / "manifest.json").read_text())
    if name in manifest["crc32"]:
        manifest["crc32"][name] = zlib.crc32(data)
    (folder / "manifest.json").write_text(json.dumps(manifest))
    return folder / name


@pytest.fixture
def saved(tmp_path, small) -> Path:
    return glove.from_arrays(*small).save(tmp_path / "table")


def npy_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


@pytest.mark.parametrize("name", ["words.txt", "norms.npy", "word_offsets.npy", "word_order.npy"])
def test_any_changed_byte_of_a_small_file_is_caught(saved, name):
    path = saved / name
    data = bytearray(path.read_bytes())
    recorded = zlib.crc32(data)
    data[-2] ^= 0x01  # in words.txt, "new-york" -> "new-yorj": still valid and sorted, only the checksum can tell
    path.write_bytes(data)
    with pytest.raises(GloVeFormatError, match=rf"^{re.escape(str(path))}: CRC-32 {zlib.crc32(data)}, the manifest "
                                               rf"records {recorded}: the file changed since it was written$"):
        glove.load(saved)


def test_a_damaged_cache_is_rebuilt_from_its_text_source(tmp_path, cache, small):
    src = write_table(tmp_path / "t.txt", *small)
    folder = glove.load(src, cache_dir=cache).path
    (folder / "words.txt").write_bytes(b"\xff" * 10)
    (folder / "vectors.npy").write_bytes(b"\x93NUMPY\x01\x00")
    g = glove.load(src, cache_dir=cache)
    assert g.path == folder and list(g.index_to_key) == small[0]
    assert np.array_equal(g.vectors, reference_parse(src)[1])


def npy_header_damage(raw: bytes) -> bytes:
    return raw.replace(b"(53, 7)", b"(53, 7 ", 1)  # same size; the header no longer parses (tokenize.TokenError)


@pytest.mark.parametrize("name,damage,message", [
    ("vectors.npy", lambda raw: raw[:8], r"not a readable \.npy file \(ValueError: EOF: reading array header length, "
                                         r"expected 2 bytes got 0\)"),
    ("vectors.npy", npy_header_damage, r"not a readable \.npy file \(TokenError: \('EOF in multi-line statement'"),
    ("vectors.npy", lambda raw: raw + b"\0", r"1613 bytes, but its header describes float32 \(53, 7\) \(1612 bytes\)"),
    ("vectors.npy", lambda raw: raw.replace(b"<f4", b"<f8"), r"not a readable \.npy file \(ValueError: mmap length is "
                                                           r"greater than file size\)"),
    ("norms.npy", lambda raw: npy_bytes(np.zeros(3, np.float32)), r"holds float32 \(3,\), the manifest promises "
                                                                  r"float32 \(53,\)"),
    ("norms.npy", lambda raw: npy_bytes(np.full(53, np.nan, np.float32)), r"row 0: norm nan; expected a finite length >= 0"),
    ("norms.npy", lambda raw: npy_bytes(np.zeros(53, np.float32)), r"53 zero norms, the manifest promises zero_vectors = 0"),
    ("words.txt", lambda raw: b"\xff" + raw[1:], r"not valid UTF-8 \(invalid start byte at byte 0\)"),
    ("words.txt", lambda raw: raw.replace(b"w1\n", b"w\n1", 1), r"expected 53 words each ending in the file's only "
                                                               r"newlines, at word_offsets\.npy"),
    ("words.txt", lambda raw: raw + b"x\n", r"\d+ bytes; word_offsets\.npy must rise from 0 to the file size by at "
                                           r"least 2 bytes a word"),
    ("word_order.npy", lambda raw: npy_bytes(np.arange(53) + 1), r"holds row numbers outside 0\.\.52"),
    ("word_offsets.npy", lambda raw: npy_bytes(np.zeros(54, np.int64)), r"\d+ bytes; word_offsets\.npy must rise from 0 "
                                                                        r"to the file size"),
])
def test_a_crafted_folder_fails_naming_the_file(saved, name, damage, message):
    path = tamper(saved, name, damage((saved / name).read_bytes()))
    where = saved / "words.txt" if name == "word_offsets.npy" else path  # the words file is what the offsets fail
    with pytest.raises(GloVeFormatError, match=rf"^{re.escape(str(where))}: {message}"):
        glove.load(saved)


@pytest.mark.parametrize("edit,message", [
    (lambda m: m.pop("crc32"), r"crc32 None; expected the checksums of norms\.npy, words\.txt, word_offsets\.npy, "
                               r"word_order\.npy"),
    (lambda m: m.update(shape=[53, "7"]), r"shape \[53, '7'\]; expected \[words, dims\], two positive integers"),
    (lambda m: m.update(format_version=1), r"format version 1, this package reads 2; convert the source again"),
])
def test_a_crafted_manifest_fails_naming_it(saved, edit, message):
    manifest = json.loads((saved / "manifest.json").read_text())
    edit(manifest)
    (saved / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(GloVeFormatError, match=rf"^{re.escape(str(saved / 'manifest.json'))}: {message}$"):
        glove.load(saved)


def set_vector_value(folder: Path, row: int, value: float) -> None:
    """Damage one value of vectors.npy in place (not checked on opening: the table stays on disk)."""
    vectors = np.load(folder / "vectors.npy", mmap_mode="r+")
    vectors[row, 2] = value
    vectors.flush()


def test_a_non_finite_row_in_vectors_fails_the_query_that_reads_it(saved):
    set_vector_value(saved, 3, np.nan)
    g = glove.load(saved)
    message = rf"^{re.escape(str(saved / 'vectors.npy'))}: row 3 \('w3'\) holds NaN or infinite values: the file is " \
              r"damaged; delete the folder and convert the source again$"
    assert g["w4"].shape == (7,) and "w3" in g  # other rows and the vocabulary still work
    for query in (lambda: g["w3"], lambda: g.get("w3"), lambda: g[["w1", "w3"]], lambda: g.similarity("w3", "w1"),
                  lambda: g.most_similar("w1"), lambda: g.mean_vector("w1 w3"), lambda: g.doesnt_match(["w1", "w3"])):
        with pytest.raises(GloVeFormatError, match=message):
            query()


def test_a_huge_value_in_vectors_fails_instead_of_giving_nan(saved):
    set_vector_value(saved, 5, 3e38)  # finite, but the row no longer matches its norm; its products overflow
    g = glove.load(saved)
    with pytest.raises(GloVeFormatError, match=rf"^{re.escape(str(saved / 'vectors.npy'))}: row 5 \('w5'\) does not "
                                               r"match its norm in norms\.npy \(cosine .*\): the file is damaged"):
        g.most_similar("w1")


def test_query_vectors_must_be_finite(small):
    g = glove.from_arrays(*small)
    for vector in (np.full(7, np.nan), np.full(7, 1e30)):
        with pytest.raises(ValueError, match=r"^the vector holds NaN or infinite values, or values so large that its "
                                             r"length overflows float32$"):
            g.most_similar_by_vector(vector)


def test_a_damaged_gensim_vectors_file(tmp_path):
    src = FIXTURES / "gensim" / "glove-small.model"
    shutil.copy(src, tmp_path / "g.model")
    npy = tmp_path / "g.model.vectors.npy"
    npy.write_bytes((src.parent / (src.name + ".vectors.npy")).read_bytes()[:60])
    with pytest.raises(GloVeFormatError, match=rf"^{re.escape(str(npy))}: not a readable \.npy file \(ValueError: EOF: "
                                               r"reading array header, expected \d+ bytes got 50\)$"):
        glove.load(tmp_path / "g.model", cache_dir=tmp_path / "cache")


CONCURRENT = """
import sys, glove
g = glove.load(sys.argv[1], cache_dir=sys.argv[2])
print(g.path, len(g), float(g.vectors.sum()))
"""


def test_two_processes_converting_at_once(tmp_path, cache):
    rng = np.random.default_rng(5)
    src = write_table(tmp_path / "t.txt.gz", [f"w{i}" for i in range(20_000)], rng.normal(size=(20_000, 8)))
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    procs = [
        subprocess.Popen([sys.executable, "-c", CONCURRENT, str(src), str(cache)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, text=True)
        for _ in range(2)
    ]
    outs = [p.communicate(timeout=120) for p in procs]
    assert all(p.returncode == 0 for p in procs), [o[1] for o in outs]
    assert outs[0][0] == outs[1][0]
    assert [p.name for p in cache.iterdir() if not p.name.startswith(".")] == [Path(outs[0][0].split()[0]).name]
    assert len(glove.load(src, cache_dir=cache)) == 20_000


# ------------------------------------------------------------------------------------------ table API


def test_mapping_api(small):
    g = glove.from_arrays(*small)
    words, vecs = small
    assert len(g) == len(words) and g.dim == g.vector_size == 7
    assert "w3" in g and "W3" not in g and 3 not in g
    assert g["café"].dtype == np.float32 and g["café"].shape == (7,)
    assert np.array_equal(g["w3"], vecs[3].astype(np.float32))
    assert g[["w1", "w2"]].shape == (2, 7)
    assert g.get("nope") is None and g.get("nope", 5) == 5 and np.array_equal(g.get("w1"), g["w1"])
    assert g.key_to_index["Paris"] == words.index("Paris") and "Paris" in g.key_to_index
    assert dict(g.key_to_index) == {w: i for i, w in enumerate(words)}
    assert list(g.index_to_key) == words and g.index_to_key[-1] == "new-york" and g.index_to_key[1:3] == ["w1", "w2"]
    g["w1"][:] = 0  # a copy: the table is untouched
    assert g["w1"].any()


def test_missing_word_is_a_keyerror_with_a_casing_hint(small):
    g = glove.from_arrays(*small)
    with pytest.raises(KeyError, match=r"'paris' is not in the vocabulary \(53 words\); the table has 'Paris'"):
        g["paris"]
    with pytest.raises(KeyError, match=r"'nowhere' is not in the vocabulary \(53 words\)$"):
        g.similarity("w1", "nowhere")
    with pytest.raises(KeyError, match="'PARIS'"):
        g.most_similar("PARIS")


def test_from_arrays_validates(small):
    words, vecs = small
    with pytest.raises(ValueError, match="appears twice"):
        glove.from_arrays(["a", "a"], np.ones((2, 3)))
    with pytest.raises(ValueError, match="2 words and shape"):
        glove.from_arrays(["a", "b"], np.ones((3, 3)))
    with pytest.raises(ValueError, match="line breaks"):
        glove.from_arrays(["a\nb"], np.ones((1, 3)))
    for bad in (np.nan, 1e20):
        with pytest.raises(ValueError, match=r"^row 1 of the vectors holds NaN or infinite values, or values so large "
                                             r"that its length overflows float32$"):
            glove.from_arrays(["a", "b"], [[1, 2, 3], [1, bad, 3]])


def test_save_and_reload(tmp_path, small):
    g = glove.from_arrays(*small)
    folder = g.save(tmp_path / "saved")
    h = glove.load(folder)
    assert list(h.index_to_key) == small[0] and np.array_equal(h.vectors, g.vectors)
    assert h.most_similar("w5", topn=4) == g.most_similar("w5", topn=4)
    g2 = glove.from_arrays(small[0][:5], small[1][:5])
    g2.save(folder)  # replaces a converted folder atomically
    assert len(glove.load(folder)) == 5
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "keep.txt").write_text("mine")
    with pytest.raises(FileExistsError):
        g.save(tmp_path / "other")


def test_mean_vector_reports_oov(small):
    g = glove.from_arrays(*small)
    mv = g.mean_vector("w1 w2 Nope w3 zz")
    assert mv.oov == ["Nope", "zz"]
    assert np.allclose(mv.vector, np.mean([g["w1"], g["w2"], g["w3"]], axis=0)) and mv.vector.dtype == np.float32
    vec, oov = g.mean_vector(["W1"], lowercase=True)
    assert oov == [] and np.array_equal(vec, g["w1"])
    with pytest.raises(KeyError, match="Nope"):
        g.mean_vector("w1 Nope", skip_oov=False)
    with pytest.raises(KeyError, match="none of the 2 words"):
        g.mean_vector("x y")


def test_zero_vector_has_similarity_zero_not_nan():
    g = glove.from_arrays(["a", "b", "zero"], np.array([[1, 0], [1, 1], [0, 0]], np.float32))
    result = dict(g.most_similar("a"))
    assert result == pytest.approx({"b": 2**-0.5, "zero": 0.0})
    assert g.similarity("a", "zero") == 0.0


def test_most_similar_argument_forms(small):
    g = glove.from_arrays(*small)
    assert g.most_similar("w1", topn=3) == g.most_similar(["w1"], topn=3) == g.most_similar(positive=("w1",), topn=3)
    assert g.most_similar("w1", topn=0) == []
    assert len(g.most_similar("w1", topn=None)) == len(g)
    assert all(w != "w1" for w, _ in g.most_similar("w1", topn=len(g)))
    assert g.most_similar_by_vector(g["w1"], topn=1)[0][0] == "w1"
    with pytest.raises(ValueError, match="shape \\(7,\\)"):
        g.most_similar_by_vector(np.ones(3))
    with pytest.raises(ValueError, match="at least one"):
        g.most_similar()


# ------------------------------------------------------------------------------------------ agreement with gensim


@pytest.fixture(scope="module")
def reference() -> dict:
    return json.loads((FIXTURES / "reference.json").read_text("utf-8"))


@pytest.fixture(scope="module", params=["small.txt", "gensim/glove-small.model"])
def fixture_table(request, tmp_path_factory) -> glove.GloVe:
    return glove.load(FIXTURES / request.param, cache_dir=tmp_path_factory.mktemp("cache"))


def _assert_same(got, expected):
    assert [w for w, _ in got] == [w for w, _ in expected]
    assert [s for _, s in got] == pytest.approx([s for _, s in expected], abs=1e-6)


def test_most_similar_matches_gensim(fixture_table, reference):
    for query, expected in reference["most_similar"].items():
        _assert_same(fixture_table.most_similar(query, topn=10), expected)


def test_analogies_match_gensim(fixture_table, reference):
    for case in reference["analogies"]:
        _assert_same(fixture_table.most_similar(positive=case["positive"], negative=case["negative"], topn=10), case["result"])
    assert fixture_table.most_similar(positive=["queen", "man"], negative=["king"], topn=1)[0][0] == "woman"


def test_by_vector_matches_gensim(fixture_table, reference):
    for case in reference["by_vector"]:
        _assert_same(fixture_table.most_similar_by_vector(np.array(case["vector"], np.float32), topn=10), case["result"])


def test_similarity_and_doesnt_match_match_gensim(fixture_table, reference):
    for a, b, expected in reference["similarity"]:
        assert fixture_table.similarity(a, b) == pytest.approx(expected, abs=1e-7)
    for words, expected in reference["doesnt_match"]:
        assert fixture_table.doesnt_match(words) == expected


def test_fixture_sources_agree(tmp_path):
    a = glove.load(FIXTURES / "small.txt", cache_dir=tmp_path)
    b = glove.load(FIXTURES / "gensim" / "glove-small.model", cache_dir=tmp_path)
    assert list(a.index_to_key) == list(b.index_to_key) and np.array_equal(a.vectors, b.vectors)
    assert np.array_equal(a.norms, b.norms)


def test_import_needs_numpy_only():
    code = "import sys, glove; assert 'huggingface_hub' not in sys.modules and 'tqdm' not in sys.modules; print('ok')"
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True)
    assert out.stdout.strip() == "ok", out.stderr


def test_many_chunks_give_the_same_table_and_errors(tmp_path, monkeypatch):
    """A small file cut into many chunks: words, duplicates and line numbers carry across chunk boundaries."""
    from glove.textfile import TextSource, convert_text

    monkeypatch.setattr(glove.textfile, "_CHUNK_BYTES", 1 << 14)
    rng = np.random.default_rng(7)
    words = [f"w{i}" for i in range(3000)] + ["w5"]  # a duplicate in the last chunk
    src = write_table(tmp_path / "t.txt", words, rng.normal(size=(3001, 6)))
    with pytest.warns(UserWarning, match=r"'w5' \(line 3001\)"):
        report = convert_text(TextSource(src), tmp_path / "out")
    assert report.duplicates == 1 and report.lines == 3001
    serial, chunked = reference_parse(src)[1][:3000], glove.load(tmp_path / "out")
    assert list(chunked.index_to_key) == words[:3000] and np.array_equal(chunked.vectors, serial)
    lines = src.read_bytes().split(b"\n")
    lines[2500] = b"w2500 1 2 x 4 5 6"
    src.write_bytes(b"\n".join(lines))
    with pytest.raises(GloVeFormatError, match=r"line 2501: value 'x' is not a number") as info:
        convert_text(TextSource(src), tmp_path / "out2")
    assert info.value.line == 2501 and not (tmp_path / "out2").exists()


@pytest.mark.parametrize("n, k", [(5, 10), (1000, 3), (100_003, 10), (100_000, 1), (70_000, 300)])
def test_top_indices_equals_a_full_stable_sort(n, k):
    from glove.table import top_indices

    rng = np.random.default_rng(n + k)
    for scores in (rng.normal(size=n).astype(np.float32), np.round(rng.normal(size=n), 1).astype(np.float32)):
        assert np.array_equal(top_indices(scores, k), np.argsort(-scores, kind="stable")[:k])
