"""minibert.io: one JSON reader, one line reader (with properties checked by hypothesis), streamed .npy files and
the folder lock."""

from __future__ import annotations

import io
import json
import os

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from minibert import CheckpointError, InputError, OutputError
from minibert.io import (count_lines, folder_lock, line_text, LineError, parse_json, read_json, read_texts,
                         write_npy)


# ---- JSON ------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("raw, message", [
    (b'{"a": "caf\xe9"}', r"not UTF-8 \(byte 0xe9 at offset 10\)"),
    (b'{"a": 1', r"not valid JSON \(Expecting ',' delimiter at line 1 column 8\)"),
    (b"[" * 100_000, r"not valid JSON \(nested too deeply to parse\)"),
    (b'{"a": ' + b"9" * 5000 + b"}", r"not valid JSON \(Exceeds the limit"),
])
def test_json_that_breaks_the_parser(tmp_path, raw, message):
    path = tmp_path / "x.json"
    path.write_bytes(raw)
    with pytest.raises(InputError, match=rf"^{path}: {message}"):
        read_json(path)
    with pytest.raises(CheckpointError, match=rf"^{path}: {message}"):  # the caller picks the class
        read_json(path, CheckpointError)


def test_json_missing_file(tmp_path):
    with pytest.raises(InputError, match=r"nope\.json: not found$"):
        read_json(tmp_path / "nope.json")
    assert read_json(tmp_path / "nope.json", missing={}) == {}
    assert parse_json(b'{"a": [1, 2]}', "label") == {"a": [1, 2]}


# ---- lines -----------------------------------------------------------------------------------------------------

def texts_of(data: bytes, json_lines: bool) -> list:
    return list(read_texts(io.BytesIO(data), "in", json_lines))


def test_one_rule_for_blank_lines():
    for data, json_lines in ((b"a\n\nb\n", False), (b"a\n  \t\nb\n", False), (b'{"text": "a"}\n\n', True)):
        with pytest.raises(InputError, match=r"^in:2: blank line; expected "):
            texts_of(data, json_lines)
    assert texts_of(b'{"text": ""}\n', True) == [""]  # an empty text on purpose


def test_lone_surrogate_names_the_line():
    with pytest.raises(InputError, match=r"^in:2: 'text' holds a lone surrogate \(\\ud800 at character 3\); "
                                         r"expected Unicode text$"):
        texts_of(b'{"text": "ok"}\n{"text": "ab\\ud800"}\n', True)
    assert texts_of(b'{"text": "\\ud83d\\ude00"}\n', True) == ["\U0001F600"]  # a surrogate pair is a character


def test_hostile_json_lines_are_line_errors():
    for raw in (b"[" * 100_000, b'{"text": ' + b"9" * 5000 + b"}"):
        with pytest.raises(LineError, match="^not JSON"):
            line_text(raw, json_lines=True)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.text(), max_size=20), st.sampled_from(["\n", "\r\n"]))
def test_json_lines_round_trip(texts, ending):
    data = "".join(json.dumps({"text": t, "id": i}) + ending for i, t in enumerate(texts)).encode()
    assert texts_of(data, True) == texts


@settings(max_examples=200, deadline=None)
@given(st.lists(st.text(st.characters(codec="utf-8", exclude_characters="\n"), min_size=1).filter(
    lambda t: t.strip() and not t.endswith("\r") and not t.startswith("\ufeff")), max_size=20))
def test_text_lines_round_trip(texts):
    assert texts_of("".join(t + "\n" for t in texts).encode(), False) == texts


@settings(max_examples=300, deadline=None)
@given(st.lists(st.binary(max_size=40).map(lambda b: b.replace(b"\n", b"")), max_size=10), st.booleans())
def test_any_bytes_give_texts_or_an_error_naming_the_line(lines, json_lines):
    data = b"".join(line + b"\n" for line in lines)
    try:
        texts = texts_of(data, json_lines)
    except InputError as e:
        number = int(str(e).split(":")[1])
        assert 1 <= number <= len(lines)
        with pytest.raises(LineError):
            line_text(lines[number - 1], json_lines=json_lines, first=number == 1)
    else:
        assert len(texts) == len(lines) and all(isinstance(t, str) for t in texts)
        for t in texts:
            t.encode("utf-8")  # every text is real Unicode


def test_count_lines(tmp_path):
    for data, n in ((b"", 0), (b"a", 1), (b"a\n", 1), (b"a\nb", 2), (b"\n\n", 2)):
        path = tmp_path / "f"
        path.write_bytes(data)
        with open(path, "rb") as f:
            assert count_lines(f, os.fstat(f.fileno())) == n and f.tell() == 0


# ---- .npy output and the lock ------------------------------------------------------------------------------------

def test_streamed_npy_is_a_normal_npy(tmp_path):
    rng = np.random.default_rng(0)
    blocks = [rng.standard_normal((n, 7)).astype(np.float32) for n in (3, 0, 5)]
    assert write_npy(tmp_path / "v.npy", iter(blocks), 7) == 8
    np.testing.assert_array_equal(np.load(tmp_path / "v.npy"), np.concatenate(blocks))
    assert np.load(tmp_path / "v.npy", mmap_mode="r").shape == (8, 7)
    assert write_npy(tmp_path / "e.npy", [], 7) == 0 and np.load(tmp_path / "e.npy").shape == (0, 7)
    with pytest.raises(InputError, match=r"a block of shape \(2, 3\); expected \(n, 7\)"):
        write_npy(tmp_path / "w.npy", [np.zeros((2, 3))], 7)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["e.npy", "v.npy"]


def test_folder_lock_names_the_holder_and_is_released(tmp_path):
    with folder_lock(tmp_path):
        with pytest.raises(OutputError, match=rf"^{tmp_path}: in use by PID {os.getpid()} on "):
            with folder_lock(tmp_path):
                pass
    assert not (tmp_path / ".lock").exists()
    (tmp_path / ".lock").write_text("PID 999999999 on a crashed run")  # a dead run's file, nobody holds it
    with folder_lock(tmp_path):
        assert (tmp_path / ".lock").read_text().startswith(f"PID {os.getpid()}")
