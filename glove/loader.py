"""``load`` and ``convert``: from any supported source to a memory-mapped ``GloVe``."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Union

from . import hub
from .cache import cached_folder, default_cache_root, file_lock, fingerprint, open_cached
from .errors import GloVeFormatError
from .gensim_pickle import convert_keyed_vectors
from .store import MappedTable, check_destination, is_converted_folder, open_folder
from .table import GloVe
from .textfile import ProgressFn, TextSource, convert_text

PathLike = Union[str, "os.PathLike[str]"]


@dataclass(frozen=True)
class _Source:
    """A resolved, local, not-yet-converted source."""

    kind: str  # "text" or "gensim"
    path: Path
    member: str | None
    label: str  # names the cache folder, e.g. "glove.6B.100d"
    hub: str | None = None

    def files(self) -> list[Path]:
        beside = self.path.with_name(self.path.name + ".vectors.npy")  # absent when gensim kept the vectors inline
        return [self.path, beside] if self.kind == "gensim" and beside.exists() else [self.path]


def _resolve(source: PathLike, member: str | None, filename: str | None, revision: str | None) -> Path | _Source:
    """A converted folder's path, or the local files of a source to convert (fetched from the Hub if need be)."""
    path = Path(source).expanduser()
    if path.is_dir():
        if not is_converted_folder(path):
            raise GloVeFormatError(path, "a folder, but not one converted by glove (no manifest.json)")
        if member or filename:
            raise ValueError("member=/filename= do not apply to a converted folder")
        return path
    if path.is_file():
        if filename is not None:
            raise ValueError("filename= only applies to Hugging Face Hub sources")
        kind = "gensim" if path.suffix == ".model" else "text"
        if kind == "gensim" and member is not None:
            raise ValueError("member= only applies to zip archives, not to a gensim .model")
        return _Source(kind, path.resolve(), member, Path(member).name if member else path.name)
    if isinstance(source, str) and hub.is_hub_name(source):
        files = hub.fetch(source, filename=filename, member=member, revision=revision)
        kind = "gensim" if files.path.suffix == ".model" else "text"
        return _Source(kind, files.path, files.member, files.label, hub=f"{files.repo_id}@{files.path.parent.name}")
    raise FileNotFoundError(
        f"{source}: no such file or folder, and not a Hugging Face Hub name such as 'fse/glove-wiki-gigaword-100'"
    )


def _label(name: str) -> str:
    for suffix in (".gz", ".bz2", ".xz", ".zip", ".txt", ".model"):
        name = name.removesuffix(suffix)
    return name


def convert(
    source: PathLike,
    dest: PathLike | None = None,
    *,
    member: str | None = None,
    filename: str | None = None,
    revision: str | None = None,
    cache_dir: PathLike | None = None,
    progress: ProgressFn | None = None,
) -> Path:
    """Convert ``source`` (see ``load``) once and return the converted folder.

    Without ``dest`` the folder lives in the cache (``<cache>/<name>-<fingerprint>``). A folder that already holds
    this source's conversion (same fingerprint) is reused; anything else there is rebuilt.
    """
    return _convert(source, dest, member, filename, revision, cache_dir, progress)[0]


def _convert(source: PathLike, dest: PathLike | None, member: str | None, filename: str | None,
             revision: str | None, cache_dir: PathLike | None,
             progress: ProgressFn | None) -> tuple[Path, MappedTable | None]:
    """``convert``, also returning the converted folder's mapped table when it was opened on the way."""
    resolved = _resolve(source, member, filename, revision)
    if isinstance(resolved, Path):
        if dest is None:
            return resolved, None
        return GloVe.open(resolved).save(dest), None
    src = resolved
    fp = fingerprint(src.files(), extra=f"{src.kind}\0{src.member or ''}")
    manifest: dict[str, Any] = {
        "source": {"kind": src.kind, "path": str(src.path), "member": src.member, "hub": src.hub, "fingerprint": fp}
    }

    def build(folder: Path) -> None:
        if src.kind == "gensim":
            convert_keyed_vectors(src.path, folder, manifest)
        else:
            convert_text(TextSource(src.path, src.member), folder, manifest=manifest, progress=progress)

    if dest is None:
        root = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_root()
        dest = cached_folder(root, _label(src.label), fp)
    else:
        check_destination(Path(dest))  # before the work, not only when the result is put in place
    return Path(dest), _build_once(Path(dest), fp, build)


def _build_once(dest: Path, fp: str, build: Any) -> MappedTable:
    """Build ``dest`` unless it already holds fingerprint ``fp``; concurrent builders take turns on a lock file.
    Returns the folder's mapped table, opened and checked once."""
    mapped = open_cached(dest, fp)
    if mapped is None:
        with file_lock(dest.parent / f".{dest.name}.lock"):
            mapped = open_cached(dest, fp)  # another process may have finished it while we waited
            if mapped is None:
                build(dest)
                mapped = open_folder(dest)
    return mapped


def load(
    source: PathLike,
    *,
    member: str | None = None,
    filename: str | None = None,
    revision: str | None = None,
    cache_dir: PathLike | None = None,
    progress: ProgressFn | None = None,
) -> GloVe:
    """Open a GloVe table, converting it into the cache the first time.

    ``source`` is a GloVe text file (``.txt``, ``.txt.gz``, ``.zip`` with ``member=`` choosing the file inside),
    a gensim ``KeyedVectors.save`` file (``.model``), a folder converted by this package, or a Hugging Face Hub
    name (``fse/glove-wiki-gigaword-100``, ``stanfordnlp/glove`` with ``filename=``/``member=``).
    Later loads memory-map the converted folder and never read the source's text again.
    """
    folder, mapped = _convert(source, None, member, filename, revision, cache_dir, progress)
    return GloVe.open(folder) if mapped is None else GloVe.from_mapped(mapped, folder)
