"""Every bad input gets minibert's own exception, with a message naming the file/key and what was expected."""

import json
import shutil

import numpy as np
import pytest
from safetensors.numpy import load_file, save_file

from conftest import ODD_MODEL
from minibert import BertModel, CheckpointError, ConfigError, InputError, Tokenizer


@pytest.fixture
def folder(tmp_path):
    """A writable copy of the odd-shaped model."""
    for f in ODD_MODEL.iterdir():
        shutil.copy(f, tmp_path / f.name)
    return tmp_path


def edit_config(folder, **changes):
    cfg = json.loads((folder / "config.json").read_text())
    cfg.update(changes)
    (folder / "config.json").write_text(json.dumps(cfg))


def edit_tensors(folder, edit):
    tensors = load_file(str(folder / "model.safetensors"))
    edit(tensors)
    save_file(tensors, str(folder / "model.safetensors"))


def test_folder_without_config(folder):
    (folder / "config.json").unlink()
    with pytest.raises(ConfigError, match=r"config\.json"):
        BertModel.from_pretrained(folder)


def test_folder_without_weights(folder):
    (folder / "model.safetensors").unlink()
    with pytest.raises(CheckpointError, match=r"no model\.safetensors"):
        BertModel.from_pretrained(folder)


def test_missing_folder(tmp_path):
    with pytest.raises(CheckpointError, match="no such folder"):
        BertModel.from_pretrained(str(tmp_path / "nope" / "deeper" / "model"))


def test_truncated_safetensors(folder):
    data = (folder / "model.safetensors").read_bytes()
    (folder / "model.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match=r"model\.safetensors: tensor '.*': data_offsets .* truncated"):
        BertModel.from_pretrained(folder)


def test_corrupt_header(folder):
    data = (folder / "model.safetensors").read_bytes()
    (folder / "model.safetensors").write_bytes(data[:8] + b"\xff" * 20 + data[28:])
    with pytest.raises(CheckpointError, match=r"the header: not UTF-8 \(byte 0xff"):
        BertModel.from_pretrained(folder)


def test_missing_tensor(folder):
    edit_tensors(folder, lambda t: t.pop("encoder.layer.2.output.dense.weight"))
    with pytest.raises(CheckpointError, match=r"missing tensor\(s\) encoder\.layer\.2\.output\.dense\.weight"):
        BertModel.from_pretrained(folder)


def test_tensor_shape_disagrees_with_config(folder):
    edit_config(folder, intermediate_size=38)
    with pytest.raises(CheckpointError, match=r"'encoder\.layer\.0\.intermediate\.dense\.weight' has shape \[37, 80\]; "
                                              r"the config implies \[38, 80\]"):
        BertModel.from_pretrained(folder)


def test_tensor_dtype_not_float(folder):
    def to_int(t):
        t["embeddings.LayerNorm.bias"] = t["embeddings.LayerNorm.bias"].astype(np.int32)
    edit_tensors(folder, to_int)
    with pytest.raises(CheckpointError, match=r"'embeddings\.LayerNorm\.bias' has dtype I32; expected one of F32"):
        BertModel.from_pretrained(folder)


@pytest.mark.parametrize("field,value,message", [
    ("hidden_act", "swish", r"'hidden_act': 'swish' is not supported; expected one of gelu"),
    ("position_embedding_type", "relative_key", r"'position_embedding_type': 'relative_key' is not supported"),
    ("num_attention_heads", 3, r"num_attention_heads \(3\) must divide hidden_size \(80\)"),
    ("hidden_size", "80", r"config field 'hidden_size': expected int, got '80'"),
])
def test_unsupported_config(folder, field, value, message):
    edit_config(folder, **{field: value})
    with pytest.raises(ConfigError, match=message):
        BertModel.from_pretrained(folder)


def test_config_missing_field_and_not_json(folder):
    cfg = json.loads((folder / "config.json").read_text())
    del cfg["num_hidden_layers"]
    (folder / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ConfigError, match=r"config\.json: missing required field\(s\) num_hidden_layers"):
        BertModel.from_pretrained(folder)
    (folder / "config.json").write_text("{not json")
    with pytest.raises(ConfigError, match=r"config\.json: not valid JSON"):
        BertModel.from_pretrained(folder)


def test_token_ids_outside_vocabulary(odd):
    with pytest.raises(InputError, match=r"input_ids: value 3000 at position \(0, 1\) is outside the vocabulary"):
        odd([[2, 3000, 3]])
    with pytest.raises(InputError, match=r"input_ids: value -1"):
        odd([[2, -1, 3]])


def test_token_type_ids_outside_range(odd):
    with pytest.raises(InputError, match=r"token_type_ids: value 2 .* \(type_vocab_size\)"):
        odd([[2, 5, 3]], token_type_ids=[[0, 2, 0]])


def test_too_many_tokens(odd, odd_tokenizer):
    text = "word " * 400
    batch = odd_tokenizer(text)  # the tokenizer truncates by default ...
    assert batch["input_ids"].shape[1] == odd.config.max_position_embeddings
    odd(**batch)
    long = odd_tokenizer(text, truncation=False)  # ... the model refuses what it cannot place
    with pytest.raises(InputError, match=r"402 tokens is more than this model's max_position_embeddings \(256\)"):
        odd(**long)


def test_mask_shape_mismatch(odd):
    with pytest.raises(InputError, match=r"attention_mask: shape \(1, 2\) does not match input_ids' \(1, 3\)"):
        odd([[2, 5, 3]], attention_mask=[[1, 1]])
    with pytest.raises(InputError, match=r"attention_mask: value 2 .* expected 0 <= value < 2"):
        odd([[2, 5, 3]], attention_mask=[[1, 2, 1]])


def test_bad_id_types_and_shapes(odd):
    with pytest.raises(InputError, match="input_ids: expected integers, got an array of float64"):
        odd([[2.0, 5.5]])
    with pytest.raises(InputError, match=r"input_ids: expected shape \(B, T\) or \(T,\)"):
        odd(np.zeros((1, 2, 3), dtype=np.int64))
    with pytest.raises(InputError, match="no tokens"):
        odd(np.zeros((1, 0), dtype=np.int64))


def test_tokenizer_rejects_non_strings(odd_tokenizer):
    with pytest.raises(InputError, match=r"text\[1\]: expected a string, got NoneType"):
        odd_tokenizer(["fine", None])
    with pytest.raises(InputError, match="text: expected a string or a list of strings, got int"):
        odd_tokenizer(5)
    with pytest.raises(InputError, match="text_pair: 1 texts for 2 in text"):
        odd_tokenizer(["a", "b"], ["c"])


def test_folder_without_tokenizer(folder):
    (folder / "vocab.txt").unlink()
    with pytest.raises(CheckpointError, match=r"no tokenizer\.json, vocab\.json \+ merges\.txt, or vocab\.txt"):
        Tokenizer.from_pretrained(folder)


def test_nan_weights_warn_or_refuse(folder):
    def poison(t):
        t["encoder.layer.1.output.dense.bias"][3] = np.nan
    edit_tensors(folder, poison)
    with pytest.warns(RuntimeWarning, match=r"'encoder\.layer\.1\.output\.dense\.bias' holds NaN"):
        BertModel.from_pretrained(folder)([[2, 5, 3]])
    with pytest.raises(CheckpointError, match=r"'encoder\.layer\.1\.output\.dense\.bias' holds NaN"):
        BertModel.from_pretrained(folder, strict=True)([[2, 5, 3]])


def test_nan_in_the_word_table_is_found_where_it_is_read(folder):
    """The word table is not scanned whole (XLM-R's is 768 MB): the rows a forward looks up are checked."""
    def poison(t):
        t["embeddings.word_embeddings.weight"][7, 2] = np.nan
    edit_tensors(folder, poison)
    model = BertModel.from_pretrained(folder, strict=True)
    model([[2, 5, 3]])  # row 7 is not read: nothing to say
    with pytest.raises(CheckpointError, match=r"'embeddings\.word_embeddings\.weight \(rows \[7\]\)' holds NaN"):
        model([[2, 7, 3]])
    with pytest.warns(RuntimeWarning, match=r"word_embeddings.*holds NaN"):
        BertModel.from_pretrained(folder)([[2, 7, 3]])
