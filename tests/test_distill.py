"""minibert distill and StaticEncoder: the pipeline on the odd-bert fixture, the method's pieces, the output folder's
rules, model2vec's own format (a folder model2vec itself wrote), and a small sample of the real MiniLM."""

from __future__ import annotations

import json
import shutil
import sys

import numpy as np
import pytest
from safetensors.numpy import save_file

from conftest import FIXTURES, ODD_MODEL, REPO
from minibert import DEFAULT_MODEL, InputError, OutputError, SentenceEncoder, StaticEncoder, distill
from minibert.cli import main
from minibert.distill import OUTPUT_FILES, pca, token_vectors, zipf_weights

TEXTS = ["The cat sat on the mat.", "A dog barked.", "", "Ünïcödé, déjà vu!", "the the the"]
MODEL2VEC = FIXTURES / "model2vec-odd"


@pytest.fixture(scope="module")
def odd_static(tmp_path_factory):
    """odd-bert distilled to 8 dimensions, with two extra words (one already a token)."""
    words = tmp_path_factory.mktemp("words") / "extra.txt"
    words.write_text("Zyxwvut\nthe\n", encoding="utf-8")
    out = tmp_path_factory.mktemp("distilled") / "odd"
    result = distill(ODD_MODEL, out, dim=8, vocab=words)
    return out, result


def test_output_is_model2vec_format(odd_static):
    out, result = odd_static
    assert sorted(p.name for p in out.iterdir()) == sorted(OUTPUT_FILES)
    config = json.loads((out / "config.json").read_text())
    assert config["model_type"] == "model2vec" and config["hidden_dim"] == 8 and config["apply_pca"] == 8
    assert (result.vocab_size, result.extra_words, result.dim) == (3001, 1, 8)
    from safetensors.numpy import load_file
    assert load_file(out / "model.safetensors")["embeddings"].shape == (3001, 8)


def test_static_encoder_api(odd_static):
    encoder = StaticEncoder.from_pretrained(odd_static[0])
    vectors = encoder.encode(TEXTS)
    assert vectors.shape == (len(TEXTS), 8) and vectors.dtype == np.float32
    assert not vectors[2].any()  # no tokens: the zero vector
    assert encoder.encode(TEXTS[0]).shape == (8,)
    assert encoder.encode([]).shape == (0, 8)
    unit = encoder.encode(TEXTS, normalize_embeddings=True)
    assert np.allclose(np.linalg.norm(unit[[0, 1, 3, 4]], axis=1), 1, atol=1e-6)
    assert encoder.similarity(vectors[:2], vectors).shape == (2, len(TEXTS))
    with pytest.raises(InputError, match="batch_size"):
        encoder.encode(TEXTS, batch_size=0)


def test_static_encoder_is_batch_invariant(odd_static):
    encoder = StaticEncoder.from_pretrained(odd_static[0])
    together = encoder.encode(TEXTS * 3, batch_size=7)
    alone = np.stack([encoder.encode(t) for t in TEXTS * 3])
    assert np.array_equal(together, alone)


def test_extra_word_is_one_new_token(odd_static):
    encoder = StaticEncoder.from_pretrained(odd_static[0])
    assert encoder.token_ids(["zyxwvut", "ZYXWVUT"]) == [[3000], [3000]]  # lower-cased, as the model's tokenizer does


def test_token_row_is_the_encoders_pooled_vector():
    """Before PCA, a token's vector is what the sentence encoder gives the one-token text (pooling as it pools)."""
    encoder = SentenceEncoder.from_pretrained(ODD_MODEL, normalize=False)
    vocab = encoder.tokenizer.get_vocab()
    words = [w for w in ("cat", "the", "dog", "mat") if w in vocab]
    rows = token_vectors(encoder, np.array([vocab[w] for w in words]), batch_size=3)
    np.testing.assert_allclose(rows, encoder.encode(words), rtol=1e-5, atol=1e-6)


def test_pca_axes_uncorrelated_by_decreasing_variance():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(300, 10)) @ rng.normal(size=(10, 10))
    y = pca(x, 4)
    cov = np.cov(y.T.astype(np.float64))
    assert np.allclose(cov - np.diag(np.diag(cov)), 0, atol=1e-3 * cov.max())
    assert np.all(np.diff(np.diag(cov)) <= 0)
    full = pca(x, 10)  # all axes: a rotation of the centred points, distances kept
    centred = x - x.mean(axis=0)
    assert np.allclose(np.linalg.norm(full, axis=1), np.linalg.norm(centred, axis=1), rtol=1e-4)


def test_zipf_weights_rise_with_rank():
    w = zipf_weights(1000)
    assert w.shape == (1000,) and np.all(np.diff(w) > 0) and 0 < w[0] < w[-1] < 1


def test_output_folder_rules(tmp_path):
    kept = tmp_path / "kept"
    kept.mkdir()
    (kept / "notes.txt").write_text("mine")
    with pytest.raises(OutputError, match="not a previous"):
        distill(ODD_MODEL, kept, dim=4)
    assert [p.name for p in kept.iterdir()] == ["notes.txt"]
    a_file = tmp_path / "file"
    a_file.write_text("x")
    with pytest.raises(OutputError, match="is a file"):
        distill(ODD_MODEL, a_file, dim=4)
    out = tmp_path / "out"
    distill(ODD_MODEL, out, dim=4)
    distill(ODD_MODEL, out, dim=6, weighting="none")  # a previous distillation is replaced
    assert StaticEncoder.from_pretrained(out).get_sentence_embedding_dimension() == 6
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file", "kept", "out"]  # no temp folder left


def test_bad_settings_and_words(tmp_path):
    with pytest.raises(InputError, match="dim: 81 is more than"):
        distill(ODD_MODEL, tmp_path / "a", dim=81)
    with pytest.raises(InputError, match="weighting"):
        distill(ODD_MODEL, tmp_path / "a", weighting="sif")
    words = tmp_path / "words.txt"
    words.write_text("fine\nnew york\n")
    with pytest.raises(InputError, match=r"words.txt:2: 'new york' is 2 words"):
        distill(ODD_MODEL, tmp_path / "a", dim=4, vocab=words)
    assert not (tmp_path / "a").exists()


def test_cli_exit_codes(tmp_path, capsys):
    assert main(["distill", str(ODD_MODEL), "--output", str(tmp_path / "o"), "--dim", "4"]) == 0
    assert "3000 x 4 float32" in capsys.readouterr().err
    assert main(["distill", str(ODD_MODEL), "--output", str(tmp_path / "p"), "--dim", "0"]) == 1
    assert "dim: 0" in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:
        main(["distill", str(ODD_MODEL)])  # --output missing
    assert e.value.code == 2


def test_loads_model2vecs_own_output():
    """A folder model2vec wrote (float16 matrix, its tokenizer with [unused] tokens removed, normalize: true) gives
    model2vec's vectors, to float16 precision (model2vec averages in float16)."""
    expected = np.load(MODEL2VEC / "expected.npz")
    encoder = StaticEncoder.from_pretrained(MODEL2VEC)
    assert encoder.normalize
    np.testing.assert_allclose(encoder.encode(list(expected["texts"])), expected["vectors"], atol=2e-3)


def test_weights_and_mapping_of_newer_model2vec_files(tmp_path):
    """model2vec's optional `weights` (one scale per token) and `mapping` (token id -> row) tensors."""
    tokenizer = (MODEL2VEC / "tokenizer.json").read_text()
    V = max(json.loads(tokenizer)["model"]["vocab"].values()) + 1
    rng = np.random.default_rng(1)
    rows = rng.normal(size=(5, 3)).astype(np.float32)
    mapping = rng.integers(0, 5, size=V)
    weights = rng.uniform(0.5, 1.5, size=V).astype(np.float32)
    save_file({"embeddings": rows, "weights": weights, "mapping": mapping}, tmp_path / "model.safetensors")
    (tmp_path / "tokenizer.json").write_text(tokenizer)
    (tmp_path / "config.json").write_text('{"normalize": false}')
    encoder = StaticEncoder.from_pretrained(tmp_path)
    ids = encoder.token_ids(["the cat sat"])[0]
    expected = (rows[mapping[ids]] * weights[ids, None]).mean(axis=0)
    np.testing.assert_allclose(encoder.encode("the cat sat"), expected, rtol=1e-6)


def test_not_a_static_folder():
    with pytest.raises(Exception, match="not a static model folder"):
        StaticEncoder.from_pretrained(ODD_MODEL)


def test_real_minilm_sample():
    """A sample of MiniLM's vocabulary: a token's row is the encoder's one-word vector (before PCA)."""
    encoder = SentenceEncoder.from_pretrained(DEFAULT_MODEL, normalize=False)
    vocab = encoder.tokenizer.get_vocab()
    words = ["bank", "river", "money", "the", "quickly"]
    rows = token_vectors(encoder, np.array([vocab[w] for w in words]), batch_size=2)
    np.testing.assert_allclose(rows, encoder.encode(words), rtol=1e-4, atol=1e-5)


def test_compare_static_side_is_the_distilled_table(odd_static, capsys):
    """compare.py --static distilled:DIR: a word's static vector is the mean of its pieces' distilled rows."""
    sys.path.insert(0, str(REPO))
    import compare
    status = compare.main(["--model", str(ODD_MODEL), "--static", f"distilled:{odd_static[0]}", "--word", "cat",
                           "--sentence", "The cat sat.", "--sentence", "A cat ran.", "--json"])
    assert status == 0
    out = json.loads(capsys.readouterr().out)
    assert "distilled" in out["static"]["name"]
    [word] = out["words"]
    encoder = StaticEncoder.from_pretrained(odd_static[0])
    pieces = encoder.tokenizer.encode("cat", add_special_tokens=False).tokens
    assert word["static_keys"] == pieces
    np.testing.assert_allclose(word["static_head"], encoder.encode("cat")[:6], atol=1e-5)


def test_lowercasing_encoder_and_a_bpe_family(tmp_path):
    """A RoBERTa (byte-level BPE, cased) model whose sentence-transformers config lower-cases texts: the static
    tokenizer lower-cases too; extra words are refused (they need a WordPiece vocabulary)."""
    model = tmp_path / "roberta"
    shutil.copytree(FIXTURES / "families" / "roberta", model)
    (model / "modules.json").write_text(json.dumps([
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"}]))
    (model / "1_Pooling").mkdir()
    (model / "1_Pooling" / "config.json").write_text('{"pooling_mode_mean_tokens": true}')
    (model / "sentence_bert_config.json").write_text('{"do_lower_case": true}')
    distill(model, tmp_path / "out", dim=4)
    encoder = StaticEncoder.from_pretrained(tmp_path / "out")
    assert encoder.token_ids(["Cat DOG"]) == encoder.token_ids(["cat dog"])
    with pytest.raises(InputError, match="BPE tokenizer; extra words"):
        distill(model, tmp_path / "out2", dim=4, vocab=["zyxwvut"])


def test_empty_folder_is_filled(tmp_path):
    (tmp_path / "empty").mkdir()
    distill(ODD_MODEL, tmp_path / "empty", dim=4)
    assert sorted(p.name for p in (tmp_path / "empty").iterdir()) == sorted(OUTPUT_FILES)


def test_sentence_transformers_static_embedding_layout(tmp_path):
    """sentence-transformers' StaticEmbedding folder: `embedding.weight` under 0_StaticEmbedding/, a Normalize
    module in modules.json."""
    module = tmp_path / "0_StaticEmbedding"
    module.mkdir()
    shutil.copy(MODEL2VEC / "tokenizer.json", module / "tokenizer.json")
    V = max(json.loads((module / "tokenizer.json").read_text())["model"]["vocab"].values()) + 1
    rows = np.random.default_rng(2).normal(size=(V, 4)).astype(np.float32)
    save_file({"embedding.weight": rows}, module / "model.safetensors")
    (tmp_path / "config_sentence_transformers.json").write_text("{}")
    (tmp_path / "modules.json").write_text(json.dumps([
        {"idx": 0, "name": "0", "path": "0_StaticEmbedding", "type": "sentence_transformers.models.StaticEmbedding"},
        {"idx": 1, "name": "1", "path": "1_Normalize", "type": "sentence_transformers.models.Normalize"}]))
    encoder = StaticEncoder.from_pretrained(tmp_path)
    assert encoder.normalize
    ids = encoder.token_ids(["the cat"])[0]
    expected = rows[ids].mean(axis=0)
    np.testing.assert_allclose(encoder.encode("the cat"), expected / np.linalg.norm(expected), rtol=1e-5)
