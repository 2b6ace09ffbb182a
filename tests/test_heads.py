"""Task heads against transformers and sentence-transformers: random-weight checkpoints of every family with a
masked-LM head and a classifier (and BERT's pretraining layout, untied, and a one-label cross-encoder), written
with their reference outputs by scripts/make_head_reference.py."""

import json
import shutil

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from conftest import FIXTURES, within
from minibert import (AutoModelForMaskedLM, AutoModelForSequenceClassification, CheckpointError, ConfigError,
                      CrossEncoder, InputError, Tokenizer, fill_mask)
from minibert.heads import top_k
from minibert.model import softmax
from minibert.tasks import identity, sigmoid

HEADS = FIXTURES / "heads"
FAMILIES = ["bert", "roberta", "xlm-roberta", "camembert", "distilbert", "electra", "mpnet"]
MLM_MODELS = FAMILIES + ["bert-pretraining"]
LOGITS_RTOL = 2e-5  # of max(1, |logits| max)
PROB_TOL = 1e-6
CE_TOL = 1e-5


def reference(name):
    return np.load(HEADS / f"reference_{name}.npz")


def cases(ref, head):
    return sorted({k.split("/")[1] for k in ref.files if k.startswith(head + "/")})


def inputs(ref, head, case):
    names = ("input_ids", "attention_mask", "token_type_ids")
    return {n: ref[f"{head}/{case}/{n}"] for n in names if f"{head}/{case}/{n}" in ref}


def scaled_diff(ours, theirs):
    return float(np.abs(ours - theirs).max()) / max(1.0, float(np.abs(theirs).max()))


@pytest.fixture(scope="module", params=MLM_MODELS)
def mlm(request):
    return request.param, AutoModelForMaskedLM.from_pretrained(HEADS / request.param), reference(request.param)


@pytest.mark.parametrize("path", ["fast", "reference"])
def test_masked_lm_logits_match_transformers(mlm, path):
    name, model, ref = mlm
    for case in cases(ref, "mlm"):
        batch = inputs(ref, "mlm", case)
        real = batch["attention_mask"].astype(bool)
        theirs = ref[f"mlm/{case}/logits"][real]  # (real tokens, V)
        ours = model(**batch, path=path).logits[real]
        assert within(f"heads {name} masked-LM logits (relative)", scaled_diff(ours, theirs), LOGITS_RTOL), case
        np.testing.assert_array_equal(ours.argmax(-1), theirs.argmax(-1), err_msg=f"{name}/{case} top-1")
        at = model(**batch, positions=real, path=path).logits  # only the real tokens, row by row
        assert at.shape == theirs.shape
        assert scaled_diff(at, theirs) <= LOGITS_RTOL


def test_positions_compute_only_those_rows(mlm):
    name, model, ref = mlm
    batch = inputs(ref, "mlm", "masked")
    tok = Tokenizer.from_pretrained(HEADS / name)
    masks = batch["input_ids"] == tok.mask_token_id
    out = model(**batch, positions=masks)
    assert out.logits.shape == (int(masks.sum()), model.config.vocab_size)
    assert out.last_hidden_state.shape[:2] == masks.shape
    with pytest.raises(InputError, match="positions: expected a boolean array of shape"):
        model(**batch, positions=masks.astype(int))


def test_fill_mask_equals_the_pipeline(mlm):
    name, model, _ = mlm
    expected = json.loads((HEADS / "reference_fill_mask.json").read_text(encoding="utf-8"))[name]
    tok = Tokenizer.from_pretrained(HEADS / name)
    for text, theirs in zip(expected["texts"], expected["results"], strict=True):
        ours = fill_mask(model, tok, text, top_k=expected["top_k"])
        flat_ours = ours if isinstance(ours[0], dict) else [c for row in ours for c in row]
        flat_theirs = theirs if isinstance(theirs[0], dict) else [c for row in theirs for c in row]
        assert isinstance(ours[0], dict) == isinstance(theirs[0], dict), text
        for o, t in zip(flat_ours, flat_theirs, strict=True):
            assert (o["token"], o["token_str"], o["sequence"]) == (t["token"], t["token_str"], t["sequence"]), text
            assert within(f"heads {name} fill-mask scores", abs(o["score"] - t["score"]), PROB_TOL)
    together = fill_mask(model, tok, expected["texts"][:2])  # a list of texts: one result each, as alone
    for text, ours in zip(expected["texts"][:2], together, strict=True):
        alone = fill_mask(model, tok, text)
        assert [c["token"] for c in ours] == [c["token"] for c in alone]
        assert max(abs(a["score"] - b["score"]) for a, b in zip(ours, alone)) <= PROB_TOL


def test_fill_mask_refuses_text_without_a_mask():
    model = AutoModelForMaskedLM.from_pretrained(HEADS / "roberta")
    tok = Tokenizer.from_pretrained(HEADS / "roberta")
    with pytest.raises(InputError, match=r"text\[0\]: no mask token '<mask>'"):
        fill_mask(model, tok, "No mask here.")
    with pytest.raises(InputError, match="top_k: expected a positive integer"):
        fill_mask(model, tok, "A <mask>.", top_k=0)


@pytest.fixture(scope="module", params=FAMILIES)
def classifier(request):
    return (request.param, AutoModelForSequenceClassification.from_pretrained(HEADS / request.param),
            reference(request.param))


@pytest.mark.parametrize("path", ["fast", "reference"])
def test_classifier_matches_transformers(classifier, path):
    name, model, ref = classifier
    assert model.config.id2label == {0: "contradiction", 1: "entailment", 2: "neutral"}
    assert model.config.label2id["neutral"] == 2 and model.config.num_labels == 3
    for case in cases(ref, "cls"):
        logits = model(**inputs(ref, "cls", case), path=path).logits
        theirs = ref[f"cls/{case}/logits"]
        assert within(f"heads {name} classifier logits (relative)", scaled_diff(logits, theirs), LOGITS_RTOL), case
        d = float(np.abs(softmax(logits) - ref[f"cls/{case}/probs"]).max())
        assert within(f"heads {name} classifier probabilities", d, PROB_TOL), case
        np.testing.assert_array_equal(logits.argmax(-1), theirs.argmax(-1))


def test_classifier_from_our_tokenizer_equals_transformers_inputs(classifier):
    name, _, ref = classifier
    tok = Tokenizer.from_pretrained(HEADS / name)
    batch = tok(["Is this the question?", "Short."], ["Yes, and this is the answer.", "A longer second text here."])
    np.testing.assert_array_equal(batch["input_ids"], ref["cls/pair/input_ids"])


@pytest.fixture(scope="module")
def cross_encoder():
    return CrossEncoder.from_pretrained(HEADS / "cross-encoder"), reference("cross-encoder")


def test_cross_encoder_predict_matches_sentence_transformers(cross_encoder):
    model, ref = cross_encoder
    pairs = [tuple(p) for p in ref["ce/pairs"].tolist()]
    assert model.max_length == int(ref["ce/max_length"]) == 24
    assert len(model.tokenizer(*map(list, zip(*pairs[3:4])))["input_ids"][0]) == 24  # the long pair is cut
    for batch_size in (32, 2):
        scores = model.predict(pairs, batch_size=batch_size)
        assert scores.shape == (len(pairs),) and scores.dtype == np.float32
        assert within("heads cross-encoder predict", float(np.abs(scores - ref["ce/scores"]).max()), CE_TOL)
    logits = model.predict(pairs, activation_fn=identity)
    assert within("heads cross-encoder logits", float(np.abs(logits - ref["ce/logits"]).max()), CE_TOL)
    assert abs(model.predict(pairs[0]) - ref["ce/scores"][0]) <= CE_TOL  # one pair: its score alone
    assert isinstance(model.predict(pairs, convert_to_numpy=False), list)


def test_cross_encoder_rank_matches_sentence_transformers(cross_encoder):
    model, ref = cross_encoder
    documents = ref["ce/documents"].tolist()
    ranked = model.rank(str(ref["ce/query"]), documents, return_documents=True)
    assert [r["corpus_id"] for r in ranked] == ref["ce/rank_ids"].tolist()
    assert np.abs(np.array([r["score"] for r in ranked]) - ref["ce/rank_scores"]).max() <= CE_TOL
    assert all(r["text"] == documents[r["corpus_id"]] for r in ranked)
    top = model.rank(str(ref["ce/query"]), documents, top_k=2)
    assert [r["corpus_id"] for r in top] == ref["ce/rank_ids"].tolist()[:2] and "text" not in top[0]


def test_rank_needs_one_label():
    nli = CrossEncoder.from_pretrained(HEADS / "bert")
    assert nli.activation_fn is identity  # three labels: logits as they are
    probs = nli.predict([("A man sleeps.", "A person rests.")], apply_softmax=True)
    assert probs.shape == (1, 3) and abs(probs.sum() - 1) < 1e-6
    with pytest.raises(InputError, match="rank: needs a model with one label"):
        nli.rank("q", ["d"])


def _with_config(tmp_path, name, **changes):
    folder = tmp_path / name
    shutil.copytree(HEADS / name, folder)
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, **changes}))
    return folder


def test_default_activation_follows_sentence_transformers(tmp_path):
    path = "torch.nn.modules.linear.Identity"
    assert CrossEncoder.from_pretrained(HEADS / "cross-encoder").activation_fn is sigmoid
    folder = _with_config(tmp_path / "a", "cross-encoder", sentence_transformers={"activation_fn": path})
    assert CrossEncoder.from_pretrained(folder).activation_fn is identity
    folder = _with_config(tmp_path / "b", "cross-encoder", sbert_ce_default_activation_function=path)
    assert CrossEncoder.from_pretrained(folder).activation_fn is identity
    (folder / "config_sentence_transformers.json").write_text(json.dumps(
        {"activation_fn": "torch.nn.modules.activation.Sigmoid"}))
    assert CrossEncoder.from_pretrained(folder).activation_fn is sigmoid  # this file comes first
    folder = _with_config(tmp_path / "x", "cross-encoder", sentence_transformers={"activation_fn": "my.Custom"})
    assert CrossEncoder.from_pretrained(folder).activation_fn is sigmoid  # not torch: passed over, as without trust
    folder = _with_config(tmp_path / "y", "cross-encoder", sentence_transformers={"activation_fn": "torch.nn.GELU"})
    with pytest.raises(ConfigError, match="activation function 'torch.nn.GELU' is not one minibert has"):
        CrossEncoder.from_pretrained(folder)


def test_labels_from_config(tmp_path):
    folder = _with_config(tmp_path, "bert", id2label={"0": "a", "2": "c"})
    with pytest.raises(ConfigError, match="'id2label': expected the indices 0 to n - 1"):
        AutoModelForSequenceClassification.from_pretrained(folder)
    folder = _with_config(tmp_path / "p", "bert", problem_type="ranking")
    with pytest.raises(ConfigError, match="'problem_type': expected one of regression"):
        AutoModelForSequenceClassification.from_pretrained(folder)
    folder = _with_config(tmp_path / "n", "bert", id2label={"0": "a", "1": "b"}, label2id=None)
    with pytest.raises(CheckpointError, match=r"classifier\.out_proj\.weight' has shape \[3, 48\]; the config "
                                              r"implies \[2, 48\]"):
        AutoModelForSequenceClassification.from_pretrained(folder)


def test_models_without_the_head_say_so():
    with pytest.raises(CheckpointError, match="has no masked language model head"):
        AutoModelForMaskedLM.from_pretrained(FIXTURES / "families" / "roberta")
    with pytest.raises(CheckpointError, match="has no classification head"):
        AutoModelForSequenceClassification.from_pretrained(HEADS / "bert-pretraining")


# ----------------------------------------------------------------------------------------------------------------
# The command line: minibert fill, classify, rerank
# ----------------------------------------------------------------------------------------------------------------

def run(capsys, *argv):
    from minibert import cli
    status = cli.main(list(map(str, argv)))
    out, err = capsys.readouterr()
    return status, out, err


def test_cli_fill(capsys):
    folder = HEADS / "roberta"
    status, out, err = run(capsys, "fill", "The cat <mask> on the mat.", "--model", folder, "--top-k", 3)
    assert status == 0 and err == ""
    expected = fill_mask(AutoModelForMaskedLM.from_pretrained(folder), Tokenizer.from_pretrained(folder),
                         "The cat <mask> on the mat.", top_k=3)
    assert out.splitlines() == [f"{c['score']:.4f}\t{c['token_str']}\t{c['sequence']}" for c in expected]
    status, out, _ = run(capsys, "fill", "<mask> <mask> here.", "--model", folder, "--json")
    assert status == 0 and [len(row) for row in json.loads(out)] == [5, 5]


def test_cli_fill_errors(capsys):
    status, _, err = run(capsys, "fill", "The cat [MASK].", "--model", FIXTURES / "families" / "electra")
    assert status == 1 and len(err.splitlines()) == 1
    assert "has no masked language model head" in err and "e.g. google-bert/bert-base-uncased" in err
    status, _, err = run(capsys, "fill", "No mask.", "--model", HEADS / "bert")
    assert status == 1 and "no mask token '[MASK]'" in err
    assert run(capsys, "fill", "A [MASK].", "--model", HEADS / "bert", "--top-k", 0)[0] == 1
    with pytest.raises(SystemExit) as e:
        run(capsys, "fill", "A [MASK].")  # no --model: usage
    assert e.value.code == 2


def test_cli_classify(tmp_path, capsys):
    texts = ["I loved it.", "Not good at all.", "Fine."]
    (tmp_path / "t.txt").write_text("\n".join(texts) + "\n")
    folder = HEADS / "distilbert"
    status, out, err = run(capsys, "classify", tmp_path / "t.txt", "--model", folder, "--batch-size", 2)
    assert status == 0 and err == ""
    model = AutoModelForSequenceClassification.from_pretrained(folder)
    probs = softmax(model(**Tokenizer.from_pretrained(folder)(texts)).logits)
    assert out.splitlines() == [f"{model.config.id2label[int(p.argmax())]}\t{p.max():.4f}" for p in probs]
    status, out, _ = run(capsys, "classify", tmp_path / "t.txt", "--model", folder, "--json")
    rows = [json.loads(line) for line in out.splitlines()]
    assert all(abs(sum(r["scores"].values()) - 1) < 1e-6 for r in rows)
    multi = _with_config(tmp_path, "distilbert", problem_type="multi_label_classification")
    status, out, _ = run(capsys, "classify", tmp_path / "t.txt", "--model", multi, "--json")
    scores = np.array([list(json.loads(line)["scores"].values()) for line in out.splitlines()])
    np.testing.assert_allclose(scores, sigmoid(model(**Tokenizer.from_pretrained(folder)(texts)).logits), atol=1e-6)
    status, out, _ = run(capsys, "classify", tmp_path / "t.txt", "--model", HEADS / "cross-encoder")
    one = HEADS / "cross-encoder"
    logits = AutoModelForSequenceClassification.from_pretrained(one)(**Tokenizer.from_pretrained(one)(texts)).logits
    assert out.splitlines() == [f"LABEL_0\t{v:.4f}" for v in logits[:, 0]]  # one label: a regression, the logit


def test_cli_classify_errors(tmp_path, capsys):
    (tmp_path / "t.txt").write_text("One.\n\nTwo.\n")
    status, _, err = run(capsys, "classify", tmp_path / "t.txt", "--model", HEADS / "bert")
    assert status == 1 and "t.txt:2: blank line" in err
    (tmp_path / "t.txt").write_text("One.\n")
    status, _, err = run(capsys, "classify", tmp_path / "t.txt", "--model", HEADS / "bert-pretraining")
    assert status == 1 and "has no classification head" in err and len(err.splitlines()) == 1


def test_cli_rerank(tmp_path, capsys):
    model, ref = CrossEncoder.from_pretrained(HEADS / "cross-encoder"), reference("cross-encoder")
    documents = ref["ce/documents"].tolist()
    (tmp_path / "docs.jsonl").write_text("".join(json.dumps({"text": d}) + "\n" for d in documents))
    status, out, err = run(capsys, "rerank", "--query", str(ref["ce/query"]), tmp_path / "docs.jsonl", "--model",
                           HEADS / "cross-encoder", "--top-k", 2)
    assert status == 0 and err == ""
    ranked = model.rank(str(ref["ce/query"]), documents, top_k=2)
    assert out.splitlines() == [f"{r['score']:.4f}\t{r['corpus_id'] + 1}\t{documents[r['corpus_id']]}"
                                for r in ranked]
    for folder in (HEADS / "bert", FIXTURES / "families" / "roberta"):  # three labels; no classifier at all
        status, _, err = run(capsys, "rerank", "--query", "q", tmp_path / "docs.jsonl", "--model", folder)
        assert status == 1 and "cross-encoder/ms-marco-MiniLM-L-6-v2" in err and len(err.splitlines()) == 1


def test_old_layer_norm_names_and_half_precision(tmp_path):
    """bert-base-uncased's own file says LayerNorm.gamma/beta, also in its head; fp16 heads are widened."""
    from safetensors.numpy import load_file, save_file
    folder = tmp_path / "old"
    shutil.copytree(HEADS / "bert-pretraining", folder)
    tensors = load_file(folder / "model.safetensors")
    renamed = {k.replace("LayerNorm.weight", "LayerNorm.gamma").replace("LayerNorm.bias", "LayerNorm.beta"): v
               for k, v in tensors.items()}
    assert "cls.predictions.transform.LayerNorm.gamma" in renamed
    save_file(renamed, folder / "model.safetensors")
    ref = reference("bert-pretraining")
    batch = inputs(ref, "mlm", "masked")
    real = batch["attention_mask"].astype(bool)
    ours = AutoModelForMaskedLM.from_pretrained(folder)(**batch).logits[real]
    assert scaled_diff(ours, ref["mlm/masked/logits"][real]) <= LOGITS_RTOL
    save_file({k: v.astype(np.float16) if k.startswith("cls.") else v for k, v in tensors.items()},
              folder / "model.safetensors")
    half = AutoModelForMaskedLM.from_pretrained(folder)(**batch).logits[real]
    assert half.dtype == np.float32 and scaled_diff(half, ref["mlm/masked/logits"][real]) <= 1e-2


def test_nan_in_a_tied_decoder_is_found(tmp_path):
    """A tied decoder reads every row of the word table: a NaN anywhere in it is refused with strict, warned
    about without (the encoder alone checks only the rows it looks up)."""
    import shutil
    from safetensors.numpy import load_file, save_file
    from minibert import AutoModelForMaskedLM, CheckpointError
    shutil.copytree(FIXTURES / "heads" / "bert", tmp_path / "m")
    path = tmp_path / "m" / "model.safetensors"
    tensors = load_file(path)
    name = next(n for n in tensors if n.endswith("word_embeddings.weight"))
    assert not any(n.endswith("decoder.weight") for n in tensors), "the fixture's decoder is tied"
    tensors[name][len(tensors[name]) - 1, 0] = np.nan
    save_file(tensors, path)
    with pytest.raises(CheckpointError, match="word_embeddings.weight' holds NaN"):
        AutoModelForMaskedLM.from_pretrained(tmp_path / "m", strict=True)([[2, 5, 3]])
    with pytest.warns(RuntimeWarning, match="word_embeddings.weight' holds NaN"):
        AutoModelForMaskedLM.from_pretrained(tmp_path / "m")([[2, 5, 3]])


@settings(max_examples=200, deadline=None)
@given(st.integers(1, 4), st.integers(1, 60), st.integers(1, 70), st.integers(0, 2 ** 32 - 1), st.integers(1, 6))
def test_top_k_equals_a_stable_sort_cut_at_k(rows, vocab, k, seed, levels):
    """Every row's k highest scores, highest first and the lower id first on ties, as a stable argsort gives them
    (few distinct levels, so ties, including ties across the k-th place, are common)."""
    scores = np.random.default_rng(seed).integers(0, levels, (rows, vocab)).astype(np.float32) / levels
    expected = np.argsort(-scores, axis=-1, kind="stable")[:, :min(k, vocab)]
    np.testing.assert_array_equal(top_k(scores, k), expected)
