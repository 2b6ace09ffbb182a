"""Read a gensim ``KeyedVectors.save`` file without gensim and without running code from it.

A ``.model`` file is a pickle of the KeyedVectors object; large arrays are stored beside it as
``<file>.<attribute>.npy`` (e.g. ``glove-wiki-gigaword-100.model.vectors.npy``). Unpickling can call any
importable function the file names, so the unpickler here admits only the globals such a file needs - the
KeyedVectors class itself (replaced by an inert record of its state) and numpy's array/scalar rebuilders - and
refuses anything else before it is called.
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import numpy as np

from .errors import GloVeFormatError, UnsafePickleError
from .store import TableWriter, check_words, map_npy


class _Record:
    """Stands in for a gensim class: keeps the pickled state as a plain dict, has no behaviour."""

    gensim_name = ""

    def __setstate__(self, state: Any) -> None:
        self.state = state


def _record_class(name: str) -> type[_Record]:
    return type(name, (_Record,), {"gensim_name": name})


_KEYED_VECTORS = ("KeyedVectors", "Word2VecKeyedVectors")  # gensim 4 / gensim 3 class names
_GENSIM_CLASSES = {name: _record_class(name) for name in (*_KEYED_VECTORS, "Vocab")}  # Vocab: gensim 3 entries
try:
    from numpy._core import multiarray as _multiarray
except ImportError:  # numpy < 2
    from numpy.core import multiarray as _multiarray  # type: ignore[no-redef]
_DATA_GLOBALS = {
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
    # numpy 1.x pickles say numpy.core, numpy 2.x pickles numpy._core; both name the same two functions.
    **{(m, f): getattr(_multiarray, f) for m in ("numpy.core.multiarray", "numpy._core.multiarray") for f in ("_reconstruct", "scalar")},
}


def _latin1_encode(text: str, encoding: str = "utf-8") -> bytes:
    """``_codecs.encode`` as protocol-2 pickles use it (bytes spelled as latin-1 text); other codecs refused."""
    if encoding not in ("latin1", "latin-1") or not isinstance(text, str):
        raise pickle.UnpicklingError(f"_codecs.encode with {encoding!r}: only latin1 text appears in gensim files")
    return text.encode("latin1")


_DATA_GLOBALS[("_codecs", "encode")] = _latin1_encode  # protocol 2 (gensim 3) pickles bytes this way


class _RestrictedUnpickler(pickle.Unpickler):
    def __init__(self, file: Any, path: Path):
        super().__init__(file)
        self.path = path

    def find_class(self, module: str, name: str) -> Any:
        if module == "gensim.models.keyedvectors" and name in _GENSIM_CLASSES:
            return _GENSIM_CLASSES[name]
        if (module, name) in _DATA_GLOBALS:
            return _DATA_GLOBALS[(module, name)]
        allowed = sorted({f"gensim.models.keyedvectors.{n}" for n in _GENSIM_CLASSES} | {f"{m}.{n}" for m, n in _DATA_GLOBALS})
        raise UnsafePickleError(
            self.path,
            f"refusing to load {module}.{name}: a gensim KeyedVectors file only needs {', '.join(allowed)}. "
            "Nothing from the file was executed.",
        )

    def persistent_load(self, pid: Any) -> Any:
        raise UnsafePickleError(self.path, "refusing a persistent id: gensim KeyedVectors files have none")


def read_keyed_vectors(path: Path) -> tuple[list[str], np.ndarray]:
    """The words and the (V, D) vectors (memory-mapped when stored beside the file) of a gensim save."""
    path = Path(path)
    try:
        with open(path, "rb") as f:
            obj = _RestrictedUnpickler(f, path).load()
    except UnsafePickleError:
        raise
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError) as e:
        raise GloVeFormatError(path, f"not a readable gensim pickle: {type(e).__name__}: {e}") from None
    if not isinstance(obj, _Record) or obj.gensim_name not in _KEYED_VECTORS or not isinstance(obj.state, dict):
        raise GloVeFormatError(path, f"the pickle holds {type(obj).__name__}, not a gensim KeyedVectors")
    state = obj.state
    words = _words(state, path)
    vectors = state.get("vectors")
    if vectors is None and "vectors" in state.get("__numpys", ()):
        npy = path.with_name(path.name + ".vectors.npy")
        try:
            vectors = map_npy(npy)
        except FileNotFoundError:
            raise GloVeFormatError(path, f"the vectors are stored separately, but {npy.name} is missing") from None
    if not isinstance(vectors, np.ndarray) or vectors.ndim != 2 or vectors.dtype.kind != "f":
        raise GloVeFormatError(path, f"no 2-D float 'vectors' array in the KeyedVectors (found {type(vectors).__name__})")
    if len(words) != len(vectors):
        raise GloVeFormatError(path, f"{len(words)} words but {len(vectors)} vectors")
    check_words(words, path)
    return words, vectors


def _words(state: dict[str, Any], path: Path) -> list[str]:
    """The row-ordered vocabulary: gensim 4 ``index_to_key``; gensim 3 ``index2word`` or ``vocab``."""
    for name in ("index_to_key", "index2word", "index2entity"):
        if isinstance(state.get(name), list):
            return state[name]
    vocab = state.get("vocab")
    if isinstance(vocab, dict):
        words: list[Any] = [None] * len(vocab)
        for word, entry in vocab.items():
            index = getattr(entry, "state", {}).get("index")
            if not isinstance(index, int) or not 0 <= index < len(words) or words[index] is not None:
                raise GloVeFormatError(path, f"bad vocabulary entry for {word!r}")
            words[index] = word
        return words
    raise GloVeFormatError(path, "the KeyedVectors holds no vocabulary (index_to_key)")


def convert_keyed_vectors(path: Path, dest: Path, manifest: dict[str, Any]) -> None:
    """Write the converted folder ``dest`` from a gensim save (vectors copied in chunks, never all in memory)."""
    words, vectors = read_keyed_vectors(path)
    with TableWriter(dest, vectors.shape[1]) as writer:
        writer.add_table(words, vectors, path)
        writer.commit({**manifest, "duplicates": 0})
