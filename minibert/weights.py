"""Reading a checkpoint's tensors: safetensors files, memory-mapped, checked against the config.

A safetensors file is an 8-byte little-endian header length n, n bytes of JSON
({name: {"dtype", "shape", "data_offsets": [begin, end]}, "__metadata__": {...}}), then the
raw tensor bytes. We parse the header ourselves rather than through the `safetensors` library, for
three things it does not give a NumPy user: zero-copy arrays (the payload is mapped with `mmap` and
each array is a view of the file, so loading reads only the header and a tensor's pages are read
when first used; the library's NumPy loader copies every tensor into memory), bf16 without a
framework (NumPy has no bfloat16: the library refuses it, we widen its bits), and errors that name
the file and the tensor, with what was expected, for every malformed header.

A mapped file must not shrink while it is mapped: touching a page past its new end kills the
process with SIGBUS, which Python cannot catch. So each tensor remembers the file's identity,
size and modification time as mapped, and `to_float32` (the first use of every weight) refuses
a file that was rewritten in place since loading. A file *replaced* (a new file renamed over
the name, as `huggingface_hub` and `save_file` do) is harmless: the mapping keeps the old one.
What no check can prevent is a file truncated while a forward pass is reading it.
"""

from __future__ import annotations

import math
import mmap
import os
import re
import warnings
from pathlib import Path
from typing import Dict, Iterable, List, NamedTuple, Optional, Tuple

import numpy as np

from .config import BertConfig
from .errors import CheckpointError, MissingHeadError, shown
from .io import parse_json
from .params import POOLER_SHAPES, canonical_name, expected_shapes, sinusoidal_positions

# safetensors dtype -> NumPy dtype of the stored bytes. NumPy has no bfloat16: BF16 is kept as its raw
# 16-bit patterns and widened by `to_float32`.
STORED_DTYPES = {
    "F64": np.float64, "F32": np.float32, "F16": np.float16, "BF16": np.uint16,
    "I64": np.int64, "I32": np.int32, "I16": np.int16, "I8": np.int8, "U8": np.uint8, "BOOL": np.bool_,
}
FLOAT_DTYPES = ("F32", "F16", "BF16", "F64")
MAX_HEADER_BYTES = 100 * 1024 * 1024  # the safetensors format's own limit
MAX_DIMS = 32  # NumPy refuses more than 64; no real tensor has more than a handful

WEIGHTS_NAME = "model.safetensors"
INDEX_NAME = "model.safetensors.index.json"


class FileStamp(NamedTuple):
    """What identifies a file's contents as it was mapped: rewriting it in place changes the size or mtime."""

    device: int
    inode: int
    size: int
    mtime_ns: int


class StoredTensor(NamedTuple):
    """One tensor as stored: its safetensors dtype name, a read-only (memory-mapped) array, its file, and
    (for a mapped tensor) the file's stamp when it was mapped."""

    dtype: str
    array: np.ndarray
    file: Path
    stamp: Optional[FileStamp] = None


def _stamp(st: os.stat_result) -> FileStamp:
    """The FileStamp of a stat result."""
    return FileStamp(st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)


def read_safetensors(path: str | Path) -> Dict[str, StoredTensor]:
    """Parse and validate a .safetensors file's header and map its tensors without reading them."""
    path = Path(path)
    try:
        with open(path, "rb") as f:
            stamp = _stamp(os.fstat(f.fileno()))  # of the file we map, even if the name is replaced meanwhile
            size = stamp.size
            head = f.read(8)
            if len(head) < 8:
                raise CheckpointError(
                    f"{path}: truncated ({size} bytes); a safetensors file starts with an 8-byte header length")
            n = int.from_bytes(head, "little")
            if n > size - 8:
                raise CheckpointError(
                    f"{path}: header length {n} is larger than the file ({size} bytes): the file is truncated or "
                    "not a safetensors file")
            if n > MAX_HEADER_BYTES:
                raise CheckpointError(f"{path}: header length {n} exceeds the format's limit of {MAX_HEADER_BYTES}")
            raw_header = f.read(n)
            payload = size - 8 - n
            mm = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) if payload else None
    except OSError as e:
        raise CheckpointError(f"{path}: cannot read ({e.strerror or e})") from None

    header = parse_json(raw_header, f"{path}: the header", CheckpointError)
    if not isinstance(header, dict):
        raise CheckpointError(f"{path}: the header must be a JSON object, got {type(header).__name__}")

    tensors: Dict[str, StoredTensor] = {}
    spans = []
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        dtype, shape, (begin, end) = _check_entry(path, name, entry, payload)
        spans.append((begin, end, name))
        count = math.prod(shape)
        if count == 0:
            try:
                array = np.zeros(shape, STORED_DTYPES[dtype])
            except ValueError:  # NumPy refuses absurd dimensions even when one of them is 0
                raise CheckpointError(f"{path}: tensor {name!r}: shape {shape} is too large to represent") from None
        else:
            array = np.frombuffer(mm, STORED_DTYPES[dtype], count=count, offset=8 + n + begin).reshape(shape)
        tensors[name] = StoredTensor(dtype, array, path, stamp if count else None)
    _check_no_overlap(path, spans)
    return tensors


def _check_no_overlap(path: Path, spans: List[Tuple[int, int, str]]) -> None:
    """Refuse two tensors sharing bytes: one would silently read the other's values.

    Each span is compared with the furthest end of all spans before it, not just its sorted neighbour: a short
    span between two overlapping long ones must not hide the overlap. Empty spans hold no bytes and are skipped.
    """
    furthest_end, owner = 0, ""
    for begin, end, name in sorted(s for s in spans if s[1] > s[0]):
        if begin < furthest_end:
            raise CheckpointError(f"{path}: tensors {owner!r} and {name!r} overlap in the file "
                                  f"(bytes {begin}..{min(end, furthest_end)})")
        if end > furthest_end:
            furthest_end, owner = end, name


def _check_entry(path: Path, name: str, entry: object, payload: int) -> tuple:
    """Validate one header entry; returns (dtype, shape, (begin, end))."""
    where = f"{path}: tensor {name!r}"
    if not isinstance(entry, dict):
        raise CheckpointError(f"{where}: expected an object with dtype, shape and data_offsets, got {shown(entry)}")
    dtype, shape, offsets = entry.get("dtype"), entry.get("shape"), entry.get("data_offsets")
    if not isinstance(dtype, str) or dtype not in STORED_DTYPES:
        raise CheckpointError(f"{where}: unknown dtype {shown(dtype)}; expected one of {', '.join(STORED_DTYPES)}")
    if not isinstance(shape, list) or not all(type(d) is int and d >= 0 for d in shape):
        raise CheckpointError(f"{where}: shape must be a list of non-negative integers, got {shown(shape)}")
    if len(shape) > MAX_DIMS:
        raise CheckpointError(f"{where}: shape has {len(shape)} dimensions; expected at most {MAX_DIMS}")
    if (not isinstance(offsets, list) or len(offsets) != 2 or not all(type(o) is int for o in offsets)
            or not 0 <= offsets[0] <= offsets[1]):
        raise CheckpointError(f"{where}: data_offsets must be [begin, end] with 0 <= begin <= end, got "
                              f"{shown(offsets)}")
    begin, end = offsets
    if end > payload:
        raise CheckpointError(
            f"{where}: data_offsets {offsets} run past the end of the data ({payload} bytes): the file is truncated")
    nbytes = math.prod(shape) * np.dtype(STORED_DTYPES[dtype]).itemsize
    if end - begin != nbytes:
        raise CheckpointError(
            f"{where}: data_offsets {offsets} span {end - begin} bytes but shape {shape} of {dtype} needs {nbytes}")
    return dtype, shape, (begin, end)


def read_checkpoint(folder: str | Path) -> Dict[str, StoredTensor]:
    """All tensors of a model folder: `model.safetensors`, or the shards listed in `model.safetensors.index.json`."""
    folder = Path(folder)
    if (folder / WEIGHTS_NAME).is_file():
        return read_safetensors(folder / WEIGHTS_NAME)
    if (folder / INDEX_NAME).is_file():
        return _read_sharded(folder, folder / INDEX_NAME)
    if (folder / "pytorch_model.bin").is_file():
        raise CheckpointError(
            f"{folder}: only pytorch_model.bin found. minibert never unpickles PyTorch files (unpickling can run "
            "arbitrary code). Get model.safetensors instead: most Hub repos have it (look for a 'refs/pr' conversion "
            "or the 'Files' tab), or convert once where torch is installed: "
            "`from safetensors.torch import save_file; import torch; "
            "sd = torch.load('pytorch_model.bin', weights_only=True); "
            "save_file({k: v.contiguous() for k, v in sd.items()}, 'model.safetensors')`")
    raise CheckpointError(f"{folder}: no {WEIGHTS_NAME} or {INDEX_NAME} found")


def _read_sharded(folder: Path, index_path: Path) -> Dict[str, StoredTensor]:
    try:
        raw = index_path.read_bytes()
    except OSError as e:
        raise CheckpointError(f"{index_path}: cannot read ({e.strerror or e})") from None
    index = parse_json(raw, str(index_path), CheckpointError)
    weight_map = index.get("weight_map") if isinstance(index, dict) else None
    if not isinstance(weight_map, dict) or not all(isinstance(v, str) for v in weight_map.values()):
        raise CheckpointError(f"{index_path}: expected an object with a 'weight_map' of tensor name -> shard file")

    tensors: Dict[str, StoredTensor] = {}
    shard_of: Dict[str, str] = {}
    for shard in sorted(set(weight_map.values())):
        shard_path = folder / checked_relative_path(index_path, shard)
        if not shard_path.is_file():
            raise CheckpointError(f"{index_path}: names shard {shard!r}, which does not exist in {folder}")
        for name, t in read_safetensors(shard_path).items():
            if name in tensors:
                raise CheckpointError(
                    f"{index_path}: tensor {name!r} appears in two shards ({shard_of[name]} and {shard})")
            tensors[name], shard_of[name] = t, shard
    for name, shard in weight_map.items():
        if shard_of.get(name) != shard:
            raise CheckpointError(f"{index_path}: names tensor {name!r} in {shard!r}, which does not hold it")
    return tensors


def checked_relative_path(index_path: Path, shard: str, what: str = "shard") -> str:
    """A shard named by an index (or any path a model file names: `what` says which) must be a plain relative path
    inside the model folder: the file is data, not a licence to read anywhere. The check is on the name, not the
    resolved path, because in the Hugging Face cache every file of a snapshot is a symlink into `../../blobs/`."""
    parts = shard.replace("\\", "/").split("/")  # a backslash separates folders on Windows
    if "\0" in shard or os.path.isabs(shard) or ":" in parts[0] or any(p in ("", ".", "..") for p in parts):
        raise CheckpointError(f"{index_path}: {what} {shard!r} lies outside the model folder (expected a relative "
                              "file name without '..'); refused")
    return shard


def to_float32(t: StoredTensor) -> np.ndarray:
    """The tensor as float32: the mapped array itself for F32 (no copy), otherwise widened once.

    The first use of a weight: refuses one whose file was rewritten in place since it was mapped (see the module
    docstring)."""
    check_unchanged(t)
    if t.dtype == "F32":
        return t.array
    if t.dtype == "BF16":
        # bfloat16 is the top half of a float32: shift the 16 bits into place and reinterpret.
        return (t.array.astype(np.uint32) << 16).view(np.float32)
    return t.array.astype(np.float32)


def check_unchanged(t: StoredTensor) -> None:
    """Raise a CheckpointError if the file `t` is mapped from was rewritten in place (same file, other size or
    mtime) since loading: reading it could kill the process with SIGBUS or give other weights than were checked.
    A file deleted or replaced by another under its name is fine: the mapping still holds the old one."""
    if t.stamp is None:
        return
    try:
        now = _stamp(t.file.stat())
    except OSError:
        return  # gone: the mapping keeps the deleted file's data alive
    if now[:2] == t.stamp[:2] and now != t.stamp:
        raise CheckpointError(
            f"{t.file}: changed on disk since it was loaded (size {t.stamp.size} -> {now.size} bytes, or modified "
            "in place); its weights are memory-mapped and cannot be read safely: load the model again")


def canonical_tensors(stored: Dict[str, StoredTensor], config: BertConfig, where: str) -> Dict[str, StoredTensor]:
    """The stored tensors by canonical name (params.canonical_name); two stored names for one tensor are refused."""
    by_name: Dict[str, StoredTensor] = {}
    for name, t in stored.items():
        canon = canonical_name(name, config.model_type)
        if canon in by_name:
            raise CheckpointError(f"{where}: tensor {canon!r} is stored twice (as {name!r} and another name)")
        by_name[canon] = t
    return by_name


def select_encoder_tensors(stored: Dict[str, StoredTensor], config: BertConfig,
                           where: str) -> Dict[str, StoredTensor]:
    """Pick the encoder's tensors (and the pooler's, when present) by canonical name (params.py) and check each.

    Pretraining and task heads (`cls.*`, `lm_head.*`, `classifier.*`, ...; see `select_head_tensors`) and buffers
    such as `embeddings.position_ids` are not the encoder's and are left out.
    """
    by_name = canonical_tensors(stored, config, where)
    if config.sinusoidal_pos_embds and "embeddings.position_embeddings.weight" not in by_name:
        table = sinusoidal_positions(config.max_position_embeddings, config.embedding_size)
        by_name["embeddings.position_embeddings.weight"] = StoredTensor("F32", table, Path(where))

    L = config.num_hidden_layers
    _check_layers(by_name, L, where)
    H = config.hidden_size
    shapes = expected_shapes(config)
    pooler = [n for n in POOLER_SHAPES if n in by_name]
    if len(pooler) == 1:
        raise CheckpointError(f"{where}: has {pooler[0]!r} but not the other pooler tensor")
    if pooler:
        shapes.update({"pooler.dense.weight": (H, H), "pooler.dense.bias": (H,)})

    missing = [n for n in shapes if n not in by_name]
    if missing:
        more = f" and {len(missing) - 5} more" if len(missing) > 5 else ""
        raise CheckpointError(f"{where}: missing tensor(s) {', '.join(missing[:5])}{more} (expected for a "
                              f"{config.model_type} model of {L} layers; names shown as BERT's, see minibert/params.py)")
    return {name: _checked(name, by_name[name], shape) for name, shape in shapes.items()}


def select_head_tensors(stored: Dict[str, StoredTensor], config: BertConfig, shapes: Dict[str, tuple], head: str,
                        where: str, optional: Iterable[str] = ()) -> Dict[str, StoredTensor]:
    """Pick a task head's tensors (`shapes`: canonical name -> shape, params.py) and check each; those named in
    `optional` may be absent. `head` names the head in the error, e.g. "masked language model"."""
    by_name = canonical_tensors(stored, config, where)
    missing = [n for n in shapes if n not in by_name and n not in optional]
    if missing:
        more = f" and {len(missing) - 2} more" if len(missing) > 2 else ""
        raise MissingHeadError(f"{where}: has no {head} head (no tensor {', '.join(missing[:2])}{more}; names as in "
                               f"minibert/params.py's table for {config.model_type})")
    return {name: _checked(name, by_name[name], shape) for name, shape in shapes.items() if name in by_name}


def _checked(name: str, t: StoredTensor, shape: tuple) -> StoredTensor:
    """A tensor whose dtype is a float type and whose shape is the one the config implies."""
    if t.dtype not in FLOAT_DTYPES:
        raise CheckpointError(f"{t.file}: tensor {name!r} has dtype {t.dtype}; expected one of "
                              f"{', '.join(FLOAT_DTYPES)}")
    if tuple(t.array.shape) != shape:
        raise CheckpointError(
            f"{t.file}: tensor {name!r} has shape {list(t.array.shape)}; the config implies {list(shape)}")
    return t


LAYER_INDEX = re.compile(r"encoder\.layer\.([^.]*)\.")
CANONICAL_INDEX = re.compile(r"0|[1-9][0-9]{0,8}")  # what str(i) gives for a layer index below 10**9


def _check_layers(names: Iterable[str], L: int, where: str) -> None:
    """The checkpoint must store encoder layers 0..L-1, L from the config, and no other.

    Runs before anything loops over L, and loops only over the names present: a corrupt config (or a tensor named
    `encoder.layer.99999999.*`) must not make the loader list a billion expected tensors. A layer the config does
    not have is refused rather than dropped: running a truncated model would be silently wrong.
    """
    stored = {m.group(1) for m in map(LAYER_INDEX.match, names) if m}
    known = {int(i) for i in stored if CANONICAL_INDEX.fullmatch(i) and int(i) < L}
    if len(known) < L:
        first_missing = next(i for i in range(len(known) + 1) if i not in known)
        raise CheckpointError(f"{where}: the config asks for num_hidden_layers = {L}, but the checkpoint stores "
                              f"{len(stored)} layer(s) (no tensor 'encoder.layer.{first_missing}.*')")
    extra = sorted(stored - {str(i) for i in known})
    if extra:
        listed = ", ".join(shown(i) for i in extra[:5]) + (f" and {len(extra) - 5} more" if len(extra) > 5 else "")
        raise CheckpointError(f"{where}: the checkpoint stores encoder layer(s) {listed}, which the config "
                              f"(num_hidden_layers = {L}: layers 0 to {L - 1}) does not have; expected a config "
                              "that matches the weights")


def check_finite(name: str, array: np.ndarray, *, strict: bool) -> None:
    """Warn about (or, when strict, refuse) a weight holding NaN or infinity: it would poison every output."""
    if np.isfinite(array).all():
        return
    message = f"tensor {name!r} holds NaN or infinite values"
    if strict:
        raise CheckpointError(message)
    warnings.warn(message, RuntimeWarning, stacklevel=3)


def check_compatible(tokenizer, model) -> None:
    """Refuse a tokenizer and a model that do not belong together: every id the tokenizer can produce must have a
    row in the model's word embedding table. Called where a tokenizer first meets a model (SentenceEncoder)."""
    # tokenizer.id_limit: one past the largest id, computed once per tokenizer (building the id table costs
    # milliseconds: too much for every fill_mask call); above vocab_size when a vocab.txt repeats a token
    n, V = max(tokenizer.vocab_size, tokenizer.id_limit), model.config.vocab_size
    if n > V:
        raise CheckpointError(
            f"{tokenizer.name_or_path or model.name_or_path}: the tokenizer has {n} tokens (ids up to {n - 1}) but "
            f"the model's embedding table only {V} (vocab_size) rows; tokenizer and weights do not belong together: "
            "load both from the same checkpoint")
