"""Properties of every file parser (hypothesis): safetensors header and layout, shard names, config.json,
vocab.txt and tokenizer_config.json, modules.json and the pooling config. For random and adversarial input the
only outcomes allowed are minibert's own error or a correct result: no other exception, nothing written to the
model folder, and (checked in a child process under an address-space limit) bounded memory and time."""

from __future__ import annotations

import json
import os
import posixpath
import resource
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from minibert import BertConfig, CheckpointError, ConfigError, InputError, Tokenizer
from minibert.encoder import POOLING_KEYS, POOLING_MODES, read_layout
from minibert.tokenizer import read_vocab
from minibert.weights import STORED_DTYPES, checked_relative_path, read_safetensors
from wild import BASE

PROPERTY = settings(max_examples=60, deadline=10_000, suppress_health_check=[HealthCheck.function_scoped_fixture],
                    derandomize=True)

# JSON values a hostile file may hold where a number, string or object is expected.
NUMBERS = (st.integers() | st.sampled_from([0, -1, 1, 2**31 - 1, 2**31, 2**63, 10**400, -(10**400)])
           | st.floats(allow_nan=True, allow_infinity=True))
SCALARS = st.none() | st.booleans() | NUMBERS | st.text(max_size=12)
JSON_VALUES = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=3)
                           | st.dictionaries(st.text(max_size=8), inner, max_size=3), max_leaves=8)
DEEP = st.integers(1, 900).map(lambda depth: json.loads("[" * depth + "]" * depth))
HOSTILE_PATHS = st.sampled_from(["", ".", "..", "../x", "/etc", "C:\\x", "a/../../b", "a\0b", "\\\\server\\share",
                                 "a//b", "./a", "a/", "1_Pooling", "0_BERT", "sub/dir"]) | st.text(
                                     alphabet="./\\:a\0 ", max_size=8)


def snapshot(folder: Path) -> dict:
    """Every file under `folder` with its bytes: to check that reading wrote nothing."""
    return {p: p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


# ---------------------------------------------------------------------------------------------------------------
# safetensors: header entries and byte layout
# ---------------------------------------------------------------------------------------------------------------

def safetensors_file(path: Path, header: object, payload: bytes) -> Path:
    raw = json.dumps(header).encode()
    path.write_bytes(len(raw).to_bytes(8, "little") + raw + payload)
    return path


@PROPERTY
@given(spans=st.lists(st.tuples(st.integers(0, 40), st.integers(0, 12)), max_size=8), data=st.data())
def test_overlap_check_agrees_with_brute_force(tmp_path, spans, data):
    payload = data.draw(st.binary(min_size=max((b + n for b, n in spans), default=0), max_size=64))
    header = {f"t{i}": {"dtype": "U8", "shape": [n], "data_offsets": [b, b + n]} for i, (b, n) in enumerate(spans)}
    nonempty = [(b, b + n) for b, n in spans if n]
    overlap = any(b1 < e2 and b2 < e1 for i, (b1, e1) in enumerate(nonempty) for b2, e2 in nonempty[i + 1:])
    try:
        tensors = read_safetensors(safetensors_file(tmp_path / "m.safetensors", header, payload))
    except CheckpointError as e:
        assert overlap and "overlap in the file" in str(e)
        return
    assert not overlap
    for name, (b, n) in zip(header, spans):
        assert tensors[name].array.tobytes() == payload[b:b + n]  # each tensor reads its own bytes


ENTRIES = st.fixed_dictionaries({}, optional={
    "dtype": st.sampled_from(list(STORED_DTYPES)) | JSON_VALUES,
    "shape": st.lists(st.integers(-2, 5) | st.sampled_from([0, 2**31, 2**63, 2**70]) | SCALARS, max_size=4)
    | st.lists(st.just(1), min_size=60, max_size=70) | JSON_VALUES,
    "data_offsets": st.lists(st.integers(-1, 80) | st.sampled_from([2**64, 10**400]), min_size=0, max_size=3)
    | JSON_VALUES,
}) | JSON_VALUES


@PROPERTY
@given(header=st.dictionaries(st.text(max_size=6), ENTRIES, max_size=5) | JSON_VALUES | DEEP,
       payload=st.binary(max_size=80))
def test_random_safetensors_header(tmp_path, header, payload):
    try:
        tensors = read_safetensors(safetensors_file(tmp_path / "m.safetensors", header, payload))
    except CheckpointError:
        return
    for name, t in tensors.items():  # accepted: each tensor is exactly the bytes its entry names
        begin, end = header[name]["data_offsets"]
        assert t.array.dtype == np.dtype(STORED_DTYPES[t.dtype]) and list(t.array.shape) == header[name]["shape"]
        assert t.array.tobytes() == payload[begin:end]


# ---------------------------------------------------------------------------------------------------------------
# Paths a model file names (shard index, modules.json)
# ---------------------------------------------------------------------------------------------------------------

@PROPERTY
@given(name=HOSTILE_PATHS | st.text(max_size=20))
def test_named_paths_never_leave_the_folder(name):
    try:
        accepted = checked_relative_path(Path("index.json"), name)
    except CheckpointError as e:
        assert "lies outside the model folder" in str(e)
        return
    resolved = posixpath.normpath(posixpath.join("/model", accepted.replace("\\", "/")))
    assert resolved.startswith("/model/") and "\0" not in accepted and not os.path.isabs(accepted)


# ---------------------------------------------------------------------------------------------------------------
# config.json
# ---------------------------------------------------------------------------------------------------------------

CONFIG = json.loads((BASE / "config.json").read_text())
INT_FIELDS = ["vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size",
              "max_position_embeddings", "type_vocab_size", "pad_token_id"]


@PROPERTY
@given(changes=st.dictionaries(st.sampled_from(INT_FIELDS + ["layer_norm_eps", "hidden_act",
                                                             "position_embedding_type", "other"]),
                               NUMBERS | JSON_VALUES, max_size=4))
def test_config_from_random_values(changes):
    try:
        config = BertConfig.from_dict({**CONFIG, **changes})
    except ConfigError:
        return
    for name in INT_FIELDS:
        value = getattr(config, name)
        assert type(value) is int and (0 if name == "pad_token_id" else 1) <= value <= 2**31 - 1
    assert np.isfinite(config.layer_norm_eps) and 0 < config.layer_norm_eps < 1
    assert config.hidden_size % config.num_attention_heads == 0


@PROPERTY
@given(text=st.text(max_size=60) | st.sampled_from(["[" * 5000, '{"vocab_size": ' + "9" * 5000 + "}",
                                                    '{"layer_norm_eps": 1e999}', "\ud800"]),
       encoding=st.sampled_from(["utf-8", "utf-16"]))
def test_config_json_random_text(tmp_path, text, encoding):
    path = tmp_path / "config.json"
    path.write_bytes(text.encode(encoding, "surrogatepass"))  # a lone surrogate written as bytes: not UTF-8
    try:
        BertConfig.from_json_file(path)
    except ConfigError:
        pass


# ---------------------------------------------------------------------------------------------------------------
# vocab.txt and tokenizer_config.json
# ---------------------------------------------------------------------------------------------------------------

VOCAB_TEXT = st.text(alphabet="ab#[]\n\r \t\u2028\u2029\x85\x0c\x0b\x1c\u3000\ufeff", max_size=40)


@PROPERTY
@given(text=VOCAB_TEXT)
def test_vocab_ids_are_line_numbers_of_the_last_occurrence(text):
    vocab = read_vocab(text)
    lines = text.split("\n")[:-1] if text.endswith("\n") else text.split("\n") if text else []
    tokens = [line.rstrip("\t\n\x0b\x0c\r \x85\u2028\u2029\u3000") for line in lines]
    assert vocab == {token: max(i for i, t in enumerate(tokens) if t == token) for token in tokens}


@pytest.fixture(scope="module")
def tokenizer_folder(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("tokenizer")
    (folder / "config.json").write_text(json.dumps(CONFIG))
    return folder


SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
TOKEN_VALUES = (st.sampled_from(SPECIALS + ["", "x"])
                | st.builds(lambda c, f: {"content": c, **f}, st.sampled_from(SPECIALS + [""]) | JSON_VALUES,
                            st.dictionaries(st.sampled_from(["lstrip", "rstrip", "normalized", "single_word"]),
                                            st.booleans() | JSON_VALUES, max_size=2))
                | JSON_VALUES)
SETTINGS = st.dictionaries(
    st.sampled_from(["unk_token", "sep_token", "pad_token", "cls_token", "mask_token", "do_lower_case",
                     "strip_accents", "tokenize_chinese_chars", "model_max_length"]),
    TOKEN_VALUES | NUMBERS, max_size=4)


@PROPERTY
@given(lines=st.lists(st.sampled_from(SPECIALS + ["a", "##b", "the", "cat", "é"]) | st.text(max_size=4),
                      max_size=12),
       vocab_noise=VOCAB_TEXT, settings_=SETTINGS | JSON_VALUES,
       text=st.text(max_size=20) | st.sampled_from(["a \ud800", "[CLS] a [SEP] [MASK]"]))
def test_tokenizer_from_random_vocab_and_settings(tokenizer_folder, lines, vocab_noise, settings_, text):
    (tokenizer_folder / "vocab.txt").write_text("\n".join(lines) + vocab_noise, encoding="utf-8")
    (tokenizer_folder / "tokenizer_config.json").write_text(json.dumps(settings_))
    before = snapshot(tokenizer_folder)
    try:
        tokenizer = Tokenizer.from_pretrained(tokenizer_folder)
    except CheckpointError:
        assert snapshot(tokenizer_folder) == before
        return
    try:
        batch = tokenizer([text, "cat"], max_length=8)
    except InputError:
        assert any(0xD800 <= ord(c) <= 0xDFFF for c in text)
        return
    ids = batch["input_ids"]
    assert ids.shape[1] <= 8 and ids.min() >= 0 and ids.max() < tokenizer.id_limit
    assert all(e.special_tokens_mask[0] == e.special_tokens_mask[-1] == 1 for e in batch.encodings)
    tokenizer.decode(ids[0])
    assert snapshot(tokenizer_folder) == before


# ---------------------------------------------------------------------------------------------------------------
# modules.json, sentence_bert_config.json and the pooling config
# ---------------------------------------------------------------------------------------------------------------

MODULE_TYPES = st.sampled_from(["sentence_transformers.models.Transformer", "sentence_transformers.models.Pooling",
                                "sentence_transformers.models.Normalize", "Dense"]) | JSON_VALUES
TRANSFORMER, POOLING_TYPE = "sentence_transformers.models.Transformer", "sentence_transformers.models.Pooling"
MODULES = (st.tuples(HOSTILE_PATHS, st.sampled_from(["", "1_Pooling"]) | HOSTILE_PATHS).map(
    lambda paths: [{"type": TRANSFORMER, "path": paths[0]}, {"type": POOLING_TYPE, "path": paths[1]}])
           | st.lists(st.fixed_dictionaries({"type": MODULE_TYPES}, optional={"path": HOSTILE_PATHS | JSON_VALUES}),
                      max_size=4) | JSON_VALUES)
POOLING = (st.dictionaries(st.sampled_from(list(POOLING_KEYS) + ["pooling_mode", "word_embedding_dimension"]),
                           st.booleans() | st.sampled_from(list(POOLING_MODES) + ["weightedmean"])
                           | st.lists(st.sampled_from(POOLING_MODES), max_size=3) | JSON_VALUES, max_size=4)
           | JSON_VALUES | DEEP)
ST_CONFIG = st.fixed_dictionaries({}, optional={"max_seq_length": NUMBERS | JSON_VALUES,
                                                "do_lower_case": JSON_VALUES}) | JSON_VALUES


@pytest.fixture(scope="module")
def layout_folder(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("layout") / "model"
    for sub in ("0_BERT", "1_Pooling"):
        (folder / sub).mkdir(parents=True)
    (folder.parent / "outside").mkdir()
    return folder


@PROPERTY
@given(modules=MODULES, pooling=POOLING, st_config=ST_CONFIG)
def test_random_sentence_transformers_files(layout_folder, modules, pooling, st_config):
    (layout_folder / "modules.json").write_text(json.dumps(modules))
    for sub in ("", "0_BERT/", "1_Pooling/"):
        (layout_folder / f"{sub}config.json").write_text(json.dumps(pooling))
        (layout_folder / f"{sub}sentence_bert_config.json").write_text(json.dumps(st_config))
    before = snapshot(layout_folder)
    try:
        layout = read_layout(layout_folder)
    except CheckpointError:
        assert snapshot(layout_folder) == before
        return
    assert layout.transformer_path == "" or checked_relative_path(Path("modules.json"), layout.transformer_path)
    assert set(layout.pooling) <= set(POOLING_MODES) and layout.pooling
    assert layout.max_seq_length is None or (type(layout.max_seq_length) is int and layout.max_seq_length >= 2)
    assert snapshot(layout_folder) == before


# ---------------------------------------------------------------------------------------------------------------
# Bounded memory and time: small files asking for huge sizes, in a child process under RLIMIT_AS
# ---------------------------------------------------------------------------------------------------------------

MEMORY_LIMIT = 768 * 2**20  # the child's address space: imports and the tiny model need about 200 MB
BOUNDED_CHILD = """
    import json, sys, tempfile, time
    from pathlib import Path
    from hypothesis import given, settings, strategies as st
    from minibert import BertModel, MinibertError

    BASE = Path(sys.argv[1])
    valid = (BASE / "model.safetensors").read_bytes()
    end = 8 + int.from_bytes(valid[:8], "little")
    header, payload = json.loads(valid[8:end]), valid[end:]
    config = json.loads((BASE / "config.json").read_text())
    folder = Path(tempfile.mkdtemp())
    for name in ("vocab.txt", "tokenizer_config.json"):
        (folder / name).write_bytes((BASE / name).read_bytes())
    BIG = st.sampled_from([2**31 - 1, 10**8, 10**9, 2**40, 99999999, 65536])

    @settings(max_examples=40, deadline=None, derandomize=True, database=None)
    @given(fields=st.dictionaries(st.sampled_from(["vocab_size", "hidden_size", "num_attention_heads",
                                                   "intermediate_size", "max_position_embeddings",
                                                   "type_vocab_size"]), BIG | st.integers(1, 70), max_size=3),
           layers=BIG | st.integers(1, 3), name_last=st.booleans(), dims=st.lists(BIG | st.just(0), min_size=1,
                                                                                  max_size=3))
    def run(fields, layers, name_last, dims):
        fields = {**fields, "num_hidden_layers": layers}
        extra = dict(header)
        if name_last:  # an empty tensor naming the config's last layer, however far
            extra[f"encoder.layer.{layers - 1}.x"] = {"dtype": "F32", "shape": [0], "data_offsets": [0, 0]}
        extra["huge.empty"] = {"dtype": "F32", "shape": [0] + dims, "data_offsets": [0, 0]}
        raw = json.dumps(extra).encode()
        (folder / "model.safetensors").write_bytes(len(raw).to_bytes(8, "little") + raw + payload)
        (folder / "config.json").write_text(json.dumps({**config, **fields}))
        start = time.perf_counter()
        try:
            BertModel.from_pretrained(folder)([[2, 5, 3]])
        except MinibertError:
            pass
        assert time.perf_counter() - start < 5, (fields, name_last, dims)

    run()
    print("bounded")
"""


def test_small_files_never_need_big_memory_or_time():
    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, MEMORY_LIMIT))

    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path), "OPENBLAS_NUM_THREADS": "1"}
    result = subprocess.run([sys.executable, "-c", textwrap.dedent(BOUNDED_CHILD), str(BASE)], preexec_fn=limit,
                            capture_output=True, text=True, env=env, timeout=120)
    assert result.returncode == 0 and "bounded" in result.stdout, result.stderr[-3000:]
