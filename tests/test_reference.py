"""minibert against PyTorch: every hidden state, attention matrix and pooler output, on stored reference arrays
made by scripts/make_reference.py with transformers.BertModel (no torch needed here)."""

import numpy as np
import pytest

from conftest import load_reference, within

HIDDEN_TOL = 2e-5
ATTENTION_TOL = 1e-5
CASES = ["classic", "pair", "padded", "empty", "unicode", "long"]
REFERENCES = {name: load_reference(name) for name in ("minilm", "odd")}
MODELS = {"minilm": ("minilm", "minilm_tokenizer"), "odd": ("odd", "odd_tokenizer")}
CASE_TEXTS = {
    "classic": (["The cat sat on the mat.", "The cat chased the mouse."], None, None),
    "pair": ("Is this the question?", "Yes, and this is the answer.", None),
    "padded": (["A short one.", "A much longer sentence, with quite a few more words than the first one has.",
                "Of middling length, this one."], None, None),
    "empty": ("", None, None),
    "unicode": (["Crème brûlée à la façade, naïve café.", "東京で猫が座った。", "Ünïcödé ΑΒΓ добрый день"], None, None),
    "long": ([("Attention lets every token look at every other token of its sentence, and that is how the vector "
               "of a word comes to depend on the words around it. ") * 12], None, 200),
}


@pytest.fixture(params=list(MODELS))
def model_and_tokenizer(request):
    model_fixture, tok_fixture = MODELS[request.param]
    return request.param, request.getfixturevalue(model_fixture), request.getfixturevalue(tok_fixture)


@pytest.mark.parametrize("case", CASES)
def test_tokenizer_ids_equal_reference(model_and_tokenizer, case):
    name, _, tok = model_and_tokenizer
    ref = REFERENCES[name][case]
    text, pair, max_length = CASE_TEXTS[case]
    batch = tok(text, pair, max_length=max_length)
    for key in ("input_ids", "attention_mask", "token_type_ids"):
        np.testing.assert_array_equal(batch[key], ref[key], err_msg=f"{name}/{case}: {key}")


@pytest.mark.parametrize("path", ["fast", "reference"])
@pytest.mark.parametrize("case", CASES)
def test_forward_matches_pytorch(model_and_tokenizer, case, path):
    """Both forward paths against transformers.BertModel; attentions come from the reference path only."""
    name, model, _ = model_and_tokenizer
    ref = REFERENCES[name][case]
    out = model(ref["input_ids"], attention_mask=ref["attention_mask"], token_type_ids=ref["token_type_ids"],
                output_hidden_states=True, output_attentions=path == "reference", path=path)
    real = ref["attention_mask"].astype(bool)  # (B, T): compare at real tokens only
    rows = ref["rows"]

    assert out.last_hidden_state.dtype == np.float32
    d = np.abs(out.last_hidden_state - ref["last_hidden_state"])[real].max()
    assert within(f"{name} last_hidden_state ({path})", d, HIDDEN_TOL)

    assert len(out.hidden_states) == len(ref["hidden_states"]) == model.config.num_hidden_layers + 1
    for i, (ours, theirs) in enumerate(zip(out.hidden_states, ref["hidden_states"])):
        d = np.abs(ours[:, rows] - theirs)[real[:, rows]].max()
        assert within(f"{name} hidden_states[{i}] ({path})", d, HIDDEN_TOL), (case, i)

    if path == "reference":
        assert len(out.attentions) == len(ref["attentions"]) == model.config.num_hidden_layers
        pair_real = real[:, None, rows, None] & real[:, None, None, :]  # (B, 1, R, T): real query and real key
        for i, (ours, theirs) in enumerate(zip(out.attentions, ref["attentions"])):
            assert ours.shape[1] == model.config.num_attention_heads
            diff = np.abs(ours[:, :, rows] - theirs)
            d = diff[np.broadcast_to(pair_real, diff.shape)].max()
            assert within(f"{name} attentions[{i}] (reference)", d, ATTENTION_TOL), (case, i)

    if "pooler_output" in ref:
        d = np.abs(out.pooler_output - ref["pooler_output"]).max()
        assert within(f"{name} pooler_output ({path})", d, HIDDEN_TOL)
    else:
        assert out.pooler_output is None


def test_reference_fixture_is_not_trivial():
    """Guards the odd model's purpose: its LayerNorm and bias values are not the 1/0 initialisation."""
    from minibert.weights import read_safetensors
    from conftest import ODD_MODEL
    tensors = read_safetensors(ODD_MODEL / "model.safetensors")
    ln = tensors["encoder.layer.0.output.LayerNorm.weight"].array
    bias = tensors["encoder.layer.1.intermediate.dense.bias"].array
    assert np.abs(ln - 1).max() > 0.1 and np.abs(bias).max() > 0.05
    assert "pooler.dense.weight" not in tensors
