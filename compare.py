"""Static vs contextual word vectors: GloVe gives a word one vector everywhere, BERT one that moves with its sentence.

    python compare.py                                   the classic pair and three polysemous words
    python compare.py --word bank --sentence "..." --sentence "..."
    python compare.py --layer 3 --json                  the same numbers as JSON
    python compare.py --plot compare.png                per-layer curves and similarity heatmaps (matplotlib)
    python compare.py --wic WIC_DIR [--split dev]       Word-in-Context accuracy, static vs every layer
    python compare.py explain SENTENCE... --word W     a word's path through the layers (minibert.explain)

The static table is GloVe (`--glove`: anything `glove.load` accepts; by default fse/glove-wiki-gigaword-100 from the
Hugging Face cache or the Hub). Without one, the model's own input word-piece embeddings stand in for it.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional, Sequence, Tuple

import numpy as np

import glove
from glove.hub import go_offline_if_unreachable
from minibert import DEFAULT_MODEL, BertModel, MinibertError, Tokenizer, word_vectors
from minibert.contextual import locate

DEFAULT_GLOVE = "fse/glove-wiki-gigaword-100"
WIDTH = 100  # the report fits a terminal this wide
HEAD_DIMS = 6  # how many leading dimensions of a vector to show

# (word, [(sentence, sense)]): sense labels mark which occurrences mean the same thing.
CLASSIC = ("cat", [("The cat sat on the mat.", ""), ("The cat chased the mouse.", "")])
POLYSEMY = [
    ("bank", [("We had a picnic on the bank of the river.", "river"),
              ("The boat drifted toward the muddy bank of the stream.", "river"),
              ("She deposited her salary at the bank on Monday.", "money"),
              ("The bank raised its interest rates on loans.", "money")]),
    ("bat", [("A bat flew out of the cave at dusk.", "animal"),
             ("The bat hangs upside down and sleeps all day.", "animal"),
             ("He swung the bat and hit the ball over the fence.", "baseball"),
             ("The batter raised his bat and waited for the pitch.", "baseball")]),
    ("cell", [("The cell divides and its nucleus splits in two.", "biology"),
              ("Each cell in the body is wrapped in a thin membrane.", "biology"),
              ("The prisoner spent the night locked in a cell.", "prison"),
              ("The guard slammed the door of the cell shut.", "prison"),
              ("Call me on my cell when you land.", "phone"),
              ("My cell battery died, so I could not text you.", "phone")]),
]


class UsageError(Exception):
    """A bad command line or input file: printed as one line, exit status 2."""


# ------------------------------------------------------------------------------------------------------------
# The static table: GloVe, or the model's own input word-piece embeddings when no GloVe table can be had
# ------------------------------------------------------------------------------------------------------------

@dataclass
class Static:
    table: glove.GloVe
    name: str  # what the report calls it
    wordpieces: bool  # True: the model's input embedding table stands in for GloVe

    def keys(self, word: str, tokenizer: Tokenizer) -> List[str]:
        """The table entries whose (mean) vector is the word's static vector; [] when it has none."""
        if self.wordpieces:
            return tokenizer.tokenize(word)
        found = [w for w in dict.fromkeys([word, word.lower()]) if w in self.table]  # GloVe 6B is lower-case
        return found[:1]

    def vector(self, keys: List[str]) -> np.ndarray:
        """float32 (D,): the mean of the keys' rows (one row for a whole word)."""
        return self.table[keys].mean(axis=0)


def wordpiece_table(model: BertModel, tokenizer: Tokenizer) -> glove.GloVe:
    """The model's input word-piece embeddings (V, H) as a static table, one row per vocabulary entry."""
    vocab = tokenizer.get_vocab()
    table = model.weights.embeddings.word  # (V, E)
    words = [w for w in sorted(vocab, key=vocab.get) if vocab[w] < len(table)]
    return glove.from_arrays(words, table[[vocab[w] for w in words]])


def load_static(source: Optional[str], model: BertModel, tokenizer: Tokenizer, model_name: str) -> Static:
    """The GloVe table `source` (None: the default one, falling back to the model's word pieces on failure)."""
    if source is not None and source.lower() == "none":
        return Static(wordpiece_table(model, tokenizer), f"{model_name} input word-piece embeddings", True)
    name = source or DEFAULT_GLOVE
    offline = None if Path(name).expanduser().exists() else go_offline_if_unreachable()
    try:
        return Static(glove.load(name), name, False)
    except (glove.GloVeError, OSError) as e:
        if source is not None:  # asked for by name: its failure is the answer
            raise UsageError(f"--glove {source}: {_first_line(e)}") from None
        why = f"it is not in the Hugging Face cache and {offline}" if offline else _first_line(e)
        print(f"compare.py: no GloVe table ({name}: {why}); get it once with `hf download {name}` or pass --glove "
              "glove.6B.100d.txt. Static baseline here: the model's input word-piece embeddings.", file=sys.stderr)
        return Static(wordpiece_table(model, tokenizer), f"{model_name} input word-piece embeddings (no GloVe)", True)


def _first_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return text[0] if text else type(e).__name__


# ------------------------------------------------------------------------------------------------------------
# One word in several sentences: every number of the report
# ------------------------------------------------------------------------------------------------------------

def cosine_matrix(vectors: np.ndarray) -> np.ndarray:
    """(..., S, D) -> (..., S, S) cosine similarities, in float64."""
    v = vectors.astype(np.float64)
    v /= np.linalg.norm(v, axis=-1, keepdims=True)
    return v @ np.swapaxes(v, -1, -2)


def analyse(word: str, sentences: Sequence[str], senses: Sequence[str], model: BertModel, tokenizer: Tokenizer,
            static: Static, layer: int, neighbours: int = 5) -> dict:
    """All the numbers shown for one word: static and contextual vectors, cosines, neighbours. JSON-ready."""
    where = locate(tokenizer, sentences, word)
    contextual = word_vectors(model, tokenizer, sentences, word, layers="all")  # (S, L + 1, H)
    by_layer = cosine_matrix(np.swapaxes(contextual, 0, 1))  # (L + 1, S, S)
    keys = static.keys(word, tokenizer)
    static_vector = static.vector(keys) if keys else None
    static_cos = cosine_matrix(np.stack([static_vector] * len(sentences))) if keys else None
    chosen = by_layer[layer]
    closest = []
    for i in range(len(sentences)):
        others = [j for j in range(len(sentences)) if j != i]
        j = max(others, key=lambda j: chosen[i, j])
        closest.append({"sentence": i, "closest": j, "cosine": _r(chosen[i, j])})
    return {
        "word": word,
        "sentences": [{"text": s, "sense": sense, "span": list(w.span), "pieces": list(w.pieces)}
                      for s, sense, w in zip(sentences, senses, where)],
        "static_keys": keys,
        "static_head": None if static_vector is None else [_r(x) for x in static_vector[:HEAD_DIMS]],
        "contextual_head": [[_r(x) for x in v[:HEAD_DIMS]] for v in contextual[:, layer]],
        "static_cosine": None if static_cos is None else _rounded(static_cos),
        "contextual_cosine": _rounded(chosen),
        "cosine_by_layer": _rounded(by_layer),
        "static_neighbours": ([[w, _r(c)] for w, c in static.table.most_similar(keys, topn=neighbours)]
                              if keys else []),
        "closest": closest,
    }


def _r(x: float) -> float:
    return round(float(x), 6)


def _rounded(a: np.ndarray) -> list:
    return np.round(a, 6).tolist()


# ------------------------------------------------------------------------------------------------------------
# The text report
# ------------------------------------------------------------------------------------------------------------

def _fit(text: str, width: int) -> str:
    return text if len(text) <= width else text[:width - 3] + "..."


def _head(values: Sequence[float]) -> str:
    return " ".join(f"{v:+.3f}" for v in values) + " ..."


def _label(i: int, sense: str) -> str:
    return f"S{i + 1} {sense}".rstrip()


def _layer_columns(n_layers: int, room: int) -> List[int]:
    """Which layers fit as 6-character columns in `room` characters: all if they fit, else evenly spaced."""
    fit = max(room // 6, 2)
    if n_layers + 1 <= fit:
        return list(range(n_layers + 1))
    return sorted({round(k * n_layers / (fit - 1)) for k in range(fit)})


def render(r: dict, layer: int, n_layers: int, static_name: str) -> List[str]:
    """The text report for one word (lines of at most WIDTH characters)."""
    sents, word = r["sentences"], r["word"]
    labels = [_label(i, s["sense"]) for i, s in enumerate(sents)]
    lw = max(len(x) for x in labels)
    out = [f"== {word} " + "=" * (WIDTH - len(word) - 4)]
    sw = min(max(len(s["text"]) for s in sents), WIDTH - lw - 24)
    for lab, s in zip(labels, sents):
        out.append(_fit(f"  {lab:<{lw}}  {_fit(s['text'], sw):<{sw}}  pieces: {' '.join(s['pieces'])}", WIDTH))
    out.append("")
    if r["static_head"] is None:
        out.append(f"  static vector: {word!r} is not in {static_name}; no static vector")
    else:
        out.append(f"  static vector, the same in every sentence:  {_head(r['static_head'])}")
    out.append(f"  contextual vector at layer {layer}, one per sentence:")
    for lab, head in zip(labels, r["contextual_head"]):
        out.append(f"    {lab:<{lw}}  {_head(head)}")
    out += [""] + _cosine_table(r, labels, layer, n_layers) + [""]
    neighbours = ", ".join(w for w, _ in r["static_neighbours"]) or "-"
    cw = max(len("contextual: closest occurrence"), lw + 7)
    nw = WIDTH - 2 - lw - 2 - 2 - cw
    out.append(f"  {'':<{lw}}  {'static: nearest words (the same list every time)':<{nw}}  "
               "contextual: closest occurrence")
    for i, c in enumerate(r["closest"]):
        out.append(f"  {labels[i]:<{lw}}  {_fit(neighbours, nw):<{nw}}  {labels[c['closest']]:<{lw}} "
                   f"{c['cosine']:6.3f}")
    return out


def _cosine_table(r: dict, labels: List[str], layer: int, n_layers: int) -> List[str]:
    """Cosine between each pair of occurrences: static, then contextual at each layer; with senses, the means
    over same-sense and different-sense pairs."""
    sents = r["sentences"]
    n = len(sents)
    lw = max(len(x) for x in labels)
    pairs = [(i, j) for i in range(n) for j in range(i + 1, n)]
    rows = [(f"{labels[i]:<{lw}} ~ {labels[j]}", [(i, j)]) for i, j in pairs]
    if any(s["sense"] for s in sents):
        for name, same in (("mean, same sense", True), ("mean, different sense", False)):
            group = [(i, j) for i, j in pairs if (sents[i]["sense"] == sents[j]["sense"]) == same]
            if group:
                rows.append((name, group))
    pw = max(len(name) for name, _ in rows)
    columns = _layer_columns(n_layers, WIDTH - pw - 13)
    by_layer, static = np.array(r["cosine_by_layer"]), r["static_cosine"]
    out = [f"  {'cosine':<{pw}}  {'static':>6} | contextual, by layer (0: input embedding; *: used below)",
           f"  {'':<{pw}}  {'':>6} |" + "".join(f"{str(k) + ('*' if k == layer else ''):>6}" for k in columns)]
    for name, group in rows:
        st = "     -" if static is None else f"{np.mean([static[i][j] for i, j in group]):6.3f}"
        values = [np.mean([by_layer[k, i, j] for i, j in group]) for k in columns]
        out.append(f"  {name:<{pw}}  {st} |" + "".join(f"{v:6.3f}" for v in values))
    return out


# ------------------------------------------------------------------------------------------------------------
# Word-in-Context
# ------------------------------------------------------------------------------------------------------------

@dataclass
class WicPairs:
    sentences1: List[str]
    sentences2: List[str]
    spans1: List[Tuple[int, int]]
    spans2: List[Tuple[int, int]]
    labels: np.ndarray  # (N,) bool, True = same sense


def _token_span(sentence: str, index: int, where: str) -> Tuple[int, int]:
    """Character span of the index-th whitespace-separated token (WiC's indices count those)."""
    tokens = [m.span() for m in re.finditer(r"\S+", sentence)]
    if not 0 <= index < len(tokens):
        raise UsageError(f"{where}: token index {index} is out of range; the sentence has {len(tokens)} tokens")
    return tokens[index]


def read_wic(folder: Path, split: str, limit: Optional[int] = None) -> WicPairs:
    """`<split>.data.txt` (word, PoS, index1-index2, sentence1, sentence2; tab-separated) and `<split>.gold.txt`."""
    data, gold = folder / f"{split}.data.txt", folder / f"{split}.gold.txt"
    for path in (data, gold):
        if not path.is_file():
            raise UsageError(f"{path}: no such file (a WiC folder holds <split>.data.txt and <split>.gold.txt)")
    lines = data.read_text(encoding="utf-8").splitlines()[:limit]
    labels = gold.read_text(encoding="utf-8").split()[:limit]
    if len(labels) != len(lines):
        raise UsageError(f"{gold}: {len(labels)} labels for {len(lines)} lines in {data.name}; expected one per line")
    pairs = WicPairs([], [], [], [], np.zeros(len(lines), dtype=bool))
    for n, (line, label) in enumerate(zip(lines, labels), start=1):
        fields = line.split("\t")
        where = f"{data}, line {n}"
        if len(fields) != 5:
            raise UsageError(f"{where}: expected 5 tab-separated fields (word, PoS, index1-index2, sentence1, "
                             f"sentence2), got {len(fields)}")
        indices = re.fullmatch(r"(\d+)-(\d+)", fields[2])
        if indices is None:
            raise UsageError(f"{where}: expected token indices like '2-5', got {fields[2]!r}")
        if label not in ("T", "F"):
            raise UsageError(f"{gold}, label {n}: expected T or F, got {label!r}")
        for sentences, spans, sentence, index in ((pairs.sentences1, pairs.spans1, fields[3], indices[1]),
                                                  (pairs.sentences2, pairs.spans2, fields[4], indices[2])):
            sentences.append(sentence)
            spans.append(_token_span(sentence, int(index), where))
        pairs.labels[n - 1] = label == "T"
    if not lines:
        raise UsageError(f"{data}: no pairs")
    return pairs


def pair_cosines(model: BertModel, tokenizer: Tokenizer, pairs: WicPairs) -> np.ndarray:
    """(N, L + 1): the cosine between the target word's vectors in the two sentences, at every layer."""
    vectors = word_vectors(model, tokenizer, pairs.sentences1 + pairs.sentences2, pairs.spans1 + pairs.spans2,
                           layers="all", batch_size=128)  # (2N, L + 1, H)
    a, b = vectors[:len(pairs.labels)].astype(np.float64), vectors[len(pairs.labels):].astype(np.float64)
    return (a * b).sum(-1) / np.linalg.norm(a, axis=-1) / np.linalg.norm(b, axis=-1)


def best_threshold(cosines: np.ndarray, labels: np.ndarray) -> Tuple[float, float]:
    """The threshold t maximising the accuracy of "same sense iff cosine >= t" on (cosines, labels), and that
    accuracy. Every cut between two distinct sorted cosines is tried, plus "all same" and "all different"."""
    order = np.argsort(cosines, kind="stable")
    c, y = cosines[order], labels[order]
    n = len(c)
    # cut k: the k lowest are called different, the rest same
    correct = np.concatenate([[0], np.cumsum(~y)]) + (y.sum() - np.concatenate([[0], np.cumsum(y)]))
    allowed = np.concatenate([[True], c[1:] > c[:-1], [True]])
    k = int(np.argmax(np.where(allowed, correct, -1)))
    threshold = c[0] if k == 0 else (np.nextafter(c[-1], np.inf) if k == n else (c[k - 1] + c[k]) / 2)
    return float(threshold), float(correct[k] / n)


def accuracy(cosines: np.ndarray, labels: np.ndarray, threshold: float) -> float:
    return float(np.mean((cosines >= threshold) == labels))


def run_wic(folder: Path, split: str, limit: Optional[int], model: BertModel, tokenizer: Tokenizer) -> dict:
    """Accuracy of static and per-layer contextual cosines on `split`, thresholds chosen on train."""
    train = read_wic(folder, "train", limit)
    evaluated = train if split == "train" else read_wic(folder, split, limit)
    train_cos = pair_cosines(model, tokenizer, train)  # (N, L + 1)
    eval_cos = train_cos if split == "train" else pair_cosines(model, tokenizer, evaluated)
    rows = []
    # A static table gives the word one vector: the cosine of its two occurrences is always 1.
    for name, layer, tr, ev in ([("static", None, np.ones(len(train.labels)), np.ones(len(evaluated.labels)))]
                                + [(f"layer {k}", k, train_cos[:, k], eval_cos[:, k])
                                   for k in range(train_cos.shape[1])]):
        threshold, train_acc = best_threshold(tr, train.labels)
        # the threshold unrounded: "all different" sits just above 1.0
        rows.append({"name": name, "layer": layer, "threshold": threshold, "train_accuracy": _r(train_acc),
                     "accuracy": _r(accuracy(ev, evaluated.labels, threshold)),
                     "predicts_one_class": bool(len(set((ev >= threshold).tolist())) == 1)})
    best = max(rows[1:], key=lambda row: row["train_accuracy"])  # chosen on train, never on the evaluated split
    return {"split": split, "pairs": int(len(evaluated.labels)), "train_pairs": int(len(train.labels)),
            "same_sense_share": _r(evaluated.labels.mean()), "rows": rows, "best_layer": best["layer"]}


def render_wic(w: dict, model_name: str) -> List[str]:
    out = [f"Word-in-Context, {w['split']} split: {w['pairs']} pairs; model {model_name}",
           f"each row: 'same sense' iff cosine >= threshold, the threshold chosen on train ({w['train_pairs']} pairs)",
           "",
           f"  {'vectors':<28}{'threshold':>10}{'train acc':>11}{w['split'] + ' acc':>11}"]
    for row in w["rows"]:
        name = "static (cosine always 1)" if row["layer"] is None else f"contextual {row['name']}"
        note = ("   <- best on train" if row["layer"] == w["best_layer"] else
                "   one class only" if row["predicts_one_class"] else "")
        out.append(f"  {name:<28}{row['threshold']:>10.3f}{row['train_accuracy']:>11.1%}{row['accuracy']:>11.1%}"
                   + note)
    best = w["rows"][w["best_layer"] + 1]
    out += ["", f"best layer (chosen on train): {w['best_layer']}, {w['split']} accuracy {best['accuracy']:.1%} "
                f"vs static {w['rows'][0]['accuracy']:.1%}"]
    return out


# ------------------------------------------------------------------------------------------------------------
# The plot
# ------------------------------------------------------------------------------------------------------------

def plot(results: List[dict], layer: int, path: Path) -> None:
    """Per set: each pair's contextual cosine by layer (left), the cosine heatmap at `layer` (right)."""
    try:
        import matplotlib
    except ImportError:
        raise UsageError("--plot needs matplotlib: pip install matplotlib (in a clone of minibert: pip install -e '.[plot]')") from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(results), 2, figsize=(11, 3.6 * len(results)), squeeze=False)
    for (curves, heat), r in zip(axes, results):
        sents = r["sentences"]
        labels = [_label(i, s["sense"]) for i, s in enumerate(sents)]
        by_layer = np.array(r["cosine_by_layer"])  # (L + 1, S, S)
        for i in range(len(sents)):
            for j in range(i + 1, len(sents)):
                same = sents[i]["sense"] == sents[j]["sense"]
                curves.plot(by_layer[:, i, j], marker="o", ms=3, color="tab:blue" if same else "tab:red",
                            alpha=0.8, label="same sense" if same else "different sense")
        curves.axhline(1.0, color="grey", ls="--", lw=1, label="static (always 1)")
        handles = dict(zip(*reversed(curves.get_legend_handles_labels())))
        curves.legend(handles.values(), handles.keys(), fontsize=8)
        curves.set(title=f"'{r['word']}': cosine between occurrences", xlabel="layer (0 = input embedding)",
                   ylabel="cosine")
        image = heat.imshow(np.array(r["contextual_cosine"]), vmin=-1 if by_layer.min() < 0 else 0, vmax=1,
                            cmap="viridis")
        heat.set_xticks(range(len(labels)), labels, rotation=45, ha="right", fontsize=8)
        heat.set_yticks(range(len(labels)), labels, fontsize=8)
        heat.set_title(f"'{r['word']}': contextual cosine, layer {layer}")
        fig.colorbar(image, ax=heat)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=path.parent, prefix=f".{path.stem}-", suffix=path.suffix,
                                     delete=False) as tmp:
        fig.savefig(tmp, format=path.suffix.lstrip(".") or "png", dpi=110)
    os.replace(tmp.name, path)
    plt.close(fig)


# ------------------------------------------------------------------------------------------------------------
# Command line
# ------------------------------------------------------------------------------------------------------------

def parse_args(argv: Optional[Sequence[str]]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="The same word in different sentences: one static vector (GloVe) "
                                "vs contextual vectors (BERT), side by side; and Word-in-Context accuracy.")
    p.add_argument("--word", help="the word to follow (its first whole-word occurrence in each sentence)")
    p.add_argument("--sentence", action="append", default=[], help="a sentence holding --word (give two or more)")
    p.add_argument("--layer", type=int, default=-1, help="contextual layer shown (default: the last; 0 = input "
                   "embedding)")
    p.add_argument("--model", default=DEFAULT_MODEL, help="model folder or Hub id (default: %(default)s)")
    p.add_argument("--glove", help=f"static table: any source glove.load accepts (default: {DEFAULT_GLOVE}, "
                   "else the model's word-piece embeddings); 'none' uses the word pieces directly")
    p.add_argument("--json", action="store_true", help="print the results as JSON instead of text")
    p.add_argument("--plot", type=Path, metavar="FILE.png", help="save per-layer curves and heatmaps (matplotlib)")
    p.add_argument("--wic", type=Path, metavar="DIR", help="evaluate on Word-in-Context data in DIR")
    p.add_argument("--split", default="dev", help="WiC split to evaluate (default: dev; thresholds come from train)")
    p.add_argument("--limit", type=int, help="WiC: use only the first N pairs of each split (a quick check)")
    args = p.parse_args(argv)
    if args.sentence and not args.word:
        p.error("--sentence needs --word")
    if args.word and len(args.sentence) < 2:
        p.error("--word needs at least two --sentence to compare")
    if args.limit is not None and args.limit < 1:
        p.error("--limit must be at least 1")
    return args


def main(argv: Optional[Sequence[str]] = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["explain"]:  # python compare.py explain "The cat chased the mouse." --word cat
        from minibert.explain import main as explain_main
        return explain_main(argv[1:], prog="compare.py explain")
    args = parse_args(argv)
    started = time.perf_counter()
    try:
        model, tokenizer = BertModel.from_pretrained(args.model), Tokenizer.from_pretrained(args.model)
        n_layers = model.config.num_hidden_layers
        if not -(n_layers + 1) <= args.layer <= n_layers:
            raise UsageError(f"--layer {args.layer}: this model has layers 0 (input embedding) to {n_layers}")
        layer = args.layer % (n_layers + 1)
        model_name = Path(str(args.model)).name
        if args.wic is not None:
            w = run_wic(args.wic, args.split, args.limit, model, tokenizer)
            print(json.dumps({"model": str(args.model), **w}, indent=1) if args.json
                  else "\n".join(render_wic(w, model_name)))
        else:
            static = load_static(args.glove, model, tokenizer, model_name)
            sets = ([(args.word, [(s, "") for s in args.sentence])] if args.word else [CLASSIC] + POLYSEMY)
            results = [analyse(word, [s for s, _ in group], [sense for _, sense in group], model, tokenizer,
                               static, layer) for word, group in sets]
            if args.json:
                print(json.dumps({"model": str(args.model), "layers": n_layers, "layer": layer,
                                  "static": {"name": static.name, "wordpieces": static.wordpieces},
                                  "words": results}, indent=1))
            else:
                print(f"{model_name} ({n_layers} layers) vs static {static.name}\n"
                      f"contextual vectors from layer {layer} of {n_layers}; "
                      "layer 0 is the input embedding: no context, only position\n")
                print("\n\n".join("\n".join(render(r, layer, n_layers, static.name)) for r in results))
            if args.plot is not None:
                plot(results, layer, args.plot)
                print(f"compare.py: plot written to {args.plot}", file=sys.stderr)
    except (UsageError, MinibertError, glove.GloVeError) as e:
        print(f"compare.py: error: {e}", file=sys.stderr)
        return 2
    print(f"compare.py: done in {time.perf_counter() - started:.1f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
