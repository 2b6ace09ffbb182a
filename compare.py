"""Static vs contextual word vectors: GloVe gives a word one vector everywhere, BERT one that moves with its sentence.

    python compare.py                                   the classic pair and three polysemous words
    python compare.py --word bank --sentence "..." --sentence "..."
    python compare.py --layer 3 --json                  the same numbers as JSON
    python compare.py --plot compare.png                per-layer curves and similarity heatmaps (matplotlib)
    python compare.py wic WIC_DIR [--split dev]         Word-in-Context accuracy, static vs every layer
                                                        (also: --wic WIC_DIR)
    python compare.py explain SENTENCE... --word W      a word's path through the layers (minibert explain)
    python compare.py fill [--sentence S --sentence S]  the same blank in different sentences: the masked-LM
                                                        head's guesses side by side (needs a model with one)

The static table is GloVe (`--glove`: anything `glove.load` accepts; by default fse/glove-wiki-gigaword-100 from the
Hugging Face cache or the Hub). Without one, the model's own input word-piece embeddings stand in for it;
`--static distilled:DIR` uses the model's own static vectors (a `minibert distill` folder).

Exit status: 0 done; 2 a usage error (an option or its value, e.g. a word missing from its sentence); 1 an input
that cannot be read or used (a file, folder, model or WiC data) or a failed write. Either is one line on stderr.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import textwrap
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, List, Optional, Sequence, Tuple

import numpy as np

import glove
from glove.hub import go_offline_if_unreachable
from minibert import (DEFAULT_MODEL, BertForMaskedLM, BertModel, InputError, MinibertError, StaticEncoder, Tokenizer,
                      fill_mask, word_vectors)
from minibert import wic
from minibert.errors import MissingHeadError
from minibert.io import atomic_output
from minibert.retrieval import unit
from minibert.contextual import WordLocation, find_word, locate

if TYPE_CHECKING:
    from matplotlib.figure import Figure

Array = np.ndarray
DEFAULT_GLOVE = "fse/glove-wiki-gigaword-100"
DISTILLED = "distilled:"  # --static distilled:DIR: a `minibert distill` folder
WIDTH = 100  # the report fits a terminal this wide
HEAD_DIMS = 6  # how many leading dimensions of a vector to show
MAX_SENTENCES = 100  # the report shows every pair: 100 sentences are already 4,950 rows
EXIT_INPUT, EXIT_USAGE = 1, 2
PLOT_HINT = "pip install matplotlib (in a clone of minibert: pip install -e '.[plot]')"

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
WordSet = Tuple[str, List[Tuple[str, str]]]  # (word, [(sentence, sense)])
MASK = "[MASK]"  # the blank in fill's sentences; the model's own mask token (<mask> for RoBERTa) replaces it
FILL_MODEL = "google-bert/bert-base-uncased"  # fill needs a masked-LM head, which MiniLM has not
# Which base each field numbering sentences uses (the text report says S1, S2, ... for sentences[0], [1], ...).
NUMBERING = {"text": "S1 is sentences[0]", "closest.sentence": "0-based index into sentences",
             "closest.closest": "0-based index into sentences", "static_cosine, contextual_cosine, cosine_by_layer":
             "rows and columns are 0-based indices into sentences"}


class UsageError(Exception):
    """A command line that cannot be carried out as given: printed as one line, exit status 2."""


class DataError(Exception):
    """An input named on the command line that cannot be read or used, or a failed write: one line, exit status 1."""


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

    def vector(self, keys: List[str]) -> Array:
        """float32 (D,): the mean of the keys' rows (one row for a whole word)."""
        return self.table[keys].mean(axis=0)


def wordpiece_table(model: BertModel, tokenizer: Tokenizer) -> glove.GloVe:
    """The model's input word-piece embeddings (V, H) as a static table, one row per vocabulary entry."""
    vocab = tokenizer.get_vocab()
    table = model.weights.embeddings.word  # (V, E)
    words = [w for w in sorted(vocab, key=vocab.get) if vocab[w] < len(table)]
    return glove.from_arrays(words, table[[vocab[w] for w in words]])


def distilled_table(folder: str) -> glove.GloVe:
    """A `minibert distill` folder's (V, D) rows as a static table, one row per token of its tokenizer (the
    model's word pieces, so a word's static vector is the mean of its pieces' rows)."""
    encoder = StaticEncoder.from_pretrained(folder)
    vocab = encoder.tokenizer.get_vocab(with_added_tokens=True)
    words = sorted(vocab, key=vocab.get)
    return glove.from_arrays(words, encoder.table[[vocab[w] for w in words]])


def load_static(source: Optional[str], model: BertModel, tokenizer: Tokenizer, model_name: str) -> Static:
    """The GloVe table `source` (None: the default one, falling back to the model's word pieces on failure)."""
    if source is not None and source.lower() == "none":
        return Static(wordpiece_table(model, tokenizer), f"{model_name} input word-piece embeddings", True)
    if source is not None and source.startswith(DISTILLED):
        folder = source[len(DISTILLED):]
        try:
            return Static(distilled_table(folder), f"{model_name} distilled static vectors ({folder})", True)
        except MinibertError as e:
            raise DataError(f"--static {source}: {_first_line(e)}") from None
    name = source or DEFAULT_GLOVE
    offline = None if Path(name).expanduser().exists() else go_offline_if_unreachable()
    try:
        return Static(glove.load(name), name, False)
    except (glove.GloVeError, OSError) as e:
        if source is not None:  # asked for by name: its failure is the answer
            raise DataError(f"--glove {source}: {_first_line(e)}") from None
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

@dataclass(frozen=True)
class Closest:
    """The occurrence whose contextual vector is closest to occurrence `sentence`'s (0-based indices)."""

    sentence: int
    closest: int
    cosine: float

    def to_json(self) -> dict:
        return {"sentence": self.sentence, "closest": self.closest, "cosine": self.cosine}


@dataclass(frozen=True)
class WordReport:
    """All the numbers shown for one word in S sentences.  L layers.

    Every number is rounded to 6 decimals once, here, so that the text, the plot and the JSON show the same ones.
    """

    word: str
    locations: Tuple[WordLocation, ...]  # (S,) where the word sits in each sentence
    senses: Tuple[str, ...]  # (S,) sense labels; "" when not labelled
    layer: int  # the contextual layer shown, 0..L
    static_keys: Tuple[str, ...]  # the static table's entries averaged; () when it has none
    static_head: Optional[Array]  # (HEAD_DIMS,) the static vector's leading dimensions; None without one
    contextual_head: Array  # (S, HEAD_DIMS) the contextual vectors' leading dimensions at `layer`
    static_cosine: Optional[Array]  # (S, S); None without a static vector
    cosine_by_layer: Array  # (L + 1, S, S) contextual cosines; layer 0 is the input embedding
    static_neighbours: Tuple[Tuple[str, float], ...]  # the static vector's nearest table entries
    closest: Tuple[Closest, ...]  # (S,) at `layer`

    @property
    def contextual_cosine(self) -> Array:
        """(S, S) at the layer shown."""
        return self.cosine_by_layer[self.layer]

    @property
    def labels(self) -> List[str]:
        """"S1 river", "S2 river", ...: how the report names each occurrence."""
        return [f"S{i + 1} {sense}".rstrip() for i, sense in enumerate(self.senses)]

    @property
    def pairs(self) -> List[Tuple[int, int]]:
        """Every pair of occurrences (i, j), i < j."""
        n = len(self.senses)
        return [(i, j) for i in range(n) for j in range(i + 1, n)]

    def sense_pairs(self, same: bool) -> List[Tuple[int, int]]:
        """The pairs of the same sense (same=True) or of different senses."""
        return [(i, j) for i, j in self.pairs if (self.senses[i] == self.senses[j]) == same]

    def sense_gap(self, layer: int) -> Optional[float]:
        """Mean contextual cosine of same-sense pairs minus that of different-sense pairs at `layer`; None
        unless the senses are labelled and both kinds of pair exist."""
        groups = [[self.cosine_by_layer[layer, i, j] for i, j in self.sense_pairs(same)] for same in (True, False)]
        return float(np.mean(groups[0]) - np.mean(groups[1])) if any(self.senses) and all(groups) else None

    def mean_by_layer(self) -> List[float]:
        """The mean contextual cosine over all pairs, layer by layer."""
        return [float(np.mean([c[i, j] for i, j in self.pairs])) for c in self.cosine_by_layer]

    def largest_fall(self) -> int:
        """The layer whose mean cosine falls most from the layer before (the first, on a tie)."""
        mean = self.mean_by_layer()
        return max(range(1, len(mean)), key=lambda k: mean[k - 1] - mean[k])

    def to_json(self) -> dict:
        return {
            "word": self.word,
            "sentences": [{"text": w.sentence, "sense": sense, "span": list(w.span), "pieces": list(w.pieces)}
                          for w, sense in zip(self.locations, self.senses)],
            "static_keys": list(self.static_keys),
            "static_head": None if self.static_head is None else self.static_head.tolist(),
            "contextual_head": self.contextual_head.tolist(),
            "static_cosine": None if self.static_cosine is None else self.static_cosine.tolist(),
            "contextual_cosine": self.contextual_cosine.tolist(),
            "cosine_by_layer": self.cosine_by_layer.tolist(),
            "static_neighbours": [[w, c] for w, c in self.static_neighbours],
            "closest": [c.to_json() for c in self.closest],
            "numbering": NUMBERING,
        }


@dataclass(frozen=True)
class Report:
    """The whole comparison: every word's numbers and what produced them."""

    model: str
    layers: int  # L, the model's encoder layers
    layer: int  # the contextual layer shown, 0..L
    static_name: str
    static_wordpieces: bool  # the model's input word-piece table stands in for GloVe
    words: Tuple[WordReport, ...]

    def to_json(self) -> dict:
        return {"model": self.model, "layers": self.layers, "layer": self.layer,
                "static": {"name": self.static_name, "wordpieces": self.static_wordpieces},
                "words": [w.to_json() for w in self.words]}


def cosine_matrix(vectors: Array) -> Array:
    """(..., S, D) -> (..., S, S) cosine similarities, in float64; 0 for a zero vector (as explain's cosine)."""
    v = unit(vectors)
    return v @ np.swapaxes(v, -1, -2)


def closest_occurrences(cosines: Array) -> Tuple[Closest, ...]:
    """For each occurrence, the other one with the highest cosine (the first on ties).  cosines: (S, S), S >= 2"""
    out = []
    for i in range(len(cosines)):
        j = max((j for j in range(len(cosines)) if j != i), key=lambda j: cosines[i, j])
        out.append(Closest(i, j, float(cosines[i, j])))
    return tuple(out)


def analyse(word: str, sentences: Sequence[str], senses: Sequence[str], model: BertModel, tokenizer: Tokenizer,
            static: Static, layer: int, neighbours: int = 5) -> WordReport:
    """All the numbers shown for one word in S >= 2 sentences; `layer` in 0..L."""
    where = locate(tokenizer, sentences, word)
    contextual = word_vectors(model, tokenizer, sentences, word, layers="all")  # (S, L + 1, H)
    by_layer = np.round(cosine_matrix(np.swapaxes(contextual, 0, 1)), 6)  # (L + 1, S, S)
    keys = static.keys(word, tokenizer)
    static_vector = static.vector(keys) if keys else None  # (D,)
    return WordReport(
        word=word, locations=tuple(where), senses=tuple(senses), layer=layer, static_keys=tuple(keys),
        static_head=None if static_vector is None else np.array([_r(x) for x in static_vector[:HEAD_DIMS]]),
        contextual_head=np.array([[_r(x) for x in v[:HEAD_DIMS]] for v in contextual[:, layer]]),
        static_cosine=(None if static_vector is None
                       else np.round(cosine_matrix(np.stack([static_vector] * len(sentences))), 6)),
        cosine_by_layer=by_layer,
        static_neighbours=tuple((w, _r(c)) for w, c in static.table.most_similar(keys, topn=neighbours)) if keys
        else (),
        closest=closest_occurrences(by_layer[layer]))


def _r(x: float) -> float:
    return round(float(x), 6)


# ------------------------------------------------------------------------------------------------------------
# The text report
# ------------------------------------------------------------------------------------------------------------

def _fit(text: str, width: int) -> str:
    return text if len(text) <= width else text[:width - 3] + "..."


def _head(values: Sequence[float]) -> str:
    return " ".join(f"{v:+.3f}" for v in values) + " ..."


def _layer_columns(n_layers: int, room: int) -> List[int]:
    """Which layers fit as 6-character columns in `room` characters: all if they fit, else evenly spaced."""
    fit = max(room // 6, 2)
    if n_layers + 1 <= fit:
        return list(range(n_layers + 1))
    return sorted({round(k * n_layers / (fit - 1)) for k in range(fit)})


def render(r: WordReport, static_name: str) -> List[str]:
    """The text report for one word (lines of at most WIDTH characters)."""
    labels = r.labels
    lw = max(len(x) for x in labels)
    out = [f"== {r.word} " + "=" * (WIDTH - len(r.word) - 4)]
    texts = [w.sentence for w in r.locations]
    sw = min(max(len(s) for s in texts), WIDTH - lw - 24)
    for lab, s, w in zip(labels, texts, r.locations):
        out.append(_fit(f"  {lab:<{lw}}  {_fit(s, sw):<{sw}}  pieces: {' '.join(w.pieces)}", WIDTH))
    out.append("")
    if r.static_head is None:
        out.append(_fit(f"  static vector: {r.word!r} is not in {static_name}; no static vector", WIDTH))
    else:
        out.append(f"  static vector, the same in every sentence:  {_head(r.static_head)}")
    out.append(f"  contextual vector at layer {r.layer}, one per sentence:")
    for lab, head in zip(labels, r.contextual_head):
        out.append(f"    {lab:<{lw}}  {_head(head)}")
    out += [""] + _cosine_table(r) + [""]
    neighbours = ", ".join(w for w, _ in r.static_neighbours) or "-"
    cw = max(len("contextual: closest occurrence"), lw + 7)
    nw = WIDTH - 2 - lw - 2 - 2 - cw
    out.append(f"  {'':<{lw}}  {'static: nearest words (the same list every time)':<{nw}}  "
               "contextual: closest occurrence")
    for c in r.closest:
        out.append(f"  {labels[c.sentence]:<{lw}}  {_fit(neighbours, nw):<{nw}}  {labels[c.closest]:<{lw}} "
                   f"{c.cosine:6.3f}")
    return out + [""] + notices(r)


def _cosine_table(r: WordReport) -> List[str]:
    """Cosine between each pair of occurrences: static, then contextual at each layer; with senses, the means
    over same-sense and different-sense pairs."""
    labels, senses = r.labels, r.senses
    n_layers = len(r.cosine_by_layer) - 1
    lw = max(len(x) for x in labels)
    rows = [(f"{labels[i]:<{lw}} ~ {labels[j]}", [(i, j)]) for i, j in r.pairs]
    if any(senses):
        for name, same in (("mean, same sense", True), ("mean, different sense", False)):
            group = r.sense_pairs(same)
            if group:
                rows.append((name, group))
    pw = max(len(name) for name, _ in rows)
    columns = _layer_columns(n_layers, WIDTH - pw - 13)
    out = [f"  {'cosine':<{pw}}  {'static':>6} | contextual, by layer (0: input embedding; *: used below)",
           f"  {'':<{pw}}  {'':>6} |" + "".join(f"{str(k) + ('*' if k == r.layer else ''):>6}" for k in columns)]
    for name, group in rows:
        st = "     -" if r.static_cosine is None else f"{np.mean([r.static_cosine[i, j] for i, j in group]):6.3f}"
        values = [np.mean([r.cosine_by_layer[k, i, j] for i, j in group]) for k in columns]
        out.append(f"  {name:<{pw}}  {st} |" + "".join(f"{v:6.3f}" for v in values))
    return out


def render_report(report: Report) -> List[str]:
    """The whole text report: a heading, then one section per word."""
    name = Path(report.model).name
    lines = [f"{name} ({report.layers} layers) vs static {report.static_name}",
             f"contextual vectors from layer {report.layer} of {report.layers}"] + _legend(report) + [""]
    for k, r in enumerate(report.words):
        lines += ([""] if k else []) + render(r, report.static_name)
    return lines


def _legend(report: Report) -> List[str]:
    """What the report's terms mean, each said once, before it is needed."""
    same, moved = [], []  # layer-0 cosines of occurrences at the same / at different token positions
    for r in report.words:
        for i in range(len(r.locations)):
            for j in range(i + 1, len(r.locations)):
                (same if r.locations[i].tokens == r.locations[j].tokens else moved).append(r.cosine_by_layer[0, i, j])
    layer0 = "layer 0 = the input embedding (word piece + position + segment), before any attention: no context yet"
    if same:
        layer0 += "; the same word at the same position scores 1.000 there"
    if moved:
        layer0 += (f"{',' if same else ';'} at two positions {min(moved):.2f}-{max(moved):.2f} (only the position "
                   "differs)")
    out = [layer0]
    if report.static_wordpieces:
        out.append("static = the model's input word-piece table in place of GloVe: the word's row, before position "
                   "and context")
    texts = [p for r in report.words for p in (*(x for w in r.locations for x in w.pieces),
                                               *(n for n, _ in r.static_neighbours))]
    if any(t.startswith("##") for t in texts):
        out.append("##x = a word piece that continues a word (the tokenizer cuts a word it lacks into pieces)")
    return [line for text in out for line in _wrap(text, "", "  ")]


def _wrap(text: str, first: str, rest: str) -> List[str]:
    """`text` in lines of at most WIDTH characters, the first indented by `first`, the others by `rest`."""
    return textwrap.wrap(text, WIDTH, initial_indent=first, subsequent_indent=rest, break_on_hyphens=False)


def notices(r: WordReport) -> List[str]:
    """"What to notice" for one word, read off its numbers: with senses, the occurrences whose closest one has
    another sense and the gap between same- and different-sense means; without, where the cosines fall most."""
    labels, cos, n, pairs = [f"S{i + 1}" for i in range(len(r.senses))], r.cosine_by_layer, len(r.senses), r.pairs
    out = []
    if any(r.senses):
        for c in r.closest:
            if r.senses[c.closest] != r.senses[c.sentence]:
                same = [j for j in range(n) if j != c.sentence and r.senses[j] == r.senses[c.sentence]]
                best = max(same, key=lambda j: cos[r.layer, c.sentence, j]) if same else None
                out.append(f"closest occurrence of {labels[c.sentence]} is {labels[c.closest]} (other sense) at "
                           f"{c.cosine:.3f}" + (f", above its same-sense {labels[best]} "
                                                f"({cos[r.layer, c.sentence, best]:.3f})" if best is not None else ""))
        gaps = [r.sense_gap(k) for k in range(len(cos))]
        if gaps[r.layer] is not None:
            best = max(range(len(gaps)), key=lambda k: gaps[k])
            out.append(f"same-sense pairs are {gaps[r.layer]:.3f} more alike than different-sense ones at layer "
                       f"{r.layer}; the gap is widest at layer {best} ({gaps[best]:.3f})")
        if not out[:-1]:
            out.insert(0, "every occurrence is closest to one of the same sense")
    else:
        mean, drop = r.mean_by_layer(), r.largest_fall()
        out.append(f"{'mean ' if n > 2 else ''}cosine {mean[0]:.3f} at layer 0, {mean[r.layer]:.3f} at layer "
                   f"{r.layer}; the largest fall is in layer {drop} ({mean[drop - 1]:.3f} to {mean[drop]:.3f})")
        if n > 2:
            near, far = (f(pairs, key=lambda p: cos[r.layer, p[0], p[1]]) for f in (max, min))
            out.append(f"most alike: {labels[near[0]]} ~ {labels[near[1]]} ({cos[r.layer][near]:.3f}); least "
                       f"alike: {labels[far[0]]} ~ {labels[far[1]]} ({cos[r.layer][far]:.3f})")
    return [wrapped for line in out for wrapped in _wrap(line + ".", "  notice: ", " " * 10)]


def render_wic(w: wic.WicResult, model_name: str) -> List[str]:
    """The Word-in-Context table: one row per classifier, the best layer chosen on train marked."""
    out = [f"Word-in-Context, {w.split} split: {w.pairs} pairs; model {model_name}",
           f"each row: 'same sense' iff cosine >= threshold, the threshold chosen on train ({w.train_pairs} pairs)",
           "",
           f"  {'vectors':<28}{'threshold':>10}{'train acc':>11}{w.split + ' acc':>11}"]
    for row in w.rows:
        name = "static (cosine always 1)" if row.layer is None else f"contextual {row.name}"
        note = ("   <- best on train" if row.layer == w.best_layer else
                "   one class only" if row.predicts_one_class else "")
        out.append(f"  {name:<28}{row.threshold:>10.3f}{row.train_accuracy:>11.1%}{row.accuracy:>11.1%}" + note)
    out += ["", f"best layer (chosen on train): {w.best_layer}, {w.split} accuracy {w.best.accuracy:.1%} "
                f"vs static {w.static.accuracy:.1%}"]
    return out


# ------------------------------------------------------------------------------------------------------------
# The plot
# ------------------------------------------------------------------------------------------------------------

def plot_formats() -> List[str]:
    """The file extensions matplotlib's Agg canvas can write (without the dot); UsageError without matplotlib."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
    except ImportError:
        raise UsageError(f"--plot needs matplotlib: {PLOT_HINT}") from None
    return sorted(FigureCanvasAgg.get_supported_filetypes())


def check_plot_path(path: Path) -> None:
    """Refuse, before any work, a --plot target that cannot be written: no matplotlib, an extension matplotlib
    cannot write, a folder or other non-regular file, or a parent that is a file."""
    formats = plot_formats()
    if path.is_dir():
        raise UsageError(f"--plot {path}: is a folder; expected an image file name such as compare.png")
    if path.exists() and not path.is_file():
        raise UsageError(f"--plot {path}: is not a regular file; expected an image file name such as compare.png")
    if path.suffix.lower().lstrip(".") not in formats:
        raise UsageError(f"--plot {path}: cannot write {path.suffix or 'a file without an extension'}; expected "
                         f"one of {', '.join('.' + f for f in formats)}")
    parent = next(p for p in path.absolute().parents if p.exists())  # the root exists: always found
    if not parent.is_dir():
        raise UsageError(f"--plot {path}: {parent} is a file, not a folder")


def figure(report: Report) -> Figure:
    """Per word: each pair's contextual cosine by layer (left; every word on the same y range), and the cosine
    heatmap at the layer shown (right; colours fitted to the data, values in the cells, each row's closest
    occurrence boxed)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(report.words), 2, figsize=(11, 3.6 * len(report.words)), squeeze=False,
                             gridspec_kw={"width_ratios": [1.25, 1]})
    low = min(float(r.cosine_by_layer.min()) for r in report.words)
    bottom = np.floor((low - 0.01) * 20) / 20  # the same y range for every word, on a 0.05 grid
    for (curves, heat), r in zip(axes, report.words):
        _curves(curves, r, bottom)
        _heatmap(fig, heat, r, report.layer)
    fig.tight_layout()
    return fig


def _curves(ax, r: WordReport, bottom: float) -> None:
    """Each pair of occurrences' contextual cosine by layer, same-sense pairs blue, the others red."""
    labels, by_layer = r.labels, r.cosine_by_layer  # (L + 1, S, S)
    for i in range(len(labels)):
        for j in range(i + 1, len(labels)):
            same = r.senses[i] == r.senses[j]
            ax.plot(by_layer[:, i, j], marker="o", ms=3, color="tab:blue" if same else "tab:red", alpha=0.8,
                    label=("same sense" if same else "different sense") if any(r.senses) else "a pair of occurrences")
    ax.axhline(1.0, color="grey", ls="--", lw=1, label="static (always 1)")
    handles = dict(zip(*reversed(ax.get_legend_handles_labels())))
    ax.legend(handles.values(), handles.keys(), fontsize=8, loc="lower left")
    ax.set(title=_curves_title(r), xlabel="layer (0 = input embedding)", ylabel="cosine between occurrences",
           ylim=(bottom, 1.01), xticks=range(len(by_layer)))
    ax.title.set_fontsize(10)


def _curves_title(r: WordReport) -> str:
    """What the curves show, in numbers: the same/other-sense gap, or where the cosine falls most."""
    gap = r.sense_gap(r.layer)
    if gap is not None:
        return (f"'{r.word}': same-sense pairs (blue) {'closer' if gap > 0 else 'farther'} than others (red)\n"
                f"by {abs(gap):.3f} on average at layer {r.layer}; static: 1 for all")
    return (f"'{r.word}': cosine between occurrences by layer\nfalls most in layer {r.largest_fall()}; static: 1 "
            "for all")


def _heatmap(fig, ax, r: WordReport, layer: int) -> None:
    """The contextual cosines at `layer` between different occurrences (the diagonal, always 1, greyed), colours
    fitted to them, values printed, each row's closest occurrence boxed."""
    from matplotlib.patches import Rectangle

    labels, cos = r.labels, r.contextual_cosine
    off = ~np.eye(len(cos), dtype=bool)
    low, high = float(cos[off].min()), float(cos[off].max())
    low, high = (low, high) if high - low > 1e-3 else (low - 0.05, high + 0.05)  # two occurrences: one value
    image = ax.imshow(np.where(off, cos, np.nan), vmin=low, vmax=high, cmap="viridis")
    ax.imshow(np.where(off, np.nan, 1.0), vmin=0, vmax=1, cmap="Greys", alpha=0.25)
    for i, j in zip(*np.nonzero(off)):
        dark = (cos[i, j] - low) / (high - low) < 0.6  # white text on the dark end of viridis
        ax.text(j, i, f"{cos[i, j]:.2f}", ha="center", va="center", fontsize=7 if len(cos) > 6 else 8,
                color="white" if dark else "black")
    for c in r.closest:
        ax.add_patch(Rectangle((c.closest - 0.5, c.sentence - 0.5), 1, 1, fill=False, edgecolor="crimson", lw=2))
    ax.set_xticks(range(len(labels)), labels, rotation=45, ha="right", fontsize=8)
    ax.set_yticks(range(len(labels)), labels, fontsize=8)
    ax.set_title(f"'{r.word}' at layer {layer}: cosine between occurrences\nboxed: each row's closest occurrence",
                 fontsize=10)
    fig.colorbar(image, ax=ax, label="cosine (colours span these values)")


def _write_figure(fig: Figure, path: Path) -> None:
    """Save `fig` to `path` (format from its extension) through minibert's one atomic output: complete or not
    there, never over a folder or device, permissions from the umask. A missing folder is made, as before."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_output(path, option="--plot") as f:
        fig.savefig(f, format=path.suffix.lower().lstrip("."), dpi=110)


def plot(report: Report, path: Path) -> None:
    """Draw the report's curves and heatmaps into `path` (checked beforehand by check_plot_path)."""
    import matplotlib.pyplot as plt

    fig = figure(report)
    try:
        _write_figure(fig, path)
    except OSError as e:
        raise DataError(f"--plot {path}: cannot be written ({e.strerror or e})") from None
    finally:
        plt.close(fig)


# ------------------------------------------------------------------------------------------------------------
# fill: the same blank in different sentences, filled by the model's masked-LM head
# ------------------------------------------------------------------------------------------------------------

def masked(sentence: str, word: str) -> str:
    """The sentence with its first whole-word `word` replaced by MASK."""
    start, end = find_word(sentence, word)
    return sentence[:start] + MASK + sentence[end:]


def fill_groups() -> List[Tuple[str, List[str]]]:
    """The default (label, sentences): the classic pair's verb blanked, then each polysemous word blanked in the
    first sentence of each of its senses."""
    groups = [("the cat's verb", ["The cat [MASK] on the mat.", "The cat [MASK] the mouse."])]
    for word, sentences in POLYSEMY:
        first = {sense: s for s, sense in reversed(sentences)}  # sense -> its first sentence
        groups.append((word, [masked(s, word) for s, sense in sentences if first[sense] == s]))
    return groups


def with_mask_token(sentence: str, tokenizer: Tokenizer, name: str) -> str:
    """The sentence with MASK written as the tokenizer's own mask token; UsageError unless it then holds exactly
    one (the model's own token may be written directly)."""
    text = sentence.replace(MASK, tokenizer.mask_token)
    count = text.count(tokenizer.mask_token)
    if count != 1:
        own = f" (or the model's own {tokenizer.mask_token})" if tokenizer.mask_token != MASK else ""
        raise UsageError(f"{name} {sentence!r} holds {count} mask tokens; expected one blank, written {MASK}{own}")
    return text


def shared_guesses(guesses: Sequence[Sequence[dict]]) -> List[str]:
    """The guesses in every sentence's top k, in the first sentence's order."""
    sets = [{g["token"] for g in row} for row in guesses]
    return [g["token_str"] for g in guesses[0] if all(g["token"] in s for s in sets)]


def notice(shared: Sequence[str], top_k: int, n_sentences: int) -> str:
    """The one line on what the table shows."""
    every = "both sentences" if n_sentences == 2 else f"all {n_sentences} sentences"
    if len(shared) == top_k:
        return (f"what to notice: the same {top_k} guesses in {every}; here the context changed only their "
                "probabilities")
    common = f" ({', '.join(shared)})" if shared else ""
    return (f"what to notice: {len(shared)} of the top {top_k} guesses in {every}{common}; the same blank, "
            "filled from different context")


def render_fill(groups: Sequence[dict], model_name: str, top_k: int) -> List[str]:
    """The fill report: per group its sentences, their guesses side by side, and what to notice."""
    out = [f"fill-mask with {model_name}: the top {top_k} guesses for the blank, from each sentence's context"]
    for g in groups:
        n = len(g["sentences"])
        out += ["", f"== {g['label']} " + "=" * max(WIDTH - len(g["label"]) - 4, 0)]
        out += [_fit(f"  S{i}  {row['sentence']}", WIDTH) for i, row in enumerate(g["sentences"], 1)]
        column = min(30, max(16, (WIDTH - 6) // n))
        out.append("     " + "".join(f"{'S' + str(i):<{column}}" for i in range(1, n + 1)).rstrip())
        for rank in range(top_k):
            cells = [row["guesses"][rank] for row in g["sentences"] if rank < len(row["guesses"])]
            out.append(f"  {rank + 1:>2} " + "".join(
                f"{_fit(c['token_str'].strip() or repr(c['token_str']), column - 8):<{column - 8}} {c['score']:.3f}  "
                for c in cells).rstrip())
        out += _wrap(notice(g["shared"], min(top_k, len(g["sentences"][0]["guesses"])), n), "  ", "    ")
    out += ["", "each column: the masked-LM head's likeliest tokens for the blank and their probabilities (softmax "
                "over the", "  vocabulary); the model's own training task, read at the last layer"]
    return out


def run_fill(sentences: Sequence[str], model_path: str, top_k: int, as_json: bool) -> None:
    """Load the model with its masked-LM head, fill each group's blanks and print the report (or JSON)."""
    try:
        model = BertForMaskedLM.from_pretrained(model_path)
    except MissingHeadError as e:
        raise DataError(f"{e}. fill needs a model with that head, e.g. {FILL_MODEL}") from None
    tokenizer = Tokenizer.from_pretrained(model_path)
    if tokenizer.mask_token_id is None:
        raise DataError(f"{model_path}: its tokenizer has no mask token; fill needs one, e.g. {FILL_MODEL}'s")
    given = [("your sentences", list(sentences))] if sentences else fill_groups()
    groups = []
    for label, texts in given:
        texts = [with_mask_token(s, tokenizer, f"--sentence {i}" if sentences else "sentence")
                 for i, s in enumerate(texts, 1)]
        warn_truncated(tokenizer, texts, [f"--sentence {i}" for i in range(1, len(texts) + 1)])
        guesses = fill_mask(model, tokenizer, texts, top_k=top_k)
        groups.append({"label": label, "sentences": [{"sentence": t, "guesses": g} for t, g in zip(texts, guesses)],
                       "shared": shared_guesses(guesses)})
    print(json.dumps({"model": str(model_path), "top_k": top_k, "mask_token": tokenizer.mask_token,
                      "groups": groups}, ensure_ascii=False, indent=1) if as_json
          else "\n".join(render_fill(groups, Path(str(model_path)).name, top_k)))


# ------------------------------------------------------------------------------------------------------------
# Checking the command line's words and sentences
# ------------------------------------------------------------------------------------------------------------

def word_sets(word: Optional[str], sentences: Sequence[str]) -> List[WordSet]:
    """The word sets to report: the user's one, or the classic pair and the polysemous words."""
    return [(word.strip(), [(s, "") for s in sentences])] if word is not None else [CLASSIC] + POLYSEMY


def check_word_sets(sets: Sequence[WordSet], tokenizer: Tokenizer) -> None:
    """UsageError unless each set's word has word pieces in each of its sentences."""
    for word, group in sets:
        try:
            locate(tokenizer, [s for s, _ in group], word)
        except InputError as e:
            raise UsageError(str(e)) from None


def long_sentences(tokenizer: Tokenizer, sentences: Sequence[str]) -> List[Tuple[int, int]]:
    """(index, tokens) of each sentence longer than the model reads (special tokens counted)."""
    if not sentences:
        return []
    batch = tokenizer(list(sentences), truncation=False)
    counts = [len(e.ids) for e in batch.encodings]
    return [(i, n) for i, n in enumerate(counts) if n > tokenizer.model_max_length]


def warn_truncated(tokenizer: Tokenizer, sentences: Sequence[str], names: Sequence[str]) -> None:
    """One line on stderr per sentence that the model reads only in part; names[i] says which sentence it is."""
    for i, n in long_sentences(tokenizer, sentences):
        print(f"compare.py: {names[i]} is {n:,} tokens long; the model reads only the first "
              f"{tokenizer.model_max_length} ([CLS] and [SEP] included): the rest is cut", file=sys.stderr)


def resolve_layer(layer: int, n_layers: int) -> int:
    """--layer as an index 0..L: negative counts from the end as in Python (-1 = the last)."""
    if not -(n_layers + 1) <= layer <= n_layers:
        raise UsageError(f"--layer {layer}: this model has layers 0 (input embedding) to {n_layers}, or "
                         f"{-(n_layers + 1)} to -1 counting from the end (-1 = the last)")
    return layer % (n_layers + 1)


# ------------------------------------------------------------------------------------------------------------
# Command line
# ------------------------------------------------------------------------------------------------------------

class _Parser(argparse.ArgumentParser):
    """argparse with one-line usage errors, and sub-commands that hand every argument after their name, unparsed
    and in order, to the command they stand for (nargs=REMAINDER cannot take a leading option such as --help)."""

    def __init__(self, *args, pass_through: bool = False, **kwargs):
        super().__init__(*args, **kwargs)
        self.pass_through = pass_through

    def error(self, message: str):  # type: ignore[override]
        """A usage error: one line (no usage block; --help has it), exit status 2."""
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")

    def parse_known_args(self, args=None, namespace=None):  # type: ignore[override]
        if not self.pass_through:
            return super().parse_known_args(args, namespace)
        namespace = argparse.Namespace() if namespace is None else namespace
        namespace.rest = list(args or ())
        return namespace, []


USAGE = """
  %(prog)s [--word W --sentence S --sentence S ...] [--layer N] [--model M] [--glove SRC] [--json] [--plot FILE.png]
  %(prog)s wic DIR [--split NAME] [--limit N] [--model M] [--json]      (the same: %(prog)s --wic DIR ...)
  %(prog)s explain SENTENCE... --word W ...                             (%(prog)s explain --help)
  %(prog)s fill [--sentence S --sentence S ...] [--top-k K] [--model M] [--json]"""
EPILOG = ("exit status: 0 done; 2 a usage error (an option or its value: a word missing from a sentence, a layer "
          "the model does not have, a --plot file that cannot be written...); 1 an input that cannot be read or "
          "used (a --glove table, a model, WiC data) or a failed write. Errors are one line on stderr.")

FILL_EPILOG = ("exit status: 0 done; 2 a usage error (a sentence without exactly one blank, fewer than 2 sentences, "
               "--top-k below 1); 1 a model that cannot be loaded or has no masked-LM head. Errors are one line on "
               "stderr.")


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="compare.py", usage=USAGE, epilog=EPILOG,
                description="The same word in different sentences: one static vector (GloVe) vs contextual "
                            "vectors (BERT), side by side; and Word-in-Context accuracy.")
    p.add_argument("--word", help="the word to follow (its first whole-word occurrence in each sentence)")
    p.add_argument("--sentence", action="append", default=[],
                   help=f"a sentence holding --word (give 2 to {MAX_SENTENCES}); longer than the model reads "
                        "(512 tokens for MiniLM), it is cut, with a note on stderr")
    p.add_argument("--layer", type=int, help="contextual layer shown: 0 = input embedding, 1..L the encoder "
                   "layers; negative counts from the end as in Python (default -1, the last); valid: -(L+1) to L")
    p.add_argument("--model", help=f"model folder or Hub id (default: {DEFAULT_MODEL})")
    p.add_argument("--glove", "--static", dest="glove",
                   help=f"static table: any source glove.load accepts (default: {DEFAULT_GLOVE}, else the model's "
                   "word-piece embeddings); 'none' uses the word pieces directly; 'distilled:DIR' the model's own "
                   "static vectors from `minibert distill` (with the same model)")
    p.add_argument("--json", action="store_true", help="print the results as JSON instead of text")
    p.add_argument("--plot", type=Path, metavar="FILE.png", help="save per-layer curves and heatmaps (matplotlib; "
                   "the extension picks the format: .png, .pdf, .svg, ...)")
    p.add_argument("--wic", type=Path, metavar="DIR", help="the same as the wic command: compare.py wic DIR")
    p.add_argument("--split", help="with --wic: the split to evaluate (default: dev)")
    p.add_argument("--limit", type=int, help="with --wic: use only the first N pairs of each split")
    commands = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser, prog=p.prog,
                                title="commands (without one: the word report above)")
    w = commands.add_parser("wic", help="Word-in-Context accuracy, static vs every layer",
                            description="Word-in-Context accuracy of the static table and of every layer's "
                                        "contextual vectors: a pair is 'same sense' iff the cosine of the word's "
                                        "two vectors is >= a threshold; thresholds and best layer chosen on train.",
                            epilog=EPILOG)
    w.add_argument("folder", type=Path, metavar="DIR", help="a WiC folder: <split>.data.txt and <split>.gold.txt "
                   "for train and the evaluated split, side by side or each in <split>/")
    w.add_argument("--split", default=argparse.SUPPRESS,
                   help="split to evaluate, by name (default: dev; train for thresholds; its gold file is needed)")
    w.add_argument("--limit", type=int, default=argparse.SUPPRESS,
                   help="use only the first N pairs of each split (a quick check)")
    w.add_argument("--model", default=argparse.SUPPRESS, help=f"model folder or Hub id (default: {DEFAULT_MODEL})")
    w.add_argument("--json", action="store_true", default=argparse.SUPPRESS, help="print the results as JSON")
    f = commands.add_parser("fill", help="the same blank in different sentences: the masked-LM head's guesses",
                            description="Mask the same word (or blank) in two or more sentences and show the "
                                        "model's top guesses for each side by side: its own training task, "
                                        "answered from each sentence's context. Needs a model with a masked-LM "
                                        f"head (default {FILL_MODEL}).", epilog=FILL_EPILOG)
    f.add_argument("--sentence", action="append", dest="fill_sentences", default=[], metavar="S",
                   help=f"a sentence with one blank written {MASK} (the model's own mask token replaces it; "
                        f"give 2 to {MAX_SENTENCES}; default: the demo's sentences, their word blanked)")
    f.add_argument("--top-k", type=int, default=5, metavar="K", help="guesses per sentence (default 5)")
    f.add_argument("--model", default=argparse.SUPPRESS,
                   help=f"model folder or Hub id with a masked-LM head (default: {FILL_MODEL})")
    f.add_argument("--json", action="store_true", default=argparse.SUPPRESS, help="print the results as JSON")
    commands.add_parser("explain", pass_through=True, add_help=False, help="a word's path through the layers "
                        "(minibert explain; compare.py explain --help for its options)")
    return p


REPORT_OPTIONS = ("word", "sentence", "layer", "glove", "plot")  # the word report's own options


def _given(args: argparse.Namespace, names: Sequence[str]) -> List[str]:
    """The options among `names` that the command line set (all default to None, [] or False)."""
    return [f"--{name}" for name in names if getattr(args, name) not in (None, [], False)]


def _not_text(value: str) -> Optional[str]:
    """Why a command-line value is not text, or None: Python keeps the bytes of an argument that is not UTF-8 as
    lone surrogates, which no tokenizer or terminal takes."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as e:
        return f"byte 0x{ord(value[e.start]) - 0xDC00:02x} at character {e.start + 1} is not UTF-8"
    return None


def check_args(p: argparse.ArgumentParser, args: argparse.Namespace) -> argparse.Namespace:
    """Every check that needs no model, so that a bad command line fails at once (argparse: status 2)."""
    if args.command == "explain":
        given = _given(args, REPORT_OPTIONS + ("model", "json", "wic", "split", "limit"))
        if given:
            p.error(f"{', '.join(given)}: give explain's options after it: compare.py explain SENTENCE... --word W")
        return args
    if args.command == "fill":
        given = _given(args, REPORT_OPTIONS + ("wic", "split", "limit"))
        if given:
            p.error(f"{', '.join(given)}: not used by fill: compare.py fill --sentence S --sentence S ...")
        for i, s in enumerate(args.fill_sentences, 1):
            why = _not_text(s) or ("it is empty" if not s.strip() else None)
            if why:
                p.error(f"--sentence {i}: {why}; expected UTF-8 text with one blank, {MASK}")
        if not 2 <= len(args.fill_sentences) <= MAX_SENTENCES and args.fill_sentences:
            p.error(f"{len(args.fill_sentences)} --sentence: expected 2 to {MAX_SENTENCES}, to compare their guesses")
        if args.top_k < 1:
            p.error(f"--top-k {args.top_k}: expected 1 or more")
        return args
    if args.command == "wic" and args.wic is not None:
        p.error("give the WiC folder once: compare.py wic DIR (or the older --wic DIR)")
    if args.command == "wic" or args.wic is not None:
        given = _given(args, REPORT_OPTIONS)
        if given:
            p.error(f"{', '.join(given)}: not used by wic, which measures the static table and every layer")
        if args.limit is not None and args.limit < 1:
            p.error(f"--limit {args.limit}: expected at least 1")
        if args.split is not None and not wic.SPLIT_NAME.fullmatch(args.split):
            p.error(f"--split {args.split!r}: expected a split's name such as dev or test (letters, digits, _ . -)")
        return args
    if args.split is not None or args.limit is not None:
        p.error("--split and --limit go with wic: compare.py wic DIR --split dev --limit 100")
    for name, value in [("--word", args.word)] + [(f"--sentence {i}", s) for i, s in enumerate(args.sentence, 1)]:
        why = _not_text(value or "")
        if why:
            p.error(f"{name}: {why}; expected UTF-8 text")
    if args.sentence and args.word is None:
        p.error("--sentence needs --word")
    if args.word is not None and not args.word.strip():
        p.error("--word is empty; expected a word that occurs in every --sentence")
    if args.word is not None and len(args.sentence) < 2:
        p.error("--word needs at least two --sentence to compare")
    if len(args.sentence) > MAX_SENTENCES:
        p.error(f"{len(args.sentence)} sentences: at most {MAX_SENTENCES} (the report shows every pair)")
    empty = [str(i) for i, s in enumerate(args.sentence, 1) if not s.strip()]
    if empty:
        p.error(f"--sentence {', '.join(empty)} (counting from 1) is empty; expected a sentence holding the word")
    return args


def parse_args(argv: Optional[Sequence[str]]) -> argparse.Namespace:
    p = build_parser()
    args = check_args(p, p.parse_args(argv))
    if args.plot is not None:
        try:
            check_plot_path(args.plot)
        except UsageError as e:
            p.error(str(e))
    return args


def run_wic(folder: Path, split: str, limit: Optional[int], model_path: str, as_json: bool) -> None:
    """Read and check both WiC splits, then load the model and score every layer."""
    train, evaluated = wic.read_splits(folder, split, limit)
    model, tokenizer = BertModel.from_pretrained(model_path), Tokenizer.from_pretrained(model_path)
    for pairs in [train] if evaluated is train else [train, evaluated]:
        warn_truncated(tokenizer, pairs.sentences1 + pairs.sentences2,
                       [f"{pairs.source}:{line} sentence {k}" for k in (1, 2) for line in pairs.lines])
    result = wic.evaluate(model, tokenizer, train, evaluated)
    print(json.dumps({"model": str(model_path), **result.to_json()}, indent=1) if as_json
          else "\n".join(render_wic(result, Path(str(model_path)).name)))


def run_report(args: argparse.Namespace) -> None:
    """The word report: check the words against the tokenizer and the layer against the model, then measure."""
    model_path = args.model or DEFAULT_MODEL
    model, tokenizer = BertModel.from_pretrained(model_path), Tokenizer.from_pretrained(model_path)
    n_layers = model.config.num_hidden_layers
    layer = resolve_layer(-1 if args.layer is None else args.layer, n_layers)
    sets = word_sets(args.word, args.sentence)
    check_word_sets(sets, tokenizer)
    warn_truncated(tokenizer, args.sentence, [f"--sentence {i}" for i in range(1, len(args.sentence) + 1)])
    model_name = Path(model_path).name
    static = load_static(args.glove, model, tokenizer, model_name)
    words = tuple(analyse(word, [s for s, _ in group], [sense for _, sense in group], model, tokenizer, static,
                          layer) for word, group in sets)
    report = Report(model_path, n_layers, layer, static.name, static.wordpieces, words)
    print(json.dumps(report.to_json(), indent=1) if args.json else "\n".join(render_report(report)))
    if args.plot is not None:
        plot(report, args.plot)
        print(f"compare.py: plot written to {args.plot}", file=sys.stderr)


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parse_args(argv)
    if args.command == "explain":  # python compare.py explain "The cat chased the mouse." --word cat
        from minibert.cli import run_command
        return run_command("explain", args.rest, prog="compare.py explain")
    from minibert.cli import environment_warnings_as_lines
    started = time.perf_counter()
    try:
        with environment_warnings_as_lines("compare.py"):  # a KernelWarning as one line, like the commands'
            if args.command == "fill":
                run_fill(args.fill_sentences, args.model or FILL_MODEL, args.top_k, args.json)
            elif args.command == "wic" or args.wic is not None:
                run_wic(args.folder if args.command == "wic" else args.wic, args.split or "dev", args.limit,
                        args.model or DEFAULT_MODEL, args.json)
            else:
                run_report(args)
    except UsageError as e:
        print(f"compare.py: error: {e}", file=sys.stderr)
        return EXIT_USAGE
    except (DataError, MinibertError, glove.GloVeError) as e:
        print(f"compare.py: error: {e}", file=sys.stderr)
        return EXIT_INPUT
    print(f"compare.py: done in {time.perf_counter() - started:.1f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BrokenPipeError:  # the reader left early (compare.py | head): nothing more to say, and nowhere to
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # say it; no second error at exit
        sys.exit(EXIT_INPUT)
