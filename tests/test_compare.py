"""compare.py run as a user runs it: a subprocess with the real model, or main() in-process with the small odd-shaped
model for the many hostile command lines (the WiC reader and scoring are tested in test_wic.py)."""

import contextlib
import importlib.util
import io
import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest

from minibert import OutputError
from hypothesis import HealthCheck, event, given, settings, strategies as st

from conftest import ODD_MODEL, REPO, shared_data
from test_wic import TRAIN, write_wic

sys.path.insert(0, str(REPO))
import compare  # noqa: E402  (the script at the repo root)

RIVER = ["We had a picnic on the bank of the river.", "She deposited her salary at the bank on Monday."]


def run(tmp_path, *args, offline=True, **env):
    """compare.py with an empty Hugging Face cache (no GloVe table can be had) and a private minibert cache."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("HF_")}
    base.update(HF_HOME=str(tmp_path / "hf"), MINIBERT_CACHE=str(tmp_path / "cache"), **env)
    if offline:
        base["HF_HUB_OFFLINE"] = "1"
    result = subprocess.run([sys.executable, str(REPO / "compare.py"), *map(str, args)], capture_output=True,
                            text=True, env=base, cwd=tmp_path, timeout=600)
    assert "Traceback" not in result.stderr, result.stderr
    return result


@pytest.fixture(scope="module")
def default_text(tmp_path_factory):
    return run(tmp_path_factory.mktemp("text"))


@pytest.fixture(scope="module")
def default_json(tmp_path_factory):
    result = run(tmp_path_factory.mktemp("json"), "--json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def sections(text):
    """{word: lines of its section} from the text report."""
    out, word = {}, None
    for line in text.splitlines():
        m = re.match(r"== (\S+) =+$", line)
        if m:
            word = m[1]
            out[word] = []
        elif word:
            out[word].append(line)
    return out


def cosine_rows(lines):
    """[(label, static, [contextual by layer])] from a section's cosine table."""
    rows = []
    for line in lines:
        m = re.match(r"  (\S.*?)\s+(\d\.\d{3}) \|((?:\s*-?\d\.\d{3})+)$", line)
        if m:
            rows.append((m[1], float(m[2]), [float(x) for x in m[3].split()]))
    return rows


def test_default_run_falls_back_to_word_pieces_in_one_line(default_text):
    assert default_text.returncode == 0, default_text.stderr
    notes = [line for line in default_text.stderr.splitlines() if "GloVe" in line]
    assert notes == [notes[0]] and notes[0].startswith(
        "compare.py: no GloVe table (fse/glove-wiki-gigaword-100: it is not in the Hugging Face cache and "
        "HF_HUB_OFFLINE is set)")
    assert "`hf download fse/glove-wiki-gigaword-100`" in notes[0]
    out = default_text.stdout
    assert out.startswith("all-MiniLM-L6-v2 (6 layers) vs static all-MiniLM-L6-v2 input word-piece embeddings "
                          "(no GloVe)\n")
    assert list(sections(out)) == ["cat", "bank", "bat", "cell"]
    assert max(len(line) for line in out.splitlines()) <= 100


def test_static_cosine_is_exactly_one_and_contextual_below(default_text, default_json):
    for word in default_json["words"]:
        static, contextual = np.array(word["static_cosine"]), np.array(word["contextual_cosine"])
        assert (static == 1.0).all(), word["word"]
        off_diagonal = contextual[~np.eye(len(contextual), dtype=bool)]
        assert (off_diagonal < 0.99).all(), word["word"]
    for word, lines in sections(default_text.stdout).items():
        rows = cosine_rows(lines)
        assert rows and all(static == 1.0 and by_layer[-1] < 0.99 for _, static, by_layer in rows), word


def test_river_bank_is_closer_to_the_other_river_bank(default_json):
    bank = next(w for w in default_json["words"] if w["word"] == "bank")
    senses = [s["sense"] for s in bank["sentences"]]
    cos = np.array(bank["contextual_cosine"])
    for i, sense in enumerate(senses):
        same = [j for j, s in enumerate(senses) if s == sense and j != i]
        other = [j for j, s in enumerate(senses) if s != sense]
        assert cos[i, same].max() > cos[i, other].max(), (i, sense)
        assert senses[bank["closest"][i]["closest"]] == sense


def test_layer_zero_holds_position_not_context(default_json):
    """The classic pair has "cat" at the same position: at layer 0 (input embedding) its two vectors coincide."""
    cat = default_json["words"][0]
    assert cat["word"] == "cat" and default_json["layer"] == default_json["layers"] == 6
    assert cat["numbering"]["closest.closest"] == "0-based index into sentences"  # the text's S1 is index 0
    assert cat["cosine_by_layer"][0][0][1] == pytest.approx(1.0, abs=1e-6)
    assert cat["cosine_by_layer"][6][0][1] < 0.95


def test_json_holds_the_numbers_of_the_text(default_text, default_json):
    text = sections(default_text.stdout)
    for word in default_json["words"]:
        rows = cosine_rows(text[word["word"]])
        n = len(word["sentences"])
        pairs = [(i, j) for i in range(n) for j in range(i + 1, n)]
        assert len(rows) >= len(pairs)
        by_layer = np.array(word["cosine_by_layer"])
        for (i, j), (_, static, values) in zip(pairs, rows):
            assert static == round(word["static_cosine"][i][j], 3)
            np.testing.assert_allclose(values, by_layer[:, i, j], atol=5e-4 + 1e-9)
        head = re.search(r"static vector, the same in every sentence:\s+(.*) \.\.\.", "\n".join(text[word["word"]]))
        np.testing.assert_allclose([float(x) for x in head[1].split()], word["static_head"], atol=5e-4 + 1e-9)
        closest = [line for line in text[word["word"]] if re.search(r"\d\.\d{3}$", line) and " | " not in line]
        for line, c in zip(closest, word["closest"]):
            assert line.endswith(f"{c['cosine']:6.3f}")
            assert f"S{c['closest'] + 1} " in line[len(line) // 2:]


def test_unreachable_hub_is_detected_without_offline_mode(tmp_path):
    """No HF_HUB_OFFLINE, the Hub endpoint refuses connections: a fast fallback, not ~25 s of retries."""
    result = run(tmp_path, "--word", "bank", *sum((["--sentence", s] for s in RIVER), []), offline=False,
                 HF_ENDPOINT="http://127.0.0.1:9")
    assert result.returncode == 0, result.stderr
    assert "it is not in the Hugging Face cache and 127.0.0.1 cannot be reached" in result.stderr
    assert "== bank ==" in result.stdout


def test_glove_text_file_as_the_static_table(tmp_path):
    rng = np.random.default_rng(0)
    words = ["bank", "river", "money", "cat", "dog", "water", "loan", "the"]
    vectors = rng.normal(size=(len(words), 10)).astype(np.float32)
    vectors[1] = vectors[0] + 0.01  # "river" is bank's nearest neighbour
    path = tmp_path / "tiny.txt"
    path.write_text("".join(w + " " + " ".join(f"{x:.5f}" for x in v) + "\n" for w, v in zip(words, vectors)))
    result = run(tmp_path, "--glove", path, "--word", "Bank", "--sentence", RIVER[0], "--sentence", RIVER[1],
                 "--layer", 2, "--json")
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    assert out["static"] == {"name": str(path), "wordpieces": False} and out["layer"] == 2
    [word] = out["words"]
    assert word["static_keys"] == ["bank"]  # GloVe is lower-case: "Bank" is looked up as "bank"
    np.testing.assert_allclose(word["static_head"], np.round(vectors[0, :6], 5), atol=1e-6)
    assert word["static_neighbours"][0][0] == "river"
    assert word["static_cosine"] == [[1.0, 1.0], [1.0, 1.0]]
    assert word["contextual_cosine"] == word["cosine_by_layer"][2]


@pytest.mark.parametrize("args, message", [
    (["--word", "mouse", "--sentence", "The cat sat.", "--sentence", "A mouse."],
     "compare.py: error: word 'mouse' not found (as a whole word, ignoring case) in sentence 'The cat sat.'"),
    (["--layer", "7"], "compare.py: error: --layer 7: this model has layers 0 (input embedding) to 6"),
    (["--word", "cat", "--sentence", "The cat."], "--word needs at least two --sentence to compare"),
])
def test_bad_input_is_one_line_and_status_2(tmp_path, args, message):
    result = run(tmp_path, *args, "--glove", "none")
    assert result.returncode == 2 and message in result.stderr, result.stderr
    assert len(result.stderr.splitlines()) == 1 and result.stdout == ""


def test_missing_input_is_one_line_and_status_1(tmp_path):
    """An input named on the command line that cannot be read is an input error, not a usage error."""
    result = run(tmp_path, "--glove", "missing.txt")
    assert result.returncode == 1 and result.stdout == "", result.stderr
    [line] = result.stderr.splitlines()
    assert line.startswith("compare.py: error: --glove missing.txt: missing.txt: no such file or folder")


def test_plot(tmp_path):
    args = ["--glove", "none", "--word", "bank", "--sentence", RIVER[0], "--sentence", RIVER[1],
            "--plot", tmp_path / "out" / "bank.png"]
    result = run(tmp_path, *args)
    if importlib.util.find_spec("matplotlib") is None:
        assert result.returncode == 2 and "--plot needs matplotlib: pip install matplotlib" in result.stderr
    else:
        assert result.returncode == 0, result.stderr
        assert (tmp_path / "out" / "bank.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert [p.name for p in (tmp_path / "out").iterdir()] == ["bank.png"]  # no temporary file left


def test_plot_without_matplotlib(tmp_path):
    """matplotlib is an optional extra: without it, --plot says how to get it."""
    code = ("import runpy, sys; sys.modules['matplotlib'] = None; "
            f"sys.argv = ['compare.py', '--glove', 'none', '--word', 'bank', '--sentence', {RIVER[0]!r}, "
            f"'--sentence', {RIVER[1]!r}, '--plot', 'x.png']; "
            f"sys.exit(runpy.run_path({str(REPO / 'compare.py')!r}, run_name='__main__'))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path)
    assert result.returncode == 2 and result.stdout == ""  # refused before the report, not after it
    assert result.stderr.strip().endswith(
        "compare.py: error: --plot needs matplotlib: pip install matplotlib (in a clone of minibert: pip install -e '.[plot]')")


# ---------------------------------------------------------------------------------------------------- WiC

def test_wic_small(tmp_path):
    write_wic(tmp_path / "wic", "train", TRAIN)
    write_wic(tmp_path / "wic", "dev", TRAIN[:2] + TRAIN[3:5])
    text = run(tmp_path, "wic", tmp_path / "wic")
    result = run(tmp_path, "--wic", tmp_path / "wic", "--json")  # the older spelling, the same command
    assert text.returncode == 0 and result.returncode == 0, text.stderr + result.stderr
    assert run(tmp_path, "--wic", tmp_path / "wic").stdout == text.stdout
    w = json.loads(result.stdout)
    assert (w["split"], w["pairs"], w["train_pairs"]) == ("dev", 4, 6)
    assert [r["name"] for r in w["rows"]] == ["static"] + [f"layer {k}" for k in range(7)]
    static = w["rows"][0]
    # Static cosines are all 1: the best train threshold calls every pair "different" (4 of 6 on train).
    assert static["threshold"] > 1.0 and static["train_accuracy"] == round(4 / 6, 6) and static["accuracy"] == 0.75
    for row in w["rows"]:
        line = next(x for x in text.stdout.splitlines() if re.match(rf"  \S.*{row['name']}\b", x) or
                    (row["layer"] is None and x.startswith("  static")))
        assert f"{row['threshold']:.3f}" in line and f"{row['accuracy']:.1%}" in line
    best = max(w["rows"][1:], key=lambda r: r["train_accuracy"])
    assert w["best_layer"] == best["layer"]
    assert f"best layer (chosen on train): {best['layer']}, dev accuracy {best['accuracy']:.1%}" in text.stdout


def test_wic_slice_of_the_real_data(tmp_path):
    wic = shared_data("wic")
    w = json.loads(run(tmp_path, "--wic", wic, "--limit", 60, "--json").stdout)
    assert (w["pairs"], w["train_pairs"]) == (60, 60)
    assert all(0 <= r["accuracy"] <= 1 for r in w["rows"])


def test_wic_full_dev_split(tmp_path):
    """The measured figure the README reports: 638 dev pairs, thresholds from the 5,428 train pairs."""
    wic = shared_data("wic")
    w = json.loads(run(tmp_path, "--wic", wic, "--json").stdout)
    assert (w["pairs"], w["train_pairs"], w["same_sense_share"]) == (638, 5428, 0.5)
    static, best = w["rows"][0], w["rows"][w["best_layer"] + 1]
    assert static["accuracy"] == 0.5  # one class on a balanced split
    assert best["accuracy"] > 0.55  # context helps; MiniLM-L6 measured 57.8% here


def test_wic_errors_are_one_line_with_their_status(tmp_path):
    """Bad WiC data is an input error (1) naming file:line; a bad command line is a usage error (2)."""
    write_wic(tmp_path / "wic", "train", TRAIN)
    (tmp_path / "wic" / "dev.data.txt").write_bytes(b"cat\tN\t1-1\tThe cat .\tA cat .\ncat\tN\t1-1\tThe \xff .\tA .\n")
    (tmp_path / "wic" / "dev.gold.txt").write_text("T\nF\n")
    bad = run(tmp_path, "wic", tmp_path / "wic", "--model", ODD_MODEL)
    assert bad.returncode == 1 and bad.stdout == ""
    assert bad.stderr.splitlines() == [f"compare.py: error: {tmp_path / 'wic' / 'dev.data.txt'}:2: not UTF-8 text "
                                       "(byte 0xff at column 15); expected UTF-8"]
    held_out = run(tmp_path, "wic", tmp_path / "wic", "--split", "test")
    assert held_out.returncode == 1 and "no test split" in held_out.stderr
    for args in (["wic", tmp_path / "wic", "--layer", "2"], ["--wic", tmp_path / "wic", "--word", "cat"],
                 ["wic", tmp_path / "wic", "--split", "../train"], ["--split", "dev"],
                 ["wic", tmp_path / "wic", "--wic", tmp_path / "wic"]):
        result = run(tmp_path, *args)
        assert result.returncode == 2 and result.stderr.splitlines()[-1].startswith("compare.py: error: "), args


# ---------------------------------------------------------------------------------------------------- explain

def test_explain_is_a_sub_command_that_passes_everything_through(tmp_path):
    """An option first (argparse.REMAINDER would refuse it), --help included, reaches minibert's explain."""
    help_ = run(tmp_path, "explain", "--help")
    assert help_.returncode == 0 and "--occurrence OCCURRENCE" in help_.stdout and "SENTENCE" in help_.stdout
    result = run(tmp_path, "explain", "--word", "cat", "The cat sat.", "--model", ODD_MODEL, "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["sentences"][0]["word"]["text"] == "cat"
    assert "explain" in run(tmp_path, "--help").stdout
    misplaced = run(tmp_path, "--json", "explain", "The cat sat.", "--word", "cat")
    assert misplaced.returncode == 2 and "--json: give explain's options after it" in misplaced.stderr


# ---------------------------------------------------------------------------------------------------- in-process

def main(*args):
    """compare.main(args) with the odd model and its word-piece table: (status, stdout, stderr). An exception
    other than argparse's exit fails the test: a user would have seen a traceback."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            status = compare.main(["--model", str(ODD_MODEL), "--glove", "none", *map(str, args)])
        except SystemExit as e:  # argparse's usage errors
            status = e.code
    return status, out.getvalue(), err.getvalue()


def error_line(stderr):
    lines = stderr.strip().splitlines()
    assert lines and lines[-1].startswith("compare.py: error: ") and "Traceback" not in stderr, stderr
    return lines[-1][len("compare.py: error: "):]


@pytest.mark.parametrize("layer, index", [(-1, 3), (-4, 0), (0, 0), (3, 3), (-2, 2)])
def test_negative_layers_count_from_the_end(layer, index):
    status, out, err = main("--word", "cat", "--sentence", "The cat sat.", "--sentence", "A cat ran.",
                            "--layer", layer, "--json")
    assert status == 0, err
    assert json.loads(out)["layer"] == index


@pytest.mark.parametrize("layer", [4, -5, 100, -100])
def test_layers_outside_the_model_are_refused_with_the_valid_range(layer):
    status, out, err = main("--word", "cat", "--sentence", "The cat sat.", "--sentence", "A cat ran.",
                            "--layer", layer)
    assert status == 2 and out == ""
    assert error_line(err) == (f"--layer {layer}: this model has layers 0 (input embedding) to 3, or -4 to -1 "
                               "counting from the end (-1 = the last)")


def test_a_sentence_longer_than_the_model_reads_is_cut_with_a_note():
    long = "The cat sat. " + "And then it sat again. " * 60  # ~370 tokens; the odd model reads 256
    status, out, err = main("--word", "cat", "--sentence", "A cat ran.", "--sentence", long, "--json")
    assert status == 0, err
    assert re.search(r"^compare\.py: --sentence 2 is \d{3} tokens long; the model reads only the first 256 "
                     r"\(\[CLS\] and \[SEP\] included\): the rest is cut$", err, re.M), err
    assert "--sentence 1 " not in err
    assert len(json.loads(out)["words"][0]["sentences"]) == 2
    beyond = "And then it sat again. " * 60 + "The cat."
    status, out, err = main("--word", "cat", "--sentence", "A cat ran.", "--sentence", beyond)
    assert status == 2 and "it lies beyond the first 256 tokens the model reads" in error_line(err)


@pytest.mark.parametrize("args, message", [
    (["--word", "cat", "--sentence", "The cat.", "--sentence", ""],
     "--sentence 2 (counting from 1) is empty; expected a sentence holding the word"),
    (["--word", "cat", "--sentence", "   ", "--sentence", "The cat."], "--sentence 1 (counting from 1) is empty"),
    (["--word", "", "--sentence", "The cat.", "--sentence", "A cat."], "--word is empty"),
    (["--word", " \t", "--sentence", "The cat.", "--sentence", "A cat."], "--word is empty"),
    (["--word", "cat", "--sentence", "The cat."], "--word needs at least two --sentence to compare"),
    (["--sentence", "The cat.", "--sentence", "A cat."], "--sentence needs --word"),
    (["--word", "dog", "--sentence", "The cat.", "--sentence", "A dog."],
     "word 'dog' not found (as a whole word, ignoring case) in sentence 'The cat.'"),
    (["--word", "!", "--sentence", "Wow!", "--sentence", "Stop !"],
     "word '!' not found (as a whole word, ignoring case) in sentence 'Wow!'"),
    (["--word", "cat", *["--sentence", "The cat."] * 101], "101 sentences: at most 100"),
    (["--limit", "3"], "--split and --limit go with wic"),
    (["--word", "caf\udce9", "--sentence", "The caf\udce9.", "--sentence", "A cat."],  # argv bytes b"caf\xe9"
     "--word: byte 0xe9 at character 4 is not UTF-8; expected UTF-8 text"),
    (["--word", "cat", "--sentence", "The cat.", "--sentence", "A cat \udcff."],
     "--sentence 2: byte 0xff at character 7 is not UTF-8; expected UTF-8 text"),
])
def test_hostile_word_and_sentences_are_one_clear_usage_error(args, message):
    status, out, err = main(*args)
    assert status == 2 and out == ""
    assert message in error_line(err)


def test_a_word_of_punctuation_and_many_sentences_work_when_they_make_sense():
    status, out, err = main("--word", "?!", "--sentence", "Really ?! No .", "--sentence", "What ?! Why .", "--json")
    assert status == 0, err
    [word] = json.loads(out)["words"]
    assert [s["text"][slice(*s["span"])] for s in word["sentences"]] == ["?!", "?!"]
    sentences = [f"Cat number {i} sat." for i in range(100)]
    status, out, err = main("--word", "cat", *[x for s in sentences for x in ("--sentence", s)])
    assert status == 0, err
    assert "S100" in out and max(len(line) for line in out.splitlines()) <= 100


def test_unknown_model_is_an_input_error(tmp_path):
    status, out, err = main("--model", tmp_path / "no-model", "--word", "cat", "--sentence", "The cat.",
                            "--sentence", "A cat.")
    assert status == 1 and out == "" and "no-model" in error_line(err)


WORDS = st.sampled_from(["cat", "Cat", "bank", "?!", "...", "née", "ice cream", "x" * 40, "\u200b", "[SEP]",
                         "c-a-t", "猫", ""]) | st.text(max_size=6)
FRAGMENTS = st.sampled_from(["The", "cat", "sat", "on", "a", "bank", "?!", "...", "ice cream", "née", "猫", "[SEP]",
                             "\u200b", "\t", "", "x" * 40]) | st.text(max_size=5)


@st.composite
def words_and_sentences(draw):
    """A word and 0-4 sentences of odd fragments, most of them holding the word somewhere."""
    word, sentences = draw(WORDS), []
    for _ in range(draw(st.integers(0, 4))):
        parts = draw(st.lists(FRAGMENTS, max_size=4))
        if draw(st.sampled_from([True, True, True, False])):
            parts.insert(draw(st.integers(0, len(parts))), word)
        sentences.append(" ".join(parts))
    return word, sentences


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(command=words_and_sentences(), layer=st.integers(-6, 5))
def test_any_word_and_sentences_give_a_result_or_one_usage_error(command, layer):
    word, sentences = command
    status, out, err = main("--word", word, *[x for s in sentences for x in ("--sentence", s)],
                            "--layer", layer, "--json")
    assert status in (0, 2), (status, err)
    event(f"status {status}")
    if status == 2:
        error_line(err)
        assert out == ""
        return
    result = json.loads(out)
    [found] = result["words"]
    assert len(found["sentences"]) == len(sentences) >= 2 and 0 <= result["layer"] <= 3
    for s, text in zip(found["sentences"], sentences):
        assert s["text"] == text and text[slice(*s["span"])].lower() == word.strip().lower()
    cos = np.array(found["cosine_by_layer"])
    assert cos.shape == (4, len(sentences), len(sentences)) and np.all(np.abs(cos) <= 1 + 1e-6)


# ---------------------------------------------------------------------------------------------------- --plot

@pytest.mark.parametrize("target, message", [
    ("out", "is a folder; expected an image file name such as compare.png"),
    ("bank.pgn", "cannot write .pgn; expected one of "),
    ("bank", "cannot write a file without an extension; expected one of "),
    ("file.txt/bank.png", "is a file, not a folder"),
])
def test_plot_targets_that_cannot_be_written_are_refused_first(tmp_path, monkeypatch, target, message):
    pytest.importorskip("matplotlib")
    monkeypatch.chdir(tmp_path)
    (tmp_path / "out").mkdir()
    (tmp_path / "file.txt").write_text("")
    status, out, err = main("--word", "cat", "--sentence", "The cat.", "--sentence", "A cat.", "--plot", target)
    assert status == 2 and out == ""  # before the report
    assert error_line(err).startswith(f"--plot {target}: ") and message in err
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["file.txt", "out"]  # nothing written, no temp file


def test_plot_in_another_format(tmp_path):
    pytest.importorskip("matplotlib")
    status, out, err = main("--word", "cat", "--sentence", "The cat.", "--sentence", "A cat.",
                            "--plot", tmp_path / "cat.SVG")
    assert status == 0, err
    assert (tmp_path / "cat.SVG").read_text().lstrip().startswith("<?xml")
    assert [p.name for p in tmp_path.iterdir()] == ["cat.SVG"]


def test_a_failed_write_leaves_the_old_file_and_no_temporary_one(tmp_path):
    class Broken:
        def savefig(self, f, **kwargs):
            f.write(b"half an image")
            raise OSError(28, "No space left on device")

    (tmp_path / "old.png").write_bytes(b"old")
    with pytest.raises(OutputError, match="disk is full"):
        compare._write_figure(Broken(), tmp_path / "old.png")
    assert [p.name for p in tmp_path.iterdir()] == ["old.png"] and (tmp_path / "old.png").read_bytes() == b"old"


def test_plot_honours_the_umask(tmp_path):
    class Tiny:
        def savefig(self, f, **kwargs):
            f.write(b"image")

    old = os.umask(0o027)
    try:
        compare._write_figure(Tiny(), tmp_path / "sub" / "x.png")
    finally:
        os.umask(old)
    assert (tmp_path / "sub" / "x.png").stat().st_mode & 0o777 == 0o640


def test_a_reader_that_leaves_early_is_not_a_traceback(tmp_path):
    """compare.py ... | head: the pipe closes before the (large) output is written."""
    args = [sys.executable, str(REPO / "compare.py"), "--model", str(ODD_MODEL), "--glove", "none", "--word", "cat",
            "--json", *[x for i in range(100) for x in ("--sentence", f"The cat {i}.")]]
    with subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=tmp_path) as p:
        p.stdout.read(10)
        p.stdout.close()
        err = p.stderr.read().decode()
    assert p.returncode == 1 and err == ""


# ---------------------------------------------------------------------------------------------- what to notice
SPRING = [("Flowers bloom in the spring after the snow melts.", "season"), ("We plan to travel next spring.", "season"),
          ("The spring in the old mattress squeaked.", "coil"), ("A broken spring made the clock stop.", "coil"),
          ("They drank cold water from a mountain spring.", "water"),
          ("The village grew around a natural spring.", "water")]


def noticed(minilm, tokenizer, word, group):
    """The report's numbers for `word` and its "notice" lines, joined into one text."""
    static = compare.Static(compare.wordpiece_table(minilm, tokenizer), "word pieces", True)
    r = compare.analyse(word, [s for s, _ in group], [sense for _, sense in group], minilm, tokenizer, static, 6)
    lines = compare.notices(r)
    assert lines and all(len(line) <= compare.WIDTH for line in lines)
    return r, " ".join(" ".join(lines).split())


def test_notices_name_each_occurrence_closest_to_another_sense(minilm, minilm_tokenizer):
    r, text = noticed(minilm, minilm_tokenizer, "spring", SPRING)
    cos, senses = r.cosine_by_layer[6], r.senses
    strays = [c for c in r.closest if senses[c.closest] != senses[c.sentence]]
    assert strays  # this set has one: the test covers the line
    for c in strays:
        same = max((j for j in range(6) if j != c.sentence and senses[j] == senses[c.sentence]),
                   key=lambda j: cos[c.sentence, j])
        assert (f"closest occurrence of S{c.sentence + 1} is S{c.closest + 1} (other sense) at {c.cosine:.3f}, above "
                f"its same-sense S{same + 1} ({cos[c.sentence, same]:.3f})") in text
    pairs = [(i, j) for i in range(6) for j in range(i + 1, 6)]
    gap = (np.mean([cos[i, j] for i, j in pairs if senses[i] == senses[j]])
           - np.mean([cos[i, j] for i, j in pairs if senses[i] != senses[j]]))
    assert f"same-sense pairs are {gap:.3f} more alike than different-sense ones at layer 6" in text


def test_notices_without_senses_say_where_the_cosine_falls(minilm, minilm_tokenizer):
    group = [("Turn on the light, please.", ""), ("The bag is very light.", ""), ("She lit a light in the window.", "")]
    r, text = noticed(minilm, minilm_tokenizer, "light", group)
    mean = [np.mean([c[0, 1], c[0, 2], c[1, 2]]) for c in r.cosine_by_layer]
    fall = 1 + int(np.argmax(-np.diff(mean)))
    assert f"the largest fall is in layer {fall} ({mean[fall - 1]:.3f} to {mean[fall]:.3f})" in text
    assert "closest occurrence" not in text and "most alike: S" in text and "least alike: S" in text


def test_plot_panels_share_a_y_range_and_heatmaps_print_their_values(minilm, minilm_tokenizer, tmp_path):
    pytest.importorskip("matplotlib")
    from matplotlib.image import imread
    static = compare.Static(compare.wordpiece_table(minilm, minilm_tokenizer), "word pieces", True)
    words = tuple(compare.analyse(w, [s for s, _ in g], [x for _, x in g], minilm, minilm_tokenizer, static, 6)
                  for w, g in [("spring", SPRING), compare.CLASSIC])
    fig = compare.figure(compare.Report("minilm", 6, 6, "word pieces", True, words))
    curves, heats = fig.axes[0:4:2], fig.axes[1:4:2]  # per word: curves, heatmap (colour bars come after)
    assert curves[0].get_ylim() == curves[1].get_ylim()
    assert curves[0].get_ylim()[0] <= min(r.cosine_by_layer.min() for r in words)
    for heat, r in zip(heats, words):
        S = len(r.senses)
        assert len(heat.texts) == S * (S - 1)  # every off-diagonal cosine printed
        low, high = heat.images[0].get_clim()
        assert high < 1 and low <= r.contextual_cosine.min() + 1e-9  # fitted to the data, not 0..1
    assert "closer than others" in curves[0].get_title() and "falls most in layer" in curves[1].get_title()
    target = tmp_path / "c.png"
    compare._write_figure(fig, target)
    image = imread(target)
    assert image.shape[0] > 500 and image.shape[1] > 1000 and image[..., :3].std() > 0.05  # drawn, not blank


# ------------------------------------------------------------------------------------------------------------
# fill: the same blank in different sentences (random-weight fixtures with a masked-LM head)
# ------------------------------------------------------------------------------------------------------------

HEADS = REPO / "tests" / "fixtures" / "heads"


def test_fill_default_sentences_side_by_side(tmp_path):
    from minibert import AutoModelForMaskedLM, Tokenizer, fill_mask
    text = run(tmp_path, "fill", "--model", HEADS / "bert", "--top-k", "3")
    js = run(tmp_path, "fill", "--model", HEADS / "bert", "--top-k", "3", "--json")
    assert text.returncode == 0 and js.returncode == 0, text.stderr + js.stderr
    data = json.loads(js.stdout)
    assert [g["label"] for g in data["groups"]] == ["the cat's verb", "bank", "bat", "cell"]
    assert [s["sentence"] for s in data["groups"][0]["sentences"]] == ["The cat [MASK] on the mat.",
                                                                      "The cat [MASK] the mouse."]
    assert data["groups"][1]["sentences"][1]["sentence"] == "She deposited her salary at the [MASK] on Monday."
    assert len(data["groups"][3]["sentences"]) == 3  # one per sense of "cell"
    mlm, tok = AutoModelForMaskedLM.from_pretrained(HEADS / "bert"), Tokenizer.from_pretrained(HEADS / "bert")
    for g in data["groups"]:
        for s in g["sentences"]:  # filled together, here one by one: the same to float32 rounding
            alone = fill_mask(mlm, tok, s["sentence"], top_k=3)
            assert [c["token"] for c in s["guesses"]] == [c["token"] for c in alone]
            np.testing.assert_allclose([c["score"] for c in s["guesses"]], [c["score"] for c in alone], rtol=1e-5)
        sets = [{c["token_str"] for c in s["guesses"]} for s in g["sentences"]]
        assert set(g["shared"]) == set.intersection(*sets)
    assert text.stdout.count("what to notice: ") == 4
    first = data["groups"][0]["sentences"]
    row = next(line for line in text.stdout.splitlines() if line.startswith("   1 "))
    assert row.split() == ["1", first[0]["guesses"][0]["token_str"], f"{first[0]['guesses'][0]['score']:.3f}",
                           first[1]["guesses"][0]["token_str"], f"{first[1]['guesses'][0]['score']:.3f}"]


def test_fill_writes_the_models_own_mask_token(tmp_path):
    result = run(tmp_path, "fill", "--model", HEADS / "roberta", "--sentence", "The cat [MASK] on the mat.",
                 "--sentence", "The cat <mask> the mouse.", "--json")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["mask_token"] == "<mask>" and data["top_k"] == 5
    (group,) = data["groups"]
    assert [s["sentence"] for s in group["sentences"]] == ["The cat <mask> on the mat.", "The cat <mask> the mouse."]
    assert all(len(s["guesses"]) == 5 and sum(c["score"] for c in s["guesses"]) <= 1 for s in group["sentences"])


@pytest.mark.parametrize("args, status, message", [
    ((), 1, "compare.py: error: google-bert/bert-base-uncased: not in the Hugging Face cache"),  # the default, offline
    (("--model", "sentence-transformers/all-MiniLM-L6-v2"), 1,
     "fill needs a model with that head, e.g. google-bert/bert-base-uncased"),
    (("--model", HEADS / "bert", "--sentence", "No blank.", "--sentence", "A [MASK]."), 2,
     "compare.py: error: --sentence 1 'No blank.' holds 0 mask tokens; expected one blank, written [MASK]"),
    (("--sentence", "A [MASK]."), 2, "compare.py: error: 1 --sentence: expected 2 to 100"),
    (("--top-k", "0"), 2, "compare.py: error: --top-k 0: expected 1 or more"),
])
def test_fill_errors_are_one_line(tmp_path, args, status, message):
    result = run(tmp_path, "fill", *args)
    assert result.returncode == status and result.stdout == "", result.stderr
    [line] = result.stderr.splitlines()
    assert message in line


def test_fill_refuses_the_word_reports_options(tmp_path):
    result = run(tmp_path, "--word", "cat", "fill")
    assert result.returncode == 2 and result.stderr.startswith("compare.py: error: --word: not used by fill")
