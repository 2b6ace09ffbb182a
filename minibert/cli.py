"""The `minibert` command line: every command's arguments, in one place.

    minibert encode --model M [--input FILE|-] --output OUT.npy [--batch-size 32] [--normalize]
    minibert info M
    minibert encode-corpus --model M --output DIR INPUTS... [--scheduler ADDRESS]   (minibert.distributed; needs dask)
    minibert explain SENTENCE... --word W [--json] [--plot FILE.png]                (minibert.explain)
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
from dataclasses import dataclass
from typing import Callable, Dict, Optional, Sequence

from . import distributed, explain
from .distill import DEFAULT_DIM, WEIGHTINGS, distill
from .encoder import LONG_INPUTS, SentenceEncoder
from .errors import InputError, MinibertError
from .hub import DEFAULT_MODEL
from .io import (JSON_LINES_SUFFIXES, check_output, count_lines, is_json_lines, open_input, progress, read_texts,
                 wants_bar, write_npy)

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
    p.add_argument("--format", choices=("auto", "text", "jsonl"), default="auto",
                   help="text: one text per line; jsonl: one JSON object with a 'text' field per line; "
                        f"auto (default): jsonl for {' and '.join(JSON_LINES_SUFFIXES)} files, else text")
    p.add_argument("--batch-size", type=int, default=32, help="texts per forward pass (default: 32)")
    p.add_argument("--normalize", action="store_true", help="scale every vector to unit length")
    p.add_argument("--long-inputs", choices=LONG_INPUTS, default="truncate",
                   help="texts over the model's limit: truncate (default) or chunk (average overlapping windows)")
    show_progress(p, "texts")


def run_encode(args: argparse.Namespace, p: argparse.ArgumentParser) -> int:
    if args.batch_size < 1:
        raise InputError(f"--batch-size {args.batch_size}: expected a positive integer")
    with open_input(args.input) as (stream, label, info):
        check_output(args.output, [(label, info)])  # before the model loads; checked again before the rename
        json_lines = args.format == "jsonl" or (args.format == "auto" and is_json_lines(label))
        encoder = SentenceEncoder.from_pretrained(args.model)
        dim = encoder.get_sentence_embedding_dimension()
        texts = read_texts(stream, label, json_lines)
        total = count_lines(stream, info) if wants_bar(args.progress) else None  # None for a pipe
        with progress(total, "Encoding", "text", args.progress) as advance:
            blocks = encoder.encode_stream(texts, ENCODE_CHUNK, args.batch_size, normalize_embeddings=args.normalize,
                                           long_inputs=args.long_inputs, advance=advance)
            count = write_npy(args.output, blocks, dim, inputs=[(label, info)])
    print(f"{args.output}: {count} x {dim} float32", file=sys.stderr)
    return 0


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
    p.add_argument("sentences", nargs="+", metavar="SENTENCE", help="one or more sentences that contain the word")
    p.add_argument("--word", required=True, help="the word to follow (whole word, case-insensitive)")
    p.add_argument("--occurrence", type=int, default=0,
                   help="which occurrence of the word in each sentence, 0-based (default 0, the first)")
    p.add_argument("--model", default=DEFAULT_MODEL, help=MODEL_HELP)
    p.add_argument("--heads", type=int, default=3, help="top heads shown per layer (default 3)")
    p.add_argument("--top", type=int, default=5, help="tokens shown per attention row (default 5)")
    p.add_argument("--json", action="store_true", help="print the results as JSON instead of the text report")
    p.add_argument("--plot", metavar="FILE.png", help="write attention heatmaps (needs matplotlib)")


def run_explain(args: argparse.Namespace, p: argparse.ArgumentParser) -> int:
    if args.occurrence < 0:
        raise InputError(f"--occurrence {args.occurrence}: expected 0 or more")
    if args.heads < 0 or args.top < 1:
        raise InputError(f"--heads {args.heads}, --top {args.top}: expected --heads 0 or more, --top 1 or more")
    explain.show(args.sentences, args.word, model=args.model, occurrence=args.occurrence, heads=args.heads,
                 top=args.top, as_json=args.json, plot_path=args.plot, prog=p.prog)
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
    Command("encode", "encode texts into an (N, P) float32 .npy, row i for text i",
            f"Encode texts into an (N, P) float32 .npy file, row i for text i. {LINE_RULE} The input is read once "
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
        return command.run(args, parser)
    except MinibertError as e:
        print(f"{parser.prog}: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"{parser.prog}: interrupted; no partly written file is left", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
