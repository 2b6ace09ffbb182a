"""`explain`: a word's path through the layers, run as a user runs it, checked against the model's own outputs."""

import json
import re
import subprocess
import sys

import numpy as np
import pytest

from minibert.explain import contributions, cosine, explain, main, sublayer_steps

from conftest import REPO

CLASSIC = ["The cat sat on the mat.", "The cat chased the mouse."]


def run_explain(*args: str) -> subprocess.CompletedProcess:
    """`python compare.py explain ...`, as a user runs it."""
    return subprocess.run([sys.executable, "compare.py", "explain", *args], cwd=REPO, capture_output=True,
                          text=True, timeout=300)


def test_minibert_explain_subcommand_is_the_same_command():
    from minibert.cli import main
    assert main(["explain", "The cat sat.", "--word", "dog"]) == 1  # bad input: 1, as every minibert command


@pytest.fixture(scope="module")
def classic_runs():
    """The text report and the JSON of the same run, from a subprocess each."""
    text, js = run_explain(*CLASSIC, "--word", "cat"), run_explain(*CLASSIC, "--word", "cat", "--json")
    assert text.returncode == 0, text.stderr
    assert js.returncode == 0, js.stderr
    return text.stdout, json.loads(js.stdout)


def test_attention_rows_sum_to_one(classic_runs):
    _, data = classic_runs
    for s in data["sentences"]:
        T = len(s["tokens"])
        for layer in s["layers"][1:]:
            rows = np.array([layer["attention"]] + layer["heads"])  # (1 + N, T)
            assert rows.shape == (1 + data["num_heads"], T)
            assert (rows >= 0).all()
            np.testing.assert_allclose(rows.sum(axis=1), 1, atol=1e-5)


def test_cat_starts_identical_then_moves_apart(classic_runs):
    _, data = classic_runs
    (row,) = data["across"]
    distance, cos = row["distance"], row["cosine"]
    assert len(distance) == data["num_layers"] + 1
    assert distance[0] <= 1e-6 and cos[0] == pytest.approx(1, abs=1e-6)  # same token, same position: no context yet
    assert all(d > 0.5 for d in distance[1:])  # every layer after the embeddings carries context
    assert distance[-1] == max(distance) and distance[-1] > 2 * distance[1]
    assert cos[-1] < 0.9


def test_json_agrees_with_text(classic_runs):
    text, data = classic_runs
    layer_line = re.compile(r"^  layer (\d+)  cos to prev (\S+)  norm (\S+)  moved (\S+) = attention (\S+) "
                            r"\+ FFN (\S+)\n    step lengths  attention (\S+), FFN (\S+) \(sum (\S+) > moved", re.M)
    blocks = text.split("\nsentence ")[1:]
    assert len(blocks) == len(data["sentences"]) == 2
    for block, s in zip(blocks, data["sentences"]):
        n = data['sentences'].index(s) + 1
        assert block.startswith(f"{n} (S{n}): {s['sentence']!r}")
        found = layer_line.findall(block)
        assert len(found) == data["num_layers"]
        for (layer, cos, norm, moved, att, ffn, att_step, ffn_step, total), j in zip(found, s["layers"][1:]):
            assert int(layer) == j["layer"]
            assert cos == f"{j['cosine_to_previous']:.4f}" and norm == f"{j['norm']:.3f}"
            assert moved == f"{j['moved']:.3f}" and att == f"{j['attention_along']:.3f}"
            assert ffn == f"{j['feed_forward_along']:.3f}" and att_step == f"{j['attention_step']:.3f}"
            assert ffn_step == f"{j['feed_forward_step']:.3f}"
            assert j["attention_along"] + j["feed_forward_along"] == pytest.approx(j["moved"], rel=1e-5)
            assert float(total) >= float(moved)  # the step lengths alone do not add up: the triangle inequality
            np.testing.assert_allclose(sum(j["contribution"]), 1, atol=1e-5)
        all_heads = [ln for ln in block.splitlines() if ln.startswith("    all heads")]
        first = s["layers"][1]["attention"]
        best = int(np.argmax(first))
        assert all_heads[0].split()[2:4] == [s["tokens"][best], f"{first[best]:.3f}"]
        sink = s["layers"][2]  # layer 2: [CLS] takes most of the weight and gives little of the content
        assert sink["attention"][0] > 0.5 and sink["contribution"][0] < 0.15
    table = text.split("across sentences")[1].splitlines()[2:]
    for i, line in enumerate(table[:data["num_layers"] + 1]):
        layer, cos, dist = line.split()
        assert int(layer) == i
        assert cos == f"{data['across'][0]['cosine'][i]:.4f}" and dist == f"{data['across'][0]['distance'][i]:.4f}"


def test_measurements_come_from_the_forward_pass(minilm, minilm_tokenizer):
    e = explain(minilm, minilm_tokenizer, "The unaffable cat chased the mouse.", "unaffable")
    assert len(e.word.tokens) > 1  # several pieces, averaged
    batch = minilm_tokenizer(e.sentence)
    out = minilm(**batch, output_hidden_states=True)
    steps = sublayer_steps(minilm, batch)
    pieces = list(e.word.tokens)
    for i, v in enumerate(e.layers):
        before = out.hidden_states[i][0, pieces].mean(axis=0)
        after = out.hidden_states[i + 1][0, pieces].mean(axis=0)
        mid = steps[i].after_attention[pieces].mean(axis=0)
        assert v.cosine_to_previous == pytest.approx(cosine(before, after), abs=1e-6)
        assert v.attention_step == pytest.approx(np.linalg.norm(mid - before), rel=1e-5)
        assert v.feed_forward_step == pytest.approx(np.linalg.norm(after - mid), rel=1e-5)
        assert v.attention_step + v.feed_forward_step >= v.moved * (1 - 1e-6)  # triangle inequality
        assert 0 < v.attention_share < 1
        assert v.attention_along + v.feed_forward_along == pytest.approx(v.moved, rel=1e-5)
        step = steps[i]  # the contributions are the attention output, taken apart token by token
        parts = contributions(step, minilm.weights.layers[i], pieces, minilm.config.num_attention_heads)
        np.testing.assert_allclose(parts.sum(axis=0) + minilm.weights.layers[i].attention_output.bias,
                                   step.attention_output[pieces].mean(axis=0), atol=1e-5)
        np.testing.assert_allclose(v.attention.sum(), 1, atol=1e-5)
        assert not any(e.context[t] for t in pieces) and e.context[0] is False  # word and [CLS] are not context
        assert v.heads[v.top_heads[0]][list(np.flatnonzero(e.context))].max() >= \
            v.heads[v.top_heads[-1]][list(np.flatnonzero(e.context))].max()


def test_word_not_in_sentence_is_a_clear_error():
    r = run_explain("The dog barked.", "--word", "cat")
    assert r.returncode == 1 and r.stdout == ""
    assert r.stderr.strip().endswith("error: word 'cat' not found (as a whole word, ignoring case) "
                                     "in sentence 'The dog barked.'")


def test_plot_without_matplotlib_says_so(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # makes `import matplotlib` fail
    assert main(["The cat sat.", "--word", "cat", "--plot", "x.png"], prog="explain") == 1
    err = capsys.readouterr().err
    assert err.startswith("explain: error: --plot needs matplotlib, which is not installed: pip install matplotlib")


def test_plot_writes_a_png(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    target = tmp_path / "cat.png"
    assert main([*CLASSIC, "--word", "cat", "--plot", str(target)]) == 0
    assert target.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert [p.name for p in tmp_path.iterdir()] == ["cat.png"]  # no temporary file left behind
    assert f"wrote {target}" in capsys.readouterr().err


def test_tour_is_current():
    r = subprocess.run([sys.executable, "docs/make_tour.py", "--check"], cwd=REPO, capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr
    tour = (REPO / "docs" / "how-attention-builds-context.md").read_text(encoding="utf-8")
    for heading in ("Queries, keys and values", "Why a dot product measures relevance", "Why divide by √D",
                    "Why several heads", "What each token contributes: weight × value",
                    "Adding back: the residual and post-LN", "The division of labour", "The last layer's drop"):
        assert f"### {heading}\n" in tour
    assert tour.index("`the@1`") < tour.index("the@1 0.175")  # the notation is explained before it is used


def test_long_sentence_is_abbreviated_and_its_cut_reported(capsys):
    from minibert.cli import main
    sentence = "The cat " + "sat on the mat and " * 950  # about 18,000 characters, far over 512 tokens
    assert main(["explain", sentence, "--word", "cat"]) == 0
    out, err = capsys.readouterr()
    echo = next(line for line in out.splitlines() if line.startswith("sentence 1 (S1): "))
    assert len(echo) < 300 and f"({len(sentence):,} characters)" in echo
    assert re.match(r"^minibert explain: sentence 1 has \d+ tokens; cut at the model's maximum of 512: the rest is "
                    r"not seen$", err.strip())


def test_plot_shows_word_to_word_attention_with_labelled_axes(minilm, minilm_tokenizer, tmp_path):
    pytest.importorskip("matplotlib")
    from matplotlib.image import imread
    from minibert.explain import plot, word_attention
    e = explain(minilm, minilm_tokenizer, "The unaffable hedgehog slept.", "hedgehog")
    kept, rows, parked = word_attention(e, e.attentions[1])
    assert e.tokens[kept[0]] != "[CLS]" and e.tokens[kept[-1]] != "[SEP]" and len(kept) == len(e.tokens) - 2
    np.testing.assert_allclose(rows.sum(axis=1), 1, atol=1e-5)
    assert (parked > 0).all() and (parked < 1).all()
    target = plot([e, explain(minilm, minilm_tokenizer, "A hedgehog ate.", "hedgehog")], tmp_path / "e.png")
    image = imread(target)
    assert image.shape[0] > 300 and image.shape[1] > 1000 and image[..., :3].std() > 0.05  # drawn, not blank


# ----------------------------------------------------------------------------------------------------------------
# With a masked-LM head: the head's guesses for the mask after every layer (random-weight fixtures)
# ----------------------------------------------------------------------------------------------------------------

HEADS = REPO / "tests" / "fixtures" / "heads"


@pytest.mark.parametrize("family", ["bert", "roberta"])
def test_layer_predictions_end_with_fill_masks(family):
    from minibert import AutoModelForMaskedLM, Tokenizer, fill_mask
    from minibert.explain import layer_predictions
    mlm, tok = AutoModelForMaskedLM.from_pretrained(HEADS / family), Tokenizer.from_pretrained(HEADS / family)
    sentence = f"The cat {tok.mask_token} on the mat."
    e = explain(mlm.base_model, tok, sentence, tok.mask_token)
    guesses = layer_predictions(mlm, tok, e.vectors[1:], top_k=4)  # the reference path's vectors
    assert len(guesses) == mlm.config.num_hidden_layers
    for layer in guesses:
        scores = [g["score"] for g in layer]
        assert len(layer) == 4 and sum(scores) <= 1 and scores == sorted(scores, reverse=True)
    filled = fill_mask(mlm, tok, sentence, top_k=4)  # the fast path
    assert [g["token"] for g in guesses[-1]] == [f["token"] for f in filled]
    assert [g["token_str"] for g in guesses[-1]] == [f["token_str"] for f in filled]
    np.testing.assert_allclose([g["score"] for g in guesses[-1]], [f["score"] for f in filled], rtol=1e-4)
    assert guesses[0] != guesses[-1]  # each layer's own guesses, not the last one's repeated


def run_minibert(capsys, *args):
    from minibert.cli import main as minibert
    status = minibert(["explain", *map(str, args)])
    out = capsys.readouterr()
    return status, out.out, out.err


def test_explain_masks_the_word_and_shows_each_layers_guesses(capsys):
    from minibert import AutoModelForMaskedLM, Tokenizer, fill_mask
    args = ["The cat sat on the mat.", "The cat chased the mouse.", "--word", "cat", "--model", HEADS / "bert",
            "--top-k", "3"]
    status, out, err = run_minibert(capsys, *args, "--json")
    assert status == 0 and err == "", err
    data = json.loads(out)
    assert data["masked_lm_head"] is True and data["masked_word"] == "cat"
    mlm, tok = AutoModelForMaskedLM.from_pretrained(HEADS / "bert"), Tokenizer.from_pretrained(HEADS / "bert")
    for s, original in zip(data["sentences"], ["The cat sat on the mat.", "The cat chased the mouse."]):
        assert s["sentence"] == original.replace("cat", "[MASK]") and s["word"]["pieces"] == ["[MASK]"]
        assert [len(layer["predictions"]) for layer in s["layers"][1:]] == [3] * data["num_layers"]
        assert "predictions" not in s["layers"][0]
        last = s["layers"][-1]["predictions"]
        assert [g["token"] for g in last] == [f["token"] for f in fill_mask(mlm, tok, s["sentence"], top_k=3)]
    status, text, _ = run_minibert(capsys, *args)
    assert status == 0 and "'cat' is masked in every sentence" in text
    lines = [ln for ln in text.splitlines() if ln.startswith("    guesses here")]
    assert len(lines) == 2 * data["num_layers"]
    first = data["sentences"][0]["layers"][1]["predictions"][0]
    assert lines[0].split()[2:4] == [first["token_str"], f"{first['score']:.3f}"]


def test_explain_follows_the_mask_without_word(capsys):
    status, out, err = run_minibert(capsys, "The cat <mask> on the mat.", "--model", HEADS / "roberta", "--json")
    assert status == 0 and err == "", err
    data = json.loads(out)
    assert data["masked_word"] is None and data["sentences"][0]["word"]["text"] == "<mask>"
    assert all(len(layer["predictions"]) == 5 for layer in data["sentences"][0]["layers"][1:])
    status, _, err = run_minibert(capsys, "The cat sat on the mat.", "--model", HEADS / "roberta")
    assert status == 1 and err.splitlines() == [
        "minibert explain: error: sentence 1: no --word given and no mask token '<mask>' to follow; expected "
        "'<mask>' in it, or --word W"]


def test_explain_without_the_head_says_so_in_one_line(capsys):
    status, out, err = run_minibert(capsys, "The cat [MASK] on the mat.", "--json")  # all-MiniLM-L6-v2: no head
    assert status == 0
    assert err.splitlines() == [
        "minibert explain: sentence-transformers/all-MiniLM-L6-v2 has no masked-LM head, so no per-layer guesses "
        "for the mask; a model with one: google-bert/bert-base-uncased"]
    data = json.loads(out)
    assert data["masked_lm_head"] is False and data["masked_word"] is None
    assert not any("predictions" in layer for s in data["sentences"] for layer in s["layers"])
    status, out, err = run_minibert(capsys, "The cat sat on the mat.", "--word", "cat")  # no mask: as before
    assert status == 0 and err == "" and "guesses" not in out and "masked" not in out
    status, _, err = run_minibert(capsys, "The cat [mask] on the mat.")  # not the mask token: the case counts
    assert status == 1 and "no mask token '[MASK]' to follow" in err
