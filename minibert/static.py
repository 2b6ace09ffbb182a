"""Static sentence embeddings: a text's vector is the mean of its tokens' rows in one table, no network at all.

    from minibert import StaticEncoder
    encoder = StaticEncoder.from_pretrained("distilled/")      # `minibert distill` output, or a model2vec model
    vectors = encoder.encode(["The cat sat on the mat.", "A dog barked."])   # (2, D) float32
    encoder.similarity(vectors, vectors)                                      # (2, 2) cosine matrix

The folder is model2vec's format: `model.safetensors` holding the (V', D) `embeddings` matrix (and, in newer files,
a (V,) `weights` vector that scales each token's row and a (V,) `mapping` from token id to row), `tokenizer.json`,
and `config.json` (`normalize`, `max_length`). sentence-transformers' StaticEmbedding layout (the matrix stored as
`embedding.weight`, settings in `config_sentence_transformers.json`, optionally under `0_StaticEmbedding/`) loads
too. Texts are tokenized without special tokens, the unknown token is dropped (as model2vec drops it), and a text
without tokens gets the zero vector.

Each text is computed alone (a sum in float64 over its own tokens), so its vector is the same in any batch.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Union

import numpy as np
from tokenizers import Tokenizer as _RustTokenizer

from .encoder import SentenceInput, normalize, similarity
from .errors import CheckpointError, InputError, shown
from .hub import resolve_model_dir
from .io import parse_json, progress, read_json, read_json_object
from .tokenizer import as_text_list
from .weights import FLOAT_DTYPES, StoredTensor, read_safetensors, to_float32

Array = np.ndarray
# model2vec's default limit on the tokens of one text (its StaticModel's DEFAULT_MAX_LENGTH).
DEFAULT_MAX_LENGTH = 512
PROGRESS_MIN_TEXTS = 10_000  # static encoding is fast: a bar is worth it only for many texts


@dataclass(frozen=True)
class FolderLayout:
    """Where a static model's files are, relative to its folder, and the name of its matrix."""

    weights: str
    tokenizer: str
    config: str
    matrix: str


# model2vec's own layout first, then sentence-transformers' StaticEmbedding (at the top, or in its module folder).
LAYOUTS = (
    FolderLayout("model.safetensors", "tokenizer.json", "config.json", "embeddings"),
    FolderLayout("model.safetensors", "tokenizer.json", "config_sentence_transformers.json", "embedding.weight"),
    FolderLayout("0_StaticEmbedding/model.safetensors", "0_StaticEmbedding/tokenizer.json",
                 "config_sentence_transformers.json", "embedding.weight"),
)


def find_layout(folder: Path) -> FolderLayout:
    """The first layout whose three files are all in `folder`."""
    for layout in LAYOUTS:
        if all((folder / name).is_file() for name in (layout.weights, layout.tokenizer, layout.config)):
            return layout
    raise CheckpointError(f"{folder}: not a static model folder; expected model.safetensors, tokenizer.json and "
                          "config.json (model2vec's format, as `minibert distill` writes it) or sentence-transformers' "
                          "StaticEmbedding files")


def token_table(tensors: Dict[str, StoredTensor], layout: FolderLayout, path: Path, vocab_size: int) -> Array:
    """The (V, D) float32 row of every token id: `embeddings[mapping] * weights[:, None]`, with `mapping` and
    `weights` optional (without either, the file's matrix itself, memory-mapped when stored as float32)."""
    if layout.matrix not in tensors:
        raise CheckpointError(f"{path}: has no tensor {layout.matrix!r}; expected the (V, D) embedding matrix "
                              f"(tensors: {shown(sorted(tensors))})")
    stored = tensors[layout.matrix]
    if stored.dtype not in (*FLOAT_DTYPES, "I8") or stored.array.ndim != 2 or 0 in stored.array.shape:
        raise CheckpointError(f"{path}: {layout.matrix} is {stored.dtype} of shape {stored.array.shape}; expected a "
                              "non-empty 2-D float (or int8) matrix")
    table = to_float32(stored)  # (V', D)
    mapping = tensors.get("mapping")
    if mapping is not None:
        ids = mapping.array
        if not np.issubdtype(ids.dtype, np.integer) or ids.ndim != 1 or (ids.size and not
                                                                            0 <= ids.min() <= ids.max() < len(table)):
            raise CheckpointError(f"{path}: mapping is {mapping.dtype} of shape {ids.shape}; expected one row number "
                                  f"(0 to {len(table) - 1}) per token id")
        table = table[ids]
    if len(table) < vocab_size:
        raise CheckpointError(f"{path}: {layout.matrix} has {len(table)} rows for a tokenizer of {vocab_size} tokens; "
                              "expected a row for every token id")
    weights = tensors.get("weights")
    if weights is not None:
        if weights.dtype not in FLOAT_DTYPES or weights.array.shape != (len(table),):
            raise CheckpointError(f"{path}: weights is {weights.dtype} of shape {weights.array.shape}; expected one "
                                  f"float per token ({len(table)},)")
        table = table * to_float32(weights)[:, None]
    if not np.isfinite(table).all():
        raise CheckpointError(f"{path}: {layout.matrix} holds NaN or infinite values")
    return table


def unknown_id(tokenizer: _RustTokenizer, path: Path) -> Optional[int]:
    """The unknown token's id (WordPiece, BPE and WordLevel name it; Unigram gives its id), or None."""
    model = parse_json(tokenizer.to_str(), str(path), CheckpointError).get("model", {})
    if isinstance(model.get("unk_id"), int):
        return model["unk_id"]
    name = model.get("unk_token")
    return tokenizer.token_to_id(name) if isinstance(name, str) else None


def read_max_length(config: dict, path: Path) -> Optional[int]:
    """config.json's `max_length` (tokens kept per text; null for no limit), model2vec's 512 when absent."""
    value = config.get("max_length", DEFAULT_MAX_LENGTH)
    if value is not None and (type(value) is not int or value < 1):
        raise CheckpointError(f"{path}: max_length {shown(value)}; expected a positive integer or null")
    return value


def reads_normalize(folder: Path, layout: FolderLayout, config: dict) -> bool:
    """Whether vectors end normalised: model2vec's config.json `normalize`; in sentence-transformers' layout, a
    Normalize module in modules.json."""
    if layout.matrix == "embeddings":
        flag = config.get("normalize", False)
        if not isinstance(flag, bool):
            raise CheckpointError(f"{folder / layout.config}: normalize {shown(flag)}; expected true or false")
        return flag
    modules = read_json(folder / "modules.json", CheckpointError, missing=[])
    return isinstance(modules, list) and any(isinstance(m, dict) and str(m.get("type", "")).endswith(".Normalize")
                                             for m in modules)


def mean_rows(table: Array, ids: Sequence[Sequence[int]]) -> Array:
    """The mean of each text's rows of `table`; a text without tokens gets zeros.

    table: (V, D); ids: N lists of token ids. Returns (N, D) float32. Each mean is a float64 sum over the text's
    own rows, so it does not depend on the other texts of the call."""
    out = np.zeros((len(ids), table.shape[1]), dtype=np.float64)  # (N, D)
    lengths = np.array([len(i) for i in ids])
    full = np.flatnonzero(lengths)
    if full.size:
        flat = np.concatenate([np.asarray(ids[i], dtype=np.int64) for i in full])
        starts = np.concatenate([[0], np.cumsum(lengths[full])[:-1]])
        sums = np.add.reduceat(table[flat], starts, axis=0, dtype=np.float64)  # (n_full, D), no float64 copy
        out[full] = sums / lengths[full, None]
    return out.astype(np.float32)


class StaticEncoder:
    """A static embedding table with its tokenizer, with SentenceEncoder's `encode` and `similarity`.

    >>> encoder = StaticEncoder.from_pretrained("distilled/")
    >>> encoder.encode(["first text", "second text"]).shape     # (2, D)
    """

    def __init__(self, table: Array, tokenizer: _RustTokenizer, *, normalize: bool = False,
                 max_length: Optional[int] = DEFAULT_MAX_LENGTH, unk_id: Optional[int] = None,
                 name_or_path: Optional[str] = None):
        """table: (V, D) float32, row i for token id i."""
        tokenizer.no_padding()
        tokenizer.no_truncation()
        self.table = table
        self.tokenizer = tokenizer
        self.normalize = normalize
        self.max_length = max_length
        self.unk_id = unk_id
        self.name_or_path = name_or_path

    @classmethod
    def from_pretrained(cls, name_or_path: Union[str, Path], *, revision: Optional[str] = None,
                        normalize: Optional[bool] = None) -> "StaticEncoder":
        """Load a `minibert distill` output or a model2vec model: a folder or a Hub repo id.

        `normalize` overrides the folder's setting (config.json's `normalize`, or a Normalize module in
        sentence-transformers' layout); False gives the raw mean vectors."""
        folder = resolve_model_dir(name_or_path, revision=revision)
        layout = find_layout(folder)
        config_path = folder / layout.config
        config = read_json_object(config_path, CheckpointError)
        tokenizer_path = folder / layout.tokenizer
        try:
            tokenizer = _RustTokenizer.from_file(str(tokenizer_path))
        except Exception as e:  # the Rust library raises plain Exception on a bad file
            raise CheckpointError(f"{tokenizer_path}: cannot be read as a tokenizer ({e})") from None
        vocab_size = max(tokenizer.get_vocab(with_added_tokens=True).values(), default=-1) + 1
        weights_path = folder / layout.weights
        tensors = read_safetensors(weights_path)
        table = token_table(tensors, layout, weights_path, vocab_size)
        flag = reads_normalize(folder, layout, config)
        return cls(table, tokenizer, normalize=flag if normalize is None else bool(normalize),
                   max_length=read_max_length(config, config_path), unk_id=unknown_id(tokenizer, tokenizer_path),
                   name_or_path=str(name_or_path))

    def get_sentence_embedding_dimension(self) -> int:
        """D: the size of a text's vector."""
        return self.table.shape[1]

    def similarity(self, a, b) -> Array:
        """Cosine similarity matrix of two sets of vectors (see `minibert.encoder.similarity`)."""
        return similarity(a, b)

    def token_ids(self, texts: List[str]) -> List[List[int]]:
        """Each text's token ids: no special tokens, no unknown token, at most `max_length` of them."""
        encodings = self.tokenizer.encode_batch(texts, add_special_tokens=False)
        ids = [[i for i in e.ids if i != self.unk_id] for e in encodings]
        return ids if self.max_length is None else [i[:self.max_length] for i in ids]

    def encode(self, sentences: SentenceInput, batch_size: int = 1024, *, normalize_embeddings: bool = False,
               show_progress_bar: Optional[bool] = None) -> Array:
        """Texts to vectors: the mean of each text's token rows.

        sentences: a string (gives (D,)) or a list of strings (gives (N, D) float32; an empty list (0, D)).
        normalize_embeddings: scale each vector to unit length (also done when config.json says `normalize`).
        batch_size: texts tokenized and averaged per step (it changes no vector, only the memory held at once).
        """
        single = isinstance(sentences, str)
        texts = as_text_list(sentences, "sentences")
        if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1:
            raise InputError(f"batch_size: {batch_size!r}; expected a positive integer")
        if show_progress_bar is None:
            show_progress_bar = len(texts) >= PROGRESS_MIN_TEXTS and sys.stderr.isatty()
        blocks = [np.zeros((0, self.get_sentence_embedding_dimension()), dtype=np.float32)]
        with progress(len(texts), "Encoding", "text", show_progress_bar) as advance:
            for start in range(0, len(texts), batch_size):
                part = texts[start:start + batch_size]
                blocks.append(mean_rows(self.table, self.token_ids(part)))
                advance(len(part))
        vectors = np.concatenate(blocks)
        if self.normalize or normalize_embeddings:
            vectors = normalize(vectors)
        return vectors[0] if single else vectors

    def __repr__(self) -> str:
        return (f"StaticEncoder({self.name_or_path!r}, vocab={len(self.table)}, dim={self.table.shape[1]}, "
                f"normalize={self.normalize}, max_length={self.max_length})")


