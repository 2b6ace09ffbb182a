"""The model object: a checkpoint loaded for its family, inputs checked, and one of two forward paths run.

    model = AutoModel.from_pretrained("sentence-transformers/all-mpnet-base-v2")   # any supported family
    out = model(**tokenizer(["The cat sat on the mat."]), output_hidden_states=True)
    out.last_hidden_state        # (B, T, H), zeros at padding

The two paths compute the same numbers (tests/test_fast.py, and both against PyTorch in tests/test_reference.py):
    "fast"       fast.py: real tokens only, packed, over all cores. The default.
    "reference"  model.py's functions, as written. Needed for attention probabilities.
With `path=None` the fast path runs unless `output_attentions=True` asks for what only the reference path
returns. Either way hidden states are zeros where attention_mask is 0 (the reference path computes vectors
there and they are set to 0: they mean nothing, and this way no result depends on the path).

With a task head (heads.py) on top, as transformers names them:
    AutoModelForMaskedLM                  .logits (B, T, V), or (K, V) at the positions asked for
    AutoModelForSequenceClassification    .logits (B, num_labels); config.id2label names the labels
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property, partial
from pathlib import Path
from typing import Dict, Optional, Tuple

import numpy as np

from . import blas, fast, heads, model
from .config import BertConfig, ClassificationConfig
from .errors import CheckpointError, InputError
from .heads import ClassifierWeights, MaskedLMWeights
from .hub import resolve_model_dir
from .params import MASKED_LM_OPTIONAL, EncoderWeights, Linear, classifier_shapes, masked_lm_shapes
from .weights import (StoredTensor, check_finite, read_checkpoint, select_encoder_tensors, select_head_tensors,
                      to_float32)

Array = np.ndarray
PATHS = ("fast", "reference")
WORD_TABLE = "embeddings.word_embeddings.weight"


@dataclass
class BertOutput:
    """What a model call returns; the names are those of `transformers`' outputs."""

    last_hidden_state: Array  # (B, T, H), zeros at padding
    pooler_output: Optional[Array]  # (B, H), None when the checkpoint has no pooler
    hidden_states: Optional[Tuple[Array, ...]] = None  # L + 1 x (B, T, H): embeddings, then each layer
    attentions: Optional[Tuple[Array, ...]] = None  # L x (B, N, T, T)


class BertModel:
    """An encoder of any supported family (BERT, RoBERTa, XLM-R, CamemBERT, DistilBERT, ELECTRA, MPNet).

    >>> model = BertModel.from_pretrained("sentence-transformers/all-MiniLM-L6-v2")
    >>> out = model(input_ids, attention_mask=mask, output_hidden_states=True)
    >>> out.last_hidden_state.shape       # (B, T, H)
    """

    def __init__(self, config: BertConfig, tensors: Dict[str, StoredTensor], *, strict: bool = False,
                 name_or_path: Optional[str] = None, revision: Optional[str] = None):
        self.config = config
        self.tensors = tensors  # canonical name -> StoredTensor, memory-mapped from the checkpoint's files
        self.strict = strict
        self.name_or_path = name_or_path
        self.revision = revision

    @classmethod
    def from_pretrained(cls, name_or_path: str | Path, *, revision: Optional[str] = None,
                        strict: bool = False) -> "BertModel":
        """Load a local checkpoint folder or a Hugging Face Hub repo id (config.json + safetensors weights).

        The family comes from config.json's `model_type`. Loading reads only config.json and the safetensors
        headers; the weights stay on disk, memory-mapped, until the first forward pass. `strict=True` turns the
        warning about NaN or infinite weights into an error.
        """
        return load_checkpoint(name_or_path, revision, strict)[0]

    @cached_property
    def weights(self) -> EncoderWeights:
        """The weights laid out for the forward pass, built on first use (so loading costs no memory):
        fp16/bf16 tensors are widened to float32 once, Q/K/V stacked; fp32 tensors stay views of the file.
        Every tensor is checked for NaN and infinity here except the word table, whose rows are checked as they
        are looked up (`_check_rows`): scanning XLM-R's 768 MB table would read all of it from disk."""
        blas.keep_freed_memory()
        arrays = {}
        for name, t in self.tensors.items():
            arrays[name] = to_float32(t)
            if name != WORD_TABLE:
                check_finite(name, arrays[name], strict=self.strict)
        return EncoderWeights.from_tensors(arrays, self.config.num_hidden_layers)

    def _check_rows(self, ids: Array) -> None:
        """The word-table rows these ids look up hold no NaN or infinity (a warning, or with strict an error)."""
        rows = np.unique(ids)
        looked_up = self.weights.embeddings.word[rows]  # (R, E)
        if not np.isfinite(looked_up).all():
            bad = rows[~np.isfinite(looked_up).all(axis=1)]
            check_finite(f"{WORD_TABLE} (rows {bad[:5].tolist()})", looked_up, strict=self.strict)

    def __call__(self, input_ids, attention_mask=None, token_type_ids=None, *, output_hidden_states: bool = False,
                 output_attentions: bool = False, path: Optional[str] = None) -> BertOutput:
        """Run the encoder.  input_ids: (B, T) or (T,) integer token ids; attention_mask: 1 for real tokens,
        0 for padding (default: all 1); token_type_ids: segment of each token (default: all 0; ignored by
        families without token types). A 1-D input is one sequence and gives outputs with B = 1.
        `path`: "fast", "reference" or None (see the module docstring)."""
        if path not in (None, *PATHS):
            raise InputError(f"path: expected one of {', '.join(PATHS)} or None, got {path!r}")
        if path == "fast" and output_attentions:
            raise InputError("output_attentions=True needs path='reference' (the fast path never forms them)")
        ids, mask, types = self._check_inputs(input_ids, attention_mask, token_type_ids)
        self._check_rows(ids)
        w = self.weights
        if path == "reference" or output_attentions:
            hidden, attentions = model.forward(ids, mask, types, w, self.config)
            hidden = [h * mask[:, :, None].astype(np.float32) for h in hidden]  # zeros at padding, as on the fast path
            pooled = model.pooler(hidden[-1], w.pooler) if w.pooler is not None else None
        else:
            blas.warn_pinned_kernels()
            positions = model.position_ids(ids, self.config)
            last, packing, packed = fast.packed_forward(ids, mask, types, positions, w, self.config,
                                                        output_hidden_states=output_hidden_states)
            hidden = [packing.unpack(h, ids.shape) for h in packed] if packed else [packing.unpack(last, ids.shape)]
            attentions, pooled = None, fast.pooler(hidden[-1], w.pooler) if w.pooler is not None else None
        return BertOutput(
            last_hidden_state=hidden[-1],
            pooler_output=pooled,
            hidden_states=tuple(hidden) if output_hidden_states else None,
            attentions=tuple(attentions) if output_attentions else None)

    def _check_inputs(self, input_ids, attention_mask, token_type_ids) -> Tuple[Array, Array, Array]:
        c = self.config
        ids = _as_int_array(input_ids, "input_ids")
        if ids.ndim == 1:
            ids = ids[None, :]
        if ids.ndim != 2:
            raise InputError(f"input_ids: expected shape (B, T) or (T,), got {ids.shape}")
        B, T = ids.shape
        if T == 0:
            raise InputError("input_ids: no tokens (T = 0); a tokenized text has at least its special tokens")
        if T > c.max_tokens:
            usable = f", of which {c.max_tokens} hold tokens" if c.max_tokens < c.max_position_embeddings else ""
            raise InputError(f"input_ids: {T} tokens is more than this model's max_position_embeddings "
                             f"({c.max_position_embeddings}{usable}); truncate the input (the tokenizer does by default)")
        _check_range(ids, c.vocab_size, "input_ids", "the vocabulary (vocab_size)")

        def companion(value, name: str, default: int) -> Array:
            if value is None:
                return np.full((B, T), default, dtype=np.int64)
            arr = _as_int_array(value, name)
            if arr.ndim == 1 and B == 1:
                arr = arr[None, :]
            if arr.shape != (B, T):
                raise InputError(f"{name}: shape {arr.shape} does not match input_ids' {(B, T)}")
            return arr

        mask = companion(attention_mask, "attention_mask", 1)
        _check_range(mask, 2, "attention_mask", "{0, 1}")
        if not c.type_vocab_size:  # DistilBERT, MPNet: no token types (their tokenizers send none)
            return ids, mask, np.zeros((B, T), dtype=np.int64)
        types = companion(token_type_ids, "token_type_ids", 0)
        _check_range(types, c.type_vocab_size, "token_type_ids", "the token types (type_vocab_size)")
        return ids, mask, types

    def __reduce__(self):
        # Pickle where the weights come from, not the arrays: unpickling memory-maps the same files (cheap for Dask).
        if self.name_or_path is None:
            raise TypeError(f"{type(self).__name__}: cannot pickle a model built from arrays; only one loaded with "
                            "from_pretrained (it records the folder or Hub id, revision and strict, not the weights)")
        folder = Path(self.name_or_path)
        source = str(folder.resolve()) if folder.is_dir() else self.name_or_path  # same folder from any cwd
        return partial(type(self).from_pretrained, revision=self.revision, strict=self.strict), (source,)

    def __repr__(self) -> str:
        c = self.config
        return (f"{type(self).__name__}({self.name_or_path!r}, model_type={c.model_type!r}, "
                f"layers={c.num_hidden_layers}, hidden={c.hidden_size}, heads={c.num_attention_heads}, "
                f"pooler={'pooler.dense.weight' in self.tensors})")


class AutoModel:
    """transformers' name for "the encoder of whatever family config.json says": here every family is a
    BertModel (the same forward pass, with the family's named differences)."""

    @staticmethod
    def from_pretrained(name_or_path: str | Path, *, revision: Optional[str] = None, strict: bool = False) -> BertModel:
        return BertModel.from_pretrained(name_or_path, revision=revision, strict=strict)


def load_checkpoint(name_or_path: str | Path, revision: Optional[str], strict: bool,
                    config_class: type = BertConfig) -> Tuple[BertModel, Dict[str, StoredTensor], str]:
    """A checkpoint's encoder (a BertModel whose config is a `config_class`), all its stored tensors (for the
    heads to pick theirs from) and its folder's name, for messages."""
    folder = resolve_model_dir(name_or_path, revision=revision)
    config = config_class.from_json_file(folder / "config.json")
    stored = read_checkpoint(folder)
    tensors = select_encoder_tensors(stored, config, where=str(folder))
    encoder = BertModel(config, tensors, strict=strict, name_or_path=str(name_or_path), revision=revision)
    return encoder, stored, str(folder)


# ----------------------------------------------------------------------------------------------------------------
# Encoders with a task head (heads.py): transformers' AutoModelFor... classes
# ----------------------------------------------------------------------------------------------------------------

@dataclass
class MaskedLMOutput:
    """What a masked language model returns: the encoder's outputs and scores over the vocabulary."""

    logits: Array  # (B, T, V); with `positions`, (K, V): the K chosen positions only, row by row
    last_hidden_state: Array  # (B, T, H), zeros at padding
    hidden_states: Optional[Tuple[Array, ...]] = None
    attentions: Optional[Tuple[Array, ...]] = None


@dataclass
class SequenceClassifierOutput:
    """What a sequence classifier returns: the encoder's outputs and one score per label."""

    logits: Array  # (B, num_labels)
    last_hidden_state: Array  # (B, T, H), zeros at padding
    hidden_states: Optional[Tuple[Array, ...]] = None
    attentions: Optional[Tuple[Array, ...]] = None


class _WithHead:
    """An encoder (`base_model`, a BertModel) and a task head's stored tensors, made float32 on first use."""

    def __init__(self, base_model: BertModel, head_tensors: Dict[str, StoredTensor]):
        self.base_model = base_model
        self.config = base_model.config
        self.head_tensors = head_tensors  # canonical name -> StoredTensor (params.py's head names)
        self.name_or_path = base_model.name_or_path

    def _head_arrays(self) -> Dict[str, Array]:
        arrays = {}
        for name, t in self.head_tensors.items():
            arrays[name] = to_float32(t)
            check_finite(name, arrays[name], strict=self.base_model.strict)
        return arrays

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.base_model!r})"


class BertForMaskedLM(_WithHead):
    """An encoder with its masked-language-model head (any family: heads.py; the names in params.py).

    >>> model = AutoModelForMaskedLM.from_pretrained("google-bert/bert-base-uncased")
    >>> batch = tokenizer("The cat [MASK] on the mat.")
    >>> out = model(**batch, positions=batch["input_ids"] == tokenizer.mask_token_id)
    >>> out.logits.shape                  # (K, V): one row per [MASK]
    """

    @classmethod
    def from_pretrained(cls, name_or_path: str | Path, *, revision: Optional[str] = None,
                        strict: bool = False) -> "BertForMaskedLM":
        """Load a checkpoint that has the head (BertForMaskedLM, BertForPreTraining, RobertaForMaskedLM, ...,
        ElectraForMaskedLM: a generator); one without it is a CheckpointError saying so."""
        encoder, stored, where = load_checkpoint(name_or_path, revision, strict)
        head = select_head_tensors(stored, encoder.config, masked_lm_shapes(encoder.config), "masked language model",
                                   where, optional=MASKED_LM_OPTIONAL)
        if not any(n in head for n in MASKED_LM_OPTIONAL[1:]):
            raise CheckpointError(f"{where}: the masked language model head has no decoder bias (expected "
                                  f"{' or '.join(MASKED_LM_OPTIONAL[1:])}, as named in minibert/params.py)")
        return cls(encoder, head)

    @cached_property
    def head(self) -> MaskedLMWeights:
        word = self.base_model.weights.embeddings.word
        head = MaskedLMWeights.from_tensors(self._head_arrays(), word)
        if head.decoder.weight is word:  # tied: every row of the word table is now read, not only those looked up
            check_finite(WORD_TABLE, word, strict=self.base_model.strict)
        return head

    def __call__(self, input_ids, attention_mask=None, token_type_ids=None, *, positions=None,
                 output_hidden_states: bool = False, output_attentions: bool = False,
                 path: Optional[str] = None) -> MaskedLMOutput:
        """The encoder (BertModel.__call__, same arguments), then the head. `positions`, a (B, T) boolean array
        (e.g. input_ids == tokenizer.mask_token_id), limits the scores to the positions where it is True:
        logits (K, V) in row-major order, and the (K, H) x (H, V) product only for them. Without it, logits are
        (B, T, V), meaningless where attention_mask is 0."""
        out = self.base_model(input_ids, attention_mask, token_type_ids, output_hidden_states=output_hidden_states,
                              output_attentions=output_attentions, path=path)
        hidden = out.last_hidden_state  # (B, T, H)
        if positions is not None:
            hidden = hidden[_as_positions(positions, hidden.shape[:2])]  # (K, H)
        logits = heads.masked_lm_logits(hidden, self.head, heads.masked_lm_activation(self.config),
                                        self.config.layer_norm_eps)
        return MaskedLMOutput(logits, out.last_hidden_state, out.hidden_states, out.attentions)


class BertForSequenceClassification(_WithHead):
    """An encoder with its sequence-classification head (any family: heads.py). `config` is a
    ClassificationConfig: `config.id2label` names the columns of the logits.

    >>> name = "distilbert/distilbert-base-uncased-finetuned-sst-2-english"
    >>> model = AutoModelForSequenceClassification.from_pretrained(name)
    >>> probs = softmax(model(**tokenizer(["I loved it."])).logits)    # (B, num_labels)
    """

    @classmethod
    def from_pretrained(cls, name_or_path: str | Path, *, revision: Optional[str] = None,
                        strict: bool = False) -> "BertForSequenceClassification":
        """Load a checkpoint that has the head (BertForSequenceClassification, ...); one without it (or a BERT
        one without the pooler its classifier reads) is a CheckpointError saying so."""
        encoder, stored, where = load_checkpoint(name_or_path, revision, strict, ClassificationConfig)
        config = encoder.config
        head = select_head_tensors(stored, config, classifier_shapes(config, config.num_labels), "classification",
                                   where)
        if config.model_type == "bert" and "pooler.dense.weight" not in encoder.tensors:
            raise CheckpointError(f"{where}: has a classifier but no pooler (pooler.dense.*), which BERT's "
                                  "classifier reads")
        return cls(encoder, head)

    @cached_property
    def head(self) -> ClassifierWeights:
        t = self._head_arrays()
        dense = (self.base_model.weights.pooler if self.config.model_type == "bert"
                 else Linear(t["classifier.dense.weight"], t["classifier.dense.bias"]))
        return ClassifierWeights(dense, Linear(t["classifier.out_proj.weight"], t["classifier.out_proj.bias"]))

    def __call__(self, input_ids, attention_mask=None, token_type_ids=None, *, output_hidden_states: bool = False,
                 output_attentions: bool = False, path: Optional[str] = None) -> SequenceClassifierOutput:
        """The encoder (BertModel.__call__, same arguments), then the head: logits (B, num_labels)."""
        out = self.base_model(input_ids, attention_mask, token_type_ids, output_hidden_states=output_hidden_states,
                              output_attentions=output_attentions, path=path)
        logits = heads.classifier_logits(out.last_hidden_state, self.head,
                                         heads.CLASSIFIER_ACTIVATION[self.config.model_type])
        return SequenceClassifierOutput(logits, out.last_hidden_state, out.hidden_states, out.attentions)


class AutoModelForMaskedLM:
    """transformers' name: the masked-language-model head of whatever family config.json says."""

    @staticmethod
    def from_pretrained(name_or_path: str | Path, *, revision: Optional[str] = None,
                        strict: bool = False) -> BertForMaskedLM:
        return BertForMaskedLM.from_pretrained(name_or_path, revision=revision, strict=strict)


class AutoModelForSequenceClassification:
    """transformers' name: the sequence-classification head of whatever family config.json says."""

    @staticmethod
    def from_pretrained(name_or_path: str | Path, *, revision: Optional[str] = None,
                        strict: bool = False) -> BertForSequenceClassification:
        return BertForSequenceClassification.from_pretrained(name_or_path, revision=revision, strict=strict)


def _as_positions(positions, shape: Tuple[int, int]) -> Array:
    """A (B, T) boolean array of chosen positions, checked."""
    arr = np.asarray(positions)
    if arr.dtype != np.bool_ or arr.shape != shape:
        raise InputError(f"positions: expected a boolean array of shape {shape} (the input's (B, T)), got "
                         f"{arr.dtype} of shape {arr.shape}")
    return arr


def _as_int_array(value, name: str) -> Array:
    try:
        arr = np.asarray(value)
    except (ValueError, TypeError) as e:  # ragged rows, or objects NumPy cannot hold
        raise InputError(f"{name}: expected a (B, T) array of integers ({e})") from None
    # A bool mask is fine; an empty list arrives as float64 and is fine too.
    if not (np.issubdtype(arr.dtype, np.integer) or arr.dtype == np.bool_ or (arr.size == 0 and arr.dtype != object)):
        raise InputError(f"{name}: expected integers, got an array of {arr.dtype}")
    return arr.astype(np.int64, copy=False)


def _check_range(arr: Array, upper: int, name: str, what: str) -> None:
    if arr.size and (arr.min() < 0 or arr.max() >= upper):
        bad = np.argwhere((arr < 0) | (arr >= upper))[0]
        raise InputError(f"{name}: value {arr[tuple(bad)]} at position {tuple(int(i) for i in bad)} is outside "
                         f"{what}: expected 0 <= value < {upper}")
