"""glove: nothing lost, nothing hangs, nothing silently wrong (issue #14). One test per class of defect; each
failed on the code before the fix."""

from __future__ import annotations

import errno
import gzip
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import glove
from glove import GloVeFormatError
from glove.__main__ import main
from glove.gensim_pickle import MAX_DEPTH, read_keyed_vectors
from test_glove_fuzz import gensim_pickle, leftovers, run_limited

REPO = Path(__file__).resolve().parent.parent


def write_text(path: Path, text: str | bytes) -> Path:
    data = text.encode("utf-8") if isinstance(text, str) else text
    path.write_bytes(gzip.compress(data, mtime=0) if path.suffix == ".gz" else data)
    return path


# ------------------------------------------------------------------------------------------ 1. no re-import


def test_a_script_without_a_main_guard_loads_and_exits(tmp_path):
    """Parser processes re-imported the caller's script, whose glove.load then waited for the cache lock the
    first one held: a plain script never returned."""
    rng = np.random.default_rng(0)
    write_text(tmp_path / "table.txt.gz", "".join(f"w{i} {' '.join(f'{v:.5f}' for v in row)}\n"
                                                  for i, row in enumerate(rng.normal(size=(2000, 4)))))
    script = tmp_path / "plain_script.py"
    script.write_text("import glove\ng = glove.load('table.txt.gz', cache_dir='cache')\nprint(len(g), g.dim)\n")
    env = {**os.environ, "PYTHONPATH": str(REPO), "GLOVE_WORKERS": "2"}  # what forced parser processes before
    out = subprocess.run([sys.executable, str(script)], cwd=tmp_path, env=env, capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["2000", "4"]


# ------------------------------------------------------------------------------------------ 2. the command line


@pytest.fixture
def empty_offline_hub(monkeypatch, tmp_path):
    constants = pytest.importorskip("huggingface_hub.constants")
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hf"))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.delenv("GLOVE_TABLE", raising=False)


@pytest.mark.parametrize("argv", [["neighbors", "frog"], ["analogy", "man", "king", "woman"]])
def test_offline_cli_says_in_one_line_what_to_download(empty_offline_hub, tmp_path, capsys, argv):
    assert main([*argv, "--cache-dir", str(tmp_path / "c")]) == 1
    out, err = capsys.readouterr()
    assert out == ""  # analogy printed its header before failing
    assert err.count("\n") == 1 and err.startswith("error: fse/glove-wiki-gigaword-100/")
    assert ("`hf download fse/glove-wiki-gigaword-100 glove-wiki-gigaword-100.model "
            "glove-wiki-gigaword-100.model.vectors.npy`") in err
    assert "local GloVe file" in err and "connection" not in err  # not huggingface_hub's own sentence


# ------------------------------------------------------------------------------------------ 3. word similarity


@pytest.fixture
def four_words(tmp_path) -> glove.GloVe:
    return glove.from_arrays(["cat", "dog", "car", "sky"], [[1, 0], [0.9, 0.3], [0.5, 0.8], [0, 1]])


@pytest.mark.parametrize("score", ["nan", "NaN", "inf", "-Infinity"])
def test_a_nan_human_score_is_an_error_naming_file_and_line(tmp_path, four_words, score):
    pairs = write_text(tmp_path / "pairs.txt", f"cat\tdog\t9\ncat\tcar\t{score}\ncar\tsky\t3\n")
    with pytest.raises(GloVeFormatError, match=rf"^{pairs}, line 2: score '{score}' is not a finite number"):
        glove.evaluate_wordsim(four_words, pairs)


def test_low_coverage_is_reported_and_warned(tmp_path, four_words, capsys):
    lines = ["cat dog 9", "car sky 2"] + [f"x{i} y{i} {i % 10}" for i in range(997)]  # 2 pairs of 999 scorable
    pairs = write_text(tmp_path / "simlex.txt", "\n".join(lines) + "\n")
    with pytest.warns(UserWarning, match=r"only 2 of 999 pairs \(0%\) have both words in the table"):
        result = glove.evaluate_wordsim(four_words, pairs)
    assert (result.pairs, result.skipped) == (2, 997) and result.coverage == pytest.approx(2 / 999)
    folder = four_words.save(tmp_path / "table")
    assert main(["eval-wordsim", str(pairs), "-t", str(folder)]) == 0
    out, err = capsys.readouterr()
    assert out.splitlines()[0].split() == ["file", "spearman", "pairs", "skipped", "coverage"]
    assert out.splitlines()[1].split()[-1] == "0.2%"
    assert err.startswith("warning: ") and "only 2 of 999 pairs" in err


def test_eval_wordsim_checks_every_file_before_printing(tmp_path, four_words, capsys):
    good = write_text(tmp_path / "good.txt", "cat dog 9\ncar sky 2\ncat sky 1\n")
    bad = write_text(tmp_path / "bad.txt", "cat dog 9\ncar sky nan\n")
    assert main(["eval-wordsim", str(good), str(bad), "-t", str(four_words.save(tmp_path / "table"))]) == 1
    out, err = capsys.readouterr()
    assert out == "" and "bad.txt, line 2" in err


def test_a_word_similarity_file_without_line_breaks_is_refused(tmp_path, four_words):
    pairs = write_text(tmp_path / "pairs.txt", b"cat dog " + b"9" * (1 << 20))
    with pytest.raises(GloVeFormatError, match=r"line 1: a line longer than 65536 bytes"):
        glove.evaluate_wordsim(four_words, pairs)


# ------------------------------------------------------------------------------------------ 4. long lines


def test_a_long_line_in_the_middle_of_a_chunk_is_refused_too(tmp_path):
    source = write_text(tmp_path / "t.txt", b"a 1 2\nb " + b"3" * (glove.textfile.MAX_LINE_BYTES + 1) + b" 4\nc 5 6\n")
    with pytest.raises(GloVeFormatError, match=rf"^{source}, line 2: a line longer than"):
        glove.load(source, cache_dir=tmp_path / "cache")


def test_line_buffering_is_linear(tmp_path):
    """Lines just under the limit, many blocks: the carried partial line is never re-copied block after block."""
    row = b" ".join([b"0.5"] * 200_000)  # 800 KB lines
    source = write_text(tmp_path / "t.txt.gz", b"".join(b"w%d %s\n" % (i, row) for i in range(40)))
    started = time.monotonic()
    g = glove.load(source, cache_dir=tmp_path / "cache")
    assert (len(g), g.dim) == (40, 200_000) and time.monotonic() - started < 20


# ------------------------------------------------------------------------------------------ 5. gensim pickles


def hostile(tmp_path: Path, body: bytes, protocol: bytes = b"\x80\x04") -> Path:
    path = tmp_path / "kv.model"
    path.write_bytes(protocol + body + b".")
    return path


def read_in_child(path: Path) -> tuple:
    return run_limited(read_keyed_vectors, path, memory_mb=200)


@pytest.mark.parametrize("body, message", [
    (b"cnumpy\nndarray\n(J\x00\x00\x00\x10tR", "numpy.ndarray is called directly"),
    (b"cnumpy._core.multiarray\n_reconstruct\ncnumpy\nndarray\nJ\x00\x00\x00\x10\x85C\x01b\x87R",
     r"_reconstruct is called other than as numpy pickles arrays: _reconstruct\(numpy.ndarray, \(268435456,\)"),
    (b"cnumpy._core.multiarray\n_reconstruct\ncnumpy\nndarray\nK\x00\x85C\x01b\x87R(K\x01J\x00\x00\x00\x10\x85"
     b"cnumpy\ndtype\nX\x02\x00\x00\x00f4\x89\x88\x87R(K\x03X\x01\x00\x00\x00<NNNJ\xff\xff\xff\xffJ\xff\xff\xff\xffK"
     b"\x00tb\x89C\x04\x00\x00\x00\x00tb", r"needs 1073741824 bytes, the file holds 4"),
    (b"cnumpy\ndtype\nX\x01\x00\x00\x00O\x89\x88\x87R", r"numpy.dtype\('O'\): gensim files hold plain number arrays"),
])
def test_numpy_is_rebuilt_only_from_bytes_present(tmp_path, body, message):
    """numpy.ndarray((2**28,)) turned 122 bytes into 256 MiB of uninitialised memory."""
    path = hostile(tmp_path, body)
    result = read_in_child(path)
    assert result[:3] == ("raised", "GloVeFormatError", True), result
    assert __import__("re").search(message, result[3]), result[3]


@pytest.mark.parametrize("body", [
    b"}N" + b"\x85" * 200_000 + b"Ns",  # a dict key nested 200,000 deep: hashing it overflowed the C stack
    b"N" + b"\x85" * (MAX_DEPTH + 1),
    b"]" + b"(" * 5000 + b"t" * 5000 + b"a",
])
def test_nesting_is_bounded_before_anything_recurses(tmp_path, body):
    result = read_in_child(hostile(tmp_path, body))
    assert result[:3] == ("raised", "GloVeFormatError", True), result
    assert f"nested more than {MAX_DEPTH} deep" in result[3]


def test_nesting_cannot_be_hidden_by_filling_a_held_container(tmp_path):
    """A list put inside a tuple, then appended to: its depth would grow behind the tuple's back."""
    body = b"]\x94\x85\x94h\x00N" + b"\x85" * 50 + b"a" + b"0h\x01" + b"\x85" * 60
    result = read_in_child(hostile(tmp_path, body))
    assert result[:3] == ("raised", "GloVeFormatError", True), result
    assert "changes an object already inside another" in result[3]


@pytest.mark.parametrize("body, protocol, kind", [
    (b"c_codecs\nencode\nX\x02\x00\x00\x00\xc4\x80X\x06\x00\x00\x00latin1\x86R", b"\x80\x02", "UnicodeEncodeError"),
    (b"X\xff\xff\xff\x7fabc", b"\x80\x04", "ValueError"),  # a 2 GiB string announced, 3 bytes present
    (b"\x82\x07", b"\x80\x04", "ValueError"),  # an unregistered extension code
])
def test_any_failure_while_unpickling_is_a_format_error_naming_the_file(tmp_path, body, protocol, kind):
    path = hostile(tmp_path, body, protocol)
    result = read_in_child(path)
    assert result[:3] == ("raised", "GloVeFormatError", True), result
    assert result[3].startswith(str(path)) and kind in result[3]


def test_a_word_that_cannot_be_stored_as_utf8(tmp_path):
    path = tmp_path / "kv.model"
    path.write_bytes(gensim_pickle(["ok", "\ud800"], np.ones((2, 2), np.float32), 4, None))
    with pytest.raises(GloVeFormatError, match=r"word #1 is '\\ud800': words must be .*no lone surrogates"):
        glove.load(path, cache_dir=tmp_path / "cache")
    assert leftovers(tmp_path, path) == []


# ------------------------------------------------------------------------------------------ 6. empty writes


def test_a_chunk_of_duplicates_only(tmp_path, monkeypatch):
    """A table concatenated with itself: whole chunks of duplicates added nothing, and crashed the writer."""
    monkeypatch.setattr(glove.textfile, "_CHUNK_BYTES", 1 << 12)
    text = "".join(f"w{i} {i} {i + 0.5}\n" for i in range(1000))
    source = write_text(tmp_path / "twice.txt", text + text)
    with pytest.warns(UserWarning, match="1000 duplicate word"):
        g = glove.load(source, cache_dir=tmp_path / "cache")
    assert len(g) == 1000 and g.duplicates == 1000 and g["w999"].tolist() == [999, 999.5]


@pytest.mark.parametrize("shape", [(3, 0), (0, 4)])
def test_a_gensim_table_without_columns_or_rows(tmp_path, shape):
    words = [f"w{i}" for i in range(shape[0])]
    path = tmp_path / "kv.model"
    path.write_bytes(gensim_pickle(words, np.zeros(shape, np.float32), 4, None))
    with pytest.raises(GloVeFormatError, match=rf"'vectors' has shape \({shape[0]}, {shape[1]}\); a table needs at "
                                               "least one word and one dimension"):
        glove.load(path, cache_dir=tmp_path / "cache")
    assert leftovers(tmp_path, path) == []


def test_float64_gensim_vectors_beyond_float32_are_refused_naming_the_row(tmp_path):
    vectors = np.array([[1.0, 2.0], [1e300, 0.0]])
    path = tmp_path / "kv.model"
    path.write_bytes(gensim_pickle(["a", "b"], vectors, 4, None))
    with pytest.raises(GloVeFormatError, match=rf"^{path}: row 1: NaN or infinite"):
        glove.load(path, cache_dir=tmp_path / "cache")


# ------------------------------------------------------------------------------------------ 7. byte order mark


@pytest.mark.parametrize("suffix", [".txt", ".txt.gz"])
def test_a_utf8_bom_is_not_part_of_the_first_word(tmp_path, suffix):
    g = glove.load(write_text(tmp_path / f"t{suffix}", "\ufeffthe 1 2\ncat 3 4\n"), cache_dir=tmp_path / "cache")
    assert list(g.index_to_key) == ["the", "cat"]


def test_a_bom_before_a_word2vec_header(tmp_path):
    g = glove.load(write_text(tmp_path / "t.txt", "\ufeff2 2\nthe 1 2\ncat 3 4\n"), cache_dir=tmp_path / "cache")
    assert list(g.index_to_key) == ["the", "cat"] and g.manifest["word2vec_header"]


def test_a_bom_in_a_word_similarity_file(tmp_path, four_words):
    pairs = write_text(tmp_path / "pairs.txt", "\ufeffcat dog 9\ncar sky 2\ncat sky 1\n")
    assert glove.evaluate_wordsim(four_words, pairs).pairs == 3


# ------------------------------------------------------------------------------------------ 9. the same classes elsewhere


def test_text_starting_with_bzh_is_text(tmp_path):
    g = glove.load(write_text(tmp_path / "t.txt", "BZh9 1 2\ncat 3 4\n"), cache_dir=tmp_path / "cache")
    assert list(g.index_to_key) == ["BZh9", "cat"]


def test_a_tab_inside_a_line_is_a_separator_wherever_the_line_falls(tmp_path):
    """'a\\tb 1 2' has as many spaces as a plain line of 2 values: it must still read as the word 'a b'."""
    text = "the 1 2\nof 1 2\nto 1 2\na\tb 3 4\nc\rd 5 6\n"
    g = glove.load(write_text(tmp_path / "t.txt", text), cache_dir=tmp_path / "cache")
    assert list(g.index_to_key)[3:] == ["a b", "c d"] and g["c d"].tolist() == [5, 6]


@pytest.mark.parametrize("kind", ["file", "fifo", "symlink", "folder of other files"])
def test_outputs_never_replace_what_is_not_a_converted_folder(tmp_path, kind):
    dest = tmp_path / "dest"
    if kind == "file":
        dest.write_text("mine")
    elif kind == "fifo":
        os.mkfifo(dest)
    elif kind == "symlink":
        (tmp_path / "elsewhere").mkdir()
        dest.symlink_to(tmp_path / "elsewhere", target_is_directory=True)
    else:
        dest.mkdir()
        (dest / "keep.txt").write_text("mine")
    source = write_text(tmp_path / "t.txt", "the 1 2\n")
    g = glove.from_arrays(["a"], [[1.0]])
    for attempt in (lambda: glove.convert(source, dest), lambda: g.save(dest)):
        with pytest.raises(FileExistsError, match=rf"^{dest} exists and is not a"):
            attempt()
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["dest", "t.txt"] + (["elsewhere"] if kind == "symlink" else []))


def test_a_huge_manifest_is_not_read_whole(tmp_path):
    folder = glove.from_arrays(["a"], [[1.0]]).save(tmp_path / "table")
    (folder / "manifest.json").write_bytes(b"[" * (2 << 20))
    with pytest.raises(GloVeFormatError, match=r"manifest.json: larger than 1048576 bytes"):
        glove.load(folder)


def test_a_deeply_nested_manifest(tmp_path):
    folder = glove.from_arrays(["a"], [[1.0]]).save(tmp_path / "table")
    (folder / "manifest.json").write_bytes(b"[" * 100_000 + b"]" * 100_000)
    with pytest.raises(GloVeFormatError, match=r"manifest.json: unreadable manifest: RecursionError"):
        glove.load(folder)


def test_a_writer_that_cannot_start_leaves_no_temporary_folder(tmp_path, monkeypatch):
    def refuse(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr("builtins.open", refuse)
    with pytest.raises(OSError, match="disk full"):
        glove.store.TableWriter(tmp_path / "dest", 3)
    monkeypatch.undo()
    assert list(tmp_path.iterdir()) == []


def test_a_failed_rename_keeps_the_previous_converted_folder(tmp_path, monkeypatch):
    """The previous folder was removed before the new one was renamed in: a failing rename lost both."""
    folder = glove.from_arrays(["a", "b"], [[1.0], [2.0]]).save(tmp_path / "table")
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    real = os.rename

    def rename(src, dst):
        if ".tmp" in Path(src).name:  # the new folder cannot be moved in
            raise OSError(errno.EIO, "Input/output error")
        real(src, dst)

    monkeypatch.setattr(os, "rename", rename)
    with pytest.raises(OSError, match=rf"^{re.escape(str(folder))}: cannot write \(Input/output error\); nothing"):
        glove.from_arrays(["c"], [[3.0]]).save(folder)
    monkeypatch.undo()
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before
    assert [p.name for p in tmp_path.iterdir()] == ["table"] and list(glove.load(folder).index_to_key) == ["a", "b"]


def test_a_writer_left_without_commit_puts_nothing_in_place(tmp_path):
    with pytest.raises(RuntimeError, match="without commit"):
        with glove.store.TableWriter(tmp_path / "dest", 1) as writer:
            writer.add(["a"], np.ones((1, 1), np.float32))
    assert list(tmp_path.iterdir()) == []
