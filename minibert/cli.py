"""The `minibert` command line.

    minibert encode --model M [--input FILE|-] --output OUT.npy [--batch-size 32] [--normalize]
    minibert info M
    minibert encode-corpus --model M --output DIR INPUTS... [--scheduler ADDRESS]   (minibert.distributed; needs dask)
    minibert explain SENTENCE... --word W [--json] [--plot FILE.png]                (minibert.explain)

Each command is a `register_<name>(commands)` function that adds its sub-parser and sets `run` to the function
that carries it out (taking the parsed arguments, returning an exit status); COMMANDS lists them. minibert's own
errors become one line on stderr and exit status 1.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO, Callable, Iterator, List, Optional, Sequence, Tuple

import numpy as np

from . import explain
from .distributed import register_encode_corpus
from .encoder import LONG_INPUTS, SentenceEncoder
from .errors import InputError, MinibertError
from .hub import DEFAULT_MODEL

# Texts read, encoded and written per step of `encode`: the most it holds in memory at once (and the pool
# within which texts are sorted by length into batches).
ENCODE_CHUNK = 4096
JSON_LINES_SUFFIXES = (".jsonl", ".ndjson")


# ----------------------------------------------------------------------------------------------------------------
# minibert encode
# ----------------------------------------------------------------------------------------------------------------

def register_encode(commands: argparse._SubParsersAction) -> None:
    p = commands.add_parser(
        "encode", help="encode texts into an (N, P) float32 .npy, row i for text i",
        description="Encode one text per line (or JSON lines with a 'text' field) into an (N, P) float32 .npy "
                    "file, row i for text i. The file is filled as a memory-mapped array, a chunk of texts at a "
                    "time, and appears under its name only once complete.")
    p.add_argument("--model", default=DEFAULT_MODEL, help=f"model folder or Hub repo id (default: {DEFAULT_MODEL})")
    p.add_argument("--input", default="-", help="text file, or - for standard input (default)")
    p.add_argument("--output", required=True, help="the .npy file to write")
    p.add_argument("--format", choices=("auto", "text", "jsonl"), default="auto",
                   help="text: one text per line; jsonl: one JSON object with a 'text' field per line; "
                        f"auto (default): jsonl for {' and '.join(JSON_LINES_SUFFIXES)} files, else text")
    p.add_argument("--batch-size", type=int, default=32, help="texts per forward pass (default: 32)")
    p.add_argument("--normalize", action="store_true", help="scale every vector to unit length")
    p.add_argument("--long-inputs", choices=LONG_INPUTS, default="truncate",
                   help="texts over the model's limit: truncate (default) or chunk (average overlapping windows)")
    p.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                   help="show a progress bar on stderr (default: when stderr is a terminal)")
    p.set_defaults(run=run_encode)


def run_encode(args: argparse.Namespace) -> int:
    output = Path(args.output)
    if not output.parent.is_dir():
        raise InputError(f"--output {output}: folder {output.parent} does not exist")
    if output.is_dir():
        raise InputError(f"--output {output}: is a folder; expected a .npy file name")
    if args.batch_size < 1:
        raise InputError(f"--batch-size {args.batch_size}: expected a positive integer")
    with _readable_twice(args.input) as (stream, label):
        json_lines = args.format == "jsonl" or (args.format == "auto" and label.endswith(JSON_LINES_SUFFIXES))
        count = sum(1 for _ in read_texts(stream, label, json_lines))  # first pass: count, and check every line
        encoder = SentenceEncoder.from_pretrained(args.model)
        show = sys.stderr.isatty() if args.progress is None else args.progress
        stream.seek(0)
        texts = read_texts(stream, label, json_lines)
        with _bar(count, show) as advance:
            chunks = (encoder._encode_texts(chunk, args.batch_size, normalize_embeddings=args.normalize,
                                            chunk=args.long_inputs == "chunk", advance=advance)
                      for chunk in _chunks(texts, ENCODE_CHUNK))
            write_npy(output, (count, encoder.get_sentence_embedding_dimension()), chunks, label)
    print(f"{output}: {count} x {encoder.get_sentence_embedding_dimension()} float32", file=sys.stderr)
    return 0


def read_texts(stream: BinaryIO, label: str, json_lines: bool) -> Iterator[str]:
    """The texts of a UTF-8 file, one per line (its line ending removed), or each line's JSON "text" field.

    Only \\n ends a line (a \\r before it is dropped too), so that text containing other Unicode line
    separators stays one text. Errors name the file and line.
    """
    for number, raw in enumerate(stream, 1):
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError as e:
            raise InputError(f"{label}:{number}: not UTF-8 text (byte 0x{raw[e.start]:02x} at column "
                             f"{e.start + 1}); expected UTF-8") from None
        if number == 1:
            line = line.removeprefix("\ufeff")  # a byte-order mark is not part of the text
        line = line.removesuffix("\n").removesuffix("\r")
        yield _json_text(line, label, number) if json_lines else line


def _json_text(line: str, label: str, number: int) -> str:
    expected = 'expected a JSON object with a "text" field on every line'
    if not line.strip():
        raise InputError(f"{label}:{number}: empty line; {expected}")
    try:
        record = json.loads(line)
    except json.JSONDecodeError as e:
        raise InputError(f"{label}:{number}: not valid JSON ({e.msg} at column {e.colno}); {expected}") from None
    if not isinstance(record, dict) or "text" not in record:
        raise InputError(f"{label}:{number}: no \"text\" field; {expected}")
    if not isinstance(record["text"], str):
        raise InputError(f"{label}:{number}: \"text\" is {type(record['text']).__name__}; expected a string")
    return record["text"]


def _chunks(texts: Iterator[str], size: int) -> Iterator[List[str]]:
    chunk: List[str] = []
    for text in texts:
        chunk.append(text)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def write_npy(path: Path, shape: Tuple[int, int], blocks: Iterator[np.ndarray], label: str) -> None:
    """Write (N, P) float32 rows block by block into a memory-mapped .npy: a temporary file in the same folder,
    renamed to `path` only when complete, so a reader never sees a half-written file."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        array = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float32, shape=shape)
        row = 0
        for block in blocks:
            if row + len(block) > shape[0]:
                raise InputError(f"{label}: has more lines than when it was counted; was it changed while "
                                 "being read?")
            array[row:row + len(block)] = block
            row += len(block)
        if row != shape[0]:
            raise InputError(f"{label}: has {row} lines, {shape[0]} when counted; was it changed while being read?")
        array.flush()
        del array
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp's file is private; give it the permissions of a normal file
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@contextmanager
def _readable_twice(name: str) -> Iterator[Tuple[BinaryIO, str]]:
    """The input as a seekable binary stream and its label; standard input is first copied to a temporary file
    (counting the texts needs a first pass)."""
    if name != "-":
        try:
            f = open(name, "rb")
        except OSError as e:
            raise InputError(f"--input {name}: {e.strerror}") from None
        with f:
            yield f, name
        return
    with tempfile.TemporaryFile() as spool:
        shutil.copyfileobj(sys.stdin.buffer, spool)
        spool.seek(0)
        yield spool, "<stdin>"


@contextmanager
def _bar(total: int, show: bool) -> Iterator[Callable[[int], None]]:
    if not show:
        yield lambda n: None
        return
    from tqdm import tqdm  # comes with huggingface-hub
    with tqdm(total=total, desc="Encoding", unit="text") as bar:
        yield bar.update


# ----------------------------------------------------------------------------------------------------------------
# minibert info
# ----------------------------------------------------------------------------------------------------------------

def register_info(commands: argparse._SubParsersAction) -> None:
    p = commands.add_parser("info", help="print a model's config, sizes and pooling",
                            description="Print a model's BERT config, sentence-transformers settings and sizes.")
    p.add_argument("model", nargs="?", default=DEFAULT_MODEL, help=f"model folder or Hub repo id "
                                                                   f"(default: {DEFAULT_MODEL})")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    p.set_defaults(run=run_info)


def model_info(encoder: SentenceEncoder) -> dict:
    """What `minibert info` reports: sizes, the BERT config and the sentence-embedding settings."""
    tensors = encoder.model.tensors
    files = sorted({t.file for t in tensors.values()})
    return {
        "model": encoder.name_or_path,
        "parameters": int(sum(t.array.size for t in tensors.values())),
        "stored_dtypes": sorted({t.dtype for t in tensors.values()}),
        "weights_bytes": sum(f.stat().st_size for f in files),
        "weights_files": [str(f) for f in files],
        "tokenizer_vocab_size": encoder.tokenizer.vocab_size,
        "embedding_dimension": encoder.get_sentence_embedding_dimension(),
        "sentence_transformers_layout": encoder.layout.sentence_transformers,
        **{k: v for k, v in encoder.settings().items() if k not in ("name_or_path", "revision")},
        "config": encoder.model.config.to_dict(),
    }


def run_info(args: argparse.Namespace) -> int:
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
# The dispatcher
# ----------------------------------------------------------------------------------------------------------------

def register_explain(commands: argparse._SubParsersAction) -> None:
    p = commands.add_parser("explain", help="follow a word through the layers", description=explain.DESCRIPTION)
    explain.add_arguments(p)
    p.set_defaults(run=lambda args: explain.run(args, p))


COMMANDS: List[Callable[[argparse._SubParsersAction], None]] = [register_encode, register_info,
                                                                register_encode_corpus, register_explain]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="minibert", description="A framework-free BERT in NumPy.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for register in COMMANDS:
        register(commands)
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.run(args)
    except MinibertError as e:
        print(f"minibert {args.command}: error: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
