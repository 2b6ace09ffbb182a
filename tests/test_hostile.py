"""Broken and hostile checkpoints: each one in the catalogue fails with minibert's own exception and a message that
names the file/key and what was expected; random bytes and random mutations of valid files (hypothesis) either
load correctly or fail that way: never a crash, a hang, a NaN output or another exception type."""

from __future__ import annotations

import json
import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from minibert import BertModel, CheckpointError, ConfigError, MinibertError
from minibert.weights import read_safetensors
from conftest import mutate
from wild import BASE, base_tensors, copy_side_files, make_layout, safetensors_bytes, write_sharded

IDS = [[2, 22, 78, 65, 3]]
VALID = (BASE / "model.safetensors").read_bytes()
HEADER_END = 8 + int.from_bytes(VALID[:8], "little")


def header_file(path: Path, header: object, payload: bytes = b"") -> Path:
    raw = json.dumps(header).encode()
    path.write_bytes(len(raw).to_bytes(8, "little") + raw + payload)
    return path


# ---------------------------------------------------------------------------------------------------------------
# The catalogue
# ---------------------------------------------------------------------------------------------------------------

def test_truncated_before_the_header_length(tmp_path):
    (tmp_path / "m.safetensors").write_bytes(VALID[:5])
    with pytest.raises(CheckpointError, match=r"m\.safetensors: truncated \(5 bytes\); a safetensors file starts "
                                              r"with an 8-byte header length"):
        read_safetensors(tmp_path / "m.safetensors")


def test_truncated_inside_the_header(tmp_path):
    (tmp_path / "m.safetensors").write_bytes(VALID[:100])
    with pytest.raises(CheckpointError, match=rf"m\.safetensors: header length {HEADER_END - 8} is larger than the "
                                              r"file \(100 bytes\)"):
        read_safetensors(tmp_path / "m.safetensors")


def test_header_length_larger_than_the_file(tmp_path):
    (tmp_path / "m.safetensors").write_bytes((2**63).to_bytes(8, "little") + VALID[8:])
    with pytest.raises(CheckpointError, match=rf"header length {2**63} is larger than the file"):
        read_safetensors(tmp_path / "m.safetensors")


@pytest.mark.parametrize("header,kind", [([1, 2], "list"), ("text", "str"), (None, "NoneType"), (3.5, "float")])
def test_header_not_an_object(tmp_path, header, kind):
    with pytest.raises(CheckpointError, match=rf"m\.safetensors: the header must be a JSON object, got {kind}"):
        read_safetensors(header_file(tmp_path / "m.safetensors", header))


@pytest.mark.parametrize("raw,problem", [
    (b"[" * 100_000, "nested too deeply to parse"),
    (b'{"a": ' + b"9" * 5000 + b"}", "Exceeds the limit"),  # an integer too long to convert
    (b'{"a": 1', "Expecting ',' delimiter"),
])
def test_header_json_that_breaks_the_parser(tmp_path, raw, problem):
    (tmp_path / "m.safetensors").write_bytes(len(raw).to_bytes(8, "little") + raw)
    with pytest.raises(CheckpointError, match=rf"m\.safetensors: the header: not valid JSON \({problem}"):
        read_safetensors(tmp_path / "m.safetensors")


def test_overlapping_offsets(tmp_path):
    header = {"a": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]},
              "b": {"dtype": "F32", "shape": [4], "data_offsets": [8, 24]}}
    with pytest.raises(CheckpointError, match=r"tensors 'a' and 'b' overlap in the file \(bytes 8\.\.16\)"):
        read_safetensors(header_file(tmp_path / "m.safetensors", header, bytes(24)))


def test_offsets_past_the_end(tmp_path):
    header = {"a": {"dtype": "F32", "shape": [4], "data_offsets": [8, 24]}}
    with pytest.raises(CheckpointError, match=r"tensor 'a': data_offsets \[8, 24\] run past the end of the data "
                                              r"\(16 bytes\)"):
        read_safetensors(header_file(tmp_path / "m.safetensors", header, bytes(16)))


@pytest.mark.parametrize("entry,message", [
    ({"dtype": "F8_E4M3", "shape": [4], "data_offsets": [0, 4]}, r"unknown dtype 'F8_E4M3'; expected one of F64, F32"),
    ({"dtype": "F32", "shape": [-4], "data_offsets": [0, 16]}, r"shape must be a list of non-negative integers"),
    ({"dtype": "F32", "shape": [4], "data_offsets": [16, 0]}, r"data_offsets must be \[begin, end\] with 0 <= begin"),
    ({"dtype": "F32", "shape": [5], "data_offsets": [0, 16]}, r"span 16 bytes but shape \[5\] of F32 needs 20"),
    ({"dtype": "F32", "shape": [0, 2**70], "data_offsets": [0, 0]}, r"shape \[0, \d+\] is too large to represent"),
    ("F32", r"expected an object with dtype, shape and data_offsets"),
])
def test_bad_header_entry(tmp_path, entry, message):
    with pytest.raises(CheckpointError, match=rf"m\.safetensors: tensor 'a'.*{message}"):
        read_safetensors(header_file(tmp_path / "m.safetensors", {"a": entry}, bytes(16)))


@pytest.fixture
def sharded(tmp_path) -> Path:
    return make_layout("sharded", tmp_path / "model")


def edit_index(folder: Path, edit) -> None:
    path = folder / "model.safetensors.index.json"
    index = json.loads(path.read_text())
    edit(index["weight_map"])
    path.write_text(json.dumps(index))


@pytest.mark.parametrize("where", ["../outside.safetensors", "ABSOLUTE", "sub/../../outside.safetensors",
                                   "./model-00001-of-00003.safetensors"])
def test_shard_outside_the_folder_is_refused(sharded, where):
    # A perfectly valid checkpoint waits outside: it must not be read, whatever the index says.
    outside = sharded.parent / "outside.safetensors"
    shutil.copy(BASE / "model.safetensors", outside)
    shard = str(outside) if where == "ABSOLUTE" else where
    edit_index(sharded, lambda m: m.update({"pooler.dense.bias": shard}))
    with pytest.raises(CheckpointError, match=rf"model\.safetensors\.index\.json: shard '{shard}' lies outside the "
                                              r"model folder \(expected a relative file name without '\.\.'\); refused"):
        BertModel.from_pretrained(sharded)


def test_index_names_a_missing_shard(sharded):
    (sharded / "model-00002-of-00003.safetensors").unlink()
    with pytest.raises(CheckpointError, match=r"index\.json: names shard 'model-00002-of-00003\.safetensors', which "
                                              r"does not exist in"):
        BertModel.from_pretrained(sharded)


def test_index_names_a_tensor_its_shard_does_not_hold(sharded):
    edit_index(sharded, lambda m: m.update({"pooler.dense.bias": "model-00003-of-00003.safetensors"}))
    with pytest.raises(CheckpointError, match=r"index\.json: names tensor 'pooler\.dense\.bias' in "
                                              r"'model-00003-of-00003\.safetensors', which does not hold it"):
        BertModel.from_pretrained(sharded)


def test_duplicate_tensor_across_shards(tmp_path):
    folder = copy_side_files(BASE, tmp_path)
    tensors = {n: ("F32", x) for n, x in base_tensors().items()}
    write_sharded(folder, tensors, shards=2)
    # Shard 2 also carries one of shard 1's tensors.
    first = read_safetensors(folder / "model-00001-of-00002.safetensors")
    name = sorted(first)[0]
    second = {n: ("F32", np.array(t.array)) for n, t in read_safetensors(folder / "model-00002-of-00002.safetensors").items()}
    second[name] = tensors[name]
    (folder / "model-00002-of-00002.safetensors").write_bytes(safetensors_bytes(second))
    with pytest.raises(CheckpointError, match=rf"index\.json: tensor '{name}' appears in two shards "
                                              r"\(model-00001-of-00002\.safetensors and model-00002-of-00002"):
        BertModel.from_pretrained(folder)


@pytest.mark.parametrize("text,message", [
    ("[1, 2]", r"config\.json: expected a JSON object, got list"),
    ('{"vocab_size": ' + "9" * 5000 + "}", r"config\.json: not valid JSON \(Exceeds the limit"),
    ("[" * 100_000, r"config\.json: not valid JSON \(nested too deeply"),
    (b"\xff\xfe{}", r"config\.json: not UTF-8 \(byte 0xff at offset 0\)"),
])
def test_config_json_that_breaks_the_parser(tmp_path, text, message):
    folder = make_layout("base", tmp_path)
    path = folder / "config.json"
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    with pytest.raises(ConfigError, match=message):
        BertModel.from_pretrained(folder)


def test_config_asking_for_more_layers_than_stored(tmp_path):
    folder = make_layout("base", tmp_path)
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, "num_hidden_layers": 10**9}))
    with pytest.raises(CheckpointError, match=r"the config asks for num_hidden_layers = 1000000000, but the checkpoint "
                                              r"stores 2 layer\(s\)"):
        BertModel.from_pretrained(folder)


# ---------------------------------------------------------------------------------------------------------------
# Properties: anything at all, or a valid file with random damage
# ---------------------------------------------------------------------------------------------------------------

PROPERTY = settings(max_examples=60, deadline=10_000, suppress_health_check=[HealthCheck.function_scoped_fixture],
                    derandomize=True)
REFERENCE_OUT = None


def load_and_run(folder: Path):
    """The only allowed outcomes: MinibertError, or a model whose output is finite. Returns the output or None."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # a warning here would be an unexpected outcome too
            out = BertModel.from_pretrained(folder, strict=True)(IDS).last_hidden_state
    except MinibertError:
        return None
    assert np.isfinite(out).all()
    return out


def reference_out() -> np.ndarray:
    global REFERENCE_OUT
    if REFERENCE_OUT is None:
        REFERENCE_OUT = BertModel.from_pretrained(BASE)(IDS).last_hidden_state
    return REFERENCE_OUT


EDITS = st.lists(st.tuples(st.sampled_from(["set", "set", "insert", "delete", "cut"]),
                           st.integers(0, 2**20), st.integers(0, 255)), min_size=1, max_size=4)
JSON_VALUES = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
                           lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner,
                                                                                         max_size=3), max_leaves=8)


@pytest.fixture(scope="module")
def work(tmp_path_factory) -> Path:
    return make_layout("base", tmp_path_factory.mktemp("hostile"))


@PROPERTY
@given(data=st.binary(max_size=512))
def test_random_bytes_as_weights(work, data):
    (work / "model.safetensors").write_bytes(data)
    assert load_and_run(work) is None  # random bytes are never a whole BERT


@PROPERTY
@given(edits=EDITS)
def test_mutated_safetensors_header(work, edits):
    (work / "model.safetensors").write_bytes(mutate(VALID, edits, HEADER_END))
    out = load_and_run(work)
    if out is not None:
        # A mutation that keeps the file valid (a space, a renamed head...) must not change a single weight.
        np.testing.assert_array_equal(out, reference_out())


@PROPERTY
@given(positions=st.lists(st.integers(HEADER_END, len(VALID) - 4), min_size=1, max_size=3),
       value=st.sampled_from([np.float32(np.nan), np.float32(np.inf), np.float32(-np.inf)]))
def test_non_finite_bytes_in_the_payload(work, positions, value):
    """A NaN or infinity that a forward reads is refused (strict); the word table is checked row by row as it is
    read, so one in a row IDS do not look up changes nothing."""
    data = bytearray(VALID)
    for p in positions:
        p -= (p - HEADER_END) % 4  # the payload holds float32 only, at 4-byte steps
        data[p:p + 4] = value.tobytes()
    (work / "model.safetensors").write_bytes(bytes(data))
    model = BertModel.from_pretrained(work, strict=True)
    if all(word_table_row(p) not in (None, *IDS[0]) for p in positions):
        np.testing.assert_array_equal(model(IDS).last_hidden_state, reference_out())
        return
    with pytest.raises(CheckpointError, match="holds NaN or infinite values"):
        model(IDS)


def word_table_row(position: int):
    """The word-table row holding byte `position` of VALID, or None when it is in another tensor."""
    header = json.loads(VALID[8:HEADER_END])
    entry = header["embeddings.word_embeddings.weight"]
    begin, end = (HEADER_END + o for o in entry["data_offsets"])
    return (position - begin) // (4 * entry["shape"][1]) if begin <= position < end else None


@pytest.fixture(scope="module")
def work_sharded(tmp_path_factory) -> Path:
    return make_layout("sharded", tmp_path_factory.mktemp("hostile") / "model")


@PROPERTY
@given(edits=EDITS)
def test_mutated_shard_index(work_sharded, edits):
    path = work_sharded / "model.safetensors.index.json"
    valid = make_layout("sharded", work_sharded.parent / "fresh").joinpath(path.name).read_bytes()
    path.write_bytes(mutate(valid, edits, len(valid)))
    out = load_and_run(work_sharded)
    if out is not None:
        np.testing.assert_array_equal(out, reference_out())


@PROPERTY
@given(key=st.sampled_from(["weight_map", "metadata", "embeddings.word_embeddings.weight", "pooler.dense.bias"]),
       value=JSON_VALUES | st.sampled_from(["../x", "/etc/passwd", "C:\\x", "", ".", "a\0b", "model-00001-of-00003."
                                            "safetensors/..", "\\\\server\\share"]))
def test_shard_index_with_random_values(work_sharded, key, value):
    path = work_sharded / "model.safetensors.index.json"
    index = json.loads(make_layout("sharded", work_sharded.parent / "fresh").joinpath(path.name).read_text())
    if key in index:
        index[key] = value
    else:
        index["weight_map"][key] = value
    path.write_text(json.dumps(index))
    out = load_and_run(work_sharded)
    if out is not None:
        np.testing.assert_array_equal(out, reference_out())


VALID_CONFIG = (BASE / "config.json").read_bytes()


@PROPERTY
@given(edits=EDITS)
def test_mutated_config_bytes(work, edits):
    (work / "model.safetensors").write_bytes(VALID)
    (work / "config.json").write_bytes(mutate(VALID_CONFIG, edits, len(VALID_CONFIG)))
    load_and_run(work)


@PROPERTY
@given(key=st.sampled_from(["vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads",
                            "intermediate_size", "max_position_embeddings", "hidden_act", "layer_norm_eps",
                            "type_vocab_size", "position_embedding_type", "pad_token_id"]),
       value=JSON_VALUES | st.integers(-3, 70))
def test_config_with_random_values(work, key, value):
    (work / "model.safetensors").write_bytes(VALID)
    config = json.loads(VALID_CONFIG)
    config[key] = value
    (work / "config.json").write_text(json.dumps(config))
    load_and_run(work)


# ---------------------------------------------------------------------------------------------------------------
# The GloVe reader: a text file, and the converted (memory-mapped) folder it is turned into
# ---------------------------------------------------------------------------------------------------------------

glove = pytest.importorskip("glove")
GLOVE_TEXT = "".join(f"{w} {i * 0.1:.3f} {-i * 0.2:.3f} {i * 0.01 + 1:.3f}\n"
                     for i, w in enumerate(["the", "cat", "sat", "on", "mat", "and", "dog", "café"])).encode()


def open_glove(source: Path, cache: Path):
    """Allowed outcomes: glove's own GloVeError, or a table whose every vector and similarity is finite.

    The error may come from a query: opening does not read vectors.npy (it stays memory-mapped), so a damaged
    row is caught when a query reads it."""
    try:
        g = glove.load(source, cache_dir=cache)
        vectors = np.stack([g[w] for w in g.index_to_key])
        scores = [score for _, score in g.most_similar(g.index_to_key[0], topn=3)]
    except glove.GloVeError:
        return None
    assert vectors.shape == (len(g.index_to_key), g.vector_size) and np.isfinite(vectors).all()
    assert np.isfinite(scores).all()
    return g


@pytest.fixture(scope="module")
def glove_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("glove")


@PROPERTY
@given(data=st.binary(max_size=300) | st.builds(mutate, st.just(GLOVE_TEXT), EDITS, st.just(len(GLOVE_TEXT))))
def test_glove_text_random_and_mutated(glove_dir, data):
    source = glove_dir / "vectors.txt"
    source.write_bytes(data)
    shutil.rmtree(glove_dir / "cache", ignore_errors=True)
    open_glove(source, glove_dir / "cache")


@PROPERTY
@given(file=st.sampled_from(["manifest.json", "vectors.npy", "norms.npy", "word_offsets.npy", "word_order.npy",
                             "words.txt"]), edits=EDITS)
def test_glove_converted_folder_mutated(glove_dir, file, edits):
    shutil.rmtree(glove_dir / "table", ignore_errors=True)
    (glove_dir / "clean.txt").write_bytes(GLOVE_TEXT)
    table = glove.load(glove_dir / "clean.txt", cache_dir=glove_dir / "clean-cache").save(glove_dir / "table")
    path = table / file
    if path.exists():
        path.write_bytes(mutate(path.read_bytes(), edits, path.stat().st_size))
    open_glove(table, glove_dir / "unused-cache")
