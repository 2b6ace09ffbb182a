"""Exceptions raised by the :mod:`glove` package."""

from __future__ import annotations

__all__ = ["GloVeError", "GloVeFormatError", "UnsafePickleError", "HubError"]


class GloVeError(Exception):
    """Base class of every error this package raises on purpose."""


class GloVeFormatError(GloVeError, ValueError):
    """A source file (GloVe text, gensim pickle or converted folder) is malformed.

    The message names the file, and for text files the 1-based line number and an excerpt of the line.
    """

    def __init__(self, path: object, message: str, *, line: int | None = None, excerpt: bytes | None = None):
        self.path = str(path)
        self.message = message
        self.line = line
        self.excerpt = excerpt
        where = f"{self.path}, line {line}" if line is not None else self.path
        text = f"{where}: {message}"
        if excerpt is not None:
            text += f"\n    {_excerpt(excerpt)}"
        super().__init__(text)

    def __reduce__(self) -> tuple[object, ...]:  # picklable, e.g. back from a child process
        return (_rebuild, (type(self), self.path, self.message, self.line, self.excerpt))


class UnsafePickleError(GloVeFormatError):
    """A gensim pickle asked for a global that a KeyedVectors file never needs; nothing from it was run."""


class HubError(GloVeError, OSError):
    """A Hugging Face Hub source could not be resolved (offline and not cached, unknown repository or file...)."""


def _rebuild(cls: type[GloVeFormatError], path: str, message: str, line: int | None, excerpt: bytes | None) -> GloVeFormatError:
    return cls(path, message, line=line, excerpt=excerpt)


def _excerpt(raw: bytes, limit: int = 120) -> str:
    """A one-line, length-limited, repr-style excerpt of a raw line (undecodable bytes shown as \\xNN)."""
    text = raw.decode("utf-8", errors="backslashreplace").replace("\r", "\\r").replace("\t", "\\t")
    return text if len(text) <= limit else text[:limit] + f"... ({len(raw)} bytes)"
