"""The BERT encoder (Devlin et al., 2019) as a forward pass in NumPy.

Dimensions used in the shape comments:
    B  batch size              T  tokens per sequence (padded to the longest)
    H  hidden size             N  attention heads        D  head size, H / N
    I  intermediate size       V  vocabulary size        L  layers

How the data flows (read the functions in this order):
    embeddings      word + token type + position vectors, layer-normed      (B, T) ids -> (B, T, H)
    encoder_layer   x L, each one:
        self_attention  every token reads from the others: the only step that mixes tokens
        feed_forward    each token on its own: H -> I -> H through GELU
        (each sub-layer is added back to its input and layer-normed: "post-LN")
    pooler          tanh(W h[CLS] + b)                                       (B, T, H) -> (B, H)

Every array is float32. Weights are plain arrays in small dataclasses, laid out once so that each
projection is a single `x @ W` (input-major, Q, K and V side by side in one matrix).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property, partial
from pathlib import Path
from typing import Callable, Dict, Optional, Tuple

import numpy as np

from .config import BertConfig
from .errors import InputError
from .hub import resolve_model_dir
from .weights import StoredTensor, check_finite, read_checkpoint, select_bert_tensors, to_float32

Array = np.ndarray


# ----------------------------------------------------------------------------------------------------------------
# Weights: plain arrays, named after the checkpoint's tensors
# ----------------------------------------------------------------------------------------------------------------

@dataclass
class EmbeddingWeights:
    word_embeddings: Array  # (V, H)
    position_embeddings: Array  # (max_position_embeddings, H)
    token_type_embeddings: Array  # (type_vocab_size, H)
    layer_norm_weight: Array  # (H,)
    layer_norm_bias: Array  # (H,)


@dataclass
class LayerWeights:
    qkv_weight: Array  # (H, 3H)  query | key | value projections side by side, input-major
    qkv_bias: Array  # (3H,)
    attention_output_weight: Array  # (H, H)
    attention_output_bias: Array  # (H,)
    attention_layer_norm_weight: Array  # (H,)
    attention_layer_norm_bias: Array  # (H,)
    intermediate_weight: Array  # (H, I)
    intermediate_bias: Array  # (I,)
    output_weight: Array  # (I, H)
    output_bias: Array  # (H,)
    output_layer_norm_weight: Array  # (H,)
    output_layer_norm_bias: Array  # (H,)


@dataclass
class PoolerWeights:
    weight: Array  # (H, H)
    bias: Array  # (H,)


@dataclass
class BertWeights:
    embeddings: EmbeddingWeights
    layers: Tuple[LayerWeights, ...]
    pooler: Optional[PoolerWeights]

    @classmethod
    def from_tensors(cls, tensors: Dict[str, Array]) -> "BertWeights":
        """Lay out float32 checkpoint tensors (canonical names, PyTorch's (out, in) Linear layout) for `x @ W`."""
        def t(name: str) -> Array:
            return tensors[name]

        def linear(name: str) -> Array:
            # (out, in) -> (in, out). A transposed view, not a copy: BLAS reads it as it lies in the file.
            return t(name).T

        e = "embeddings."
        embeddings = EmbeddingWeights(t(e + "word_embeddings.weight"), t(e + "position_embeddings.weight"),
                                      t(e + "token_type_embeddings.weight"), t(e + "LayerNorm.weight"),
                                      t(e + "LayerNorm.bias"))
        layers = []
        i = 0
        while f"encoder.layer.{i}.intermediate.dense.weight" in tensors:
            p = f"encoder.layer.{i}."
            qkv = [f"{p}attention.self.{proj}" for proj in ("query", "key", "value")]
            layers.append(LayerWeights(
                # The one copy we make: Q, K, V stacked (3H, H) as the checkpoint lays each out, then viewed (H, 3H).
                qkv_weight=np.concatenate([t(n + ".weight") for n in qkv]).T,
                qkv_bias=np.concatenate([t(n + ".bias") for n in qkv]),
                attention_output_weight=linear(p + "attention.output.dense.weight"),
                attention_output_bias=t(p + "attention.output.dense.bias"),
                attention_layer_norm_weight=t(p + "attention.output.LayerNorm.weight"),
                attention_layer_norm_bias=t(p + "attention.output.LayerNorm.bias"),
                intermediate_weight=linear(p + "intermediate.dense.weight"),
                intermediate_bias=t(p + "intermediate.dense.bias"),
                output_weight=linear(p + "output.dense.weight"),
                output_bias=t(p + "output.dense.bias"),
                output_layer_norm_weight=t(p + "output.LayerNorm.weight"),
                output_layer_norm_bias=t(p + "output.LayerNorm.bias"),
            ))
            i += 1
        pooler = None
        if "pooler.dense.weight" in tensors:
            pooler = PoolerWeights(linear("pooler.dense.weight"), t("pooler.dense.bias"))
        return cls(embeddings, tuple(layers), pooler)


# ----------------------------------------------------------------------------------------------------------------
# The forward pass: small pure functions, arrays in, arrays out
# ----------------------------------------------------------------------------------------------------------------

def layer_norm(x: Array, weight: Array, bias: Array, eps: float) -> Array:
    """Give each token's vector zero mean and unit variance, then scale and shift it.  x: (..., H)"""
    mean = x.mean(axis=-1, keepdims=True)  # (..., 1)
    centred = x - mean
    variance = np.mean(centred * centred, axis=-1, keepdims=True)  # (..., 1)
    return centred / np.sqrt(variance + eps) * weight + bias


def erf(x: Array) -> Array:
    """The error function in float32 (Abramowitz & Stegun 1964, formula 7.1.26: |error| < 1.5e-7).

    NumPy has no erf, and BERT's "gelu" is the exact erf form, not the tanh approximation (which differs
    by up to 4.7e-4). Near 0 the float32 subtraction adds up to 5e-7, which GELU scales by |x|/2.
    """
    a = np.abs(x)
    t = 1 / (1 + np.float32(0.3275911) * a)
    poly = t * (np.float32(0.254829592) + t * (np.float32(-0.284496736) + t * (
        np.float32(1.421413741) + t * (np.float32(-1.453152027) + t * np.float32(1.061405429)))))
    return np.copysign(1 - poly * np.exp(-a * a), x)


def gelu(x: Array) -> Array:
    """GELU, exact form: x * Phi(x), Phi the standard normal CDF."""
    return 0.5 * x * (1 + erf(x * np.float32(1 / math.sqrt(2))))


def gelu_tanh(x: Array) -> Array:
    """GELU, tanh approximation ("gelu_new", "gelu_pytorch_tanh")."""
    return 0.5 * x * (1 + np.tanh(np.float32(math.sqrt(2 / math.pi)) * (x + np.float32(0.044715) * x * x * x)))


def relu(x: Array) -> Array:
    return np.maximum(x, 0)


ACTIVATIONS: Dict[str, Callable[[Array], Array]] = {
    "gelu": gelu, "gelu_new": gelu_tanh, "gelu_pytorch_tanh": gelu_tanh, "relu": relu}


def softmax(x: Array) -> Array:
    """Softmax over the last axis; subtracting the row maximum keeps exp() from overflowing."""
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def embeddings(input_ids: Array, token_type_ids: Array, w: EmbeddingWeights, eps: float) -> Array:
    """Each token starts as the sum of what it is, which segment it is in, and where it stands."""
    T = input_ids.shape[1]
    x = w.word_embeddings[input_ids] + w.token_type_embeddings[token_type_ids]  # (B, T, H)
    x += w.position_embeddings[:T]  # (T, H) broadcast over the batch
    return layer_norm(x, w.layer_norm_weight, w.layer_norm_bias, eps)  # (B, T, H)


def attention_mask_bias(attention_mask: Array) -> Array:
    """0 where a key is a real token, a very large negative number where it is padding.  (B, T) -> (B, 1, 1, T)

    Finite rather than -inf, so that a row with no real token at all gets uniform weights, not NaN.
    """
    return ((1 - attention_mask) * np.finfo(np.float32).min).astype(np.float32)[:, None, None, :]


def split_heads(x: Array, num_heads: int) -> Array:
    """(B, T, H) -> (B, N, T, D): a view, no copy."""
    B, T, H = x.shape
    return x.reshape(B, T, num_heads, H // num_heads).transpose(0, 2, 1, 3)


def merge_heads(x: Array) -> Array:
    """(B, N, T, D) -> (B, T, H)."""
    B, N, T, D = x.shape
    return x.transpose(0, 2, 1, 3).reshape(B, T, N * D)


def attention(q: Array, k: Array, v: Array, mask_bias: Array) -> Tuple[Array, Array]:
    """Scaled dot-product attention, all heads at once.

    q, k, v: (B, N, T, D); mask_bias: (B, 1, 1, T).
    Returns the context (B, N, T, D) and the attention probabilities (B, N, T, T).
    """
    D = q.shape[-1]
    # This is where tokens exchange information: row t of `probs` says how much token t reads from
    # each token of its sentence, and the context is that mix of the tokens' values.
    scores = (q @ k.swapaxes(-1, -2)) * np.float32(D ** -0.5)  # (B, N, T, T)
    scores += mask_bias  # padding keys get ~zero weight
    probs = softmax(scores)  # (B, N, T, T), each row sums to 1
    return probs @ v, probs  # (B, N, T, D)


def self_attention(x: Array, w: LayerWeights, mask_bias: Array, num_heads: int) -> Tuple[Array, Array]:
    """Multi-head self-attention sub-layer.  x: (B, T, H) -> (B, T, H), plus the probabilities (B, N, T, T)."""
    qkv = x @ w.qkv_weight + w.qkv_bias  # (B, T, 3H)
    q, k, v = (split_heads(m, num_heads) for m in np.split(qkv, 3, axis=-1))  # 3 x (B, N, T, D)
    context, probs = attention(q, k, v, mask_bias)  # (B, N, T, D)
    return merge_heads(context) @ w.attention_output_weight + w.attention_output_bias, probs  # (B, T, H)


def feed_forward(x: Array, w: LayerWeights, activation: Callable[[Array], Array]) -> Array:
    """Position-wise feed-forward sub-layer: each token alone, H -> I -> H.  x: (B, T, H) -> (B, T, H)"""
    h = activation(x @ w.intermediate_weight + w.intermediate_bias)  # (B, T, I)
    return h @ w.output_weight + w.output_bias  # (B, T, H)


def encoder_layer(x: Array, w: LayerWeights, mask_bias: Array, config: BertConfig,
                  trace: Optional[dict] = None) -> Tuple[Array, Array]:
    """One transformer layer: attention then feed-forward, each added to its input and layer-normed.

    If `trace` is a dict, it receives each sub-layer's output and the residual stream after it, (B, T, H) each.
    """
    eps = config.layer_norm_eps
    a, probs = self_attention(x, w, mask_bias, config.num_attention_heads)  # (B, T, H), (B, N, T, T)
    x = layer_norm(x + a, w.attention_layer_norm_weight, w.attention_layer_norm_bias, eps)  # (B, T, H)
    if trace is not None:
        trace.update(attention_output=a, after_attention=x)
    f = feed_forward(x, w, ACTIVATIONS[config.hidden_act])  # (B, T, H)
    x = layer_norm(x + f, w.output_layer_norm_weight, w.output_layer_norm_bias, eps)  # (B, T, H)
    if trace is not None:
        trace.update(feed_forward_output=f, after_feed_forward=x)
    return x, probs


def pooler(hidden: Array, w: PoolerWeights) -> Array:
    """The [CLS] token's final vector through one dense layer and tanh.  (B, T, H) -> (B, H)"""
    return np.tanh(hidden[:, 0] @ w.weight + w.bias)


@dataclass
class BertOutput:
    """What `BertModel.__call__` returns; the names are those of `transformers`' BERT outputs."""

    last_hidden_state: Array  # (B, T, H)
    pooler_output: Optional[Array]  # (B, H), None when the checkpoint has no pooler
    hidden_states: Optional[Tuple[Array, ...]] = None  # L + 1 x (B, T, H): embeddings, then each layer
    attentions: Optional[Tuple[Array, ...]] = None  # L x (B, N, T, T)


def bert_forward(input_ids: Array, attention_mask: Array, token_type_ids: Array, weights: BertWeights,
                 config: BertConfig, *, output_hidden_states: bool = False,
                 output_attentions: bool = False, trace: Optional[list] = None) -> BertOutput:
    """The whole encoder on checked inputs: (B, T) int64 ids, 0/1 mask and token types.

    If `trace` is a list, it receives one dict per layer with that layer's sub-layer values (see encoder_layer).
    """
    x = embeddings(input_ids, token_type_ids, weights.embeddings, config.layer_norm_eps)  # (B, T, H)
    mask_bias = attention_mask_bias(attention_mask)  # (B, 1, 1, T)
    hidden_states, attentions = [x], []
    for layer in weights.layers:
        layer_trace = None if trace is None else {}
        x, probs = encoder_layer(x, layer, mask_bias, config, layer_trace)  # (B, T, H), (B, N, T, T)
        if trace is not None:
            trace.append(layer_trace)
        hidden_states.append(x)
        attentions.append(probs)
    return BertOutput(
        last_hidden_state=x,
        pooler_output=pooler(x, weights.pooler) if weights.pooler is not None else None,
        hidden_states=tuple(hidden_states) if output_hidden_states else None,
        attentions=tuple(attentions) if output_attentions else None,
    )


# ----------------------------------------------------------------------------------------------------------------
# BertModel: a checkpoint plus input checking around bert_forward
# ----------------------------------------------------------------------------------------------------------------

class BertModel:
    """A BERT encoder loaded from a checkpoint.

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

        Loading reads only config.json and the safetensors headers; the weights stay on disk, memory-mapped,
        until the first forward pass. `strict=True` turns the warning about NaN or infinite weights into an error.
        """
        folder = resolve_model_dir(name_or_path, revision=revision)
        config = BertConfig.from_json_file(folder / "config.json")
        tensors = select_bert_tensors(read_checkpoint(folder), config, where=str(folder))
        return cls(config, tensors, strict=strict, name_or_path=str(name_or_path), revision=revision)

    @cached_property
    def weights(self) -> BertWeights:
        """The weights laid out for the forward pass, built on first use (so loading costs no memory):
        fp16/bf16 tensors are widened to float32 once, Q/K/V fused; fp32 tensors stay views of the file."""
        arrays = {}
        for name, t in self.tensors.items():
            arrays[name] = to_float32(t)
            check_finite(name, arrays[name], strict=self.strict)
        return BertWeights.from_tensors(arrays)

    def __call__(self, input_ids, attention_mask=None, token_type_ids=None, *, output_hidden_states: bool = False,
                 output_attentions: bool = False, trace: Optional[list] = None) -> BertOutput:
        """Run the encoder.  input_ids: (B, T) or (T,) integer token ids; attention_mask: 1 for real tokens,
        0 for padding (default: all 1); token_type_ids: segment of each token (default: all 0).
        A 1-D input is one sequence and gives outputs with B = 1. A `trace` list receives, per layer, the
        attention and feed-forward sub-layers' outputs and the residual stream after each (for explaining).

        Without attentions or a trace, the same computation runs on real tokens only (minibert/fast.py, tested
        equal to bert_forward): hidden states are zeros where attention_mask is 0."""
        input_ids, attention_mask, token_type_ids = self._check_inputs(input_ids, attention_mask, token_type_ids)
        if not output_attentions and trace is None:
            from .fast import fast_forward  # imported here: fast.py builds on this module
            return fast_forward(input_ids, attention_mask, token_type_ids, self.weights, self.config,
                                output_hidden_states=output_hidden_states)
        return bert_forward(input_ids, attention_mask, token_type_ids, self.weights, self.config,
                            output_hidden_states=output_hidden_states, output_attentions=output_attentions,
                            trace=trace)

    def _check_inputs(self, input_ids, attention_mask, token_type_ids) -> Tuple[Array, Array, Array]:
        c = self.config
        ids = _as_int_array(input_ids, "input_ids")
        if ids.ndim == 1:
            ids = ids[None, :]
        if ids.ndim != 2:
            raise InputError(f"input_ids: expected shape (B, T) or (T,), got {ids.shape}")
        B, T = ids.shape
        if T == 0:
            raise InputError("input_ids: no tokens (T = 0); a tokenized text has at least [CLS] and [SEP]")
        if T > c.max_position_embeddings:
            raise InputError(f"input_ids: {T} tokens is more than this model's max_position_embeddings "
                             f"({c.max_position_embeddings}); truncate the input (the tokenizer does by default)")
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
        types = companion(token_type_ids, "token_type_ids", 0)
        _check_range(types, c.type_vocab_size, "token_type_ids", "the token types (type_vocab_size)")
        return ids, mask, types

    def __reduce__(self):
        # Pickle where the weights come from, not the arrays: unpickling memory-maps the same files (cheap for Dask).
        if self.name_or_path is None:
            raise TypeError("BertModel: cannot pickle a model built from arrays; only one loaded with "
                            "from_pretrained (it records the folder or Hub id, revision and strict, not the weights)")
        folder = Path(self.name_or_path)
        source = str(folder.resolve()) if folder.is_dir() else self.name_or_path  # same folder from any cwd
        return partial(type(self).from_pretrained, revision=self.revision, strict=self.strict), (source,)

    def __repr__(self) -> str:
        c = self.config
        return (f"BertModel({self.name_or_path!r}, layers={c.num_hidden_layers}, hidden={c.hidden_size}, "
                f"heads={c.num_attention_heads}, pooler={'pooler.dense.weight' in self.tensors})")


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
