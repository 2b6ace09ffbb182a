"""Comparing and storing sentence vectors as sentence-transformers does: the four similarity functions,
quantization to int8 / uint8 / packed bits, and exhaustive semantic search.

    from minibert import quantize_embeddings, semantic_search
    hits = semantic_search(encoder.encode_query(queries), encoder.encode_document(docs), top_k=5)
    hits[0][0]                                       # {"corpus_id": 3, "score": 0.71}, the best match of query 0
    quantize_embeddings(vectors, "ubinary")          # (N, ceil(P / 8)) uint8: one bit per dimension, packed

Dimensions in the shape comments: N and M vectors, P their size.
"""

from __future__ import annotations

import heapq
from typing import Callable, Dict, List, Optional, Tuple, Union

import numpy as np

from .errors import InputError

Array = np.ndarray
SimilarityFn = Callable[[Array, Array], Array]

# sentence-transformers' encode(precision=...) values, and the dtype each gives.
PRECISIONS = {"float32": np.float32, "int8": np.int8, "uint8": np.uint8, "binary": np.int8, "ubinary": np.uint8}


def normalize(vectors: Array) -> Array:
    """Each row scaled to unit L2 norm (a zero row stays zero, as torch.nn.functional.normalize leaves it).
    (..., P) -> (..., P) float32."""
    v = vectors.astype(np.float64)
    norms = np.sqrt((v * v).sum(axis=-1, keepdims=True))
    return (v / np.maximum(norms, 1e-12)).astype(np.float32)


def unit(vectors) -> Array:
    """Each vector (the last axis) scaled to length 1, in float64; a zero vector stays zero, so its cosine with
    anything is 0. The one cosine helper of the analysis code (explain, compare.py, WiC).  (..., P) -> (..., P)"""
    v = np.asarray(vectors, dtype=np.float64)
    norms = np.linalg.norm(v, axis=-1, keepdims=True)
    return np.divide(v, norms, out=np.zeros_like(v), where=norms > 0)


# ----------------------------------------------------------------------------------------------------------------
# Similarity functions: sentence-transformers' similarity_fn_name values
# ----------------------------------------------------------------------------------------------------------------

def as_matrix(x, name: str, what: str = "similarity") -> Array:
    """Vectors as an (N, P) float64 array; a single (P,) vector becomes (1, P)."""
    try:
        arr = np.asarray(x)
    except (ValueError, TypeError) as e:  # ragged rows
        raise InputError(f"{what}: {name} is not an array of numbers ({e})") from None
    if not (np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)):
        raise InputError(f"{what}: {name} is an array of {arr.dtype}; expected numbers")
    if arr.ndim == 1:
        arr = arr[None, :]
    if arr.ndim != 2:
        raise InputError(f"{what}: {name} has shape {arr.shape}; expected (N, P) or (P,)")
    return arr.astype(np.float64)


def _pair(a, b, what: str) -> Tuple[Array, Array]:
    a2, b2 = as_matrix(a, "a", what), as_matrix(b, "b", what)
    if a2.shape[1] != b2.shape[1]:
        raise InputError(f"{what}: a has vectors of size {a2.shape[1]}, b of size {b2.shape[1]}; "
                         "expected the same size")
    return a2, b2


def _cosine(a: Array, b: Array) -> Array:
    return normalize(a).astype(np.float64) @ normalize(b).astype(np.float64).T


def _euclidean(a: Array, b: Array) -> Array:
    squared = (a * a).sum(axis=1)[:, None] - 2 * (a @ b.T) + (b * b).sum(axis=1)[None, :]
    return -np.sqrt(np.maximum(squared, 0.0))


def _manhattan(a: Array, b: Array) -> Array:
    out = np.empty((len(a), len(b)), dtype=np.result_type(a, b))
    for i, row in enumerate(a):  # one (M, P) difference at a time, not an (N, M, P) array
        out[i] = np.abs(b - row).sum(axis=1)
    return -out


# name -> (N, P), (M, P) float64 -> (N, M) scores, higher is more similar (distances are negated)
SIMILARITY_FUNCTIONS: Dict[str, SimilarityFn] = {
    "cosine": _cosine,
    "dot": lambda a, b: a @ b.T,
    "euclidean": _euclidean,
    "manhattan": _manhattan,
}
# name -> (N, P), (N, P) float64 -> (N,) scores of row i with row i
PAIRWISE_FUNCTIONS: Dict[str, SimilarityFn] = {
    "cosine": lambda a, b: (normalize(a).astype(np.float64) * normalize(b).astype(np.float64)).sum(axis=1),
    "dot": lambda a, b: (a * b).sum(axis=1),
    "euclidean": lambda a, b: -np.sqrt(((a - b) ** 2).sum(axis=1)),
    "manhattan": lambda a, b: -np.abs(a - b).sum(axis=1),
}


def check_similarity_fn_name(name: object, where: str = "similarity_fn_name") -> str:
    if name not in SIMILARITY_FUNCTIONS:
        raise InputError(f"{where}: {name!r}; expected one of {', '.join(SIMILARITY_FUNCTIONS)}")
    return name  # type: ignore[return-value]


def similarity(a, b, similarity_fn_name: str = "cosine") -> Array:
    """Every row of `a` against every row of `b`: cosine, dot, euclidean (negative distance) or manhattan
    (negative distance), as sentence-transformers' util.cos_sim, dot_score, euclidean_sim, manhattan_sim.
    (N, P) or (P,), (M, P) or (P,) -> (N, M) float32."""
    function = SIMILARITY_FUNCTIONS[check_similarity_fn_name(similarity_fn_name)]
    return function(*_pair(a, b, "similarity")).astype(np.float32)


def similarity_pairwise(a, b, similarity_fn_name: str = "cosine") -> Array:
    """Row i of `a` against row i of `b` only.  (N, P), (N, P) -> (N,) float32."""
    function = PAIRWISE_FUNCTIONS[check_similarity_fn_name(similarity_fn_name)]
    a2, b2 = _pair(a, b, "similarity_pairwise")
    if len(a2) != len(b2):
        raise InputError(f"similarity_pairwise: a has {len(a2)} vectors, b {len(b2)}; expected as many")
    return function(a2, b2).astype(np.float32)


# ----------------------------------------------------------------------------------------------------------------
# Quantization
# ----------------------------------------------------------------------------------------------------------------

def check_precision(precision: object) -> str:
    if precision not in PRECISIONS:
        raise InputError(f"precision: {precision!r}; expected one of {', '.join(PRECISIONS)}")
    return precision  # type: ignore[return-value]


def quantization_ranges(embeddings: Array, calibration_embeddings: Optional[Array] = None) -> Array:
    """Per-dimension (min, max) of the calibration vectors, or of `embeddings` themselves.  -> (2, P)."""
    source = embeddings if calibration_embeddings is None else as_matrix(
        calibration_embeddings, "calibration_embeddings", "quantize_embeddings").astype(np.float32)
    if calibration_embeddings is None and len(source) < 2:
        raise InputError("quantize_embeddings: int8/uint8 ranges cannot come from a single embedding; pass "
                         "ranges= or calibration_embeddings= from a representative set of embeddings")
    return np.vstack((source.min(axis=0), source.max(axis=0)))


def quantize_embeddings(embeddings, precision: str, ranges: Optional[Array] = None,
                        calibration_embeddings: Optional[Array] = None) -> Array:
    """Float vectors to a smaller type, exactly as sentence-transformers' quantize_embeddings.

    embeddings: (N, P) or (P,) floats. precision:
      float32: unchanged (as float32);
      int8 / uint8: each dimension cut into 255 equal steps between its min and max (`ranges`, a (2, P) array,
        else those of `calibration_embeddings`, else of `embeddings` themselves), floor of the step index clipped
        to 0..255 (minus 128 for int8) -> (N, P);
      ubinary: one bit per dimension (1 where the value is above 0), packed 8 to a byte with np.packbits
        (big-endian bit order, the last byte zero-padded) -> (N, ceil(P / 8)) uint8;
      binary: the same bytes minus 128, as int8.
    """
    precision = check_precision(precision)
    arr = np.asarray(embeddings)
    if arr.dtype.kind not in "f":
        raise InputError(f"quantize_embeddings: embeddings of {arr.dtype}; expected floats (not yet quantized)")
    if arr.ndim not in (1, 2):
        raise InputError(f"quantize_embeddings: embeddings of shape {arr.shape}; expected (N, P) or (P,)")
    if precision == "float32":
        return arr.astype(np.float32)
    if precision.endswith("binary"):
        packed = np.packbits(arr > 0, axis=-1)  # (..., ceil(P / 8)) uint8
        return packed if precision == "ubinary" else (packed.astype(np.int16) - 128).astype(np.int8)
    if len(arr) == 0 and ranges is None:
        return np.zeros(arr.shape, dtype=PRECISIONS[precision])
    if ranges is None:
        ranges = quantization_ranges(arr if arr.ndim == 2 else arr[None], calibration_embeddings)
    ranges = np.asarray(ranges).astype(np.float32)
    if ranges.shape != (2, arr.shape[-1]):
        raise InputError(f"quantize_embeddings: ranges of shape {ranges.shape}; expected (2, {arr.shape[-1]})")
    steps = (ranges[1] - ranges[0]) / 255
    steps = np.where(steps == 0, 1, steps)
    buckets = np.clip(np.floor((arr - ranges[0]) / steps), 0, 255)
    return buckets.astype(np.uint8) if precision == "uint8" else (buckets - 128).astype(np.int8)


# ----------------------------------------------------------------------------------------------------------------
# Semantic search
# ----------------------------------------------------------------------------------------------------------------

Hit = Dict[str, Union[int, float]]


def _unit_rows(x: Array) -> Array:
    """`normalize` without its float64 copy, for a corpus chunk: (m, P) float32 -> (m, P) float32."""
    return x / np.maximum(np.sqrt(np.einsum("ij,ij->i", x, x))[:, None], np.float32(1e-12))


def semantic_search(query_embeddings, corpus_embeddings, query_chunk_size: int = 100,
                    corpus_chunk_size: int = 500_000, top_k: int = 10,
                    score_function: Union[str, SimilarityFn] = "cosine") -> List[List[Hit]]:
    """The `top_k` corpus vectors most similar to each query, best first, as sentence-transformers'
    util.semantic_search: per query a list of {"corpus_id": int, "score": float}.

    query_embeddings: (N, P) or (P,); corpus_embeddings: (M, P). score_function: a similarity_fn_name
    ("cosine", "dot", "euclidean", "manhattan") or a function (n, P), (m, P) arrays -> (n, m) scores.
    Memory is bounded by the chunks: one float32 corpus chunk and query_chunk_size x corpus_chunk_size scores
    at a time (a corpus that is a memory-mapped .npy is read one chunk at a time); for cosine each corpus chunk
    is normalised once. Equal scores rank the lower corpus_id first.
    """
    for name, value in (("query_chunk_size", query_chunk_size), ("corpus_chunk_size", corpus_chunk_size),
                        ("top_k", top_k)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise InputError(f"semantic_search: {name} {value!r}; expected a positive integer")
    cosine = score_function == "cosine"
    if isinstance(score_function, str):
        check_similarity_fn_name(score_function, "semantic_search: score_function")
    score = SIMILARITY_FUNCTIONS["dot" if cosine else score_function] if isinstance(score_function, str) \
        else score_function
    queries = as_matrix(query_embeddings, "query_embeddings", "semantic_search").astype(np.float32)
    if cosine:
        queries = normalize(queries)
    corpus = corpus_embeddings if isinstance(corpus_embeddings, np.ndarray) else np.asarray(corpus_embeddings)
    if corpus.dtype.kind not in "fiu":
        raise InputError(f"semantic_search: corpus_embeddings is an array of {corpus.dtype}; expected numbers")
    if corpus.ndim != 2 or corpus.shape[1] != queries.shape[1]:
        raise InputError(f"semantic_search: corpus_embeddings of shape {corpus.shape}; expected (M, "
                         f"{queries.shape[1]}) like the queries")
    best: List[List[Tuple[float, int]]] = [[] for _ in range(len(queries))]  # min-heaps of (score, -corpus_id)
    for c0 in range(0, len(corpus), corpus_chunk_size):
        chunk = np.asarray(corpus[c0:c0 + corpus_chunk_size], dtype=np.float32)  # (m, P)
        if cosine:
            chunk = _unit_rows(chunk)
        k = min(top_k, len(chunk))
        for q0 in range(0, len(queries), query_chunk_size):
            scores = np.asarray(score(queries[q0:q0 + query_chunk_size], chunk), dtype=np.float32)  # (n, m)
            top = np.argpartition(-scores, k - 1, axis=1)[:, :k]  # (n, k), unordered
            for heap, ids, values in zip(best[q0:q0 + query_chunk_size], top, np.take_along_axis(scores, top, 1)):
                for i, s in zip(ids.tolist(), values.tolist()):
                    entry = (s, -(c0 + i))
                    if len(heap) < top_k:
                        heapq.heappush(heap, entry)
                    elif entry > heap[0]:
                        heapq.heapreplace(heap, entry)
    return [[{"corpus_id": -neg_id, "score": s} for s, neg_id in sorted(heap, reverse=True)] for heap in best]
