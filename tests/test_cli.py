"""The `minibert` command line: encode files (text or JSON lines, stdin) into .npy files, info, and errors that
name the file and line."""

import json
import re
import subprocess
import sys
import warnings

import numpy as np
import pytest

from conftest import ODD_MODEL, REPO, assert_batch_invariant
from minibert import SentenceEncoder, blas, cli

ODD = str(ODD_MODEL)
LINES = ["The cat sat on the mat.", "", "  spaced  ", "Crème brûlée, 東京", "a much longer line " * 20]
TEXT_LINES = [t for t in LINES if t.strip()]  # a blank line of a text file is an error; in JSON lines "" is a text


@pytest.fixture(scope="module")
def odd_encoder():
    return SentenceEncoder.from_pretrained(ODD_MODEL)


def encode(tmp_path, content: bytes, name="in.txt", *extra):
    source = tmp_path / name
    source.write_bytes(content)
    out = tmp_path / "out.npy"
    status = cli.main(["encode", "--model", ODD, "--input", str(source), "--output", str(out), *extra])
    return status, out


def leftovers(tmp_path):
    return sorted(p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp"))


def test_encode_text_lines(tmp_path, odd_encoder, capsys):
    status, out = encode(tmp_path, "\n".join(TEXT_LINES).encode() + b"\n")
    assert status == 0 and f"{out}: 4 x 80 float32" in capsys.readouterr().err
    array = np.load(out)
    assert array.shape == (4, 80) and array.dtype == np.float32
    np.testing.assert_allclose(array, odd_encoder.encode(TEXT_LINES), atol=1e-6)
    assert leftovers(tmp_path) == []


def test_line_endings_bom_and_no_final_newline(tmp_path, odd_encoder):
    status, out = encode(tmp_path, "\ufeffone\r\ntwo\u2028still two\n\u3000x\nlast".encode())
    assert status == 0
    np.testing.assert_allclose(np.load(out), odd_encoder.encode(["one", "two\u2028still two", "\u3000x", "last"]),
                               atol=1e-6)


def test_encode_json_lines_normalized(tmp_path, odd_encoder):
    records = [{"text": t, "id": i} for i, t in enumerate(LINES)]
    content = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records).encode()
    status, out = encode(tmp_path, content, "in.jsonl", "--normalize", "--batch-size", "2")
    assert status == 0
    np.testing.assert_allclose(np.load(out), odd_encoder.encode(LINES, normalize_embeddings=True), atol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(np.load(out), axis=1), 1, atol=1e-6)
    status, out2 = encode(tmp_path, content, "records.txt", "--format", "jsonl")
    np.testing.assert_allclose(np.load(out2), odd_encoder.encode(LINES), atol=1e-6)


def test_encode_streams_in_chunks(tmp_path, odd_encoder, monkeypatch):
    seen = []
    original = SentenceEncoder._encode_texts

    def spy(self, texts, *args, **kwargs):
        seen.append(len(texts))
        return original(self, texts, *args, **kwargs)

    monkeypatch.setattr(cli, "ENCODE_CHUNK", 2)
    monkeypatch.setattr(SentenceEncoder, "_encode_texts", spy)
    status, out = encode(tmp_path, "\n".join(LINES[:1] + TEXT_LINES).encode())
    assert status == 0 and seen == [2, 2, 1]
    assert_batch_invariant(np.load(out), odd_encoder.encode(LINES[:1] + TEXT_LINES))


def test_empty_input(tmp_path):
    status, out = encode(tmp_path, b"")
    assert status == 0 and np.load(out).shape == (0, 80)


@pytest.mark.parametrize("name, content, message", [
    # One wording for every command (minibert.io.line_text): the same as encode-corpus's manifests.
    ("in.txt", b"fine\nbad \xff byte\n", r"in\.txt:2: not UTF-8 \(byte 0xff at column 5\)$"),
    ("in.jsonl", b'{"text": "a"}\n{"text": "b"\n', r"in\.jsonl:2: not JSON \(Expecting ',' delimiter at "
                                                    r"column 13\)$"),
    ("in.jsonl", b'{"text": "a"}\n{"txt": "b"}\n', r"in\.jsonl:2: no 'text' field; expected a JSON object"),
    ("in.jsonl", b'{"text": "a"}\n["a"]\n', r"in\.jsonl:2: no 'text' field"),
    ("in.jsonl", b'{"text": 3}\n', r"in\.jsonl:1: 'text' is int; expected a string"),
    ("in.jsonl", b'{"text": "a"}\n\n{"text": "b"}\n', r"in\.jsonl:2: blank line; expected a JSON object"),
    ("in.txt", b"one\n \t\nthree\n", r"in\.txt:2: blank line; expected one text per line"),
    ("in.jsonl", b'{"text": "a"}\n{"text": "\\ud800"}\n', r"in\.jsonl:2: 'text' holds a lone surrogate "
                                                           r"\(\\ud800 at character 1\); expected Unicode text"),
])
def test_bad_input_files(tmp_path, capsys, name, content, message):
    (tmp_path / "out.npy").write_bytes(b"previous")
    status, out = encode(tmp_path, content, name)
    err = capsys.readouterr().err
    assert status == 1 and err.startswith("minibert encode: error: ") and err.count("\n") == 1
    assert re.search(message, err.rstrip("\n")), err
    assert out.read_bytes() == b"previous" and leftovers(tmp_path) == []  # nothing half-written


def test_bad_paths(tmp_path, capsys):
    assert cli.main(["encode", "--model", ODD, "--input", str(tmp_path / "missing.txt"),
                     "--output", str(tmp_path / "o.npy")]) == 1
    assert "--input " + str(tmp_path / "missing.txt") + ": No such file or directory" in capsys.readouterr().err
    assert cli.main(["encode", "--input", "-", "--output", str(tmp_path / "no" / "o.npy")]) == 1
    assert f"folder {tmp_path / 'no'} does not exist" in capsys.readouterr().err
    assert cli.main(["encode", "--input", "-", "--output", str(tmp_path), "--batch-size", "1"]) == 1
    assert "is a folder" in capsys.readouterr().err
    source = tmp_path / "in.txt"
    source.write_text("x\n")
    assert cli.main(["encode", "--input", str(source), "--output", str(tmp_path / "o.npy"), "--batch-size",
                     "0"]) == 1
    assert "--batch-size 0: expected a positive integer" in capsys.readouterr().err


def test_progress_bar(tmp_path, capsys):
    encode(tmp_path, b"one\ntwo\nthree\n", "in.txt", "--progress")
    err = capsys.readouterr().err
    assert "Encoding: 100%" in err and "3/3" in err
    encode(tmp_path, b"one\ntwo\nthree\n", "in.txt", "--no-progress")
    assert "Encoding" not in capsys.readouterr().err


def test_stdin_through_the_module(tmp_path, odd_encoder):
    out = tmp_path / "out.npy"
    done = subprocess.run([sys.executable, "-m", "minibert.cli", "encode", "--model", ODD, "--output", str(out)],
                          input="\n".join(TEXT_LINES).encode(), capture_output=True)
    assert done.returncode == 0, done.stderr.decode()
    assert "Encoding" not in done.stderr.decode()  # not a terminal: no bar
    np.testing.assert_allclose(np.load(out), odd_encoder.encode(TEXT_LINES), atol=1e-6)


def test_info(capsys):
    assert cli.main(["info", ODD]) == 0
    text = capsys.readouterr().out
    assert "pooling" in text and "mean (plain BERT folder without sentence-transformers files" in text
    assert re.search(r"^parameters +357,631$", text, re.M) and re.search(r"^  hidden_size +80$", text, re.M)
    assert cli.main(["info", ODD, "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["config"]["hidden_size"] == 80 and info["embedding_dimension"] == 80
    assert info["pooling"] == ["mean"] and info["normalize"] is False and info["max_seq_length"] == 256
    assert info["parameters"] == 357_631 and info["tokenizer_vocab_size"] == 3000
    assert info["blas"] == blas.describe() and "minibert threads:" in info["blas"]  # which kernels run, and threads


def test_a_kernel_warning_is_one_line_of_the_command(monkeypatch, tmp_path, capsys):
    """About the environment, not a line of code: "minibert encode: warning: ...", no file:line, no source."""
    monkeypatch.setattr(blas, "pinned_kernels", lambda: "OPENBLAS_CORETYPE=Haswell is set and ...")
    monkeypatch.setattr(blas, "_PINNED_WARNED", False)
    source = tmp_path / "in.txt"
    source.write_text("one line\n")
    with warnings.catch_warnings():
        warnings.simplefilter("default", blas.KernelWarning)  # pyproject.toml ignores it for the other tests
        assert cli.main(["encode", "--model", ODD, "--input", str(source), "--output", str(tmp_path / "o.npy")]) == 0
    err = capsys.readouterr().err
    assert "minibert encode: warning: OPENBLAS_CORETYPE=Haswell is set and ...\n" in err and ".py:" not in err


def test_info_default_model(capsys):
    assert cli.main(["info"]) == 0
    text = capsys.readouterr().out
    assert "sentence-transformers/all-MiniLM-L6-v2" in text and "normalize" in text and "True" in text


def test_errors_are_one_line(tmp_path, capsys):
    assert cli.main(["info", str(tmp_path / "nope")]) == 1
    assert capsys.readouterr().err == f"minibert info: error: {tmp_path / 'nope'}: no such folder (and not a Hub " \
                                      "repo id of the form 'org/name')\n"


def test_dispatcher():
    parser = cli.build_parser()
    assert {"encode", "info"} <= set(parser._subparsers._group_actions[0].choices)
    with pytest.raises(SystemExit) as e:
        cli.main([])
    assert e.value.code == 2


def test_short_model_name_is_not_a_repo_id(capsys, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # the Hub is asked first (legacy ids such as bert-base-uncased)
    assert cli.main(["info", "all-MiniLM-L6-v2"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("minibert info: error: all-MiniLM-L6-v2: no such folder, and not a Hub repo id: an id has "
                          "the form 'org/name' (for this one, perhaps sentence-transformers/all-MiniLM-L6-v2); "
                          "asked as a legacy id without an org, the Hub lookup said: all-MiniLM-L6-v2: not in the "
                          "Hugging Face cache")
    assert err.count("\n") == 1


@pytest.mark.parametrize("name", ["x" * 500, "org/" + "x" * 500])
def test_very_long_model_name(capsys, name):
    assert cli.main(["info", name]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and len(err) < 250 and f"... ({len(name)} characters)" in err


def test_info_says_what_the_tokenizer_does_with_case(capsys):
    # all-MiniLM-L6-v2's sentence_bert_config.json says do_lower_case false; its tokenizer lower-cases anyway.
    assert cli.main(["info", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["do_lower_case"] is True


def test_help_states_the_line_rule_and_the_exit_status(capsys):
    for command in ([], ["encode"], ["encode-corpus"], ["explain"]):
        with pytest.raises(SystemExit) as e:
            cli.main([*command, "--help"])
        assert e.value.code == 0
        text = " ".join(capsys.readouterr().out.split())
        assert "exit status: 0 done, 1 bad input or a failure (one line on stderr), 2 bad usage" in text
        if command in (["encode"], ["encode-corpus"]):
            assert "a blank line is an error" in text


def test_explain_runs_from_another_programs_argv(capsys):
    assert cli.main(["explain", "The cat sat.", "--word", "dog"], prog="compare.py") == 1
    assert capsys.readouterr().err.startswith("compare.py explain: error: word 'dog' not found")
    assert cli.run_command("explain", ["The cat sat.", "--word", "dog"], prog="compare.py explain") == 1
    assert capsys.readouterr().err.startswith("compare.py explain: error: word 'dog' not found")
    with pytest.raises(SystemExit) as e:
        cli.main(["explain", "--word"])  # a usage error: argparse's message, status 2
    assert e.value.code == 2


def test_eval_stsb_without_sentence_transformers(tmp_path):
    (tmp_path / "sts-dev.csv").write_text("g\tf\t2012\t1\t5.0\tA cat.\tA cat.\n")
    code = ("import runpy, sys; sys.modules['sentence_transformers'] = None; "
            f"sys.argv = ['eval_stsb.py', {str(tmp_path)!r}, '--sentence-transformers']; "
            f"runpy.run_path({str(REPO / 'scripts' / 'eval_stsb.py')!r}, run_name='__main__')")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 1 and done.stderr == (
        "eval_stsb: error: --sentence-transformers needs the sentence-transformers package, which is not installed: "
        "pip install sentence-transformers (in a clone of minibert: pip install -e '.[reference]')\n")
