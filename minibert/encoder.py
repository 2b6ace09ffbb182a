"""Sentence embeddings as sentence-transformers computes them, in NumPy: BERT, then pooling, then (optionally)
L2 normalisation, read from the model folder's sentence-transformers files.

    from minibert import SentenceEncoder
    encoder = SentenceEncoder.from_pretrained("sentence-transformers/all-MiniLM-L6-v2")
    vectors = encoder.encode(["The cat sat on the mat.", "A dog barked."])   # (2, 384) float32
    encoder.similarity(vectors, vectors)                                      # (2, 2) cosine matrix

Dimensions in the shape comments: N texts, B texts in one batch, T tokens, H hidden size, P pooled size
(H times the number of pooling modes).

Batching never changes a vector: the model computes the real tokens of each text and nothing else (padding is
dropped before the first layer, minibert/fast.py), so a text's numbers are the same alone or in any batch.
Texts are sorted by token count into batches, which keeps the padded input arrays small.
"""

from __future__ import annotations

import itertools
import math
import sys
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable, Dict, Iterable, Iterator, List, Optional, Sequence, Tuple, Union

import numpy as np

from .errors import CheckpointError, InputError, shown
from .hub import DEFAULT_MODEL, resolve_model_dir
from .io import progress, read_json
from .modeling import BertModel
from .tokenizer import Tokenizer, as_text_list, bool_setting, check_cls_sep
from .weights import check_compatible, checked_relative_path

Array = np.ndarray

# The pooling modes minibert computes, in the order sentence-transformers concatenates them.
POOLING_MODES = ("cls", "max", "mean", "mean_sqrt_len_tokens")
# The pooling config's legacy boolean keys (still what most Hub repos carry) -> mode name.
POOLING_KEYS = {
    "pooling_mode_cls_token": "cls",
    "pooling_mode_max_tokens": "max",
    "pooling_mode_mean_tokens": "mean",
    "pooling_mode_mean_sqrt_len_tokens": "mean_sqrt_len_tokens",
    "pooling_mode_weightedmean_tokens": "weightedmean",
    "pooling_mode_lasttoken": "lasttoken",
}
OUTPUT_VALUES = ("sentence_embedding", "token_embeddings")
LONG_INPUTS = ("truncate", "chunk")
# Windows of a chunked long text overlap by at least this fraction of a window, so that no sentence of the
# text is seen only cut in half.
CHUNK_OVERLAP = 0.25
# With show_progress_bar=None, a bar appears (on a terminal) from this many texts on.
PROGRESS_MIN_TEXTS = 256

SentenceInput = Union[str, Sequence[str]]


# ----------------------------------------------------------------------------------------------------------------
# Pooling and normalisation: pure functions on the encoder's token vectors
# ----------------------------------------------------------------------------------------------------------------

def pool(hidden: Array, attention_mask: Array, modes: Sequence[str]) -> Array:
    """Token vectors to one vector per text, each mode's result side by side.

    hidden: (B, T, H) float32; attention_mask: (B, T), 1 for real tokens. Returns (B, len(modes) * H) float32.
    Sums are taken in float64, so a text's mean does not depend on the order of the additions.
    """
    mask = attention_mask.astype(np.float64)[:, :, None]  # (B, T, 1)
    count = np.maximum(mask.sum(axis=1), 1e-9)  # (B, 1), as sentence-transformers clamps it
    parts = []
    for mode in modes:
        if mode == "cls":
            parts.append(hidden[:, 0].astype(np.float64))  # (B, H)
        elif mode == "max":
            parts.append(np.where(mask > 0, hidden, -np.inf).max(axis=1))  # (B, H)
        elif mode in ("mean", "mean_sqrt_len_tokens"):
            total = (hidden * mask).sum(axis=1)  # (B, H) float64: the mask promotes
            parts.append(total / (count if mode == "mean" else np.sqrt(count)))
        else:
            raise InputError(f"pooling mode {mode!r}: expected one of {', '.join(POOLING_MODES)}")
    return np.concatenate(parts, axis=-1).astype(np.float32)  # (B, P)


def normalize(vectors: Array) -> Array:
    """Each row scaled to unit L2 norm (a zero row stays zero, as torch.nn.functional.normalize leaves it).
    (..., P) -> (..., P) float32."""
    v = vectors.astype(np.float64)
    norms = np.sqrt((v * v).sum(axis=-1, keepdims=True))
    return (v / np.maximum(norms, 1e-12)).astype(np.float32)


def similarity(a, b) -> Array:
    """Cosine similarity of every row of `a` with every row of `b`.  (N, P) or (P,), (M, P) or (P,) -> (N, M)."""
    a2, b2 = _as_matrix(a, "a"), _as_matrix(b, "b")
    if a2.shape[1] != b2.shape[1]:
        raise InputError(f"similarity: a has vectors of size {a2.shape[1]}, b of size {b2.shape[1]}; "
                         "expected the same size")
    return (normalize(a2).astype(np.float64) @ normalize(b2).T.astype(np.float64)).astype(np.float32)


def _as_matrix(x, name: str) -> Array:
    try:
        arr = np.asarray(x)
    except (ValueError, TypeError) as e:  # ragged rows
        raise InputError(f"similarity: {name} is not an array of numbers ({e})") from None
    if not (np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)):
        raise InputError(f"similarity: {name} is an array of {arr.dtype}; expected numbers")
    if arr.ndim == 1:
        arr = arr[None, :]
    if arr.ndim != 2:
        raise InputError(f"similarity: {name} has shape {arr.shape}; expected (N, P) or (P,)")
    return arr


# ----------------------------------------------------------------------------------------------------------------
# The sentence-transformers files of a model folder
# ----------------------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Layout:
    """What a model folder's sentence-transformers files ask for."""

    pooling: Tuple[str, ...]  # modes, in concatenation order
    normalize: bool  # a Normalize module follows the pooling
    max_seq_length: Optional[int]  # None: the tokenizer's limit
    do_lower_case: bool
    transformer_path: str  # the folder of the BERT weights, relative to the model folder ("" for itself)
    sentence_transformers: bool  # False: a plain BERT folder, mean pooling by default


PLAIN_BERT = Layout(pooling=("mean",), normalize=False, max_seq_length=None, do_lower_case=False,
                    transformer_path="", sentence_transformers=False)


def read_layout(folder: Path) -> Layout:
    """Read `modules.json`, the pooling module's `config.json` and `sentence_bert_config.json` of a model folder.

    A folder without `modules.json` is a plain BERT checkpoint: mean pooling, no normalisation.
    """
    modules_file = folder / "modules.json"
    if not modules_file.is_file():
        return PLAIN_BERT
    modules = read_json(modules_file, CheckpointError)
    if not isinstance(modules, list) or not all(isinstance(m, dict) and isinstance(m.get("type"), str)
                                                for m in modules):
        raise CheckpointError(f"{modules_file}: expected a list of modules, each an object with a 'type'")
    kinds = [m["type"].rsplit(".", 1)[-1] for m in modules]
    for m, kind in zip(modules, kinds):
        if kind not in ("Transformer", "Pooling", "Normalize"):
            raise CheckpointError(f"{modules_file}: module {m['type']!r} is not supported; minibert reads "
                                  "Transformer, Pooling and Normalize modules")
    if kinds[:2] != ["Transformer", "Pooling"] or kinds[2:] not in ([], ["Normalize"]):
        raise CheckpointError(f"{modules_file}: modules {kinds}; expected Transformer, Pooling and optionally "
                              "Normalize, in that order")
    transformer_path = _module_path(modules_file, modules[0])
    st_config_file = folder / transformer_path / "sentence_bert_config.json"
    st_config = read_json(st_config_file, CheckpointError, missing={})
    if not isinstance(st_config, dict):
        raise CheckpointError(f"{st_config_file}: expected a JSON object, got {type(st_config).__name__}")
    max_seq_length = st_config.get("max_seq_length")
    if max_seq_length is not None and (not isinstance(max_seq_length, int) or isinstance(max_seq_length, bool)
                                       or max_seq_length < 2):
        raise CheckpointError(f"{st_config_file}: max_seq_length {shown(max_seq_length)}; expected an integer of at "
                              "least 2")
    pooling_file = folder / _module_path(modules_file, modules[1]) / "config.json"
    return Layout(pooling=read_pooling_modes(pooling_file), normalize=kinds[2:] == ["Normalize"],
                  max_seq_length=max_seq_length,
                  do_lower_case=bool_setting(st_config, "do_lower_case", False, st_config_file),
                  transformer_path=transformer_path, sentence_transformers=True)


def _module_path(modules_file: Path, module: dict) -> str:
    """A module's folder, relative to the model folder ("" for the folder itself): a plain relative name inside
    it, checked as the shard index's names are (modules.json is data: it must not point at another model)."""
    path = module.get("path")
    if path is None or path == "":
        return ""
    if not isinstance(path, str):
        raise CheckpointError(f"{modules_file}: module {module['type']!r} has path {shown(path)}; expected a folder "
                              "name (a string)")
    return checked_relative_path(modules_file, path, what=f"module {module['type']!r} path")


def read_pooling_modes(path: Path) -> Tuple[str, ...]:
    """The pooling modes of a Pooling module's config.json, in sentence-transformers' concatenation order.

    Reads both the boolean `pooling_mode_*_tokens` keys and the newer `pooling_mode` ("mean" or a list).
    With no mode switched on, sentence-transformers means; so does minibert.
    """
    config = read_json(path, CheckpointError)
    if not isinstance(config, dict):
        raise CheckpointError(f"{path}: expected a JSON object, got {type(config).__name__}")
    if "pooling_mode" in config:
        asked = config["pooling_mode"]
        asked = [asked] if isinstance(asked, str) else asked
        if not isinstance(asked, list) or not all(isinstance(m, str) for m in asked):
            raise CheckpointError(f"{path}: pooling_mode {shown(config['pooling_mode'])}; expected a mode name or a "
                                  "list of them")
    else:
        asked = [mode for key, mode in POOLING_KEYS.items() if bool_setting(config, key, False, path)]
    for mode in asked:
        if mode not in POOLING_MODES:
            raise CheckpointError(f"{path}: pooling mode {shown(mode)} is not supported; minibert pools with "
                                  f"{', '.join(POOLING_MODES)}")
    return tuple(asked) or ("mean",)


# ----------------------------------------------------------------------------------------------------------------
# SentenceEncoder
# ----------------------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class _Piece:
    """One forward-pass row: a text, or one window of a chunked long text."""

    text: int  # index of the caller's text
    ids: Tuple[int, ...]  # token ids, special tokens included
    type_ids: Tuple[int, ...]


class SentenceEncoder:
    """A sentence-transformers model (BERT + pooling + optional Normalize) that turns texts into vectors.

    >>> encoder = SentenceEncoder.from_pretrained("sentence-transformers/all-MiniLM-L6-v2")
    >>> encoder.encode(["first text", "second text"]).shape     # (2, 384)
    """

    def __init__(self, model: BertModel, tokenizer: Tokenizer, layout: Layout = PLAIN_BERT, *,
                 name_or_path: Optional[str] = None, revision: Optional[str] = None):
        check_compatible(tokenizer, model)
        check_cls_sep(tokenizer)  # _pieces takes each row's first and last token for [CLS] and [SEP]
        self.model = model
        self.tokenizer = tokenizer
        self.layout = layout
        self.name_or_path = name_or_path
        self.revision = revision
        self.max_seq_length = layout.max_seq_length or tokenizer.model_max_length

    @classmethod
    def from_pretrained(cls, name_or_path: Union[str, Path] = DEFAULT_MODEL, *, revision: Optional[str] = None,
                        normalize: Optional[bool] = None) -> "SentenceEncoder":
        """Load a sentence-transformers model folder or Hub repo id (or a plain BERT folder: mean pooling).

        `normalize` overrides the folder's Normalize module (False gives the raw pooled vectors).
        """
        folder = resolve_model_dir(name_or_path, revision=revision)
        layout = read_layout(folder)
        if normalize is not None:
            layout = replace(layout, normalize=bool(normalize))
        return cls._load(folder, layout, str(name_or_path), revision)

    @classmethod
    def _load(cls, folder: Path, layout: Layout, name_or_path: str, revision: Optional[str]) -> "SentenceEncoder":
        bert_folder = folder / layout.transformer_path
        return cls(BertModel.from_pretrained(bert_folder), Tokenizer.from_pretrained(bert_folder), layout,
                   name_or_path=name_or_path, revision=revision)

    def __reduce__(self):
        """Pickled as a recipe (where its files are, and its settings), not as arrays: a few hundred bytes.
        Unpickling loads the files again, memory-mapped, wherever that happens."""
        if self.name_or_path is None:
            raise TypeError("cannot pickle a SentenceEncoder built from objects; only one loaded with "
                            "from_pretrained (or given name_or_path=) can be loaded again")
        where = Path(self.name_or_path).expanduser()
        # A local folder by its absolute path: the unpickling process may have another working directory.
        name = str(where.resolve()) if where.is_dir() else self.name_or_path
        return _unpickle, (name, self.revision, self.layout, self.max_seq_length)

    @property
    def pooling(self) -> Tuple[str, ...]:
        return self.layout.pooling

    @property
    def normalize(self) -> bool:
        """Whether the model ends in a Normalize module (encode's normalize_embeddings adds one per call)."""
        return self.layout.normalize

    @property
    def do_lower_case(self) -> bool:
        return self.layout.do_lower_case

    @property
    def max_seq_length(self) -> int:
        """Texts are cut to this many tokens, [CLS] and [SEP] included (sentence_bert_config.json)."""
        return self._max_seq_length

    @max_seq_length.setter
    def max_seq_length(self, value: int) -> None:
        limit = self.model.config.max_position_embeddings
        if not isinstance(value, int) or isinstance(value, bool) or not 2 <= value <= limit:
            raise InputError(f"max_seq_length: {value!r}; expected an integer from 2 to this model's "
                             f"max_position_embeddings ({limit})")
        self._max_seq_length = value

    def get_sentence_embedding_dimension(self) -> int:
        """P: the size of a sentence vector (the hidden size times the number of pooling modes)."""
        return self.model.config.hidden_size * len(self.pooling)

    def settings(self) -> Dict[str, object]:
        """Everything needed to rebuild this encoder with `from_pretrained` (besides the files themselves)."""
        return {"name_or_path": self.name_or_path, "revision": self.revision, "pooling": list(self.pooling),
                "normalize": self.normalize, "max_seq_length": self.max_seq_length,
                "do_lower_case": self.do_lower_case}

    def similarity(self, a, b) -> Array:
        """Cosine similarity matrix of two sets of vectors (see `minibert.encoder.similarity`)."""
        return similarity(a, b)

    def encode(self, sentences: SentenceInput, batch_size: int = 32, *, normalize_embeddings: bool = False,
               show_progress_bar: Optional[bool] = None, output_value: str = "sentence_embedding",
               long_inputs: str = "truncate") -> Union[Array, List[Array]]:
        """Texts to vectors, with sentence-transformers' argument names and meanings.

        sentences: a string (gives (P,)) or a list of strings (gives (N, P) float32; an empty list (0, P)).
        normalize_embeddings: scale each vector to unit length (on top of the model's own Normalize module).
        output_value: "sentence_embedding", or "token_embeddings" for each text's (T_i, H) last hidden states,
            special tokens included, no padding (a list; an array for a single string).
        long_inputs: "truncate" (sentence-transformers' behaviour) cuts a text at `max_seq_length` tokens;
            "chunk" splits a longer text into windows of `max_seq_length` tokens that overlap by at least a
            quarter window, passes each through the whole model (pooling and the model's Normalize module)
            and averages them; with normalisation on, the average is normalised again.
        Texts are sorted by token count into batches of at most `batch_size`; results come back in your order.
        """
        single = isinstance(sentences, str)
        texts = as_text_list(sentences, "sentences")
        if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1:
            raise InputError(f"batch_size: {batch_size!r}; expected a positive integer")
        if output_value not in OUTPUT_VALUES:
            raise InputError(f"output_value: {output_value!r}; expected one of {', '.join(OUTPUT_VALUES)}")
        if long_inputs not in LONG_INPUTS:
            raise InputError(f"long_inputs: {long_inputs!r}; expected one of {', '.join(LONG_INPUTS)}")
        if long_inputs == "chunk" and output_value != "sentence_embedding":
            raise InputError("long_inputs='chunk' averages sentence embeddings; it cannot give token_embeddings")
        if show_progress_bar is None:
            show_progress_bar = len(texts) >= PROGRESS_MIN_TEXTS and sys.stderr.isatty()
        with progress(len(texts), "Encoding", "text", show_progress_bar) as advance:
            out = self._encode_texts(texts, batch_size, output_value=output_value,
                                     normalize_embeddings=normalize_embeddings, chunk=long_inputs == "chunk",
                                     advance=advance)
        return out[0] if single else out

    def encode_stream(self, texts: Iterable[str], chunk_size: int, batch_size: int = 32, *,
                      normalize_embeddings: bool = False, long_inputs: str = "truncate",
                      advance: Callable[[int], None] = lambda n: None) -> Iterator[Array]:
        """`encode` over an iterable of any length, `chunk_size` texts at a time: yields (n, P) float32 blocks, in
        order, so that no more than one chunk is ever held. `advance(n)` is called as each n more texts are done."""
        rest = iter(texts)
        while chunk := list(itertools.islice(rest, chunk_size)):
            yield self._encode_texts(chunk, batch_size, normalize_embeddings=normalize_embeddings,
                                     chunk=long_inputs == "chunk", advance=advance)

    def _encode_texts(self, texts: List[str], batch_size: int, *, output_value: str = "sentence_embedding",
                      normalize_embeddings: bool = False, chunk: bool = False,
                      advance: Callable[[int], None] = lambda n: None) -> Union[Array, List[Array]]:
        """`encode` on checked arguments; `advance(n)` is called as each n more texts are done."""
        pieces = self._pieces(texts, chunk=chunk)
        if output_value == "token_embeddings":
            tokens: List[Optional[Array]] = [None] * len(texts)  # no chunking here: one piece per text
            for batch, hidden, _ in self._run(pieces, len(texts), batch_size, advance):
                for p, h in zip(batch, hidden):
                    tokens[p.text] = h[:len(p.ids)]  # (T_i, H)
            return tokens
        total = np.zeros((len(texts), self.get_sentence_embedding_dimension()), dtype=np.float64)  # (N, P)
        for batch, hidden, mask in self._run(pieces, len(texts), batch_size, advance):
            vectors = pool(hidden, mask, self.pooling)  # (B, P)
            if self.normalize:
                vectors = normalize(vectors)
            rows = [p.text for p in batch]
            if chunk:
                np.add.at(total, rows, vectors)  # a text's windows can share a batch
            else:
                total[rows] = vectors  # one row per text (np.add.at is slow)
        if chunk:
            total /= np.bincount([p.text for p in pieces], minlength=len(texts))[:, None]
        vectors = total.astype(np.float32)
        # A mean of unit vectors is shorter than 1: a normalising model's chunked vectors are normalised again.
        return normalize(vectors) if normalize_embeddings or (chunk and self.normalize) else vectors

    def _pieces(self, texts: List[str], *, chunk: bool) -> List[_Piece]:
        """Tokenize (in slices, so that no (N, T) array of every text is ever built) into forward-pass rows."""
        pieces = []
        step = 1024
        for start in range(0, len(texts), step):
            part = texts[start:start + step]
            if self.do_lower_case:
                part = [t.lower() for t in part]
            batch = self.tokenizer(part, max_length=self.max_seq_length, truncation=not chunk)
            for i, e in enumerate(batch.encodings):
                ids, types = tuple(e.ids), tuple(e.type_ids)
                for lo, hi in _windows(len(ids) - 2, self.max_seq_length - 2) if chunk else [(0, len(ids) - 2)]:
                    # [CLS] + window + [SEP]: each window is a text of its own to the model.
                    pieces.append(_Piece(start + i, ids[:1] + ids[1 + lo:1 + hi] + ids[-1:],
                                         types[:1] + types[1 + lo:1 + hi] + types[-1:]))
        return pieces

    def _run(self, pieces: List[_Piece], n_texts: int, batch_size: int,
             advance: Callable[[int], None]) -> Iterator[Tuple[List[_Piece], Array, Array]]:
        """Each batch of rows with its last hidden states (B, T, H) and attention mask (B, T), right-padded."""
        windows_left = np.bincount([p.text for p in pieces], minlength=n_texts)
        for batch in _length_batches(pieces, batch_size):
            T = len(batch[0].ids)  # the longest: rows come longest first
            ids, mask, types = (np.zeros((len(batch), T), dtype=np.int64) for _ in range(3))  # (B, T) each
            for row, p in enumerate(batch):
                n = len(p.ids)
                ids[row, :n], mask[row, :n], types[row, :n] = p.ids, 1, p.type_ids
            yield batch, self.model(ids, attention_mask=mask, token_type_ids=types).last_hidden_state, mask
            done = [p.text for p in batch]
            np.subtract.at(windows_left, done, 1)
            advance(len({t for t in done if windows_left[t] == 0}))

    def __repr__(self) -> str:
        pooling = "+".join(self.pooling)
        if not self.layout.sentence_transformers:
            pooling += " (plain BERT folder without sentence-transformers files: mean pooling by default)"
        return (f"SentenceEncoder({self.name_or_path!r}, dim={self.get_sentence_embedding_dimension()}, "
                f"max_seq_length={self.max_seq_length}, pooling={pooling}, normalize={self.normalize})")


def _unpickle(name_or_path: str, revision: Optional[str], layout: Layout, max_seq_length: int) -> SentenceEncoder:
    """Rebuild a pickled SentenceEncoder from its recipe (see SentenceEncoder.__reduce__)."""
    encoder = SentenceEncoder._load(resolve_model_dir(name_or_path, revision=revision), layout, name_or_path,
                                    revision)
    encoder.max_seq_length = max_seq_length
    return encoder


def _windows(n: int, size: int) -> List[Tuple[int, int]]:
    """Spans [lo, hi) of `size` tokens covering n tokens, evenly spaced, neighbours overlapping by at least
    CHUNK_OVERLAP of a window. Returns [(0, n)] when n fits in one window."""
    if n <= size:
        return [(0, n)]
    stride = max(1, int(size * (1 - CHUNK_OVERLAP)))
    count = 1 + math.ceil((n - size) / stride)
    starts = np.linspace(0, n - size, count).round().astype(int)
    return [(int(s), int(s) + size) for s in starts]


def _length_batches(pieces: List[_Piece], batch_size: int) -> Iterable[List[_Piece]]:
    """Rows sorted longest first (ties in input order), cut into batches of batch_size rows: the rows of a batch
    have about the same length, so its padded input arrays are small. (The padding itself costs nothing and
    changes nothing: the model drops it before the first layer.)"""
    order = sorted(range(len(pieces)), key=lambda i: -len(pieces[i].ids))  # stable: ties keep input order
    for start in range(0, len(order), batch_size):
        yield [pieces[i] for i in order[start:start + batch_size]]
