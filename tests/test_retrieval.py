"""Retrieval against sentence-transformers: prompts, encode_query / encode_document, include_prompt, precisions,
truncate_dim, the similarity functions and semantic_search, on the fixture model and references written by
scripts/make_retrieval_reference.py (its variants are made here the same way, from its VARIANTS)."""

import importlib.util
import json
import pickle
import shutil

import numpy as np
import pytest

from conftest import FIXTURES, REPO, within
from minibert import CheckpointError, InputError, SentenceEncoder, quantize_embeddings, semantic_search
from minibert.retrieval import similarity, similarity_pairwise

VECTOR_TOL = 1e-5
_spec = importlib.util.spec_from_file_location("make_retrieval_reference",
                                               REPO / "scripts" / "make_retrieval_reference.py")
script = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(script)  # numpy only at import: torch is imported inside its functions
MODEL = FIXTURES / "retrieval" / "model"


@pytest.fixture(scope="module")
def ref():
    with np.load(FIXTURES / "retrieval" / "reference.npz") as z:
        return {k: z[k] for k in z.files}


@pytest.fixture(scope="module")
def sentences(ref):
    return [str(s) for s in ref["sentences"]]


@pytest.fixture(scope="module")
def encoders(tmp_path_factory):
    folder = tmp_path_factory.mktemp("variants")
    return {name: SentenceEncoder.from_pretrained(script.make_variant(name, folder)) for name in script.VARIANTS}


@pytest.mark.parametrize("variant", list(script.VARIANTS))
@pytest.mark.parametrize("call", list(script.CALLS))
def test_encode_matches_sentence_transformers(encoders, ref, sentences, variant, call):
    method, kwargs = script.CALLS[call]
    ours = getattr(encoders[variant], method)(sentences, **kwargs)
    theirs = ref[f"{variant}/{call}"]
    assert ours.dtype == theirs.dtype and ours.shape == theirs.shape
    precision = kwargs.get("precision", "float32")
    if precision == "float32":
        assert within(f"retrieval: {call}", float(np.abs(ours - theirs).max()), VECTOR_TOL)
    elif precision.endswith("binary"):
        np.testing.assert_array_equal(ours, theirs)
    else:
        # Our floats differ from PyTorch's by ~1e-7, which can move a value across a bucket edge (ranges from
        # 8 vectors make the buckets narrow): the same floats give the same buckets (test_quantize_*).
        floats = encoders[variant].encode(sentences, **{**kwargs, "precision": "float32"})
        np.testing.assert_array_equal(ours, quantize_embeddings(floats, precision))
        assert np.abs(ours.astype(int) - theirs).max() <= 1
        within(f"retrieval: {precision} buckets one off (of {theirs.size})", int((ours != theirs).sum()), 16)


def test_prompt_rules(encoders):
    base, passage = encoders["base"], encoders["passage"]
    assert base.prompts == {"query": "query: ", "document": "passage: ", "instruct": "search: "}
    assert base.default_prompt_name == "instruct" and base.similarity_fn_name == "dot"
    assert passage.prompts == {"query": "query: ", "document": "", "passage": "passage: "}
    assert passage.default_prompt_name is None and passage.similarity_fn_name == "cosine"
    assert base.resolve_prompt() == "search: " and base.resolve_prompt("x", "query") == "x"
    assert base.resolve_prompt(prompt_name="document") == "passage: " and passage.resolve_prompt() is None
    with pytest.raises(InputError, match=r"prompt_name 'title': not one of this model's prompts: 'query' "
                                         r"\('query: '\), 'document' \('passage: '\), 'instruct' \('search: '\)"):
        base.encode("text", prompt_name="title")
    with pytest.raises(InputError, match=r"prompt: 3; expected a string"):
        base.encode("text", prompt=3)


def test_include_prompt_false_counts_the_prompt_alone(encoders):
    """The prompt's tokens are counted on the prompt alone, [CLS] included, [SEP] not."""
    exclude = encoders["exclude"]
    alone = exclude.tokenizer("query: ")["input_ids"][0]
    assert exclude._prompt_length("query: ") == len(alone) - 1 and exclude._prompt_length("") == 0
    assert exclude.pooling == ("cls", "max", "mean") and not exclude.layout.include_prompt


def test_from_pretrained_truncate_dim(ref, sentences):
    encoder = SentenceEncoder.from_pretrained(MODEL, truncate_dim=24)
    assert encoder.get_sentence_embedding_dimension() == 24 and encoder.settings()["truncate_dim"] == 24
    ours = encoder.encode(sentences)
    d = float(np.abs(ours - ref["base/from_pretrained_truncate"]).max())
    assert within("retrieval: from_pretrained(truncate_dim=24)", d, VECTOR_TOL)
    assert encoder.encode(sentences, truncate_dim=100).shape == (8, 48)  # larger than the vectors: whole
    assert pickle.loads(pickle.dumps(encoder)).truncate_dim == 24
    for bad in (0, -1, 2.5, True, "8"):
        with pytest.raises(InputError, match=r"truncate_dim: .*expected a positive integer or None"):
            encoder.encode("x", truncate_dim=bad)


@pytest.mark.parametrize("precision", ["float32", "int8", "uint8", "binary", "ubinary"])
def test_quantize_embeddings_is_bit_exact(ref, precision):
    raw = ref["quantize/embeddings"]
    ours = quantize_embeddings(raw, precision)
    assert ours.dtype == ref[f"quantize/{precision}"].dtype
    np.testing.assert_array_equal(ours, ref[f"quantize/{precision}"])
    if precision in ("int8", "uint8"):
        np.testing.assert_array_equal(quantize_embeddings(raw, precision, ranges=ref["quantize/ranges"]),
                                      ref[f"quantize/{precision}_ranges"])
        np.testing.assert_array_equal(quantize_embeddings(raw, precision,
                                                          calibration_embeddings=ref["quantize/calibration"]),
                                      ref[f"quantize/{precision}_calibration"])


def test_quantize_embeddings_edges(ref):
    np.testing.assert_array_equal(quantize_embeddings(ref["quantize/embeddings"][:, :13], "ubinary"),
                                  ref["quantize/ubinary_odd"])  # 13 bits: two bytes, the last zero-padded
    assert quantize_embeddings(np.zeros((0, 12), np.float32), "int8").shape == (0, 12)
    assert quantize_embeddings(np.zeros((0, 12), np.float32), "binary").shape == (0, 2)
    with pytest.raises(InputError, match=r"single embedding; pass ranges= or calibration_embeddings="):
        quantize_embeddings(np.ones(4, np.float32), "int8")
    with pytest.raises(InputError, match=r"precision: 'int4'; expected one of float32, int8, uint8, binary, ubinary"):
        quantize_embeddings(np.ones((2, 4)), "int4")
    with pytest.raises(InputError, match=r"embeddings of int8; expected floats"):
        quantize_embeddings(np.ones((2, 4), np.int8), "int8")
    with pytest.raises(InputError, match=r"ranges of shape \(2, 3\); expected \(2, 4\)"):
        quantize_embeddings(np.ones((2, 4)), "uint8", ranges=np.zeros((2, 3)))


def test_encode_precision_errors(encoders):
    base = encoders["base"]
    with pytest.raises(InputError, match=r"single embedding"):
        base.encode("one text", precision="int8")
    assert base.encode("one text", precision="ubinary").shape == (6,)
    assert base.encode([], precision="binary").shape == (0, 6)
    with pytest.raises(InputError, match=r"precision: 'float16'"):
        base.encode(["a", "b"], precision="float16")


@pytest.mark.parametrize("name", ["cosine", "dot", "euclidean", "manhattan"])
def test_similarity_functions(ref, name):
    raw = ref["quantize/embeddings"]
    d = float(np.abs(similarity(raw[:5], raw, name) - ref[f"similarity/{name}"]).max())
    assert within(f"retrieval: similarity {name}", d, VECTOR_TOL)
    d = float(np.abs(similarity_pairwise(raw, raw[::-1], name) - ref[f"similarity/{name}_pairwise"]).max())
    assert within(f"retrieval: similarity_pairwise {name}", d, VECTOR_TOL)


def test_encoder_similarity_uses_the_models_function(encoders, ref):
    raw = ref["quantize/embeddings"]
    np.testing.assert_array_equal(encoders["base"].similarity(raw, raw), similarity(raw, raw, "dot"))
    np.testing.assert_array_equal(encoders["passage"].similarity_pairwise(raw, raw),
                                  similarity_pairwise(raw, raw, "cosine"))
    with pytest.raises(InputError, match=r"similarity_fn_name: 'jaccard'; expected one of cosine, dot, euclidean"):
        similarity(raw, raw, "jaccard")
    with pytest.raises(InputError, match=r"a has 8 vectors, b 2"):
        similarity_pairwise(raw, raw[:2])


@pytest.mark.parametrize("name", ["cosine", "dot"])
@pytest.mark.parametrize("chunked", ["", "_chunked"])
def test_semantic_search_matches_sentence_transformers(ref, name, chunked):
    chunks = {"query_chunk_size": 2, "corpus_chunk_size": 4} if chunked else {}
    hits = semantic_search(ref["queries/embeddings"], ref["corpus/embeddings"], top_k=script.TOP_K,
                           score_function=name, **chunks)
    np.testing.assert_array_equal([[h["corpus_id"] for h in q] for q in hits], ref[f"search/{name}{chunked}_ids"])
    scores = np.array([[h["score"] for h in q] for q in hits])
    d = float(np.abs(scores - ref[f"search/{name}{chunked}_scores"]).max())
    assert within(f"retrieval: semantic_search {name}", d, VECTOR_TOL)
    assert all(isinstance(h["corpus_id"], int) and isinstance(h["score"], float) for q in hits for h in q)


def test_semantic_search_whole_corpus_memory_mapped_and_custom_function(ref, tmp_path):
    np.save(tmp_path / "corpus.npy", ref["corpus/embeddings"])
    corpus = np.load(tmp_path / "corpus.npy", mmap_mode="r")
    hits = semantic_search(ref["queries/embeddings"], corpus, top_k=100, corpus_chunk_size=3)
    np.testing.assert_array_equal([[h["corpus_id"] for h in q] for q in hits], ref["search/all_ids"])
    negated = semantic_search(ref["queries/embeddings"][0], corpus, top_k=2, score_function=lambda a, b: -(a @ b.T))
    dots = ref["corpus/embeddings"] @ ref["queries/embeddings"][0]
    assert [h["corpus_id"] for h in negated[0]] == list(np.argsort(dots)[:2])
    with pytest.raises(InputError, match=r"top_k 0; expected a positive integer"):
        semantic_search(corpus[:1], corpus, top_k=0)
    with pytest.raises(InputError, match=r"corpus_embeddings of shape \(9, 47\); expected \(M, 48\)"):
        semantic_search(corpus[:1], corpus[:, :47])
    with pytest.raises(InputError, match=r"corpus_embeddings is an array of <U1; expected numbers"):
        semantic_search(corpus[:1], [["a"] * 48])
    with pytest.raises(InputError, match=r"score_function: 'jaccard'; expected one of cosine"):
        semantic_search(corpus[:1], corpus, score_function="jaccard")


def test_chunked_long_inputs_repeat_the_prompt(encoders):
    base = encoders["base"]
    short = ["A short text."]
    np.testing.assert_allclose(base.encode(short, long_inputs="chunk"), base.encode(short), atol=1e-6)
    long = ["word " * 80]
    pieces = base._pieces(long, chunk=True, prompt="query: ")
    head = base._prompt_length("query: ")
    assert len(pieces) > 1 and all(p.ids[:head] == pieces[0].ids[:head] for p in pieces)
    assert all(len(p.ids) <= base.max_seq_length for p in pieces)
    with pytest.raises(InputError, match=r"leave no room for text in a window of max_seq_length 32"):
        base.encode(long, prompt="query: " * 10, long_inputs="chunk")


@pytest.mark.parametrize("config, message", [
    ({"prompts": {"query": "q: "}, "default_prompt_name": "passage"},
     r"default_prompt_name 'passage'; expected one of its prompts \(query, document\)"),
    ({"similarity_fn_name": "jaccard"}, r"similarity_fn_name 'jaccard'; expected one of cosine, dot"),
    ({"prompts": ["query: "]}, r"prompts \['query: '\]; expected an object of prompt names to strings"),
    ([], r"expected a JSON object, got list"),
])
def test_bad_config_sentence_transformers(tmp_path, config, message):
    shutil.copytree(MODEL, tmp_path / "m")
    (tmp_path / "m" / "config_sentence_transformers.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match=r"config_sentence_transformers\.json: " + message):
        SentenceEncoder.from_pretrained(tmp_path / "m")


@pytest.mark.parametrize("precision, dtype, width", [("float32", np.float32, 16), ("int8", np.int8, 16),
                                                     ("uint8", np.uint8, 16), ("binary", np.int8, 2),
                                                     ("ubinary", np.uint8, 2)])
def test_cli_encode_retrieval_options(tmp_path, sentences, precision, dtype, width):
    from minibert.cli import main
    (tmp_path / "in.txt").write_text("\n".join(s for s in sentences if s) + "\n", encoding="utf-8")
    out = tmp_path / "out.npy"
    assert main(["encode", "--model", str(MODEL), "--input", str(tmp_path / "in.txt"), "--output", str(out),
                 "--prompt-name", "query", "--precision", precision, "--truncate-dim", "16", "--normalize"]) == 0
    written = np.load(out)
    expected = SentenceEncoder.from_pretrained(MODEL).encode([s for s in sentences if s], prompt_name="query",
                                                             precision=precision, truncate_dim=16,
                                                             normalize_embeddings=True)
    assert written.dtype == dtype and written.shape == (7, width)
    np.testing.assert_array_equal(written, expected)


def test_cli_encode_prompt_errors(tmp_path, capsys):
    from minibert.cli import main
    (tmp_path / "in.txt").write_text("a text\n", encoding="utf-8")
    common = ["encode", "--model", str(MODEL), "--input", str(tmp_path / "in.txt"), "--output", str(tmp_path / "o.npy")]
    assert main(common + ["--prompt-name", "title"]) == 1
    assert "prompt_name 'title': not one of this model's prompts: 'query'" in capsys.readouterr().err
    assert main(common + ["--truncate-dim", "0"]) == 1
    assert main(common + ["--precision", "int8"]) == 1  # one text: no ranges
    assert "single embedding" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(common + ["--prompt", "x", "--prompt-name", "query"])
    assert not (tmp_path / "o.npy").exists()
