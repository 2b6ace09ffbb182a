"""SentenceEncoder against sentence-transformers' own all-MiniLM-L6-v2 vectors (stored by
scripts/make_st_reference.py), batching that never changes a vector, pooling, chunking and bad input."""

import json
import shutil
import sys
from dataclasses import replace

import numpy as np
import pytest

from conftest import FIXTURES, ODD_MODEL, assert_batch_invariant, within
from minibert import BertModel, CheckpointError, InputError, SentenceEncoder, Tokenizer
from minibert.encoder import _windows, pool, read_layout, read_pooling_modes, similarity


@pytest.fixture(scope="module")
def reference():
    with np.load(FIXTURES / "st_reference_minilm.npz") as z:
        return {k: z[k] for k in z.files}


@pytest.fixture(scope="module")
def encoder():
    return SentenceEncoder.from_pretrained()


@pytest.fixture(scope="module")
def raw_encoder(encoder):
    """The same model without its Normalize module."""
    return SentenceEncoder(encoder.model, encoder.tokenizer, replace(encoder.layout, normalize=False))


@pytest.fixture(scope="module")
def encoded(encoder, reference):
    return encoder.encode(list(reference["sentences"]))


def check_rows(label, ours, theirs):
    """max |diff| <= 1e-5 and cosine >= 0.99999 for every row."""
    assert ours.dtype == np.float32 and ours.shape == theirs.shape
    diff = np.abs(ours - theirs).max(axis=1)
    cos = (ours * theirs).sum(1) / np.linalg.norm(ours, axis=1) / np.linalg.norm(theirs, axis=1)
    assert within(label, float(diff.max()), 1e-5), f"worst row {diff.argmax()}: {diff.max():.2e}"
    assert cos.min() >= 0.99999, f"worst row {cos.argmin()}: cosine {cos.min():.7f}"


# ----------------------------------------------------------------------------------------------------------------
# Exactness against sentence-transformers
# ----------------------------------------------------------------------------------------------------------------

def test_reference_covers_the_hard_cases(reference):
    texts, counts = list(reference["sentences"]), reference["token_counts"]
    assert len(texts) == 200 and "" in texts and counts.max() == 256 and (counts == 256).sum() >= 3
    assert any(not t.isascii() for t in texts) and counts.min() == 2


def test_sentence_embeddings_match(encoded, reference):
    check_rows("encoder: sentence_embedding (normalized)", encoded, reference["sentence_embedding"])
    np.testing.assert_allclose(np.linalg.norm(encoded, axis=1), 1, atol=1e-6)


def test_pooled_embeddings_without_normalize_match(raw_encoder, reference):
    raw = raw_encoder.encode(list(reference["sentences"]), batch_size=64)
    check_rows("encoder: mean pooled (no Normalize)", raw, reference["pooled"])
    assert np.linalg.norm(raw, axis=1).max() > 2  # really unnormalized


def test_normalize_embeddings_on_raw_model(raw_encoder, reference):
    texts = list(reference["sentences"][:40])
    check_rows("encoder: normalize_embeddings=True", raw_encoder.encode(texts, normalize_embeddings=True),
               reference["sentence_embedding"][:40])


def test_token_counts_match(encoder, reference):
    batch = encoder.tokenizer(list(reference["sentences"]), max_length=encoder.max_seq_length)
    assert batch["attention_mask"].sum(1).tolist() == reference["token_counts"].tolist()


def test_token_embeddings_match(encoder, reference):
    rows = reference["token_rows"]
    texts = [str(reference["sentences"][i]) for i in rows]
    tokens = encoder.encode(texts, output_value="token_embeddings")
    assert all(t.shape == (reference["token_counts"][i], 384) for t, i in zip(tokens, rows))
    check_rows("encoder: token_embeddings", np.concatenate(tokens), reference["token_embeddings"])
    single = encoder.encode(texts[0], output_value="token_embeddings")
    assert_batch_invariant(single, tokens[0])


# ----------------------------------------------------------------------------------------------------------------
# Batching never changes a vector
# ----------------------------------------------------------------------------------------------------------------

def test_same_vector_alone_and_in_any_batch(encoder, encoded, reference):
    texts = list(reference["sentences"])
    rng = np.random.default_rng(0)
    order = rng.permutation(len(texts))[:80]  # other company, other batch sizes, other order
    shuffled = encoder.encode([texts[i] for i in order], batch_size=5)
    assert_batch_invariant(shuffled, encoded[order], "encoder: batch vs other batch (relative)")
    longest = int(reference["token_counts"].argmax())
    for i in list(rng.choice(len(texts), 10, replace=False)) + [longest]:
        alone = encoder.encode(texts[i])
        assert alone.shape == (384,)
        assert_batch_invariant(alone, encoded[i], "encoder: alone vs in a batch (relative)")


def test_duplicates_and_order(encoder):
    texts = ["b is longer than a", "a", "b is longer than a", "a", "something else entirely here"]
    out = encoder.encode(texts, batch_size=2)
    assert_batch_invariant(out[0], out[2])
    assert_batch_invariant(out[1], out[3])
    assert_batch_invariant(out[4], encoder.encode(texts[4]))


# ----------------------------------------------------------------------------------------------------------------
# Shapes, long inputs, similarity
# ----------------------------------------------------------------------------------------------------------------

def test_shapes(encoder):
    assert encoder.encode([]).shape == (0, 384) and encoder.encode([]).dtype == np.float32
    assert encoder.encode([], output_value="token_embeddings") == []
    assert encoder.encode(("a", "b")).shape == (2, 384)
    assert encoder.encode(np.array(["numpy strings"])).shape == (1, 384)
    assert encoder.get_sentence_embedding_dimension() == 384


def test_max_seq_length(encoder):
    text = "word " * 300
    assert encoder.max_seq_length == 256
    assert encoder.encode(text, output_value="token_embeddings").shape == (256, 384)
    short = SentenceEncoder(encoder.model, encoder.tokenizer, encoder.layout)
    short.max_seq_length = 16
    assert short.encode(text, output_value="token_embeddings").shape == (16, 384)
    with pytest.raises(InputError, match=r"max_seq_length: 513; expected an integer from 2 to .* \(512\)"):
        short.max_seq_length = 513


def test_windows():
    assert _windows(10, 254) == [(0, 10)]
    assert _windows(254, 254) == [(0, 254)]
    for n in (255, 400, 1000, 2731):
        spans = _windows(n, 254)
        assert spans[0][0] == 0 and spans[-1][1] == n and all(hi - lo == 254 for lo, hi in spans)
        overlaps = [a_hi - b_lo for (_, a_hi), (b_lo, _) in zip(spans, spans[1:])]
        assert min(overlaps) >= 254 // 4 and max(overlaps) - min(overlaps) <= 1


def test_chunked_long_text(encoder):
    words = ("The history of the river town is long and its people remember every flood. " * 150).split()[:2000]
    text = " ".join(words)
    ids = encoder.tokenizer(text, truncation=False)["input_ids"][0]  # (T,) with [CLS] ... [SEP]
    spans = _windows(len(ids) - 2, 254)
    assert len(ids) > 2000 and len(spans) == 1 + -(-(len(ids) - 2 - 254) // 190)
    windows = np.stack([np.concatenate([ids[:1], ids[1 + lo:1 + hi], ids[-1:]]) for lo, hi in spans])
    hidden = encoder.model(windows).last_hidden_state  # (W, 256, H): same length, no padding needed
    per_window = hidden.mean(axis=1)
    per_window /= np.linalg.norm(per_window, axis=1, keepdims=True)
    expected = per_window.mean(0) / np.linalg.norm(per_window.mean(0))
    chunked = encoder.encode([text, "short"], long_inputs="chunk")
    np.testing.assert_allclose(chunked[0], expected, atol=1e-6)
    assert np.linalg.norm(chunked[0]) == pytest.approx(1, abs=1e-6)
    truncated = encoder.encode(text)
    assert float(chunked[0] @ truncated) < 0.999  # the windows past the limit count
    np.testing.assert_allclose(chunked[1], encoder.encode("short"), atol=1e-6)


def test_similarity(encoder):
    a = encoder.encode(["A cat sits.", "Stocks fell sharply."])
    b = encoder.encode(["A kitten is sitting.", "The market dropped.", "A cat sits."])
    sim = encoder.similarity(a, b)
    assert sim.shape == (2, 3) and sim.dtype == np.float32
    np.testing.assert_allclose(sim, a @ b.T, atol=1e-6)  # unit vectors: cosine is the dot product
    assert sim[0, 0] > sim[0, 1] and sim[1, 1] > sim[1, 0] and sim[0, 2] == pytest.approx(1, abs=1e-6)
    np.testing.assert_allclose(similarity([3, 4], [[6, 8], [0, 0], [-4, 3]]), [[1, 0, 0]], atol=1e-7)
    with pytest.raises(InputError, match=r"a has vectors of size 2, b of size 3"):
        similarity([1, 2], [1, 2, 3])
    with pytest.raises(InputError, match=r"b has shape \(1, 1, 2\)"):
        similarity([1, 2], [[[1, 2]]])


def test_progress_bar(encoder, capsys):
    encoder.encode(["one", "two", "three"], show_progress_bar=True)
    assert "3/3" in capsys.readouterr().err
    encoder.encode(["one", "two", "three"])  # not a terminal, few texts: no bar
    assert capsys.readouterr().err == ""


def test_progress_bar_by_default_on_a_terminal_for_long_inputs(capsys, monkeypatch):
    encoder = SentenceEncoder.from_pretrained(ODD_MODEL)
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    encoder.encode(["a text"] * 255)
    assert capsys.readouterr().err == ""
    encoder.encode(["a text"] * 256)
    assert "256/256" in capsys.readouterr().err


def test_repr_and_settings(encoder):
    assert repr(encoder) == ("SentenceEncoder('sentence-transformers/all-MiniLM-L6-v2', dim=384, "
                             "max_seq_length=256, pooling=mean, normalize=True)")
    assert encoder.settings() == {"name_or_path": "sentence-transformers/all-MiniLM-L6-v2", "revision": None,
                                  "pooling": ["mean"], "normalize": True, "max_seq_length": 256,
                                  "do_lower_case": False, "truncate_dim": None}


# ----------------------------------------------------------------------------------------------------------------
# Layouts and pooling, on the small odd-shaped model
# ----------------------------------------------------------------------------------------------------------------

def st_folder(tmp_path, pooling, modules=("Transformer", "Pooling"), st_config=None):
    """A sentence-transformers layout around a copy of the odd model."""
    folder = tmp_path / "st"
    shutil.copytree(ODD_MODEL, folder)
    paths = {"Transformer": "", "Pooling": "1_Pooling", "Normalize": "2_Normalize", "Dense": "2_Dense"}
    (folder / "modules.json").write_text(json.dumps(
        [{"idx": i, "name": str(i), "path": paths[m], "type": f"sentence_transformers.models.{m}"}
         for i, m in enumerate(modules)]))
    (folder / "1_Pooling").mkdir()
    (folder / "1_Pooling" / "config.json").write_text(json.dumps({"word_embedding_dimension": 80, **pooling}))
    if st_config is not None:
        (folder / "sentence_bert_config.json").write_text(json.dumps(st_config))
    return folder


TEXTS = ["a short one", "a somewhat longer text than the first one", "x"]


def test_plain_bert_folder_means(odd, odd_tokenizer):
    encoder = SentenceEncoder.from_pretrained(ODD_MODEL)
    assert "plain BERT folder without sentence-transformers files: mean pooling" in repr(encoder)
    assert encoder.normalize is False and encoder.max_seq_length == 256
    batch = odd_tokenizer(TEXTS)
    hidden = odd(**batch).last_hidden_state
    mask = batch["attention_mask"][..., None]
    expected = (hidden * mask).sum(1) / mask.sum(1)
    np.testing.assert_allclose(encoder.encode(TEXTS), expected, atol=1e-5)


def test_pooling_modes_concatenate_in_sentence_transformers_order(tmp_path, odd, odd_tokenizer):
    folder = st_folder(tmp_path, {"pooling_mode_mean_sqrt_len_tokens": True, "pooling_mode_cls_token": True,
                                  "pooling_mode_max_tokens": True, "pooling_mode_mean_tokens": False},
                       modules=("Transformer", "Pooling", "Normalize"), st_config={"max_seq_length": 8})
    encoder = SentenceEncoder.from_pretrained(folder)
    assert encoder.pooling == ("cls", "max", "mean_sqrt_len_tokens") and encoder.normalize
    assert encoder.max_seq_length == 8 and encoder.get_sentence_embedding_dimension() == 240
    out = encoder.encode(TEXTS)
    assert out.shape == (3, 240)
    for text, vector in zip(TEXTS, out):
        hidden = odd(**odd_tokenizer(text, max_length=8)).last_hidden_state[0]  # (T, H)
        raw = np.concatenate([hidden[0], hidden.max(0), hidden.sum(0) / np.sqrt(len(hidden))])
        np.testing.assert_allclose(vector, raw / np.linalg.norm(raw), atol=1e-6)


def test_pool_ignores_padding():
    hidden = np.arange(24, dtype=np.float32).reshape(2, 3, 4) - 10  # (B, T, H)
    mask = np.array([[1, 1, 0], [1, 1, 1]])
    out = pool(hidden, mask, ("cls", "max", "mean", "mean_sqrt_len_tokens"))  # (2, 16)
    np.testing.assert_allclose(out[0], np.concatenate(
        [hidden[0, 0], hidden[0, 1], hidden[0, :2].mean(0), hidden[0, :2].sum(0) / np.sqrt(2)]), rtol=1e-7)
    np.testing.assert_allclose(out[1, 8:12], hidden[1].mean(0))


def test_new_style_pooling_mode(tmp_path):
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"embedding_dimension": 8, "pooling_mode": ["mean", "cls"]}))
    assert read_pooling_modes(path) == ("mean", "cls")
    path.write_text(json.dumps({"pooling_mode": "max"}))
    assert read_pooling_modes(path) == ("max",)
    path.write_text(json.dumps({"pooling_mode_cls_token": False}))
    assert read_pooling_modes(path) == ("mean",)  # nothing switched on: sentence-transformers means too


@pytest.mark.parametrize("config, mode", [({"pooling_mode_weightedmean_tokens": True}, "weightedmean"),
                                         ({"pooling_mode_lasttoken": True}, "lasttoken"),
                                         ({"pooling_mode": "median"}, "median")])
def test_unknown_pooling_mode(tmp_path, config, mode):
    folder = st_folder(tmp_path, config)
    with pytest.raises(CheckpointError, match=rf"1_Pooling/config\.json: pooling mode '{mode}' is not supported"):
        SentenceEncoder.from_pretrained(folder)


def test_unsupported_module(tmp_path):
    folder = st_folder(tmp_path, {}, modules=("Transformer", "Pooling", "Dense"))
    with pytest.raises(CheckpointError, match=r"modules\.json: module 'sentence_transformers\.models\.Dense' is "
                                              "not supported"):
        read_layout(folder)


def test_bad_modules_json(tmp_path):
    folder = st_folder(tmp_path, {}, modules=("Pooling", "Transformer"))
    with pytest.raises(CheckpointError, match=r"modules \['Pooling', 'Transformer'\]; expected Transformer"):
        read_layout(folder)
    (folder / "modules.json").write_text("{not json")
    with pytest.raises(CheckpointError, match=r"modules\.json: not valid JSON"):
        read_layout(folder)


def test_bad_max_seq_length(tmp_path):
    folder = st_folder(tmp_path, {}, st_config={"max_seq_length": "long"})
    with pytest.raises(CheckpointError, match=r"sentence_bert_config\.json: max_seq_length 'long'"):
        read_layout(folder)


def test_do_lower_case(tmp_path):
    folder = st_folder(tmp_path, {}, st_config={"do_lower_case": True})
    (folder / "tokenizer_config.json").write_text(json.dumps({"do_lower_case": False}))
    encoder = SentenceEncoder.from_pretrained(folder)
    assert encoder.tokenizer.tokenize("The CAT") != encoder.tokenizer.tokenize("the cat")  # a cased tokenizer
    np.testing.assert_array_equal(encoder.encode("The CAT Sat"), encoder.encode("the cat sat"))


def test_folder_without_tokenizer(tmp_path):
    folder = st_folder(tmp_path, {})
    (folder / "vocab.txt").unlink()
    with pytest.raises(CheckpointError, match=r"no tokenizer\.json, vocab\.json \+ merges\.txt, or vocab\.txt"):
        SentenceEncoder.from_pretrained(folder)


def test_tokenizer_larger_than_embedding_table(tmp_path):
    folder = st_folder(tmp_path, {})
    with open(folder / "vocab.txt", "a", encoding="utf-8") as f:
        f.write("".join(f"extra{i}\n" for i in range(5)))
    with pytest.raises(CheckpointError, match=r"the tokenizer has 3005 tokens \(ids up to 3004\) but the model's "
                                              r"embedding table only 3000 \(vocab_size\)"):
        SentenceEncoder.from_pretrained(folder)
    model, tokenizer = BertModel.from_pretrained(folder), Tokenizer.from_pretrained(folder)
    with pytest.raises(CheckpointError, match="3005 tokens"):
        SentenceEncoder(model, tokenizer)


# ----------------------------------------------------------------------------------------------------------------
# Bad arguments
# ----------------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("sentences, message", [
    (None, r"sentences: expected a string or a list of strings, got NoneType"),
    (["fine", None], r"sentences\[1\]: expected a string, got NoneType"),
    (["fine", "fine", 3], r"sentences\[2\]: expected a string, got int"),
    (b"bytes", r"sentences: expected a string or a list of strings, got bytes"),
    (42, r"sentences: expected a string or a list of strings, got int"),
])
def test_bad_sentences(encoder, sentences, message):
    with pytest.raises(InputError, match=message):
        encoder.encode(sentences)


@pytest.mark.parametrize("kwargs, message", [
    ({"batch_size": 0}, r"batch_size: 0; expected a positive integer"),
    ({"batch_size": 2.5}, r"batch_size: 2\.5; expected a positive integer"),
    ({"output_value": "pooler_output"}, r"output_value: 'pooler_output'; expected one of sentence_embedding, "
                                        "token_embeddings"),
    ({"long_inputs": "split"}, r"long_inputs: 'split'; expected one of truncate, chunk"),
    ({"long_inputs": "chunk", "output_value": "token_embeddings"}, r"cannot give token_embeddings"),
])
def test_bad_arguments(encoder, kwargs, message):
    with pytest.raises(InputError, match=message):
        encoder.encode(["text"], **kwargs)


def test_pickles_as_a_recipe(encoder, tmp_path, monkeypatch):
    import pickle
    blob = pickle.dumps(encoder)
    assert len(blob) < 2000
    again = pickle.loads(blob)
    assert again.settings() == encoder.settings()
    np.testing.assert_array_equal(again.encode("A cat."), encoder.encode("A cat."))
    monkeypatch.chdir(ODD_MODEL.parent)
    local = SentenceEncoder.from_pretrained("odd-bert", normalize=True)
    local.max_seq_length = 12
    blob = pickle.dumps(local)
    monkeypatch.chdir(tmp_path)  # a relative folder name still loads elsewhere
    again = pickle.loads(blob)
    assert again.max_seq_length == 12 and again.normalize and again.name_or_path == str(ODD_MODEL.resolve())
    with pytest.raises(TypeError, match="cannot pickle a SentenceEncoder built from objects; only one loaded with from_pretrained"):
        pickle.dumps(SentenceEncoder(encoder.model, encoder.tokenizer, encoder.layout))


# ----------------------------------------------------------------------------------------------------------------
# scripts/eval_stsb.py
# ----------------------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def stsb():
    import importlib.util
    from conftest import REPO
    spec = importlib.util.spec_from_file_location("eval_stsb", REPO / "scripts" / "eval_stsb.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_spearman(stsb):
    np.testing.assert_array_equal(stsb.rank(np.array([3, 1, 3, 2])), [3.5, 1, 3.5, 2])
    assert stsb.spearman([1, 2, 3, 4, 5], [5, 6, 7, 8, 7]) == pytest.approx(0.8207826816681233, abs=1e-12)
    assert stsb.spearman([1, 2, 3], [10, 20, 1000]) == pytest.approx(1)
    assert stsb.spearman([1, 2, 3], [3, 2, 1]) == pytest.approx(-1)


def test_stsb_file_with_extra_fields_and_quotes(stsb, tmp_path, capsys):
    (tmp_path / "sts-dev.csv").write_text(
        'main-captions\tMSRvid\t2012test\t0001\t5.000\tA man plays a guitar.\tA man is playing a guitar.\n'
        'main-news\theadlines\t2013\t0002\t0.5\t"Quoted" start\tSomething else "entirely\tsource\tlicence\n'
        'main-forums\tdeft-forum\t2014\t0003\t2.25\tA cat sits.\tA cat is sitting down.\n', encoding="utf-8")
    first, second, gold = stsb.read_split(tmp_path / "sts-dev.csv")
    assert second[1] == 'Something else "entirely' and first[1] == '"Quoted" start'
    np.testing.assert_array_equal(gold, [5, 0.5, 2.25])
    assert stsb.main([str(tmp_path), "--model", str(ODD_MODEL), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["pairs"] == 3 and result["sentences"] == 6 and -100 <= result["spearman_x100"] <= 100


@pytest.mark.parametrize("line, message", [
    ("a\tb\tc\td\t3.0\tonly one sentence\n", r"sts-dev\.csv:1: 6 tab-separated fields; expected at least 7"),
    ("a\tb\tc\td\tfive\tx\ty\n", r"sts-dev\.csv:1: score 'five' in column 5; expected a number from 0 to 5"),
    ("a\tb\tc\td\t5.5\tx\ty\n", r"sts-dev\.csv:1: score '5\.5' in column 5"),
])
def test_stsb_bad_lines(stsb, tmp_path, line, message):
    (tmp_path / "sts-dev.csv").write_text(line, encoding="utf-8")
    with pytest.raises(InputError, match=message):
        stsb.read_split(tmp_path / "sts-dev.csv")


def test_stsb_dev_start(stsb):
    from conftest import shared_data
    result = stsb.evaluate(shared_data("stsb"), "dev", "sentence-transformers/all-MiniLM-L6-v2", limit=100)
    assert result["pairs"] == 100 and result["spearman_x100"] == pytest.approx(94.33, abs=0.02)  # all: README
