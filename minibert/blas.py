"""Threads, kernels and memory for the fast path: OpenBLAS's thread count, a pool that runs one group of
sequences per core, which of OpenBLAS's kernel sets is running, and the C allocator's handling of the forward
pass's large temporary arrays.

NumPy gives no handle on its BLAS's threads, so the count is set through OpenBLAS's own C functions, found in
the library NumPy loaded (no dependency). OpenBLAS's count is process-wide: `single_threaded` sets it to 1 only
for the duration, under a lock, and puts it back.
"""

from __future__ import annotations

import ctypes
import glob
import os
import sys
import threading
import warnings
from concurrent.futures import ThreadPoolExecutor, wait
from contextlib import contextmanager
from functools import lru_cache
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
        self.corename: Optional[str] = None
        self.version: Optional[str] = None  # "OpenBLAS 0.3.31.188.0", from get_config
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
                    corename = getattr(lib, set_name.replace("set_num_threads", "get_corename"), None)
                    if corename is not None:
                        corename.argtypes, corename.restype = [], ctypes.c_char_p
                        self.corename = (corename() or b"").decode(errors="replace") or None
                    config = getattr(lib, set_name.replace("set_num_threads", "get_config"), None)
                    if config is not None:
                        config.argtypes, config.restype = [], ctypes.c_char_p
                        self.version = " ".join((config() or b"").decode(errors="replace").split()[:2]) or None
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


# OpenBLAS's kernel sets (its DYNAMIC_ARCH core names for x86-64) -> the widest vector instructions they use.
KERNEL_ISA = {"SapphireRapids": "AVX-512", "Cooperlake": "AVX-512", "SkylakeX": "AVX-512", "Haswell": "AVX2",
              "Zen": "AVX2", "Excavator": "AVX2", "Sandybridge": "AVX", "Bulldozer": "AVX", "Piledriver": "AVX",
              "Steamroller": "AVX", **dict.fromkeys(
                  ("Nehalem", "Penryn", "Dunnington", "Core2", "Prescott", "Atom", "Barcelona", "Opteron",
                   "Opteron_SSE3", "Bobcat", "Nano", "Katmai", "Coppermine", "Northwood", "Banias", "Athlon"), "SSE")}
ISA_ORDER = ("SSE", "AVX", "AVX2", "AVX-512")
_PINNED_WARNED = False


class KernelWarning(UserWarning):
    """OpenBLAS runs kernels for an older CPU than this one while OPENBLAS_CORETYPE is set."""


def kernels() -> Optional[str]:
    """The kernel set OpenBLAS chose at start-up ("SkylakeX", "Haswell", ...), or None where unknown."""
    return _openblas().corename


@lru_cache(maxsize=None)  # a CPU does not change while a process runs; describe() and the warning both ask
def cpu_isa(cpuinfo: str = "/proc/cpuinfo") -> Optional[str]:
    """The widest of ISA_ORDER this CPU runs, from its flags (Linux x86-64), else None.  AVX-512 counts only with
    the F, DQ, BW and VL parts that OpenBLAS's SkylakeX kernels use."""
    try:
        with open(cpuinfo) as f:
            flags = set(next(line for line in f if line.startswith("flags")).split(":", 1)[1].split())
    except (OSError, StopIteration, IndexError, UnicodeDecodeError):
        return None
    if {"avx512f", "avx512dq", "avx512bw", "avx512vl"} <= flags:
        return "AVX-512"
    if {"avx2", "fma"} <= flags:
        return "AVX2"
    return "AVX" if "avx" in flags else "SSE"


def pinned_kernels() -> Optional[str]:
    """Why matrix products may be slower than this CPU allows: OpenBLAS runs the kernels of an older CPU while
    OPENBLAS_CORETYPE is set (OpenBLAS reads it once, when NumPy loads it); None otherwise. The variable is
    usually the cause, but a build without the CPU's kernels falls back the same way, so the message says both."""
    forced, core, cpu = os.environ.get("OPENBLAS_CORETYPE"), kernels(), cpu_isa()
    if not forced or core not in KERNEL_ISA or cpu is None or \
            ISA_ORDER.index(KERNEL_ISA[core]) >= ISA_ORDER.index(cpu):
        return None
    return (f"OPENBLAS_CORETYPE={forced} is set and OpenBLAS runs its {core} kernels ({KERNEL_ISA[core]}) on a CPU "
            f"with {cpu}: large matrix products may run up to 2x slower (1.9x on an AMD EPYC Zen 5). Unless it was "
            f"set on purpose (a workaround, or for the same roundings on every machine), unset it before Python "
            f"starts to let OpenBLAS choose this CPU's own kernels.")


def warn_pinned_kernels() -> None:
    """`pinned_kernels`' message as a KernelWarning, once per process (the fast path's first forward calls it),
    pointing at the caller's line."""
    global _PINNED_WARNED
    if not _PINNED_WARNED:
        _PINNED_WARNED = True
        message = pinned_kernels()
        if message:
            warnings.warn(message, KernelWarning, stacklevel=_caller_outside_package())


def _caller_outside_package() -> int:
    """The stacklevel at which a warning raised by this module's caller points at the first frame outside
    minibert: the user's line that led to it, not minibert's internals."""
    package, level, frame = os.path.dirname(os.path.abspath(__file__)), 2, sys._getframe(2)
    while frame is not None and os.path.abspath(frame.f_code.co_filename).startswith(package + os.sep):
        frame, level = frame.f_back, level + 1
    return level


def describe() -> str:
    """The BLAS as `minibert info` and the benchmarks print it:
    "OpenBLAS 0.3.31.188.0, SkylakeX kernels; minibert threads: 2"."""
    if not controllable():
        return "not OpenBLAS (threads and kernels not controlled by minibert)"
    try:
        threads = str(num_threads())
    except InputError as e:  # a description must not fail; the forward pass reports the bad variable
        threads = str(e)
    pinned = f" (OPENBLAS_CORETYPE={os.environ.get('OPENBLAS_CORETYPE')}; this CPU has {cpu_isa()})" \
        if pinned_kernels() else ""
    return f"{_openblas().version or 'OpenBLAS'}, {kernels() or 'unknown'} kernels{pinned}; minibert threads: {threads}"


def l2_cache_bytes(cpu: str = "/sys/devices/system/cpu/cpu0/cache") -> int:
    """The size of one core's level-2 cache (Linux sysfs), else 1 MiB."""
    for index in sorted(glob.glob(os.path.join(cpu, "index*"))):
        try:
            with open(os.path.join(index, "level")) as level, open(os.path.join(index, "size")) as size:
                if level.read().strip() == "2":
                    text = size.read().strip().upper()
                    found = int(text.rstrip("KMG")) << {"K": 10, "M": 20, "G": 30}.get(text[-1:], 0)
                    if found >= 64 << 10:  # a smaller or negative size is a misreading, not a cache
                        return found
        except (OSError, ValueError):
            continue
    return 1 << 20


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
