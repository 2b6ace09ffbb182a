"""A word's vector in context: find its word pieces through the tokenizer's offsets, average their hidden states.

    vecs = word_vectors(model, tok, ["We sat on the river bank.", "The bank raised its rates."], "bank")
    vecs.shape                                  # (2, H): the last layer
    word_vectors(model, tok, sentences, "bank", layers="all").shape   # (2, L + 1, H), layer 0 = embeddings

A word is given, per sentence or once for all of them, as
    "bank"          its first whole-word, case-insensitive occurrence
    ("bank", 1)     its second occurrence (0-based index)
    (14, 18)        a character span [start, end) of the sentence
The pieces are those tokens whose character offsets overlap the span, so the position of a word never has to be
guessed ("token 2, may vary"): multi-piece words ("un ##aff ##able"), accents and casing all follow from the
tokenizer itself.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import List, Sequence, Tuple, Union

import numpy as np

from .errors import InputError
from .modeling import BertModel
from .tokenizer import Batch, Tokenizer

WordSpec = Union[str, Tuple[str, int], Tuple[int, int]]
Layers = Union[int, Sequence[int], str]


@dataclass(frozen=True)
class WordLocation:
    """Where a word sits in one sentence: its characters and its word pieces."""

    sentence: str
    span: Tuple[int, int]  # characters [start, end) of the sentence
    tokens: Tuple[int, ...]  # positions of its pieces in the tokenized sentence ([CLS] is position 0)
    pieces: Tuple[str, ...]  # the word pieces themselves, e.g. ("un", "##aff", "##able")

    @property
    def text(self) -> str:
        return self.sentence[self.span[0]:self.span[1]]


def word_spans(sentence: str, word: str) -> List[Tuple[int, int]]:
    """Character spans of every whole-word, case-insensitive occurrence of `word` (see find_word)."""
    return [m.span() for m in re.finditer(rf"(?<!\w){re.escape(word)}(?!\w)", sentence, re.IGNORECASE)]


def find_word(sentence: str, word: str, occurrence: int = 0) -> Tuple[int, int]:
    """Character span of the `occurrence`-th (0-based) whole-word, case-insensitive occurrence of `word`.

    "Whole word": not preceded or followed by a letter or digit, so "cat" is not found inside "concatenate".
    """
    if not isinstance(word, str) or not word.strip():
        raise InputError(f"word: expected a non-empty string, got {word!r}")
    if isinstance(occurrence, bool) or not isinstance(occurrence, int) or occurrence < 0:
        raise InputError(f"word {word!r}: occurrence index must be an integer >= 0, got {occurrence!r}")
    word = word.strip()
    found = word_spans(sentence, word)
    if not found:
        raise InputError(f"word {word!r} not found (as a whole word, ignoring case) in sentence {_shown(sentence)}")
    if occurrence >= len(found):
        raise InputError(f"word {word!r}: asked for occurrence {occurrence} (0-based) but sentence "
                         f"{_shown(sentence)} has only {len(found)}")
    return found[occurrence]


def locate(tokenizer: Tokenizer, sentences: Union[str, Sequence[str]], words: Union[WordSpec, Sequence[WordSpec]],
           *, batch: Batch | None = None) -> List[WordLocation]:
    """Find each sentence's word (see the module docstring for the forms a word takes) and its word pieces.

    `batch` is the tokenizer's output for `sentences` when the caller already has it.
    """
    sentences = _sentence_list(sentences)
    specs = _spec_list(words, len(sentences))
    batch = tokenizer(sentences) if batch is None else batch
    return [_locate_one(batch, i, s, spec) for i, (s, spec) in enumerate(zip(sentences, specs))]


def word_vectors(model: BertModel, tokenizer: Tokenizer, sentences: Union[str, Sequence[str]],
                 words: Union[WordSpec, Sequence[WordSpec]], *, layers: Layers = -1,
                 batch_size: int = 64) -> np.ndarray:
    """The vector of a word in each sentence: the mean of its word pieces' hidden states.

    `words` is one word for every sentence or one per sentence. `layers`: an int (0 = the input embedding
    output, L = the last layer, negative counts from the end) gives (S, H); a list of K ints gives (S, K, H);
    "all" gives (S, L + 1, H). float32. Sentences run in batches of `batch_size` distinct sentences.
    """
    sentences = _sentence_list(sentences)
    chosen, squeeze = _layer_indices(layers, model.config.num_hidden_layers)
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise InputError(f"batch_size: expected a positive integer, got {batch_size!r}")
    full = tokenizer(sentences)
    where = locate(tokenizer, sentences, words, batch=full)
    out = np.empty((len(sentences), len(chosen), model.config.hidden_size), dtype=np.float32)
    # Each distinct sentence runs once, however many of its words are asked for (WiC's train split repeats
    # 42% of its sentences); distinct sentences of similar length batch together (little padding).
    first_row: dict = {}
    owner = np.array([first_row.setdefault(s, i) for i, s in enumerate(sentences)])  # row -> first row of its text
    distinct = np.unique(owner)
    order = distinct[np.argsort([len(full.encodings[r].ids) for r in distinct], kind="stable")]
    for start in range(0, len(order), batch_size):
        heads = order[start:start + batch_size]
        position = {int(r): b for b, r in enumerate(heads)}
        rows = np.flatnonzero(np.isin(owner, heads))
        out[rows] = _pooled(model, Batch([full.encodings[r] for r in heads], tokenizer.pad_token_id),
                            [position[int(owner[r])] for r in rows], [where[r].tokens for r in rows], chosen)
    return out[:, 0] if squeeze else out


def _pooled(model: BertModel, batch: Batch, batch_rows: List[int], tokens: List[Tuple[int, ...]],
            chosen: List[int]) -> np.ndarray:
    """For each of R words, the mean of its tokens in row batch_rows[r] of the batch, at each chosen layer.
    -> (R, K, H)"""
    T = batch["input_ids"].shape[1]
    weights = np.zeros((len(tokens), 1, T), dtype=np.float32)  # word r averages its pieces
    for r, positions in enumerate(tokens):
        weights[r, 0, list(positions)] = 1 / len(positions)
    last_only = chosen == [model.config.num_hidden_layers]
    out = model(**batch, output_hidden_states=not last_only)
    hidden = [out.last_hidden_state] if last_only else [out.hidden_states[k] for k in chosen]  # K x (B, T, H)
    return np.stack([(weights @ h[batch_rows])[:, 0] for h in hidden], axis=1)  # (R, K, H)


def _locate_one(batch: Batch, row: int, sentence: str, spec: WordSpec) -> WordLocation:
    if isinstance(spec, str):
        span = find_word(sentence, spec)
    elif isinstance(spec[0], str):
        span = find_word(sentence, spec[0], spec[1])
    else:
        span = _check_span(sentence, spec)
    start, end = span
    sequence, offsets, pieces = batch.sequence_ids(row), batch.offsets(row), batch.tokens(row)
    tokens = tuple(t for t, (s, e) in enumerate(offsets) if sequence[t] is not None and s < end and e > start)
    if not tokens:
        text = sentence[start:end]
        last = max((e for t, (_, e) in enumerate(offsets) if sequence[t] is not None), default=0)
        why = (f"it lies beyond the first {len(offsets)} tokens the model reads" if start >= last
               else "the tokenizer drops those characters")
        raise InputError(f"word {text!r} (characters {start}-{end}) has no word pieces in sentence "
                         f"{_shown(sentence)}: {why}")
    return WordLocation(sentence, (start, end), tokens, tuple(pieces[t] for t in tokens))


def _check_span(sentence: str, spec: Tuple[int, int]) -> Tuple[int, int]:
    start, end = spec
    if not (all(isinstance(x, int) and not isinstance(x, bool) for x in spec) and 0 <= start < end <= len(sentence)):
        raise InputError(f"character span {spec!r}: expected 0 <= start < end <= {len(sentence)} "
                         f"in sentence {_shown(sentence)}")
    if not sentence[start:end].strip():
        raise InputError(f"character span {spec!r} holds only whitespace in sentence {_shown(sentence)}")
    return start, end


def _shown(sentence: str, limit: int = 100) -> str:
    """The sentence quoted for an error message, cut to `limit` characters."""
    return repr(sentence if len(sentence) <= limit else sentence[:limit - 3] + "...")


def _is_spec(value: object) -> bool:
    """One word: a string, (word, occurrence) or (start, end)."""
    if isinstance(value, str):
        return True
    return (isinstance(value, tuple) and len(value) == 2 and isinstance(value[1], int)
            and isinstance(value[0], (str, int)))


def _spec_list(words: Union[WordSpec, Sequence[WordSpec]], n: int) -> List[WordSpec]:
    if _is_spec(words):
        return [words] * n  # type: ignore[list-item]
    if isinstance(words, (bytes, dict)) or not hasattr(words, "__iter__"):
        raise InputError(f"words: expected a word, (word, occurrence), (start, end) or a list of them, got {words!r}")
    specs = list(words)  # type: ignore[arg-type]
    if len(specs) != n:
        raise InputError(f"words: {len(specs)} words for {n} sentences; give one word for all or one per sentence")
    for i, spec in enumerate(specs):
        if not _is_spec(spec):
            raise InputError(f"words[{i}]: expected a word, (word, occurrence) or (start, end), got {spec!r}")
    return specs


def _sentence_list(sentences: Union[str, Sequence[str]]) -> List[str]:
    items = [sentences] if isinstance(sentences, str) else list(sentences)
    if not items:
        raise InputError("sentences: expected at least one sentence")
    for i, s in enumerate(items):
        if not isinstance(s, str):
            raise InputError(f"sentences[{i}]: expected a string, got {type(s).__name__}")
    return items


def _layer_indices(layers: Layers, num_layers: int) -> Tuple[List[int], bool]:
    """Hidden-state indices 0..L for `layers`, and whether the caller asked for a single layer."""
    if isinstance(layers, str):
        if layers != "all":
            raise InputError(f"layers: expected an int, a list of ints or 'all', got {layers!r}")
        return list(range(num_layers + 1)), False
    single = not hasattr(layers, "__iter__")
    chosen = []
    for k in ([layers] if single else list(layers)):  # type: ignore[list-item]
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not -(num_layers + 1) <= k <= num_layers:
            raise InputError(f"layers: {k!r} is not a layer of this model; expected an int from "
                             f"{-(num_layers + 1)} to {num_layers} (0 = embeddings, {num_layers} = last)")
        chosen.append(int(k) % (num_layers + 1))
    if not chosen:
        raise InputError("layers: expected at least one layer")
    return chosen, single
