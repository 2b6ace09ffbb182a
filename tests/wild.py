"""Checkpoint layouts found in the wild, built at test time from the tiny stored base model (pure re-encodings of
its weights), and a Hugging Face Hub cache folder. The references are in tests/fixtures/wild/reference.npz
(scripts/make_wild_reference.py)."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path
from typing import Dict, Tuple

import numpy as np

from conftest import FIXTURES
from minibert.weights import read_safetensors, to_float32

WILD = FIXTURES / "wild"
BASE = WILD / "base"
SIDE_FILES = ("config.json", "vocab.txt", "tokenizer_config.json")
STORAGE = {"F64": np.float64, "F32": np.float32, "F16": np.float16, "I64": np.int64}

Stored = Tuple[str, np.ndarray]  # (safetensors dtype, array of the stored bytes: uint16 for BF16)


def bf16_bits(x: np.ndarray) -> np.ndarray:
    """float32 -> bfloat16 bit patterns, rounded to nearest even as PyTorch rounds (finite inputs)."""
    bits = np.ascontiguousarray(x, dtype=np.float32).view(np.uint32).astype(np.uint64)
    return ((bits + 0x7FFF + ((bits >> 16) & 1)) >> 16).astype(np.uint16)


def encode(x: np.ndarray, dtype: str) -> Stored:
    return (dtype, bf16_bits(x) if dtype == "BF16" else x.astype(STORAGE[dtype]))


def safetensors_header(tensors: Dict[str, Stored], metadata: Dict[str, str] | None = None) -> bytes:
    """The 8-byte length and JSON header of a safetensors file holding `tensors` in order (written by hand:
    NumPy has no bfloat16, so safetensors.numpy cannot write BF16)."""
    header: dict = {"__metadata__": metadata} if metadata else {}
    offset = 0
    for name, (dtype, array) in tensors.items():
        header[name] = {"dtype": dtype, "shape": list(array.shape), "data_offsets": [offset, offset + array.nbytes]}
        offset += array.nbytes
    raw = json.dumps(header).encode()
    raw += b" " * (-len(raw) % 8)  # the format pads the header so that the data is 8-byte aligned
    return len(raw).to_bytes(8, "little") + raw


def safetensors_bytes(tensors: Dict[str, Stored], metadata: Dict[str, str] | None = None) -> bytes:
    return safetensors_header(tensors, metadata) + b"".join(np.ascontiguousarray(a).tobytes() for _, a in tensors.values())


def write_safetensors(path: Path, tensors: Dict[str, Stored]) -> None:
    """Stream a (possibly large) safetensors file to disk, one tensor at a time."""
    with open(path, "wb") as f:
        f.write(safetensors_header(tensors))
        for _, array in tensors.values():
            np.ascontiguousarray(array).tofile(f)


def base_tensors() -> Dict[str, np.ndarray]:
    """The base model's tensors as float32 arrays, by name."""
    return {k: np.array(to_float32(t)) for k, t in read_safetensors(BASE / "model.safetensors").items()}


def copy_side_files(src: Path, dst: Path) -> Path:
    dst.mkdir(parents=True, exist_ok=True)
    for name in SIDE_FILES:
        shutil.copy(src / name, dst / name)
    return dst


def write_sharded(folder: Path, tensors: Dict[str, Stored], shards: int) -> None:
    """Split the tensors over `shards` files named and indexed as transformers' save_pretrained names them."""
    names = list(tensors)
    weight_map, total = {}, 0
    for k in range(shards):
        part = {n: tensors[n] for n in names[k::shards]}
        file = f"model-{k + 1:05d}-of-{shards:05d}.safetensors"
        (folder / file).write_bytes(safetensors_bytes(part, {"format": "pt"}))
        weight_map.update({n: file for n in part})
        total += sum(a.nbytes for _, a in part.values())
    index = {"metadata": {"total_size": total}, "weight_map": dict(sorted(weight_map.items()))}
    (folder / "model.safetensors.index.json").write_text(json.dumps(index, indent=2))


def mixed_dtypes() -> Dict[str, str]:
    """The storage dtype of each tensor in the `mixed` variant, as the reference script chose them."""
    with np.load(WILD / "reference.npz") as z:
        return dict(entry.split("=") for entry in z["mixed/dtypes"])


def pretraining_layout(weights: Dict[str, np.ndarray]) -> Dict[str, Stored]:
    """bert-base-uncased's own layout: `bert.` prefix, LayerNorm gamma/beta, the position_ids buffer, and the
    `cls.*` pretraining heads (masked LM with its own LayerNorm gamma/beta, next-sentence prediction)."""
    rng = np.random.default_rng(0)
    H, V = weights["embeddings.word_embeddings.weight"].shape[::-1]
    out: Dict[str, Stored] = {}
    for name, x in weights.items():
        name = name.replace("LayerNorm.weight", "LayerNorm.gamma").replace("LayerNorm.bias", "LayerNorm.beta")
        out["bert." + name] = ("F32", x)
    out["bert.embeddings.position_ids"] = ("I64", np.arange(64, dtype=np.int64)[None])
    heads = {"cls.predictions.bias": (V,), "cls.predictions.decoder.weight": (V, H),
             "cls.predictions.transform.dense.weight": (H, H), "cls.predictions.transform.dense.bias": (H,),
             "cls.predictions.transform.LayerNorm.gamma": (H,), "cls.predictions.transform.LayerNorm.beta": (H,),
             "cls.seq_relationship.weight": (2, H), "cls.seq_relationship.bias": (2,)}
    out.update({n: ("F32", rng.standard_normal(s).astype(np.float32)) for n, s in heads.items()})
    return out


# layout -> (reference prefix in reference.npz, has a pooler)
LAYOUTS = {
    "base": ("base", True), "sharded": ("base", True), "fp16": ("base@fp16", True), "bf16": ("base@bf16", True),
    "mixed": ("base@mixed", True), "pretraining": ("base", True), "no-pooler": ("base", False),
    "mlm": ("mlm", False), "seqcls": ("seqcls", True), "tokcls": ("tokcls", False),
    "small-config": ("small-config", True),
}


def make_layout(layout: str, folder: Path) -> Path:
    """A model folder holding the base model (or a stored task/config checkpoint) in the given layout."""
    if layout in ("base", "mlm", "seqcls", "tokcls", "small-config"):
        src = WILD / layout
        copy_side_files(src, folder)
        shutil.copy(src / "model.safetensors", folder / "model.safetensors")
        return folder
    copy_side_files(BASE, folder)
    weights = base_tensors()
    if layout == "sharded":
        write_sharded(folder, {n: ("F32", x) for n, x in weights.items()}, shards=3)
        return folder
    if layout == "pretraining":
        tensors = pretraining_layout(weights)
    elif layout == "no-pooler":
        tensors = {n: ("F32", x) for n, x in weights.items() if not n.startswith("pooler.")}
    else:
        dtypes = mixed_dtypes() if layout == "mixed" else {n: {"fp16": "F16", "bf16": "BF16"}[layout] for n in weights}
        tensors = {n: encode(x, dtypes[n]) for n, x in weights.items()}
    (folder / "model.safetensors").write_bytes(safetensors_bytes(tensors, {"format": "pt"}))
    return folder


def hub_snapshot(cache: Path, repo_id: str, commit: str, files: Dict[str, bytes]) -> Path:
    """Add one snapshot to a Hugging Face Hub cache folder exactly as huggingface_hub lays it out:
    models--<org>--<name>/blobs/<sha256> holds each file's bytes once, snapshots/<commit>/<file> is a relative
    symlink to its blob."""
    repo = cache / ("models--" + repo_id.replace("/", "--"))
    snapshot = repo / "snapshots" / commit
    (repo / "blobs").mkdir(parents=True, exist_ok=True)
    snapshot.mkdir(parents=True, exist_ok=True)
    for name, data in files.items():
        blob = repo / "blobs" / hashlib.sha256(data).hexdigest()
        blob.write_bytes(data)
        os.symlink(os.path.relpath(blob, snapshot), snapshot / name)
    return snapshot


def set_ref(cache: Path, repo_id: str, ref: str, commit: str) -> None:
    refs = cache / ("models--" + repo_id.replace("/", "--")) / "refs"
    refs.mkdir(parents=True, exist_ok=True)
    (refs / ref).write_text(commit)  # no trailing newline: huggingface_hub reads the file verbatim


def folder_files(folder: Path) -> Dict[str, bytes]:
    return {f.name: f.read_bytes() for f in sorted(folder.iterdir())}
