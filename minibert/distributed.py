"""Embedding a corpus on a Dask cluster: partitions of lines, one `.npy` shard each, nothing lost if a worker dies.

    from minibert.distributed import encode_corpus, load_embeddings
    if __name__ == "__main__":                                  # Dask's worker processes import the script again
        encode_corpus(["corpus/*.txt"], "vectors/")             # a LocalCluster, one worker process per core
        for shard in load_embeddings("vectors/"):                # in input order
            shard.source, shard.lines, shard.vectors             # str, (n,) 1-based line numbers, (n, H) mmap-ed

How a run goes:
    plan        the client reads each input once, cutting it into partitions of `partition_size` lines
                (byte range, first line, SHA-256 of the bytes); no text is sent through the scheduler
    encode      each partition is a Dask task: read its bytes, parse, encode, write `shards/NNNNN.npy`, then its
                manifest `shards/NNNNN.json` (each to a temp file, then renamed: a manifest means a complete shard)
    index       `index.json` lists every shard in input order

A task is pure: the same partition always writes the same files, so when a worker dies mid-task the scheduler
simply runs it again elsewhere. A second call with the same arguments keeps every shard whose manifest, checksum
and source bytes still agree and redoes the rest.

Workers must see the input files and the output folder at the same paths (a shared file system on a multi-machine
cluster) and have minibert installed. Dask is imported only inside this module's functions: `pip install
'dask[distributed]'` (the `dask` extra).
"""

from __future__ import annotations

import ast
import glob
import hashlib
import os
import pickle
import socket
import sys
import uuid
from dataclasses import dataclass, field
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple, Union

import numpy as np

from .errors import InputError, MinibertError, OutputError
from .hub import DEFAULT_MODEL
from .io import LineError, folder_lock, is_json_lines, line_text, progress, read_json, write_json, write_npy

FORMAT = "minibert-embeddings/1"
PathLike = Union[str, os.PathLike]
# Set in every worker of the LocalCluster encode_corpus starts. One core per worker process. And glibc's malloc
# thresholds at their adaptive ceilings: Dask's nanny sets MALLOC_TRIM_THRESHOLD_, which (mallopt(3)) freezes the
# mmap threshold at 128 KiB, so each large temporary array of the forward pass would be mmap-ed and faulted anew.
WORKER_ENV = {"MINIBERT_NUM_THREADS": "1", "MALLOC_MMAP_THRESHOLD_": str(32 << 20),
              "MALLOC_TRIM_THRESHOLD_": str(64 << 20)}


# ----------------------------------------------------------------------------------------------------------------
# Plan: inputs -> partitions of lines
# ----------------------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Partition:
    """A run of consecutive lines of one input file: what one task encodes."""
    index: int           # position in the whole run, in input order; names the shard
    source: str          # absolute path of the input file
    first_line: int      # 1-based number of the first line
    last_line: int       # 1-based number of the last line (inclusive)
    start: int           # byte offset of the first line
    end: int             # byte offset just after the last line
    source_sha256: str   # of the bytes [start, end): detects an input changed since the plan

    @property
    def name(self) -> str:
        return f"{self.index:05d}"


def expand_inputs(inputs: Union[PathLike, Sequence[PathLike]]) -> List[Path]:
    """Paths and glob patterns -> existing files, in the order given (a pattern's matches sorted by name)."""
    items = [inputs] if isinstance(inputs, (str, os.PathLike)) else list(inputs)
    if not items:
        raise InputError("inputs: no input files given")
    files: List[Path] = []
    for item in items:
        text = os.fspath(item)
        if glob.has_magic(text):
            matches = sorted(glob.glob(os.path.expanduser(text), recursive=True))
            if not matches:
                raise InputError(f"{text}: no file matches this pattern")
            files.extend(Path(m) for m in matches if Path(m).is_file())
        elif not Path(text).expanduser().is_file():
            what = "is a folder; expected a text or JSON-lines file" if Path(text).is_dir() else "no such file"
            raise InputError(f"{text}: {what}")
        else:
            files.append(Path(text).expanduser())
    return [f.resolve() for f in files]


def plan_partitions(files: Sequence[Path], partition_size: int, *, errors: str = "raise"
                    ) -> Tuple[List[Partition], List[Tuple[str, int, str]]]:
    """Cut each file into partitions of at most `partition_size` lines (one pass over the bytes).

    Returns the partitions in input order and the files skipped as empty, as (source, 0, reason) entries; with
    errors="raise" an empty file is an error instead.
    """
    if not isinstance(partition_size, int) or partition_size < 1:
        raise InputError(f"partition_size: expected a positive integer, got {partition_size!r}")
    parts: List[Partition] = []
    skipped: List[Tuple[str, int, str]] = []
    for path in files:
        found = _partitions_of(path, partition_size, first_index=len(parts))
        if not found:
            if errors == "raise":
                raise InputError(f"{path}: empty file (no lines); expected one text per line")
            skipped.append((str(path), 0, "empty file"))
        parts.extend(found)
    return parts, skipped


def _partitions_of(path: Path, size: int, first_index: int) -> List[Partition]:
    parts: List[Partition] = []
    try:
        f = open(path, "rb")
    except OSError as e:
        raise InputError(f"{path}: cannot be read ({e.strerror})") from None
    with f:
        start = offset = 0
        first = line = 0
        digest = hashlib.sha256()
        for raw in f:
            line += 1
            offset += len(raw)
            digest.update(raw)
            if line - first == size:
                parts.append(Partition(first_index + len(parts), str(path), first + 1, line, start, offset,
                                       digest.hexdigest()))
                start, first, digest = offset, line, hashlib.sha256()
        if line > first:
            parts.append(Partition(first_index + len(parts), str(path), first + 1, line, start, offset,
                                   digest.hexdigest()))
    return parts


# ----------------------------------------------------------------------------------------------------------------
# One partition: parse its lines (runs on a worker)
# ----------------------------------------------------------------------------------------------------------------

def read_partition(part: Partition, *, text_field: str = "text") -> Tuple[List[str], List[Tuple[int, str]]]:
    """The texts of a partition and its bad lines as (line number, reason), in line order.

    A line is bad when it is not UTF-8, is blank, or, in a JSON-lines file (.jsonl/.ndjson), is not a JSON object
    with a string `text_field` (minibert.io.line_text: the same rule as `minibert encode`).
    """
    try:
        with open(part.source, "rb") as f:
            f.seek(part.start)
            data = f.read(part.end - part.start)
    except FileNotFoundError:
        raise InputError(f"{part.source}: not found on {socket.gethostname()}; every worker must see the inputs at "
                         "the same path (a shared file system)") from None
    if hashlib.sha256(data).hexdigest() != part.source_sha256:
        raise InputError(f"{part.source}: lines {part.first_line}-{part.last_line} changed while being encoded; "
                         "run again on the finished file")
    lines = data.split(b"\n")
    if data.endswith(b"\n"):
        lines.pop()
    json_lines = is_json_lines(part.source)
    texts: List[str] = []
    bad: List[Tuple[int, str]] = []
    for number, raw in enumerate(lines, start=part.first_line):
        try:
            texts.append(line_text(raw, json_lines=json_lines, text_field=text_field, first=number == 1))
        except LineError as e:
            bad.append((number, str(e)))
    return texts, bad


class BadLinesError(InputError):
    """A partition holds bad lines and errors="raise": `where` names the first (file:line: reason), `fix` says how
    to skip them in the caller's terms (an argument in Python, an option on the command line)."""

    def __init__(self, where: str, fix: str = "pass errors='skip'"):
        super().__init__(where, fix)
        self.where, self.fix = where, fix

    def __str__(self) -> str:
        return f"{self.where}; {self.fix} to leave such lines out (they are listed in the manifest)"


# ----------------------------------------------------------------------------------------------------------------
# Shards and manifests on disk
# ----------------------------------------------------------------------------------------------------------------

def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _expected_manifest(part: Partition, model_id: Dict[str, Any]) -> Dict[str, Any]:
    """The manifest fields fixed by the plan: a stored manifest must agree with them to be reused."""
    return {"format": FORMAT, "shard": f"{part.name}.npy", "source": part.source, "first_line": part.first_line,
            "last_line": part.last_line, "source_sha256": part.source_sha256, "model": model_id}


def shard_is_valid(shards: Path, part: Partition, model_id: Dict[str, Any], errors: str) -> bool:
    """True when the shard and manifest of `part` are complete, match the plan and the checksum, and
    (with errors="raise") skipped no line."""
    try:
        manifest = read_json(shards / f"{part.name}.json")
        if any(manifest.get(k) != v for k, v in _expected_manifest(part, model_id).items()):
            return False
        if errors == "raise" and manifest["skipped"]:
            return False
        lines = part.last_line - part.first_line + 1
        if manifest["count"] != lines - len(manifest["skipped"]):
            return False
        path = shards / manifest["shard"]
        array = np.load(path, mmap_mode="r")
        if array.shape != (manifest["count"], manifest["dim"]) or array.dtype != np.float32:
            return False
        return _sha256_file(path) == manifest["sha256"]
    except (MinibertError, OSError, ValueError, KeyError, TypeError):  # missing, torn, not an .npy: redo it
        return False


@lru_cache(maxsize=4)
def _worker_encoder(blob: bytes):
    """The encoder a task ships (pickled: a few KB naming its files), loaded once per worker process."""
    return pickle.loads(blob)


def encode_partition(part: Partition, encoder_blob: bytes, shards: str, model_id: Dict[str, Any], *,
                     batch_size: int = 32, normalize_embeddings: bool = False, errors: str = "raise",
                     text_field: str = "text") -> Dict[str, Any]:
    """Encode one partition and write its shard and manifest; returns the manifest. Pure: rerunning it writes
    the same files (the task a dead worker leaves behind is simply run again)."""
    texts, bad = read_partition(part, text_field=text_field)
    if bad and errors == "raise":
        number, reason = bad[0]
        more = f" (and {len(bad) - 1} more bad lines in lines {part.first_line}-{part.last_line})" if bad[1:] else ""
        raise BadLinesError(f"{part.source}:{number}: {reason}{more}")
    folder = Path(shards)
    if not folder.is_dir():
        raise InputError(f"{folder}: output folder not found on {socket.gethostname()}; every worker must see it at "
                         "the same path (a shared file system)")
    encoder = _worker_encoder(encoder_blob)
    vectors = np.ascontiguousarray(encoder.encode(texts, batch_size=batch_size, show_progress_bar=False,
                                                  normalize_embeddings=normalize_embeddings), dtype=np.float32)
    shard = folder / f"{part.name}.npy"
    write_npy(shard, [vectors], vectors.shape[1], option="shard")
    manifest = {**_expected_manifest(part, model_id), "count": int(vectors.shape[0]), "dim": int(vectors.shape[1]),
                "dtype": "float32", "sha256": _sha256_file(shard), "skipped": [list(b) for b in bad]}
    write_json(folder / f"{part.name}.json", manifest, option="manifest")
    return manifest


def _encode_task(*args, **kwargs) -> Dict[str, Any]:
    """encode_partition as a Dask task. minibert's own errors (bad input, a full disk) come back as a value: the
    worker then logs no "Compute Failed" traceback for them, and the client raises them as they are."""
    try:
        return {"manifest": encode_partition(*args, **kwargs)}
    except MinibertError as e:
        return {"error": e}


# ----------------------------------------------------------------------------------------------------------------
# The run
# ----------------------------------------------------------------------------------------------------------------

@dataclass
class CorpusRun:
    """What `encode_corpus` did: vectors written, partitions encoded this time and reused from an earlier run,
    and every line left out (source, line, reason; line 0 for a whole empty file)."""
    output: Path
    count: int
    dim: int
    encoded: List[int] = field(default_factory=list)
    reused: List[int] = field(default_factory=list)
    skipped: List[Tuple[str, int, str]] = field(default_factory=list)


def _load_encoder(model, revision: Optional[str]):
    from .encoder import SentenceEncoder
    if isinstance(model, (str, os.PathLike)):
        return SentenceEncoder.from_pretrained(os.fspath(model), revision=revision)
    return model


def encode_corpus(inputs: Union[PathLike, Sequence[PathLike]], output: PathLike, *, model=DEFAULT_MODEL,
                  revision: Optional[str] = None, client=None, batch_size: int = 32, partition_size: int = 10_000,
                  normalize_embeddings: bool = False, errors: str = "raise", text_field: str = "text",
                  show_progress_bar: Optional[bool] = None) -> CorpusRun:
    """Embed every line of `inputs` on a Dask cluster into `output`, resumably.

    inputs: paths or glob patterns of text files (one text per line) or JSON lines (.jsonl/.ndjson) with a
        `text_field` string. model: a SentenceEncoder, or a folder / Hub id to load one from (on every worker).
    client: a `dask.distributed.Client`; without one a LocalCluster with one single-threaded worker process per
        core runs for the duration of the call. errors: "raise" stops at the first bad line (InputError naming file
        and line); "skip" leaves bad lines and empty files out and lists them in the manifests and the index.
    Writes `output/shards/NNNNN.npy` (count, H) float32 + `NNNNN.json` per partition and `output/index.json`.
    """
    if client is None:
        check_main_guard()  # before any work
    if errors not in ("raise", "skip"):
        raise InputError(f"errors: expected 'raise' or 'skip', got {errors!r}")
    if not isinstance(batch_size, int) or batch_size < 1:
        raise InputError(f"batch_size: expected a positive integer, got {batch_size!r}")
    files = expand_inputs(inputs)
    parts, skipped_files = plan_partitions(files, partition_size, errors=errors)
    encoder = _load_encoder(model, revision)
    model_id = _model_id(encoder, normalize_embeddings)
    blob = pickle.dumps(encoder)
    out = Path(output).expanduser().resolve()
    shards = out / "shards"
    try:
        shards.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise OutputError(f"{output}: cannot create the output folder {shards} ({e.strerror})") from None
    with folder_lock(out):  # another run on this folder would sweep this run's temp files, and vice versa
        todo = [p for p in parts if not shard_is_valid(shards, p, model_id, errors)]
        reused = sorted({p.index for p in parts} - {p.index for p in todo})
        options = dict(batch_size=batch_size, normalize_embeddings=normalize_embeddings, errors=errors,
                       text_field=text_field)
        if todo:
            (out / "index.json").unlink(missing_ok=True)  # until the run completes, there is no valid index
            if client is None:
                with local_client() as local:
                    _run_tasks(local, todo, blob, str(shards), model_id, options, show_progress_bar)
            else:
                _run_tasks(client, todo, blob, str(shards), model_id, options, show_progress_bar)
        for stale in shards.glob(".*.tmp"):  # left by a worker killed while writing (this folder is ours)
            stale.unlink(missing_ok=True)
        index = _write_index(out, files, parts, shards, model_id, encoder.get_sentence_embedding_dimension(),
                             skipped_files, errors)
    return CorpusRun(out, index["count"], index["dim"], [p.index for p in todo], reused,
                     [tuple(s) for s in index["skipped"]])


def dask_names(*names: str) -> tuple:
    """Names from dask.distributed, or a clear error when it is not installed (the core package never needs it)."""
    try:
        import dask.distributed
    except ImportError:
        raise MinibertError("encoding a corpus on Dask needs dask.distributed: pip install 'dask[distributed]' (in a "
                            "clone of minibert: pip install -e '.[dask]')") from None
    return tuple(getattr(dask.distributed, n) for n in names)


def _model_id(encoder, normalize_embeddings: bool) -> Dict[str, Any]:
    """What identifies the vectors: the encoder's settings (files, revision, pooling, ...) and the normalization."""
    return {**encoder.settings(), "normalize_embeddings": bool(normalize_embeddings)}


def _is_main_guard(node: ast.AST) -> bool:
    """`if __name__ == "__main__":` (either way round)."""
    if not (isinstance(node, ast.If) and isinstance(node.test, ast.Compare) and len(node.test.ops) == 1
            and isinstance(node.test.ops[0], ast.Eq)):
        return False
    sides = [node.test.left, *node.test.comparators]
    names = {s.id for s in sides if isinstance(s, ast.Name)} | {s.value for s in sides if isinstance(s, ast.Constant)}
    return names == {"__name__", "__main__"}


def check_main_guard() -> None:
    """Refuse to start worker processes from a script's top level outside `if __name__ == "__main__":`.

    Dask spawns its workers, and each imports the main script again: unguarded, that import starts another
    cluster and Dask fails with hundreds of lines ending "Nanny failed to start". The signal is exact: the
    frame running the main script's top level is on the call stack, at a line outside every such `if` block.
    """
    main = sys.modules.get("__main__")
    script = getattr(main, "__file__", None)
    frame = sys._getframe(1)
    while frame is not None and not (frame.f_code.co_name == "<module>" and frame.f_globals is vars(main)):
        frame = frame.f_back
    if script is None or frame is None:  # an interactive session, or called after the script's top level ran
        return
    try:
        tree = ast.parse(Path(script).read_bytes())
    except (OSError, SyntaxError, ValueError):
        return
    line = frame.f_lineno
    if any(_is_main_guard(node) and node.body[0].lineno <= line <= node.body[-1].end_lineno
           for node in ast.walk(tree)):
        return
    raise MinibertError(f"{script}:{line}: a local Dask cluster starts worker processes that import this script "
                        "again; put the code that encodes under `if __name__ == \"__main__\":` (see the README), "
                        "or pass client= a Client of a running cluster")


@contextmanager
def local_client():
    """A LocalCluster sized to the machine and its Client, closed on exit: one single-threaded worker process
    per core (Dask's nanny sets each worker's BLAS to one thread, WORKER_ENV the forward pass's own threads)."""
    check_main_guard()
    Client, LocalCluster = dask_names("Client", "LocalCluster")
    with LocalCluster(n_workers=os.cpu_count() or 1, threads_per_worker=1, processes=True, dashboard_address=":0",
                      env=WORKER_ENV) as cluster, Client(cluster) as client:
        yield client


def _run_tasks(client, todo: List[Partition], blob: bytes, shards: str, model_id, options, show_progress_bar):
    """Submit one task per partition and wait for all. A task error cancels the later partitions and, once the
    earlier ones are done, the error of the first failed partition in input order is raised."""
    as_completed, = dask_names("as_completed")
    run = uuid.uuid4().hex[:12]  # fresh keys: a finished run's results, still held by the scheduler, are not reused
    futures = [client.submit(_encode_task, p, blob, shards, model_id, **options,
                             key=f"minibert-encode-{run}-{p.name}")
               for p in todo]
    position = {f.key: i for i, f in enumerate(futures)}
    failures: Dict[int, Any] = {}  # position -> minibert's error, or the future of an unexpected failure
    try:
        with progress(len(todo), "encode-corpus", "shard", show_progress_bar) as advance:
            for future in as_completed(futures):
                i = position[future.key]
                failure = _failure(future)
                if failure is not None:
                    if not failures or i < min(failures):
                        client.cancel(futures[i + 1:])  # the first failure in input order is what is reported
                    failures[i] = failure
                elif future.status == "finished":
                    advance(1)
                if failures and all(f.done() for f in futures[:min(failures)]):
                    break
        if failures:
            # An earlier partition may have finished before as_completed handed it over: look at each directly.
            for j in range(min(failures)):
                failure = _failure(futures[j])
                if failure is not None:
                    failures[j] = failure
                    break
            first = failures[min(failures)]
            if isinstance(first, MinibertError):
                raise first
            first.result()  # re-raises an unexpected task error, with its traceback
    except BaseException:
        client.cancel(futures)
        raise


def _failure(future):
    """A finished task's failure: the future itself for an unexpected error, minibert's error for a bad input
    (returned, not raised, so that workers log no traceback), None otherwise."""
    if future.status == "error":
        return future
    return future.result().get("error") if future.status == "finished" else None


def _write_index(out: Path, files: List[Path], parts: List[Partition], shards: Path, model_id, dim: int,
                 skipped_files, errors: str) -> Dict:
    """Write `out/index.json`: every shard in input order and every line left out, in input order."""
    entries, skipped = [], []
    for p in parts:
        if not shard_is_valid(shards, p, model_id, errors):  # every task reported success: this would be a bug
            raise RuntimeError(f"{shards / p.name}.json: shard missing or invalid after the run")
        entries.append(read_json(shards / f"{p.name}.json"))
        skipped.extend([p.source, line, reason] for line, reason in entries[-1]["skipped"])
    order = {str(f): i for i, f in reversed(list(enumerate(files)))}  # a file given twice: its first place
    skipped = sorted(skipped + [list(s) for s in skipped_files], key=lambda s: (order[s[0]], s[1]))
    index = {"format": FORMAT, "model": model_id, "dim": dim,
             "dtype": "float32", "count": sum(e["count"] for e in entries),
             "shards": [{k: e[k] for k in ("shard", "source", "first_line", "last_line", "count", "sha256",
                                           "skipped")} for e in entries],
             "skipped": skipped}
    write_json(out / "index.json", index, option="index")
    return index


# ----------------------------------------------------------------------------------------------------------------
# Reading the result back
# ----------------------------------------------------------------------------------------------------------------

@dataclass
class Shard:
    """One partition's vectors. lines: (n,) 1-based line numbers in `source`; vectors: (n, H) float32,
    memory-mapped."""
    source: str
    lines: np.ndarray
    vectors: np.ndarray


class Embeddings:
    """The vectors of an `encode_corpus` output folder, shard by shard in input order.

    >>> emb = load_embeddings("vectors/")
    >>> len(emb), emb.dim                 # N vectors of H floats
    >>> for shard in emb: ...             # Shard(source, lines (n,), vectors (n, H) memory-mapped)
    >>> emb.array()                       # (N, H) in memory, input order
    """

    def __init__(self, folder: Path, index: Dict[str, Any], shards: List[Shard]):
        self.folder = folder
        self.model = index["model"]
        self.dim = index["dim"]
        self.skipped = [tuple(s) for s in index["skipped"]]
        self.shards = shards

    def __len__(self) -> int:
        return sum(len(s.lines) for s in self.shards)

    def __iter__(self) -> Iterator[Shard]:
        return iter(self.shards)

    def array(self) -> np.ndarray:
        """(N, H) float32: every vector in input order, copied into memory."""
        return np.concatenate([s.vectors for s in self.shards]) if self.shards else np.zeros((0, self.dim or 0),
                                                                                               np.float32)

    def lines(self) -> List[Tuple[str, int]]:
        """(source, 1-based line) of each row of `array()`."""
        return [(s.source, int(n)) for s in self.shards for n in s.lines]

    def __repr__(self) -> str:
        return f"Embeddings({str(self.folder)!r}, count={len(self)}, dim={self.dim}, shards={len(self.shards)})"


def load_embeddings(output: PathLike, *, verify: bool = True) -> Embeddings:
    """Open an `encode_corpus` output folder: every shard memory-mapped, in input order, with the line each
    vector came from. verify=True (the default) checks each shard's SHA-256 against the index (reads every byte
    once); a missing, altered or mis-shaped shard raises InputError naming it."""
    folder = Path(output).expanduser()
    index_path = folder / "index.json"
    if not index_path.is_file():
        raise InputError(f"{index_path}: no such file; is {folder} the output folder of a finished "
                         "encode_corpus run?")
    index = read_json(index_path)
    if not isinstance(index, dict) or index.get("format") != FORMAT:
        raise InputError(f"{index_path}: format {index.get('format') if isinstance(index, dict) else None!r}; "
                         f"expected {FORMAT!r}")
    _check_index(index, index_path)
    shards = [_open_shard(folder / "shards", entry, index["dim"], verify) for entry in index["shards"]]
    return Embeddings(folder, index, shards)


def _is_int(value: Any, least: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= least


def _check_index(index: Dict[str, Any], path: Path) -> None:
    """Refuse an index.json whose fields have the wrong type, or whose line ranges, skipped lines and counts do
    not add up (the shards' row counts are checked against `count` as each is opened)."""
    def bad(where: str, expected: str) -> InputError:
        return InputError(f"{path}: {where}; expected {expected} (run encode_corpus again to rebuild the index)")

    if not _is_int(index.get("dim"), 1):
        raise bad(f"dim {index.get('dim')!r}", "a positive integer")
    for key in ("shards", "skipped"):
        if not isinstance(index.get(key), list):
            raise bad(f"{key} {type(index.get(key)).__name__}", "a list")
    for i, entry in enumerate(index["shards"]):
        where = f"shards[{i}]"
        if not isinstance(entry, dict):
            raise bad(f"{where} is {type(entry).__name__}", "an object")
        name = entry.get("shard")
        if not isinstance(name, str) or Path(name).name != name or not name.endswith(".npy"):
            raise bad(f"{where}.shard {name!r}", "a file name in shards/ ending in .npy")
        for key in ("source", "sha256"):
            if not isinstance(entry.get(key), str):
                raise bad(f"{where}.{key} {entry.get(key)!r}", "a string")
        for key, least in (("first_line", 1), ("last_line", 1), ("count", 0)):
            if not _is_int(entry.get(key), least):
                raise bad(f"{where}.{key} {entry.get(key)!r}", f"an integer of at least {least}")
        first, last = entry["first_line"], entry["last_line"]
        skipped = entry.get("skipped")
        if not isinstance(skipped, list) or not all(
                isinstance(s, list) and len(s) == 2 and _is_int(s[0], first) and s[0] <= last for s in skipped):
            raise bad(f"{where}.skipped", f"a list of [line, reason] with lines {first}-{last}")
        if len({s[0] for s in skipped}) != len(skipped) or last - first + 1 - len(skipped) != entry["count"]:
            raise bad(f"{where}: lines {first}-{last} less {len(skipped)} skipped against count {entry['count']}",
                      "a count that is the lines kept")


def _open_shard(folder: Path, entry: Dict[str, Any], dim: int, verify: bool) -> Shard:
    path = folder / entry["shard"]
    try:
        vectors = np.load(path, mmap_mode="r")
    except (OSError, ValueError) as e:
        raise InputError(f"{path}: cannot be read as a shard ({e}); run encode_corpus again to redo it") from None
    if vectors.shape != (entry["count"], dim) or vectors.dtype != np.float32:
        raise InputError(f"{path}: shape {vectors.shape} {vectors.dtype}; the index expects "
                         f"({entry['count']}, {dim}) float32; run encode_corpus again to redo it")
    if verify and _sha256_file(path) != entry["sha256"]:
        raise InputError(f"{path}: checksum differs from the index (altered or corrupt); run encode_corpus again "
                         "to redo it")
    bad = {line for line, _ in entry["skipped"]}  # the index was checked: the range is count + len(bad) lines
    lines = np.array([n for n in range(entry["first_line"], entry["last_line"] + 1) if n not in bad], np.int64)
    return Shard(entry["source"], lines, vectors)
