"""Properties that hold without any reference: padding, batching, determinism, the all-padding row."""

import math

import numpy as np
import pytest

from minibert.model import erf, gelu, gelu_tanh, softmax

SENTENCES = ["The cat sat on the mat.", "The cat chased the mouse.", "A bank by the river.",
             "She deposited the cheque at the bank before lunch on Friday afternoon."]


# Matrix products of different shapes round differently in float32 (BLAS blocking), so "unchanged" means
# equal to float32 precision on vectors of norm ~10, not bit-equal.
SAME = 1e-5


@pytest.mark.parametrize("path", ["reference", "fast"])
def test_padding_does_not_change_real_tokens(minilm, minilm_tokenizer, path):
    """On the reference path padding keys are in every product, and only the attention mask keeps them out:
    a mask that let them through would change the real tokens' vectors. (The fast path never sees padding.)"""
    batch = minilm_tokenizer(SENTENCES[0])
    alone = minilm(**batch, path=path).last_hidden_state[0]  # (T, H)
    T = alone.shape[0]
    for extra in (1, 7, 40):
        ids = np.pad(batch["input_ids"], ((0, 0), (0, extra)), constant_values=1037)  # real words, masked out
        mask = np.pad(batch["attention_mask"], ((0, 0), (0, extra)))
        padded = minilm(ids, attention_mask=mask, path=path).last_hidden_state[0, :T]
        assert np.abs(padded - alone).max() <= SAME


def test_batch_equals_rows_one_by_one(minilm, minilm_tokenizer):
    batch = minilm_tokenizer(SENTENCES)
    together = minilm(**batch, output_attentions=True)
    for i, s in enumerate(SENTENCES):
        alone = minilm(**minilm_tokenizer(s), output_attentions=True)
        T = alone.last_hidden_state.shape[1]
        assert np.abs(together.last_hidden_state[i, :T] - alone.last_hidden_state[0]).max() <= SAME
        assert np.abs(together.pooler_output[i] - alone.pooler_output[0]).max() <= SAME
        assert np.abs(together.attentions[-1][i, :, :T, :T] - alone.attentions[-1][0]).max() <= SAME


def test_deterministic(minilm, minilm_tokenizer):
    batch = minilm_tokenizer(SENTENCES)
    a, b = minilm(**batch).last_hidden_state, minilm(**batch).last_hidden_state
    np.testing.assert_array_equal(a, b)


def test_defaults_and_1d_input(minilm, minilm_tokenizer):
    batch = minilm_tokenizer(SENTENCES[0])
    full = minilm(**batch).last_hidden_state
    np.testing.assert_array_equal(minilm(batch["input_ids"]).last_hidden_state, full)
    one_d = minilm(batch["input_ids"][0].tolist())
    assert one_d.last_hidden_state.shape == full.shape
    np.testing.assert_array_equal(one_d.last_hidden_state, full)


def test_all_padding_row_gives_no_nan(minilm):
    ids = np.array([[101, 2000, 102], [0, 0, 0]])
    mask = np.array([[1, 1, 1], [0, 0, 0]])
    out = minilm(ids, attention_mask=mask, output_attentions=True)
    assert np.isfinite(out.last_hidden_state).all() and np.isfinite(out.pooler_output).all()
    np.testing.assert_allclose(out.attentions[0][1], 1 / 3, rtol=1e-6)  # nothing to attend to: uniform


def test_attention_rows_sum_to_one_and_ignore_padding(minilm, minilm_tokenizer):
    batch = minilm_tokenizer(SENTENCES)
    out = minilm(**batch, output_attentions=True)
    mask = batch["attention_mask"]
    for probs in out.attentions:
        np.testing.assert_allclose(probs.sum(-1), 1, atol=1e-5)
        assert probs[np.broadcast_to(mask[:, None, None, :] == 0, probs.shape)].max() == 0


def test_outputs_shapes(odd, odd_tokenizer):
    c = odd.config
    out = odd(**odd_tokenizer(SENTENCES), output_hidden_states=True, output_attentions=True)
    B, T = len(SENTENCES), out.last_hidden_state.shape[1]
    assert out.last_hidden_state.shape == (B, T, c.hidden_size)
    assert len(out.hidden_states) == c.num_hidden_layers + 1
    assert all(h.shape == (B, T, c.hidden_size) and h.dtype == np.float32 for h in out.hidden_states)
    assert all(a.shape == (B, c.num_attention_heads, T, T) and a.dtype == np.float32 for a in out.attentions)
    assert out.pooler_output is None
    plain = odd(**odd_tokenizer(SENTENCES))
    assert plain.hidden_states is None and plain.attentions is None


def test_erf_is_accurate_to_float32():
    x = np.linspace(-6, 6, 200001).astype(np.float32)
    exact = np.array([math.erf(v) for v in x.astype(np.float64)])
    assert erf(x).dtype == np.float32
    assert np.abs(erf(x) - exact).max() < 6e-7


def test_gelu_forms():
    x = np.linspace(-5, 5, 1001).astype(np.float32)
    exact = np.array([0.5 * v * (1 + math.erf(v / math.sqrt(2))) for v in x.astype(np.float64)])
    assert np.abs(gelu(x) - exact).max() < 1e-6
    # The tanh form is a different function: using it for "gelu" would be a real error (up to ~4.7e-4).
    assert 1e-4 < np.abs(gelu_tanh(x) - exact).max() < 1e-3


def test_softmax_is_stable_in_float32():
    x = np.array([[1000.0, 1000.0, -np.inf], [-3.4e38, -3.4e38, -3.4e38]], dtype=np.float32)
    p = softmax(x)
    assert p.dtype == np.float32
    np.testing.assert_allclose(p, [[0.5, 0.5, 0], [1 / 3, 1 / 3, 1 / 3]], rtol=1e-6)


@pytest.mark.parametrize("act", ["gelu_new", "relu"])
def test_other_activations_run(tmp_path, act):
    import json, shutil
    from conftest import ODD_MODEL
    from minibert import BertModel
    for f in ODD_MODEL.iterdir():
        shutil.copy(f, tmp_path / f.name)
    cfg = json.loads((tmp_path / "config.json").read_text())
    cfg["hidden_act"] = act
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    base = BertModel.from_pretrained(ODD_MODEL)([[2, 5, 3]]).last_hidden_state
    other = BertModel.from_pretrained(tmp_path)([[2, 5, 3]]).last_hidden_state
    assert np.isfinite(other).all() and np.abs(other - base).max() > 1e-4


def test_sublayer_steps_compose_the_reference_layers(odd, odd_tokenizer):
    """explain's hand-composed sub-layers give exactly the reference path's hidden states."""
    from minibert.explain import sublayer_steps
    batch = odd_tokenizer(SENTENCES[0])
    out = odd(**batch, output_hidden_states=True, path="reference")
    steps = sublayer_steps(odd, batch)
    assert len(steps) == odd.config.num_hidden_layers
    for i, t in enumerate(steps):
        np.testing.assert_array_equal(t.before, out.hidden_states[i][0])
        np.testing.assert_array_equal(t.after, out.hidden_states[i + 1][0])
        assert t.attention_output.shape == t.after_attention.shape == t.feed_forward_output.shape
        assert np.abs(t.after_attention - out.hidden_states[i][0]).max() > 1e-3


def test_tokenizer_vocab(minilm_tokenizer):
    vocab = minilm_tokenizer.get_vocab()
    assert len(vocab) == minilm_tokenizer.vocab_size == 30522
    assert vocab["[CLS]"] == 101 and vocab["cat"] == minilm_tokenizer("cat")["input_ids"][0, 1]
