"""Sentence embeddings as sentence-transformers computes them, in NumPy: BERT, then pooling, then (optionally)
L2 normalisation, read from the model folder's sentence-transformers files.

    from minibert import SentenceEncoder
    encoder = SentenceEncoder.from_pretrained("sentence-transformers/all-MiniLM-L6-v2")
    vectors = encoder.encode(["The cat sat on the mat.", "A dog barked."])   # (2, 384) float32
    encoder.similarity(vectors, vectors)             # (2, 2): the model's similarity_fn_name, cosine by default

    queries = encoder.encode_query(["Where did the cat sit?"])              # the model's "query" prompt, if any
    packed = encoder.encode(texts, precision="ubinary", truncate_dim=256)   # (N, 32) uint8, Matryoshka + bits

Prompts, the default prompt, the similarity function and include_prompt come from the model folder's
config_sentence_transformers.json and pooling config, with sentence-transformers' meanings (see `encode`).

Dimensions in the shape comments: N texts, B texts in one batch, T tokens, H hidden size, P pooled size
(H times the number of pooling modes, or truncate_dim).

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
from .io import progress, read_json, read_json_object
from .modeling import BertModel
from .retrieval import (SIMILARITY_FUNCTIONS, check_precision, normalize, quantize_embeddings, similarity,
                        similarity_pairwise)
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
# Every sentence-transformers model has these prompts ("" unless its config names them): encode_query and
# encode_document use them, so that the default prompt never applies there.
DEFAULT_PROMPTS = (("query", ""), ("document", ""))
# encode_document's prompt: the first of these names the model has.
DOCUMENT_PROMPT_NAMES = ("document", "passage", "corpus")
ST_CONFIG_FILE = "config_sentence_transformers.json"
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

    hidden: (B, T, H) float32; attention_mask: (B, T), 1 for the tokens pooled (a prompt left out has 0s: then
    "cls" takes the first token pooled, as sentence-transformers does). Returns (B, len(modes) * H) float32.
    Sums are taken in float64, so a text's mean does not depend on the order of the additions.
    """
    mask = attention_mask.astype(np.float64)[:, :, None]  # (B, T, 1)
    count = np.maximum(mask.sum(axis=1), 1e-9)  # (B, 1), as sentence-transformers clamps it
    parts = []
    for mode in modes:
        if mode == "cls":
            first = attention_mask.argmax(axis=1)  # (B,): 0 unless a prompt is left out
            parts.append(hidden[np.arange(len(hidden)), first].astype(np.float64))  # (B, H)
        elif mode == "max":
            parts.append(np.where(mask > 0, hidden, -np.inf).max(axis=1))  # (B, H)
        elif mode in ("mean", "mean_sqrt_len_tokens"):
            total = (hidden * mask).sum(axis=1)  # (B, H) float64: the mask promotes
            parts.append(total / (count if mode == "mean" else np.sqrt(count)))
        else:
            raise InputError(f"pooling mode {mode!r}: expected one of {', '.join(POOLING_MODES)}")
    return np.concatenate(parts, axis=-1).astype(np.float32)  # (B, P)


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
    include_prompt: bool = True  # the pooling config's include_prompt: False pools without the prompt's tokens
    prompts: Tuple[Tuple[str, str], ...] = DEFAULT_PROMPTS  # (name, text), config_sentence_transformers.json
    default_prompt_name: Optional[str] = None  # the prompt encode applies when given none
    similarity_fn_name: str = "cosine"  # what SentenceEncoder.similarity computes
    truncate_dim: Optional[int] = None  # Matryoshka: vectors cut to their first truncate_dim values


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
    st_config = read_json_object(st_config_file, CheckpointError, missing={})
    max_seq_length = st_config.get("max_seq_length")
    if max_seq_length is not None and (not isinstance(max_seq_length, int) or isinstance(max_seq_length, bool)
                                       or max_seq_length < 2):
        raise CheckpointError(f"{st_config_file}: max_seq_length {shown(max_seq_length)}; expected an integer of at "
                              "least 2")
    pooling_file = folder / _module_path(modules_file, modules[1]) / "config.json"
    pooling_config = read_json_object(pooling_file, CheckpointError)
    return Layout(pooling=pooling_modes(pooling_config, pooling_file), normalize=kinds[2:] == ["Normalize"],
                  max_seq_length=max_seq_length,
                  do_lower_case=bool_setting(st_config, "do_lower_case", False, st_config_file),
                  transformer_path=transformer_path, sentence_transformers=True,
                  include_prompt=bool_setting(pooling_config, "include_prompt", True, pooling_file),
                  **read_prompt_settings(folder / ST_CONFIG_FILE))


def read_prompt_settings(path: Path) -> Dict[str, object]:
    """config_sentence_transformers.json's prompts (after the "query" and "document" prompts every model has),
    default_prompt_name and similarity_fn_name (cosine when absent), checked: the Layout fields they fill."""
    config = read_json_object(path, CheckpointError, missing={})
    prompts = config.get("prompts") or {}
    if not isinstance(prompts, dict) or not all(isinstance(v, str) for v in prompts.values()):
        raise CheckpointError(f"{path}: prompts {shown(prompts)}; expected an object of prompt names to strings")
    prompts = {**dict(DEFAULT_PROMPTS), **prompts}
    default = config.get("default_prompt_name")
    if default is not None and default not in prompts:
        raise CheckpointError(f"{path}: default_prompt_name {shown(default)}; expected one of its prompts "
                              f"({', '.join(prompts)})")
    name = config.get("similarity_fn_name") or "cosine"
    if name not in SIMILARITY_FUNCTIONS:
        raise CheckpointError(f"{path}: similarity_fn_name {shown(name)}; expected one of "
                              f"{', '.join(SIMILARITY_FUNCTIONS)}")
    return {"prompts": tuple(prompts.items()), "default_prompt_name": default, "similarity_fn_name": name}


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
    """The pooling modes of a Pooling module's config.json, in sentence-transformers' concatenation order."""
    return pooling_modes(read_json_object(path, CheckpointError), path)


def embed_token_ids(encoder: SentenceEncoder, id_lists: Sequence[Sequence[int]],
                    normalize_embeddings: Optional[bool] = None) -> Array:
    """What `encoder.encode` gives a text whose word pieces are each of `id_lists`: [CLS] ids [SEP] (the model's
    own special tokens, the ids cut to fit max_seq_length), the model, pooling, and the model's Normalize module
    unless normalize_embeddings says otherwise. Returns (N, P) float32. (OpenAI's token-array input in `serve`;
    one token a text in `distill`.)"""
    cls_sep = encoder.tokenizer("").encodings[0].ids  # the empty text is exactly this family's [CLS] [SEP]
    rows = [[cls_sep[0], *ids[:encoder.max_seq_length - 2], cls_sep[-1]] for ids in id_lists]
    width = max(map(len, rows))
    ids, mask = np.zeros((len(rows), width), dtype=np.int64), np.zeros((len(rows), width), dtype=np.int64)
    for i, row in enumerate(rows):
        ids[i, :len(row)], mask[i, :len(row)] = row, 1
    hidden = encoder.model(ids, attention_mask=mask, token_type_ids=np.zeros_like(ids)).last_hidden_state
    vectors = pool(hidden, mask, encoder.pooling)  # (N, P)
    if normalize_embeddings is None:
        normalize_embeddings = encoder.normalize
    return normalize(vectors) if normalize_embeddings else vectors


def pooling_modes(config: dict, path: Path) -> Tuple[str, ...]:
    """The pooling modes of a Pooling module's config (read from `path`).

    Reads both the boolean `pooling_mode_*_tokens` keys and the newer `pooling_mode` ("mean" or a list).
    With no mode switched on, sentence-transformers means; so does minibert.
    """
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
    skip: int = 0  # the first `skip` tokens ([CLS] and the prompt's) are left out of pooling


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
                        normalize: Optional[bool] = None, truncate_dim: Optional[int] = None) -> "SentenceEncoder":
        """Load a sentence-transformers model folder or Hub repo id (or a plain BERT folder: mean pooling).

        `normalize` overrides the folder's Normalize module (False gives the raw pooled vectors).
        `truncate_dim`: every vector is cut to its first truncate_dim values (Matryoshka models), unless a call
        to encode asks for another size.
        """
        folder = resolve_model_dir(name_or_path, revision=revision)
        layout = replace(read_layout(folder), truncate_dim=_checked_dim(truncate_dim))
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
    def prompts(self) -> Dict[str, str]:
        """Prompt name -> the text put before each text: "query" and "document" ("" unless the model's
        config_sentence_transformers.json names them) and the model's own."""
        return dict(self.layout.prompts)

    @property
    def default_prompt_name(self) -> Optional[str]:
        return self.layout.default_prompt_name

    @property
    def similarity_fn_name(self) -> str:
        """"cosine", "dot", "euclidean" or "manhattan": what `similarity` computes (the model's config)."""
        return self.layout.similarity_fn_name

    @property
    def truncate_dim(self) -> Optional[int]:
        return self.layout.truncate_dim

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
        """P: the size of a sentence vector (the hidden size times the number of pooling modes, or truncate_dim
        when smaller)."""
        return min(self._pooled_dimension(), self.truncate_dim or self._pooled_dimension())

    def _pooled_dimension(self) -> int:
        return self.model.config.hidden_size * len(self.pooling)

    def settings(self) -> Dict[str, object]:
        """Everything needed to rebuild this encoder with `from_pretrained` (besides the files themselves)."""
        return {"name_or_path": self.name_or_path, "revision": self.revision, "pooling": list(self.pooling),
                "normalize": self.normalize, "max_seq_length": self.max_seq_length,
                "do_lower_case": self.do_lower_case, "truncate_dim": self.truncate_dim}

    def similarity(self, a, b) -> Array:
        """Every vector of `a` against every vector of `b` with the model's similarity_fn_name (cosine unless its
        config says otherwise).  (N, P), (M, P) -> (N, M) float32; see `minibert.retrieval.similarity`."""
        return similarity(a, b, self.similarity_fn_name)

    def similarity_pairwise(self, a, b) -> Array:
        """Vector i of `a` against vector i of `b` with the model's similarity function.  (N, P), (N, P) -> (N,)."""
        return similarity_pairwise(a, b, self.similarity_fn_name)

    def encode_query(self, sentences: SentenceInput, batch_size: int = 32, *, prompt_name: Optional[str] = None,
                     prompt: Optional[str] = None, **options) -> Union[Array, List[Array]]:
        """`encode` for search queries: with neither prompt nor prompt_name, the model's "query" prompt (which
        every model has, "" unless its config names one: the default prompt never applies here)."""
        if prompt is None and prompt_name is None:
            prompt_name = "query"
        return self.encode(sentences, batch_size, prompt_name=prompt_name, prompt=prompt, **options)

    def encode_document(self, sentences: SentenceInput, batch_size: int = 32, *,
                        prompt_name: Optional[str] = None, prompt: Optional[str] = None,
                        **options) -> Union[Array, List[Array]]:
        """`encode` for the documents searched: with neither prompt nor prompt_name, the first of the model's
        "document", "passage" and "corpus" prompts. As in sentence-transformers every model has a "document"
        prompt ("" unless its config names one), so a model naming only "passage" encodes documents without it."""
        if prompt is None and prompt_name is None:
            prompt_name = next(name for name in DOCUMENT_PROMPT_NAMES if name in self.prompts)
        return self.encode(sentences, batch_size, prompt_name=prompt_name, prompt=prompt, **options)

    def resolve_prompt(self, prompt: Optional[str] = None, prompt_name: Optional[str] = None) -> Optional[str]:
        """The text put before each text: `prompt` if given (prompt_name is then ignored, as in
        sentence-transformers), else the prompt named `prompt_name`, else the model's default prompt, else None."""
        if prompt is not None:
            if not isinstance(prompt, str):
                raise InputError(f"prompt: {shown(prompt)}; expected a string")
            return prompt
        if prompt_name is None:
            return self.prompts[self.default_prompt_name] if self.default_prompt_name is not None else None
        if prompt_name not in self.prompts:
            listed = ", ".join(f"{name!r} ({text!r})" for name, text in self.prompts.items())
            raise InputError(f"prompt_name {shown(prompt_name)}: not one of this model's prompts: {listed}")
        return self.prompts[prompt_name]

    def encode(self, sentences: SentenceInput, batch_size: int = 32, *, prompt_name: Optional[str] = None,
               prompt: Optional[str] = None, precision: str = "float32", normalize_embeddings: bool = False,
               truncate_dim: Optional[int] = None, show_progress_bar: Optional[bool] = None,
               output_value: str = "sentence_embedding", long_inputs: str = "truncate") -> Union[Array, List[Array]]:
        """Texts to vectors, with sentence-transformers' argument names and meanings.

        sentences: a string (gives (P,)) or a list of strings (gives (N, P) float32; an empty list (0, P)).
        prompt / prompt_name: text put before every text, given as such or by its name in the model's prompts
            (see `resolve_prompt`; with neither, the model's default_prompt_name, if any, applies). When the
            pooling config has include_prompt false, the prompt's tokens (as many as the prompt alone has,
            counting [CLS], not its [SEP]) are left out of the pooling: they are still seen by the model.
        precision: "float32", or "int8" / "uint8" (ranges from this call's vectors), "binary" / "ubinary" (bits
            packed 8 to a byte: (N, ceil(P / 8))); see `minibert.quantize_embeddings`.
        normalize_embeddings: scale each vector to unit length (on top of the model's own Normalize module),
            after truncation.
        truncate_dim: keep the first truncate_dim values of each vector (Matryoshka models); default the
            encoder's own truncate_dim. The model's Normalize module comes first: a truncated vector is shorter
            than 1 unless normalize_embeddings is set.
        output_value: "sentence_embedding", or "token_embeddings" for each text's (T_i, H) last hidden states,
            special tokens included, no padding (a list; an array for a single string).
        long_inputs: "truncate" (sentence-transformers' behaviour) cuts a text at `max_seq_length` tokens;
            "chunk" splits a longer text into windows of `max_seq_length` tokens that overlap by at least a
            quarter window, passes each through the whole model (pooling and the model's Normalize module)
            and averages them; with normalisation on, the average is normalised again. Each window starts with
            the prompt's tokens.
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
        if check_precision(precision) != "float32" and output_value != "sentence_embedding":
            raise InputError(f"precision={precision!r} quantizes sentence embeddings; it cannot give token_embeddings")
        resolved = self.resolve_prompt(prompt, prompt_name)
        truncate_dim = _checked_dim(truncate_dim)
        if show_progress_bar is None:
            show_progress_bar = len(texts) >= PROGRESS_MIN_TEXTS and sys.stderr.isatty()
        with progress(len(texts), "Encoding", "text", show_progress_bar) as advance:
            out = self._encode_texts(texts, batch_size, output_value=output_value, prompt=resolved,
                                     normalize_embeddings=normalize_embeddings, truncate_dim=truncate_dim,
                                     chunk=long_inputs == "chunk", advance=advance)
        if precision != "float32":
            out = quantize_embeddings(out, precision)
        return out[0] if single else out

    def encode_stream(self, texts: Iterable[str], chunk_size: int, batch_size: int = 32, *,
                      prompt_name: Optional[str] = None, prompt: Optional[str] = None,
                      normalize_embeddings: bool = False, truncate_dim: Optional[int] = None,
                      long_inputs: str = "truncate",
                      advance: Callable[[int], None] = lambda n: None) -> Iterator[Array]:
        """`encode` over an iterable of any length, `chunk_size` texts at a time: yields (n, P) float32 blocks, in
        order, so that no more than one chunk is ever held. `advance(n)` is called as each n more texts are done."""
        resolved = self.resolve_prompt(prompt, prompt_name)
        truncate_dim = _checked_dim(truncate_dim)
        rest = iter(texts)
        while chunk := list(itertools.islice(rest, chunk_size)):
            yield self._encode_texts(chunk, batch_size, prompt=resolved, normalize_embeddings=normalize_embeddings,
                                     truncate_dim=truncate_dim, chunk=long_inputs == "chunk", advance=advance)

    def _encode_texts(self, texts: List[str], batch_size: int, *, output_value: str = "sentence_embedding",
                      prompt: Optional[str] = None, normalize_embeddings: bool = False,
                      truncate_dim: Optional[int] = None, chunk: bool = False,
                      advance: Callable[[int], None] = lambda n: None) -> Union[Array, List[Array]]:
        """`encode` on checked arguments (`prompt` resolved; truncate_dim None: the encoder's); `advance(n)` is
        called as each n more texts are done."""
        pieces = self._pieces(texts, chunk=chunk, prompt=prompt)
        if output_value == "token_embeddings":
            tokens: List[Optional[Array]] = [None] * len(texts)  # no chunking here: one piece per text
            for batch, hidden, _ in self._run(pieces, len(texts), batch_size, advance):
                for p, h in zip(batch, hidden):
                    tokens[p.text] = h[:len(p.ids)]  # (T_i, H)
            return tokens
        total = np.zeros((len(texts), self._pooled_dimension()), dtype=np.float64)  # (N, P)
        for batch, hidden, pooled in self._run(pieces, len(texts), batch_size, advance):
            vectors = pool(hidden, pooled, self.pooling)  # (B, P)
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
        if chunk and self.normalize:  # a mean of unit vectors is shorter than 1: normalised again
            vectors = normalize(vectors)
        vectors = vectors[:, :truncate_dim or self.truncate_dim]  # sentence-transformers truncates, then normalises
        return normalize(vectors) if normalize_embeddings else vectors

    def _prompt_length(self, prompt: Optional[str]) -> int:
        """How many leading tokens of a prompted text are the prompt's, as sentence-transformers counts them:
        the prompt tokenized alone, [CLS] included, its closing [SEP] not (0 without a prompt)."""
        if not prompt:
            return 0
        return len(self._pieces([prompt], chunk=False, prompt=None)[0].ids) - 1

    def _pieces(self, texts: List[str], *, chunk: bool, prompt: Optional[str]) -> List[_Piece]:
        """Tokenize (in slices, so that no (N, T) array of every text is ever built) into forward-pass rows.

        The prompt goes before each text; a chunked text's windows each start with [CLS] and the prompt's tokens.
        """
        head = self._prompt_length(prompt)  # [CLS] and the prompt's tokens
        skip = 0 if self.layout.include_prompt else head
        head = max(head, 1)
        room = self.max_seq_length - head - 1  # a window's text tokens
        if chunk and room < 1:
            raise InputError(f"prompt {shown(prompt)}: its {head - 1} tokens leave no room for text in a window of "
                             f"max_seq_length {self.max_seq_length} tokens")
        pieces = []
        step = 1024
        for start in range(0, len(texts), step):
            part = [prompt + t for t in texts[start:start + step]] if prompt else texts[start:start + step]
            if self.do_lower_case:
                part = [t.lower() for t in part]
            batch = self.tokenizer(part, max_length=self.max_seq_length, truncation=not chunk)
            for i, e in enumerate(batch.encodings):
                ids, types = tuple(e.ids), tuple(e.type_ids)
                if not chunk or len(ids) <= self.max_seq_length:
                    pieces.append(_Piece(start + i, ids, types, skip))
                    continue
                for lo, hi in _windows(len(ids) - head - 1, room):
                    # [CLS] + prompt + window + [SEP]: each window is a text of its own to the model.
                    pieces.append(_Piece(start + i, ids[:head] + ids[head + lo:head + hi] + ids[-1:],
                                         types[:head] + types[head + lo:head + hi] + types[-1:], skip))
        return pieces

    def _run(self, pieces: List[_Piece], n_texts: int, batch_size: int,
             advance: Callable[[int], None]) -> Iterator[Tuple[List[_Piece], Array, Array]]:
        """Each batch of rows with its last hidden states (B, T, H) and the mask of the tokens pooled (B, T): the
        attention mask, right-padded, less each row's first `skip` tokens."""
        windows_left = np.bincount([p.text for p in pieces], minlength=n_texts)
        for batch in _length_batches(pieces, batch_size):
            T = len(batch[0].ids)  # the longest: rows come longest first
            ids, mask, types = (np.zeros((len(batch), T), dtype=np.int64) for _ in range(3))  # (B, T) each
            for row, p in enumerate(batch):
                n = len(p.ids)
                ids[row, :n], mask[row, :n], types[row, :n] = p.ids, 1, p.type_ids
            hidden = self.model(ids, attention_mask=mask, token_type_ids=types).last_hidden_state
            for row, p in enumerate(batch):
                mask[row, :p.skip] = 0
            yield batch, hidden, mask
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


def _checked_dim(value: Optional[int]) -> Optional[int]:
    """A truncate_dim: None (no truncation) or a positive integer (a larger one than the vectors keeps them
    whole, as in sentence-transformers)."""
    if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 1):
        raise InputError(f"truncate_dim: {shown(value)}; expected a positive integer or None")
    return value


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
