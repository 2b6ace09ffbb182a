"""BertConfig: the hyper-parameters of a checkpoint, read from its config.json with transformers' field names.

One config for every family: `model_type` says which, and the few fields by which the families differ
(`embedding_size`, `relative_attention_num_buckets`, `type_vocab_size` 0 for none) are plain fields too.
DistilBERT's config names the same numbers differently (`dim`, `n_layers`, ...); they are read into BERT's names.
"""

from __future__ import annotations

import math
from dataclasses import MISSING, dataclass, field, fields
from pathlib import Path
from typing import Optional

from .errors import ConfigError, shown
from .io import read_json
from .model import ACTIVATIONS

# model_type -> what differs from BERT's defaults when config.json does not say.
FAMILY_DEFAULTS = {
    "bert": {},
    "roberta": {"pad_token_id": 1},
    "xlm-roberta": {"pad_token_id": 1},
    "camembert": {"pad_token_id": 1},
    "distilbert": {"type_vocab_size": 0, "max_position_embeddings": 512},
    "electra": {"embedding_size": 128},
    "mpnet": {"pad_token_id": 1, "type_vocab_size": 0, "relative_attention_num_buckets": 32},
}
SUPPORTED_TYPES = tuple(FAMILY_DEFAULTS)
# The families whose position ids count real tokens from pad_token_id + 1 (model.position_ids).
POSITIONS_AFTER_PADDING = ("roberta", "xlm-roberta", "camembert", "mpnet")
# DistilBERT's config.json names -> BERT's. Its layer norm eps is fixed in its code, not in the config.
DISTILBERT_NAMES = {"dim": "hidden_size", "n_layers": "num_hidden_layers", "n_heads": "num_attention_heads",
                    "hidden_dim": "intermediate_size", "activation": "hidden_act"}
# Encoder-only models of other architectures that people try: named in the error, so it says what they are.
OTHER_ARCHITECTURES = ("nomic_bert", "modernbert", "new", "deberta-v2", "deberta", "jina_bert", "xlnet")
# Far above any real model's sizes (and ids), and small enough that shapes and byte counts stay exact int64
# arithmetic: a 4,000-digit integer is valid JSON.
MAX_INT_FIELD = 2**31 - 1
# Real models use 1e-12 to 1e-5; from 1 on, layer norm would mostly divide by eps instead of normalising.
MAX_LAYER_NORM_EPS = 1.0
# config.json's problem_type values (transformers'): how a classifier's scores become probabilities.
PROBLEM_TYPES = ("regression", "single_label_classification", "multi_label_classification")


@dataclass(frozen=True)
class BertConfig:
    """Field names and defaults follow `transformers.BertConfig`; the six fields without a default are required."""

    vocab_size: int
    hidden_size: int  # H
    num_hidden_layers: int  # L
    num_attention_heads: int  # N; the head size is D = H / N
    intermediate_size: int  # I, the width of the feed-forward layer
    max_position_embeddings: int  # rows of the position table
    model_type: str = "bert"
    hidden_act: str = "gelu"
    layer_norm_eps: float = 1e-12
    type_vocab_size: int = 2  # 0: the family has no token types (DistilBERT, MPNet)
    position_embedding_type: str = "absolute"
    pad_token_id: int = 0
    embedding_size: int = 0  # E; 0 (not given) means H. ELECTRA's may be smaller, then projected up to H.
    relative_attention_num_buckets: int = 0  # MPNet's relative position buckets; 0: none
    sinusoidal_pos_embds: bool = False  # DistilBERT: the position table is fixed sinusoids

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            expected = {"int": int, "float": (int, float), "str": str, "bool": bool, "dict": dict,
                        "Optional[str]": (str, type(None))}[f.type]
            if (isinstance(value, bool) and f.type != "bool") or not isinstance(value, expected):
                raise ConfigError(f"config field {f.name!r}: expected {f.type}, got {shown(value)}")
        _check_int_ranges(self)
        if self.model_type not in SUPPORTED_TYPES:
            what = "an encoder of another architecture" if self.model_type in OTHER_ARCHITECTURES else "not supported"
            raise ConfigError(f"config field 'model_type': {self.model_type!r} is {what}; minibert runs "
                              f"{', '.join(SUPPORTED_TYPES)}")
        for name in ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads",
                     "intermediate_size", "max_position_embeddings"):
            if getattr(self, name) < 1:
                raise ConfigError(f"config field {name!r}: expected a positive integer, got {getattr(self, name)!r}")
        for name in ("type_vocab_size", "embedding_size", "relative_attention_num_buckets"):  # pad_token_id: above
            if getattr(self, name) < 0:
                raise ConfigError(f"config field {name!r}: expected an integer >= 0, got {getattr(self, name)!r}")
        if self.embedding_size == 0:
            object.__setattr__(self, "embedding_size", self.hidden_size)
        if self.hidden_size % self.num_attention_heads:
            raise ConfigError(f"config: num_attention_heads ({self.num_attention_heads}) must divide "
                              f"hidden_size ({self.hidden_size})")
        if self.hidden_act not in ACTIVATIONS:
            raise ConfigError(f"config field 'hidden_act': {self.hidden_act!r} is not supported; "
                              f"expected one of {', '.join(ACTIVATIONS)}")
        if self.position_embedding_type != "absolute":
            raise ConfigError(f"config field 'position_embedding_type': {self.position_embedding_type!r} is not "
                              "supported; only 'absolute' position embeddings are implemented")
        _check_layer_norm_eps(self.layer_norm_eps)
        if self.relative_attention_num_buckets == 1:
            raise ConfigError("config field 'relative_attention_num_buckets': expected 0 (none) or at least 2")
        if self.max_tokens < 1:
            raise ConfigError(f"config: max_position_embeddings ({self.max_position_embeddings}) leaves no room for a "
                              f"token after pad_token_id ({self.pad_token_id})")

    @property
    def positions_after_padding(self) -> bool:
        """RoBERTa's position count (model.position_ids): real tokens from pad_token_id + 1."""
        return self.model_type in POSITIONS_AFTER_PADDING

    @property
    def max_tokens(self) -> int:
        """The longest input the position table covers (RoBERTa's 514 rows hold 512 tokens)."""
        return self.max_position_embeddings - (self.pad_token_id + 1 if self.positions_after_padding else 0)

    @classmethod
    def from_dict(cls, d: dict, *, source: str = "config") -> "BertConfig":
        """Build from a parsed config.json; keys that the forward pass does not use are ignored."""
        if not isinstance(d, dict):
            raise ConfigError(f"{source}: expected a JSON object, got {type(d).__name__}")
        model_type = d.get("model_type", "bert")
        if not isinstance(model_type, str):
            raise ConfigError(f"{source}: config field 'model_type': expected str, got {shown(model_type)}")
        d = {**FAMILY_DEFAULTS.get(model_type, {}), **d}
        if model_type == "distilbert":
            d = {DISTILBERT_NAMES.get(k, k): v for k, v in d.items() if k not in DISTILBERT_NAMES.values()}
            d["layer_norm_eps"] = 1e-12
        known = {f.name: f for f in fields(cls)}
        missing = [name for name, f in known.items() if f.default is MISSING and name not in d]
        if missing:
            raise ConfigError(f"{source}: missing required field(s) {', '.join(missing)}")
        if d.get("embedding_size") is None:
            d["embedding_size"] = 0
        try:
            return cls(**{k: v for k, v in d.items() if k in known})
        except ConfigError as e:
            raise ConfigError(f"{source}: {e}") from None

    @classmethod
    def from_json_file(cls, path: str | Path) -> "BertConfig":
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"{path}: no config.json (every checkpoint folder has one)")
        return cls.from_dict(read_json(path, ConfigError), source=str(path))

    def to_dict(self) -> dict:
        return {f.name: getattr(self, f.name) for f in fields(self)}


def _check_int_ranges(config: BertConfig) -> None:
    """Every integer field at most MAX_INT_FIELD (and pad_token_id, an id, not negative)."""
    for f in fields(config):
        value = getattr(config, f.name)
        if f.type == "int" and not value <= MAX_INT_FIELD:
            raise ConfigError(f"config field {f.name!r}: {shown(value)} is too large; expected at most "
                              f"{MAX_INT_FIELD}")
    if config.pad_token_id < 0:
        raise ConfigError(f"config field 'pad_token_id': expected a token id (0 or more), got {config.pad_token_id}")


def _check_layer_norm_eps(eps: float) -> None:
    """A finite number in (0, MAX_LAYER_NORM_EPS): NaN, infinity (JSON's 1e999) or a huge eps make every output
    the layer norm's bias, silently."""
    try:
        ok = math.isfinite(eps) and 0 < eps < MAX_LAYER_NORM_EPS
    except OverflowError:  # an integer too large for a float
        ok = False
    if not ok:
        raise ConfigError(f"config field 'layer_norm_eps': expected a finite number greater than 0 and less than "
                          f"{MAX_LAYER_NORM_EPS:g}, got {shown(eps)}")


@dataclass(frozen=True)
class ClassificationConfig(BertConfig):
    """A BertConfig with a classifier's labels, read as transformers reads them: `id2label` ({"0": "NEGATIVE",
    ...}) when config.json has it, and then num_labels is its length; otherwise `num_labels` (default 2) labels
    named LABEL_0, LABEL_1, ... `label2id` is the file's or the inverse of id2label."""

    num_labels: int = 2
    id2label: dict = field(default_factory=dict)  # label index -> name
    label2id: dict = field(default_factory=dict)  # name -> label index
    problem_type: Optional[str] = None  # one of PROBLEM_TYPES, or None (not said)

    @classmethod
    def from_dict(cls, d: dict, *, source: str = "config") -> "ClassificationConfig":
        if not isinstance(d, dict):
            raise ConfigError(f"{source}: expected a JSON object, got {type(d).__name__}")
        return super().from_dict({**d, **read_labels(d, source)}, source=source)


def read_labels(d: dict, source: str) -> dict:
    """num_labels, id2label, label2id and problem_type of a parsed config.json, checked (see ClassificationConfig)."""
    id2label = d.get("id2label")
    if id2label is not None:
        if not isinstance(id2label, dict) or not all(isinstance(v, str) for v in id2label.values()):
            raise ConfigError(f"{source}: config field 'id2label': expected an object of label index -> name, got "
                              f"{shown(id2label)}")
        try:
            id2label = {int(k): v for k, v in id2label.items()}
        except ValueError:
            raise ConfigError(f"{source}: config field 'id2label': keys must be label indices (\"0\", \"1\", ...), "
                              f"got {shown(list(id2label))}") from None
        if sorted(id2label) != list(range(len(id2label))) or not id2label:
            raise ConfigError(f"{source}: config field 'id2label': expected the indices 0 to n - 1, got "
                              f"{shown(sorted(id2label))}")
        num_labels = len(id2label)
    else:
        num_labels = d.get("num_labels", 2)
        if type(num_labels) is not int or not 1 <= num_labels <= MAX_INT_FIELD:
            raise ConfigError(f"{source}: config field 'num_labels': expected a positive integer, got "
                              f"{shown(num_labels)}")
        id2label = {i: f"LABEL_{i}" for i in range(num_labels)}
    label2id = d.get("label2id")
    if label2id is None:
        label2id = {name: i for i, name in id2label.items()}
    elif not isinstance(label2id, dict) or not all(type(v) is int for v in label2id.values()):
        raise ConfigError(f"{source}: config field 'label2id': expected an object of name -> label index, got "
                          f"{shown(label2id)}")
    problem_type = d.get("problem_type")
    if problem_type is not None and problem_type not in PROBLEM_TYPES:
        raise ConfigError(f"{source}: config field 'problem_type': expected one of {', '.join(PROBLEM_TYPES)} or "
                          f"null, got {shown(problem_type)}")
    return {"num_labels": num_labels, "id2label": id2label, "label2id": label2id, "problem_type": problem_type}
