"""minibert.wic: reading WiC folders (every bad file or line named as file:line), threshold search, scoring."""

import numpy as np
import pytest

from minibert.wic import (WicError, accuracy, best_threshold, evaluate, pair_cosines, read_splits, read_wic,
                          score)

TRAIN = [
    ("bank", "N", "6-1", "We had a picnic on the bank of the river .", "The bank of the stream flooded .", "T"),
    ("bank", "N", "6-1", "We had a picnic on the bank of the river .", "The bank raised its rates .", "F"),
    ("board", "N", "2-3", "Room and board .", "He nailed three boards across the windows .", "F"),
    ("cell", "N", "1-5", "The cell divides .", "The prisoner slept in his cell .", "F"),
    ("carry", "V", "2-1", "You must carry your camping gear .", "Sound carries well over water .", "F"),
    ("cat", "N", "1-1", "The cat sat on the mat .", "The cat chased the mouse .", "T"),
]


def write_wic(folder, split, rows):
    """rows: (word, PoS, 'i-j', sentence1, sentence2, 'T'|'F')."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{split}.data.txt").write_text("".join("\t".join(r[:5]) + "\n" for r in rows))
    (folder / f"{split}.gold.txt").write_text("".join(r[5] + "\n" for r in rows))


def test_wic_reader_locates_the_word_by_its_token_index(tmp_path):
    write_wic(tmp_path, "train", TRAIN)
    pairs = read_wic(tmp_path, "train")
    assert [s[a:b] for s, (a, b) in zip(pairs.sentences2, pairs.spans2)] == [
        "bank", "bank", "boards", "cell", "carries", "cat"]
    assert pairs.labels.tolist() == [True, False, False, False, False, True]
    assert [s[a:b] for s, (a, b) in zip(pairs.sentences1, pairs.spans1)][:3] == ["bank", "bank", "board"]
    assert (pairs.split, pairs.source, pairs.lines) == ("train", tmp_path / "train.data.txt", (1, 2, 3, 4, 5, 6))


def test_limit_reads_only_the_first_pairs(tmp_path):
    write_wic(tmp_path, "train", TRAIN)
    assert len(read_wic(tmp_path, "train", limit=2).labels) == 2


@pytest.mark.parametrize("line, message", [
    ("bank\tN\t1-1\tonly four fields", r"train\.data\.txt:2: expected 5 tab-separated fields .*got 4$"),
    ("bank\tN\t1_1\tA bank .\tA bank .", r"train\.data\.txt:2: expected token indices like '2-5', got '1_1'$"),
    ("bank\tN\t9-1\tA bank .\tA bank .", r"train\.data\.txt:2: token index 9 is out of range; the sentence has 3 "
                                         r"tokens$"),
    ("", r"train\.data\.txt:2: expected 5 tab-separated fields .*got 1$"),
])
def test_wic_reader_names_the_bad_line(tmp_path, line, message):
    (tmp_path / "train.data.txt").write_text("cat\tN\t1-1\tThe cat .\tA cat .\n" + line + "\n")
    (tmp_path / "train.gold.txt").write_text("T\nF\n")
    with pytest.raises(WicError, match=message):
        read_wic(tmp_path, "train")


def test_not_utf8_names_file_line_and_byte(tmp_path):
    (tmp_path / "train.data.txt").write_bytes(b"cat\tN\t1-1\tThe cat .\tA cat .\n"
                                              b"caf\xe9\tN\t0-0\tcaf\xe9 .\tcaf\xe9 !\n")
    (tmp_path / "train.gold.txt").write_text("T\nF\n")
    with pytest.raises(WicError, match=r"train\.data\.txt:2: not UTF-8 text \(byte 0xe9 at column 4\); "
                                       r"expected UTF-8$"):
        read_wic(tmp_path, "train")


def test_gold_file_problems_are_named(tmp_path):
    write_wic(tmp_path, "train", TRAIN[:2])
    (tmp_path / "train.gold.txt").write_text("T\nmaybe\n")
    with pytest.raises(WicError, match=r"train\.gold\.txt:2: expected T or F, got 'maybe'$"):
        read_wic(tmp_path, "train")
    (tmp_path / "train.gold.txt").write_text("T\n")
    with pytest.raises(WicError, match=r"train\.gold\.txt: 1 labels for 2 pairs in train\.data\.txt"):
        read_wic(tmp_path, "train")


def test_windows_line_ends_byte_order_mark_and_unicode_separators(tmp_path):
    """Only \\n ends a line: \\r\\n files and a leading BOM read the same; U+2028 inside a sentence stays in it."""
    rows = [("cat", "N", "1-1", "The cat\u2028sat .", "A cat .", "T"), TRAIN[5]]
    (tmp_path / "train.data.txt").write_bytes(
        ("\ufeff" + "".join("\t".join(r[:5]) + "\r\n" for r in rows)).encode("utf-8"))
    (tmp_path / "train.gold.txt").write_bytes(b"T\r\nT\r\n")
    pairs = read_wic(tmp_path, "train")
    assert pairs.sentences1[0] == "The cat\u2028sat ." and pairs.sentences2[1] == "The cat chased the mouse ."
    assert pairs.labels.tolist() == [True, True]


def test_empty_data_file(tmp_path):
    (tmp_path / "train.data.txt").write_text("")
    (tmp_path / "train.gold.txt").write_text("")
    with pytest.raises(WicError, match=r"train\.data\.txt: no pairs"):
        read_wic(tmp_path, "train")


def test_held_out_split_without_gold_is_a_clear_error(tmp_path):
    write_wic(tmp_path, "train", TRAIN)
    (tmp_path / "test.data.txt").write_text("\t".join(TRAIN[0][:5]) + "\n")
    with pytest.raises(WicError, match=r"test\.gold\.txt: no such file; test\.data\.txt has no labels beside it "
                                       r"\(WiC's test labels are held out"):
        read_splits(tmp_path, "test")


def test_missing_split_lists_the_splits_found(tmp_path):
    write_wic(tmp_path, "train", TRAIN)
    write_wic(tmp_path / "dev", "dev", TRAIN)
    with pytest.raises(WicError, match=r"no test split; expected test\.data\.txt and test\.gold\.txt there or in "
                                       r"test/ \(splits found: dev, train\)"):
        read_splits(tmp_path, "test")
    with pytest.raises(WicError, match=r"nowhere: no such folder; expected a WiC folder"):
        read_splits(tmp_path / "nowhere", "dev")
    with pytest.raises(WicError, match=r"train\.data\.txt: not a folder; expected a WiC folder"):
        read_splits(tmp_path / "train.data.txt", "dev")


@pytest.mark.parametrize("split", ["../train", "", "dev/dev", "/etc/passwd"])
def test_a_split_is_a_name_not_a_path(tmp_path, split):
    write_wic(tmp_path, "train", TRAIN)
    with pytest.raises(WicError, match="expected a name such as train, dev or test"):
        read_splits(tmp_path, split)


def test_the_wic_package_layout_one_folder_per_split(tmp_path):
    """The WiC package ships train/train.data.txt, dev/dev.data.txt, ...: read as well as the flat layout."""
    write_wic(tmp_path / "train", "train", TRAIN)
    write_wic(tmp_path / "dev", "dev", TRAIN[:3])
    train, dev = read_splits(tmp_path, "dev")
    assert (len(train.labels), len(dev.labels), dev.split) == (6, 3, "dev")
    assert dev.source == tmp_path / "dev" / "dev.data.txt"
    same_train, itself = read_splits(tmp_path, "train")
    assert itself is same_train


def test_best_threshold():
    cos = np.array([0.2, 0.9, 0.5, 0.7, 0.7, 0.1])
    same = np.array([False, True, False, True, False, False])
    threshold, acc = best_threshold(cos, same)
    assert (threshold, acc) == (pytest.approx(0.6), pytest.approx(5 / 6))
    assert accuracy(cos, same, threshold) == pytest.approx(5 / 6)
    # All cosines equal (a static table): the only choices are "all same" or "all different".
    threshold, acc = best_threshold(np.ones(4), np.array([True, True, True, False]))
    assert (threshold, acc) == (1.0, 0.75)
    threshold, acc = best_threshold(np.ones(4), np.array([False, False, True, False]))
    assert threshold > 1.0 and acc == 0.75


def test_score_chooses_threshold_and_best_layer_on_train_only():
    train_labels = np.array([True, True, False, False])
    train = np.array([[0.9, 0.5], [0.8, 0.5], [0.1, 0.5], [0.2, 0.5]])  # (M, L + 1): layer 0 separates train
    labels = np.array([True, False])
    evaluated = np.array([[0.1, 0.9], [0.9, 0.1]])  # on this split layer 1 would be right, layer 0 wrong
    result = score(train, train_labels, evaluated, labels, "dev")
    assert result.best_layer == 0 and result.best.accuracy == 0.0  # chosen on train, whatever dev says
    assert [row.name for row in result.rows] == ["static", "layer 0", "layer 1"]
    assert result.static.predicts_one_class and result.static.accuracy == 0.5
    assert result.to_json()["rows"][1] == {"name": "layer 0", "layer": 0, "threshold": pytest.approx(0.5),
                                           "train_accuracy": 1.0, "accuracy": 0.0, "predicts_one_class": False}
    assert (result.pairs, result.train_pairs, result.same_sense_share) == (2, 4, 0.5)


def test_evaluate_with_the_odd_model(odd, odd_tokenizer, tmp_path):
    write_wic(tmp_path, "train", TRAIN)
    write_wic(tmp_path, "dev", TRAIN[:4])
    train, dev = read_splits(tmp_path, "dev")
    result = evaluate(odd, odd_tokenizer, train, dev)
    assert len(result.rows) == 1 + odd.config.num_hidden_layers + 1
    cosines = pair_cosines(odd, odd_tokenizer, dev)
    assert cosines.shape == (4, odd.config.num_hidden_layers + 1) and np.all(np.abs(cosines) <= 1 + 1e-9)
    assert [row.accuracy for row in result.rows[1:]] == [
        accuracy(cosines[:, row.layer], dev.labels, row.threshold) for row in result.rows[1:]]


def test_a_target_word_without_word_pieces_is_named_by_line(odd, odd_tokenizer, tmp_path):
    """A target the tokenizer drops (a control character) cannot be scored: say which line, not a traceback."""
    write_wic(tmp_path, "train", TRAIN[:2] + [("x", "N", "1-0", "The \x07 sat .", "A cat .", "F")])
    train, _ = read_splits(tmp_path, "train")
    with pytest.raises(WicError, match=r"train\.data\.txt:3: word '\\x07' .* has no word pieces"):
        pair_cosines(odd, odd_tokenizer, train)
