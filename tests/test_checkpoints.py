"""Checkpoints from the wild: every layout loads exactly (vs PyTorch references from
scripts/make_wild_reference.py), a Hub cache folder loads offline through the networked code path, and the
layouts minibert cannot read fail with a message that says what to do."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from conftest import within
from minibert import BertModel, CheckpointError, Tokenizer
from minibert.weights import check_compatible, read_checkpoint
from wild import (LAYOUTS, WILD, base_tensors, encode, folder_files, hub_snapshot, make_layout, safetensors_bytes,
                  set_ref)

TOL = 2e-5


def reference(prefix: str) -> dict:
    """{case: {array: value}} for one model or dtype variant."""
    cases: dict = {}
    with np.load(WILD / "reference.npz") as z:
        for key in z.files:
            if key.startswith(prefix + "/"):
                _, case, name = key.split("/")
                cases.setdefault(case, {})[name] = z[key]
    return cases


def assert_matches(model: BertModel, tokenizer: Tokenizer | None, prefix: str, label: str, pooler: bool) -> None:
    """Tokenize each reference case (when a tokenizer is given) and run the model: ids equal, outputs within TOL."""
    for case, ref in reference(prefix).items():
        mask = ref["attention_mask"].astype(bool)
        if tokenizer is not None:
            batch = tokenizer(*_texts(case), max_length=model.config.max_position_embeddings)
            np.testing.assert_array_equal(batch["input_ids"], ref["input_ids"], err_msg=f"{label}/{case}")
            np.testing.assert_array_equal(batch["token_type_ids"], ref["token_type_ids"])
        out = model(ref["input_ids"], ref["attention_mask"], ref["token_type_ids"], output_hidden_states=True)
        diff = np.abs(out.last_hidden_state - ref["last_hidden_state"])[mask].max()
        assert within(f"wild {label} last_hidden_state", diff, TOL), (label, case, diff)
        hidden = np.abs(np.stack(out.hidden_states) - ref["hidden_states"])[:, mask].max()
        assert hidden < TOL, (label, case, hidden)
        assert (out.pooler_output is not None) == pooler
        if pooler:
            assert np.abs(out.pooler_output - ref["pooler_output"]).max() < TOL


def _texts(case: str) -> tuple:
    """The reference case's (texts, text_pairs or None), as the reference script tokenized them."""
    ref = reference("cases")[case]
    return [str(t) for t in ref["text"]], ([str(t) for t in ref["text_pair"]] if "text_pair" in ref else None)


@pytest.mark.parametrize("layout", list(LAYOUTS))
def test_layout_loads_exactly(layout, tmp_path):
    prefix, pooler = LAYOUTS[layout]
    folder = make_layout(layout, tmp_path / layout)
    model = BertModel.from_pretrained(folder, strict=True)
    assert_matches(model, Tokenizer.from_pretrained(folder), prefix, layout, pooler)


def test_layouts_really_differ(tmp_path):
    """The re-encoded layouts hold what their names say (so that the test above cannot pass by accident)."""
    dtypes = {layout: {t.dtype for t in read_checkpoint(make_layout(layout, tmp_path / layout)).values()}
              for layout in ("fp16", "bf16", "mixed", "pretraining")}
    assert dtypes == {"fp16": {"F16"}, "bf16": {"BF16"}, "mixed": {"F32", "F16", "BF16", "F64"},
                      "pretraining": {"F32", "I64"}}
    names = read_checkpoint(tmp_path / "pretraining")
    assert "bert.embeddings.LayerNorm.gamma" in names and "cls.predictions.transform.LayerNorm.beta" in names
    assert len(list((make_layout("sharded", tmp_path / "sharded")).glob("model-0000?-of-00003.safetensors"))) == 3
    for task, head in (("mlm", "cls.predictions.bias"), ("seqcls", "classifier.weight"), ("tokcls", "classifier.weight")):
        assert head in read_checkpoint(WILD / task)


def test_fp16_and_bf16_differ_from_fp32():
    """The dtype references are not the fp32 one: rounding the weights moves the output measurably."""
    fp32 = reference("base")["plain"]["last_hidden_state"]
    for variant in ("fp16", "bf16"):
        assert np.abs(reference(f"base@{variant}")["plain"]["last_hidden_state"] - fp32).max() > 10 * TOL


@pytest.mark.parametrize("variant", ["fp16", "bf16"])
def test_non_finite_weights_in_half_precision(variant, tmp_path):
    """An fp16/bf16 weight that is infinite (an fp16 overflow) or NaN: a warning naming it, an error if strict."""
    folder = make_layout("base", tmp_path)
    weights = base_tensors()
    weights["encoder.layer.0.intermediate.dense.bias"][5] = 1e6 if variant == "fp16" else np.inf  # fp16 max: 65504
    weights["embeddings.LayerNorm.weight"][0] = np.nan
    with np.errstate(over="ignore"):
        tensors = {n: encode(x, {"fp16": "F16", "bf16": "BF16"}[variant]) for n, x in weights.items()}
    (folder / "model.safetensors").write_bytes(safetensors_bytes(tensors))
    with pytest.warns(RuntimeWarning) as caught:
        BertModel.from_pretrained(folder)([[2, 5, 3]])
    assert sorted(str(w.message) for w in caught) == [
        f"tensor {name!r} holds NaN or infinite values"
        for name in ("embeddings.LayerNorm.weight", "encoder.layer.0.intermediate.dense.bias")]
    with pytest.raises(CheckpointError, match=r"'embeddings\.LayerNorm\.weight' holds NaN or infinite"):
        BertModel.from_pretrained(folder, strict=True)([[2, 5, 3]])


def test_pytorch_bin_only_is_never_unpickled(tmp_path):
    """A pickle that would run code if unpickled: minibert refuses it with a message saying how to convert."""
    folder = make_layout("base", tmp_path)
    (folder / "model.safetensors").unlink()
    marker = tmp_path / "pwned"
    payload = f"cos\nsystem\n(S'touch {marker}'\ntR.".encode()  # pickle protocol 0: os.system("touch ...")
    (folder / "pytorch_model.bin").write_bytes(payload)
    with pytest.raises(CheckpointError, match=r"only pytorch_model\.bin found\. minibert never unpickles .* "
                                              r"save_file\(.*'model\.safetensors'\)"):
        BertModel.from_pretrained(folder)
    assert not marker.exists()


def test_tokenizer_larger_than_embedding_table(tmp_path):
    folder = make_layout("base", tmp_path)
    model = BertModel.from_pretrained(folder)
    check_compatible(Tokenizer.from_pretrained(folder), model)  # the same checkpoint: fine
    vocab = (folder / "vocab.txt").read_text().splitlines()
    (folder / "vocab.txt").write_text("\n".join(vocab + [f"extra{i}" for i in range(7)]) + "\n")
    big = Tokenizer.from_pretrained(folder)
    V = model.config.vocab_size
    with pytest.raises(CheckpointError, match=rf"the tokenizer has {V + 7} tokens \(ids up to {V + 6}\) but the model's "
                                              rf"embedding table only {V} \(vocab_size\) rows"):
        check_compatible(big, model)


def test_cased_and_uncased_vocab_txt(tmp_path):
    """do_lower_case in tokenizer_config.json decides: the uncased base lowercases and strips accents, the cased
    small-config keeps both (ids checked against transformers' for every case in test_layout_loads_exactly)."""
    uncased = Tokenizer.from_pretrained(WILD / "base")
    cased = Tokenizer.from_pretrained(WILD / "small-config")
    assert uncased.tokenize("Paris café") == ["paris", "c", "##a", "##f", "##e"]
    assert cased.tokenize("Paris café") == ["Paris", "café"]
    assert not (WILD / "base" / "tokenizer.json").exists()


# ---------------------------------------------------------------------------------------------------------------
# The Hugging Face Hub cache, offline, through the same call a networked user makes
# ---------------------------------------------------------------------------------------------------------------

REPO_ID = "tiny-org/tiny-bert"
MAIN = "a" * 40  # refs/main -> the small-config model (one file)
OTHER = "b" * 40  # an older commit: the base model, sharded (every shard a symlink into blobs/)

HUB_SCRIPT = textwrap.dedent("""
    import json, sys
    import numpy as np
    from minibert import BertModel, Tokenizer, MinibertError

    results = {}
    for label, name, revision in json.loads(sys.argv[1]):
        try:
            model = BertModel.from_pretrained(name, revision=revision)
            tok = Tokenizer.from_pretrained(name, revision=revision)
            ids = tok("The cat sat on the mat.")
            results[label] = {"folder": str(model.tensors["embeddings.word_embeddings.weight"].file.parent),
                              "hidden": model.config.hidden_size, "ids": ids["input_ids"].tolist(),
                              "out": model(**ids).last_hidden_state.tolist()}
        except MinibertError as e:
            results[label] = {"error": f"{type(e).__name__}: {e}"}
    print(json.dumps(results))
""")


@pytest.fixture(scope="module")
def hub_cache(tmp_path_factory):
    cache = tmp_path_factory.mktemp("hub") / "hub"
    tmp = tmp_path_factory.mktemp("layouts")
    hub_snapshot(cache, REPO_ID, MAIN, folder_files(make_layout("small-config", tmp / "small")))
    hub_snapshot(cache, REPO_ID, OTHER, folder_files(make_layout("sharded", tmp / "sharded")))
    set_ref(cache, REPO_ID, "main", MAIN)
    return cache


def run_offline(cache, calls) -> dict:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HUB_CACHE": str(cache), "HF_HOME": str(cache.parent / "home")}
    env.pop("HF_HUB_DISABLE_SYMLINKS", None)
    done = subprocess.run([sys.executable, "-c", HUB_SCRIPT, json.dumps(calls)], env=env, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_hub_cache_offline(hub_cache):
    r = run_offline(hub_cache, [
        ("main", REPO_ID, None), ("by-name", REPO_ID, "main"), ("by-hash", REPO_ID, OTHER),
        ("missing-repo", "tiny-org/not-downloaded", None), ("missing-rev", REPO_ID, "c" * 40),
    ])
    snapshots = hub_cache / "models--tiny-org--tiny-bert" / "snapshots"
    # refs/main is honoured, and so is a commit hash; each loads the right snapshot, exactly.
    assert r["main"]["folder"] == r["by-name"]["folder"] == str(snapshots / MAIN)
    assert r["main"]["hidden"] == 36 and r["main"] == r["by-name"]
    assert r["by-hash"]["folder"] == str(snapshots / OTHER) and r["by-hash"]["hidden"] == 32
    for label, prefix in (("main", "small-config"), ("by-hash", "base")):
        ref = reference(prefix)["plain"]
        assert r[label]["ids"] == ref["input_ids"][:1, : len(r[label]["ids"][0])].tolist()
        n = len(r[label]["ids"][0])
        assert np.abs(np.array(r[label]["out"])[0] - ref["last_hidden_state"][0, :n]).max() < TOL
    # Nothing there offline: the message says what to download or set.
    assert r["missing-repo"]["error"] == (
        f"CheckpointError: tiny-org/not-downloaded: not in the Hugging Face cache ({hub_cache}) and HF_HUB_OFFLINE "
        "is set. Download it once with network access (`hf download tiny-org/not-downloaded`), point HF_HUB_CACHE "
        "at a cache that holds it, or pass the path of a local model folder.")
    assert r["missing-rev"]["error"].startswith(f"CheckpointError: {REPO_ID} at revision '{'c' * 40}': not in the "
                                                "Hugging Face cache")
