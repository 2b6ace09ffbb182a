"""Task heads: what turns the encoder's last hidden state into a task's scores, as small pure functions (read
model.py first; the letters are its own, plus C for the number of labels and K for the positions asked for).

    masked_lm_logits    each chosen token's vector: dense, activation, layer norm, then the decoder, one score
                        per word of the vocabulary                                             (K, H) -> (K, V)
    classifier_logits   the first token's vector ([CLS], <s>): dense, activation, then out_proj, one score per
                        label                                                                  (B, T, H) -> (B, C)

The families' heads are these same steps; they differ in the activations (the tables below, as transformers'
heads have them) and in their tensors' names (params.py). The decoder is the word embedding table itself when
the checkpoint stores none ("tied"): (V, E) is the shape of both. BERT's classifier reads the pooler, which is
exactly the dense + tanh step, so its pooler is its classifier's dense layer.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict

import numpy as np

from .model import ACTIVATIONS, layer_norm, linear
from .params import Linear, Norm

Array = np.ndarray

# model_type -> the masked-LM head's activation; None: the config's hidden_act (BERT's and DistilBERT's heads
# use it, RoBERTa's, MPNet's and ELECTRA's generator's always the exact GELU).
MASKED_LM_ACTIVATION = {"bert": None, "distilbert": None, "roberta": "gelu", "xlm-roberta": "gelu",
                        "camembert": "gelu", "mpnet": "gelu", "electra": "gelu"}
# model_type -> the activation between the classifier's dense layer and out_proj.
CLASSIFIER_ACTIVATION = {"bert": "tanh", "roberta": "tanh", "xlm-roberta": "tanh", "camembert": "tanh",
                         "mpnet": "tanh", "distilbert": "relu", "electra": "gelu"}
HEAD_ACTIVATIONS = {**ACTIVATIONS, "tanh": np.tanh}


@dataclass
class MaskedLMWeights:
    transform: Linear  # (E, H); E = H except in ELECTRA's generator
    norm: Norm  # (E,)
    decoder: Linear  # (V, E): the word embeddings when tied

    @classmethod
    def from_tensors(cls, t: Dict[str, Array], word_embeddings: Array) -> "MaskedLMWeights":
        """Lay out float32 tensors under canonical names (params.masked_lm_shapes). The decoder's weight is
        the word embedding table (V, E) when none is stored; its bias is `decoder.bias`, else the head's own
        `bias` (transformers ties the two)."""
        p = "cls.predictions."
        bias = t.get(p + "decoder.bias", t.get(p + "bias"))
        return cls(transform=Linear(t[p + "transform.dense.weight"], t[p + "transform.dense.bias"]),
                   norm=Norm(t[p + "transform.LayerNorm.weight"], t[p + "transform.LayerNorm.bias"]),
                   decoder=Linear(t.get(p + "decoder.weight", word_embeddings), bias))


@dataclass
class ClassifierWeights:
    dense: Linear  # (H, H); BERT's pooler
    out_proj: Linear  # (C, H)


def masked_lm_logits(hidden: Array, w: MaskedLMWeights, activation: str, eps: float) -> Array:
    """Scores over the vocabulary for each given token vector.  (..., H) -> (..., V)

    Pass only the positions you want (the masks): the decoder is the one large product, K x E x V."""
    x = HEAD_ACTIVATIONS[activation](linear(hidden, w.transform))  # (..., E)
    return linear(layer_norm(x, w.norm, eps), w.decoder)  # (..., V)


def top_k(scores: Array, k: int) -> Array:
    """The ids of each row's k highest scores, highest first, the lower id first on ties: (R, V) -> (R, k).

    Equal to a stable argsort of -scores cut at k, without sorting the whole vocabulary: a partition finds each
    row's k-th highest value, and only the entries at or above it (ties included) are sorted."""
    R, V = scores.shape
    k = min(k, V)
    kth = np.partition(scores, V - k, axis=-1)[:, V - k]  # (R,) each row's k-th highest
    out = np.empty((R, k), dtype=np.intp)
    for r in range(R):
        candidates = np.flatnonzero(scores[r] >= kth[r])  # ascending ids: the stable sort keeps lower ids first
        out[r] = candidates[np.argsort(-scores[r, candidates], kind="stable")[:k]]
    return out


def classifier_logits(hidden: Array, w: ClassifierWeights, activation: str) -> Array:
    """One score per label for each sequence, read from its first token.  (B, T, H) -> (B, C)"""
    x = HEAD_ACTIVATIONS[activation](linear(hidden[:, 0], w.dense))  # (B, H)
    return linear(x, w.out_proj)  # (B, C)


def masked_lm_activation(config) -> str:
    """The masked-LM head's activation for this config (MASKED_LM_ACTIVATION)."""
    return MASKED_LM_ACTIVATION[config.model_type] or config.hidden_act
