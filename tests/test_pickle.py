"""BertModel pickles as where its weights come from (a few hundred bytes), not as arrays, and unpickles to the
same outputs: what lets Dask ship it to workers (SentenceEncoder's own pickling is tested in test_encoder.py)."""

from __future__ import annotations

import os
import pickle

import numpy as np
import pytest

from minibert import BertModel
from conftest import ODD_MODEL, REPO


def test_bert_model_pickles_small_and_gives_identical_outputs(minilm, minilm_tokenizer):
    minilm(**minilm_tokenizer(["warm up"]))  # the built weights must not be pickled either
    blob = pickle.dumps(minilm)
    assert len(blob) < 4096
    clone = pickle.loads(blob)
    batch = minilm_tokenizer(["The bank raised its rates.", "We sat on the river bank and watched the water."])
    a, b = minilm(**batch), clone(**batch)
    np.testing.assert_array_equal(a.last_hidden_state, b.last_hidden_state)
    np.testing.assert_array_equal(a.pooler_output, b.pooler_output)
    assert (clone.name_or_path, clone.revision, clone.strict) == (minilm.name_or_path, None, False)


def test_pickled_folder_model_loads_from_another_working_directory(odd_tokenizer, tmp_path, monkeypatch):
    monkeypatch.chdir(REPO)  # a relative path works from here only
    model = BertModel.from_pretrained(os.path.relpath(ODD_MODEL), strict=True)
    blob = pickle.dumps(model)
    monkeypatch.chdir(tmp_path)
    clone = pickle.loads(blob)
    assert clone.strict is True and clone.name_or_path == str(ODD_MODEL.resolve())
    batch = odd_tokenizer(["a short text", "and another, longer one"])
    np.testing.assert_array_equal(model(**batch).last_hidden_state, clone(**batch).last_hidden_state)


def test_model_built_from_arrays_refuses_to_pickle(odd):
    model = BertModel(odd.config, odd.tensors)
    with pytest.raises(TypeError, match="cannot pickle a model built from arrays; only one loaded with "
                                        "from_pretrained"):
        pickle.dumps(model)

