"""Read a gensim ``KeyedVectors.save`` file without gensim and without running code from it.

A ``.model`` file is a pickle of the KeyedVectors object; large arrays are stored beside it as
``<file>.<attribute>.npy`` (e.g. ``glove-wiki-gigaword-100.model.vectors.npy``). Unpickling can call any
importable function the file names, so the unpickler here admits only the globals such a file needs - the
KeyedVectors class itself (replaced by an inert record of its state) and numpy's array/scalar rebuilders - and
refuses anything else before it is called.
"""

from __future__ import annotations

import io
import math
import pickle
import pickletools
import re
import reprlib
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

# ------------------------------------------------------------------------------ numpy, rebuilt from checked data
#
# numpy pickles an array as ``_reconstruct(numpy.ndarray, (0,), b"b")`` followed by BUILD with
# ``(1, shape, dtype, fortran, raw bytes)``, a dtype as ``numpy.dtype("f4", False, True)`` followed by BUILD with
# ``(3, byteorder, None, None, None, -1, -1, 0)``, a scalar as ``scalar(dtype, raw bytes)``. Exactly these forms
# are accepted, and an array is built only from raw bytes present in the file, of exactly the size its shape
# needs: calling ``numpy.ndarray`` itself would allocate any size, uninitialised.

_NUMBER_DTYPE = re.compile(r"[<>|=]?(?:[biu][1248]|f[248]|c(?:8|16))")


class _ArrayType:
    """What ``numpy.ndarray`` stands for in the file: only ``_reconstruct`` accepts it; calling it is refused."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "numpy.ndarray"

    def __call__(self, *args: Any, **kwargs: Any) -> None:
        raise pickle.UnpicklingError("numpy.ndarray is called directly; gensim files rebuild arrays with _reconstruct")


_ARRAY_TYPE = _ArrayType()


class _DType:
    """A plain number dtype (``numpy.dtype("f4", False, True)``), its byte order set by the BUILD that follows."""

    __slots__ = ("dtype",)

    def __init__(self, spec: object, align: object = False, copy: object = True):
        if not (isinstance(spec, str) and _NUMBER_DTYPE.fullmatch(spec)):
            raise pickle.UnpicklingError(f"numpy.dtype({spec!r:.60}): gensim files hold plain number arrays only")
        self.dtype = np.dtype(spec)

    def __setstate__(self, state: Any) -> None:
        if not (isinstance(state, tuple) and len(state) == 8 and state[0] == 3 and state[1] in ("<", ">", "|", "=")
                and state[2:] == (None, None, None, -1, -1, 0)):
            raise pickle.UnpicklingError(f"dtype state {state!r:.100}: expected that of a plain number dtype")
        self.dtype = self.dtype.newbyteorder(state[1])


class _Array:
    """An array rebuilt by BUILD from its shape, dtype and raw bytes (a copy of the file's bytes, read-only)."""

    __slots__ = ("array",)

    def __init__(self) -> None:
        self.array: np.ndarray | None = None

    def __setstate__(self, state: Any) -> None:
        if not (isinstance(state, tuple) and len(state) == 5 and state[0] == 1):
            raise pickle.UnpicklingError(f"array state {state!r:.100}: expected (1, shape, dtype, fortran, bytes)")
        _, shape, dtype, fortran, raw = state
        if not (isinstance(shape, tuple) and all(type(n) is int and n >= 0 for n in shape) and isinstance(dtype, _DType)
                and isinstance(fortran, bool) and isinstance(raw, bytes)):
            raise pickle.UnpicklingError(f"array state {state!r:.100}: expected (1, shape, dtype, fortran, bytes)")
        needed = math.prod(shape) * dtype.dtype.itemsize
        if len(raw) != needed:
            raise pickle.UnpicklingError(f"an array of shape {shape} and dtype {dtype.dtype} needs {needed} bytes, "
                                         f"the file holds {len(raw)}")
        self.array = np.frombuffer(raw, dtype.dtype).reshape(shape, order="F" if fortran else "C")


def _reconstruct(cls: object, shape: object, typecode: object) -> _Array:
    if cls is not _ARRAY_TYPE or shape != (0,) or typecode != b"b":
        raise pickle.UnpicklingError("_reconstruct is called other than as numpy pickles arrays: "
                                     f"_reconstruct({cls!r:.40}, {shape!r:.40}, {typecode!r:.40})")
    return _Array()


def _scalar(dtype: object, raw: object) -> Any:
    if not (isinstance(dtype, _DType) and isinstance(raw, bytes) and len(raw) == dtype.dtype.itemsize):
        raise pickle.UnpicklingError(f"scalar({dtype!r:.40}, {raw!r:.40}): expected a number dtype and its bytes")
    return np.frombuffer(raw, dtype.dtype)[0]


def _latin1_encode(text: str, encoding: str = "utf-8") -> bytes:
    """``_codecs.encode`` as protocol-2 pickles use it (bytes spelled as latin-1 text); other codecs refused."""
    if encoding not in ("latin1", "latin-1") or not isinstance(text, str):
        raise pickle.UnpicklingError(f"_codecs.encode with {encoding!r:.40}: only latin1 text appears in gensim files")
    return text.encode("latin1")


_DATA_GLOBALS: dict[tuple[str, str], Any] = {
    ("numpy", "ndarray"): _ARRAY_TYPE,
    ("numpy", "dtype"): _DType,
    ("_codecs", "encode"): _latin1_encode,  # protocol 2 (gensim 3) pickles bytes this way
    # numpy 1.x pickles say numpy.core, numpy 2.x pickles numpy._core; both name the same two functions.
    **{(m, "_reconstruct"): _reconstruct for m in ("numpy.core.multiarray", "numpy._core.multiarray")},
    **{(m, "scalar"): _scalar for m in ("numpy.core.multiarray", "numpy._core.multiarray")},
}


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
            f"refusing to load {module:.100}.{name:.100}: a gensim KeyedVectors file only needs {', '.join(allowed)}. "
            "Nothing from the file was executed.",
        )

    def persistent_load(self, pid: Any) -> Any:
        raise UnsafePickleError(self.path, "refusing a persistent id: gensim KeyedVectors files have none")


# ------------------------------------------------------------------------------ nesting depth, bounded beforehand
#
# Unpickling itself never recurses, but using what it built can: hashing a tuple nested 100,000 deep (a dict
# key) recurses in C until the stack overflows. So the opcodes are first run on a model of the stack that only
# tracks how deep each object nests. A gensim file nests about 6 deep.

MAX_DEPTH = 100
_MUTATORS = {"APPEND": 1, "SETITEM": 2, "BUILD": 1, "APPENDS": None, "SETITEMS": None, "ADDITEMS": None}
_PUTS = frozenset({"PUT", "BINPUT", "LONG_BINPUT", "MEMOIZE"})
_GETS = frozenset({"GET", "BINGET", "LONG_BINGET"})
# Opcodes that push one object built from nothing on the stack: strings, numbers, globals... The mutable empty
# containers are left out: each is a node of its own, whose depth grows as it is filled.
_ATOMS = frozenset(
    op.name for op in pickletools.opcodes
    if not op.stack_before and op.stack_after and op.stack_after[0] is not pickletools.markobject
) - _GETS - {"EMPTY_LIST", "EMPTY_DICT", "EMPTY_SET"}


class _Node:
    """An object the pickle builds: how deep it nests, and whether a container holds it already."""

    __slots__ = ("depth", "held")

    def __init__(self, depth: int = 0):
        self.depth, self.held = depth, False


def check_nesting(data: bytes, path: Path) -> None:
    """``GloVeFormatError`` unless the pickle ``data`` is well formed and builds nothing nested > ``MAX_DEPTH``.

    A container's depth is final once another holds it: changing it afterwards (never done by gensim files,
    but the way to hide depth from this count) is refused. Atoms (strings, numbers) share one node.
    """
    stack: list[_Node] = []
    marks: list[int] = []  # stack heights at each MARK
    memo: dict[int, _Node] = {}
    atom = _Node()

    def pop_to_mark() -> list[_Node]:
        at = marks.pop()  # IndexError: no MARK
        items = stack[at:]
        del stack[at:]
        return items

    def pop(n: int) -> list[_Node]:
        if len(stack) - n < (marks[-1] if marks else 0):
            raise ValueError("stack underflow")
        items = stack[len(stack) - n :]
        del stack[len(stack) - n :]
        return items

    def nest(items: list[_Node], into: _Node) -> None:
        for item in items:
            item.held = True
            into.depth = max(into.depth, item.depth + 1)
        if into.depth > MAX_DEPTH:
            raise GloVeFormatError(path, f"objects nested more than {MAX_DEPTH} deep; a gensim file nests about 6")

    try:
        for op, arg, _ in pickletools.genops(data):
            name = op.name
            if name in _ATOMS:
                stack.append(atom)
            elif name in _PUTS:
                top = pop(1)[0]
                stack.append(top)
                memo[len(memo) if name == "MEMOIZE" else arg] = top
            elif name in _GETS:
                stack.append(memo[arg])
            elif name == "MARK":
                marks.append(len(stack))
            elif name in _MUTATORS:
                count = _MUTATORS[name]
                items = pop_to_mark() if count is None else pop(count)
                (target,) = pop(1)
                if target.held:
                    raise GloVeFormatError(path, f"{name} changes an object already inside another; gensim files "
                                                 "never do")
                nest(items, target)
                stack.append(target)
            elif name == "DUP":
                stack.extend(pop(1) * 2)
            elif op.stack_after or op.stack_before:  # builds one object from what it pops (or drops them)
                items = pop_to_mark() if pickletools.markobject in op.stack_before else pop(len(op.stack_before))
                if op.stack_after:
                    stack.append(_Node())
                    nest(items, stack[-1])
    except GloVeFormatError:
        raise
    except Exception as e:  # genops: bad opcode or argument (ValueError); the model: bad stack, mark or memo
        raise GloVeFormatError(path, f"not a readable gensim pickle: {type(e).__name__}: {str(e):.200}") from None


# ------------------------------------------------------------------------------ reading


def read_keyed_vectors(path: Path) -> tuple[list[str], np.ndarray]:
    """The words and the (V, D) vectors (memory-mapped when stored beside the file) of a gensim save."""
    path = Path(path)
    data = path.read_bytes()  # whole: a length field in the file can then never ask for more than it holds
    check_nesting(data, path)
    try:
        obj = _RestrictedUnpickler(io.BytesIO(data), path).load()
    except GloVeFormatError:
        raise
    except Exception as e:  # whatever the bytes make the unpickler raise (MemoryError, UnicodeEncodeError...)
        raise GloVeFormatError(path, f"not a readable gensim pickle: {type(e).__name__}: {str(e):.200}") from None
    state = getattr(obj, "state", None)
    if not isinstance(obj, _Record) or obj.gensim_name not in _KEYED_VECTORS or not isinstance(state, dict):
        raise GloVeFormatError(path, f"the pickle holds {type(obj).__name__}, not a gensim KeyedVectors")
    words = _words(state, path)
    vectors = state.get("vectors")
    vectors = vectors.array if isinstance(vectors, _Array) else vectors
    if vectors is None and "vectors" in _list(state.get("__numpys")):
        npy = path.with_name(path.name + ".vectors.npy")
        try:
            vectors = map_npy(npy)
        except FileNotFoundError:
            raise GloVeFormatError(path, f"the vectors are stored separately, but {npy.name} is missing") from None
    if not isinstance(vectors, np.ndarray) or vectors.ndim != 2 or vectors.dtype.kind != "f":
        raise GloVeFormatError(path, f"no 2-D float 'vectors' array in the KeyedVectors (found {type(vectors).__name__})")
    if 0 in vectors.shape:
        raise GloVeFormatError(path, f"'vectors' has shape {vectors.shape}; a table needs at least one word and one "
                                     "dimension")
    if len(words) != len(vectors):
        raise GloVeFormatError(path, f"{len(words)} words but {len(vectors)} vectors")
    check_words(words, path)
    return words, vectors


def _list(value: object) -> list[Any]:
    return value if isinstance(value, list) else []


def _words(state: dict[str, Any], path: Path) -> list[str]:
    """The row-ordered vocabulary: gensim 4 ``index_to_key``; gensim 3 ``index2word`` or ``vocab``."""
    for name in ("index_to_key", "index2word", "index2entity"):
        if isinstance(state.get(name), list):
            return state[name]
    vocab = state.get("vocab")
    if isinstance(vocab, dict):
        words: list[Any] = [None] * len(vocab)
        for word, entry in vocab.items():
            entry_state = getattr(entry, "state", None)
            index = entry_state.get("index") if isinstance(entry_state, dict) else None
            if not isinstance(index, (int, np.integer)) or not 0 <= index < len(words) or words[index] is not None:
                raise GloVeFormatError(path, f"bad vocabulary entry for {reprlib.repr(word)}")
            words[int(index)] = word
        return words
    raise GloVeFormatError(path, "the KeyedVectors holds no vocabulary (index_to_key)")


def convert_keyed_vectors(path: Path, dest: Path, manifest: dict[str, Any]) -> None:
    """Write the converted folder ``dest`` from a gensim save (vectors copied in chunks, never all in memory)."""
    words, vectors = read_keyed_vectors(path)
    with TableWriter(dest, vectors.shape[1]) as writer:
        writer.add_table(words, vectors, path)
        writer.commit({**manifest, "duplicates": 0})
