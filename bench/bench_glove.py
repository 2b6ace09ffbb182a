"""Benchmark glove on a synthetic table of GloVe 6B's size, side by side with gensim.

    python bench/bench_glove.py [--words 400000] [--dim 100] [--keep DIR]

Writes ``glove.synthetic.100d.txt.gz`` (realistic words, GloVe-style numbers such as ``-0.038194``) into a temp
folder, then times, each in a fresh subprocess: the first ``glove.load`` (conversion), a later ``glove.load``
(time and resident-memory growth), ``most_similar``; and gensim's ``load_word2vec_format(no_header=True)`` and
``save`` + ``load(mmap="r")`` when gensim is installed.
"""

from __future__ import annotations

import argparse
import gzip
import json
import operator
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
_SYLLABLES = (
    "a an ar as at ba be bi bo bu ca ce ci co cu da de di do du e el en er es fa fe fi fo ga ge gi go ha he hi ho "
    "i in is it ka ke ki ko la le li lo lu ma me mi mo mu na ne ni no nu o on or pa pe pi po pu ra re ri ro ru sa "
    "se si so su ta te ti to tu u un ur va ve vi vo wa we wi ya yo za zi ch sh th str pr tr gr bl cl fl ng ck"
).split()


def synthetic_words(n: int, rng: np.random.Generator) -> list[str]:
    """``n`` unique, word-like tokens: punctuation and numbers first (as in GloVe 6B), then syllable words,
    some hyphenated, some accented or non-Latin."""
    words = dict.fromkeys([",", ".", "the", '"', "of", "to", "and", "in", "a", "(", ")", "'s", "-", "--", "..."])
    words.update(dict.fromkeys(str(y) for y in range(1900, 2030)))
    extras = ["é", "ü", "ñ", "ø", "ł", "ж", "λ", "東", "京"]
    while len(words) < n:
        k = int(rng.integers(1, 5))
        w = "".join(_SYLLABLES[i] for i in rng.integers(0, len(_SYLLABLES), k))
        r = rng.random()
        if r < 0.03:
            w += "-" + "".join(_SYLLABLES[i] for i in rng.integers(0, len(_SYLLABLES), 2))
        elif r < 0.05:
            w += extras[int(rng.integers(0, len(extras)))]
        elif r < 0.07:
            w += str(int(rng.integers(0, 1000)))
        words[w] = None
    return list(words)[:n]


def _number_pool(rng: np.random.Generator, size: int = 1 << 18) -> list[str]:
    """GloVe-style numbers: up to 6 decimals, trailing zeros dropped (``0.038194``, ``-0.24487``)."""
    out = []
    for v in rng.normal(0.0, 0.42, size):
        s = f"{v:.6f}".rstrip("0")
        out.append(s + "0" if s.endswith(".") else s)
    return out


def write_synthetic(path: Path, n_words: int, dim: int, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    words = synthetic_words(n_words, rng)
    pool = _number_pool(rng)
    with gzip.open(path, "wt", encoding="utf-8", compresslevel=6) as f:
        for start in range(0, n_words, 10_000):
            idx = rng.integers(0, len(pool), (min(10_000, n_words - start), dim))
            f.write("".join(f"{w} {' '.join(operator.itemgetter(*row)(pool))}\n" for w, row in zip(words[start:], idx)))


_RSS = """
def rss_mb():
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
"""

_SNIPPETS = {
    "convert": """
        import time, resource, glove
        t = time.perf_counter(); g = glove.load(SRC, cache_dir=CACHE); dt = time.perf_counter() - t
        cpu = sum(getattr(resource.getrusage(who), f) for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)
                  for f in ("ru_utime", "ru_stime"))
        out = {"seconds": dt, "cpu_seconds": cpu, "shape": [len(g), g.dim], "path": str(g.path)}
    """,
    "load": """
        import time, glove, numpy
        before = rss_mb()
        t = time.perf_counter(); g = glove.load(SRC, cache_dir=CACHE); dt = time.perf_counter() - t
        out = {"seconds": dt, "rss_growth_mb": rss_mb() - before}
        t = time.perf_counter(); r = g.most_similar(WORD); first = time.perf_counter() - t
        times = []
        for w in g.index_to_key[1000:1020]:
            t = time.perf_counter(); g.most_similar(w); times.append(time.perf_counter() - t)
        t = time.perf_counter(); [g[w] for w in g.index_to_key[5000:6000]]; lookup = (time.perf_counter() - t) / 1000
        out.update(most_similar_first=first, most_similar_median=sorted(times)[len(times) // 2],
                   lookup_seconds=lookup, rss_after_queries_mb=rss_mb() - before, top=r[:3])
    """,
    "gensim_text": """
        import time, numpy
        from gensim.models import KeyedVectors
        before = rss_mb()
        t = time.perf_counter(); kv = KeyedVectors.load_word2vec_format(SRC, no_header=True); dt = time.perf_counter() - t
        out = {"seconds": dt, "rss_growth_mb": rss_mb() - before}
        kv.save(CACHE + "/gensim.model")
    """,
    "gensim_mmap": """
        import time, numpy
        from gensim.models import KeyedVectors
        before = rss_mb()
        t = time.perf_counter(); kv = KeyedVectors.load(CACHE + "/gensim.model", mmap="r"); dt = time.perf_counter() - t
        out = {"seconds": dt, "rss_growth_mb": rss_mb() - before}
        t = time.perf_counter(); kv.most_similar(WORD); first = time.perf_counter() - t
        times = []
        for w in kv.index_to_key[1000:1020]:
            t = time.perf_counter(); kv.most_similar(w); times.append(time.perf_counter() - t)
        out.update(most_similar_first=first, most_similar_median=sorted(times)[len(times) // 2])
    """,
}


def run(name: str, src: Path, cache: Path, word: str) -> dict:
    """Run one snippet in a fresh interpreter and return its JSON result."""
    code = _RSS + f"SRC, CACHE, WORD = {str(src)!r}, {str(cache)!r}, {word!r}\n"
    code += textwrap.dedent(_SNIPPETS[name]) + "\nimport json; print(json.dumps(out))\n"
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True)
    if proc.returncode:
        raise RuntimeError(f"{name} failed:\n{proc.stderr}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--words", type=int, default=400_000)
    parser.add_argument("--dim", type=int, default=100)
    parser.add_argument("--keep", type=Path, help="write the files here and keep them")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = args.keep or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        src = work / f"glove.synthetic.{args.words}x{args.dim}d.txt.gz"
        if not src.exists():
            write_synthetic(src, args.words, args.dim)
        cache = Path(tempfile.mkdtemp(prefix="cache-", dir=work))  # always a fresh conversion
        try:
            print(f"source: {src} ({src.stat().st_size / 2**20:.0f} MB gz), {args.words} x {args.dim}", flush=True)
            print(f"machine: {os.cpu_count()} cores, load average before: {os.getloadavg()[0]:.2f}", flush=True)
            word = "the"
            res = {"convert": run("convert", src, cache, word), "load": run("load", src, cache, word)}
            try:
                import gensim  # noqa: F401  (only to learn whether it is installed)
            except ImportError:
                print("gensim not installed: skipping the gensim comparison")
            else:
                res["gensim_text"] = run("gensim_text", src, cache, word)
                res["gensim_mmap"] = run("gensim_mmap", src, cache, word)
            print(f"load average after: {os.getloadavg()[0]:.2f}")
            report(res)
        finally:
            shutil.rmtree(cache, ignore_errors=True)


def report(res: dict) -> None:
    c, l = res["convert"], res["load"]
    rows = [
        ("convert .txt.gz (first glove.load)", f"{c['seconds']:.2f} s", "<= 15 s"),
        ("  CPU time of that conversion, all processes", f"{c['cpu_seconds']:.2f} s", "load-independent"),
        ("later glove.load", f"{l['seconds'] * 1000:.1f} ms", "<= 200 ms"),
        ("RSS growth of a later load", f"{l['rss_growth_mb']:.1f} MB", "<= 60 MB"),
        ("most_similar, first call (pages faulted in)", f"{l['most_similar_first'] * 1000:.1f} ms", ""),
        ("most_similar, warm (median of 20)", f"{l['most_similar_median'] * 1000:.1f} ms", "<= 20 ms"),
        ("g[word] lookup", f"{l['lookup_seconds'] * 1e6:.1f} us", ""),
        ("RSS growth after the queries", f"{l['rss_after_queries_mb']:.1f} MB", ""),
    ]
    if "gensim_text" in res:
        gt, gm = res["gensim_text"], res["gensim_mmap"]
        rows += [
            ("gensim load_word2vec_format(no_header=True)", f"{gt['seconds']:.2f} s (RSS +{gt['rss_growth_mb']:.0f} MB)",
             f"glove convert is {gt['seconds'] / c['seconds']:.1f}x faster"),
            ("gensim load(mmap='r')", f"{gm['seconds'] * 1000:.1f} ms (RSS +{gm['rss_growth_mb']:.0f} MB)",
             f"glove load is {gm['seconds'] / l['seconds']:.1f}x faster, {gm['rss_growth_mb'] / max(l['rss_growth_mb'], 0.1):.1f}x less RSS"),
            ("gensim most_similar, warm (median of 20)", f"{gm['most_similar_median'] * 1000:.1f} ms",
             f"ratio glove/gensim {l['most_similar_median'] / gm['most_similar_median']:.2f}"),
        ]
    print("\n| measure | result | target / comparison |\n|---|---|---|")
    for row in rows:
        print("| " + " | ".join(row) + " |")
    print("\nsanity: most_similar('the') top 3 =", l["top"])


if __name__ == "__main__":
    main()
