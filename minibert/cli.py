"""The `minibert` command line: every command's arguments, in one place.

    minibert encode --model M [--input FILE|-] --output OUT.npy [--batch-size 32] [--normalize]
                    [--prompt-name NAME | --prompt TEXT] [--precision P] [--truncate-dim N]
    minibert info M
    minibert encode-corpus --model M --output DIR INPUTS... [--scheduler ADDRESS]   (minibert.distributed; needs dask)
    minibert explain SENTENCE... [--word W] [--json] [--plot FILE.png]              (minibert.explain)
    minibert fill "The cat [MASK] on the mat." --model M [--top-k 5] [--json]       (minibert.tasks)
    minibert classify TEXTS --model M [--json]
    minibert rerank --query Q DOCUMENTS --model M [--top-k K] [--json]
    minibert serve --model M [--port 8080] [--reranker R] [--api-key KEY]          (minibert.serve)
    minibert distill MODEL --output DIR [--dim 256] [--vocab WORDS.txt]             (minibert.distill)

Each command is a Command: its name, help, a function adding its arguments to a parser and one carrying it out
(taking the parsed arguments and its parser, returning an exit status). Another program runs one with
`main([name, *argv], prog=...)` or, as a program of its own, `run_command(name, argv, prog)` (compare.py's
`explain`). Exit status: 0 done, 1 bad input or a failure (one line on stderr, no traceback), 2 a command line
argparse cannot parse (its usage message).
"""

from __future__ import annotations

import argparse
import json
import sys
import warnings
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Callable, Dict, Iterable, Iterator, List, Optional, Sequence

import numpy as np

from . import blas, distributed, explain, serve
from .distill import DEFAULT_DIM, WEIGHTINGS, distill
from .encoder import LONG_INPUTS, SentenceEncoder
from .errors import InputError, MinibertError, MissingHeadError
from .hub import DEFAULT_MODEL
from .model import softmax
from .modeling import BertForMaskedLM, BertForSequenceClassification
from .tasks import CrossEncoder, fill_mask, sigmoid
from .tokenizer import Tokenizer
from .io import (JSON_LINES_SUFFIXES, check_output, count_lines, is_json_lines, open_input, progress, read_texts,
                 wants_bar, write_npy)
from .retrieval import PRECISIONS, quantize_embeddings
from .weights import check_compatible

# Texts read, encoded and written per step of `encode`: the most it holds in memory at once (and the pool
# within which texts are sorted by length into batches).
ENCODE_CHUNK = 4096
EXIT_STATUS = "exit status: 0 done, 1 bad input or a failure (one line on stderr), 2 bad usage"
LINE_RULE = ("One text per line of a UTF-8 file (a blank line is an error: write an empty text on purpose as JSON "
             "lines, {\"text\": \"\"}), or JSON lines: one object with a string \"text\" field per line.")
MODEL_HELP = f"model folder or Hub repo id (default: {DEFAULT_MODEL})"


@dataclass(frozen=True)
class Command:
    """One sub-command: what `minibert --help` lists and what carries it out."""
    name: str
    help: str
    description: str
    add_arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace, argparse.ArgumentParser], int]


def show_progress(p: argparse.ArgumentParser, what: str) -> None:
    p.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                   help=f"show a progress bar of {what} on stderr (default: when stderr is a terminal)")


# ----------------------------------------------------------------------------------------------------------------
# minibert encode
# ----------------------------------------------------------------------------------------------------------------

def encode_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", default=DEFAULT_MODEL, help=MODEL_HELP)
    p.add_argument("--input", default="-", help="text file, FIFO, or - for standard input (default); read once")
    p.add_argument("--output", required=True, help="the .npy file to write (never an input, a folder or a device)")
    format_argument(p)
    p.add_argument("--batch-size", type=int, default=32, help="texts per forward pass (default: 32)")
    p.add_argument("--normalize", action="store_true", help="scale every vector to unit length")
    p.add_argument("--long-inputs", choices=LONG_INPUTS, default="truncate",
                   help="texts over the model's limit: truncate (default) or chunk (average overlapping windows)")
    prompts = p.add_mutually_exclusive_group()
    prompts.add_argument("--prompt-name", metavar="NAME",
                         help="put the model's prompt NAME (config_sentence_transformers.json, e.g. query) before "
                              "every text (default: the model's default_prompt_name, if any)")
    prompts.add_argument("--prompt", metavar="TEXT",
                         help="put TEXT before every text (--prompt '' for none, whatever the model's default)")
    p.add_argument("--precision", choices=PRECISIONS, default="float32",
                   help="the .npy's type: float32 (default); int8 or uint8 (each dimension in 256 steps between "
                        "its min and max over all the texts: their float32 vectors are held in memory until the "
                        "end); binary (int8) or ubinary (uint8): one bit per dimension (1 above 0), packed 8 to a "
                        "byte, so the shape is (N, ceil(P / 8))")
    p.add_argument("--truncate-dim", type=int, metavar="N",
                   help="keep the first N values of each vector (Matryoshka models), before --normalize "
                        "and --precision")
    show_progress(p, "texts")


def run_encode(args: argparse.Namespace, p: argparse.ArgumentParser) -> int:
    if args.batch_size < 1:
        raise InputError(f"--batch-size {args.batch_size}: expected a positive integer")
    if args.truncate_dim is not None and args.truncate_dim < 1:
        raise InputError(f"--truncate-dim {args.truncate_dim}: expected a positive integer")
    with open_input(args.input) as (stream, label, info):
        check_output(args.output, [(label, info)])  # before the model loads; checked again before the rename
        json_lines = reads_json_lines(args.format, label)
        encoder = SentenceEncoder.from_pretrained(args.model, truncate_dim=args.truncate_dim)
        prompt = encoder.resolve_prompt(args.prompt, args.prompt_name)  # an unknown name fails before any text
        dim = encoder.get_sentence_embedding_dimension()
        if args.precision.endswith("binary"):
            dim = -(-dim // 8)
        dtype = np.dtype(PRECISIONS[args.precision]).name
        texts = read_texts(stream, label, json_lines)
        total = count_lines(stream, info) if wants_bar(args.progress) else None  # None for a pipe
        with progress(total, "Encoding", "text", args.progress) as advance:
            blocks = encoder.encode_stream(texts, ENCODE_CHUNK, args.batch_size, prompt=prompt,
                                           normalize_embeddings=args.normalize, long_inputs=args.long_inputs,
                                           advance=advance)
            count = write_npy(args.output, quantized(blocks, args.precision), dim, dtype, inputs=[(label, info)])
    print(f"{args.output}: {count} x {dim} {dtype} ({args.precision})", file=sys.stderr)
    return 0


def quantized(blocks: Iterable[np.ndarray], precision: str) -> Iterator[np.ndarray]:
    """float32 (n, P) blocks at `precision`, as `encode(precision=...)` over all of them: block by block, except
    int8 / uint8, whose ranges come from every vector (all held, then quantized at once)."""
    if precision in ("int8", "uint8"):
        held = list(blocks)
        blocks = [np.concatenate(held)] if held else []
    for block in blocks:
        yield quantize_embeddings(block, precision)


# ----------------------------------------------------------------------------------------------------------------
# minibert info
# ----------------------------------------------------------------------------------------------------------------

def info_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", nargs="?", default=DEFAULT_MODEL, help=MODEL_HELP)
    p.add_argument("--json", action="store_true", help="print one JSON object instead of text")


def lowercases(encoder: SentenceEncoder) -> bool:
    """Whether the text is lower-cased before it becomes word pieces: by the encoder (sentence-transformers'
    do_lower_case) or by the tokenizer's own normalizer (which that flag does not show)."""
    return encoder.do_lower_case or encoder.tokenizer.tokenize("A") == ["a"]


def model_info(encoder: SentenceEncoder) -> dict:
    """What `minibert info` reports: sizes, the BERT config and the sentence-embedding settings."""
    tensors = encoder.model.tensors
    files = sorted({t.file for t in tensors.values()})
    settings = {k: v for k, v in encoder.settings().items() if k not in ("name_or_path", "revision")}
    return {
        "model": encoder.name_or_path,
        "parameters": int(sum(t.array.size for t in tensors.values())),
        "stored_dtypes": sorted({t.dtype for t in tensors.values()}),
        "weights_bytes": sum(f.stat().st_size for f in files),
        "weights_files": [str(f) for f in files],
        "tokenizer_vocab_size": encoder.tokenizer.vocab_size,
        "embedding_dimension": encoder.get_sentence_embedding_dimension(),
        "sentence_transformers_layout": encoder.layout.sentence_transformers,
        **settings, "do_lower_case": lowercases(encoder),
        "blas": blas.describe(),
        "config": encoder.model.config.to_dict(),
    }


def run_info(args: argparse.Namespace, p: argparse.ArgumentParser) -> int:
    info = model_info(SentenceEncoder.from_pretrained(args.model))
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    config = info.pop("config")
    pooling = "+".join(info["pooling"])
    if not info.pop("sentence_transformers_layout"):
        pooling += " (plain BERT folder without sentence-transformers files: mean pooling by default)"
    info["pooling"] = pooling  # in place: keeps its position
    info["weights_bytes"] = f"{info['weights_bytes']:,} ({info['weights_bytes'] / 2**20:.1f} MiB)"
    info["parameters"] = f"{info['parameters']:,}"
    width = max(map(len, [*info, *config]))
    for key, value in [*info.items(), ("config", "")] + [(f"  {k}", v) for k, v in config.items()]:
        print(f"{key:<{width + 2}} {value if not isinstance(value, list) else ', '.join(map(str, value))}")
    return 0


# ----------------------------------------------------------------------------------------------------------------
# minibert encode-corpus
# ----------------------------------------------------------------------------------------------------------------

def encode_corpus_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("inputs", nargs="+", help="text files (one text per line) or JSON lines (.jsonl, .ndjson) with a "
                   "'text' field; paths or glob patterns")
    p.add_argument("--model", default=DEFAULT_MODEL, help=MODEL_HELP)
    p.add_argument("--output", required=True, help="output folder (shards/, index.json); one run at a time")
    p.add_argument("--scheduler", help="address of a running Dask scheduler, e.g. tcp://host:8786 (default: a local "
                   "cluster with one worker process per core)")
    p.add_argument("--batch-size", type=int, default=32, help="texts per forward pass (default: 32)")
    p.add_argument("--partition-size", type=int, default=10_000, help="lines per task and shard (default: 10000)")
    p.add_argument("--normalize", action="store_true", help="scale every vector to unit length")
    p.add_argument("--errors", choices=("raise", "skip"), default="raise",
                   help="bad lines (blank, not UTF-8, not a JSON object with a 'text' string): stop with an error "
                        "naming file and line (default), or leave them out and list them in the manifests and "
                        "index.json")
    show_progress(p, "shards")


def run_encode_corpus(args: argparse.Namespace, p: argparse.ArgumentParser) -> int:
    """Carry out `minibert encode-corpus`; returns the exit status."""
    Client, = distributed.dask_names("Client")
    try:
        with (Client(args.scheduler) if args.scheduler else distributed.local_client()) as client:
            result = distributed.encode_corpus(args.inputs, args.output, model=args.model, client=client,
                                               batch_size=args.batch_size, partition_size=args.partition_size,
                                               normalize_embeddings=args.normalize, errors=args.errors,
                                               show_progress_bar=args.progress)
    except distributed.BadLinesError as e:
        raise distributed.BadLinesError(e.where, "run again with --errors skip") from None
    print(f"{result.count} vectors of {result.dim} floats in {result.output} "
          f"({len(result.encoded)} shards encoded, {len(result.reused)} reused, {len(result.skipped)} lines skipped)")
    return 0


# ----------------------------------------------------------------------------------------------------------------
# minibert explain
# ----------------------------------------------------------------------------------------------------------------

def explain_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("sentences", nargs="+", metavar="SENTENCE",
                   help="one or more sentences that contain the word (or the model's mask token: [MASK], <mask>)")
    p.add_argument("--word", help="the word to follow (whole word, case-insensitive; default: the mask token). "
                   "With a masked-LM head the word is masked and the head's guesses are shown for every layer")
    p.add_argument("--occurrence", type=int, default=0,
                   help="which occurrence of the word in each sentence, 0-based (default 0, the first)")
    p.add_argument("--model", default=DEFAULT_MODEL, help=MODEL_HELP)
    p.add_argument("--heads", type=int, default=3, help="top heads shown per layer (default 3)")
    p.add_argument("--top", type=int, default=5, help="tokens shown per attention row (default 5)")
    p.add_argument("--top-k", type=int, default=5, help="guesses shown per layer for a masked word, with a "
                   f"masked-LM head (e.g. {explain.MASKED_LM_EXAMPLE}; default 5)")
    p.add_argument("--json", action="store_true", help="print the results as JSON instead of the text report")
    p.add_argument("--plot", metavar="FILE.png", help="write attention heatmaps (needs matplotlib)")


def run_explain(args: argparse.Namespace, p: argparse.ArgumentParser) -> int:
    if args.occurrence < 0:
        raise InputError(f"--occurrence {args.occurrence}: expected 0 or more")
    if args.heads < 0 or args.top < 1:
        raise InputError(f"--heads {args.heads}, --top {args.top}: expected --heads 0 or more, --top 1 or more")
    check_top_k(args.top_k)
    explain.show(args.sentences, args.word, model=args.model, occurrence=args.occurrence, heads=args.heads,
                 top=args.top, top_k=args.top_k, as_json=args.json, plot_path=args.plot, prog=p.prog)
    return 0


# ----------------------------------------------------------------------------------------------------------------
# minibert fill, classify, rerank: the task heads
# ----------------------------------------------------------------------------------------------------------------

# A model that has each head, named when the one given has not.
HEAD_EXAMPLES = {"fill": "google-bert/bert-base-uncased",
                 "classify": "distilbert/distilbert-base-uncased-finetuned-sst-2-english",
                 "rerank": "cross-encoder/ms-marco-MiniLM-L-6-v2"}


def load_with_head(command: str, load: Callable[[], object]):
    """`load()`, with a missing head reported as one line naming a model that has it."""
    try:
        return load()
    except MissingHeadError as e:
        raise MissingHeadError(f"{e}. `minibert {command}` needs a model with that head, e.g. "
                               f"{HEAD_EXAMPLES[command]}") from None


def top_k_argument(p: argparse.ArgumentParser, what: str, default: Optional[int]) -> None:
    p.add_argument("--top-k", type=int, default=default,
                   help=f"how many {what} to show (default: {default or 'all'})")


def check_top_k(top_k: Optional[int]) -> None:
    if top_k is not None and top_k < 1:
        raise InputError(f"--top-k {top_k}: expected a positive integer")


def fill_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("text", help="a text with one or more mask tokens: the model's own ([MASK], <mask>)")
    p.add_argument("--model", required=True, help=f"model folder or Hub repo id with a masked-LM head (e.g. "
                   f"{HEAD_EXAMPLES['fill']})")
    top_k_argument(p, "candidates per mask", 5)
    p.add_argument("--json", action="store_true", help="print transformers' fill-mask result as JSON")


def run_fill(args: argparse.Namespace, p: argparse.ArgumentParser) -> int:
    check_top_k(args.top_k)
    model = load_with_head("fill", lambda: BertForMaskedLM.from_pretrained(args.model))
    result = fill_mask(model, Tokenizer.from_pretrained(args.model), args.text, top_k=args.top_k)
    if args.json:
        print(json.dumps(result, ensure_ascii=False, indent=2))
        return 0
    per_mask = [result] if isinstance(result[0], dict) else result
    for i, candidates in enumerate(per_mask):
        if len(per_mask) > 1:
            print(f"mask {i + 1}:")
        for c in candidates:
            print(f"{c['score']:.4f}\t{c['token_str']}\t{c['sequence']}")
    return 0


def format_argument(p: argparse.ArgumentParser) -> None:
    """--format: how an input's lines are read (see reads_json_lines)."""
    p.add_argument("--format", choices=("auto", "text", "jsonl"), default="auto",
                   help="text: one text per line; jsonl: one JSON object with a 'text' field per line; "
                        f"auto (default): jsonl for {' and '.join(JSON_LINES_SUFFIXES)} files, else text")


def reads_json_lines(format_: str, label: str) -> bool:
    """Whether --format (and, with auto, the input's name) says the input is JSON lines."""
    return format_ == "jsonl" or (format_ == "auto" and is_json_lines(label))


def texts_argument(p: argparse.ArgumentParser, name: str, what: str) -> None:
    p.add_argument(name, help=f"{what}: a text or JSON-lines file, or - for standard input")
    format_argument(p)
    p.add_argument("--batch-size", type=int, default=32, help="texts per forward pass (default: 32)")


def read_all_texts(name: str, format_: str, batch_size: int) -> List[str]:
    """Every text of an input file (or standard input), by the line rule."""
    if batch_size < 1:
        raise InputError(f"--batch-size {batch_size}: expected a positive integer")
    with open_input(name, "input") as (stream, label, _):
        json_lines = reads_json_lines(format_, label)
        texts = list(read_texts(stream, label, json_lines))
    if not texts:
        raise InputError(f"{name}: no texts")
    return texts


def classify_arguments(p: argparse.ArgumentParser) -> None:
    texts_argument(p, "input", "the texts to classify")
    p.add_argument("--model", required=True, help=f"model folder or Hub repo id with a sequence-classification "
                   f"head (e.g. {HEAD_EXAMPLES['classify']})")
    p.add_argument("--json", action="store_true",
                   help='print one JSON object per text: {"label", "score", "scores": {label: probability}}')


def run_classify(args: argparse.Namespace, p: argparse.ArgumentParser) -> int:
    texts = read_all_texts(args.input, args.format, args.batch_size)
    model = load_with_head("classify", lambda: BertForSequenceClassification.from_pretrained(args.model))
    tokenizer = Tokenizer.from_pretrained(args.model)
    check_compatible(tokenizer, model.base_model)
    c = model.config
    labels = c.id2label
    # transformers' reading of problem_type: unset with one label is a regression (the score is the logit itself)
    regression = c.problem_type == "regression" or (c.problem_type is None and c.num_labels == 1)
    for start in range(0, len(texts), args.batch_size):
        logits = model(**tokenizer(texts[start:start + args.batch_size])).logits  # (b, num_labels)
        probs = (logits if regression else sigmoid(logits) if c.problem_type == "multi_label_classification"
                 else softmax(logits))
        for row in probs:
            best = int(row.argmax())
            if args.json:
                print(json.dumps({"label": labels[best], "score": float(row[best]),
                                  "scores": {labels[i]: float(v) for i, v in enumerate(row)}}, ensure_ascii=False))
            else:
                print(f"{labels[best]}\t{row[best]:.4f}")
    return 0


def rerank_arguments(p: argparse.ArgumentParser) -> None:
    texts_argument(p, "documents", "the documents to rank")
    p.add_argument("--query", required=True, help="the query the documents are scored against")
    p.add_argument("--model", required=True, help=f"a cross-encoder: model folder or Hub repo id with a one-label "
                   f"classification head (e.g. {HEAD_EXAMPLES['rerank']})")
    top_k_argument(p, "documents", None)
    p.add_argument("--json", action="store_true", help='print CrossEncoder.rank\'s list: {"corpus_id", "score", '
                   '"text"}, best first')


def run_rerank(args: argparse.Namespace, p: argparse.ArgumentParser) -> int:
    check_top_k(args.top_k)
    documents = read_all_texts(args.documents, args.format, args.batch_size)
    model = load_with_head("rerank", lambda: CrossEncoder.from_pretrained(args.model))
    if model.num_labels != 1:
        raise InputError(f"{args.model}: has {model.num_labels} labels; `minibert rerank` needs a cross-encoder with "
                         f"one (a relevance score), e.g. {HEAD_EXAMPLES['rerank']}")
    ranked = model.rank(args.query, documents, top_k=args.top_k, return_documents=True, batch_size=args.batch_size)
    if args.json:
        print(json.dumps(ranked, ensure_ascii=False, indent=2))
        return 0
    for r in ranked:
        print(f"{r['score']:.4f}\t{r['corpus_id'] + 1}\t{r['text']}")  # the document's line number
    return 0


# ----------------------------------------------------------------------------------------------------------------
# minibert distill
# ----------------------------------------------------------------------------------------------------------------

def distill_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", nargs="?", default=DEFAULT_MODEL, help=MODEL_HELP)
    p.add_argument("--output", required=True, help="the folder to write (new, empty, or a previous distillation)")
    p.add_argument("--dim", type=int, default=DEFAULT_DIM, help=f"dimensions kept by PCA (default: {DEFAULT_DIM})")
    p.add_argument("--vocab", metavar="WORDS.txt", help="extra words, one per line, each added as a whole-word token")
    p.add_argument("--weighting", choices=WEIGHTINGS, default="zipf",
                   help="zipf (default): SIF weights from each token's vocabulary rank; none: no weighting")
    p.add_argument("--batch-size", type=int, default=256, help="tokens per forward pass (default: 256)")
    show_progress(p, "tokens")


def run_distill(args: argparse.Namespace, p: argparse.ArgumentParser) -> int:
    result = distill(args.model, args.output, dim=args.dim, vocab=args.vocab, weighting=args.weighting,
                     batch_size=args.batch_size, show_progress_bar=args.progress)
    print(f"{result.output}: {result.vocab_size} x {result.dim} float32 ({result.extra_words} extra words, "
          f"{result.weighting} weighting); load it with minibert.StaticEncoder.from_pretrained", file=sys.stderr)
    return 0


# ----------------------------------------------------------------------------------------------------------------
# The dispatcher
# ----------------------------------------------------------------------------------------------------------------

COMMANDS: Dict[str, Command] = {c.name: c for c in [
    Command("encode", "encode texts into an (N, P) .npy (float32, or quantized), row i for text i",
            f"Encode texts into an (N, P) .npy file (float32 unless --precision says otherwise), row i for text i. "
            f"{LINE_RULE} The input is read once "
            "(standard input, a FIFO and <(...) work); the file appears under its name only once complete, with "
            "the permissions of any new file.", encode_arguments, run_encode),
    Command("info", "print a model's config, sizes and pooling",
            "Print a model's BERT config, sentence-transformers settings and sizes.", info_arguments, run_info),
    Command("encode-corpus", "encode text files on a Dask cluster into resumable .npy shards",
            f"Encode every line of text or JSON-lines files on a Dask cluster: one .npy shard and manifest per "
            f"partition of lines, then index.json. {LINE_RULE} Run the same command again to resume: complete "
            "shards are kept, missing or corrupt ones redone. Needs dask[distributed].",
            encode_corpus_arguments, run_encode_corpus),
    Command("explain", "follow a word through the layers", explain.DESCRIPTION, explain_arguments, run_explain),
    Command("fill", "the likeliest tokens at each mask of a text",
            "Print the likeliest tokens at each mask token of a text, with their probabilities and the filled "
            "text (transformers' fill-mask pipeline). Needs a model with a masked-LM head.", fill_arguments,
            run_fill),
    Command("classify", "a label and its probability for each text",
            f"Print the likeliest label and its probability for each text, one line each (softmax over the labels; "
            f"sigmoid for a multi-label model; the score itself for a regression). {LINE_RULE} Needs a model with a "
            "sequence-classification head.",
            classify_arguments, run_classify),
    Command("rerank", "documents ranked by a cross-encoder's score against a query",
            f"Score each document against the query with a cross-encoder and print them best first: score, line "
            f"number, text. {LINE_RULE}", rerank_arguments, run_rerank),
    Command("serve", serve.HELP, serve.DESCRIPTION, serve.add_arguments, serve.run),
    Command("distill", "distil a model into static token vectors (model2vec's format)",
            "Pass every token of the model's vocabulary (and any extra words) through the model on its own, pool "
            "it as the model's sentence encoder pools, reduce with PCA and weight by Zipf frequency; write "
            "model.safetensors, tokenizer.json and config.json (model2vec's format) into a new folder, atomically. "
            "Load it with minibert.StaticEncoder.", distill_arguments, run_distill),
]}


def build_parser(prog: str = "minibert") -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=prog, description="A framework-free BERT in NumPy.", epilog=EXIT_STATUS)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for c in COMMANDS.values():
        sub = commands.add_parser(c.name, help=c.help, description=c.description, epilog=EXIT_STATUS)
        c.add_arguments(sub)
        sub.set_defaults(command_parser=sub)
    return parser


def main(argv: Optional[Sequence[str]] = None, prog: str = "minibert") -> int:
    """Run a command line (sys.argv[1:] by default); returns the exit status. `prog` names the program in
    messages: compare.py can run `main(["explain", *argv], prog="compare.py")`."""
    args = build_parser(prog).parse_args(argv)
    return execute(COMMANDS[args.command], args, args.command_parser)


@contextmanager
def environment_warnings_as_lines(prog: str) -> Iterator[None]:
    """A KernelWarning is about the environment, not a line of code: a command prints it as "prog: warning: ..."."""
    with warnings.catch_warnings():
        show = warnings.showwarning

        def one_line(message, category, filename, lineno, file=None, line=None):
            if issubclass(category, blas.KernelWarning):
                print(f"{prog}: warning: {message}", file=sys.stderr)
            else:
                show(message, category, filename, lineno, file, line)
        warnings.showwarning = one_line
        yield


def run_command(name: str, argv: Optional[Sequence[str]] = None, prog: Optional[str] = None) -> int:
    """One command as a program of its own (`prog`, e.g. "compare.py explain"): its arguments only."""
    command = COMMANDS[name]
    parser = argparse.ArgumentParser(prog=prog, description=command.description, epilog=EXIT_STATUS)
    command.add_arguments(parser)
    return execute(command, parser.parse_args(argv), parser)


def execute(command: Command, args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    """Carry out parsed arguments: minibert's own errors become one line on stderr and exit status 1; Ctrl-C one
    line and 130, as a shell reports SIGINT (outputs are removed by then: see minibert.io.atomic_output)."""
    try:
        with environment_warnings_as_lines(parser.prog):
            return command.run(args, parser)
    except MinibertError as e:
        print(f"{parser.prog}: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"{parser.prog}: interrupted; no partly written file is left", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
