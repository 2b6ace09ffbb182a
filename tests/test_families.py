"""Every family through the one forward pass, against PyTorch: random-weight checkpoints with odd shapes and a
tokenizer of the family's own type, written with transformers' outputs by scripts/make_family_reference.py."""

import numpy as np
import pytest

from conftest import FIXTURES, assert_batch_invariant, within
from minibert import AutoModel, SentenceEncoder, Tokenizer

FAMILIES = ["roberta", "xlm-roberta", "camembert", "distilbert", "electra", "mpnet"]
CASES = ["classic", "pair", "padded", "empty", "unicode", "long"]
HIDDEN_TOL, ATTENTION_TOL = 2e-5, 1e-5
MAX_TOKENS = 60  # the fixtures' references are truncated here


def texts_of(ref, case):
    """The case's texts and pairs (None when the case has none), as stored beside its references."""
    pairs = [str(p) for p in ref[f"{case}/pairs"]]
    return [str(t) for t in ref[f"{case}/texts"]], pairs or None


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
    texts, pairs = texts_of(ref, case)
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
        assert within(f"{name} hidden_states ({path})", d, HIDDEN_TOL), (case, i)
    assert not out.last_hidden_state[~real].any()
    if path == "reference":
        pair_real = real[:, None, :, None] & real[:, None, None, :]
        for ours, theirs in zip(out.attentions, ref[f"{case}/attentions"], strict=True):
            diff = np.abs(ours - theirs)
            d = float(diff[np.broadcast_to(pair_real, diff.shape)].max())
            assert within(f"{name} attentions (reference)", d, ATTENTION_TOL)
    if f"{case}/pooler_output" in ref:
        d = float(np.abs(out.pooler_output - ref[f"{case}/pooler_output"]).max())
        assert within(f"{name} pooler_output ({path})", d, HIDDEN_TOL)
    else:
        assert out.pooler_output is None


def test_batch_invariance(family):
    name, model, tok, ref = family
    texts = texts_of(ref, "padded")[0] + texts_of(ref, "unicode")[0]
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
    assert within(f"{name} sentence-transformers embeddings", d, 1e-5)


def test_relative_position_buckets_equal_transformers():
    """MPNet's buckets for distances up to 700 (the model fixture only reaches 60): the logarithmic buckets and
    the cap at max_distance included."""
    from minibert.model import relative_position_bucket
    ref = np.load(FIXTURES / "families" / "reference_mpnet.npz")
    np.testing.assert_array_equal(relative_position_bucket(ref["buckets/relative"], 32), ref["buckets/bucket"])


def test_legacy_tokenizer_files_give_the_same_ids(tmp_path):
    """RoBERTa's vocab.json + merges.txt without tokenizer.json, built as transformers builds them."""
    import shutil
    ref = np.load(FIXTURES / "families" / "reference_roberta.npz")
    shutil.copytree(folder("roberta"), tmp_path / "roberta")
    (tmp_path / "roberta" / "tokenizer.json").unlink()
    tok = Tokenizer.from_pretrained(tmp_path / "roberta")
    for case in CASES:
        texts, pairs = texts_of(ref, case)
        np.testing.assert_array_equal(tok(texts, pairs, max_length=MAX_TOKENS)["input_ids"], ref[f"{case}/input_ids"],
                                      err_msg=case)
    assert tok.get_vocab()["<mask>"] in tok("The cat <mask>.")["input_ids"][0]


def test_sentencepiece_only_is_refused_with_the_fix(tmp_path):
    from minibert import CheckpointError
    import shutil
    shutil.copytree(folder("xlm-roberta"), tmp_path / "x")
    (tmp_path / "x" / "tokenizer.json").unlink()
    (tmp_path / "x" / "sentencepiece.bpe.model").write_bytes(b"\x00binary")
    with pytest.raises(CheckpointError, match=r"sentencepiece\.bpe\.model: a SentencePiece model.*tokenizer\.json"):
        Tokenizer.from_pretrained(tmp_path / "x")


@pytest.mark.parametrize("model_type", ["nomic_bert", "modernbert", "new", "deberta-v2", "gpt2"])
def test_other_architectures_are_refused_by_name(tmp_path, model_type):
    import json
    import shutil
    from minibert import ConfigError
    shutil.copytree(folder("roberta"), tmp_path / "m")
    config = json.loads((tmp_path / "m" / "config.json").read_text())
    (tmp_path / "m" / "config.json").write_text(json.dumps({**config, "model_type": model_type}))
    with pytest.raises(ConfigError, match=rf"'model_type': '{model_type}' is .*minibert runs bert, roberta, "
                                          r"xlm-roberta, camembert, distilbert, electra, mpnet"):
        AutoModel.from_pretrained(tmp_path / "m")


def test_distilbert_sinusoidal_table_when_not_stored(tmp_path):
    """sinusoidal_pos_embds: the fixed table is computed when the file does not carry it (and equals it when it
    does)."""
    import shutil
    from safetensors.numpy import load_file, save_file
    from minibert.params import sinusoidal_positions
    shutil.copytree(folder("distilbert"), tmp_path / "d")
    tensors = load_file(tmp_path / "d" / "model.safetensors")
    stored = tensors.pop("embeddings.position_embeddings.weight")
    np.testing.assert_allclose(sinusoidal_positions(*stored.shape), stored, atol=1e-6)
    save_file(tensors, tmp_path / "d" / "model.safetensors")
    ref = np.load(FIXTURES / "families" / "reference_distilbert.npz")
    out = AutoModel.from_pretrained(tmp_path / "d")(ref["padded/input_ids"], attention_mask=ref["padded/attention_mask"])
    real = ref["padded/attention_mask"].astype(bool)
    assert np.abs(out.last_hidden_state - ref["padded/last_hidden_state"])[real].max() <= HIDDEN_TOL


@pytest.mark.parametrize("name", FAMILIES)
def test_command_line_takes_every_family(name, tmp_path, capsys):
    """minibert info and encode on each family's checkpoint (mean pooling when it has no sentence-transformers
    files)."""
    from minibert.cli import main
    assert main(["info", str(folder(name))]) == 0
    assert name in capsys.readouterr().out
    (tmp_path / "in.txt").write_text("The cat sat.\nA dog barked.\n", encoding="utf-8")
    assert main(["encode", "--input", str(tmp_path / "in.txt"), "--output", str(tmp_path / "out.npy"),
                 "--model", str(folder(name))]) == 0
    vectors = np.load(tmp_path / "out.npy")
    assert_batch_invariant(vectors, SentenceEncoder.from_pretrained(folder(name)).encode(["The cat sat.", "A dog barked."]))


@pytest.mark.parametrize("name", FAMILIES)
def test_word_vectors_explain_and_compare_take_every_family(name, capsys):
    """A word found by character offsets whatever the tokenizer (BPE's leading-space pieces, Unigram's ▁), through
    word_vectors, explain and compare.py --model."""
    import json
    import compare
    from minibert import word_vectors
    from minibert.explain import explain
    model, tok = AutoModel.from_pretrained(folder(name)), Tokenizer.from_pretrained(folder(name))
    vectors = word_vectors(model, tok, ["The cat sat.", "A river bank."], ["cat", "river"], layers="all")
    assert vectors.shape == (2, model.config.num_hidden_layers + 1, model.config.hidden_size)
    e = explain(model, tok, "The cat sat on the mat.", "cat")
    assert e.word.text == "cat" and len(e.layers) == model.config.num_hidden_layers
    assert compare.main(["--model", str(folder(name)), "--glove", "none", "--json", "--word", "cat",
                         "--sentence", "The cat sat.", "--sentence", "A cat ran."]) == 0
    assert json.loads(capsys.readouterr().out)
