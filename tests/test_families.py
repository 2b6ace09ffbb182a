"""Every family through the one forward pass, against PyTorch: random-weight checkpoints with odd shapes and a
tokenizer of the family's own type, written with transformers' outputs by scripts/make_family_reference.py."""

import numpy as np
import pytest

from conftest import FIXTURES, assert_batch_invariant, record_diff
from minibert import AutoModel, SentenceEncoder, Tokenizer

FAMILIES = ["roberta", "xlm-roberta", "camembert", "distilbert", "electra", "mpnet"]
CASES = ["classic", "pair", "padded", "empty", "unicode", "long"]
HIDDEN_TOL, ATTENTION_TOL = 2e-5, 1e-5
TEXTS = {
    "classic": (["The cat sat on the mat.", "The cat chased the mouse."], None),
    "pair": (["Is this the question?"], ["Yes, and this is the answer."]),
    "padded": (["A short one.", "A much longer sentence, with quite a few more words than the first one.",
                "Of middling length."], None),
    "empty": ([""], None),
    "unicode": (["Crème brûlée à la façade, naïve café.", "東京で猫が座った。", "Emoji 😀 🐈 Ünïcödé ΑΒΓ"], None),
    "long": (["Attention lets every token look at every other token of its sentence. " * 12], None),
}
MAX_TOKENS = 60


def folder(family):
    return FIXTURES / "families" / family


@pytest.fixture(scope="module", params=FAMILIES)
def family(request):
    name = request.param
    return (name, AutoModel.from_pretrained(folder(name)), Tokenizer.from_pretrained(folder(name)),
            np.load(FIXTURES / "families" / f"reference_{name}.npz"))


@pytest.mark.parametrize("case", CASES)
def test_tokenizer_ids_equal_transformers(family, case):
    name, _, tok, ref = family
    texts, pairs = TEXTS[case]
    batch = tok(texts, pairs, max_length=MAX_TOKENS)
    np.testing.assert_array_equal(batch["input_ids"], ref[f"{case}/input_ids"], err_msg=f"{name}/{case}")
    np.testing.assert_array_equal(batch["attention_mask"], ref[f"{case}/attention_mask"])


@pytest.mark.parametrize("path", ["fast", "reference"])
@pytest.mark.parametrize("case", CASES)
def test_forward_matches_pytorch(family, case, path):
    name, model, _, ref = family
    ids, mask = ref[f"{case}/input_ids"], ref[f"{case}/attention_mask"]
    out = model(ids, attention_mask=mask, output_hidden_states=True, output_attentions=path == "reference",
                path=path)
    real = mask.astype(bool)
    for i, (ours, theirs) in enumerate(zip(out.hidden_states, ref[f"{case}/hidden_states"], strict=True)):
        d = float(np.abs(ours - theirs)[real].max())
        assert record_diff(f"{name} hidden_states ({path})", d) <= HIDDEN_TOL, (case, i)
    assert not out.last_hidden_state[~real].any()
    if path == "reference":
        pair_real = real[:, None, :, None] & real[:, None, None, :]
        for ours, theirs in zip(out.attentions, ref[f"{case}/attentions"], strict=True):
            diff = np.abs(ours - theirs)
            assert record_diff(f"{name} attentions", float(diff[np.broadcast_to(pair_real, diff.shape)].max())) \
                <= ATTENTION_TOL
    if f"{case}/pooler_output" in ref:
        d = float(np.abs(out.pooler_output - ref[f"{case}/pooler_output"]).max())
        assert record_diff(f"{name} pooler_output ({path})", d) <= HIDDEN_TOL
    else:
        assert out.pooler_output is None


def test_batch_invariance(family):
    name, model, tok, _ = family
    texts = TEXTS["padded"][0] + TEXTS["unicode"][0]
    together = model(**tok(texts)).last_hidden_state
    for i, text in enumerate(texts):
        alone = model(**tok(text)).last_hidden_state[0]
        assert_batch_invariant(together[i, :len(alone)], alone, f"{name} alone vs batch (relative)")


@pytest.mark.parametrize("name", ["mpnet", "xlm-roberta"])
def test_sentence_embeddings_match_sentence_transformers(name):
    ref = np.load(FIXTURES / "families" / f"reference_{name}.npz")
    encoder = SentenceEncoder.from_pretrained(folder(name))
    ours = encoder.encode([str(s) for s in ref["st/sentences"]], normalize_embeddings=False)
    d = float(np.abs(ours - ref["st/embeddings"]).max())
    assert record_diff(f"{name} sentence-transformers embeddings", d) <= 1e-5
