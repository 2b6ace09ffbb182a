"""Reading inputs and writing outputs, the same way for every command and API.

    read_json(path, CheckpointError)       JSON with one error style, in the error class the caller picks
    open_input("-" or path)                 a text / JSON-lines input, streamed once (a FIFO or <(...) works)
    read_texts(stream, label, json_lines)   its texts; a bad line is an InputError naming file:line
    atomic_output(path, inputs=...)         write to a temp file, fsync, rename: all or nothing
    atomic_folder(path, check=...)          the same for a whole folder; a previous one is replaced only once whole
    write_npy(path, blocks, dim)            (N, dim) float32 / int8 / uint8 rows, plain writes (a full disk is an error)
    progress(total, desc, unit, show)       a tqdm bar on stderr, or nothing
    folder_lock(folder)                     one run at a time in an output folder

The line rule, for every command: a line ends at \\n (a \\r before it is dropped; a byte-order mark at the start
of the file is not text). In a text file each line is one text and a blank line (empty or only white space) is
an error, not the text "": its vector would be that of [CLS] [SEP], almost always an accident. An empty text on
purpose is written in JSON lines as {"text": ""}. In a JSON-lines file each line is an object with a string
"text" field.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import shutil
import signal
import socket
import stat
import sys
import tempfile
import threading
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any, BinaryIO, Callable, Iterable, Iterator, Optional, Sequence, Set, Tuple, Type, Union

import numpy as np

from .errors import InputError, MinibertError, OutputError

PathLike = Union[str, os.PathLike]
JSON_LINES_SUFFIXES = (".jsonl", ".ndjson")
# An .npy header of this fixed size (a multiple of 64, as the format wants) holds any 2-D shape; it is written
# last, so that rows can be streamed before their count is known.
NPY_HEADER_BYTES = 128
_MISSING = object()


# ----------------------------------------------------------------------------------------------------------------
# JSON
# ----------------------------------------------------------------------------------------------------------------

def parse_json(raw: Union[bytes, str], label: str, error: Type[MinibertError] = InputError) -> Any:
    """Parse JSON text; anything the parser chokes on (bad UTF-8 or syntax, nesting too deep, a 5,000-digit
    integer) raises `error` naming `label`."""
    try:
        text = raw.decode("utf-8") if isinstance(raw, bytes) else raw
        return json.loads(text)
    except UnicodeDecodeError as e:
        raise error(f"{label}: not UTF-8 (byte 0x{e.object[e.start]:02x} at offset {e.start}); expected UTF-8 "
                    "JSON") from None
    except json.JSONDecodeError as e:
        raise error(f"{label}: not valid JSON ({e.msg} at line {e.lineno} column {e.colno})") from None
    except RecursionError:
        raise error(f"{label}: not valid JSON (nested too deeply to parse)") from None
    except ValueError as e:  # an integer too long to convert
        raise error(f"{label}: not valid JSON ({e})") from None


def read_json(path: PathLike, error: Type[MinibertError] = InputError, *, missing: Any = _MISSING) -> Any:
    """The parsed JSON file at `path`. A missing file gives `missing` when one is passed, else `error`."""
    try:
        raw = Path(path).read_bytes()
    except FileNotFoundError:
        if missing is not _MISSING:
            return missing
        raise error(f"{path}: not found") from None
    except OSError as e:
        raise error(f"{path}: cannot be read ({e.strerror})") from None
    return parse_json(raw, str(path), error)


def read_json_object(path: PathLike, error: Type[MinibertError] = InputError, *, missing: Any = _MISSING) -> dict:
    """read_json for a file that must hold a JSON object (a config): anything else is an `error`."""
    value = read_json(path, error, missing=missing)
    if not isinstance(value, dict):
        raise error(f"{path}: expected a JSON object, got {type(value).__name__}")
    return value


# ----------------------------------------------------------------------------------------------------------------
# Text and JSON-lines input
# ----------------------------------------------------------------------------------------------------------------

class LineError(ValueError):
    """Why one line holds no usable text (the caller adds the file and line number)."""


def is_json_lines(name: str) -> bool:
    return name.lower().endswith(JSON_LINES_SUFFIXES)


def line_text(raw: bytes, *, json_lines: bool, text_field: str = "text", first: bool = False) -> str:
    """The text of one raw line (its \\n optional); raises LineError saying what is wrong and what was expected."""
    try:
        line = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise LineError(f"not UTF-8 (byte 0x{raw[e.start]:02x} at column {e.start + 1})") from None
    if first:
        line = line.removeprefix("\ufeff")
    line = line.removesuffix("\n").removesuffix("\r")
    if not json_lines:
        if not line.strip():
            raise LineError("blank line; expected one text per line (write an empty text as JSON lines: "
                            '{"text": ""})')
        return line
    if not line.strip():
        raise LineError(f"blank line; expected a JSON object with a {text_field!r} field")
    try:
        record = json.loads(line)
    except json.JSONDecodeError as e:
        raise LineError(f"not JSON ({e.msg} at column {e.colno})") from None
    except (RecursionError, ValueError) as e:
        raise LineError(f"not JSON ({'nested too deeply' if isinstance(e, RecursionError) else e})") from None
    if not isinstance(record, dict) or text_field not in record:
        raise LineError(f"no {text_field!r} field; expected a JSON object such as {{\"{text_field}\": \"...\"}}")
    text = record[text_field]
    if not isinstance(text, str):
        raise LineError(f"{text_field!r} is {type(text).__name__}; expected a string")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as e:  # JSON's \ud800 escapes decode to a lone surrogate: not Unicode text
        raise LineError(f"{text_field!r} holds a lone surrogate (\\u{ord(text[e.start]):04x} at character "
                        f"{e.start + 1}); expected Unicode text") from None
    return text


def read_texts(stream: Iterable[bytes], label: str, json_lines: bool, text_field: str = "text") -> Iterator[str]:
    """The texts of a binary stream of lines, in order; the first bad line raises InputError naming label:line."""
    for number, raw in enumerate(stream, 1):
        try:
            yield line_text(raw, json_lines=json_lines, text_field=text_field, first=number == 1)
        except LineError as e:
            raise InputError(f"{label}:{number}: {e}") from None


@contextmanager
def open_input(name: str, option: str = "--input") -> Iterator[Tuple[BinaryIO, str, Optional[os.stat_result]]]:
    """A binary input stream, its label for messages and its stat (to refuse writing over it; None for a standard
    input that is no file descriptor); "-" is standard input. Read once, front to back: a FIFO or a process
    substitution works as well as a file."""
    if name == "-":
        try:
            info: Optional[os.stat_result] = os.fstat(sys.stdin.buffer.fileno())
        except (OSError, ValueError):  # replaced by an object in memory (a test harness, an embedding program)
            info = None
        yield sys.stdin.buffer, "<stdin>", info
        return
    try:
        f = open(name, "rb")
    except OSError as e:
        raise InputError(f"{option} {name}: {e.strerror}") from None
    with f:
        info = os.fstat(f.fileno())
        if stat.S_ISDIR(info.st_mode):
            raise InputError(f"{option} {name}: is a folder; expected a text or JSON-lines file")
        yield f, name, info


def count_lines(stream: BinaryIO, info: os.stat_result) -> Optional[int]:
    """The number of lines of a regular file (then rewound), for a progress bar's total; None for a pipe, which
    can be read only once."""
    if not stat.S_ISREG(info.st_mode):
        return None
    count, last = 0, b"\n"
    for block in iter(lambda: stream.read(1 << 20), b""):
        count, last = count + block.count(b"\n"), block[-1:]
    stream.seek(0)
    return count + (last != b"\n")


# ----------------------------------------------------------------------------------------------------------------
# Output
# ----------------------------------------------------------------------------------------------------------------

Inputs = Sequence[Tuple[str, Optional[os.stat_result]]]


def check_output(path: PathLike, inputs: Inputs = (), option: str = "--output", *, folder: bool = False,
                 error: Type[Exception] = OutputError) -> Path:
    """The real path to write `path` to (a symbolic link's target), after refusing what must not be replaced:
    a folder, FIFO, device or anything but a regular file (with folder=True: anything but a folder); one of the
    `inputs` ((label, stat) pairs, compared by device and inode, so a hard link or another spelling of the name
    is caught), or for a folder, one holding an input anywhere inside (it is removed once replaced); a missing or
    unwritable parent folder. Refusals raise `error`, naming `path` after `option` (if any)."""
    name = _named(path, option)
    target = Path(os.path.realpath(os.fspath(path)))
    try:
        info = os.stat(target)
    except FileNotFoundError:
        info = None
    except OSError as e:
        raise error(f"{name}: {e.strerror}") from None
    if info is not None:
        if stat.S_ISREG(info.st_mode) and folder:
            raise error(f"{name}: is a file; expected a folder")
        if stat.S_ISDIR(info.st_mode) and not folder:
            raise error(f"{name}: is a folder; expected a file name")
        if not (stat.S_ISDIR(info.st_mode) or stat.S_ISREG(info.st_mode)):
            raise error(f"{name}: exists and is not a {'folder' if folder else 'regular file'} (a device, FIFO or "
                        "socket); refusing to replace it")
        itself = (info.st_dev, info.st_ino)
        replaced = _inodes_under(target) | {itself} if folder and inputs else {itself}
        for label, other in inputs:
            if other is not None and (other.st_dev, other.st_ino) in replaced:
                verb = "is" if (other.st_dev, other.st_ino) == itself else "holds"
                raise error(f"{name}: {verb} the input {label}; refusing to overwrite an input")
    parent = target.parent
    if not parent.is_dir():
        raise error(f"{name}: folder {parent} does not exist")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise error(f"{name}: folder {parent} is not writable")
    return target


def _named(path: PathLike, option: str) -> str:
    """How a message names an output: `--output out.npy`, or the bare path for an API with no option."""
    return f"{option} {os.fspath(path)}" if option else os.fspath(path)


def _inodes_under(folder: Path) -> Set[Tuple[int, int]]:
    """(device, inode) of every entry below `folder`, symbolic links not followed (removing a link loses
    nothing)."""
    found: Set[Tuple[int, int]] = set()
    for root, dirs, files in os.walk(folder):
        for name in dirs + files:
            info = os.lstat(os.path.join(root, name))
            found.add((info.st_dev, info.st_ino))
    return found


def _cannot_write(name: str, e: OSError) -> str:
    """The message of a write that failed: the disk being full is said in words."""
    what = "the disk is full" if e.errno in (errno.ENOSPC, errno.EDQUOT) else e.strerror or str(e)
    return f"{name}: cannot write ({what}); nothing was written"


def file_mode(base: int = 0o666) -> int:
    """The permissions an ordinary new file (base 0o666; a folder: 0o777) gets under the current umask (read
    without a race: os.umask is process-wide, so the /proc value is preferred when there is one)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return base & ~int(line.split()[1], 8)
    except OSError:
        pass
    umask = os.umask(0o022)
    os.umask(umask)
    return base & ~umask


@contextmanager
def signals_raise() -> Iterator[None]:
    """SIGTERM raises SystemExit while a temp file is open (SIGINT already raises KeyboardInterrupt), so that
    the cleanup runs. Only in the main thread, and only when nobody else handles SIGTERM."""
    if threading.current_thread() is not threading.main_thread() or \
            signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
        yield
        return

    def terminate(signum, frame):
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, terminate)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)


@contextmanager
def atomic_output(path: PathLike, *, inputs: Inputs = (), option: str = "--output") -> Iterator[BinaryIO]:
    """A binary file to write `path` through: a temp file in the same folder, fsync-ed and renamed over `path`
    when the block ends, with the permissions of any ordinary file. On an error, SIGINT or SIGTERM the temp file
    is removed and `path` is untouched. See check_output for what is refused."""
    target = check_output(path, inputs, option)
    with signals_raise():
        try:
            fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
        except OSError as e:
            raise OutputError(f"{_named(path, option)}: cannot create a file in {target.parent} ({e.strerror})") \
                from None
        try:
            with os.fdopen(fd, "wb") as f:
                os.fchmod(f.fileno(), file_mode())  # mkstemp's file is private
                yield f
                f.flush()
                os.fsync(f.fileno())
            check_output(target, inputs, option)  # nothing else appeared at the name meanwhile
            os.replace(tmp, target)
        except OSError as e:
            Path(tmp).unlink(missing_ok=True)
            raise OutputError(_cannot_write(_named(path, option), e)) from None
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise


@contextmanager
def atomic_folder(path: PathLike, *, check: Optional[Callable[[Path], None]] = None, inputs: Inputs = (),
                  option: str = "--output", error: Type[Exception] = OutputError) -> Iterator[Path]:
    """A new, empty temp folder beside `path` (same file system) to fill in the block; when the block ends its
    files are fsync-ed and it is renamed to `path`. A previous folder there is renamed aside first and removed
    only once the new one is in place, so `path` holds either all of the previous output or all of the new one.
    On an error, SIGINT or SIGTERM the temp folder is removed and the previous output is left as it was.

    check: the caller's own rule for what may be replaced (a folder of its own files, say), called with `path`
    before the generic refusals of check_output(folder=True), on entry and again just before the rename.
    error: the exception class for a refusal or a failed write (an OSError raised in the block becomes one too).
    """
    name = _named(path, option)

    def refuse() -> Path:
        if check is not None:
            check(Path(path))
        return check_output(path, inputs, option, folder=True, error=error)

    target = refuse()
    with signals_raise():
        try:
            tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
        except OSError as e:
            raise error(f"{name}: cannot create a folder in {target.parent} ({e.strerror})") from None
        try:
            try:
                yield tmp
                os.chmod(tmp, file_mode(0o777))  # mkdtemp's folder is private
                _fsync_tree(tmp)
            except OSError as e:
                raise error(_cannot_write(name, e)) from None
            refuse()  # nothing else appeared at the name meanwhile (outside the try: the caller's own error)
            try:
                _rename_into_place(tmp, target)
            except OSError as e:
                raise error(_cannot_write(name, e)) from None
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise


def _fsync(path: PathLike, folder: bool = False) -> None:
    """Flush a file (or a folder's entries) to disk. A folder is best effort: some file systems cannot, and
    that is no reason to fail a write."""
    try:
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError:
        if not folder:
            raise


def _fsync_tree(folder: Path) -> None:
    """fsync every regular file and folder in `folder`, so that its data is on disk before a rename makes it the
    output (only regular files are opened: a FIFO would block)."""
    for root, _, files in os.walk(folder):
        for name in files:
            path = os.path.join(root, name)
            if stat.S_ISREG(os.lstat(path).st_mode):
                _fsync(path)
        _fsync(root, folder=True)


def _rename_into_place(tmp: Path, target: Path) -> None:
    """Rename the finished folder `tmp` to `target`. Over nothing or an empty folder that is one rename; a
    previous folder is renamed aside, put back if `tmp` cannot follow, and removed only once `tmp` is in."""
    try:
        os.rename(tmp, target)
        old = None
    except OSError as e:
        if e.errno not in (errno.ENOTEMPTY, errno.EEXIST):
            raise
        old = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".old", dir=target.parent))  # a free name
        try:
            os.rename(target, old)  # replaces the empty placeholder
            os.rename(tmp, target)
        except BaseException:
            if not os.path.lexists(target):
                os.rename(old, target)  # the previous output back under its name: nothing lost
            with suppress(OSError):
                os.rmdir(old)  # the placeholder, if still there (rmdir never removes a folder with files)
            raise
    _fsync(target.parent, folder=True)  # the rename is on disk before the previous output goes
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def write_bytes(path: PathLike, data: bytes, **options) -> None:
    """Write `data` to `path` atomically (see atomic_output)."""
    with atomic_output(path, **options) as f:
        f.write(data)


def write_json(path: PathLike, value: Any, **options) -> None:
    """Write `value` as UTF-8 JSON to `path` atomically (see atomic_output)."""
    write_bytes(path, json.dumps(value, indent=1, ensure_ascii=False).encode("utf-8"), **options)


def npy_header(rows: int, dim: int, dtype: str = "float32") -> bytes:
    """The NPY_HEADER_BYTES-byte .npy (version 1.0) header of a C-order (rows, dim) array of `dtype`."""
    descr = np.dtype(dtype).newbyteorder("<").str
    text = f"{{'descr': '{descr}', 'fortran_order': False, 'shape': ({rows}, {dim}), }}"
    body = text.ljust(NPY_HEADER_BYTES - 10 - 1).encode("latin1") + b"\n"
    return b"\x93NUMPY\x01\x00" + len(body).to_bytes(2, "little") + body


def write_npy(path: PathLike, blocks: Iterable[np.ndarray], dim: int, dtype: str = "float32", **options) -> int:
    """Stream (n, dim) blocks of rows into a .npy of `dtype` (float32, int8, uint8) at `path` atomically; returns
    the number of rows.

    Plain writes, no memory map: a full disk is an OutputError (a memory map would die of SIGBUS). The header,
    which holds the row count, is written last, so `blocks` may be a generator of unknown length."""
    rows = 0
    with atomic_output(path, **options) as f:
        f.write(bytes(NPY_HEADER_BYTES))
        for block in blocks:
            block = np.ascontiguousarray(block, dtype=np.dtype(dtype).newbyteorder("<"))
            if block.ndim != 2 or block.shape[1] != dim:
                raise InputError(f"{path}: a block of shape {block.shape}; expected (n, {dim})")
            f.write(block.data)
            rows += len(block)
        f.seek(0)
        f.write(npy_header(rows, dim, dtype))
    return rows


# ----------------------------------------------------------------------------------------------------------------
# Progress and locks
# ----------------------------------------------------------------------------------------------------------------

def wants_bar(show: Optional[bool]) -> bool:
    """A bar is shown when asked for; show=None: when stderr is a terminal."""
    return sys.stderr.isatty() if show is None else show


@contextmanager
def progress(total: Optional[int], desc: str, unit: str, show: Optional[bool]) -> Iterator[Callable[[int], None]]:
    """An `advance(n)` function driving a tqdm bar on stderr (total None: a count without percentage)."""
    if not wants_bar(show):
        yield lambda n: None
        return
    from tqdm import tqdm  # a declared dependency; imported only when a bar is shown
    with tqdm(total=total, desc=desc, unit=unit, file=sys.stderr) as bar:
        yield bar.update


@contextmanager
def folder_lock(folder: Path) -> Iterator[None]:
    """Hold `folder/.lock` for the block: a second run on the same folder gets an OutputError naming the PID
    that holds it. The kernel drops the lock when its process dies, so a crashed run leaves no stale lock."""
    path = folder / ".lock"
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 200).decode("utf-8", "replace").strip() or "another process"
            os.close(fd)
            raise OutputError(f"{folder}: in use by {holder}; wait for that run to finish, or pick another "
                              "output folder") from None
        try:  # the lock is on the file we opened: make sure it is still the one at `path` (see the unlink below)
            same = os.stat(path).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(fd)
    try:
        os.ftruncate(fd, 0)
        os.write(fd, f"PID {os.getpid()} on {socket.gethostname()}".encode())
        yield
    finally:
        Path(path).unlink(missing_ok=True)  # before the lock is released: a waiting run then opens a new file
        os.close(fd)
