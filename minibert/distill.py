"""BERT's own static vectors: every token of a model's vocabulary through the model on its own, then PCA and a
frequency weighting, written in model2vec's format for `minibert.StaticEncoder`.

    from minibert import distill, StaticEncoder
    distill("sentence-transformers/all-MiniLM-L6-v2", "minilm-static", dim=256)   # about a minute on 2 cores
    StaticEncoder.from_pretrained("minilm-static").encode(["A dog barked."])       # (1, 256)

The method, step by step (each a function below):
1. `token_vectors`: token id i becomes the text [CLS] i [SEP] (the ids themselves, so that a piece such as
   "##ing" is that piece, not the word "##ing" tokenized again), through the whole model, pooled as its sentence
   encoder pools (modules.json's Pooling; its Normalize module is applied to whole texts by StaticEncoder, through
   config.json's `normalize`). Extra words (`vocab=`) go through as whole texts and become new WordPiece tokens.
2. `pca`: centre the (V, P) vectors and project them on their first `dim` principal axes (NumPy SVD). Centring
   removes the direction every token shares, which otherwise dominates every cosine; the dropped axes carry little.
3. `zipf_weights`: scale token i's row by a / (a + p_i), p_i the frequency Zipf's law predicts from its place in
   the vocabulary (BERT's WordPiece vocabulary lists words roughly most frequent first), SIF's weighting (Arora
   et al., 2017) as model2vec applies it, with a = 3e-5 (chosen on STS-B train; model2vec's 1e-4 gives 2.7 points
   less on STS-B dev). A text's mean then leans on its rare, informative tokens; a one-token word's
   cosine is unchanged (a scale). `weighting="none"` skips it.

The output folder holds model.safetensors (`embeddings`, (V, dim) float32), tokenizer.json and config.json, as
model2vec writes them; it is written in a temp folder beside it and renamed into place (minibert.io.atomic_folder).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable, List, Optional, Sequence, Tuple, Union

import numpy as np
from safetensors.numpy import save_file
from tokenizers import Tokenizer as _RustTokenizer

from .encoder import SentenceEncoder, embed_token_ids
from .errors import InputError, MinibertError, OutputError, shown
from .hub import DEFAULT_MODEL
from .io import atomic_folder, check_output, file_mode, open_input, parse_json, progress, read_texts
from .static import LAYOUTS

Array = np.ndarray
PathLike = Union[str, os.PathLike]
WEIGHTINGS = ("zipf", "none")
DEFAULT_DIM = 256
# SIF's a: chosen on STS-B *train* for all-MiniLM-L6-v2 (Spearman x 100: 62.5 at 1e-3, 67.2 at 1e-4, model2vec's
# default, 69.0 at 3e-5, 67.4 at 1e-5, 61.4 unweighted); the dev split was kept for the report.
SIF_COEFFICIENT = 3e-5
# The files of a distillation (model2vec's names), and the config.json key that marks one as minibert's: only a
# folder holding these and nothing else is replaced by a new run.
OUTPUT_FILES = (LAYOUTS[0].weights, LAYOUTS[0].tokenizer, LAYOUTS[0].config)
MARKER = ("distilled_with", "minibert")


@dataclass(frozen=True)
class Distillation:
    """What `distill` wrote: `vocab_size` rows (the model's tokens, then `extra_words` new ones) of `dim` floats."""

    output: Path
    vocab_size: int
    extra_words: int
    dim: int
    weighting: str


# ----------------------------------------------------------------------------------------------------------------
# The method: pure functions on arrays
# ----------------------------------------------------------------------------------------------------------------

def token_vectors(encoder: SentenceEncoder, ids: Array, batch_size: int,
                  advance: Callable[[int], None] = lambda n: None) -> Array:
    """Each token id i as the text [CLS] i [SEP], through the model, pooled as the encoder pools (without its
    Normalize module). ids: (n,) int. Returns (n, P) float32."""
    out = np.empty((len(ids), encoder.get_sentence_embedding_dimension()), dtype=np.float32)  # (n, P)
    for start in range(0, len(ids), batch_size):
        part = [[int(i)] for i in ids[start:start + batch_size]]
        out[start:start + len(part)] = embed_token_ids(encoder, part, normalize_embeddings=False)
        advance(len(part))
    return out


def pca(vectors: Array, dim: int) -> Array:
    """Centred vectors projected on their first `dim` principal axes, each axis signed so that its largest
    loading is positive (the same output on every run). (V, P) -> (V, dim) float32."""
    x = vectors.astype(np.float64)
    x -= x.mean(axis=0)
    _, _, axes = np.linalg.svd(x, full_matrices=False)  # (P, P): rows are the axes, by decreasing variance
    axes = axes[:dim]
    axes *= np.sign(axes[np.arange(dim), np.abs(axes).argmax(axis=1)])[:, None]
    return (x @ axes.T).astype(np.float32)


def zipf_weights(n: int, a: float = SIF_COEFFICIENT) -> Array:
    """SIF weights a / (a + p_r) with p_r = (1 / r) / sum(1 / k), the frequency Zipf's law gives the token of rank
    r = 1..n (rank = place in the vocabulary). (n,) float32, rising from the first token to the last."""
    inverse_rank = 1.0 / np.arange(1, n + 1, dtype=np.float64)
    return (a / (a + inverse_rank / inverse_rank.sum())).astype(np.float32)


def postprocess(vectors: Array, dim: int, weighting: str) -> Array:
    """`pca` to `dim` axes, then (weighting "zipf") `zipf_weights` by row. (V, P) -> (V, dim) float32."""
    embeddings = pca(vectors, dim)
    if weighting == "zipf":
        embeddings *= zipf_weights(len(embeddings))[:, None]
    return embeddings


# ----------------------------------------------------------------------------------------------------------------
# Extra words: new whole-word tokens of the WordPiece vocabulary
# ----------------------------------------------------------------------------------------------------------------

def read_words(vocab: Union[PathLike, Sequence[str]]) -> List[Tuple[str, str]]:
    """(word, where) pairs: a file's lines (`file:line`, the line rule of minibert.io) or a list's items."""
    if isinstance(vocab, (str, os.PathLike)):
        with open_input(os.fspath(vocab), "--vocab") as (stream, label, _):
            return [(w.strip(), f"{label}:{n}") for n, w in enumerate(read_texts(stream, label, False), 1)]
    return [(w, f"vocab[{i}]") for i, w in enumerate(vocab)]


def new_words(backend: _RustTokenizer, words: Sequence[Tuple[str, str]], lower: bool) -> List[str]:
    """The words to add, as the tokenizer sees them (normalized: lower-cased, accents stripped...), in order,
    without those already a token; one that the tokenizer would split into several words is an InputError."""
    vocab = backend.get_vocab(with_added_tokens=True)
    out: List[str] = []
    for word, where in words:
        text = word.lower() if lower else word
        text = backend.normalizer.normalize_str(text) if backend.normalizer else text
        parts = backend.pre_tokenizer.pre_tokenize_str(text) if backend.pre_tokenizer else [(text, None)]
        if len(parts) != 1 or not parts[0][0]:
            raise InputError(f"{where}: {shown(word)} is {len(parts)} words to the tokenizer "
                             f"({shown([p for p, _ in parts])}); expected one word per line")
        if text not in vocab and text not in out:
            out.append(text)
    return out


def extended_tokenizer(backend: _RustTokenizer, words: Sequence[str], lower: bool, name: str) -> str:
    """The tokenizer's JSON with `words` appended to its WordPiece vocabulary (ids V, V + 1, ...) and, when the
    sentence encoder lower-cases texts itself (sentence-transformers' do_lower_case), a Lowercase normalizer."""
    data = parse_json(backend.to_str(), f"{name}: tokenizer")
    if words:
        if data["model"]["type"] != "WordPiece":
            raise InputError(f"--vocab: {name} has a {data['model']['type']} tokenizer; extra words can be added "
                             "to a WordPiece vocabulary only")
        vocab = data["model"]["vocab"]
        first = max(vocab.values()) + 1
        vocab.update({w: first + i for i, w in enumerate(words)})
    if lower:
        rest = [data["normalizer"]] if data.get("normalizer") else []
        data["normalizer"] = {"type": "Sequence", "normalizers": [{"type": "Lowercase"}, *rest]}
    text = json.dumps(data, ensure_ascii=False)
    check = _RustTokenizer.from_str(text)
    for w in words:
        if check.encode(w, add_special_tokens=False).tokens != [w]:
            raise InputError(f"--vocab: {shown(w)} does not come out of the tokenizer as one token (longer than "
                             "WordPiece reads?); leave it out")
    return text


# ----------------------------------------------------------------------------------------------------------------
# The output folder
# ----------------------------------------------------------------------------------------------------------------

def check_destination(output: Path) -> None:
    """Refuse what check_output refuses for a folder (a file, a device, a missing parent...), and a folder
    holding anything but a previous distillation's files."""
    check_output(output, folder=True)
    if not output.exists():
        return
    try:
        names = sorted(p.name for p in output.iterdir())
    except OSError as e:
        raise OutputError(f"--output {output}: cannot be read ({e.strerror})") from None
    if names and not (set(names) <= set(OUTPUT_FILES) and _is_distillation(output / OUTPUT_FILES[2])):
        raise OutputError(f"--output {output}: holds {shown(names)}, not a previous `minibert distill` output; "
                          "refusing to replace it (pick a new or empty folder)")


def _is_distillation(config_path: Path) -> bool:
    """Whether `config_path` is the config.json of a `minibert distill` output."""
    try:
        config = parse_json(config_path.read_bytes(), str(config_path), MinibertError)
    except (OSError, MinibertError):
        return False
    return isinstance(config, dict) and config.get(MARKER[0]) == MARKER[1]


def write_folder(output: Path, embeddings: Array, tokenizer_json: str, config: dict) -> None:
    """Write the three files into `output` all at once (see minibert.io.atomic_folder): a previous distillation
    there is replaced only when the new one is complete, and on any error nothing is left behind."""
    with atomic_folder(output, check=check_destination) as tmp:
        save_file({"embeddings": np.ascontiguousarray(embeddings, dtype=np.float32)}, tmp / OUTPUT_FILES[0])
        os.chmod(tmp / OUTPUT_FILES[0], file_mode())  # save_file's file is private
        (tmp / OUTPUT_FILES[1]).write_text(tokenizer_json, encoding="utf-8")
        (tmp / OUTPUT_FILES[2]).write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")


# ----------------------------------------------------------------------------------------------------------------
# distill
# ----------------------------------------------------------------------------------------------------------------

def check_settings(dim: int, weighting: str, batch_size: int) -> None:
    for name, value in (("dim", dim), ("batch_size", batch_size)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise InputError(f"{name}: {shown(value)}; expected a positive integer")
    if weighting not in WEIGHTINGS:
        raise InputError(f"weighting: {shown(weighting)}; expected one of {', '.join(WEIGHTINGS)}")


def distill(model: Union[str, Path] = DEFAULT_MODEL, output: PathLike = "distilled", *, dim: int = DEFAULT_DIM,
            vocab: Union[None, PathLike, Sequence[str]] = None, weighting: str = "zipf", batch_size: int = 256,
            show_progress_bar: Optional[bool] = None) -> Distillation:
    """Distil `model`'s static vectors into the folder `output` (see the module docstring for the method).

    vocab: extra words (a file, one per line, or a list), each added as a whole-word token (WordPiece only).
    dim: the number of principal axes kept (at most the model's sentence-vector size P).
    weighting: "zipf" (SIF weights from each token's vocabulary rank) or "none".
    """
    check_settings(dim, weighting, batch_size)
    output = Path(output)
    check_destination(output)  # before the minutes of work
    words = read_words(vocab) if vocab is not None else []
    encoder = SentenceEncoder.from_pretrained(model)
    normalizes = encoder.normalize  # the model's own Normalize module
    encoder.layout = replace(encoder.layout, normalize=False)  # raw pooled vectors
    P = encoder.get_sentence_embedding_dimension()
    if dim > P:
        raise InputError(f"dim: {dim} is more than {model}'s {P} dimensions; expected at most {P}")
    backend = encoder.tokenizer.backend
    added = new_words(backend, words, encoder.do_lower_case)
    tokenizer_json = extended_tokenizer(backend, added, encoder.do_lower_case, str(model))
    V = encoder.tokenizer.id_limit
    with progress(V + len(added), "Distilling", "token", show_progress_bar) as advance:
        vectors = token_vectors(encoder, np.arange(V), batch_size, advance)  # (V, P): row i for id i
        if added:
            vectors = np.concatenate([vectors, encoder.encode(added, batch_size)])  # (V + W, P)
            advance(len(added))
    embeddings = postprocess(vectors, dim, weighting)
    config = {
        "model_type": "model2vec", "architectures": ["StaticModel"], "tokenizer_name": str(model),
        "apply_pca": dim, "sif_coefficient": SIF_COEFFICIENT if weighting == "zipf" else None, "hidden_dim": dim,
        "seq_length": 1000000, "normalize": normalizes, "pooling": "+".join(encoder.pooling),
        "embedding_dtype": "float32", MARKER[0]: MARKER[1], "weighting": weighting, "extra_words": len(added),
    }
    write_folder(output, embeddings, tokenizer_json, config)
    return Distillation(output, len(embeddings), len(added), dim, weighting)
