"""The cache of converted tables: source fingerprints, folder names, validity, and an inter-process lock."""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
from collections.abc import Iterator
from pathlib import Path

from .errors import GloVeFormatError
from .store import MappedTable, is_converted_folder, open_folder


def fingerprint(paths: list[Path], extra: str = "") -> str:
    """A content fingerprint that costs ~1 MB of reading however large the files are.

    It hashes each file's size and 16 evenly spaced 64 KiB samples (first and last included), plus ``extra``
    (e.g. the zip member). Copies of a file share a fingerprint; an edit that changes the size or a sampled
    region changes it.
    """
    h = hashlib.sha256(f"glove-fingerprint-1\0{extra}\0".encode())
    block, samples = 1 << 16, 16
    for path in paths:
        with open(path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            h.update(size.to_bytes(8, "little"))
            for k in range(samples):
                f.seek(max(0, (size - block) * k // (samples - 1)))
                h.update(f.read(block))
    return h.hexdigest()


def default_cache_root() -> Path:
    """``$MINIBERT_CACHE/glove``, else ``$XDG_CACHE_HOME/minibert/glove``, else ``~/.cache/minibert/glove``."""
    if os.environ.get("MINIBERT_CACHE"):
        return Path(os.environ["MINIBERT_CACHE"]).expanduser() / "glove"
    base = os.environ.get("XDG_CACHE_HOME") or (
        os.environ.get("LOCALAPPDATA") if os.name == "nt" else None
    ) or Path.home() / ".cache"
    return Path(base).expanduser() / "minibert" / "glove"


def open_cached(folder: Path, fp: str) -> MappedTable | None:
    """The mapped table when ``folder`` is an intact conversion of the source with fingerprint ``fp``, else None.

    A damaged one (any file failing ``open_folder``'s checks) gives None: the cache is derived data, so it is
    rebuilt from the source rather than reported. The table is returned so that the caller need not open and
    check the folder a second time.
    """
    if not is_converted_folder(folder):
        return None
    try:
        mapped = open_folder(folder)
    except GloVeFormatError:
        return None
    source = mapped.manifest.get("source")
    return mapped if isinstance(source, dict) and source.get("fingerprint") == fp else None


@contextlib.contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """An exclusive inter-process lock on ``path`` (created if needed), so two converters take turns."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+b") as f:
        if os.name == "nt":  # pragma: no cover - exercised on Windows only
            import msvcrt

            f.seek(0)
            while True:
                try:
                    msvcrt.locking(f.fileno(), msvcrt.LK_LOCK, 1)
                    break
                except OSError:  # LK_LOCK gives up after 10 s; keep waiting like flock does
                    continue
            try:
                yield
            finally:
                f.seek(0)
                msvcrt.locking(f.fileno(), msvcrt.LK_UNLCK, 1)
        else:
            import fcntl

            fcntl.flock(f.fileno(), fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(f.fileno(), fcntl.LOCK_UN)


def cached_folder(root: Path, name: str, fp: str) -> Path:
    """``<root>/<name>-<fp[:16]>``, with ``name`` made safe as a folder name."""
    safe = re.sub(r"[^\w.-]+", "_", name).strip("._")[:80] or "table"
    return root / f"{safe}-{fp[:16]}"
