"""What the task heads are for, with the names and results of transformers' and sentence-transformers' APIs.

    fill_mask(model, tokenizer, "The cat [MASK] on the mat.")     transformers' fill-mask pipeline
    CrossEncoder.from_pretrained(M).predict(pairs) / .rank(q, docs)  sentence-transformers' CrossEncoder
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Union

import numpy as np

from .errors import ConfigError, InputError, shown
from .heads import top_k as highest
from .hub import resolve_model_dir
from .io import progress, read_json
from .model import softmax
from .modeling import BertForMaskedLM, BertForSequenceClassification
from .tokenizer import Tokenizer, as_text_list
from .weights import check_compatible

Array = np.ndarray
Activation = Callable[[Array], Array]


def sigmoid(x: Array) -> Array:
    """The logistic function, elementwise, in the input's precision (exp overflowing to inf gives 0, rightly)."""
    with np.errstate(over="ignore"):
        return 1 / (1 + np.exp(-x))


def identity(x: Array) -> Array:
    return x


# The activation paths sentence-transformers writes into a cross-encoder's config -> the same function here.
ACTIVATION_PATHS = {
    "torch.nn.modules.activation.Sigmoid": sigmoid, "torch.nn.Sigmoid": sigmoid,
    "torch.nn.modules.linear.Identity": identity, "torch.nn.Identity": identity,
    "torch.nn.modules.activation.Tanh": np.tanh, "torch.nn.Tanh": np.tanh,
}


# ----------------------------------------------------------------------------------------------------------------
# fill-mask
# ----------------------------------------------------------------------------------------------------------------

def fill_mask(model: BertForMaskedLM, tokenizer: Tokenizer, text: Union[str, Sequence[str]],
              top_k: int = 5) -> list:
    """The `top_k` likeliest tokens at each mask token of `text` (the tokenizer's own: [MASK], <mask>), as
    transformers' fill-mask pipeline gives them: for a text with one mask a list of {"score", "token",
    "token_str", "sequence"}, best first; with several masks a list of such lists, one per mask; for a list of
    texts, a list of those. "sequence" is the text decoded with the token in place of the mask (special tokens
    dropped, except with several masks, where the others stay visible), "token_str" the token decoded alone.
    Texts are not truncated: one longer than the model's limit is an InputError."""
    if tokenizer.mask_token_id is None:
        raise InputError(f"tokenizer {tokenizer.name_or_path!r} has no mask token ({tokenizer.mask_token!r} is not "
                         "in its vocabulary); fill-mask needs one")
    if isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1:
        raise InputError(f"top_k: expected a positive integer, got {shown(top_k)}")
    check_compatible(tokenizer, model.base_model)
    texts = as_text_list(text, "text")
    batch = tokenizer(texts, truncation=False)
    ids = batch["input_ids"]  # (B, T)
    masks = ids == tokenizer.mask_token_id  # (B, T)
    for i, row in enumerate(masks):
        if not row.any():
            raise InputError(f"text[{i}]: no mask token {tokenizer.mask_token!r} in {shown(texts[i])}; expected at "
                             "least one")
    probs = softmax(model(**batch, positions=masks).logits)  # (K, V), the masks row by row
    k = min(top_k, probs.shape[-1])
    best = highest(probs, k)  # (K, k): highest first, lower id first on ties
    results, row_of_mask = [], np.nonzero(masks)[0]
    for i in range(len(texts)):
        n = int(batch["attention_mask"][i].sum())
        rows = np.nonzero(row_of_mask == i)[0]
        per_mask = [_candidates(ids[i, :n], masks[i, :n], r, probs[m], best[m], tokenizer, single=len(rows) == 1)
                    for r, m in enumerate(rows)]
        results.append(per_mask[0] if len(per_mask) == 1 else per_mask)
    return results[0] if isinstance(text, str) else results


def _candidates(ids: Array, masks: Array, which: int, probs: Array, best: Array, tokenizer: Tokenizer,
                single: bool) -> List[dict]:
    """The candidates for mask number `which` of one text: each token in place, the text decoded."""
    position = np.nonzero(masks)[0][which]
    out = []
    for token in best:
        filled = ids.copy()
        filled[position] = token
        filled = filled[filled != tokenizer.pad_token_id]  # as the pipeline does
        out.append({"score": float(probs[token]), "token": int(token),
                    "token_str": tokenizer.decode([int(token)], skip_special_tokens=False),
                    "sequence": tokenizer.decode(filled, skip_special_tokens=single)})
    return out


# ----------------------------------------------------------------------------------------------------------------
# CrossEncoder
# ----------------------------------------------------------------------------------------------------------------

class CrossEncoder:
    """Scores a pair of texts read together (a query and a passage, two sentences), as sentence-transformers'
    CrossEncoder does: the pair goes through the encoder as [CLS] A [SEP] B [SEP] (cut longest-first to
    `max_length` tokens), then the classification head, then `activation_fn`.

    >>> model = CrossEncoder.from_pretrained("cross-encoder/ms-marco-MiniLM-L-6-v2")
    >>> model.predict([("How many people live in Berlin?", "Berlin has 3.5 million inhabitants.")])
    >>> model.rank("How many people live in Berlin?", documents, top_k=3)
    """

    def __init__(self, model: BertForSequenceClassification, tokenizer: Tokenizer, activation_fn: Activation,
                 max_length: int):
        self.model = model
        self.tokenizer = tokenizer
        self.activation_fn = activation_fn
        self.max_length = max_length

    @classmethod
    def from_pretrained(cls, name_or_path: Union[str, Path], *, revision: Optional[str] = None,
                        max_length: Optional[int] = None, activation_fn: Optional[Activation] = None,
                        strict: bool = False) -> "CrossEncoder":
        """Load a cross-encoder (a sequence-classification checkpoint and its tokenizer).

        activation_fn: by default sentence-transformers' choice: the `activation_fn` of
        config_sentence_transformers.json, else config.json's `sentence_transformers.activation_fn`, else its
        legacy `sbert_ce_default_activation_function`, else Sigmoid for one label and the identity for more.
        max_length: tokens per pair (default: the tokenizer's model_max_length, at most the position table's)."""
        folder = resolve_model_dir(name_or_path, revision=revision)
        model = BertForSequenceClassification.from_pretrained(name_or_path, revision=revision, strict=strict)
        tokenizer = Tokenizer.from_pretrained(name_or_path, revision=revision)
        check_compatible(tokenizer, model.base_model)
        if max_length is None:
            max_length = tokenizer.model_max_length
        elif (isinstance(max_length, bool) or not isinstance(max_length, int)
              or not 4 <= max_length <= model.config.max_tokens):
            raise InputError(f"max_length: expected an integer from 4 (the special tokens of a pair) to "
                             f"{model.config.max_tokens} (the model's limit), got {shown(max_length)}")
        if activation_fn is None:
            activation_fn = default_activation(folder, model.config.num_labels)
        return cls(model, tokenizer, activation_fn, max_length)

    @property
    def config(self):
        return self.model.config

    @property
    def num_labels(self) -> int:
        return self.model.config.num_labels

    def predict(self, sentences, batch_size: int = 32, show_progress_bar: Optional[bool] = None,
                activation_fn: Optional[Activation] = None, apply_softmax: bool = False,
                convert_to_numpy: bool = True) -> Union[Array, List[Array], float]:
        """Scores of text pairs: a list of (A, B) pairs gives (N,) for a one-label model, (N, num_labels)
        otherwise (a list of N arrays with convert_to_numpy=False); one pair gives its score alone.
        activation_fn: applied to the logits (default: the model's, see from_pretrained); apply_softmax: then
        a softmax over the labels (when there are several)."""
        single = _is_pair(sentences)
        pairs = [sentences] if single else list(sentences)
        for i, pair in enumerate(pairs):
            if not _is_pair(pair):
                raise InputError(f"sentences[{i}]: expected a pair of texts (A, B), got {shown(pair)}")
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise InputError(f"batch_size: expected a positive integer, got {shown(batch_size)}")
        activation_fn = self.activation_fn if activation_fn is None else activation_fn
        rows = []
        with progress(len(pairs), "Scoring", "pair", bool(show_progress_bar)) as advance:
            for start in range(0, len(pairs), batch_size):
                chunk = pairs[start:start + batch_size]
                batch = self.tokenizer([a for a, _ in chunk], [b for _, b in chunk], max_length=self.max_length)
                rows.append(activation_fn(self.model(**batch).logits))  # (b, num_labels)
                advance(len(chunk))
        scores = np.concatenate(rows) if rows else np.zeros((0, self.num_labels), np.float32)
        if self.num_labels == 1:
            scores = scores[:, 0]  # (N,)
        elif apply_softmax:
            scores = softmax(scores)
        if single:
            return scores[0]
        return scores if convert_to_numpy else list(scores)

    def rank(self, query: str, documents: Sequence[str], top_k: Optional[int] = None, return_documents: bool = False,
             batch_size: int = 32, show_progress_bar: Optional[bool] = None,
             activation_fn: Optional[Activation] = None) -> List[Dict[str, object]]:
        """The documents by their score against the query, best first: [{"corpus_id", "score"(, "text")}], the
        first `top_k` of them (all by default). Only for a one-label model, as in sentence-transformers."""
        if self.num_labels != 1:
            raise InputError(f"rank: needs a model with one label (a relevance score); this one has "
                             f"{self.num_labels} (use predict)")
        if not isinstance(query, str):
            raise InputError(f"query: expected a string, got {shown(query)}")
        documents = as_text_list(documents, "documents")
        if top_k is not None and (isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1):
            raise InputError(f"top_k: expected a positive integer or None, got {shown(top_k)}")
        scores = self.predict([(query, d) for d in documents], batch_size=batch_size,
                              show_progress_bar=show_progress_bar, activation_fn=activation_fn)
        order = sorted(range(len(documents)), key=lambda i: -scores[i])  # stable: equal scores keep their order
        results = [{"corpus_id": i, "score": float(scores[i])} for i in order]
        if return_documents:
            for r in results:
                r["text"] = documents[r["corpus_id"]]
        return results[:top_k]

    def __repr__(self) -> str:
        return (f"CrossEncoder({self.model.name_or_path!r}, num_labels={self.num_labels}, "
                f"max_length={self.max_length})")


def _is_pair(value: object) -> bool:
    return isinstance(value, (list, tuple)) and len(value) == 2 and all(isinstance(t, str) for t in value)


def default_activation(folder: Path, num_labels: int) -> Activation:
    """sentence-transformers' default activation for a cross-encoder folder (see CrossEncoder.from_pretrained).
    A path outside torch (custom code, which sentence-transformers runs only with trust_remote_code) is passed
    over, as it does without that flag; a torch path not in ACTIVATION_PATHS is a ConfigError."""
    st_config = read_json(folder / "config_sentence_transformers.json", ConfigError, missing={})
    config = read_json(folder / "config.json", ConfigError)
    path, where = (st_config.get("activation_fn") if isinstance(st_config, dict) else None,
                   folder / "config_sentence_transformers.json")
    if path is None:
        st = config.get("sentence_transformers")
        path, where = (st.get("activation_fn") if isinstance(st, dict) else None), folder / "config.json"
    if path is None:
        path = config.get("sbert_ce_default_activation_function")
    if isinstance(path, str) and path.startswith("torch."):
        if path not in ACTIVATION_PATHS:
            raise ConfigError(f"{where}: activation function {path!r} is not one minibert has; expected one of "
                              f"{', '.join(ACTIVATION_PATHS)}")
        return ACTIVATION_PATHS[path]
    if path is not None and not isinstance(path, str):
        raise ConfigError(f"{where}: activation_fn: expected a dotted path such as "
                          f"'torch.nn.modules.activation.Sigmoid', got {shown(path)}")
    return sigmoid if num_labels == 1 else identity
