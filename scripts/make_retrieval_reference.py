"""Write the retrieval fixture (a small sentence-transformers model with prompts) and sentence-transformers'
outputs on it: prompts, encode_query / encode_document, precisions, Matryoshka truncation, the similarity
functions and semantic search (run once; needs the `reference` extra, as scripts/make_family_reference.py).

    python scripts/make_retrieval_reference.py

Writes tests/fixtures/retrieval/model/: the random-weight XLM-R sentence-transformers model of
tests/fixtures/families/xlm-roberta (its Unigram tokenizer gives "query: " and "passage: " tokens of their own;
max_seq_length 32, mean pooling, Normalize) plus a config_sentence_transformers.json with prompts, a default
prompt name and similarity_fn_name "dot"; and tests/fixtures/retrieval/reference.npz. Two more variants are
made from it by editing one file (`VARIANTS`; tests/test_retrieval.py makes them the same way):

- "exclude": the pooling config asks for cls, max and mean with include_prompt false;
- "passage": prompts {"query", "passage"} only, no default prompt, no similarity function (cosine).

The npz holds `<variant>/<call>` arrays (see CALLS), `sentences`, `queries`, `corpus`, and
`quantize/*`, `similarity/*`, `search/*` arrays computed by sentence_transformers.util on stored embeddings.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SOURCE = ROOT / "tests" / "fixtures" / "families" / "xlm-roberta"
OUT = ROOT / "tests" / "fixtures" / "retrieval"
MODEL = OUT / "model"

ST_CONFIG = {
    "prompts": {"query": "query: ", "document": "passage: ",
                "instruct": "search: "},
    "default_prompt_name": "instruct",
    "similarity_fn_name": "dot",
}
# variant -> {file relative to the model folder: its new JSON content}
VARIANTS = {
    "base": {},
    "exclude": {"1_Pooling/config.json": {"word_embedding_dimension": 48, "pooling_mode": ["cls", "max", "mean"],
                                          "include_prompt": False}},
    "passage": {"config_sentence_transformers.json": {"prompts": {"query": "query: ", "passage": "passage: "}}},
}
SENTENCES = ["The cat sat on the mat.", "The cat chased the mouse.", "A bank by the river, and a bank for money.",
             "", "Crème brûlée à la façade, naïve café.", "She deposited her salary at the bank on Monday.",
             "Emoji too: 😀 🐈 and numbers 12345.", "A sentence longer than the maximum, cut by the prompt. " * 4]
QUERIES = ["Where did the cat sit?", "money in the bank", "a sweet dessert"]
CORPUS = SENTENCES[:3] + SENTENCES[4:7] + ["The mouse ran away.", "Rivers have banks.", "Café au lait."]
# call name -> (method, keyword arguments); each is run on SENTENCES for every variant.
CALLS = {
    "encode": ("encode", {}),
    "encode_no_prompt": ("encode", {"prompt": ""}),
    "encode_prompt_name": ("encode", {"prompt_name": "query"}),
    "encode_prompt": ("encode", {"prompt": "custom prompt: "}),
    "encode_both": ("encode", {"prompt": "custom prompt: ", "prompt_name": "query"}),
    "encode_normalized": ("encode", {"normalize_embeddings": True}),
    "encode_query": ("encode_query", {}),
    "encode_document": ("encode_document", {}),
    "encode_document_prompt": ("encode_document", {"prompt": ""}),
    "truncate": ("encode", {"truncate_dim": 16}),
    "truncate_normalized": ("encode", {"truncate_dim": 16, "normalize_embeddings": True}),
    "int8": ("encode", {"precision": "int8"}),
    "uint8": ("encode", {"precision": "uint8"}),
    "binary": ("encode", {"precision": "binary"}),
    "ubinary": ("encode", {"precision": "ubinary"}),
    "truncate_ubinary": ("encode", {"precision": "ubinary", "truncate_dim": 12}),
}
TOP_K = 4


def write_model() -> None:
    """The fixture folder: the XLM-R family model's files and a config_sentence_transformers.json."""
    if MODEL.exists():
        shutil.rmtree(MODEL)
    shutil.copytree(SOURCE, MODEL)
    (MODEL / "config_sentence_transformers.json").write_text(json.dumps(ST_CONFIG, indent=2) + "\n",
                                                             encoding="utf-8")


def make_variant(name: str, folder: Path) -> Path:
    """A copy of the fixture model in `folder` with the variant's files replaced."""
    target = folder / name
    shutil.copytree(MODEL, target)
    for relative, content in VARIANTS[name].items():
        (target / relative).write_text(json.dumps(content), encoding="utf-8")
    return target


def encode_references(arrays: dict) -> None:
    from sentence_transformers import SentenceTransformer
    with tempfile.TemporaryDirectory() as tmp:
        for variant in VARIANTS:
            model = SentenceTransformer(str(make_variant(variant, Path(tmp))), device="cpu")
            for call, (method, kwargs) in CALLS.items():
                arrays[f"{variant}/{call}"] = getattr(model, method)(SENTENCES, **kwargs)
        model = SentenceTransformer(str(MODEL), device="cpu", truncate_dim=24)
        arrays["base/from_pretrained_truncate"] = model.encode(SENTENCES)
        assert model.get_embedding_dimension() == 24


def util_references(arrays: dict) -> None:
    """quantize_embeddings, the similarity functions and semantic_search on stored float embeddings."""
    import torch
    from sentence_transformers import SentenceTransformer, quantize_embeddings
    from sentence_transformers.util import SimilarityFunction, cos_sim, dot_score, semantic_search

    model = SentenceTransformer(str(MODEL), device="cpu")
    queries, corpus = model.encode_query(QUERIES), model.encode_document(CORPUS)
    raw = model.encode(SENTENCES, prompt="", normalize_embeddings=False) * np.linspace(0.5, 2, 48, dtype=np.float32)
    arrays.update({"quantize/embeddings": raw, "quantize/calibration": corpus, "queries/embeddings": queries,
                   "corpus/embeddings": corpus})
    ranges = np.vstack([raw.min(axis=0) - 0.01, raw.max(axis=0) - 0.05]).astype(np.float32)  # clipped at the top
    arrays["quantize/ranges"] = ranges
    for precision in ("float32", "int8", "uint8", "binary", "ubinary"):
        arrays[f"quantize/{precision}"] = quantize_embeddings(raw, precision)
    for precision in ("int8", "uint8"):
        arrays[f"quantize/{precision}_ranges"] = quantize_embeddings(raw, precision, ranges=ranges)
        arrays[f"quantize/{precision}_calibration"] = quantize_embeddings(raw, precision, calibration_embeddings=corpus)
    arrays["quantize/ubinary_odd"] = quantize_embeddings(raw[:, :13], "ubinary")  # 13 bits: padded to 2 bytes
    for name in ("cosine", "dot", "euclidean", "manhattan"):
        arrays[f"similarity/{name}"] = SimilarityFunction.to_similarity_fn(name)(raw[:5], raw).numpy()
        pairwise = SimilarityFunction.to_similarity_pairwise_fn(name)
        arrays[f"similarity/{name}_pairwise"] = pairwise(raw, raw[::-1].copy()).numpy()
    for name, function in (("cosine", cos_sim), ("dot", dot_score)):
        for label, kwargs in (("", {}), ("_chunked", {"query_chunk_size": 2, "corpus_chunk_size": 4})):
            hits = semantic_search(torch.from_numpy(queries), torch.from_numpy(corpus), top_k=TOP_K,
                                   score_function=function, **kwargs)
            arrays[f"search/{name}{label}_ids"] = np.array([[h["corpus_id"] for h in q] for q in hits])
            arrays[f"search/{name}{label}_scores"] = np.array([[h["score"] for h in q] for q in hits], dtype=np.float32)
    hits = semantic_search(torch.from_numpy(queries), torch.from_numpy(corpus), top_k=100)
    arrays["search/all_ids"] = np.array([[h["corpus_id"] for h in q] for q in hits])


def main() -> None:
    write_model()
    arrays = {"sentences": np.array(SENTENCES), "queries": np.array(QUERIES), "corpus": np.array(CORPUS)}
    encode_references(arrays)
    util_references(arrays)
    np.savez_compressed(OUT / "reference.npz", **arrays)
    print(f"{OUT / 'reference.npz'}: {len(arrays)} arrays")


if __name__ == "__main__":
    main()
