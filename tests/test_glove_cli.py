"""glove: Spearman / eval-wordsim against independent computations, the real word-similarity files, the CLI."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

import glove
from glove.__main__ import main
from glove.wordsim import average_ranks, read_pairs

REPO = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("MINIBERT_SHARED", REPO.parent / "shared"))
WORDSIM = SHARED / "data" / "wordsim"


def test_average_ranks_by_hand():
    assert average_ranks(np.array([10, 20, 20, 5, 20])).tolist() == [2, 4, 4, 1, 4]
    assert average_ranks(np.array([3.0, 1.0, 2.0])).tolist() == [3, 1, 2]


def test_spearman_without_ties_is_the_textbook_formula():
    x = np.array([1.0, 2.0, 3.0, 4.0, 5.0, 6.0])
    y = np.array([2.0, 1.0, 4.0, 3.0, 6.0, 5.0])
    d2 = ((np.argsort(np.argsort(x)) - np.argsort(np.argsort(y))) ** 2).sum()  # = 6
    assert glove.spearman(x, y) == pytest.approx(1 - 6 * d2 / (6 * (36 - 1)))  # 1 - 36/210
    assert glove.spearman(x, -y) == pytest.approx(-(1 - 36 / 210))


def test_spearman_with_ties_by_hand():
    # ranks x: 1, 2.5, 2.5, 4 ; ranks y: 1, 2, 3, 4 -> Pearson of the ranks = 4.5 / sqrt(4.5 * 5)
    assert glove.spearman([1, 2, 2, 3], [10, 20, 30, 40]) == pytest.approx(4.5 / np.sqrt(4.5 * 5))
    with pytest.raises(ValueError, match="constant"):
        glove.spearman([1, 1, 1], [1, 2, 3])


@pytest.fixture
def table(tmp_path) -> Path:
    """Four 2-d words at known angles, so every cosine is known in closed form."""
    angles = {"cat": 0, "dog": 10, "car": 50, "sky": 90}
    src = tmp_path / "t.txt"
    src.write_text("".join(f"{w} {np.cos(np.radians(a)):.6f} {np.sin(np.radians(a)):.6f}\n" for w, a in angles.items()))
    return src


def test_eval_wordsim_matches_an_independent_spearman(tmp_path, table, capsys):
    pairs = tmp_path / "pairs.txt"
    # CRLF and capitals as in EN-WS-353-ALL; one out-of-vocabulary pair.
    pairs.write_bytes(b"Cat\tdog\t9.5\r\ncat\tcar\t3\r\ndog\tsky\t4\r\ncat\tsky\t1\r\ncat\tunicorn\t5\r\ncar\tsky\t6\r\n")
    # cosines = cos(angle difference): 10, 50, 80, 90, 40 degrees -> model ranks 5, 3, 2, 1, 4
    human_ranks, model_ranks = np.array([5, 2, 3, 1, 4]), np.array([5, 3, 2, 1, 4])
    n = 5
    expected = 1 - 6 * ((human_ranks - model_ranks) ** 2).sum() / (n * (n * n - 1))  # = 0.9
    g = glove.load(table, cache_dir=tmp_path / "cache")
    with pytest.warns(UserWarning, match=r"only 5 of 6 pairs \(83%\) have both words in the table"):
        result = glove.evaluate_wordsim(g, pairs)
    assert result.spearman == pytest.approx(expected) == pytest.approx(0.9)
    assert (result.pairs, result.skipped, result.oov) == (5, 1, ["unicorn"])
    assert main(["eval-wordsim", str(pairs), "-t", str(table), "--cache-dir", str(tmp_path / "cache"), "-v"]) == 0
    out = capsys.readouterr().out
    assert "0.9000" in out and "unicorn" in out and "     5       1    83.3%" in out
    with pytest.warns(UserWarning, match="only 4 of 6 pairs"):
        assert glove.evaluate_wordsim(g, pairs, lowercase=False).skipped == 2


def test_wordsim_file_errors(tmp_path):
    bad = tmp_path / "bad.txt"
    bad.write_text("word1\tword2\tscore\na\tb\t1\nc\td\tlots\n")
    with pytest.raises(glove.GloVeFormatError, match=r"bad.txt, line 3: score 'lots' is not a number"):
        read_pairs(bad)
    bad.write_text("a\tb\n")
    with pytest.raises(glove.GloVeFormatError, match="line 1: expected 'word1 word2 score', found 2 fields"):
        read_pairs(bad)


@pytest.mark.skipif(not WORDSIM.is_dir(), reason=f"word-similarity data not found at {WORDSIM} (set MINIBERT_SHARED)")
@pytest.mark.parametrize("name, count", [("EN-WS-353-ALL.txt", 353), ("EN-SIMLEX-999.txt", 999), ("EN-MEN-TR-3k.txt", 3000)])
def test_real_wordsim_files_parse(name, count):
    pairs = read_pairs(WORDSIM / name)
    assert len(pairs) == count
    assert all("\r" not in w1 + w2 for w1, w2, _, _ in pairs)
    if name == "EN-WS-353-ALL.txt":
        assert any(w1 != w1.lower() or w2 != w2.lower() for w1, w2, _, _ in pairs)


def test_cli_convert_info_neighbors_analogy(tmp_path, table, capsys):
    dest = tmp_path / "converted"
    assert main(["convert", str(table), str(dest)]) == 0
    assert "4 words x 2 dims" in capsys.readouterr().out
    assert main(["info", str(dest)]) == 0
    out = capsys.readouterr().out
    assert "4 words x 2 dims" in out and str(table) in out
    assert main(["neighbors", "cat", "-n", "2", "-t", str(dest)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[1] for line in lines] == ["dog", "car"]
    assert float(lines[0].split()[0]) == pytest.approx(np.cos(np.radians(10)), abs=1e-4)
    assert main(["analogy", "cat", "dog", "car", "-n", "1", "-t", str(dest)]) == 0
    assert capsys.readouterr().out.splitlines()[1].split()[1] == "sky"  # car + (dog - cat) points toward sky


def test_cli_errors_are_one_line(tmp_path, table, capsys):
    assert main(["neighbors", "Cat", "-t", str(table), "--cache-dir", str(tmp_path / "c")]) == 1
    assert capsys.readouterr().err.strip() == "error: 'Cat' is not in the vocabulary (4 words); the table has 'cat' (it is case-sensitive)"
    assert main(["info", str(tmp_path / "missing.txt")]) == 1
    assert "no such file or folder" in capsys.readouterr().err
