"""Command line: ``python -m glove {convert,neighbors,analogy,info,eval-wordsim} ...``."""

from __future__ import annotations

import argparse
import os
import sys
import warnings
from collections.abc import Callable, Sequence

from . import convert as convert_source
from . import evaluate_wordsim, load
from .textfile import ProgressFn
from .errors import GloVeError, HubError
from .table import GloVe

DEFAULT_TABLE = "fse/glove-wiki-gigaword-100"


def _progress_bar(label: str) -> tuple[ProgressFn | None, Callable[[], None]]:
    """A tqdm byte counter when stderr is a terminal (and tqdm is installed), else nothing."""
    try:
        from tqdm import tqdm
    except ImportError:
        return None, lambda: None
    if not sys.stderr.isatty():
        return None, lambda: None
    bar = tqdm(desc=label, unit="B", unit_scale=True, unit_divisor=1024)

    def update(done: int, total: int) -> None:
        bar.total = total
        bar.update(done - bar.n)

    return update, bar.close


def _open_table(args: argparse.Namespace) -> GloVe:
    update, close = _progress_bar(f"converting {args.table}")
    try:
        return load(args.table, member=args.member, cache_dir=args.cache_dir, progress=update)
    finally:
        close()


def _print_neighbors(pairs: Sequence[tuple[str, float]]) -> None:
    for word, score in pairs:
        print(f"{score:8.4f}  {word}")


def cmd_convert(args: argparse.Namespace) -> None:
    update, close = _progress_bar(f"converting {args.src}")
    try:
        folder = convert_source(args.src, args.dest, member=args.member, cache_dir=args.cache_dir, progress=update)
    finally:
        close()
    g = GloVe.open(folder)
    print(f"{folder}\n{len(g)} words x {g.dim} dims, {g.duplicates} duplicate(s) skipped")


def cmd_neighbors(args: argparse.Namespace) -> None:
    _print_neighbors(_open_table(args).most_similar(args.word, topn=args.n))


def cmd_analogy(args: argparse.Namespace) -> None:
    answer = _open_table(args).most_similar(positive=[args.b, args.c], negative=[args.a], topn=args.n)
    print(f"{args.a} : {args.b} :: {args.c} : ?")  # only once there is an answer to head
    _print_neighbors(answer)


def cmd_info(args: argparse.Namespace) -> None:
    args.table = args.src
    g = _open_table(args)
    source = g.manifest.get("source") or {}
    print(f"table:       {g.path}")
    print(f"shape:       {len(g)} words x {g.dim} dims, float32")
    print(f"source:      {source.get('hub') or source.get('path')}{'!' + source['member'] if source.get('member') else ''}")
    print(f"fingerprint: {source.get('fingerprint')}")
    print(f"duplicates:  {g.duplicates} skipped (first occurrence kept)")
    print(f"first words: {' '.join(g.index_to_key[:10])}")


def cmd_eval_wordsim(args: argparse.Namespace) -> None:
    g = _open_table(args)
    with warnings.catch_warnings(record=True) as caught:  # low coverage: said on stderr, after the table
        warnings.simplefilter("always")
        results = [evaluate_wordsim(g, path, lowercase=not args.keep_case) for path in args.files]  # all checked first
    print(f"{'file':<28} {'spearman':>8} {'pairs':>6} {'skipped':>7} {'coverage':>8}")
    for path, r in zip(args.files, results):
        print(f"{os.path.basename(path):<28} {r.spearman:8.4f} {r.pairs:6d} {r.skipped:7d} {r.coverage:8.1%}")
        if r.oov and args.verbose:
            print(f"  out of vocabulary: {' '.join(r.oov)}")
    for warning in caught:
        print(f"warning: {warning.message}", file=sys.stderr)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m glove", description="GloVe word vectors, memory-mapped.")
    sub = parser.add_subparsers(dest="command", required=True)

    def table_options(p: argparse.ArgumentParser, table: bool = True) -> None:
        if table:
            p.add_argument("-t", "--table", default=os.environ.get("GLOVE_TABLE", DEFAULT_TABLE),
                           help="GloVe file, converted folder or Hub name (default: $GLOVE_TABLE or %(default)s)")
        p.add_argument("--member", help="file inside a .zip source, e.g. glove.6B.100d.txt")
        p.add_argument("--cache-dir", help="where converted tables live (default: ~/.cache/minibert/glove)")

    p = sub.add_parser("convert", help="convert a GloVe source once (into DEST or the cache)")
    p.add_argument("src")
    p.add_argument("dest", nargs="?")
    table_options(p, table=False)
    p.set_defaults(func=cmd_convert)

    for name, words, n, func, text in [
        ("neighbors", ["word"], 10, cmd_neighbors, "nearest words by cosine similarity"),
        ("analogy", ["a", "b", "c"], 5, cmd_analogy, "A is to B as C is to ?"),
    ]:
        p = sub.add_parser(name, help=text)
        for word in words:
            p.add_argument(word)
        p.add_argument("-n", type=int, default=n, help="how many (default %(default)s)")
        table_options(p)
        p.set_defaults(func=func)

    p = sub.add_parser("info", help="shape, source and fingerprint of a table")
    p.add_argument("src")
    table_options(p, table=False)
    p.set_defaults(func=cmd_info)

    p = sub.add_parser("eval-wordsim", help="Spearman correlation on word-similarity files (WordSim-353, SimLex-999...)")
    p.add_argument("files", nargs="+", metavar="FILE")
    p.add_argument("--keep-case", action="store_true", help="do not lowercase the words first")
    p.add_argument("-v", "--verbose", action="store_true", help="list the out-of-vocabulary words")
    table_options(p)
    p.set_defaults(func=cmd_eval_wordsim)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        args.func(args)
    except (GloVeError, KeyError, ValueError, OSError) as e:
        message = e.args[0] if type(e) is KeyError else e  # a bare KeyError's str() adds quotes
        if isinstance(e, HubError):
            message = f"{message}; or give a local GloVe file instead (.txt, .txt.gz, .zip, .model or a converted folder)"
        print(f"error: {message}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
