"""minibert serve: every endpoint over real HTTP on 127.0.0.1 (a free port), against encode()'s own vectors;
dynamic batching seen in /metrics; auth; every class of bad input answered 400; limits; shutdown."""

from __future__ import annotations

import base64
import http.client
import json
import random
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

import numpy as np
import pytest

from conftest import FIXTURES, REPO, assert_batch_invariant, mutate
from minibert import SentenceEncoder
from minibert.encoder import normalize
from minibert.serve import Batcher, HTTPError, Job, Limits, Metrics, Server, Service, ServeError

MPNET = FIXTURES / "families" / "mpnet"
NAME = "mpnet-fixture"
TEXTS = ["The cat sat on the mat.", "A dog barked.", "hello", "Stocks fell sharply on Monday after the report.",
         "héllo wörld ☃", "one two three four five six seven eight"]
TIMEOUT = 20  # seconds any one HTTP call may take


@pytest.fixture(scope="module")
def encoder() -> SentenceEncoder:
    return SentenceEncoder.from_pretrained(MPNET)


@contextmanager
def serving(encoder, reranker=None, **limits):
    service = Service(NAME, limits=Limits(**{k: v for k, v in limits.items() if k != "api_key"}),
                      api_key=limits.get("api_key"), reranker_name="stand-in" if reranker else None)
    service.load(encoder, reranker)
    with Server(service, "127.0.0.1", 0) as server:
        yield server


@pytest.fixture(scope="module")
def server(encoder):
    with serving(encoder) as s:
        yield s


def call(server, method, path, body=None, headers=None, conn=None):
    """(status, parsed JSON or text, headers) of one request; `body` is JSON-encoded unless bytes."""
    c = conn or http.client.HTTPConnection("127.0.0.1", server.port, timeout=TIMEOUT)
    data = body if isinstance(body, bytes) or body is None else json.dumps(body).encode()
    c.request(method, path, body=data, headers=headers or {})
    r = c.getresponse()
    raw = r.read()
    if conn is None:
        c.close()
    text = raw.decode("utf-8")
    return r.status, (json.loads(text) if r.getheader("Content-Type") == "application/json" else text), r


def raw(server, data: bytes) -> bytes:
    """The whole answer to bytes sent as they are (the server closes the connection after a refusal)."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=TIMEOUT) as sock:
        sock.sendall(data)
        sock.shutdown(socket.SHUT_WR)
        return b"".join(iter(lambda: sock.recv(65536), b""))


def embeddings(server, body, **kw):
    status, out, _ = call(server, "POST", "/v1/embeddings", body, **kw)
    assert status == 200, out
    return np.array([d["embedding"] for d in out["data"]], dtype=np.float32), out


def metric(text: str, name: str) -> float:
    return float(re.search(rf"^{re.escape(name)} (\S+)$", text, re.M).group(1))


# ----------------------------------------------------------------------------------------------------------------
# Endpoints
# ----------------------------------------------------------------------------------------------------------------

def test_health_models_and_loading(server, encoder):
    assert call(server, "GET", "/health")[:2] == (200, {"status": "ok"})
    status, out, _ = call(server, "GET", "/v1/models")
    assert status == 200 and [m["id"] for m in out["data"]] == [NAME] and out["data"][0]["object"] == "model"
    with Server(Service(NAME), "127.0.0.1", 0) as loading:  # the model is not loaded yet
        assert call(loading, "GET", "/health")[:2] == (503, {"status": "loading"})
        status, out, _ = call(loading, "POST", "/v1/embeddings", {"input": "x"})
        assert status == 503 and out["error"]["code"] == "loading"


def test_openai_vectors_are_encodes(server, encoder):
    vectors, out = embeddings(server, {"input": TEXTS, "model": NAME})
    assert out["object"] == "list" and out["model"] == NAME
    assert [d["index"] for d in out["data"]] == list(range(len(TEXTS)))
    assert all(d["object"] == "embedding" for d in out["data"])
    for text, v in zip(TEXTS, vectors):
        assert_batch_invariant(v, encoder.encode([text])[0], "serve vs encode alone")
    counts = [len(e.ids) for e in encoder.tokenizer(TEXTS).encodings]
    assert out["usage"] == {"prompt_tokens": sum(counts), "total_tokens": sum(counts)}
    single, _ = embeddings(server, {"input": TEXTS[0]})
    assert_batch_invariant(single[0], encoder.encode(TEXTS[0]))


def test_base64_equals_float_and_dimensions(server, encoder):
    floats, _ = embeddings(server, {"input": TEXTS})
    _, out = call(server, "POST", "/v1/embeddings", {"input": TEXTS, "encoding_format": "base64"})[:2]
    decoded = np.stack([np.frombuffer(base64.b64decode(d["embedding"]), dtype="<f4") for d in out["data"]])
    np.testing.assert_array_equal(decoded, floats)
    cut, _ = embeddings(server, {"input": TEXTS, "dimensions": 8})
    assert cut.shape == (len(TEXTS), 8)
    np.testing.assert_allclose(np.linalg.norm(cut, axis=1), 1, atol=1e-6)
    assert_batch_invariant(cut, normalize(encoder.encode(TEXTS)[:, :8]))


def test_token_id_inputs(server, encoder):
    ids = [encoder.tokenizer(t).encodings[0].ids[1:-1] for t in TEXTS]  # word pieces, no [CLS]/[SEP]
    vectors, out = embeddings(server, {"input": ids})
    assert_batch_invariant(vectors, encoder.encode(TEXTS), "serve token ids vs encode")
    assert out["usage"]["prompt_tokens"] == sum(len(i) + 2 for i in ids)
    one, _ = embeddings(server, {"input": ids[0]})
    assert_batch_invariant(one[0], encoder.encode(TEXTS[0]))


def test_tei_embed(server, encoder):
    status, out, _ = call(server, "POST", "/embed", {"inputs": TEXTS})
    assert status == 200
    assert_batch_invariant(np.array(out, dtype=np.float32), encoder.encode(TEXTS, normalize_embeddings=True))
    status, out, _ = call(server, "POST", "/embed", {"inputs": "hello", "normalize": False})
    assert status == 200 and len(out) == 1
    long = " ".join(["word"] * 100)  # over the fixture's 32 tokens
    status, out, _ = call(server, "POST", "/embed", {"inputs": [long]})
    assert status == 413 and "truncate" in out["error"] and out["error_type"] == "Validation"
    status, out, _ = call(server, "POST", "/embed", {"inputs": [long], "truncate": True})
    assert status == 200
    assert_batch_invariant(np.array(out[0], dtype=np.float32), encoder.encode(long, normalize_embeddings=True))
    status, out, _ = call(server, "POST", "/embed", {"inputs": "x", "prompt_name": "no-such-prompt"})
    assert status == 400 and out["error"].startswith("prompt_name: ")


class PromptEncoder(SentenceEncoder):
    """An encoder with prompts, as the retrieval API's: `prompt_name` puts the named prompt before each text."""

    prompts = {"query": "query: "}
    default_prompt_name = None

    def encode(self, sentences, batch_size=32, *, prompt_name=None, **options):
        prefix = self.prompts[prompt_name] if prompt_name is not None else ""
        texts = [sentences] if isinstance(sentences, str) else sentences
        out = super().encode([prefix + t for t in texts], batch_size, **options)
        return out[0] if isinstance(sentences, str) else out


def test_tei_prompt_name(encoder):
    prompted = PromptEncoder(encoder.model, encoder.tokenizer, encoder.layout)
    with serving(prompted) as s:
        status, out, _ = call(s, "POST", "/embed", {"inputs": TEXTS[:3], "prompt_name": "query"})
        assert status == 200
        assert_batch_invariant(np.array(out, dtype=np.float32),
                               encoder.encode(["query: " + t for t in TEXTS[:3]], normalize_embeddings=True))
        status, out, _ = call(s, "POST", "/embed", {"inputs": "x", "prompt_name": "passage"})
        assert status == 400 and "'query'" in out["error"]


class StandIn:
    """CrossEncoder's predict: the score of (query, text) is the text's length (activation: times 2)."""

    def __init__(self):
        self.calls = []

    def predict(self, pairs, batch_size=32, apply_softmax=False, activation_fn=None):
        self.calls.append(activation_fn)
        logits = np.array([float(len(b)) for _, b in pairs], dtype=np.float32)
        return activation_fn(logits) if activation_fn is not None else 2 * logits


def test_rerank(encoder, server):
    status, out, _ = call(server, "POST", "/rerank", {"query": "q", "texts": ["a"]})
    assert status == 404 and "--reranker" in out["error"]
    reranker = StandIn()
    with serving(encoder, reranker) as s:
        texts = ["bb", "a", "dddd", "ccc"]
        status, out, _ = call(s, "POST", "/rerank", {"query": "q", "texts": texts})
        assert status == 200 and out == [{"index": i, "score": 2.0 * len(texts[i])} for i in (2, 3, 0, 1)]
        status, out, _ = call(s, "POST", "/rerank", {"query": "q", "texts": texts, "raw_scores": True,
                                                     "return_text": True})
        assert out[0] == {"index": 2, "score": 4.0, "text": "dddd"}
        status, out, _ = call(s, "POST", "/rerank", {"query": "q", "texts": []})
        assert status == 400 and "empty" in out["error"]
        assert "stand-in" in [m["id"] for m in call(s, "GET", "/v1/models")[1]["data"]]

    def broken(pairs, **options):
        raise RuntimeError("a bug")

    reranker.predict = broken
    with serving(encoder, reranker) as s:
        status, out, _ = call(s, "POST", "/rerank", {"query": "q", "texts": ["a"]})
        assert status == 500 and out == {"error": "internal server error", "error_type": "Backend"}
        assert call(s, "GET", "/health")[0] == 200 and call(s, "POST", "/embed", {"inputs": "a"})[0] == 200


def test_metrics_format(server):
    call(server, "GET", "/health")
    status, text, r = call(server, "GET", "/metrics")
    assert status == 200 and r.getheader("Content-Type").startswith("text/plain; version=0.0.4")
    assert re.search(r'^minibert_requests_total\{route="/health",status="200"\} \d+$', text, re.M)
    assert re.search(r'^minibert_request_duration_seconds_bucket\{route="/health",le="\+Inf"\} \d+$', text, re.M)
    for name in ("minibert_queue_depth", "minibert_batch_size_count", "minibert_batch_tokens_total",
                 "minibert_model_loaded"):
        metric(text, name)
    for line in text.splitlines():  # every line a comment or `name{labels} value`
        assert line.startswith("# ") or re.fullmatch(r'[a-z_]+(\{[^}]*\})? \S+', line), line


# ----------------------------------------------------------------------------------------------------------------
# Auth and bad input
# ----------------------------------------------------------------------------------------------------------------

def test_api_key(encoder):
    with serving(encoder, api_key="s3crét") as s:
        status, out, r = call(s, "POST", "/v1/embeddings", {"input": "x"})
        assert status == 401 and out["error"]["code"] == "invalid_api_key" and r.getheader("WWW-Authenticate")
        wrong = (b"Bearer wrong", "s3crét".encode(), "Bearer s3crét ".encode(), "Bearer s3crét".encode("latin-1"))
        for header in wrong:
            assert call(s, "POST", "/v1/embeddings", {"input": "x"}, {"Authorization": header})[0] == 401
        assert call(s, "GET", "/metrics")[0] == 401
        ok = {"Authorization": "Bearer s3crét".encode()}  # the key's UTF-8 bytes
        assert call(s, "POST", "/v1/embeddings", {"input": "x"}, ok)[0] == 200
        assert call(s, "GET", "/metrics", headers=ok)[0] == 200
        assert call(s, "GET", "/health")[0] == 200  # probes need no key


BAD = [
    (b"{not json", "not valid JSON"),
    (b"\xff\xfe{}", "not UTF-8"),
    (b"[1, 2]", "expected a JSON object"),
    (b"", "not valid JSON"),
    (b"[" * 100_000, "nested too deeply"),
    (b'{"input": 1' + b"0" * 5000 + b"}", "not valid JSON"),
    (b'{"input": ["ok", "\\ud800"]}', "lone surrogate"),
    (b'{"input": "\\udfff tail"}', "lone surrogate"),
    (b'{"input": []}', "empty list"),
    (b'{"input": ""}', "empty string"),
    (b'{"input": [[]]}', "empty list of token ids"),
    (b'{"input": null}', "expected a string"),
    (b'{}', "expected a string"),
    (b'{"input": {"a": 1}}', "expected a string"),
    (b'{"input": ["a", 3]}', "input[1]"),
    (b'{"input": [1, 2, 100000000000000000000000000000]}', "not a token id"),
    (b'{"input": [1, -1]}', "not a token id"),
    (b'{"input": [[1, 2], [true]]}', "not a token id"),
    (b'{"input": [[1, 2], 3]}', "input[1]"),
    (b'{"input": [1.5]}', "expected a string"),
    (b'{"input": "x", "dimensions": 0}', "dimensions"),
    (b'{"input": "x", "dimensions": 1e400}', "dimensions"),
    (b'{"input": "x", "dimensions": NaN}', "dimensions"),
    (b'{"input": "x", "dimensions": 100000000000000000000}', "dimensions"),
    (b'{"input": "x", "dimensions": true}', "dimensions"),
    (b'{"input": "x", "encoding_format": "hex"}', "encoding_format"),
    (b'{"input": "x", "model": 7}', "model"),
    (b'{"input": "x", "user": 7}', "user"),
]


@pytest.mark.parametrize("body, message", BAD, ids=[m + str(i) for i, (_, m) in enumerate(BAD)])
def test_bad_openai_input(server, body, message):
    status, out, _ = call(server, "POST", "/v1/embeddings", body)
    assert status == 400, out
    error = out["error"]
    assert message in error["message"] and error["type"] == "invalid_request_error" and set(error) == {
        "message", "type", "param", "code"}


@pytest.mark.parametrize("path, body, message", [
    ("/embed", b'{"inputs": 5}', "inputs"), ("/embed", b'{"inputs": ["a", null]}', "inputs[1]"),
    ("/embed", b'{"inputs": "a", "normalize": "yes"}', "normalize"),
    ("/embed", b'{"inputs": "a", "truncate": 1}', "truncate"), ("/embed", b'\x80', "not UTF-8"),
    ("/embed", b'{"inputs": "\\ud83d"}', "lone surrogate"),
])
def test_bad_tei_input(server, path, body, message):
    status, out, _ = call(server, "POST", path, body)
    assert status == 400 and message in out["error"] and out["error_type"] == "Validation", out


def test_mutated_bodies_never_500(server):
    """Valid bodies with random bytes changed: each answer a JSON 200 or 4xx, and the server keeps serving."""
    rng = random.Random(19)
    valid = [("/v1/embeddings", {"input": ["The cat sat.", "héllo ☃"], "dimensions": 8}),
             ("/v1/embeddings", {"input": [[5, 6, 7], [8]], "encoding_format": "base64"}),
             ("/embed", {"inputs": ["a b c", "d"], "normalize": False, "truncate": True})]
    for i in range(150):
        path, body = valid[i % len(valid)]
        data = json.dumps(body, ensure_ascii=i % 2 == 0).encode()
        edits = [(rng.choice(["set", "insert", "delete", "cut", "token"]), rng.randrange(len(data)),
                  rng.randrange(256), rng.choice([b"[", b"]", b'"', b"\\ud800", b"1e999", b"-", b"{}", b",", b"null"]))
                 for _ in range(rng.randint(1, 3))]
        status, out, _ = call(server, "POST", path, mutate(data, edits))
        assert status in (200, 400, 404, 413), (status, out)
    assert call(server, "GET", "/health")[0] == 200


def test_routes_limits_and_survival(encoder):
    with serving(encoder, max_body_bytes=1000, max_inputs=4) as s:
        status, out, _ = call(s, "POST", "/v1/embeddings", {"input": "x" * 2000})
        assert status == 413 and out["error"]["code"] == "body_too_large"
        status, out, _ = call(s, "POST", "/v1/embeddings", {"input": ["a"] * 5})
        assert status == 413 and "at most 4" in out["error"]["message"]
        assert call(s, "POST", "/v1/embeddings", {"input": "x", "model": "other"})[0] == 404
        assert call(s, "GET", "/nowhere")[0] == 404
        assert call(s, "GET", "/v1/embeddings")[0] == 405
        assert call(s, "PATCH", "/health")[0] == 501
        assert raw(s, b"POST /v1/embeddings HTTP/1.1\r\nHost: x\r\n\r\n").startswith(b"HTTP/1.1 411")
        chunked = b"POST /embed HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n"
        assert raw(s, chunked).startswith(b"HTTP/1.1 411")
        answer = raw(s, b"GARBAGE\r\n\r\n")
        assert answer.startswith(b"HTTP/1.1 400") and b'"error"' in answer
        assert raw(s, b"POST /embed HTTP/1.1\r\nContent-Length: 100\r\n\r\n{") == b""  # the client hung up
        status, out, _ = call(s, "POST", "/v1/embeddings", b"{}", {"Content-Length": "-1"})
        assert status == 400
        status, text, _ = call(s, "GET", "/metrics")
        assert 'status="413"' in text and 'status="499"' in text
        assert 'route="other",status="404"' in text and 'route="other",status="501"' in text
        assert call(s, "POST", "/v1/embeddings", {"input": "still alive"})[0] == 200


# ----------------------------------------------------------------------------------------------------------------
# Batching, load and shutdown
# ----------------------------------------------------------------------------------------------------------------

def test_connection_limit(encoder):
    with serving(encoder, max_connections=1) as s:
        first = http.client.HTTPConnection("127.0.0.1", s.port, timeout=TIMEOUT)
        assert call(s, "GET", "/health", conn=first)[0] == 200  # kept open: the one connection allowed
        with socket.create_connection(("127.0.0.1", s.port), timeout=TIMEOUT) as sock:  # answered unasked
            assert b"".join(iter(lambda: sock.recv(65536), b"")).startswith(b"HTTP/1.1 503")
        assert call(s, "GET", "/health", {"ignored": "body"}, conn=first)[0] == 200  # a GET's body is skipped
        first.close()


def test_concurrent_requests_are_batched(encoder):
    alone = {t: encoder.encode(t) for t in TEXTS}
    with serving(encoder, max_wait_ms=300) as s:
        barrier = threading.Barrier(8)

        def one(i):
            texts = [TEXTS[i % len(TEXTS)], TEXTS[(i + 1) % len(TEXTS)]]
            barrier.wait(timeout=TIMEOUT)
            return texts, embeddings(s, {"input": texts})[0]

        with ThreadPoolExecutor(8) as pool:
            results = list(pool.map(one, range(8), timeout=60))
        for texts, vectors in results:
            for t, v in zip(texts, vectors):
                assert_batch_invariant(v, alone[t], "serve concurrent vs encode alone")
        text = call(s, "GET", "/metrics")[1]
        batches, inputs = metric(text, "minibert_batch_size_count"), metric(text, "minibert_inputs_total")
        assert inputs == 16 and batches < 8, text  # 8 requests, fewer forward passes
        assert metric(text, 'minibert_batch_size_bucket{le="2"}') < batches  # some pass held several requests


def test_large_request_split_across_passes(encoder):
    texts = [f"{t} {i}" for i in range(6) for t in TEXTS]
    with serving(encoder, max_batch_tokens=encoder.max_seq_length) as s:
        vectors, _ = embeddings(s, {"input": texts})
        assert metric(call(s, "GET", "/metrics")[1], "minibert_batch_size_count") > 1
    assert_batch_invariant(vectors, encoder.encode(texts))


def test_queue_full_is_503():
    release = threading.Event()
    limits = Limits(max_queue=1, max_wait_ms=0)
    batcher = Batcher(lambda key, inputs: release.wait(TIMEOUT) and np.zeros((len(inputs), 2), np.float32),
                      limits, Metrics())
    try:
        first, second = Job(("text", None), ["a"], [3]), Job(("text", None), ["b"], [3])
        batcher.submit(first)
        deadline = time.monotonic() + TIMEOUT
        while batcher.depth() and time.monotonic() < deadline:  # the first is taken: the model is busy with it
            time.sleep(0.01)
        batcher.submit(second)
        with pytest.raises(HTTPError) as e:
            batcher.submit(Job(("text", None), ["c"], [3]))
        assert e.value.status == 503
    finally:
        release.set()
        batcher.stop()
    assert first.done.is_set() and second.done.is_set() and second.result.shape == (1, 2)


def test_load_check(encoder):
    """200 requests from 8 threads: every one answered 200 with its own vectors."""
    alone = encoder.encode(TEXTS)
    with serving(encoder) as s:
        def one(i):
            conn = http.client.HTTPConnection("127.0.0.1", s.port, timeout=TIMEOUT)
            try:
                out = []
                for j in range(i, 200, 8):  # one keep-alive connection per thread
                    k = j % len(TEXTS)
                    out.append((k, embeddings(s, {"input": TEXTS[k]}, conn=conn)[0][0]))
                return out
            finally:
                conn.close()

        start = time.monotonic()
        with ThreadPoolExecutor(8) as pool:
            results = [r for rs in pool.map(one, range(8), timeout=60) for r in rs]
        assert time.monotonic() - start < 60
        text = call(s, "GET", "/metrics")[1]
    assert len(results) == 200
    for k, v in results:
        assert_batch_invariant(v, alone[k], "serve load vs encode")
    assert metric(text, 'minibert_requests_total{route="/v1/embeddings",status="200"}') == 200


def test_shutdown_answers_in_flight_and_closes_idle(encoder):
    service = Service(NAME, limits=Limits(max_wait_ms=400))
    service.load(encoder)
    server = Server(service, "127.0.0.1", 0).start()
    idle = http.client.HTTPConnection("127.0.0.1", server.port, timeout=TIMEOUT)
    assert call(server, "GET", "/health", conn=idle)[0] == 200  # a keep-alive connection, now idle
    result = {}
    worker = threading.Thread(target=lambda: result.update(r=call(server, "POST", "/v1/embeddings", {"input": "x"})))
    worker.start()
    deadline = time.monotonic() + TIMEOUT
    while not service.batcher.depth() and time.monotonic() < deadline:  # the request is waiting in the queue
        time.sleep(0.005)
    start = time.monotonic()
    server.stop()
    assert time.monotonic() - start < 5
    worker.join(TIMEOUT)
    status, out, r = result["r"]
    assert status == 200 and len(out["data"]) == 1 and r.getheader("Connection") == "close"
    with pytest.raises(OSError):
        call(server, "GET", "/health")
    idle.close()
    assert not service.batcher.thread.is_alive()


def test_cli_serve_signals(tmp_path):
    """`python -m minibert serve`: /health answers; SIGTERM exits 0, SIGINT 130, each after a clean stop."""
    for sig, code in ((signal.SIGTERM, 0), (signal.SIGINT, 130)):
        proc = subprocess.Popen([sys.executable, "-m", "minibert", "serve", "--model", str(MPNET), "--port", "0"],
                                stderr=subprocess.PIPE, text=True, cwd=REPO)
        try:
            port = None
            deadline = time.monotonic() + 60
            while port is None and time.monotonic() < deadline:
                line = proc.stderr.readline()
                match = re.search(r"on http://127\.0\.0\.1:(\d+)", line)
                port = match and int(match.group(1))
            assert port, "the server never said where it listens"
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=TIMEOUT)
            conn.request("GET", "/health")
            assert conn.getresponse().status == 200
            conn.close()
            proc.send_signal(sig)
            assert proc.wait(TIMEOUT) == code
        finally:
            if proc.poll() is None:
                proc.kill()
            proc.wait(TIMEOUT)
            proc.stderr.close()


def test_cli_usage_errors(capsys):
    from minibert.cli import main
    assert main(["serve", "--model", str(MPNET), "--port", "70000"]) == 1
    assert "--port 70000" in capsys.readouterr().err
    assert main(["serve", "--model", str(MPNET), "--max-batch-tokens", "0"]) == 1
    with pytest.raises(ServeError, match="max_seq_length"):
        Service(NAME, limits=Limits(max_batch_tokens=4)).load(SentenceEncoder.from_pretrained(MPNET))


def test_openai_client(server, encoder):
    openai = pytest.importorskip("openai")
    client = openai.OpenAI(base_url=server.url + "/v1", api_key="unused", timeout=TIMEOUT, max_retries=0)
    out = client.embeddings.create(model=NAME, input=TEXTS)  # the client asks for base64 and decodes it
    assert_batch_invariant(np.array([d.embedding for d in out.data], dtype=np.float32), encoder.encode(TEXTS))
    assert out.usage.total_tokens == sum(len(e.ids) for e in encoder.tokenizer(TEXTS).encodings)
    cut = client.embeddings.create(model=NAME, input="hello", dimensions=5, encoding_format="float")
    assert len(cut.data[0].embedding) == 5
    with pytest.raises(openai.BadRequestError):
        client.embeddings.create(model=NAME, input=[])


def test_a_client_trickling_its_body_does_not_hold_shutdown(monkeypatch):
    """A request still arriving after the grace period is cut off: shutdown ends, whatever the client does."""
    import socket as socketlib
    import time as timelib
    from minibert import serve
    monkeypatch.setattr(serve, "STOP_GRACE", 0.5)
    server = serve.Server(serve.Service("stand-in"), "127.0.0.1", 0).start()
    host, port = server.httpd.server_address[:2]
    client = socketlib.create_connection((host, port), timeout=5)
    client.sendall(b"POST /v1/embeddings HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                   b"Content-Length: 1000\r\n\r\n{")
    timelib.sleep(0.2)
    started = timelib.monotonic()
    stopper = threading.Thread(target=server.stop, daemon=True)
    stopper.start()
    while stopper.is_alive() and timelib.monotonic() - started < 10:
        try:
            client.sendall(b" ")
        except OSError:
            break
        timelib.sleep(0.1)
    stopper.join(timeout=5)
    client.close()
    assert not stopper.is_alive() and timelib.monotonic() - started < 5
