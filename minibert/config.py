"""BertConfig: the hyper-parameters of a checkpoint, read from its config.json with the same field names."""

from __future__ import annotations

import json
import math
from dataclasses import MISSING, dataclass, fields
from pathlib import Path

from .errors import ConfigError, shown

SUPPORTED_ACTIVATIONS = ("gelu", "gelu_new", "gelu_pytorch_tanh", "relu")
# Far above any real model's sizes (and ids), and small enough that shapes and byte counts stay exact int64
# arithmetic: a 4,000-digit integer is valid JSON.
MAX_INT_FIELD = 2**31 - 1
# Real models use 1e-12 to 1e-5; from 1 on, layer norm would mostly divide by eps instead of normalising.
MAX_LAYER_NORM_EPS = 1.0


@dataclass(frozen=True)
class BertConfig:
    """Field names and defaults follow `transformers.BertConfig`; the six fields without a default are required."""

    vocab_size: int
    hidden_size: int  # H
    num_hidden_layers: int  # L
    num_attention_heads: int  # N; the head size is D = H / N
    intermediate_size: int  # width of the feed-forward layer
    max_position_embeddings: int  # the longest input the position table covers
    hidden_act: str = "gelu"
    layer_norm_eps: float = 1e-12
    type_vocab_size: int = 2
    position_embedding_type: str = "absolute"
    pad_token_id: int = 0

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            expected = {"int": int, "float": (int, float), "str": str}[f.type]
            if isinstance(value, bool) or not isinstance(value, expected):
                raise ConfigError(f"config field {f.name!r}: expected {f.type}, got {shown(value)}")
        _check_int_ranges(self)
        for name in ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads",
                     "intermediate_size", "max_position_embeddings", "type_vocab_size"):
            if getattr(self, name) < 1:
                raise ConfigError(f"config field {name!r}: expected a positive integer, got {getattr(self, name)!r}")
        if self.hidden_size % self.num_attention_heads:
            raise ConfigError(
                f"config: num_attention_heads ({self.num_attention_heads}) must divide "
                f"hidden_size ({self.hidden_size})")
        if self.hidden_act not in SUPPORTED_ACTIVATIONS:
            raise ConfigError(
                f"config field 'hidden_act': {self.hidden_act!r} is not supported; "
                f"expected one of {', '.join(SUPPORTED_ACTIVATIONS)}")
        if self.position_embedding_type != "absolute":
            raise ConfigError(
                f"config field 'position_embedding_type': {self.position_embedding_type!r} is not supported; "
                "only 'absolute' position embeddings are implemented")
        _check_layer_norm_eps(self.layer_norm_eps)

    @property
    def head_size(self) -> int:
        """D: the width of one attention head."""
        return self.hidden_size // self.num_attention_heads

    @classmethod
    def from_dict(cls, d: dict, *, source: str = "config") -> "BertConfig":
        """Build from a parsed config.json; keys that BERT's forward pass does not use are ignored."""
        if not isinstance(d, dict):
            raise ConfigError(f"{source}: expected a JSON object, got {type(d).__name__}")
        known = {f.name: f for f in fields(cls)}
        missing = [name for name, f in known.items() if f.default is MISSING and name not in d]
        if missing:
            raise ConfigError(f"{source}: missing required field(s) {', '.join(missing)}")
        try:
            return cls(**{k: v for k, v in d.items() if k in known})
        except ConfigError as e:
            raise ConfigError(f"{source}: {e}") from None

    @classmethod
    def from_json_file(cls, path: str | Path) -> "BertConfig":
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"{path}: no config.json (every BERT checkpoint folder has one)")
        try:
            d = json.loads(path.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, ValueError, RecursionError) as e:  # ValueError: also over-long integers
            raise ConfigError(f"{path}: not valid JSON ({type(e).__name__}: {str(e)[:200]})") from None
        return cls.from_dict(d, source=str(path))

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
