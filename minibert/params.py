"""The weights as plain arrays, and each family's checkpoint names read into them.

Every family stores the same tensors under its own names. `canonical_name` maps them to BERT's (the names
`expected_shapes` and `EncoderWeights.from_tensors` use), so the rest of minibert sees one layout:

    family       prefix        its own names                                       BERT's names
    BERT         bert.         LayerNorm.gamma / .beta                             LayerNorm.weight / .bias
    RoBERTa,     roberta.      (BERT's)
    XLM-R, CamemBERT
    DistilBERT   distilbert.   transformer.layer.i.attention.q_lin/k_lin/v_lin    encoder.layer.i.attention.self.query/...
                               .attention.out_lin, .sa_layer_norm                  .attention.output.dense/.LayerNorm
                               .ffn.lin1, .ffn.lin2, .output_layer_norm            .intermediate.dense, .output.dense/.LayerNorm
    ELECTRA      electra.      embeddings_project (E -> H)                         (its own: only ELECTRA has it)
    MPNet        mpnet.        encoder.layer.i.attention.attn.q/k/v/o              .attention.self.query/.../.output.dense
                               encoder.layer.i.attention.LayerNorm                 .attention.output.LayerNorm
                               encoder.relative_attention_bias (buckets, N)        (its own)

The task heads (heads.py) sit outside the family prefix and are named the same way, BERT's names for the masked
language model head and RoBERTa's for the classifier (whose first dense layer is BERT's pooler):

    family       its own names                                   canonical names
    BERT         cls.predictions.transform.dense / .LayerNorm    (the same)
                 cls.predictions.decoder (+ .bias), .bias        (the same)
                 classifier                                      classifier.out_proj  (its dense: pooler.dense)
    RoBERTa,     lm_head.dense, lm_head.layer_norm               cls.predictions.transform.dense / .LayerNorm
    XLM-R,       lm_head.decoder, lm_head.bias                   cls.predictions.decoder, cls.predictions.bias
    CamemBERT,   classifier.dense, classifier.out_proj           (the same)
    MPNet
    DistilBERT   vocab_transform, vocab_layer_norm               cls.predictions.transform.dense / .LayerNorm
                 vocab_projector                                 cls.predictions.decoder
                 pre_classifier, classifier                      classifier.dense, classifier.out_proj
    ELECTRA      generator_predictions.dense / .LayerNorm        cls.predictions.transform.dense / .LayerNorm
                 generator_lm_head                               cls.predictions.decoder
                 classifier.dense, classifier.out_proj           (the same)
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Dict, Optional, Tuple

import numpy as np

Array = np.ndarray

# Each family's prefix in task-model files (BertForMaskedLM stores "bert.embeddings..."); bare models have none.
PREFIXES = {"bert": "bert.", "roberta": "roberta.", "xlm-roberta": "roberta.", "camembert": "roberta.",
            "distilbert": "distilbert.", "electra": "electra.", "mpnet": "mpnet."}
_L = r"(?:encoder|transformer)\.layer\.(\d+)\."
RENAMES = {
    "distilbert": [(r"^transformer\.layer\.(\d+)\.attention\.(q|k|v)_lin\.", None),
                   (rf"^{_L}attention\.out_lin\.", r"encoder.layer.\1.attention.output.dense."),
                   (rf"^{_L}sa_layer_norm\.", r"encoder.layer.\1.attention.output.LayerNorm."),
                   (rf"^{_L}ffn\.lin1\.", r"encoder.layer.\1.intermediate.dense."),
                   (rf"^{_L}ffn\.lin2\.", r"encoder.layer.\1.output.dense."),
                   (rf"^{_L}output_layer_norm\.", r"encoder.layer.\1.output.LayerNorm.")],
    "mpnet": [(r"^encoder\.layer\.(\d+)\.attention\.attn\.(q|k|v)\.", None),
              (r"^encoder\.layer\.(\d+)\.attention\.attn\.o\.", r"encoder.layer.\1.attention.output.dense."),
              (r"^encoder\.layer\.(\d+)\.attention\.LayerNorm\.", r"encoder.layer.\1.attention.output.LayerNorm.")],
}
_QKV = {"q": "query", "k": "key", "v": "value"}
_LM_HEAD = [(r"^lm_head\.dense\.", "cls.predictions.transform.dense."),
            (r"^lm_head\.layer_norm\.", "cls.predictions.transform.LayerNorm."),
            (r"^lm_head\.decoder\.", "cls.predictions.decoder."),
            (r"^lm_head\.bias$", "cls.predictions.bias")]
_OUT_PROJ = (r"^classifier\.(weight|bias)$", r"classifier.out_proj.\1")  # a classifier of one layer
HEAD_RENAMES = {
    "bert": [_OUT_PROJ],
    "roberta": _LM_HEAD, "xlm-roberta": _LM_HEAD, "camembert": _LM_HEAD, "mpnet": _LM_HEAD,
    "distilbert": [(r"^vocab_transform\.", "cls.predictions.transform.dense."),
                   (r"^vocab_layer_norm\.", "cls.predictions.transform.LayerNorm."),
                   (r"^vocab_projector\.", "cls.predictions.decoder."),
                   (r"^pre_classifier\.", "classifier.dense."), _OUT_PROJ],
    "electra": [(r"^generator_predictions\.dense\.", "cls.predictions.transform.dense."),
                (r"^generator_predictions\.LayerNorm\.", "cls.predictions.transform.LayerNorm."),
                (r"^generator_lm_head\.", "cls.predictions.decoder.")],
}


def canonical_name(name: str, model_type: str = "bert") -> str:
    """A checkpoint's tensor name as BERT names it: without the family's prefix, LayerNorm gamma/beta as
    weight/bias, DistilBERT's and MPNet's own layer names mapped to BERT's, and each family's task-head names to
    the canonical ones (see the tables above)."""
    prefix = PREFIXES.get(model_type, "bert.")
    if name.startswith(prefix):
        name = name[len(prefix):]
    if name.endswith("LayerNorm.gamma"):
        name = name[: -len("gamma")] + "weight"
    elif name.endswith("LayerNorm.beta"):
        name = name[: -len("beta")] + "bias"
    for pattern, replacement in RENAMES.get(model_type, ()):
        match = re.match(pattern, name)
        if match:
            if replacement is None:  # a query/key/value projection: q -> query
                replacement = rf"encoder.layer.\1.attention.self.{_QKV[match.group(2)]}."
            return re.sub(pattern, replacement, name)
    for pattern, replacement in HEAD_RENAMES.get(model_type, ()):
        if re.match(pattern, name):
            return re.sub(pattern, replacement, name)
    return name


@dataclass
class Linear:
    weight: Array  # (out, in), as PyTorch's Linear stores it
    bias: Array  # (out,)


@dataclass
class Norm:
    weight: Array  # (H,)
    bias: Array  # (H,)


@dataclass
class EmbeddingWeights:
    word: Array  # (V, E)
    position: Array  # (max_position_embeddings, E)
    token_type: Optional[Array]  # (type_vocab_size, E); None in DistilBERT and MPNet
    norm: Norm  # (E,)
    project: Optional[Linear]  # ELECTRA: (H, E) when the embeddings are narrower than the hidden size


@dataclass
class LayerWeights:
    qkv: Linear  # (3H, H): query | key | value stacked, one product for all three
    attention_output: Linear  # (H, H)
    attention_norm: Norm
    intermediate: Linear  # (I, H)
    output: Linear  # (H, I)
    output_norm: Norm


@dataclass
class EncoderWeights:
    embeddings: EmbeddingWeights
    layers: Tuple[LayerWeights, ...]
    pooler: Optional[Linear]  # (H, H); None when the checkpoint has none
    relative_attention_bias: Optional[Array] = None  # MPNet: (buckets, N)

    @classmethod
    def from_tensors(cls, t: Dict[str, Array], num_layers: int) -> "EncoderWeights":
        """Lay out float32 tensors under canonical names (see `expected_shapes`)."""
        def linear(name: str) -> Linear:
            return Linear(t[name + ".weight"], t[name + ".bias"])

        def norm(name: str) -> Norm:
            return Norm(t[name + ".weight"], t[name + ".bias"])

        layers = []
        for i in range(num_layers):
            p = f"encoder.layer.{i}."
            qkv = [f"{p}attention.self.{proj}" for proj in ("query", "key", "value")]
            layers.append(LayerWeights(
                # The one copy we make: Q, K, V stacked (3H, H), so that one product computes all three.
                qkv=Linear(np.concatenate([t[n + ".weight"] for n in qkv]), np.concatenate([t[n + ".bias"] for n in qkv])),
                attention_output=linear(p + "attention.output.dense"), attention_norm=norm(p + "attention.output.LayerNorm"),
                intermediate=linear(p + "intermediate.dense"), output=linear(p + "output.dense"),
                output_norm=norm(p + "output.LayerNorm")))
        e = "embeddings."
        embeddings = EmbeddingWeights(
            word=t[e + "word_embeddings.weight"], position=t[e + "position_embeddings.weight"],
            token_type=t.get(e + "token_type_embeddings.weight"), norm=norm(e + "LayerNorm"),
            project=linear("embeddings_project") if "embeddings_project.weight" in t else None)
        return cls(embeddings, tuple(layers), linear("pooler.dense") if "pooler.dense.weight" in t else None,
                   t.get("encoder.relative_attention_bias.weight"))


def expected_shapes(config) -> Dict[str, tuple]:
    """Every tensor the encoder needs, by canonical name, with its shape (Linear weights are (out, in))."""
    H, I, E = config.hidden_size, config.intermediate_size, config.embedding_size
    shapes = {
        "embeddings.word_embeddings.weight": (config.vocab_size, E),
        "embeddings.position_embeddings.weight": (config.max_position_embeddings, E),
        "embeddings.LayerNorm.weight": (E,),
        "embeddings.LayerNorm.bias": (E,),
    }
    if config.type_vocab_size:
        shapes["embeddings.token_type_embeddings.weight"] = (config.type_vocab_size, E)
    if E != H:
        shapes.update({"embeddings_project.weight": (H, E), "embeddings_project.bias": (H,)})
    if config.relative_attention_num_buckets:
        shapes["encoder.relative_attention_bias.weight"] = (config.relative_attention_num_buckets,
                                                            config.num_attention_heads)
    for i in range(config.num_hidden_layers):
        p = f"encoder.layer.{i}."
        for name, shape in ((f"{p}attention.self.query", (H, H)), (f"{p}attention.self.key", (H, H)),
                            (f"{p}attention.self.value", (H, H)), (f"{p}attention.output.dense", (H, H)),
                            (f"{p}intermediate.dense", (I, H)), (f"{p}output.dense", (H, I))):
            shapes[name + ".weight"], shapes[name + ".bias"] = shape, shape[:1]
        for name in (f"{p}attention.output.LayerNorm", f"{p}output.LayerNorm"):
            shapes[name + ".weight"] = shapes[name + ".bias"] = (H,)
    return shapes


POOLER_SHAPES = ("pooler.dense.weight", "pooler.dense.bias")
# The masked-LM head's tensors a checkpoint may leave out: the decoder's weight is then the word embeddings
# ("tied"), and of its two biases (one tied to the other in transformers) one is enough.
MASKED_LM_OPTIONAL = ("cls.predictions.decoder.weight", "cls.predictions.decoder.bias", "cls.predictions.bias")


def masked_lm_shapes(config) -> Dict[str, tuple]:
    """The masked-LM head's tensors by canonical name, with their shapes: dense H -> E (E = H except in ELECTRA's
    generator), layer norm, decoder E -> V."""
    H, E, V = config.hidden_size, config.embedding_size, config.vocab_size
    p = "cls.predictions."
    return {p + "transform.dense.weight": (E, H), p + "transform.dense.bias": (E,),
            p + "transform.LayerNorm.weight": (E,), p + "transform.LayerNorm.bias": (E,),
            p + "decoder.weight": (V, E), p + "decoder.bias": (V,), p + "bias": (V,)}


def classifier_shapes(config, num_labels: int) -> Dict[str, tuple]:
    """The sequence-classification head's tensors by canonical name, with their shapes: dense H -> H (BERT's is
    its pooler, loaded with the encoder), then out_proj H -> num_labels."""
    H = config.hidden_size
    shapes = {"classifier.out_proj.weight": (num_labels, H), "classifier.out_proj.bias": (num_labels,)}
    if config.model_type != "bert":
        shapes.update({"classifier.dense.weight": (H, H), "classifier.dense.bias": (H,)})
    return shapes


def sinusoidal_positions(n_positions: int, dim: int) -> Array:
    """DistilBERT's fixed position table (Vaswani et al., 2017): sin on even features, cos on odd ones, at
    wavelengths growing geometrically with the feature index.  -> (n_positions, dim) float32"""
    position = np.arange(n_positions, dtype=np.float64)[:, None]
    rate = np.power(10000.0, 2 * (np.arange(dim) // 2) / dim)[None, :]
    angle = position / rate
    table = np.where(np.arange(dim) % 2 == 0, np.sin(angle), np.cos(angle))
    return table.astype(np.float32)

