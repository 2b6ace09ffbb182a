"""Write docs/how-attention-builds-context.md: every number and every code excerpt in it comes from this script.

    python docs/make_tour.py           # (re)write the document
    python docs/make_tour.py --check   # exit 1 if the committed document differs from what the code gives now

Numbers are rounded to 3-4 significant digits, so float32 noise between BLAS builds does not change the text;
a number that lands within noise of a rounding boundary is reported on stderr (round it more coarsely).
"""

from __future__ import annotations

import argparse
import ast
import difflib
import inspect
import sys
import textwrap
from pathlib import Path
from typing import Callable, List, Optional, Sequence

import numpy as np

from minibert import DEFAULT_MODEL, BertModel, Tokenizer
from minibert import model as model_module
from minibert.explain import Explanation, cosine, explain, sublayer_steps, token_labels
from minibert.io import atomic_output
from minibert.model import layer_norm, linear, softmax, split_heads

DOC = Path(__file__).resolve().parent / "how-attention-builds-context.md"
SENTENCES = ("The cat sat on the mat.", "The cat chased the mouse.")
WORD = "cat"
PIECES_EXAMPLE = "hedgehogs"  # a word the vocabulary holds only in pieces
NOISE = 1e-5  # relative float32 noise a number may carry between machines

fragile: List[str] = []


def num(x: float, decimals: Optional[int] = None) -> str:
    """`x` to 4 significant digits (or `decimals` places); remembers it if float noise could flip the last digit."""
    x = float(x)
    if decimals is None:
        decimals = max(0, 3 - int(np.floor(np.log10(abs(x))))) if x else 0
    scaled = abs(x) * 10 ** decimals
    if scaled > 0 and abs(scaled - np.floor(scaled) - 0.5) < NOISE * scaled:
        fragile.append(f"{x!r} at {decimals} decimals")
    return f"{x:.{decimals}f}"


def vec(v: np.ndarray, n: int = 4) -> str:
    return "[" + ", ".join(num(x, 3) for x in v[:n]) + ", …]"


def excerpt(fn: Callable, skip: Sequence[str] = ()) -> str:
    """The source of a function of minibert/model.py without its docstring (and without lines containing `skip`)."""
    source = textwrap.dedent(inspect.getsource(fn))
    node = ast.parse(source).body[0]
    lines = source.splitlines()
    body = node.body
    first = body[1] if isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) else body[0]
    signature = lines[:node.body[0].lineno - 1]
    kept = [ln for ln in lines[first.lineno - 1:] if not any(s in ln for s in skip)]
    return "```python\n" + "\n".join(signature + kept) + "\n```"


def table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(" --- " for _ in header) + "|"]
    return "\n".join(lines + ["| " + " | ".join(r) + " |" for r in rows])


def top_context(e: Explanation, row: np.ndarray, n: int = 3) -> str:
    """The n context tokens the row weighs most, e.g. "chased 0.140, mouse 0.064"."""
    labels = token_labels(e.tokens)
    order = [t for t in np.argsort(-row, kind="stable") if e.context[t]][:n]
    return ", ".join(f"{labels[t]} {num(row[t], 3)}" for t in order)


def head_roles(e: Explanation, heads: np.ndarray) -> str:
    """What the heads of one layer do for the word, in words: which head reads the previous token, which park their
    weight on [CLS] and [SEP], which read which context word.  heads: (N, T)"""
    labels, (t,) = token_labels(e.tokens), e.word.tokens[:1]
    special = np.array([not c and i not in e.word.tokens for i, c in enumerate(e.context)])
    previous = [h for h in range(len(heads)) if int(np.argmax(heads[h])) == t - 1 and heads[h].max() > 0.5]
    parked = [h for h in range(len(heads)) if h not in previous and heads[h][special].sum() > 0.5]
    readers: dict = {}
    for h in range(len(heads)):
        if h not in previous and h not in parked:
            s = max((s for s in range(len(labels)) if e.context[s]), key=lambda s: heads[h][s])
            readers.setdefault(labels[s], []).append(h)
    said = [f"head {', '.join(map(str, previous))} puts {num(heads[previous[0]].max(), 3)} on the token just before "
            f'"{WORD}" ({labels[t - 1]})'] if previous else []
    if parked:
        said.append(f"heads {', '.join(map(str, parked))} give more than half their weight to [CLS] and [SEP]")
    said += [f"head{'s' if len(hs) > 1 else ''} {', '.join(map(str, hs))} read{'' if len(hs) > 1 else 's'} "
             f'"{word}" most among the words' for word, hs in sorted(readers.items(), key=lambda kv: -len(kv[1]))]
    return "So, in one layer: " + "; ".join(said) + "."


def contribution_table(e: Explanation, layers: Sequence[int]) -> str:
    """Per token: its attention weight and its share of the content (weight × value), in the given layers."""
    labels = token_labels(e.tokens)
    return table(["token"] + [f"layer {n}: {what}" for n in layers for what in ("weight", "weight × value")],
                 [[labels[s]] + [num(x, 3) for n in layers
                                 for x in (e.layers[n - 1].attention[s], e.layers[n - 1].contribution[s])]
                  for s in range(len(labels))])


def value_norms(model: BertModel, batch, layer: int) -> np.ndarray:
    """|vₛ W_O| of each token s in each head of `layer` (1-based), the mean over the heads.  -> (T,)"""
    step, w = sublayer_steps(model, batch)[layer - 1], model.weights.layers[layer - 1]
    N = model.config.num_attention_heads
    values = split_heads(np.split(linear(step.before[None], w.qkv), 3, axis=-1)[2], N)[0]  # (N, T, D)
    per_head = np.einsum("ntd,hnd->nth", values, w.attention_output.weight.reshape(-1, N, values.shape[-1]))
    return np.linalg.norm(per_head, axis=-1).mean(axis=0)


def sink_sentence(ex: Sequence[Explanation], model: BertModel, batch, layer: int = 2) -> str:
    """[CLS]'s weight against its contribution in `layer`, and why: its value vectors are short."""
    e = ex[1]
    norms = value_norms(model, batch, layer)
    words = [s for s in range(len(e.tokens)) if e.context[s] or s in e.word.tokens]
    v = e.layers[layer - 1]
    return (f"In layer {layer}, [CLS] takes {num(v.attention[0], 2)} of the weight but makes only "
            f"{num(v.contribution[0], 2)} of the content: its value vectors are short (|v W_O| {num(norms[0], 2)} "
            f"on average over the heads, against {num(min(norms[words]), 2)} to {num(max(norms[words]), 2)} for the "
            f"words). A head with nothing useful to read parks its weight on a token that adds almost nothing, "
            f"a near no-op: Clark et al. (2019, \"What Does BERT Look At?\") saw heads do this with [SEP], and "
            f"Xiao et al. (2023) named such tokens **attention sinks**. `compare.py explain` prints both rows, "
            f"\"all heads\" (the weights) and \"weight x value\" (the shares).")


def labour_table(ex: Sequence[Explanation]) -> str:
    """Per layer: the distance between the word's two vectors entering, after attention, after feed-forward; and
    [CLS]'s weight and share of the content in the word's attention (mean of the sentences)."""
    a, b = ex
    rows = []
    for i, (va, vb) in enumerate(zip(a.layers, b.layers)):
        rows.append([str(i + 1), *(num(np.linalg.norm(x - y), 2) for x, y in
                                   ((a.vectors[i], b.vectors[i]), (a.after_attention[i], b.after_attention[i]),
                                    (a.vectors[i + 1], b.vectors[i + 1]))),
                     num((va.attention[0] + vb.attention[0]) / 2, 2),
                     num((va.contribution[0] + vb.contribution[0]) / 2, 2)])
    return table(["layer", "distance entering", "after attention", "after feed-forward", "[CLS] weight",
                  "[CLS] weight × value"], rows)


def labour_sentence(ex: Sequence[Explanation]) -> str:
    """Which sub-layer widened the gap between the word's two vectors in which layers."""
    a, b = ex
    d = lambda x, y: float(np.linalg.norm(x - y))  # noqa: E731
    widened = {"attention": [], "feed-forward": []}
    for i in range(len(a.layers)):
        enter, mid, out = (d(a.vectors[i], b.vectors[i]), d(a.after_attention[i], b.after_attention[i]),
                           d(a.vectors[i + 1], b.vectors[i + 1]))
        if mid > enter:
            widened["attention"].append(i + 1)
        if out > mid:
            widened["feed-forward"].append(i + 1)
    gap = d(a.after_attention[0], b.after_attention[0])
    middle = range(2, len(a.layers))
    sink = [(a.layers[i - 1].contribution[0] + b.layers[i - 1].contribution[0]) / 2 for i in middle]
    return (f"In layer 1 the distance goes from 0 to {num(gap, 3)} in the attention step: that is where the context "
            f"enters. Attention widens the gap in layers {', '.join(map(str, widened['attention']))}, the "
            f"feed-forward step in layers {', '.join(map(str, widened['feed-forward']))}: once the vectors differ, "
            f"the feed-forward network can push them further apart (or pull them together), but it started nothing. "
            f"And in layers {middle[0]} to {middle[-1]}, where [CLS] takes most of the weight, it gives only "
            f"{num(min(sink), 2)} to {num(max(sink), 2)} of the content: what matters is the small weight left for "
            f"the words.")


def drop_table(outs, batches, positions: Sequence[int]) -> str:
    """Per layer: the cosine between the two sentences' vectors at each of `positions` (the same token in both),
    and the mean cosine between the words of one sentence and between those of the two."""
    labels = token_labels(batches[1].tokens(0))
    rows = []
    for layer in range(len(outs[0].hidden_states)):
        h = [o.hidden_states[layer][0] for o in outs]  # (T, H) each
        within, between = word_similarity(h)
        rows.append([str(layer), *(num(cosine(h[0][p], h[1][p]), 3) for p in positions),
                     num(within, 3), num(between, 3)])
    return table(["layer", *(f"{labels[p]}, 1 vs 2" for p in positions), "mean, words within a sentence",
                  "mean, words across the two"], rows)


def word_similarity(hidden: Sequence[np.ndarray]) -> tuple:
    """The mean cosine between two different word tokens of one sentence (mean of the sentences), and between a
    word token of one sentence and one of the other.  hidden: 2 x (T, H), [CLS] first and [SEP] last."""
    unit = [h[1:-1] / np.linalg.norm(h[1:-1], axis=1, keepdims=True) for h in hidden]
    within = np.mean([(u @ u.T)[~np.eye(len(u), dtype=bool)].mean() for u in unit])
    return float(within), float((unit[0] @ unit[1].T).mean())


def drop_sentence(outs) -> str:
    """What the last layer does to every token, and what is known about it."""
    (w0, b0), (w1, b1) = (word_similarity([o.hidden_states[layer][0] for o in outs]) for layer in (-2, -1))
    return (f"In the last layer the words of one sentence become much more alike (mean cosine {num(w0, 3)} → "
            f"{num(w1, 3)}) and less like the words of the other sentence ({num(b0, 3)} → {num(b1, 3)}): the last "
            f"layer writes the sentence into every one of its tokens, and \"{WORD}\" moves with the rest. What is "
            f"known fits this. Ethayarajh (2019, \"How Contextual are Contextualized Word Representations?\") found "
            f"that upper layers give the most context-specific vectors in BERT, ELMo and GPT-2; Merchant et al. "
            f"(2020) found that fine-tuning changes mostly the top layers; and all-MiniLM-L6-v2 was fine-tuned as a "
            f"sentence encoder whose sentence vector is the mean of the last layer's token vectors (Reimers and "
            f"Gurevych 2019, Sentence-BERT), which rewards a last layer that makes every token speak for its "
            f"sentence. That is a reading of the numbers above, not a proof.")


def render() -> str:
    model, tok = BertModel.from_pretrained(DEFAULT_MODEL), Tokenizer.from_pretrained(DEFAULT_MODEL)
    c = model.config
    ex = [explain(model, tok, s, WORD) for s in SENTENCES]
    batches = [tok(s) for s in SENTENCES]
    outs = [model(**b, output_hidden_states=True, output_attentions=True) for b in batches]
    t = ex[0].word.tokens[0]
    assert all(e.word.tokens == (t,) for e in ex), "the tour assumes 'cat' is one piece at the same position"
    cat_id = int(batches[0]["input_ids"][0, t])
    w = model.weights.embeddings
    L, N, D = c.num_hidden_layers, c.num_attention_heads, c.hidden_size // c.num_attention_heads
    parts = [f"""<!-- Generated by docs/make_tour.py from minibert/model.py and the real model: do not edit by hand.
     Regenerate with `python docs/make_tour.py`; the tests fail when this file is out of date. -->

# How attention builds context: following "cat" through `minibert/model.py`

A static word vector gives "cat" the same numbers in every sentence. BERT does not, and this tour shows where
the difference comes from, step by step, in the order the data flows through
[`minibert/model.py`](../minibert/model.py), with the real numbers of `{DEFAULT_MODEL}`
({L} layers, hidden size H = {c.hidden_size}, N = {N} heads of D = {D} dimensions, feed-forward size
I = {c.intermediate_size}) for the word "{WORD}" in two sentences:

1. "{SENTENCES[0]}"
2. "{SENTENCES[1]}"

Every number below is printed by `docs/make_tour.py`, which runs the model, and every code excerpt is read from
the source when the document is generated. To see the same analysis for your own sentences:

```bash
python compare.py explain "{SENTENCES[0]}" "{SENTENCES[1]}" --word {WORD}
```

## 0. Tokens

The tokenizer (`Tokenizer.__call__`) lower-cases, splits into word pieces and adds `[CLS]` and `[SEP]`.
The word is found through the tokens' word ids and character offsets, not a guessed position:

{table(["position"] + [f"sentence {i + 1}" for i in range(2)],
       [[str(p)] + [(b.tokens(0)[p] if p < len(b.tokens(0)) else "") for b in batches]
        for p in range(max(len(b.tokens(0)) for b in batches))])}

"{WORD}" is token {t} in both sentences (id {cat_id}). Only the tokens after it differ: that is all the context
there is.

A word the vocabulary lacks is cut into pieces it has, and a piece that continues a word is written with `##` in
front: "{PIECES_EXAMPLE}" becomes {" ".join(tok.tokenize(PIECES_EXAMPLE))}. Such a word gets one vector per piece;
`explain` and `compare.py` take the mean of its pieces' vectors. Below, a token that occurs twice in a sentence is
named with its position, as `explain` prints it: `the@1` is "the" at position 1, `the@4` the one at position 4.
"""]

    # -- 1. embeddings --------------------------------------------------------------------------------------------
    raw = w.word[cat_id] + w.token_type[0] + w.position[t]  # (H,)
    normed = layer_norm(raw, w.norm, c.layer_norm_eps)
    x0 = [e.vectors[0] for e in ex]
    assert np.abs(x0[0] - x0[1]).max() < 1e-6, "the same token at the same position must start from the same vector"
    assert np.allclose(normed, x0[0], atol=1e-5), "the equation below must give the model's own layer-0 vector"
    the = [p for p, s in enumerate(batches[1].tokens(0)) if s == "the"]
    parts.append(f"""## 1. The embedding lookup: `embeddings`

Each token starts as the sum of three learned vectors, what it is, which segment it is in and where it stands,
then layer-normalised (`layer_norm`: zero mean and unit variance over the H dimensions, then a learned scale γ and
shift β):

x⁰ₜ = LayerNorm(E_word[idₜ] + E_type[segₜ] + E_pos[t]),  LayerNorm(z) = γ ⊙ (z − mean(z)) / √(var(z) + ε) + β

{excerpt(model_module.embeddings)}

{excerpt(model_module.layer_norm)}

For "{WORD}" (first 4 of {c.hidden_size} dimensions):

| term | vector | norm |
| --- | --- | --- |
| E_word[{cat_id}] ("{WORD}") | {vec(w.word[cat_id])} | {num(np.linalg.norm(w.word[cat_id]))} |
| E_type[0] | {vec(w.token_type[0])} | {num(np.linalg.norm(w.token_type[0]))} |
| E_pos[{t}] | {vec(w.position[t])} | {num(np.linalg.norm(w.position[t]))} |
| sum | {vec(raw)} | {num(np.linalg.norm(raw))} |
| x⁰ (after LayerNorm) | {vec(x0[0])} | {num(np.linalg.norm(x0[0]))} |

Nothing in this step looks at the other tokens, so "{WORD}" at position {t} gets **identical** vectors in the two
sentences (largest difference {"exactly 0" if np.array_equal(*x0) else "below 10⁻⁶, float rounding"}; cosine
{num(cosine(*x0), 4)}). The position does count: "the" at positions {the[0]} and {the[1]} of sentence 2 already
differ (cosine {num(cosine(outs[1].hidden_states[0][0, the[0]], outs[1].hidden_states[0][0, the[1]]), 3)}).
""")

    # -- 2. first attention layer ---------------------------------------------------------------------------------
    layer = model.weights.layers[0]
    heads = [e.layers[0].heads for e in ex]  # (N, T) each
    shared = t + 1  # tokens 0..t are the same in both sentences, so are their layer-0 vectors
    share_new = [float(h.mean(axis=0)[shared:].sum()) for h in heads]
    focus = [int(np.argmax(h[:, shared:].sum(axis=1))) for h in heads]  # the head reading most from the new tokens
    mids = [e.after_attention[0] for e in ex]
    h0 = focus[1]
    x = outs[1].hidden_states[0][:1]  # (1, T, H)
    H = c.hidden_size
    q, k, _ = (split_heads(m, N) for m in np.split(linear(x, layer.qkv), 3, axis=-1))
    by_hand = x[0, t] @ layer.qkv.weight[:H].T + layer.qkv.bias[:H]  # X W_Q (+ b_Q) for "cat", all heads
    assert np.allclose(by_hand[:D], q[0, 0, t], atol=1e-5)
    raw = np.einsum("nd,nsd->ns", q[0, :, t], k[0])  # (N, T) qₜ·kₛ in every head, before the division
    scores = raw[h0] * D ** -0.5  # (T,)
    assert np.allclose(softmax(scores), outs[1].attentions[0][0, h0, t], atol=1e-5)
    peak, peak_raw = softmax(raw * D ** -0.5).max(axis=1), softmax(raw).max(axis=1)  # (N,) the largest weight
    labels1 = token_labels(ex[1].tokens)
    parts.append(f"""## 2. Layer 1, attention: `self_attention` and `attention`

This is the only step in which tokens read from each other.

### Queries, keys and values

Each token's vector (a row of X, the T × H matrix of the sentence) is multiplied by three learned H × H matrices:

Q = X W_Q,  K = X W_K,  V = X W_V  (each plus a bias)

The query says what the token is looking for, the key what it offers to the others' queries, and the value what
it passes on when it is read. `params.py` stacks the three in one dense layer, `qkv`, with weight shape
{tuple(layer.qkv.weight.shape)} (stored (out, in) as PyTorch stores it): rows 0 to {H - 1} are W_Q (transposed),
rows {H} to {2 * H - 1} W_K and rows {2 * H} to {3 * H - 1} W_V. One product gives [Q | K | V] side by side, and
`np.split(qkv, 3, axis=-1)` takes them apart; `split_heads` then cuts each into N = {N} heads of D = {D} columns
(head h uses columns {D}h to {D}h + {D - 1}). For "{WORD}", x⁰ W_Q + b_Q computed by hand starts
{vec(by_hand)}, exactly the query the split gives to head 0.

{excerpt(model_module.self_attention)}

### Why a dot product measures relevance

Token t's score for token s is qₜ · kₛ = |qₜ| |kₛ| cos θ: large when the query and the key point the same way.
Training shapes W_Q and W_K so that what one token looks for and what another offers fall in the same directions.
The softmax turns the scores into weights (positive, summing to 1), and the token's new content is the weighted
mean of the values:

Aₕ = softmax(Qₕ Kₕᵀ / √D + mask),  headₕ = Aₕ Vₕ,  a = [head₁ … head_N] W_O + b_O

{excerpt(model_module.attention)}

In head {h0} of layer 1, "{WORD}"'s scores qₜ·kₛ/√D over the tokens of sentence 2 are
[{", ".join(f"{labels1[s]} {num(scores[s], 2)}" for s in range(len(scores)))}]; their softmax,
[{", ".join(f"{labels1[s]} {num(softmax(scores)[s], 3)}" for s in range(len(scores)))}], is exactly the row the model
returns: the verb "{labels1[int(np.argmax(scores))]}" scores highest and gets the most weight.

### Why divide by √D

If the D components of q and k were independent with variance 1, q·k would have variance D: the scores would
spread wider the larger the head, and the softmax would put nearly all the weight on one key, leaving the others
(and their gradients in training) near zero. Dividing by √D = {num(D ** 0.5, 2)} keeps the spread near 1 whatever
D is (Vaswani et al. 2017, "Attention Is All You Need"). For "{WORD}" in layer 1 of sentence 2, the raw dot
products over all {N} heads and tokens have standard deviation {num(raw.std(), 2)}, the scaled ones
{num((raw * D ** -0.5).std(), 2)}. The model was trained with the division; without it, the largest weight of
head {h0} would be {num(peak_raw[h0], 3)} instead of {num(peak[h0], 3)}, and averaged over the heads
{num(peak_raw.mean(), 3)} instead of {num(peak.mean(), 3)}.

### Why several heads

Each head has its own {D} columns of W_Q, W_K and W_V, hence its own idea of what is relevant, and all {N} read
the sentence at once. "{WORD}"'s row in each head of layer 1, sentence 2 (the three largest weights):

{table(["head", "largest weights"], [[str(h), ", ".join(f"{labels1[s]} {num(heads[1][h][s], 3)}"
                                                        for s in np.argsort(-heads[1][h], kind="stable")[:3])]
                                     for h in range(N)])}

{head_roles(ex[1], heads[1])}

"{WORD}"'s attention row averaged over the {N} heads (`output_attentions`; each row sums to 1):

{table(["sentence", "weights, largest first"],
       [[str(i + 1), ", ".join(f"{token_labels(e.tokens)[s]} {num(e.layers[0].attention[s], 3)}"
                              for s in np.argsort(-e.layers[0].attention, kind="stable")[:6])]
        for i, e in enumerate(ex)])}

Tokens 0 to {t} (`[CLS] the {WORD}`) have the same queries, keys and values in both sentences, so any difference
in "{WORD}"'s new vector comes from the tokens after it. "{WORD}" gives them {num(share_new[0])} of its attention in
sentence 1 and {num(share_new[1])} in sentence 2. The head that reads most from them is head {focus[0]} in
sentence 1 ({top_context(ex[0], heads[0][focus[0]])}) and head {focus[1]} in sentence 2
({top_context(ex[1], heads[1][focus[1]])}).

### What each token contributes: weight × value

A weight says how much of a token's value is taken, not how much that value weighs: token s adds
weight × (vₛ W_O) to the output, summed over the heads, and a value vector can be short (Kobayashi et al. 2020,
"Attention is Not Only a Weight"). `minibert.explain.contributions` computes these terms; they add up, with b_O,
to the attention output. For "{WORD}" in sentence 2, each token's weight (mean over heads) beside its share of
the sum of the terms' norms, in layers 1 and 2:

{contribution_table(ex[1], (1, 2))}

{sink_sentence(ex, model, batches[1])}

### Adding back: the residual and post-LN

The attention output a is not put in place of the token's vector: it is added to it, x⁰ + a. This is the
**residual** connection (He et al. 2016): a sub-layer only writes a correction into the token's vector, which
keeps what it was unless the correction overrides it. The sum is then layer-normalised, x_att = LayerNorm(x⁰ + a);
normalising after the addition is called **post-LN** (BERT, and the original Transformer; GPT-2 and most later
models normalise before each sub-layer instead, "pre-LN"). Both are in `encoder_layer`:

{excerpt(model_module.encoder_layer)}

Here the two "{WORD}" vectors part: after the attention sub-layer their cosine is
{num(cosine(*mids), 3)} (it was {num(cosine(*x0), 4)}). The step moved "{WORD}" by |x_att − x⁰| =
{num(ex[0].layers[0].attention_step)} in sentence 1 and {num(ex[1].layers[0].attention_step)} in sentence 2; the
attention output itself has norm {num(ex[0].layers[0].attention_output_norm)} and
{num(ex[1].layers[0].attention_output_norm)}.
""")

    # -- 3. feed-forward ------------------------------------------------------------------------------------------
    x1 = [e.vectors[1] for e in ex]
    v1 = ex[0].layers[0]
    parts.append(f"""## 3. Layer 1, feed-forward: `feed_forward` and `gelu`

Each token then goes on its own through two dense layers with a GELU between them (H = {c.hidden_size} →
I = {c.intermediate_size} → H); the result is again added back and layer-normalised:

f = GELU(x_att W₁ + b₁) W₂ + b₂,  x¹ = LayerNorm(x_att + f),  GELU(x) = x Φ(x)

{excerpt(model_module.feed_forward)}

{excerpt(model_module.gelu)}

No token reads another here, but the input already differs between the sentences, so the output does too. For
"{WORD}": |f| = {num(ex[0].layers[0].feed_forward_output_norm)} and {num(ex[1].layers[0].feed_forward_output_norm)},
and the step moved the vector by |x¹ − x_att| = {num(ex[0].layers[0].feed_forward_step, 2)} and
{num(ex[1].layers[0].feed_forward_step, 2)}. After the whole layer the cosine between the two "{WORD}" vectors is
{num(cosine(*x1), 4)}: the feed-forward step {"widened" if cosine(*x1) < cosine(*mids) else "narrowed"} the gap
attention opened ({num(cosine(*mids), 3)}).

How much of the layer's move was attention's? In sentence 1 "{WORD}" moved |x¹ − x⁰| = {num(v1.moved)} in all.
The two steps' lengths, {num(v1.attention_step)} and {num(v1.feed_forward_step)}, add up to more, because they
do not point the same way and their sideways parts cancel. Measured along the direction of the whole move they
add up: attention {num(v1.attention_along)} + feed-forward {num(v1.feed_forward_along)} = {num(v1.moved)}
(`explain` prints this as "moved = attention + FFN").
""")

    # -- 4. the other layers --------------------------------------------------------------------------------------
    rows = []
    for i in range(1, L + 1):
        a, b = ex[0].vectors[i], ex[1].vectors[i]
        rows.append([str(i), num(cosine(a, b), 3), num(np.linalg.norm(a - b)),
                     *(f"{num(e.layers[i - 1].moved, 2)} = {num(e.layers[i - 1].attention_along, 2)} + "
                       f"{num(e.layers[i - 1].feed_forward_along, 2)}" for e in ex),
                     *(top_context(e, e.layers[i - 1].attention, 2) for e in ex)])
    middle = list(range(2, L))
    cls_share = [float(np.mean([e.layers[i].attention[0] for e in ex])) for i in range(L)]
    most_moved = 1 + int(np.argmax([max(e.layers[i].moved for e in ex) for i in range(L)]))
    parts.append(f"""## 4. Layers 2 to {L}: the same layer again, `forward`

`forward` runs `embeddings`, then `encoder_layer` {L} times, each with its own weights, keeping every
layer's output (`output_hidden_states`) and attention (`output_attentions`):

{excerpt(model_module.forward)}

Layer by layer, the two "{WORD}" vectors (cosine and distance between them), how far each moved in the layer
(the move = attention + feed-forward, along the move as above) and the context words it read most (attention
averaged over heads):

{table(["layer", "cosine 1 vs 2", "distance", "sentence 1: moved = attention + FFN",
        "sentence 2: moved = attention + FFN", "sentence 1 reads", "sentence 2 reads"], rows)}

In layers {middle[0]} to {middle[-1]}, `[CLS]` takes {num(min(cls_share[m - 1] for m in middle), 2)} to
{num(max(cls_share[m - 1] for m in middle), 2)} of "{WORD}"'s attention (averaged over heads and both sentences),
and "{WORD}" moves most in layer {most_moved} (distance {num(max(e.layers[most_moved - 1].moved for e in ex))} at
most).

### The division of labour

Attention moves information between tokens; the feed-forward network transforms each token with what it
gathered. Only attention can make the two "{WORD}" vectors differ, since only it reads the other tokens: the
feed-forward network gives equal inputs equal outputs, and can only reshape a difference that is already there.
The distance between the two "{WORD}" vectors as each layer enters, after its attention step and after its
feed-forward step, beside `[CLS]`'s weight and its share of the content (weight × value) in "{WORD}"'s attention
(mean of the two sentences):

{labour_table(ex)}

{labour_sentence(ex)}
""")

    # -- 5. final vectors -----------------------------------------------------------------------------------------
    last = [e.vectors[-1] for e in ex]
    parts.append(f"""## 5. The final vectors: `last_hidden_state`

| sentence | "{WORD}" after layer {L} | norm |
| --- | --- | --- |
| 1 | {vec(last[0], 6)} | {num(np.linalg.norm(last[0]))} |
| 2 | {vec(last[1], 6)} | {num(np.linalg.norm(last[1]))} |

Their cosine is **{num(cosine(*last), 4)}**: the same word, the same input embedding (cosine
{num(cosine(*x0), 4)}), and two different vectors, because attention let it read "{ex[0].tokens[t + 1]}" in one
sentence and "{ex[1].tokens[t + 1]}" in the other. A static table such as GloVe would say 1.000.

### The last layer's drop

Most of that difference appears in layer {L}: the cosine falls from {num(cosine(ex[0].vectors[L - 1],
ex[1].vectors[L - 1]), 3)} to {num(cosine(*last), 3)}. It is not about "{WORD}". The other tokens that stand at the
same position in both sentences drop as well, and further: "the" from {num(cosine(*(o.hidden_states[L - 1][0, 1]
for o in outs)), 3)} to {num(cosine(*(o.hidden_states[L][0, 1] for o in outs)), 3)}, and even `[CLS]`, which read so
little from the words that it was still the same in both sentences after layer {L - 1} (cosine
{num(cosine(*(o.hidden_states[L - 1][0, 0] for o in outs)), 3)}), falls to
{num(cosine(*(o.hidden_states[L][0, 0] for o in outs)), 3)}. The cosine between the two sentences' vectors, by
layer:

{drop_table(outs, batches, (0, 1, t))}

{drop_sentence(outs)}
""")
    return reflow("\n".join(parts))


def reflow(markdown: str, width: int = 116) -> str:
    """Re-wrap the prose paragraphs (the placeholders leave ragged lines); code, tables, headings stay as they are."""
    out: List[str] = []
    paragraph: List[str] = []
    fenced = False

    def flush() -> None:
        if paragraph:
            out.extend(textwrap.wrap(" ".join(paragraph), width, break_on_hyphens=False, break_long_words=False))
            paragraph.clear()

    for line in markdown.splitlines():
        if line.startswith("```"):
            flush()
            fenced = not fenced
            out.append(line)
        elif fenced or not line.strip() or line.startswith(("|", "#", "<!--", "  ", "1. ", "2. ")) \
                or "=" in line and "LayerNorm" in line or line.startswith(("Aₕ", "f = ", "Q = ")):
            flush()
            out.append(line)
        else:
            paragraph.append(line.strip())
    flush()
    return "\n".join(out) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--check", action="store_true", help="compare with the committed document instead of writing it")
    args = p.parse_args(argv)
    text = render()
    for f in fragile:
        print(f"warning: {f} is within float noise of a rounding boundary; round it more coarsely", file=sys.stderr)
    if not args.check:
        with atomic_output(DOC) as f:  # the permissions of any ordinary file, never half-written
            f.write(text.encode("utf-8"))
        print(f"wrote {DOC.name}")
        return 0
    current = DOC.read_text(encoding="utf-8") if DOC.is_file() else ""
    if current == text:
        return 0
    sys.stdout.writelines(difflib.unified_diff(current.splitlines(True), text.splitlines(True),
                                               f"{DOC.name} (committed)", f"{DOC.name} (generated now)"))
    print(f"\n{DOC.name} is out of date: run python docs/make_tour.py and commit it", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
