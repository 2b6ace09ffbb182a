"""Watch attention build context: for one word of a sentence, what each layer did to its vector.

    python compare.py explain "The cat chased the mouse." --word cat
    python compare.py explain "The cat sat on the mat." "The cat chased the mouse." --word cat --json
    minibert explain "We sat on the river bank." --word bank --plot bank.png
    minibert explain "The cat [MASK] on the mat." --model google-bert/bert-base-uncased    (+ the guesses per layer)

Every number comes from the model's own reference functions (model.py), composed here sub-layer by sub-layer
(`sublayer_steps`) so that the forward pass itself carries no tracing code.

What is measured, per layer l = 1..L, for the word's vector w (the mean of its word pieces' rows, as
`minibert.word_vectors` takes it). Each sub-layer's output is added to its input (the residual: a correction
written into the token's vector, not a replacement) and the sum is then layer-normed ("post-LN"), so the word's
vector (its row of the residual stream) takes two steps per layer:

    x_{l-1}                                   the word's vector entering the layer (layer 0: the input embedding)
    x_att = LN1(x_{l-1} + Attention(x_{l-1}))  after the attention sub-layer   
    x_l   = LN2(x_att + FeedForward(x_att))    after the feed-forward sub-layer 

    attention        the word's row of the attention probabilities (each row sums to 1), averaged over heads;
                     the top heads are those that put the most weight on one context token (a token that is
                     neither a special token nor a piece of the word: heads that park their weight on [CLS],
                     [SEP] or the word itself read little from the sentence)
    cosine_to_previous  cos(x_{l-1}, x_l)          norm  |x_l|          moved  |x_l - x_{l-1}|
    attention_step   |x_att - x_{l-1}|: how far the attention sub-layer (with its layer norm) moved the vector
    feed_forward_step  |x_l - x_att|: how far the feed-forward sub-layer (with its layer norm) moved it
    attention_share  attention_step / (attention_step + feed_forward_step): attention's part of the path the
                     vector travelled in the layer (the two steps add up to at least `moved`, never less)
    attention_along, feed_forward_along  each step projected on the direction of the whole move,
                     (x_att - x_{l-1}) . u and (x_l - x_att) . u with u = (x_l - x_{l-1}) / moved: these two DO
                     add up to `moved` (the steps' sideways parts cancel); one can be negative when it undoes
                     part of the other
    attention_output_norm, feed_forward_output_norm  |Attention(x_{l-1})|, |FeedForward(x_att)|: what each
                     sub-layer wrote before it was added to the stream and normalised

With a model that has a masked-LM head (heads.py) and a word that is the mask token ([MASK], <mask>; `--word W`
masks W), `layer_predictions` applies the head to the mask's vector after each layer: what the model would guess
at that depth. The last layer's guesses are fill-mask's.

A step includes its layer norm because in a post-LN model there is no residual stream without it. With several
sentences, `across` gives the cosine and distance between the word's vector in the first sentence and in each
other one, layer by layer: at layer 0 only the token and its position count, so the same word at the same
position has distance 0, and everything after that is context.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional, Sequence, Tuple

import numpy as np

from .contextual import WordLocation, find_word, locate, word_spans
from .errors import InputError, MinibertError, MissingHeadError
from .heads import masked_lm_activation, masked_lm_logits, top_k as highest
from .hub import DEFAULT_MODEL
from . import model as M
from .io import atomic_output, check_output
from .modeling import BertForMaskedLM, BertModel
from .params import LayerWeights
from .retrieval import unit
from .tokenizer import Tokenizer

Array = np.ndarray
Predictions = Sequence[List[List[dict]]]  # per sentence, per layer 1..L: layer_predictions' candidates

DEFINITIONS = {
    "vector": "the mean of the word's word-piece rows of the residual stream",
    "attention": "the word's row of the attention probabilities (mean over its pieces), averaged over heads",
    "top_heads": "heads ranked by the largest weight they put on one context token "
                 "(not a special token, not a piece of the word)",
    "cosine_to_previous": "cos(x_{l-1}, x_l)",
    "norm": "|x_l|",
    "moved": "|x_l - x_{l-1}|",
    "attention_step": "|x_att - x_{l-1}|, x_att = LN1(x_{l-1} + Attention(x_{l-1}))",
    "feed_forward_step": "|x_l - x_att|, x_l = LN2(x_att + FeedForward(x_att))",
    "attention_share": "attention_step / (attention_step + feed_forward_step)",
    "attention_along": "(x_att - x_{l-1}) . u, u = (x_l - x_{l-1}) / moved; attention_along + feed_forward_along "
                       "= moved",
    "feed_forward_along": "(x_l - x_att) . u: the feed-forward step's part of the move along its direction",
    "contribution": "per token s, |sum over heads of weight(word, s) x value_s W_O| as a share of the sum over "
                    "tokens (Kobayashi et al. 2020): what the attention output is made of",
    "attention_output_norm": "|Attention(x_{l-1})| before the residual add and layer norm",
    "feed_forward_output_norm": "|FeedForward(x_att)| before the residual add and layer norm",
    "across": "cosine and distance between the word's vector in sentence 1 and in sentence k, per layer",
    "predictions": "the masked-LM head applied to the mask's vector after each layer: its top tokens, softmax "
                   "probabilities over the vocabulary",
}
# A model with a masked-LM head, named when the one given has none.
MASKED_LM_EXAMPLE = "google-bert/bert-base-uncased"


@dataclass(frozen=True)
class LayerView:
    """What one encoder layer did to the word.  T tokens, N heads."""

    layer: int  # 1..L
    attention: Array  # (T,) the word's attention row, mean over heads; sums to 1
    heads: Array  # (N, T) the same row for each head
    top_heads: Tuple[int, ...]  # head indices, most focused on a context token first
    cosine_to_previous: float
    norm: float
    moved: float
    attention_step: float
    feed_forward_step: float
    attention_output_norm: float
    feed_forward_output_norm: float
    attention_along: float  # the attention step projected on the move's direction
    feed_forward_along: float  # the feed-forward step projected on it: the two add up to `moved`
    contribution: Array  # (T,) each token's share of |weight x value W_O| (see `contributions`); sums to 1

    @property
    def attention_share(self) -> float:
        total = self.attention_step + self.feed_forward_step
        return self.attention_step / total if total > 0 else 0.0


@dataclass(frozen=True)
class Explanation:
    """One word in one sentence, through every layer."""

    word: WordLocation
    tokens: Tuple[str, ...]  # the sentence's word pieces, [CLS] and [SEP] included
    context: Tuple[bool, ...]  # per token: neither a special token nor a piece of the word
    vectors: Array  # (L + 1, H) the word's vector after the embeddings (0) and after each layer
    after_attention: Array  # (L, H) the word's vector after each layer's attention sub-layer (x_att)
    attentions: Tuple[Array, ...]  # L x (T, T) every token's attention row, mean over heads (for plots)
    layers: Tuple[LayerView, ...]

    @property
    def sentence(self) -> str:
        return self.word.sentence


def cosine(a: Array, b: Array) -> float:
    """Cosine similarity of two vectors (0 when either is zero).  a, b: (H,)"""
    return float(unit(a) @ unit(b))


def word_row(x: Array, tokens: Sequence[int]) -> Array:
    """The mean of the word's rows.  x: (T, ...) -> (...)"""
    return x[list(tokens)].mean(axis=0)


def top_heads(heads: Array, context: Sequence[bool], k: int) -> Tuple[int, ...]:
    """The k heads whose largest weight on a single context token is highest.  heads: (N, T)"""
    mask = np.asarray(context, dtype=bool)
    focus = heads[:, mask].max(axis=1) if mask.any() else np.zeros(len(heads))  # (N,)
    return tuple(int(h) for h in np.argsort(-focus, kind="stable")[:k])


def along(step: Array, move: Array) -> float:
    """The length of `step` in the direction of `move` (0 when `move` is zero).  step, move: (H,)"""
    length = float(np.linalg.norm(move))
    return float(step @ move) / length if length > 0 else 0.0


def explain(model: BertModel, tokenizer: Tokenizer, sentence: str, word: str, *, occurrence: int = 0,
            heads: int = 3) -> Explanation:
    """Run `sentence` through the model and follow the `occurrence`-th (0-based) `word` through every layer.
    `heads`: how many top heads to rank per layer."""
    batch = tokenizer(sentence)
    where = locate(tokenizer, [sentence], [(word, occurrence)], batch=batch)[0]
    steps = sublayer_steps(model, batch)
    pieces = list(where.tokens)
    vectors = np.stack([word_row(steps[0].before, pieces)] + [word_row(s.after, pieces) for s in steps])  # (L + 1, H)
    special = [s is None for s in batch.sequence_ids(0)]
    context = tuple(not special[t] and t not in where.tokens for t in range(len(special)))
    mids = np.stack([word_row(s.after_attention, pieces) for s in steps])  # (L, H)
    layers = []
    for i, step in enumerate(steps):
        rows = step.probs[:, pieces].mean(axis=1)  # (N, T): the word's row in each head
        before, after, mid = vectors[i], vectors[i + 1], mids[i]
        layers.append(LayerView(
            layer=i + 1, attention=rows.mean(axis=0), heads=rows, top_heads=top_heads(rows, context, heads),
            cosine_to_previous=cosine(before, after), norm=float(np.linalg.norm(after)),
            moved=float(np.linalg.norm(after - before)),
            attention_step=float(np.linalg.norm(mid - before)), feed_forward_step=float(np.linalg.norm(after - mid)),
            attention_output_norm=float(np.linalg.norm(word_row(step.attention_output, pieces))),
            feed_forward_output_norm=float(np.linalg.norm(word_row(step.feed_forward_output, pieces))),
            attention_along=along(mid - before, after - before), feed_forward_along=along(after - mid, after - before),
            contribution=shares(contributions(step, model.weights.layers[i], pieces, model.config.num_attention_heads)),
        ))
    return Explanation(where, tuple(batch.tokens(0)), context, vectors, mids, tuple(s.probs.mean(axis=0) for s in steps),
                       tuple(layers))


@dataclass(frozen=True)
class SublayerStep:
    """One encoder layer on one sentence, sub-layer by sub-layer.  T tokens, H hidden size, N heads."""

    before: Array  # (T, H) x_{l-1}
    attention_output: Array  # (T, H) Attention(x_{l-1})
    probs: Array  # (N, T, T) its attention probabilities
    after_attention: Array  # (T, H) x_att = LN1(x_{l-1} + Attention(x_{l-1}))
    feed_forward_output: Array  # (T, H) FeedForward(x_att)
    after: Array  # (T, H) x_l = LN2(x_att + FeedForward(x_att))


def sublayer_steps(model: BertModel, batch) -> List[SublayerStep]:
    """The reference functions of model.py composed by hand for one tokenized sentence, keeping what
    `model.encoder_layer` computes in passing (tests/test_explain.py checks the result equals the model's)."""
    c, w = model.config, model.weights
    ids = np.asarray(batch["input_ids"])[:1]
    x = M.embeddings(ids, np.asarray(batch["token_type_ids"])[:1] if c.type_vocab_size else np.zeros_like(ids),
                     M.position_ids(ids, c), w.embeddings, c.layer_norm_eps)  # (1, T, H)
    bias = M.attention_bias(np.ones_like(ids), w)
    steps = []
    for layer in w.layers:
        a, probs = M.self_attention(x, layer, bias, c.num_attention_heads)
        mid = M.layer_norm(x + a, layer.attention_norm, c.layer_norm_eps)
        f = M.feed_forward(mid, layer, c.hidden_act)
        after = M.layer_norm(mid + f, layer.output_norm, c.layer_norm_eps)
        steps.append(SublayerStep(x[0], a[0], probs[0], mid[0], f[0], after[0]))
        x = after
    return steps


def contributions(step: SublayerStep, w: LayerWeights, tokens: Sequence[int], num_heads: int) -> Array:
    """What each token s adds to the word's attention output: the sum over heads h of weight_h(t, s) times s's
    value vector in head h projected by that head's slice of W_O (Kobayashi et al. 2020, "Attention is Not Only a
    Weight"), averaged over the word's pieces t. The rows plus W_O's bias add up to Attention(x)[t].  -> (T, H)"""
    values = M.split_heads(np.split(M.linear(step.before[None], w.qkv), 3, axis=-1)[2], num_heads)[0]  # (N, T, D)
    N, T, D = values.shape
    per_head = np.einsum("ntd,hnd->nth", values, w.attention_output.weight.reshape(-1, N, D))  # (N, T, H)
    return np.einsum("ns,nsh->sh", step.probs[:, list(tokens)].mean(axis=1), per_head)


def shares(rows: Array) -> Array:
    """Each row's norm as a share of all the rows' norms.  (T, H) -> (T,)"""
    norms = np.linalg.norm(rows, axis=1)
    return norms / norms.sum() if norms.sum() > 0 else norms


def layer_predictions(model: BertForMaskedLM, tokenizer: Tokenizer, vectors: Array, top_k: int = 5) -> List[List[dict]]:
    """The masked-LM head applied to a mask's vector after each layer: per layer, the `top_k` likeliest tokens as
    fill-mask gives them ({"score", "token", "token_str"}, best first).  vectors: (L, H), e.g. an Explanation's
    `vectors[1:]` when its word is the mask token."""
    logits = masked_lm_logits(vectors, model.head, masked_lm_activation(model.config), model.config.layer_norm_eps)
    probs = M.softmax(logits)  # (L, V)
    best = highest(probs, top_k)  # (L, k): as fill_mask orders them
    return [[{"score": float(p[t]), "token": int(t), "token_str": tokenizer.decode([int(t)], skip_special_tokens=False)}
             for t in row] for p, row in zip(probs, best)]


def mask_word(sentence: str, word: str, occurrence: int, mask_token: str) -> Tuple[str, int]:
    """The sentence with the `occurrence`-th whole-word `word` replaced by the mask token, and which occurrence
    of the mask token (0-based) stands in its place."""
    start, end = find_word(sentence, word, occurrence)
    before = sentence[:start]
    return before + mask_token + sentence[end:], len(word_spans(before, mask_token))


def across(explanations: Sequence[Explanation]) -> List[dict]:
    """For each sentence after the first: per layer 0..L, cosine and distance to the first sentence's vector."""
    first = explanations[0].vectors
    return [{"sentence": k + 1,
             "cosine": [cosine(a, b) for a, b in zip(first, e.vectors)],
             "distance": [float(np.linalg.norm(a - b)) for a, b in zip(first, e.vectors)]}
            for k, e in enumerate(explanations) if k > 0]


# ----------------------------------------------------------------------------------------------------------------
# Output: JSON, text, plot
# ----------------------------------------------------------------------------------------------------------------

def to_json(model: BertModel, explanations: Sequence[Explanation], predictions: Optional[Predictions] = None,
            masked_word: Optional[str] = None, masked_lm_head: bool = False) -> dict:
    """Everything `explain` measured, as plain JSON types (full float precision). `predictions`: per sentence,
    layer_predictions' lists (layers 1..L), shown as each layer's "predictions"; `masked_word`: the word the mask
    token replaced; `masked_lm_head`: whether the model has the head."""
    c = model.config
    sentences = []
    for e in explanations:
        layers = [{"layer": 0, "norm": float(np.linalg.norm(e.vectors[0]))}]
        for v in e.layers:
            layers.append({
                "layer": v.layer, "cosine_to_previous": v.cosine_to_previous, "norm": v.norm, "moved": v.moved,
                "attention_step": v.attention_step, "feed_forward_step": v.feed_forward_step,
                "attention_share": v.attention_share, "attention_along": v.attention_along,
                "feed_forward_along": v.feed_forward_along, "contribution": v.contribution.tolist(),
                "attention_output_norm": v.attention_output_norm,
                "feed_forward_output_norm": v.feed_forward_output_norm,
                "attention": v.attention.tolist(), "heads": v.heads.tolist(), "top_heads": list(v.top_heads)})
            if predictions is not None:
                layers[-1]["predictions"] = predictions[len(sentences)][v.layer - 1]
        sentences.append({
            "sentence": e.sentence, "tokens": list(e.tokens),
            "word": {"text": e.word.text, "span": list(e.word.span), "tokens": list(e.word.tokens),
                     "pieces": list(e.word.pieces)},
            "layers": layers})
    return {"model": model.name_or_path, "num_layers": c.num_hidden_layers, "num_heads": c.num_attention_heads,
            "hidden_size": c.hidden_size, "masked_lm_head": masked_lm_head, "masked_word": masked_word,
            "definitions": DEFINITIONS, "sentences": sentences,
            "across": across(explanations),
            "numbering": {"across.sentence": "1-based, as the text's S1, S2, ...: 1 is sentences[0]",
                          "tokens, word.tokens": "0-based token positions, [CLS] at 0"}}


def token_labels(tokens: Sequence[str]) -> List[str]:
    """Tokens as shown: a token that occurs more than once gets its position ("the@4")."""
    return [f"{t}@{i}" if tokens.count(t) > 1 else t for i, t in enumerate(tokens)]


def _weights(row: Array, labels: Sequence[str], top: int) -> str:
    order = np.argsort(-row, kind="stable")[:top]
    return "  ".join(f"{labels[t]} {row[t]:.3f}" for t in order)


def report(model: BertModel, explanations: Sequence[Explanation], *, top: int = 5,
           predictions: Optional[Predictions] = None, masked_word: Optional[str] = None) -> str:
    """The readable text report; every number in it is in `to_json`'s output, rounded."""
    c = model.config
    lines = [f"model: {model.name_or_path} ({c.num_hidden_layers} layers x {c.num_attention_heads} heads, "
             f"hidden size {c.hidden_size})"]
    if masked_word is not None:
        lines.append(f"{masked_word!r} is masked in every sentence: the model guesses it from its context alone")
    for n, e in enumerate(explanations, 1):
        labels = token_labels(e.tokens)
        shown = " ".join(f"[{t}]" if i in e.word.tokens else t for i, t in enumerate(labels))
        lines += ["", f"sentence {n} (S{n}): {abbreviated(e.sentence)}, word {e.word.text!r} = token(s) "
                      f"{', '.join(map(str, e.word.tokens))} {' '.join(e.word.pieces)}",
                  f"  tokens: {shown}",
                  f"  layer 0  norm {np.linalg.norm(e.vectors[0]):.3f}  (input embedding: token + position + "
                  f"segment, layer-normed; no context yet)"]
        for v in e.layers:
            lines += [f"  layer {v.layer}  cos to prev {v.cosine_to_previous:.4f}  norm {v.norm:.3f}  "
                      f"moved {v.moved:.3f} = attention {v.attention_along:.3f} + FFN {v.feed_forward_along:.3f}",
                      f"    step lengths  attention {v.attention_step:.3f}, FFN {v.feed_forward_step:.3f} "
                      f"(sum {v.attention_step + v.feed_forward_step:.3f} > moved: their sideways parts cancel)",
                      f"    all heads       {_weights(v.attention, labels, top)}",
                      f"    weight x value  {_weights(v.contribution, labels, top)}"]
            lines += [f"    head {h:<10} {_weights(v.heads[h], labels, top)}" for h in v.top_heads]
            if predictions is not None:
                guesses = predictions[n - 1][v.layer - 1]
                lines.append("    guesses here    " + "  ".join(f"{g['token_str']} {g['score']:.3f}" for g in guesses))
    if len(explanations) > 1:
        rows = across(explanations)
        lines += ["", f"{explanations[0].word.text!r} across sentences: its vector in Sk vs in S1 "
                      f"(layer 0 = input embedding)",
                  "  layer" + "".join(f"  {'cos S' + str(r['sentence']):>8} {'dist S' + str(r['sentence']):>8}" for r in rows)]
        for i in range(c.num_hidden_layers + 1):
            lines.append(f"  {i:>5}" + "".join(f"  {r['cosine'][i]:>8.4f} {r['distance'][i]:>8.4f}" for r in rows))
    lines += ["", "moved = attention + FFN: each sub-layer's step (with its layer norm) measured along the "
                  "direction of",
              "  the whole move, so the two add up; step lengths: how far each went in any direction",
              "weight x value: each token's share of what the word's attention output is made of, |weight x value W_O|",
              "  (Kobayashi et al. 2020); [CLS] and [SEP] often take much weight and give little (an attention sink)",
              "heads: ranked by their largest weight on one token that is neither special nor the word itself"]
    if predictions is not None:
        lines += ["guesses here: the masked-LM head applied to the mask's vector after that layer (what the model "
                  "would guess", "  at that depth); the last layer's are fill-mask's"]
    return "\n".join(lines)


def require_matplotlib() -> None:
    """Fail early, before any model work, when --plot cannot be honoured."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise MinibertError("--plot needs matplotlib, which is not installed: pip install matplotlib "
                            "(or install minibert with its [plot] extra)") from None


def word_attention(e: Explanation, probs: Array) -> Tuple[List[int], Array, Array]:
    """Attention among the sentence's words: [CLS] and [SEP] dropped and each row rescaled to sum to 1, so that
    word-to-word patterns show. probs: (T, T) -> (the kept token positions, (W, W) rescaled rows, (W,) the weight
    each row had put on the dropped special tokens)"""
    special = [not c and t not in e.word.tokens for t, c in enumerate(e.context)]
    kept = [t for t in range(len(special)) if not special[t]]
    rows = probs[np.ix_(kept, kept)]  # (W, W)
    total = rows.sum(axis=1, keepdims=True)
    return kept, np.divide(rows, total, out=np.zeros_like(rows), where=total > 0), 1 - total[:, 0]


def plot(explanations: Sequence[Explanation], path: str | Path) -> Path:
    """One heatmap per layer and sentence: attention among the words (mean over heads), [CLS] and [SEP] left out
    and each row rescaled (their share of the word's row is in the title), the word's rows outlined.

    Written atomically (minibert.io.atomic_output): a failed run leaves no half-written image.
    """
    require_matplotlib()
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Rectangle

    path = Path(path)
    check_output(path, option="--plot")  # before the figure is drawn
    fmt = path.suffix.lstrip(".").lower() or "png"
    L, S = len(explanations[0].layers), len(explanations)
    W = max(len(word_attention(e, e.attentions[0])[0]) for e in explanations)
    side = max(1.7, 0.75 + 0.2 * W)  # inches per panel: room for its title however short the sentence
    fig, axes = plt.subplots(S, L, squeeze=False, figsize=(side * L + 1.0, (side + 0.55) * S + 0.7),
                             constrained_layout=True)
    top = max(float(word_attention(e, probs)[1].max()) for e in explanations for probs in e.attentions)
    top = min(1.0, np.ceil(top * 10) / 10)  # one colour scale for every panel, fitted to the data
    supported = fig.canvas.get_supported_filetypes()
    if fmt not in supported:
        plt.close(fig)
        raise MinibertError(f"--plot {path}: cannot write .{fmt} files; expected one of "
                            f"{', '.join('.' + f for f in sorted(supported))}")
    for n, (row, e) in enumerate(zip(axes, explanations), 1):
        labels = token_labels(e.tokens)
        for ax, probs, v in zip(row, e.attentions, e.layers):
            kept, rows, parked = word_attention(e, probs)
            image = ax.imshow(rows, vmin=0, vmax=top, cmap="Blues")
            names = [labels[t] for t in kept]
            ax.set_xticks(range(len(kept)), names, rotation=90, fontsize=7)
            ax.set_yticks(range(len(kept)), names if ax is row[0] else [], fontsize=7)
            mine = [kept.index(t) for t in e.word.tokens]
            for t in mine:
                ax.add_patch(Rectangle((-0.5, t - 0.5), len(kept), 1, fill=False, edgecolor="crimson", lw=1.6))
            ax.set_title(f"layer {v.layer}: moved {v.moved:.2f}\n{float(parked[mine].mean()):.0%} on [CLS]/[SEP]",
                         fontsize=8)
            if n == S:
                ax.set_xlabel("key: read from", fontsize=7)
        row[0].set_ylabel(f"S{n}: {e.sentence[:32]}{'…' if len(e.sentence) > 32 else ''}\nquery: reading",
                          fontsize=7)
    bar = fig.colorbar(image, ax=axes, shrink=0.9, fraction=0.03, pad=0.01)
    bar.set_label("attention among the words (mean over heads;\n[CLS], [SEP] left out, each row rescaled to 1)",
                  fontsize=8)
    fig.suptitle(f"Whom does '{explanations[0].word.text}' read? (its rows outlined)", fontsize=10)
    try:
        with atomic_output(path, option="--plot") as f:
            fig.savefig(f, format=fmt, dpi=120)
    finally:
        plt.close(fig)
    return path


# ----------------------------------------------------------------------------------------------------------------
# Command line
# ----------------------------------------------------------------------------------------------------------------

DESCRIPTION = ("For a word in one or more sentences, show layer by layer which tokens it attends to, how far its "
               "vector moved, and how much of that was attention vs feed-forward. With a masked-LM head, the word is "
               "masked (or the sentence's mask followed) and the head's guesses are shown after every layer.")


# Sentences longer than this are echoed abbreviated in the text report (the JSON keeps them whole).
SHOWN_CHARACTERS = 160


def abbreviated(sentence: str, limit: int = SHOWN_CHARACTERS) -> str:
    """A sentence as the report echoes it: quoted, and cut in the middle when longer than `limit` characters."""
    if len(sentence) <= limit:
        return repr(sentence)
    head, tail = sentence[:limit * 3 // 4], sentence[-(limit // 4):]
    return f"{head!r} ... {tail!r} ({len(sentence):,} characters)"


def warn_if_cut(tokenizer: Tokenizer, sentences: Sequence[str], prog: str) -> None:
    """Say on stderr which sentences the tokenizer cuts at the model's maximum (their end is not seen)."""
    limit = tokenizer.model_max_length
    for n, sentence in enumerate(sentences, 1):
        tokens = tokenizer(sentence, truncation=False)["input_ids"].shape[1]
        if tokens > limit:
            print(f"{prog}: sentence {n} has {tokens} tokens; cut at the model's maximum of {limit}: the rest is "
                  "not seen", file=sys.stderr)


def load(model: str) -> Tuple[BertModel, Optional[BertForMaskedLM]]:
    """The encoder, and the model with its masked-LM head (None when the checkpoint has none)."""
    try:
        mlm = BertForMaskedLM.from_pretrained(model)
    except MissingHeadError:
        return BertModel.from_pretrained(model), None
    return mlm.base_model, mlm


def masked_sentences(tokenizer: Tokenizer, sentences: Sequence[str], word: Optional[str], occurrence: int,
                     masking: bool) -> Tuple[List[str], List[int], str, Optional[str]]:
    """The sentences as explained, the occurrence of the word followed in each, that word, and the word the mask
    token replaced (None when none was). No `word`: the mask token, which every sentence must hold; with
    `masking`, `word` is replaced by the mask token."""
    mask = tokenizer.mask_token if tokenizer.mask_token_id is not None else None
    if word is not None and word.strip() == mask:
        word = None  # --word [MASK]: the same as no --word
    if word is None:
        if mask is None:
            raise InputError(f"no --word, and tokenizer {tokenizer.name_or_path!r} has no mask token to follow; "
                             "give --word W")
        for n, sentence in enumerate(sentences, 1):
            if sentence.count(mask) <= occurrence:  # as the tokenizer matches it: case and all
                which = f" (occurrence {occurrence}, 0-based)" if occurrence else ""
                raise InputError(f"sentence {n}: no --word given and no mask token {mask!r}{which} to follow; "
                                 f"expected {mask!r} in it, or --word W")
        return list(sentences), [occurrence] * len(sentences), mask, None
    if not masking or mask is None:
        return list(sentences), [occurrence] * len(sentences), word, None
    masked = [mask_word(s, word, occurrence, mask) for s in sentences]
    return [s for s, _ in masked], [k for _, k in masked], mask, word


def show(sentences: Sequence[str], word: Optional[str], *, model: str = DEFAULT_MODEL, occurrence: int = 0,
         heads: int = 3, top: int = 5, top_k: int = 5, as_json: bool = False, plot_path: Optional[str] = None,
         prog: str = "explain") -> None:
    """Explain `word` in each sentence and print the report (or JSON); write the plot if asked. With a masked-LM
    head, `word` (None: the mask token the sentences hold) is masked and the head's `top_k` guesses for it are
    shown per layer; without one, a mask to follow gets a note on stderr naming a model that has the head. Bad
    input raises MinibertError (minibert.cli prints it). `prog` prefixes the notes on stderr."""
    if plot_path:  # before any model work
        require_matplotlib()
        check_output(plot_path, option="--plot")
    (bert, mlm), tokenizer = load(model), Tokenizer.from_pretrained(model)
    texts, occurrences, followed, masked_word = masked_sentences(tokenizer, sentences, word, occurrence,
                                                                 masking=mlm is not None)
    if mlm is None and followed == tokenizer.mask_token:  # a mask to guess, and no head to guess it
        print(f"{prog}: {model} has no masked-LM head, so no per-layer guesses for the mask; a model with one: "
              f"{MASKED_LM_EXAMPLE}", file=sys.stderr)
    warn_if_cut(tokenizer, texts, prog)
    explanations = [explain(bert, tokenizer, s, followed, occurrence=k, heads=heads)
                    for s, k in zip(texts, occurrences)]
    predicted = mlm is not None and followed == tokenizer.mask_token
    predictions = [layer_predictions(mlm, tokenizer, e.vectors[1:], top_k) for e in explanations] if predicted else None
    written = plot(explanations, plot_path) if plot_path else None
    print(json.dumps(to_json(bert, explanations, predictions, masked_word, mlm is not None), indent=1) if as_json
          else report(bert, explanations, top=top, predictions=predictions, masked_word=masked_word))
    if written:
        print(f"wrote {written}", file=sys.stderr)


def main(argv: Optional[Sequence[str]] = None, prog: Optional[str] = None) -> int:
    """`explain` as a program of its own (compare.py's `explain`); returns the exit status (see minibert.cli)."""
    from .cli import run_command  # cli imports this module
    return run_command("explain", argv, prog)


if __name__ == "__main__":
    sys.exit(main())
