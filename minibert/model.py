"""The BERT encoder (Devlin et al., 2019) as a forward pass in NumPy: small pure functions, arrays in, arrays out.

    B  batch size        T  tokens per sequence (padded to the longest)     H  hidden size
    N  attention heads   D  head size, H / N                                I  intermediate (feed-forward) size
    V  vocabulary size   E  embedding size (H, except ELECTRA's)            L  layers

How the data flows (the functions below follow it, after the building blocks `linear` and `layer_norm`; what
every layer adds to its attention scores, MPNet's relative positions included, comes after `pooler`):
    embeddings       what each token is + where it stands (+ which segment), layer-normed     (B, T) -> (B, T, H)
    encoder_layer    x L:  self_attention  every token reads from the others (the only step that mixes tokens)
                           feed_forward    each token on its own, H -> I -> H
                     each sub-layer's output is added to its input (the "residual") and then layer-normed
    pooler           tanh(W h[CLS] + b)                                                      (B, T, H) -> (B, H)

RoBERTa, XLM-R, CamemBERT, DistilBERT, ELECTRA and MPNet are this same pass. Their differences are the named
steps `position_ids` (RoBERTa's count), `embeddings` (no token types, ELECTRA's projection) and
`relative_position_bias` (MPNet, added to the scores by `attention_bias`); their other names for the same
tensors are in params.py. Every array is
float32; weights are stored as PyTorch's Linear stores them, (out, in), so a dense layer is x @ W.T + b.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, List, Tuple

import numpy as np

from .params import EmbeddingWeights, EncoderWeights, LayerWeights, Linear, Norm

if TYPE_CHECKING:  # config.py reads ACTIVATIONS from here: the name only, for the annotations
    from .config import BertConfig

Array = np.ndarray


def linear(x: Array, p: Linear) -> Array:
    """A dense layer.  x: (..., in) -> (..., out); p.weight is (out, in), read through a transposed view."""
    return x @ p.weight.T + p.bias


def layer_norm(x: Array, p: Norm, eps: float) -> Array:
    """Give each token's vector zero mean and unit variance, then scale and shift it.  x: (..., H)"""
    mean = x.mean(axis=-1, keepdims=True)  # (..., 1)
    centred = x - mean
    variance = np.mean(centred * centred, axis=-1, keepdims=True)  # (..., 1)
    return centred / np.sqrt(variance + eps) * p.weight + p.bias


def position_ids(input_ids: Array, config: BertConfig) -> Array:
    """Each token's row of the position table.  (B, T) -> (B, T)

    BERT, DistilBERT, ELECTRA: 0, 1, 2, ... RoBERTa, XLM-R, CamemBERT and MPNet count only tokens that are not
    padding, starting after the padding id: pad_token_id + 1, + 2, ... (padding itself sits at pad_token_id),
    which is why their 514-row tables hold 512 tokens.
    """
    if not config.positions_after_padding:
        return np.broadcast_to(np.arange(input_ids.shape[1]), input_ids.shape)
    real = (input_ids != config.pad_token_id).astype(np.int64)
    return np.cumsum(real, axis=1) * real + config.pad_token_id


def embeddings(input_ids: Array, token_type_ids: Array, positions: Array, w: EmbeddingWeights, eps: float) -> Array:
    """Each token starts as the sum of what it is, which segment it is in (not in DistilBERT, MPNet) and where it
    stands, layer-normed; ELECTRA then projects its narrower embeddings up to H.  (B, T) ids -> (B, T, H)"""
    x = w.word[input_ids]  # (B, T, E)
    if w.token_type is not None:
        x = x + w.token_type[token_type_ids]
    x = layer_norm(x + w.position[positions], w.norm, eps)  # (B, T, E)
    return linear(x, w.project) if w.project is not None else x  # (B, T, H)


def softmax(x: Array) -> Array:
    """Softmax over the last axis; subtracting the row maximum keeps exp() from overflowing."""
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def attention(q: Array, k: Array, v: Array, bias: Array) -> Tuple[Array, Array]:
    """Scaled dot-product attention, all heads at once.  q, k, v: (B, N, T, D); bias: broadcasts to (B, N, T, T).

    Row t of `probs` says how much token t reads from each token of its sentence; its context is that mix of
    the tokens' values. Returns the context (B, N, T, D) and the probabilities (B, N, T, T).
    """
    D = q.shape[-1]
    scores = (q @ k.swapaxes(-1, -2)) * np.float32(D ** -0.5)  # (B, N, T, T); / sqrt(D) keeps softmax from saturating
    scores += bias  # padding keys get ~zero weight (and MPNet adds its relative positions here)
    probs = softmax(scores)  # (B, N, T, T), each row sums to 1
    return probs @ v, probs  # (B, N, T, D)


def split_heads(x: Array, num_heads: int) -> Array:
    """(B, T, H) -> (B, N, T, D): a view, no copy."""
    B, T, H = x.shape
    return x.reshape(B, T, num_heads, H // num_heads).transpose(0, 2, 1, 3)


def merge_heads(x: Array) -> Array:
    """(B, N, T, D) -> (B, T, H)."""
    B, N, T, D = x.shape
    return x.transpose(0, 2, 1, 3).reshape(B, T, N * D)


def self_attention(x: Array, w: LayerWeights, bias: Array, num_heads: int) -> Tuple[Array, Array]:
    """Multi-head self-attention sub-layer.  x: (B, T, H) -> (B, T, H), plus the probabilities (B, N, T, T).

    Q = X W_Q, K = X W_K, V = X W_V, computed as one product with the three weights stacked.
    """
    qkv = linear(x, w.qkv)  # (B, T, 3H): query | key | value
    q, k, v = (split_heads(m, num_heads) for m in np.split(qkv, 3, axis=-1))  # 3 x (B, N, T, D)
    context, probs = attention(q, k, v, bias)  # (B, N, T, D)
    return linear(merge_heads(context), w.attention_output), probs  # (B, T, H)


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


# config.json's hidden_act -> the function. The one table of activations (config.py and fast.py read it).
ACTIVATIONS = {"gelu": gelu, "gelu_new": gelu_tanh, "gelu_pytorch_tanh": gelu_tanh, "relu": relu}


def feed_forward(x: Array, w: LayerWeights, hidden_act: str) -> Array:
    """Position-wise feed-forward sub-layer: each token alone, H -> I -> H.  x: (B, T, H) -> (B, T, H)"""
    return linear(ACTIVATIONS[hidden_act](linear(x, w.intermediate)), w.output)  # (B, T, I) in between


def encoder_layer(x: Array, w: LayerWeights, bias: Array, config: BertConfig) -> Tuple[Array, Array]:
    """One transformer layer: attention then feed-forward, each added to its input and layer-normed ("post-LN").
    x: (B, T, H) -> (B, T, H), plus the attention probabilities (B, N, T, T)."""
    a, probs = self_attention(x, w, bias, config.num_attention_heads)  # (B, T, H)
    x = layer_norm(x + a, w.attention_norm, config.layer_norm_eps)
    f = feed_forward(x, w, config.hidden_act)  # (B, T, H)
    return layer_norm(x + f, w.output_norm, config.layer_norm_eps), probs


def pooler(hidden: Array, p: Linear) -> Array:
    """The first token's ([CLS]) final vector through one dense layer and tanh.  (B, T, H) -> (B, H)"""
    return np.tanh(linear(hidden[:, 0], p))


# ----------------------------------------------------------------------------------------------------------------
# What every layer adds to its attention scores: the padding mask, and MPNet's relative positions
# ----------------------------------------------------------------------------------------------------------------

def relative_position_bucket(relative: Array, num_buckets: int, max_distance: int = 128) -> Array:
    """MPNet (after T5): the bucket of each key - query distance. Half the buckets for keys before the query,
    half for keys after; within each half, distances below num_buckets / 4 get a bucket each and longer ones
    share logarithmically wider buckets up to max_distance.  relative: (T, T) ints -> (T, T) ints"""
    half = num_buckets // 2
    bucket = np.where(relative > 0, half, 0)  # keys after the query use the upper half
    n = np.abs(relative)
    exact = half // 2
    far = exact + (np.log(np.maximum(n, 1).astype(np.float32) / exact)  # max(n, 1): n < exact takes the other branch
                   / np.float32(math.log(max_distance / exact)) * (half - exact)).astype(np.int64)
    return bucket + np.where(n < exact, n, np.minimum(far, half - 1))


def relative_position_bias(T: int, table: Array) -> Array:
    """MPNet: a learnt number per head for each key - query distance, added to every layer's scores.
    table: (buckets, N) -> (N, T, T)"""
    positions = np.arange(T)
    buckets = relative_position_bucket(positions[None, :] - positions[:, None], table.shape[0])  # (T queries, T keys)
    return np.ascontiguousarray(table[buckets].transpose(2, 0, 1))


def attention_bias(attention_mask: Array, w: EncoderWeights) -> Array:
    """What every layer adds to its attention scores: a very large negative number at padding keys (finite, so a
    row with no real key gets uniform weights, not NaN), and MPNet's relative positions.
    (B, T) -> (B, 1, 1, T), or (B, N, T, T) with a relative bias"""
    bias = ((1 - attention_mask) * np.finfo(np.float32).min).astype(np.float32)[:, None, None, :]
    if w.relative_attention_bias is not None:
        bias = bias + relative_position_bias(attention_mask.shape[1], w.relative_attention_bias)
    return bias


# ----------------------------------------------------------------------------------------------------------------
# The whole encoder
# ----------------------------------------------------------------------------------------------------------------

def forward(input_ids: Array, attention_mask: Array, token_type_ids: Array, w: EncoderWeights,
            config: BertConfig) -> Tuple[List[Array], List[Array]]:
    """The encoder on checked (B, T) int64 ids, 0/1 mask and token types. Returns the L + 1 hidden states
    (B, T, H), the embeddings then each layer's output, and the L attention probabilities (B, N, T, T).
    (`pooler` then reads the last hidden state.)"""
    x = embeddings(input_ids, token_type_ids, position_ids(input_ids, config), w.embeddings, config.layer_norm_eps)
    bias = attention_bias(attention_mask, w)
    hidden_states, attentions = [x], []
    for layer in w.layers:
        x, probs = encoder_layer(x, layer, bias, config)  # (B, T, H), (B, N, T, T)
        hidden_states.append(x)
        attentions.append(probs)
    return hidden_states, attentions
