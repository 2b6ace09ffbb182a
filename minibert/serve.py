"""`minibert serve`: an HTTP embedding server on the standard library, with dynamic batching.

    minibert serve --model sentence-transformers/all-MiniLM-L6-v2 --port 8080

Endpoints:
    POST /v1/embeddings   OpenAI's embeddings API (strings or token-id arrays; float or base64; dimensions)
    GET  /v1/models       the served model (and the reranker, if any)
    POST /embed           text-embeddings-inference's: {"inputs", "normalize", "truncate", "prompt_name"}
    POST /rerank          text-embeddings-inference's: {"query", "texts", "raw_scores", "return_text"} (--reranker)
    GET  /health          200 once the model is loaded, 503 before
    GET  /metrics         Prometheus text format

Dynamic batching: handler threads validate and tokenize a request, then queue it; one batcher thread takes the
queued inputs, oldest first, up to `max_batch_tokens` real tokens, waiting at most `max_wait_ms` after the oldest
arrived for more company, and runs them through the model in one forward pass (one per kind of input: texts with
the same prompt, token-id arrays). A request larger than `max_batch_tokens` is split across several passes. Each
input gets the vector `SentenceEncoder.encode` gives it alone: the model computes each text's real tokens and
nothing else (minibert/fast.py), so its company changes a vector by a few float32 ulps at most.
All model work runs on the batcher thread, so requests never compete with each other for the cores.

Limits: a text longer than the model reads is cut, as `encode` cuts it, on /v1/embeddings (usage counts the tokens
read); /embed refuses it with 413 unless "truncate": true, as text-embeddings-inference does. A body over
`max_body_bytes` or more than `max_inputs` inputs: 413. A full queue, too many connections, or no answer within
`request_timeout`: 503. Bad JSON, a field of the wrong type or range, an empty input, a lone surrogate: 400, naming
the field. Errors take OpenAI's shape ({"error": {"message", "type", "param", "code"}}) except on /embed and
/rerank, which answer text-embeddings-inference's ({"error", "error_type"}).
"""

from __future__ import annotations

import argparse
import base64
import hmac
import json
import os
import signal
import socket
import sys
import threading
import time
import traceback
from collections import Counter, deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, Deque, Dict, List, Optional, Sequence, Tuple

import numpy as np

from .encoder import SentenceEncoder, embed_token_ids, normalize
from .errors import InputError, MinibertError, shown
from .hub import DEFAULT_MODEL
from .io import parse_json
from .tasks import CrossEncoder, identity

Array = np.ndarray

HELP = "serve embeddings over HTTP (OpenAI and text-embeddings-inference APIs)"
DESCRIPTION = ("Serve a model over HTTP: POST /v1/embeddings (OpenAI's API), POST /embed and /rerank "
               "(text-embeddings-inference's), GET /v1/models, /health and /metrics (Prometheus). Requests that "
               "arrive together share one forward pass; each text gets the vector `minibert encode` gives it. "
               "SIGINT or SIGTERM stops it after the requests in flight are answered.")
# Latency histogram buckets, in seconds; batch-size buckets, in inputs.
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)
JSON_TYPE = "application/json"
METRICS_TYPE = "text/plain; version=0.0.4; charset=utf-8"
STOP_GRACE = 10.0  # seconds shutdown waits for requests still arriving before it closes their connections


@dataclass(frozen=True)
class Limits:
    """What one server accepts and how it batches."""

    max_batch_tokens: int = 8192  # real tokens per forward pass (a larger request is split)
    max_wait_ms: float = 2.0  # how long the oldest queued request waits for company
    max_queue: int = 256  # requests waiting for the model; one more gets 503
    max_body_bytes: int = 4 << 20  # a larger request body gets 413 before it is read
    max_inputs: int = 2048  # inputs per request, as OpenAI allows; more gets 413
    request_timeout: float = 120.0  # seconds a request may wait for its vectors before 503
    max_connections: int = 512  # open connections (a thread each); one more is answered 503 and closed


class HTTPError(Exception):
    """A request that gets an error response: status, message and the field at fault."""

    def __init__(self, status: int, message: str, param: Optional[str] = None, code: Optional[str] = None):
        super().__init__(message)
        self.status, self.message, self.param, self.code = status, message, param, code


class ServeError(MinibertError):
    """The server cannot start (an address in use, a bad limit)."""


# ----------------------------------------------------------------------------------------------------------------
# Request bodies: every field checked, with the field named in the message
# ----------------------------------------------------------------------------------------------------------------

def bad(param: str, message: str) -> HTTPError:
    return HTTPError(400, f"{param}: {message}", param=param, code="invalid_value")


def check_text(value: object, where: str) -> str:
    """A non-empty string of valid Unicode (JSON's "\\ud800" escape decodes to a lone surrogate, which is not)."""
    if not isinstance(value, str):
        raise bad(where, f"expected a string, got {type(value).__name__} {shown(value)}")
    if not value:
        raise bad(where, "an empty string; expected text")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as e:
        raise bad(where, f"character {e.start} is a lone surrogate; expected valid Unicode text") from None
    return value


def check_texts(value: object, param: str, limit: int) -> List[str]:
    """A string or a non-empty list of strings, as a list."""
    if isinstance(value, str):
        return [check_text(value, param)]
    if not isinstance(value, list):
        raise bad(param, f"expected a string or a list of strings, got {type(value).__name__} {shown(value)}")
    check_count(value, param, limit)
    return [check_text(v, f"{param}[{i}]") for i, v in enumerate(value)]


def check_count(items: list, param: str, limit: int) -> None:
    if not items:
        raise bad(param, "an empty list; expected at least one input")
    if len(items) > limit:
        raise HTTPError(413, f"{param}: {len(items)} inputs; this server takes at most {limit} per request",
                        param=param, code="too_many_inputs")


def check_ids(value: list, where: str, vocab_size: int) -> List[int]:
    """A non-empty list of token ids of this model."""
    if not value:
        raise bad(where, "an empty list of token ids")
    for i, v in enumerate(value):
        if type(v) is not int or not 0 <= v < vocab_size:
            raise bad(f"{where}[{i}]", f"{shown(v)} is not a token id of this model; expected an integer from 0 "
                                       f"to {vocab_size - 1}")
    return value


def openai_inputs(value: object, limit: int, vocab_size: int) -> Tuple[str, list]:
    """OpenAI's `input`: a string, a list of strings, a list of token ids or a list of such lists.
    Returns ("text", strings) or ("ids", id lists)."""
    if isinstance(value, list) and value and all(type(v) is int for v in value):
        return "ids", [check_ids(value, "input", vocab_size)]
    if isinstance(value, list) and value and isinstance(value[0], list):
        check_count(value, "input", limit)
        for i, v in enumerate(value):
            if not isinstance(v, list):
                raise bad(f"input[{i}]", f"expected a list of token ids like input[0], got {shown(v)}")
        return "ids", [check_ids(v, f"input[{i}]", vocab_size) for i, v in enumerate(value)]
    return "text", check_texts(value, "input", limit)


def option(body: dict, name: str, kind: type, default: Any) -> Any:
    """An optional field of the body, of exactly `kind` (a bool is no int here); null means the default."""
    value = body.get(name)
    if value is None:
        return default
    if type(value) is not kind:
        raise bad(name, f"expected {kind.__name__}, got {type(value).__name__} {shown(value)}")
    return value


def json_object(raw: bytes) -> dict:
    try:
        body = parse_json(raw, "request body")
    except InputError as e:
        raise HTTPError(400, str(e), code="invalid_json") from None
    if not isinstance(body, dict):
        raise HTTPError(400, f"request body: expected a JSON object, got {type(body).__name__}", code="invalid_json")
    return body


# ----------------------------------------------------------------------------------------------------------------
# Metrics
# ----------------------------------------------------------------------------------------------------------------

class Histogram:
    """A Prometheus histogram: cumulative bucket counts, a sum and a count."""

    def __init__(self, buckets: Sequence[float]):
        self.buckets = tuple(buckets)
        self.counts = [0] * len(self.buckets)
        self.sum = 0.0
        self.count = 0

    def observe(self, value: float) -> None:
        for i, bound in enumerate(self.buckets):
            if value <= bound:
                self.counts[i] += 1
        self.sum += value
        self.count += 1

    def lines(self, name: str, labels: str = "") -> List[str]:
        sep = "," if labels else ""
        out = [f'{name}_bucket{{{labels}{sep}le="{b:g}"}} {c}' for b, c in zip(self.buckets, self.counts)]
        out.append(f'{name}_bucket{{{labels}{sep}le="+Inf"}} {self.count}')
        braces = f"{{{labels}}}" if labels else ""
        return out + [f"{name}_sum{braces} {self.sum:.6g}", f"{name}_count{braces} {self.count}"]


class Metrics:
    """Counters and histograms of one server, rendered in Prometheus' text format."""

    def __init__(self):
        self._lock = threading.Lock()
        self.requests: Counter = Counter()  # (route, status) -> count
        self.latency: Dict[str, Histogram] = {}
        self.batch_inputs = Histogram(BATCH_BUCKETS)
        self.batch_tokens = 0
        self.inputs = 0

    def request(self, route: str, status: int, seconds: float) -> None:
        with self._lock:
            self.requests[route, status] += 1
            self.latency.setdefault(route, Histogram(LATENCY_BUCKETS)).observe(seconds)

    def batch(self, inputs: int, tokens: int) -> None:
        with self._lock:
            self.batch_inputs.observe(inputs)
            self.batch_tokens += tokens
            self.inputs += inputs

    def render(self, queue_depth: int, loaded: bool) -> str:
        with self._lock:
            lines = ["# HELP minibert_requests_total HTTP requests answered, by route and status.",
                     "# TYPE minibert_requests_total counter"]
            lines += [f'minibert_requests_total{{route="{r}",status="{s}"}} {n}'
                      for (r, s), n in sorted(self.requests.items())]
            lines += ["# HELP minibert_request_duration_seconds Time from a request's headers to its response.",
                      "# TYPE minibert_request_duration_seconds histogram"]
            for route, histogram in sorted(self.latency.items()):
                lines += histogram.lines("minibert_request_duration_seconds", f'route="{route}"')
            lines += ["# HELP minibert_batch_size Inputs per forward pass.", "# TYPE minibert_batch_size histogram",
                      *self.batch_inputs.lines("minibert_batch_size"),
                      "# HELP minibert_batch_tokens_total Real tokens through the model.",
                      "# TYPE minibert_batch_tokens_total counter", f"minibert_batch_tokens_total {self.batch_tokens}",
                      "# HELP minibert_inputs_total Inputs embedded.", "# TYPE minibert_inputs_total counter",
                      f"minibert_inputs_total {self.inputs}",
                      "# HELP minibert_queue_depth Requests waiting for the model.",
                      "# TYPE minibert_queue_depth gauge", f"minibert_queue_depth {queue_depth}",
                      "# HELP minibert_model_loaded 1 once the model is loaded.", "# TYPE minibert_model_loaded gauge",
                      f"minibert_model_loaded {int(loaded)}"]
        return "\n".join(lines) + "\n"


# ----------------------------------------------------------------------------------------------------------------
# Dynamic batching
# ----------------------------------------------------------------------------------------------------------------

@dataclass(eq=False)
class Job:
    """One request's inputs, waiting for the model. `key` says which inputs may share a forward pass: ("text",
    prompt_name) or ("ids",). A job with `work` (a reranking) runs alone, as it is."""

    key: tuple
    inputs: list
    tokens: List[int]
    work: Optional[Callable[[], Any]] = None
    arrived: float = field(default_factory=time.monotonic)
    taken: int = 0  # inputs handed to a batch so far
    left: int = 0  # inputs not yet computed
    result: Any = None  # (N, P) float32 vectors, or what `work` returned
    error: Optional[BaseException] = None
    done: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self):
        self.left = len(self.inputs)


class Batcher:
    """One thread that runs queued jobs through the model, coalescing those that arrive together."""

    def __init__(self, compute: Callable[[tuple, list], Array], limits: Limits, metrics: Metrics):
        self.compute = compute
        self.limits = limits
        self.metrics = metrics
        self.queue: Deque[Job] = deque()
        self.queued_tokens = 0
        self.stopping = False
        self.cond = threading.Condition()
        self.thread = threading.Thread(target=self._loop, name="minibert-batcher", daemon=True)
        self.thread.start()

    def depth(self) -> int:
        with self.cond:
            return len(self.queue)

    def submit(self, job: Job) -> None:
        """Queue a job; 503 when the queue is full or the server is stopping."""
        with self.cond:
            if self.stopping:
                raise HTTPError(503, "the server is shutting down", code="shutting_down")
            if len(self.queue) >= self.limits.max_queue:
                raise HTTPError(503, f"the server is busy ({len(self.queue)} requests queued); retry later",
                                code="overloaded")
            self.queue.append(job)
            self.queued_tokens += sum(job.tokens)
            self.cond.notify()

    def cancel(self, job: Job) -> None:
        """Drop what is left of a job whose client gave up waiting."""
        with self.cond:
            if job in self.queue:
                self.queue.remove(job)
                self.queued_tokens -= sum(job.tokens[job.taken:])

    def stop(self) -> None:
        """Finish every queued job, then end the thread."""
        with self.cond:
            self.stopping = True
            self.cond.notify()
        self.thread.join()

    def _loop(self) -> None:
        while True:
            with self.cond:
                while not self.queue and not self.stopping:
                    self.cond.wait()
                if not self.queue:
                    return
                deadline = self.queue[0].arrived + self.limits.max_wait_ms / 1000
                while (self.queued_tokens < self.limits.max_batch_tokens and not self.stopping
                       and (wait := deadline - time.monotonic()) > 0):
                    self.cond.wait(wait)
                batch = self._take()
            self._run(batch)

    def _take(self) -> List[Tuple[Job, int, int]]:
        """Slices (job, start, end) of the oldest queued inputs, up to max_batch_tokens (at least one input); a
        job with `work` only alone. Called with the lock held."""
        batch: List[Tuple[Job, int, int]] = []
        budget = self.limits.max_batch_tokens
        while self.queue:
            job = self.queue[0]
            if job.work is not None:
                if not batch:
                    batch.append((job, 0, 0))
                    self.queue.popleft()
                return batch
            start = end = job.taken
            while end < len(job.inputs) and (job.tokens[end] <= budget or not batch and end == start):
                budget -= job.tokens[end]
                end += 1
            if end == start:
                return batch
            batch.append((job, start, end))
            job.taken = end
            self.queued_tokens -= sum(job.tokens[start:end])
            if end < len(job.inputs):
                return batch
            self.queue.popleft()
        return batch

    def _run(self, batch: List[Tuple[Job, int, int]]) -> None:
        job = batch[0][0]
        if job.work is not None:
            self._finish([job], job.work)
            return
        groups: Dict[tuple, List[Tuple[Job, int, int]]] = {}
        for piece in batch:
            groups.setdefault(piece[0].key, []).append(piece)
        for key, pieces in groups.items():
            inputs = [x for job, start, end in pieces for x in job.inputs[start:end]]
            self.metrics.batch(len(inputs), sum(t for job, start, end in pieces for t in job.tokens[start:end]))
            self._finish([job for job, _, _ in pieces], lambda: self.compute(key, inputs), pieces)

    def _finish(self, jobs: List[Job], work: Callable[[], Any],
                pieces: Optional[List[Tuple[Job, int, int]]] = None) -> None:
        """Run `work`; hand each job its rows (or the whole result), or the error; wake the finished ones."""
        try:
            result = work()
        except BaseException as e:  # the handler threads answer for it; this thread carries on
            for job in jobs:
                job.error = e
                self.cancel(job)
                job.done.set()
            return
        if pieces is None:
            jobs[0].result = result
            jobs[0].done.set()
            return
        row = 0
        for job, start, end in pieces:
            if job.result is None:
                job.result = np.empty((len(job.inputs), result.shape[1]), dtype=np.float32)
            job.result[start:end] = result[row:row + end - start]
            row += end - start
            job.left -= end - start
            if job.left == 0:
                job.done.set()


# ----------------------------------------------------------------------------------------------------------------
# The service: what each endpoint does, independent of HTTP
# ----------------------------------------------------------------------------------------------------------------

class Service:
    """The models, limits, batcher and metrics behind one server. Until `load` is called (the model is still
    loading) /health says 503 and the model endpoints refuse with 503."""

    def __init__(self, model_name: str, *, limits: Limits = Limits(), api_key: Optional[str] = None,
                 reranker_name: Optional[str] = None):
        self.model_name = model_name
        self.reranker_name = reranker_name
        self.limits = limits
        # The key's bytes as typed (a non-UTF-8 command line arrives surrogate-escaped).
        self.api_key = api_key.encode("utf-8", "surrogateescape") if api_key else None
        self.metrics = Metrics()
        self.created = int(time.time())
        self.encoder: Optional[SentenceEncoder] = None
        self.reranker: Any = None
        self.batcher: Optional[Batcher] = None

    def load(self, encoder: SentenceEncoder, reranker: Any = None) -> None:
        """Start serving `encoder` (and `reranker`, anything with CrossEncoder's `predict`)."""
        if self.limits.max_batch_tokens < encoder.max_seq_length:
            raise ServeError(f"--max-batch-tokens {self.limits.max_batch_tokens}: less than the model's "
                             f"max_seq_length ({encoder.max_seq_length}); a long text would never fit a batch")
        self.batcher = Batcher(self._compute, self.limits, self.metrics)  # before the encoder: it marks us ready
        self.encoder, self.reranker = encoder, reranker

    def close(self) -> None:
        """Answer every queued request, then stop the batcher."""
        if self.batcher is not None:
            self.batcher.stop()

    def authorized(self, header: Optional[str]) -> bool:
        """Whether an Authorization header carries the API key (compared in constant time)."""
        if self.api_key is None:
            return True
        given = (header or "").encode("latin-1", "replace")  # http.server decodes headers as Latin-1: undo it
        return hmac.compare_digest(given, b"Bearer " + self.api_key)

    # -- GET ----------------------------------------------------------------------------------------------------

    def health(self) -> Tuple[int, dict]:
        """200 once the model is loaded and the batcher runs; 503 while loading (or if the batcher died)."""
        if self.encoder is None:
            return 503, {"status": "loading"}
        return (200, {"status": "ok"}) if self.batcher.thread.is_alive() else (503, {"status": "stopped"})

    def models(self) -> dict:
        names = [self.model_name] + ([self.reranker_name] if self.reranker_name else [])
        return {"object": "list", "data": [{"id": n, "object": "model", "created": self.created,
                                            "owned_by": "minibert"} for n in names]}

    def metrics_text(self) -> str:
        return self.metrics.render(self.batcher.depth() if self.batcher else 0, self.encoder is not None)

    # -- POST ---------------------------------------------------------------------------------------------------

    def openai_embeddings(self, body: dict) -> dict:
        encoder = self._ready()
        model = body.get("model")
        if model is not None and model != self.model_name:
            if not isinstance(model, str):
                raise bad("model", f"expected a string, got {shown(model)}")
            raise HTTPError(404, f"model {shown(model)}: not served here; this server serves {self.model_name!r}",
                            param="model", code="model_not_found")
        kind, inputs = openai_inputs(body.get("input"), self.limits.max_inputs, encoder.model.config.vocab_size)
        encoding = option(body, "encoding_format", str, "float")
        if encoding not in ("float", "base64"):
            raise bad("encoding_format", f"{shown(encoding)}; expected 'float' or 'base64'")
        dims = self._dimensions(option(body, "dimensions", int, None))
        option(body, "user", str, None)
        if kind == "ids":
            tokens = [min(len(ids) + 2, encoder.max_seq_length) for ids in inputs]
            vectors = self._embed(("ids",), inputs, tokens)
        else:
            tokens = [min(n, encoder.max_seq_length) for n in self._token_counts(inputs, None)]
            vectors = self._embed(("text", None), inputs, tokens)
        if dims is not None:
            vectors = normalize(vectors[:, :dims])
        data = [{"object": "embedding", "index": i,
                 "embedding": base64.b64encode(v.astype("<f4").tobytes()).decode("ascii")
                 if encoding == "base64" else v.tolist()} for i, v in enumerate(vectors)]
        return {"object": "list", "data": data, "model": self.model_name,
                "usage": {"prompt_tokens": sum(tokens), "total_tokens": sum(tokens)}}

    def tei_embed(self, body: dict) -> list:
        encoder = self._ready()
        inputs = check_texts(body.get("inputs"), "inputs", self.limits.max_inputs)
        normalized = option(body, "normalize", bool, True)
        truncate = option(body, "truncate", bool, False)
        prompt_name = self._prompt_name(option(body, "prompt_name", str, None))
        counts = self._token_counts(inputs, prompt_name)
        if not truncate:
            for i, n in enumerate(counts):
                if n > encoder.max_seq_length:
                    raise HTTPError(413, f"inputs[{i}]: {n} tokens; this model reads at most "
                                         f"{encoder.max_seq_length} (send \"truncate\": true to cut it)",
                                    param=f"inputs[{i}]", code="input_too_long")
        tokens = [min(n, encoder.max_seq_length) for n in counts]
        vectors = self._embed(("text", prompt_name), inputs, tokens)
        return (normalize(vectors) if normalized else vectors).tolist()

    def tei_rerank(self, body: dict) -> list:
        self._ready()
        if self.reranker is None:
            raise HTTPError(404, "/rerank: no reranker is loaded; start the server with --reranker MODEL",
                            code="no_reranker")
        query = check_text(body.get("query"), "query")
        texts = check_texts(body.get("texts"), "texts", self.limits.max_inputs)
        raw = option(body, "raw_scores", bool, False)
        return_text = option(body, "return_text", bool, False)
        option(body, "truncate", bool, False)  # pairs are always cut to the reranker's max_length, longest first
        pairs = [(query, t) for t in texts]
        # raw_scores: the logits, unchanged by the reranker's activation (the identity in its place).
        activation = identity if raw else None
        job = Job(("rerank",), pairs, [0] * len(pairs),  # outside the token budget: it runs alone
                  work=lambda: self.reranker.predict(pairs, batch_size=32, activation_fn=activation))
        scores = np.asarray(self._wait(job), dtype=np.float64).reshape(len(texts), -1)
        if scores.shape[1] != 1:
            raise HTTPError(400, f"/rerank: the reranker gives {scores.shape[1]} scores per pair; reranking needs "
                                 "one (a relevance score)", code="not_a_reranker")
        order = sorted(range(len(texts)), key=lambda i: -scores[i, 0])  # stable: ties keep their order
        return [{"index": i, "score": float(scores[i, 0]), **({"text": texts[i]} if return_text else {})}
                for i in order]

    # -- helpers ------------------------------------------------------------------------------------------------

    def _ready(self) -> SentenceEncoder:
        if self.encoder is None:
            raise HTTPError(503, "the model is still loading; retry when GET /health says ok", code="loading")
        return self.encoder

    def _dimensions(self, dims: Optional[int]) -> Optional[int]:
        size = self.encoder.get_sentence_embedding_dimension()
        if dims is not None and not 1 <= dims <= size:
            raise bad("dimensions", f"{shown(dims)}; expected an integer from 1 to {size} (this model's size)")
        return dims

    def _prompt_name(self, name: Optional[str]) -> Optional[str]:
        """A prompt_name the encoder knows."""
        if name is None:
            return None
        prompts = self.encoder.prompts
        if name not in prompts:
            listed = ", ".join(map(repr, prompts))
            raise bad("prompt_name", f"{shown(name)}: not one of this model's prompts ({listed})")
        return name

    def _token_counts(self, texts: List[str], prompt_name: Optional[str]) -> List[int]:
        """Tokens of each text as the encoder will read it (after its prompt: the one named, else the model's
        default, if any), special tokens included, before truncation."""
        encoder = self.encoder
        prefix = encoder.resolve_prompt(None, prompt_name) or ""
        texts = [prefix + t for t in texts]
        if encoder.do_lower_case:
            texts = [t.lower() for t in texts]
        return [len(e.ids) for e in encoder.tokenizer(texts, truncation=False).encodings]

    def _compute(self, key: tuple, inputs: list) -> Array:
        """One forward pass over inputs of one kind (run on the batcher thread)."""
        if key[0] == "ids":
            return embed_token_ids(self.encoder, inputs)
        prompt = {"prompt_name": key[1]} if key[1] is not None else {}
        return self.encoder.encode(inputs, batch_size=len(inputs), show_progress_bar=False, **prompt)

    def _embed(self, key: tuple, inputs: list, tokens: List[int]) -> Array:
        return self._wait(Job(key, inputs, tokens))

    def _wait(self, job: Job) -> Any:
        """Queue a job and wait for its result; the model's own errors about an input are 400s."""
        self.batcher.submit(job)
        if not job.done.wait(self.limits.request_timeout):
            self.batcher.cancel(job)
            raise HTTPError(503, f"no result within {self.limits.request_timeout:g} s; the server is overloaded",
                            code="timeout")
        if isinstance(job.error, MinibertError):
            raise HTTPError(400, str(job.error), code="invalid_value")
        if job.error is not None:
            raise job.error
        return job.result


# ----------------------------------------------------------------------------------------------------------------
# HTTP
# ----------------------------------------------------------------------------------------------------------------

# (method, path) -> (Service method name, error style); GET routes answer without a body.
ROUTES = {
    ("POST", "/v1/embeddings"): "openai_embeddings",
    ("GET", "/v1/models"): "models",
    ("POST", "/embed"): "tei_embed",
    ("POST", "/rerank"): "tei_rerank",
    ("GET", "/health"): "health",
    ("GET", "/metrics"): "metrics_text",
}
PATHS = {path for _, path in ROUTES}
TEI_PATHS = ("/embed", "/rerank")
OPEN_PATHS = ("/health",)  # answered without the API key (load balancers probe it)
# What a connection over max_connections gets, written before any of its request is read.
_BUSY = json.dumps({"error": {"message": "too many open connections; retry later", "type": "server_error",
                              "param": None, "code": "overloaded"}}).encode()
BUSY_RESPONSE = (b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nRetry-After: 1\r\n"
                 b"Connection: close\r\nContent-Length: %d\r\n\r\n%s" % (len(_BUSY), _BUSY))
TEI_ERROR_TYPES = {401: "Unauthorized", 413: "Validation", 503: "Overloaded", 500: "Backend"}


def error_body(path: str, error: HTTPError) -> dict:
    """An error in the route's own API shape: text-embeddings-inference's for /embed and /rerank, else OpenAI's."""
    if path in TEI_PATHS:
        return {"error": error.message, "error_type": TEI_ERROR_TYPES.get(error.status, "Validation")}
    kind = "invalid_request_error" if error.status < 500 else "server_error"
    return {"error": {"message": error.message, "type": kind, "param": error.param, "code": error.code}}


class Handler(BaseHTTPRequestHandler):
    """Reads one request, answers it through the server's Service, counts it in the metrics."""

    protocol_version = "HTTP/1.1"  # keep-alive: a client reuses its connection
    server_version = "minibert"
    timeout = 30  # seconds a connection may stay silent mid-request before its thread is freed
    # The headers and the body go out in two writes: with Nagle's algorithm the body would wait for the client's
    # delayed ACK of the headers (40 ms on Linux) on every keep-alive request.
    disable_nagle_algorithm = True
    server: "_HTTPServer"

    def setup(self) -> None:
        super().setup()
        self.server.track(self, busy=False)

    def finish(self) -> None:
        self.server.forget(self)
        super().finish()

    def parse_request(self) -> bool:
        self.server.track(self, busy=True)  # a request has begun: shutdown waits for its answer
        return super().parse_request()

    def do_GET(self) -> None:
        self.dispatch("GET")

    def do_POST(self) -> None:
        self.dispatch("POST")

    def do_PUT(self) -> None:
        self.dispatch("PUT")

    def do_DELETE(self) -> None:
        self.dispatch("DELETE")

    def log_message(self, format: str, *args) -> None:
        """Quiet: /metrics counts the requests; errors of the server itself go to stderr in dispatch."""

    def send_error(self, code: int, message: Optional[str] = None, explain: Optional[str] = None) -> None:
        """The standard library's own refusals (a malformed request line, headers too long) as JSON too."""
        self.close_connection = True
        self.request_version = "HTTP/1.0"  # a request line too broken to parse still gets a status line
        self.respond(code, error_body("", HTTPError(code, message or self.responses.get(code, ("error",))[0])))
        self.server.service.metrics.request("other", code, 0.0)  # refused before a route was read

    def dispatch(self, method: str) -> None:
        start = time.perf_counter()
        path = self.path.split("?", 1)[0]
        route = path if path in PATHS else "other"
        service: Service = self.server.service
        status = 500
        try:
            name = ROUTES.get((method, path))
            allowed = path in OPEN_PATHS or service.authorized(self.headers.get("Authorization"))
            if name is None or not allowed:
                self.discard_body()
            if name is None:
                if path in PATHS:
                    raise HTTPError(405, f"{method} {path}: not allowed here", code="method_not_allowed")
                raise HTTPError(404, f"{method} {path}: no such endpoint", code="not_found")
            if not allowed:
                raise HTTPError(401, "missing or incorrect API key; send the header 'Authorization: Bearer KEY'",
                                code="invalid_api_key")
            if method == "POST":
                result = getattr(service, name)(json_object(self.read_body()))
            else:
                self.discard_body()
                result = getattr(service, name)()
            status, result = result if isinstance(result, tuple) else (200, result)
            self.respond(status, result)
        except HTTPError as e:
            status = e.status
            self.respond(status, error_body(path, e))
        except (ConnectionError, socket.timeout):
            self.close_connection = True
            status = 499  # the client went away: nothing can be answered
        except Exception:
            traceback.print_exc(file=sys.stderr)
            status = 500
            self.respond(status, error_body(path, HTTPError(500, "internal server error", code="internal_error")))
        finally:
            service.metrics.request(route, status, time.perf_counter() - start)
            self.server.track(self, busy=False)

    def discard_body(self) -> None:
        """Read and drop a refused request's body, so that its connection can carry the next request (one too
        large, or of unknown length, ends the connection instead)."""
        try:
            self.read_body()
        except HTTPError:
            self.close_connection = True

    def read_body(self) -> bytes:
        """The request body (Content-Length bytes), refused with 413 before it is read when too large."""
        if self.headers.get("Transfer-Encoding"):
            self.close_connection = True
            raise HTTPError(411, "chunked request bodies are not accepted; send Content-Length",
                            code="length_required")
        length = self.headers.get("Content-Length")
        if length is None and self.command != "POST":
            return b""
        if length is None:
            raise HTTPError(411, "a request body needs a Content-Length header", code="length_required")
        if not length.isdigit() or len(length) > 18:
            self.close_connection = True
            raise HTTPError(400, f"Content-Length {shown(length)}: expected a number of bytes", code="invalid_header")
        limit = self.server.service.limits.max_body_bytes
        if int(length) > limit:
            self.close_connection = True
            raise HTTPError(413, f"request body of {int(length)} bytes; this server takes at most {limit}",
                            code="body_too_large")
        body = self.rfile.read(int(length))
        if len(body) < int(length):
            raise ConnectionError("the client closed the connection mid-body")
        return body

    def respond(self, status: int, result: Any) -> None:
        text = isinstance(result, str)
        data = (result if text else json.dumps(result, ensure_ascii=False, separators=(",", ":"))).encode("utf-8")
        if self.server.stopping:
            self.close_connection = True
        self.send_response(status)
        self.send_header("Content-Type", METRICS_TYPE if text else JSON_TYPE)
        self.send_header("Content-Length", str(len(data)))
        if status == 401:
            self.send_header("WWW-Authenticate", "Bearer")
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(data)


class _HTTPServer(ThreadingHTTPServer):
    """A thread per connection; shutting down waits for the requests in flight and closes idle connections."""

    daemon_threads = False
    block_on_close = True  # server_close joins the connection threads

    def __init__(self, address: Tuple[str, int], service: Service):
        super().__init__(address, Handler)
        self.service = service
        self.stopping = False
        self._connections: Dict[Handler, bool] = {}  # handler -> busy
        self._open = 0  # connections accepted and not yet closed
        self._lock = threading.Lock()

    def process_request(self, request: socket.socket, client_address) -> None:
        """A thread for the connection, unless max_connections are open: then 503 at once, and close."""
        with self._lock:
            full = self._open >= self.service.limits.max_connections
            self._open += not full
        if not full:
            super().process_request(request, client_address)
            return
        try:
            request.settimeout(1)
            request.sendall(BUSY_RESPONSE)
        except OSError:
            pass
        self.shutdown_request(request)

    def process_request_thread(self, request: socket.socket, client_address) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            with self._lock:
                self._open -= 1

    def track(self, handler: Handler, busy: bool) -> None:
        with self._lock:
            self._connections[handler] = busy

    def forget(self, handler: Handler) -> None:
        with self._lock:
            self._connections.pop(handler, None)

    def close_idle(self, everyone: bool = False) -> None:
        """Wake every connection waiting for a next request (keep-alive) so that its thread ends; with `everyone`,
        also those still in a request (a client trickling its body byte by byte)."""
        with self._lock:
            self.stopping = True
            chosen = [h for h, busy in self._connections.items() if everyone or not busy]
        for handler in chosen:
            try:
                handler.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def open_connections(self) -> int:
        with self._lock:
            return len(self._connections)

    def handle_error(self, request, client_address) -> None:
        """A client that vanished is no error of the server's."""
        if not isinstance(sys.exc_info()[1], (ConnectionError, socket.timeout)):
            super().handle_error(request, client_address)


class Server:
    """An HTTP server for a Service on a background thread.

    >>> with Server(service, "127.0.0.1", 0) as server:   # port 0: any free port
    ...     urllib.request.urlopen(server.url + "/health")
    """

    def __init__(self, service: Service, host: str = "127.0.0.1", port: int = 8080):
        self.service = service
        try:
            self.httpd = _HTTPServer((host, port), service)
        except OSError as e:
            raise ServeError(f"cannot listen on {host}:{port} ({e.strerror or e})") from None
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.1},
                                       name="minibert-http", daemon=True)

    @property
    def port(self) -> int:
        return self.httpd.server_address[1]

    @property
    def url(self) -> str:
        host = self.httpd.server_address[0]
        return f"http://{f'[{host}]' if ':' in host else host}:{self.port}"

    def start(self) -> "Server":
        self.thread.start()
        return self

    def stop(self) -> None:
        """Stop accepting, answer the requests in flight (and those queued), close every connection."""
        if self.thread.is_alive():
            self.httpd.shutdown()
        self.httpd.close_idle()
        deadline = time.monotonic() + STOP_GRACE
        while self.httpd.open_connections() and time.monotonic() < deadline:
            time.sleep(0.05)
        self.httpd.close_idle(everyone=True)  # a request still arriving after the grace period is not waited for
        self.httpd.server_close()  # joins the connection threads: each in-flight request gets its answer
        self.service.close()

    def __enter__(self) -> "Server":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


# ----------------------------------------------------------------------------------------------------------------
# minibert serve
# ----------------------------------------------------------------------------------------------------------------

def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", default=DEFAULT_MODEL, help=f"model folder or Hub repo id (default: {DEFAULT_MODEL})")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1, this machine only)")
    p.add_argument("--port", type=int, default=8080, help="port (default: 8080; 0 picks a free one)")
    p.add_argument("--api-key", default=os.environ.get("MINIBERT_API_KEY"),
                   help="require 'Authorization: Bearer KEY' on every endpoint but /health (default: "
                        "$MINIBERT_API_KEY, which keeps the key out of the process list; none: open)")
    p.add_argument("--max-batch-tokens", type=int, default=Limits.max_batch_tokens,
                   help=f"real tokens per forward pass; a larger request is split (default: {Limits.max_batch_tokens})")
    p.add_argument("--max-wait-ms", type=float, default=Limits.max_wait_ms,
                   help="how long a request waits for others to share its forward pass (default: "
                        f"{Limits.max_wait_ms:g})")
    p.add_argument("--max-queue", type=int, default=Limits.max_queue,
                   help=f"requests waiting for the model before 503 (default: {Limits.max_queue})")
    p.add_argument("--reranker", help="a cross-encoder model folder or Hub repo id for POST /rerank")


def check_arguments(args: argparse.Namespace) -> Limits:
    if not 0 <= args.port <= 65535:
        raise InputError(f"--port {args.port}: expected 0 to 65535")
    if args.max_batch_tokens < 1 or args.max_queue < 1:
        raise InputError(f"--max-batch-tokens {args.max_batch_tokens}, --max-queue {args.max_queue}: expected "
                         "positive integers")
    if not 0 <= args.max_wait_ms <= 10_000:
        raise InputError(f"--max-wait-ms {args.max_wait_ms:g}: expected 0 to 10000")
    if args.api_key is not None and not args.api_key.strip():
        raise InputError("--api-key: empty; give a key, or leave the option out for an open server")
    return Limits(max_batch_tokens=args.max_batch_tokens, max_wait_ms=args.max_wait_ms, max_queue=args.max_queue)


def load_reranker(name: str) -> Any:
    """The cross-encoder for /rerank."""
    return CrossEncoder.from_pretrained(name)


def run(args: argparse.Namespace, p: argparse.ArgumentParser) -> int:
    """Carry out `minibert serve`: listen at once (/health says 503 while loading), load the models, serve until
    SIGINT (exit status 130) or SIGTERM (0), answering the requests in flight before exiting."""
    limits = check_arguments(args)
    service = Service(args.model, limits=limits, api_key=args.api_key, reranker_name=args.reranker)
    stop = threading.Event()
    received: List[int] = []

    def on_signal(signum, frame):
        received.append(signum)
        stop.set()

    server = Server(service, args.host, args.port)
    previous: Dict[int, Any] = {}
    try:
        server.start()
        print(f"{p.prog}: loading {args.model} ...", file=sys.stderr)
        service.load(SentenceEncoder.from_pretrained(args.model),  # Ctrl-C here interrupts the load (a download)
                     load_reranker(args.reranker) if args.reranker else None)
        previous = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
        if args.api_key is None and args.host not in ("127.0.0.1", "localhost", "::1"):
            print(f"{p.prog}: warning: listening on {args.host} without --api-key: anyone who can reach it can use "
                  "it", file=sys.stderr)
        if not stop.is_set():
            print(f"{p.prog}: serving {args.model} on {server.url} (POST /v1/embeddings, /embed"
                  f"{', /rerank' if args.reranker else ''}; GET /v1/models, /health, /metrics)", file=sys.stderr)
        while not stop.wait(0.5):
            pass
        print(f"{p.prog}: stopping; answering the requests in flight", file=sys.stderr)
    finally:
        server.stop()
        for s, handler in previous.items():
            signal.signal(s, handler)
    return 130 if received[0] == signal.SIGINT else 0
