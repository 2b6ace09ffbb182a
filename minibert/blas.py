"""Threads and memory for the fast path: OpenBLAS's thread count, a pool that runs one group of sequences per
core, and the C allocator's handling of the forward pass's large temporary arrays.

NumPy gives no handle on its BLAS's threads, so the count is set through OpenBLAS's own C functions, found in
the library NumPy loaded (no dependency). OpenBLAS's count is process-wide: `single_threaded` sets it to 1 only
for the duration, under a lock, and puts it back.
"""

from __future__ import annotations

import ctypes
import glob
import os
import threading
from concurrent.futures import ThreadPoolExecutor, wait
from contextlib import contextmanager
from typing import Callable, Iterator, List, Optional

import numpy as np

from .errors import InputError


class _OpenBLAS:
    """OpenBLAS's get/set thread-count functions; `available` is False when NumPy's BLAS is not an OpenBLAS."""

    SETTERS = ("openblas_set_num_threads", "scipy_openblas_set_num_threads64_", "scipy_openblas_set_num_threads",
               "openblas_set_num_threads64_")

    def __init__(self):
        # Re-entrant: a caller already holding one BLAS thread (a profiler, a benchmark) may call the fast path,
        # which asks for one thread again.
        self.lock = threading.RLock()
        self.get: Optional[Callable[[], int]] = None
        self.set: Optional[Callable[[int], None]] = None
        for path in _loaded_libraries("openblas"):
            try:
                lib = ctypes.CDLL(path)
            except OSError:
                continue
            for set_name in self.SETTERS:
                get_name = set_name.replace("set_", "get_")
                if hasattr(lib, set_name) and hasattr(lib, get_name):
                    self.set, self.get = getattr(lib, set_name), getattr(lib, get_name)
                    self.set.argtypes, self.set.restype = [ctypes.c_int], None
                    self.get.argtypes, self.get.restype = [], ctypes.c_int
                    return

    @property
    def available(self) -> bool:
        return self.set is not None


def _loaded_libraries(name: str) -> List[str]:
    """Paths of the shared libraries mapped into this process whose file name contains `name` (Linux), else
    those next to NumPy (its wheels ship their BLAS in numpy.libs / numpy/.dylibs)."""
    try:
        with open("/proc/self/maps") as maps:
            paths = [line.split()[-1] for line in maps if name in line.rsplit("/", 1)[-1]]
    except OSError:
        root = os.path.dirname(np.__file__)
        paths = glob.glob(os.path.join(root, ".dylibs", f"*{name}*")) + glob.glob(os.path.join(root + ".libs", f"*{name}*"))
    return list(dict.fromkeys(paths))


_OPENBLAS: Optional[_OpenBLAS] = None
_POOL: Optional[ThreadPoolExecutor] = None
_POOL_SIZE = 0


def _openblas() -> _OpenBLAS:
    global _OPENBLAS
    if _OPENBLAS is None:
        _OPENBLAS = _OpenBLAS()
    return _OPENBLAS


def controllable() -> bool:
    """Whether minibert can set the BLAS's thread count (NumPy's wheels ship an OpenBLAS it can)."""
    return _openblas().available


def num_threads() -> int:
    """Threads the fast path uses: MINIBERT_NUM_THREADS if set, else the cores this process may run on.
    With 1, the BLAS is kept to one thread too."""
    env = os.environ.get("MINIBERT_NUM_THREADS")
    if env:
        if not env.strip().isdigit() or int(env) < 1:
            raise InputError(f"MINIBERT_NUM_THREADS={env!r}: expected a positive integer")
        return int(env)
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


@contextmanager
def single_threaded() -> Iterator[None]:
    """OpenBLAS on one thread for the duration (a no-op where it cannot be controlled)."""
    blas = _openblas()
    if not blas.available:
        yield
        return
    with blas.lock:
        previous = blas.get()
        blas.set(1)
        try:
            yield
        finally:
            blas.set(previous)


def _pool(workers: int) -> ThreadPoolExecutor:
    """A pool of at least `workers` threads. Called under the BLAS lock, so no task of an older, smaller pool is
    running when it is replaced, and that pool's threads are ended rather than leaked."""
    global _POOL, _POOL_SIZE
    if _POOL is None or _POOL_SIZE < workers:
        if _POOL is not None:
            _POOL.shutdown(wait=True)
        _POOL, _POOL_SIZE = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="minibert"), workers
    return _POOL


def run_parallel(tasks: List[Callable[[], None]]) -> None:
    """Run the tasks at once, on this thread and the pool's, with the BLAS single-threaded meanwhile: NumPy
    releases the GIL inside matrix products and ufuncs, so each task keeps a core busy."""
    with single_threaded():
        futures = [_pool(len(tasks) - 1).submit(task) for task in tasks[1:]]
        try:
            tasks[0]()
        finally:  # even on an error or Ctrl-C: no task may still be in the BLAS when its thread count is restored
            wait(futures)
        for f in futures:
            f.result()


_ALLOCATOR_TUNED = False
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # glibc's mallopt parameters (malloc.h)


def keep_freed_memory() -> None:
    """Let glibc keep the forward pass's freed activations for reuse instead of returning them to the system.

    A forward allocates temporaries of a few MB (a block's (I, 512) feed-forward activation is 3 MB). glibc gives
    blocks above its mmap threshold (128 KiB at start) their own mapping and unmaps them on free, so every forward
    page-faults and zeroes its working memory anew: a quarter of a MiniLM batch forward (B=32 T=64 on a quiet
    machine: 6,600 -> 8,500 tok/s, bench/RESULTS.md). Above 32 MiB, and for what it may keep unreturned above
    64 MiB, glibc's defaults stay.
    A no-op where the C library is not glibc; called once, when a model first lays out its weights.
    """
    global _ALLOCATOR_TUNED
    if _ALLOCATOR_TUNED:
        return
    _ALLOCATOR_TUNED = True
    try:
        mallopt = ctypes.CDLL("libc.so.6").mallopt
    except (OSError, AttributeError):
        return
    mallopt(M_MMAP_THRESHOLD, 32 << 20)
    mallopt(M_TRIM_THRESHOLD, 64 << 20)
