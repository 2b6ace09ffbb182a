"""Shared fixtures: the real MiniLM model, the odd-shaped model, their stored PyTorch references, and a table of
the measured max differences printed at the end of the run (exactness you can see)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

import numpy as np
import pytest

from minibert import DEFAULT_MODEL, BertModel, Tokenizer

FIXTURES = Path(__file__).parent / "fixtures"
ODD_MODEL = FIXTURES / "odd-bert"
REPO = Path(__file__).resolve().parents[1]
# Real data lives outside the repo; CI sets MINIBERT_SHARED, a checkout next to shared/ finds it by default.
SHARED = Path(os.environ.get("MINIBERT_SHARED", REPO.parent / "shared"))
# A machine whose environment holds OpenBLAS to older kernels (OPENBLAS_CORETYPE) gets minibert's KernelWarning
# once per process; tests that read a command's stderr should not see it (pyproject.toml does the same in process).
# Filtered by its message's start, so no import is needed when a child Python reads the filter.
os.environ["PYTHONWARNINGS"] = ",".join(filter(None, [os.environ.get("PYTHONWARNINGS"), "ignore:OPENBLAS_CORETYPE"]))

MAX_DIFFS: dict = {}  # label -> (largest difference seen, its bound)


def within(label: str, value: float, bound: float) -> bool:
    """Record a measured difference beside its bound (printed at the end of the run) and say whether it holds."""
    seen, _ = MAX_DIFFS.get(label, (0.0, bound))
    MAX_DIFFS[label] = (max(float(value), seen), bound)
    return float(value) <= bound


# How far a text's numbers alone may be from its numbers in a batch, relative to their largest magnitude: a few
# float32 ulps (eps 1.2e-7). OpenBLAS 0.3.31 (NumPy 2.4's wheels) rounds a column of W @ x differently with
# the product's width and the column's place in it, so a token's sums depend, in the last bits, on its company.
BATCH_RTOL = 1e-6


def assert_batch_invariant(ours, theirs, label: str = "batch invariance (relative)") -> None:
    ours, theirs = np.asarray(ours), np.asarray(theirs)
    assert ours.shape == theirs.shape, (ours.shape, theirs.shape)
    scale = max(1.0, float(np.abs(theirs).max())) if theirs.size else 1.0
    d = float(np.abs(ours - theirs).max()) / scale if theirs.size else 0.0
    assert within(label, d, BATCH_RTOL)


def mutate(data: bytes, edits, limit: Optional[int] = None) -> bytes:
    """Apply (kind, position, value[, token]) edits, positions taken modulo the first `limit` bytes (default: all):
    overwrite, insert or delete a byte, cut the rest, insert a token, or repeat the next `value` bytes."""
    b = bytearray(data)
    for kind, pos, value, *token in edits:
        pos %= max(1, min(len(b), len(b) if limit is None else limit))
        if kind == "set" and b:
            b[pos] = value
        elif kind == "insert":
            b.insert(pos, value)
        elif kind == "delete" and b:
            del b[pos]
        elif kind == "cut":
            del b[pos:]
        elif kind == "token":
            b[pos:pos] = token[0]
        elif kind == "repeat":
            b[pos:pos] = b[pos:pos + value]
    return bytes(b)


def pytest_terminal_summary(terminalreporter):
    """Every compared tensor's largest difference beside its bound, as llm.c prints them ("TENSOR OK maxdiff")."""
    if MAX_DIFFS:
        terminalreporter.section("max |minibert - reference| (PyTorch / sentence-transformers / itself), and its bound")
        for label, (value, bound) in sorted(MAX_DIFFS.items()):
            verdict = "OK" if value <= bound else "OVER"
            terminalreporter.write_line(f"{label:<58} {verdict:<4} {value:.2e}  <= {bound:.0e}")


@pytest.fixture(scope="session")
def minilm() -> BertModel:
    return BertModel.from_pretrained(DEFAULT_MODEL)


@pytest.fixture(scope="session")
def minilm_tokenizer() -> Tokenizer:
    return Tokenizer.from_pretrained(DEFAULT_MODEL)


@pytest.fixture(scope="session")
def odd() -> BertModel:
    return BertModel.from_pretrained(ODD_MODEL)


@pytest.fixture(scope="session")
def odd_tokenizer() -> Tokenizer:
    return Tokenizer.from_pretrained(ODD_MODEL)


def load_reference(name: str) -> dict:
    """{case: {array name: array}} from tests/fixtures/reference_<name>.npz."""
    cases: dict = {}
    with np.load(FIXTURES / f"reference_{name}.npz") as z:
        for key in z.files:
            case, array = key.split("/")
            cases.setdefault(case, {})[array] = z[key]
    return cases


def shared_data(*parts: str) -> Path:
    path = SHARED.joinpath("data", *parts)
    if not path.exists():
        pytest.skip(f"{path} not present (set MINIBERT_SHARED to the shared/ folder)")
    return path
