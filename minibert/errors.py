"""The exceptions minibert raises on bad input: each message names the file/key and what was expected."""

import reprlib

_REPR = reprlib.Repr()
_REPR.maxlevel, _REPR.maxstring, _REPR.maxother, _REPR.maxlong = 3, 80, 80, 40


class MinibertError(Exception):
    """Base class of every error minibert raises on purpose."""


class CheckpointError(MinibertError, ValueError):
    """A model folder, weights file or tensor is missing, malformed or disagrees with the config."""


class MissingHeadError(CheckpointError):
    """A checkpoint has no tensors of the task head asked for (a bare encoder loaded for fill-mask, say)."""


class ConfigError(CheckpointError):
    """config.json is missing, not JSON, lacks a required field or asks for something unsupported."""


class InputError(MinibertError, ValueError):
    """Arguments to the model or tokenizer have the wrong shape, type or range."""


class OutputError(MinibertError):
    """An output cannot be written where asked: an input, a folder or device, an unwritable folder, a full disk,
    or a folder another run is using."""


def shown(value: object) -> str:
    """A value read from a file or given by a caller, quoted for an error message: cut in depth and length, so
    that a hostile value (nested 900 deep, a 4,000-digit integer) cannot make the message huge or fail."""
    return _REPR.repr(value)
