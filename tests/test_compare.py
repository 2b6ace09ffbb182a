"""compare.py run as a user runs it (a subprocess), plus its WiC reader and threshold search."""

import importlib.util
import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest

from conftest import REPO, shared_data

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
    (["--glove", "missing.txt"], "compare.py: error: --glove missing.txt: missing.txt: no such file or folder"),
    (["--word", "mouse", "--sentence", "The cat sat.", "--sentence", "A mouse."],
     "compare.py: error: word 'mouse' not found (as a whole word, ignoring case) in sentence 'The cat sat.'"),
    (["--layer", "7"], "compare.py: error: --layer 7: this model has layers 0 (input embedding) to 6"),
    (["--word", "cat", "--sentence", "The cat."], "--word needs at least two --sentence to compare"),
])
def test_bad_input_is_one_line_and_status_2(tmp_path, args, message):
    result = run(tmp_path, *args, *([] if "--glove" in args else ["--glove", "none"]))
    assert result.returncode == 2 and message in result.stderr, result.stderr


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
    assert result.returncode == 2
    assert result.stderr.strip().endswith(
        "compare.py: error: --plot needs matplotlib: pip install matplotlib (in a clone of minibert: pip install -e '.[plot]')")


# ---------------------------------------------------------------------------------------------------- WiC

def write_wic(folder, split, rows):
    """rows: (word, PoS, 'i-j', sentence1, sentence2, 'T'|'F')."""
    folder.mkdir(exist_ok=True)
    (folder / f"{split}.data.txt").write_text("".join("\t".join(r[:5]) + "\n" for r in rows))
    (folder / f"{split}.gold.txt").write_text("".join(r[5] + "\n" for r in rows))


TRAIN = [
    ("bank", "N", "6-1", "We had a picnic on the bank of the river .", "The bank of the stream flooded .", "T"),
    ("bank", "N", "6-1", "We had a picnic on the bank of the river .", "The bank raised its rates .", "F"),
    ("board", "N", "2-3", "Room and board .", "He nailed three boards across the windows .", "F"),
    ("cell", "N", "1-5", "The cell divides .", "The prisoner slept in his cell .", "F"),
    ("carry", "V", "2-1", "You must carry your camping gear .", "Sound carries well over water .", "F"),
    ("cat", "N", "1-1", "The cat sat on the mat .", "The cat chased the mouse .", "T"),
]


def test_wic_reader_locates_the_word_by_its_token_index(tmp_path):
    write_wic(tmp_path, "train", TRAIN)
    pairs = compare.read_wic(tmp_path, "train")
    assert [s[a:b] for s, (a, b) in zip(pairs.sentences2, pairs.spans2)] == [
        "bank", "bank", "boards", "cell", "carries", "cat"]
    assert pairs.labels.tolist() == [True, False, False, False, False, True]
    assert [s[a:b] for s, (a, b) in zip(pairs.sentences1, pairs.spans1)][:3] == ["bank", "bank", "board"]


@pytest.mark.parametrize("line, message", [
    ("bank\tN\t1-1\tonly four fields", r"train\.data\.txt, line 2: expected 5 tab-separated fields"),
    ("bank\tN\t1_1\tA bank .\tA bank .", r"line 2: expected token indices like '2-5', got '1_1'"),
    ("bank\tN\t9-1\tA bank .\tA bank .", r"line 2: token index 9 is out of range; the sentence has 3 tokens"),
])
def test_wic_reader_names_the_bad_line(tmp_path, line, message):
    (tmp_path / "train.data.txt").write_text("cat\tN\t1-1\tThe cat .\tA cat .\n" + line + "\n")
    (tmp_path / "train.gold.txt").write_text("T\nF\n")
    with pytest.raises(compare.UsageError, match=message):
        compare.read_wic(tmp_path, "train")


def test_best_threshold():
    cos = np.array([0.2, 0.9, 0.5, 0.7, 0.7, 0.1])
    same = np.array([False, True, False, True, False, False])
    threshold, acc = compare.best_threshold(cos, same)
    assert (threshold, acc) == (pytest.approx(0.6), pytest.approx(5 / 6))
    assert compare.accuracy(cos, same, threshold) == pytest.approx(5 / 6)
    # All cosines equal (a static table): the only choices are "all same" or "all different".
    threshold, acc = compare.best_threshold(np.ones(4), np.array([True, True, True, False]))
    assert (threshold, acc) == (1.0, 0.75)
    threshold, acc = compare.best_threshold(np.ones(4), np.array([False, False, True, False]))
    assert threshold > 1.0 and acc == 0.75


def test_wic_small(tmp_path):
    write_wic(tmp_path / "wic", "train", TRAIN)
    write_wic(tmp_path / "wic", "dev", TRAIN[:2] + TRAIN[3:5])
    text = run(tmp_path, "--wic", tmp_path / "wic")
    result = run(tmp_path, "--wic", tmp_path / "wic", "--json")
    assert text.returncode == 0 and result.returncode == 0, text.stderr + result.stderr
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
