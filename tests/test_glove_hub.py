"""glove: gensim pickles read without gensim (and refused when unsafe), and Hub sources from an offline cache."""

from __future__ import annotations

import os
import pickle
import shutil
import subprocess
import sys
import types
import zipfile
from pathlib import Path

import numpy as np
import pytest

import glove
from glove import GloVeFormatError, HubError, UnsafePickleError
from glove.gensim_pickle import read_keyed_vectors

FIXTURES = Path(__file__).parent / "fixtures" / "glove"
REPO = Path(__file__).resolve().parent.parent
REVISION = "0123456789abcdef0123456789abcdef01234567"


# ------------------------------------------------------------------------------------------ gensim pickles


@pytest.fixture
def fake_gensim(monkeypatch):
    """A stand-in ``gensim.models.keyedvectors`` module, only to *write* gensim-shaped pickles in tests."""
    module = types.ModuleType("gensim.models.keyedvectors")
    for parent in ("gensim", "gensim.models"):  # so pickle never imports the real gensim
        monkeypatch.setitem(sys.modules, parent, types.ModuleType(parent))

    def make(name):
        cls = type(name, (), {"__module__": module.__name__})
        setattr(module, name, cls)
        return cls

    for name in ("KeyedVectors", "Word2VecKeyedVectors", "Vocab"):
        make(name)
    monkeypatch.setitem(sys.modules, "gensim.models.keyedvectors", module)
    return module


def _dump(path: Path, obj: object, protocol: int = 4) -> Path:
    path.write_bytes(pickle.dumps(obj, protocol=protocol))
    return path


def test_gensim_fixture_is_read_with_vectors_mapped():
    words, vectors = read_keyed_vectors(FIXTURES / "gensim" / "glove-small.model")
    assert len(words) == 400 and words[:4] == ["the", ",", ".", "king"]
    assert isinstance(vectors, np.memmap) and vectors.shape == (400, 25) and vectors.dtype == np.float32


def test_gensim3_layout_with_inline_vectors_and_numpy1_names(tmp_path, fake_gensim):
    kv = fake_gensim.Word2VecKeyedVectors()
    vocab = {}
    for i, w in enumerate(["b", "a", "c"]):
        vocab[w] = fake_gensim.Vocab()
        vocab[w].__dict__.update(index=i, count=10 - i)
    kv.__dict__.update(vocab=vocab, vectors=np.arange(6, dtype=np.float32).reshape(3, 2), vector_size=2)
    data = pickle.dumps(kv, protocol=2).replace(b"cnumpy._core.multiarray\n", b"cnumpy.core.multiarray\n")
    assert b"cnumpy.core.multiarray\n_reconstruct" in data  # the numpy 1.x spelling real older files carry
    path = tmp_path / "old.model"
    path.write_bytes(data)
    g = glove.load(path, cache_dir=tmp_path / "cache")
    assert list(g.index_to_key) == ["b", "a", "c"] and g["c"].tolist() == [4.0, 5.0]


class _Evil:
    def __init__(self, target: Path):
        self.target = target

    def __reduce__(self):
        return (os.system, (f"touch {self.target}",))


def test_unsafe_pickle_is_refused_without_running_anything(tmp_path, fake_gensim):
    marker = tmp_path / "pwned"
    kv = fake_gensim.KeyedVectors()
    kv.__dict__.update(index_to_key=["a"], vectors=np.zeros((1, 2), np.float32), payload=_Evil(marker))
    path = _dump(tmp_path / "evil.model", kv)
    with pytest.raises(UnsafePickleError, match=r"refusing to load (posix|nt|os)\.system.*Nothing from the file was executed"):
        glove.load(path, cache_dir=tmp_path / "cache")
    assert not marker.exists()
    assert not (tmp_path / "cache").exists() or not any(p for p in (tmp_path / "cache").iterdir() if not p.name.startswith("."))


@pytest.mark.parametrize(
    "obj, message",
    [
        ({"not": "keyedvectors"}, "holds dict, not a gensim KeyedVectors"),
        ("garbage", "holds str"),
    ],
)
def test_pickle_of_something_else(tmp_path, obj, message):
    with pytest.raises(GloVeFormatError, match=message):
        glove.load(_dump(tmp_path / "x.model", obj), cache_dir=tmp_path / "cache")


def test_truncated_pickle_and_missing_vectors_file(tmp_path):
    src = FIXTURES / "gensim" / "glove-small.model"
    bad = tmp_path / "cut.model"
    bad.write_bytes(src.read_bytes()[:500])
    with pytest.raises(GloVeFormatError, match="not a readable gensim pickle"):
        glove.load(bad, cache_dir=tmp_path / "cache")
    alone = tmp_path / "alone.model"
    shutil.copy(src, alone)
    with pytest.raises(GloVeFormatError, match=r"alone.model.vectors.npy is missing"):
        glove.load(alone, cache_dir=tmp_path / "cache")


# ------------------------------------------------------------------------------------------ Hub cache


def _snapshot(cache: Path, repo_id: str) -> Path:
    """The folder layout huggingface_hub keeps: models--org--name/{refs/main, snapshots/<rev>/}."""
    repo = cache / ("models--" + repo_id.replace("/", "--"))
    (repo / "refs").mkdir(parents=True, exist_ok=True)
    (repo / "refs" / "main").write_text(REVISION)
    snap = repo / "snapshots" / REVISION
    snap.mkdir(parents=True, exist_ok=True)
    return snap


@pytest.fixture
def hub_cache(tmp_path) -> Path:
    cache = tmp_path / "hf"
    snap = _snapshot(cache, "fse/glove-small")
    for name in ("glove-small.model", "glove-small.model.vectors.npy"):
        shutil.copy(FIXTURES / "gensim" / name, snap / name)
    with zipfile.ZipFile(_snapshot(cache, "stanfordnlp/glove") / "glove.6B.zip", "w", zipfile.ZIP_DEFLATED) as zf:
        zf.write(FIXTURES / "small.txt", "glove.6B.100d.txt")
        zf.writestr("glove.6B.50d.txt", "tiny 1 2\n")
    return cache


HUB_SCRIPT = """
import json, sys, glove
g = glove.load(sys.argv[1], cache_dir=sys.argv[2])
print(json.dumps({"n": len(g), "dim": g.dim, "hub": g.manifest["source"]["hub"], "top": g.most_similar("king", topn=3)}))
"""


@pytest.mark.parametrize("repo_id, variable", [("fse/glove-small", "HF_HUB_CACHE"), ("stanfordnlp/glove", "HF_HOME")])
def test_hub_names_load_offline_from_the_cache(tmp_path, hub_cache, repo_id, variable):
    """Through the real code path: environment variables read by a fresh huggingface_hub import."""
    env = {k: v for k, v in os.environ.items() if k not in ("HF_HOME", "HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE")}
    env.update(HF_HUB_OFFLINE="1", PYTHONPATH=str(REPO))
    if variable == "HF_HOME":  # the cache is then $HF_HOME/hub
        home = tmp_path / "hf-home"
        home.mkdir()
        (home / "hub").symlink_to(hub_cache, target_is_directory=True)
        env["HF_HOME"] = str(home)
    else:
        env["HF_HUB_CACHE"] = str(hub_cache)
    out = subprocess.run(
        [sys.executable, "-c", HUB_SCRIPT, repo_id, str(tmp_path / "cache")], capture_output=True, text=True, env=env
    )
    assert out.returncode == 0, out.stderr
    result = __import__("json").loads(out.stdout)
    reference = glove.load(FIXTURES / "small.txt", cache_dir=tmp_path / "ref")
    assert result["n"] == 400 and result["dim"] == 25 and result["hub"] == f"{repo_id}@{REVISION}"
    assert [tuple(x) for x in result["top"]] == reference.most_similar("king", topn=3)


@pytest.fixture
def offline_hub(monkeypatch, hub_cache):
    """In-process variant: point the already-imported huggingface_hub at the test cache, offline."""
    constants = pytest.importorskip("huggingface_hub.constants")
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(hub_cache))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    return hub_cache


def test_stanford_zip_member_and_filename(tmp_path, offline_hub):
    g = glove.load("stanfordnlp/glove", filename="glove.6B.zip", member="glove.6B.50d.txt", cache_dir=tmp_path / "c")
    assert list(g.index_to_key) == ["tiny"]
    assert len(glove.load("hf://stanfordnlp/glove", cache_dir=tmp_path / "c")) == 400


def test_offline_and_not_cached_is_a_clear_error(tmp_path, offline_hub):
    with pytest.raises(HubError, match=r"fse/glove-wiki-gigaword-100/glove-wiki-gigaword-100.model is not in the Hugging Face cache .*offline mode is on"):
        glove.load("fse/glove-wiki-gigaword-100", cache_dir=tmp_path / "c")
    with pytest.raises(HubError, match=r"someone/something: no such local file or folder.*layout is unknown"):
        glove.load("someone/something", cache_dir=tmp_path / "c")


def test_local_paths_win_over_hub_names(tmp_path, monkeypatch, offline_hub):
    folder = glove.from_arrays(["x"], np.ones((1, 2))).save(tmp_path / "stanfordnlp" / "glove")
    monkeypatch.chdir(tmp_path)
    assert list(glove.load("stanfordnlp/glove").index_to_key) == ["x"]
    assert folder.is_dir()
