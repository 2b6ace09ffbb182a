"""The fast forward pass: the same arithmetic as `model.py`'s reference functions, arranged to waste nothing.

Read `model.py` first; this module computes the same thing (tested equal to it, tests/test_fast.py) with
four changes of arrangement and no change of meaning:

1. Only real tokens are computed. The real tokens of a batch are packed side by side, S = sum of the
   sequences' lengths, for every per-token step (embeddings, projections, layer norms, feed-forward); only
   attention needs the per-sequence layout, and there each sequence attends over exactly its own tokens, so no
   mask is needed. Padding costs nothing, and a sentence gives the same vector alone or in any batch, to
   within ~1e-6 (OpenBLAS rounds a column a little differently with the product's width).
2. Activations are feature-major, (H, S): one column per token. Every dense layer is then W @ x with the
   checkpoint's weight as it lies in the file, (out, in), and both operands the way the BLAS reads fastest
   (see `matmul`). model.py's token-major x @ W.T is the same sum of products.
3. Tokens go through the layers by blocks of at most about COL_BLOCK: each thread's sequences a few at a time
   through all layers, and after attention in blocks of columns. A block's activations stay in cache from one layer to
   the next, and element-wise work is done in place (`out=`) right after the product that made its input:
   GELU costs ~20 NumPy passes, over memory still warm instead of streaming the whole (I, S) activation. (A
   smaller block would stay in L2, but the BLAS re-packs each weight matrix for every block: 512 measured best.)
4. A batch is split into one group of sequences per core, each run on its own thread with the BLAS in
   single-thread mode: NumPy releases the GIL inside matrix products and ufuncs, so the cores work in parallel
   on everything, element-wise work included, with no synchronisation between layers (OpenBLAS's own threads
   wait for each other at every product, and many small products cost more than they give). A single sequence
   has nothing to split: the BLAS's own threads share each of its products.

Nothing is computed where attention_mask is 0: the model object (modeling.py) returns zeros there, from
either path. Thread control (OpenBLAS's thread count, the pool) is in blas.py.
"""

from __future__ import annotations

import math
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Dict, List, Optional, Tuple

import numpy as np

from . import blas, model
from .config import BertConfig
from .params import EncoderWeights, LayerWeights, Linear

Array = np.ndarray

COL_BLOCK = 512  # tokens per block (see 3. above; 256-768 measured within noise of each other, 128 and 1024+ slower)
MIN_GEMM_WORK = 2_000_000  # O K M of the smallest product sent to the BLAS as is (see matmul)
# Elements per tile of the activation (GELU's ~20 passes go tile by tile, so each pass finds the tile in cache).
# L2 / 8 elements is L2 / 2 bytes a tile, 2 x L2 with GELU's 3 scratch tiles: found by measurement on an AMD EPYC
# with 1 MiB of L2 per core (+3-5 % of a MiniLM forward over no tiles; L2 / 16 and L2 / 4 within 1 %, L2 / 32
# slower: each pass is a NumPy call, and its cost per call adds up).
ACT_TILE = blas.l2_cache_bytes() // 8
SCORE_BLOCK = 1 << 18  # attention scores per block (1 MiB of float32): bounds memory for long sequences


# ----------------------------------------------------------------------------------------------------------------
# Packing: (B, T) with padding <-> (S,) real tokens
# ----------------------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Packing:
    """Where the real tokens of a padded (B, T) batch are, in packed order: each sequence's tokens side by side."""

    rows: Array  # (S,) batch index of each real token
    cols: Array  # (S,) position of each real token in its padded row
    lengths: Array  # (B,) real tokens per sequence
    offsets: Array  # (B + 1,) sequence b is packed tokens offsets[b]:offsets[b + 1]

    @classmethod
    def from_mask(cls, attention_mask: Array) -> "Packing":
        real = attention_mask.astype(bool)  # (B, T)
        rows, cols = np.nonzero(real)
        lengths = real.sum(axis=1)
        return cls(rows, cols, lengths, np.concatenate([[0], np.cumsum(lengths)]))

    def unpack(self, packed: Array, shape: Tuple[int, int]) -> Array:
        """(S, H) -> (B, T, H), zeros at padding."""
        out = np.zeros(shape + packed.shape[1:], dtype=packed.dtype)
        out[self.rows, self.cols] = packed
        return out


# ----------------------------------------------------------------------------------------------------------------
# In-place element-wise steps (same formulas as model.py, written into their input)
# ----------------------------------------------------------------------------------------------------------------

def column_means(x: Array) -> Array:
    """The mean of each column of x: (H, cols) -> (cols,) float32, summed in float64 down the column.

    In float64 the sum of H float32 values is exact or nearly so, so the mean is float32's rounding of the true
    mean (model.layer_norm's pairwise float32 sums are within a few ulps of it). einsum adds row after row
    whatever the number of columns, so a token's mean does not depend on the other columns; a single column
    it would sum another way, so a lone column is given a zero column to sit beside.
    """
    if x.shape[1] == 1:
        return column_means(np.concatenate([x, np.zeros_like(x)], axis=1))[:1]
    return (np.einsum("ij->j", x, dtype=np.float64) / x.shape[0]).astype(np.float32)


def layer_norm_(x: Array, weight: Array, bias: Array, eps: float, scratch: Array) -> Array:
    """model.layer_norm of each column of x: (H, cols), in place.  scratch: (H, cols) float32."""
    x -= column_means(x)  # (cols,) broadcast down each column
    np.multiply(x, x, out=scratch)
    variance = column_means(scratch)  # (cols,)
    variance += np.float32(eps)
    x /= np.sqrt(variance, out=variance)
    x *= weight[:, None]
    x += bias[:, None]
    return x


def gelu_(x: Array, scratch: Tuple[Array, ...]) -> Array:
    """model.gelu in place, the same operations in the same order (so the same float32 roundings), on 3 scratch
    arrays shaped like x instead of a dozen temporaries."""
    z, t, poly = scratch
    np.multiply(x, np.float32(1 / math.sqrt(2)), out=z)
    np.abs(z, out=z)  # a = |x / sqrt 2|
    np.multiply(z, np.float32(0.3275911), out=t)
    t += np.float32(1)
    np.reciprocal(t, out=t)  # t = 1 / (1 + p a)
    np.multiply(t, np.float32(1.061405429), out=poly)  # Horner, innermost coefficient first
    for c in (-1.453152027, 1.421413741, -0.284496736, 0.254829592):
        poly += np.float32(c)
        poly *= t
    np.negative(z, out=t)
    z *= t
    np.exp(z, out=z)  # exp(-a a)
    z *= poly
    np.subtract(np.float32(1), z, out=z)
    np.copysign(z, x, out=z)  # erf(x / sqrt 2)
    z += np.float32(1)
    x *= np.float32(0.5)
    x *= z
    return x


def gelu_tanh_(x: Array, scratch: Tuple[Array, ...]) -> Array:
    """model.gelu_tanh in place."""
    u = scratch[0]
    np.multiply(x, np.float32(0.044715), out=u)
    u *= x
    u *= x
    u += x
    u *= np.float32(math.sqrt(2 / math.pi))
    np.tanh(u, out=u)
    u += np.float32(1)
    u *= np.float32(0.5)
    x *= u
    return x


def relu_(x: Array, scratch: Tuple[Array, ...]) -> Array:
    return np.maximum(x, np.float32(0), out=x)


# model.ACTIVATIONS' functions -> their in-place forms here: one table of names (model.py's), one of forms.
IN_PLACE = {model.gelu: gelu_, model.gelu_tanh: gelu_tanh_, model.relu: relu_}


# ----------------------------------------------------------------------------------------------------------------
# Attention over packed sequences
# ----------------------------------------------------------------------------------------------------------------

def packed_attention(qkv: Array, offsets: Array, num_heads: int, out: Array,
                     relative_bias: Optional[Dict[int, Array]] = None) -> Array:
    """model.attention for each sequence over its own tokens, computed by groups of equal length.

    qkv: (3H, S) query | key | value, one column per token; sequence b is columns offsets[b]:offsets[b + 1].
    Writes the merged-heads context (H, S) into `out`. Scores are made in blocks of at most SCORE_BLOCK numbers
    (whole sequences when they fit, else slices of query columns), so memory stays bounded for long sequences.
    relative_bias (MPNet): length T -> model.relative_position_bias transposed, (N, T keys, T queries).
    """
    lengths = np.diff(offsets)
    for T in np.unique(lengths[lengths > 0]):
        starts = offsets[:-1][lengths == T]  # (G,) first packed column of each sequence of length T
        per_block = max(1, SCORE_BLOCK // (num_heads * T * T))
        bias = None if relative_bias is None else relative_bias[int(T)]
        for i in range(0, len(starts), per_block):
            _attend_group(qkv, starts[i:i + per_block], int(T), num_heads, out, bias)
    return out


def _attend_group(qkv: Array, starts: Array, T: int, num_heads: int, out: Array, bias: Optional[Array]) -> None:
    """Attention for G sequences of the same length T starting at packed columns `starts`."""
    G, H = len(starts), out.shape[0]
    N, D = num_heads, H // num_heads
    if G == 1 or bool(np.all(np.diff(starts) == T)):  # side by side: the common case (equal lengths, or one)
        cols = slice(int(starts[0]), int(starts[0]) + G * T)
    else:
        cols = (starts[:, None] + np.arange(T)).ravel()
    # Each sequence's (D, T) head matrices copied out contiguous, so that the BLAS sees the same strides
    # whatever the company (strides can select other kernels, which round differently).
    heads = np.ascontiguousarray(qkv[:, cols].reshape(3, N, D, G, T).transpose(0, 3, 1, 2, 4))  # (3, G, N, D, T)
    q, k, v = heads
    context = np.empty((G, N, D, T), dtype=np.float32)
    query_cols = T if G * N * T * T <= SCORE_BLOCK else max(1, SCORE_BLOCK // (G * N * T))
    scale = np.float32(D ** -0.5)
    for r in range(0, T, query_cols):
        # model.attention's scores transposed, keys down the columns: the softmax then reduces whole rows at a
        # time (fast in NumPy), and the context is v @ probs^T with probs^T as it lies.
        scores_t = k.swapaxes(-1, -2) @ q[..., r:r + query_cols]  # (G, N, T keys, queries)
        scores_t *= scale
        if bias is not None:
            scores_t += bias[:, :, r:r + query_cols]
        scores_t -= scores_t.max(axis=-2, keepdims=True)  # the float32 softmax of model.softmax, in place
        np.exp(scores_t, out=scores_t)
        scores_t /= scores_t.sum(axis=-2, keepdims=True)
        np.matmul(v, scores_t, out=context[..., r:r + query_cols])  # (G, N, D, queries)
    out[:, cols] = context.transpose(1, 2, 0, 3).reshape(H, G * T)


# ----------------------------------------------------------------------------------------------------------------
# The encoder on packed tokens, feature-major: x is (H, S), one column per token
# ----------------------------------------------------------------------------------------------------------------

def matmul(w: Array, x: Array, out: Optional[Array] = None) -> Array:
    """w @ x for a Linear weight w: (O, K) as the checkpoint stores it, (out, in), and x: (K, M), one column per
    token.  This is the layout OpenBLAS multiplies fastest: x @ w.T on token rows needs a transposed operand or
    writes through a transposed output, 1.1x (512 tokens) to 2x (16 tokens) slower (bench/RESULTS.md).

    A token's column should depend as little as possible on how many tokens come with it: OpenBLAS computes small
    products with other kernels that round differently, so too few columns are padded with zeros up to
    MIN_GEMM_WORK (O K M). Above it, OpenBLAS 0.3.31 still rounds a column a little differently with the product's
    width (a short sentence alone vs in a batch: ~1e-6 apart).
    """
    (O, K), M = w.shape, x.shape[1]
    min_cols = max(2, -(-MIN_GEMM_WORK // (K * O)))  # 2 at least: with one column NumPy calls another routine
    if M >= min_cols:
        return np.matmul(w, x, out=out)
    padded = np.zeros((K, min_cols), dtype=np.float32)
    padded[:, :M] = x
    result = np.matmul(w, padded)[:, :M]
    if out is None:
        return result
    out[...] = result
    return out


def _blocks(n: int) -> List[slice]:
    """Columns 0..n in as few blocks of at most COL_BLOCK as will do, of about equal size (no tiny last block)."""
    parts = -(-n // COL_BLOCK)
    cuts = [round(n * k / parts) for k in range(parts + 1)]
    return [slice(a, b) for a, b in zip(cuts, cuts[1:])]


def _scratch(buffer: Array, rows: int, cols: int) -> Array:
    """A contiguous (rows, cols) array at the start of a flat float32 buffer (reused block after block)."""
    return buffer[:rows * cols].reshape(rows, cols)


def packed_embeddings(input_ids: Array, token_type_ids: Array, positions: Array, weights: EncoderWeights,
                      eps: float) -> Array:
    """model.embeddings for packed tokens.  (S,) ids, token types, positions -> (H, S)"""
    w = weights.embeddings
    x = w.word[input_ids]  # (S, E)
    if w.token_type is not None:
        x = x + w.token_type[token_type_ids]
    x += w.position[positions]
    x = np.ascontiguousarray(x.T)  # (E, S)
    layer_norm_(x, w.norm.weight, w.norm.bias, eps, np.empty_like(x))
    if w.project is not None:  # ELECTRA: E -> H
        x = matmul(w.project.weight, x)
        x += w.project.bias[:, None]
    return x


def packed_encoder_layer(x: Array, w: LayerWeights, offsets: Array, config: BertConfig, out: Array,
                         relative_bias: Optional[Dict[int, Array]] = None) -> Array:
    """model.encoder_layer on packed tokens.  x: (H, S) -> out: (H, S) (out must not be x)."""
    H, S = x.shape
    qkv = matmul(w.qkv.weight, x)  # (3H, S): the checkpoint's (out, in) weights as they lie
    qkv += w.qkv.bias[:, None]
    context = packed_attention(qkv, offsets, config.num_attention_heads, np.empty((H, S), dtype=np.float32),
                               relative_bias)
    _dense_columns(x, context, w, config, out)
    return out


def _dense_columns(x: Array, context: Array, w: LayerWeights, config: BertConfig, out: Array) -> None:
    """A layer after attention: output projection, residual, layer norm, feed-forward, residual, layer norm;
    block by block of COL_BLOCK tokens, each block's element-wise work done while it is in cache.  Writes out."""
    eps, act = config.layer_norm_eps, IN_PLACE[model.ACTIVATIONS[config.hidden_act]]
    H, I = x.shape[0], w.intermediate.bias.shape[0]
    blocks = _blocks(x.shape[1])
    n = max(c.stop - c.start for c in blocks)
    scratch_h, a_block = np.empty(H * n, dtype=np.float32), np.empty(H * n, dtype=np.float32)
    # a tile is whole rows: at most ACT_TILE elements, or one row (m <= n) when a row is longer than that
    inner = [np.empty(I * n, dtype=np.float32)] + [np.empty(min(I * n, max(ACT_TILE, n)), dtype=np.float32)
                                                   for _ in range(3)]
    for c in blocks:
        m = c.stop - c.start
        a = _dense(w.attention_output, context[:, c], _scratch(a_block, H, m))  # (H, m)
        a += x[:, c]
        layer_norm_(a, w.attention_norm.weight, w.attention_norm.bias, eps, _scratch(scratch_h, H, m))
        h = _dense(w.intermediate, a, _scratch(inner[0], I, m))  # (I, m)
        rows = max(1, ACT_TILE // m)  # the activation by tiles of whole rows (contiguous), each done while in cache
        for r in range(0, I, rows):
            tile = h[r:r + rows]
            act(tile, tuple(_scratch(s, tile.shape[0], m) for s in inner[1:]))
        f = _dense(w.output, h, out[:, c])  # (H, m)
        f += a
        layer_norm_(f, w.output_norm.weight, w.output_norm.bias, eps, _scratch(scratch_h, H, m))


def _dense(p: Linear, x: Array, out: Array) -> Array:
    """model.linear feature-major: W @ x + b into `out`.  x: (in, m) -> (out, m)"""
    matmul(p.weight, x, out=out)
    out += p.bias[:, None]
    return out


def relative_biases(weights: EncoderWeights, lengths: Array) -> Optional[Dict[int, Array]]:
    """MPNet's attention bias for each sequence length present, transposed as packed_attention takes it:
    length T -> (N, T keys, T queries); the same for every layer and block of a forward. None for other models."""
    if weights.relative_attention_bias is None:
        return None
    return {int(T): np.ascontiguousarray(
        model.relative_position_bias(int(T), weights.relative_attention_bias).transpose(0, 2, 1))
        for T in np.unique(lengths) if T > 0}


def packed_encoder(x: Array, offsets: Array, weights: EncoderWeights, config: BertConfig,
                   hidden_states: Optional[List[Array]] = None,
                   relative_bias: Optional[Dict[int, Array]] = None) -> Array:
    """All layers on packed tokens.  x: (H, S) embeddings -> (H, S) last hidden state.

    If `hidden_states` is given (L + 1 arrays (S, H), token-major), each layer's output is copied into it after
    the embeddings. relative_bias: `relative_biases` of these sequences' lengths (MPNet).
    """
    spare = np.empty_like(x)
    if hidden_states is not None:
        hidden_states[0][...] = x.T
    for i, layer in enumerate(weights.layers):
        x, spare = packed_encoder_layer(x, layer, offsets, config, spare, relative_bias), x
        if hidden_states is not None:
            hidden_states[i + 1][...] = x.T
    return x


def split_sequences(offsets: Array, parts: int) -> List[Tuple[int, int]]:
    """Cut sequences 0..B into at most `parts` contiguous ranges [b0, b1) of about equal token counts."""
    B, S = len(offsets) - 1, int(offsets[-1])
    cuts = [0] + [int(np.searchsorted(offsets, S * k / parts)) for k in range(1, parts)] + [B]
    cuts = sorted(set(min(max(c, 0), B) for c in cuts))
    return [(b0, b1) for b0, b1 in zip(cuts, cuts[1:]) if offsets[b1] > offsets[b0]]


# ----------------------------------------------------------------------------------------------------------------
# Entry point
# ----------------------------------------------------------------------------------------------------------------

def packed_forward(input_ids: Array, attention_mask: Array, token_type_ids: Array, position_ids: Array,
                   weights: EncoderWeights, config: BertConfig, *, output_hidden_states: bool = False,
                   threads: Optional[int] = None) -> Tuple[Array, Packing, Optional[List[Array]]]:
    """The encoder on the real tokens of checked (B, T) inputs (position_ids from model.position_ids).

    Returns the packed last hidden state (S, H) (sequence b at rows packing.offsets[b]:offsets[b + 1]), the
    Packing, and, if asked, the L + 1 packed hidden states.
    """
    packing = Packing.from_mask(attention_mask)
    S, H = int(packing.offsets[-1]), config.hidden_size
    real = (packing.rows, packing.cols)
    x = packed_embeddings(input_ids[real], token_type_ids[real], position_ids[real], weights,
                          config.layer_norm_eps)  # (H, S)
    hidden = [np.empty((S, H), dtype=np.float32) for _ in range(len(weights.layers) + 1)] \
        if output_hidden_states else None
    last = np.empty((S, H), dtype=np.float32)
    relative_bias = relative_biases(weights, packing.lengths)  # once a forward, not once a block

    def run(b0: int, b1: int) -> None:
        """Sequences b0..b1 through all layers, a few at a time: about COL_BLOCK tokens, which stay in cache."""
        offsets = packing.offsets[b0:b1 + 1] - packing.offsets[b0]
        for c0, c1 in split_sequences(offsets, -(-int(offsets[-1]) // COL_BLOCK)):
            r = slice(int(packing.offsets[b0 + c0]), int(packing.offsets[b0 + c1]))
            part_hidden = None if hidden is None else [h[r] for h in hidden]
            last[r] = packed_encoder(np.ascontiguousarray(x[:, r]), offsets[c0:c1 + 1] - offsets[c0], weights,
                                     config, part_hidden, relative_bias).T

    # Tokens are split at three levels: the batch by sequences into one part per thread (below), each part by
    # sequences into blocks of about COL_BLOCK tokens (run), and after attention by columns (_dense_columns).
    threads = blas.num_threads() if threads is None else threads
    parts = split_sequences(packing.offsets, threads) if threads > 1 and blas.controllable() else []
    if len(parts) > 1:
        blas.run_parallel([lambda b0=b0, b1=b1: run(b0, b1) for b0, b1 in parts])
    elif S:  # one part (one sequence, one thread, or a BLAS we cannot control): the BLAS's own threads share
        # each product (unless we are told one thread)
        with blas.single_threaded() if threads == 1 else nullcontext():
            run(0, len(packing.lengths))
    return last, packing, hidden


def pooler(hidden: Array, p: Linear) -> Array:
    """model.pooler through `matmul`, so that a sentence's pooled vector is the same alone or in a batch.
    One product of B columns: on one BLAS thread (waking the others costs more, and much more on a busy machine)."""
    with blas.single_threaded():
        cls = np.ascontiguousarray(hidden[:, 0].T)  # (H, B)
        return np.tanh(matmul(p.weight, cls).T + p.bias)  # (B, H)
