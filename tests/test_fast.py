"""The fast path (minibert/fast.py) against the reference functions of minibert/model.py: equal to float32
precision at every real token, zeros at padding, the same vector for a sentence alone or in any batch."""

import math
import warnings

import numpy as np
import pytest
from conftest import assert_batch_invariant

from minibert import InputError, blas, fast
from minibert.model import (attention, forward, gelu, gelu_tanh, layer_norm, merge_heads, position_ids, relu,
                            split_heads)
from minibert.params import Norm

# The same sums in other orders (the BLAS multiplies feature-major, W @ x; softmax sums down columns in
# sequence; layer norm sums in float64): a few float32 ulps at hidden states of size ~10 (measured: MiniLM 4.5e-6;
# 1.3e-5 at 512 tokens, where both paths are within 1e-5 of a float64 forward pass).
HIDDEN_TOL = {"minilm": 8e-6, "odd": 5e-6}  # odd: random weights (std 0.1)
PADDED_TOL = 1e-5  # the reference's own change of rounding between padded and unpadded (test_invariants.SAME)
SENTENCES = ["The cat sat on the mat.", "A bank by the river.", "Hi",
             "She deposited the cheque at the bank before lunch on Friday afternoon, then walked home.",
             "The cat chased the mouse across the kitchen floor."]


def random_batch(model, B, T, seed, holes=False):
    """Random ids with ragged right padding (and, if `holes`, masked positions in the middle of rows)."""
    rng = np.random.default_rng(seed)
    ids = rng.integers(1, model.config.vocab_size, (B, T))
    types = rng.integers(0, model.config.type_vocab_size, (B, T))
    lengths = rng.integers(1, T + 1, B)
    lengths[0] = T  # at least one full row
    mask = (np.arange(T) < lengths[:, None]).astype(np.int64)
    if holes:
        mask[rng.random((B, T)) < 0.2] = 0
        mask[:, 0] = 1
    return ids, mask, types


def reference(model, ids, mask, types):
    """model.py's forward: the L + 1 hidden states (B, T, H), values at padding included."""
    return forward(ids, mask, types, model.weights, model.config)[0]


def packed(model, ids, mask, types, **kwargs):
    return fast.packed_forward(ids, mask, types, position_ids(ids, model.config), model.weights, model.config,
                               **kwargs)


def max_diff_at_real(ours, reference, mask):
    return float(np.abs(ours - reference)[mask.astype(bool)].max())


@pytest.mark.parametrize("model_name", ["minilm", "odd"])
@pytest.mark.parametrize("threads", [1, 2, 3])
def test_packed_forward_equals_reference_without_padding(request, model_name, threads):
    """A batch without padding: the reference makes the same sums, so the two agree to float32 rounding.
    (8 x 50 tokens: enough rows that the reference's products are not "small" for the BLAS either.)"""
    model = request.getfixturevalue(model_name)
    ids, _, types = random_batch(model, 8, 50, seed=threads)
    mask = np.ones_like(ids)
    ref = reference(model, ids, mask, types)
    last, packing, hidden = packed(model, ids, mask, types,
                                                output_hidden_states=True, threads=threads)
    assert last.shape == (ids.size, model.config.hidden_size) and last.dtype == np.float32
    np.testing.assert_array_equal(packing.offsets, np.arange(9) * 50)
    np.testing.assert_array_equal(hidden[-1], last)
    for ours, theirs in zip(hidden, ref):
        assert np.abs(ours - theirs.reshape(ours.shape)).max() <= HIDDEN_TOL[model_name]


@pytest.mark.parametrize("col_block", [64, 512])
def test_one_long_sequence_in_blocks_equals_reference(monkeypatch, minilm, col_block):
    """150 tokens: one block, or blocks of 64, 64 and 22 tokens through the feed-forward."""
    monkeypatch.setattr(fast, "COL_BLOCK", col_block)
    ids, _, types = random_batch(minilm, 1, 150, seed=8)
    mask = np.ones_like(ids)
    ref = reference(minilm, ids, mask, types)
    last, _, _ = packed(minilm, ids, mask, types)
    assert np.abs(last - ref[-1][0]).max() <= HIDDEN_TOL["minilm"]


@pytest.mark.parametrize("model_name", ["minilm", "odd"])
@pytest.mark.parametrize("holes", [False, True])
def test_packed_forward_equals_reference_on_padded_batch(request, model_name, holes):
    """Against the reference on the padded batch, masked positions in mid-row included: there the reference's
    softmax sums and products run over the padded length, which rounds differently (its own SAME of
    test_invariants)."""
    model = request.getfixturevalue(model_name)
    ids, mask, types = random_batch(model, 6, 19, seed=4, holes=holes)
    ref = reference(model, ids, mask, types)
    _, _, hidden = packed(model, ids, mask, types, output_hidden_states=True)
    for ours, theirs in zip(hidden, ref):
        assert np.abs(ours - theirs[mask.astype(bool)]).max() <= PADDED_TOL


@pytest.mark.parametrize("threads", [1, 2])
def test_tokens_in_blocks_change_nothing(monkeypatch, minilm, threads):
    """Each thread takes its sequences through the layers a block of ~COL_BLOCK tokens at a time; with blocks of
    a few sequences (and a long sequence's feed-forward cut into columns) every number is the same, to the bit."""
    ids, mask, types = random_batch(minilm, 9, 40, seed=6, holes=True)
    whole = packed(minilm, ids, mask, types, output_hidden_states=True,
                                threads=threads)
    monkeypatch.setattr(fast, "COL_BLOCK", 32)
    blocks = packed(minilm, ids, mask, types, output_hidden_states=True,
                                 threads=threads)
    assert_batch_invariant(blocks[0], whole[0])
    for a, b in zip(blocks[2], whole[2]):
        assert_batch_invariant(a, b)


@pytest.mark.parametrize("model_name", ["minilm", "odd"])
def test_model_call_uses_fast_path_with_zeros_at_padding(request, model_name):
    model = request.getfixturevalue(model_name)
    ids, mask, types = random_batch(model, 5, 17, seed=11)
    ref = reference(model, ids, mask, types)
    out = model(ids, attention_mask=mask, token_type_ids=types, output_hidden_states=True)
    assert out.attentions is None and len(out.hidden_states) == len(ref)
    assert max_diff_at_real(out.last_hidden_state, ref[-1], mask) <= PADDED_TOL
    for ours, theirs in zip(out.hidden_states, ref):
        assert ours.shape == theirs.shape and max_diff_at_real(ours, theirs, mask) <= PADDED_TOL
    assert not out.last_hidden_state[mask == 0].any()
    # The reference path (chosen, or for attentions): the same contract, zeros at padding.
    for kwargs in ({"path": "reference", "output_hidden_states": True}, {"output_attentions": True}):
        explained = model(ids, attention_mask=mask, token_type_ids=types, **kwargs)
        np.testing.assert_array_equal(explained.last_hidden_state, ref[-1] * mask[:, :, None])
        assert explained.last_hidden_state.dtype == np.float32
        if out.pooler_output is not None:
            assert np.abs(out.pooler_output - explained.pooler_output).max() <= PADDED_TOL


def test_path_is_an_explicit_choice(odd):
    ids = np.array([[2, 5, 7, 3]])
    with pytest.raises(InputError, match="path='reference'"):
        odd(ids, output_attentions=True, path="fast")
    with pytest.raises(InputError, match="path"):
        odd(ids, path="quick")
    fast_out, ref_out = odd(ids, path="fast"), odd(ids, path="reference")
    assert fast_out.attentions is None and ref_out.attentions is None
    assert np.abs(fast_out.last_hidden_state - ref_out.last_hidden_state).max() <= HIDDEN_TOL["odd"]


def test_sentence_alone_equals_sentence_in_any_batch(minilm, minilm_tokenizer):
    """Alone, a sequence runs on the BLAS's own threads; in a batch, on ours with the BLAS on one: the same
    numbers to a few ulps (conftest.BATCH_RTOL)."""
    same = assert_batch_invariant

    batch = minilm_tokenizer(SENTENCES)
    together = minilm(**batch).last_hidden_state
    reordered = minilm(**minilm_tokenizer(SENTENCES[::-1])).last_hidden_state[::-1]
    for i, sentence in enumerate(SENTENCES):
        alone = minilm(**minilm_tokenizer(sentence)).last_hidden_state[0]
        T = alone.shape[0]
        same(together[i, :T], alone)
        same(reordered[i, :T], alone)
    rng = np.random.default_rng(2)
    for L in (100, 300):  # longer: more columns than the small-product padding, several BLAS tiles
        ids = rng.integers(1000, 20000, (3, L))
        mask = np.ones_like(ids)
        mask[1:, L // 2:] = 0
        same(minilm(ids, attention_mask=mask).last_hidden_state[0], minilm(ids[:1]).last_hidden_state[0])


def test_column_means_do_not_depend_on_the_other_columns():
    x = (np.random.default_rng(9).standard_normal((384, 40)) * 3).astype(np.float32)
    whole = fast.column_means(x)
    assert np.abs(whole - x.astype(np.float64).mean(axis=0)).max() < 1e-6
    for cols in (slice(0, 1), slice(5, 6), slice(3, 5), slice(7, 40)):  # one column is the special case
        np.testing.assert_array_equal(fast.column_means(np.ascontiguousarray(x[:, cols])), whole[cols])


def test_one_token_sequence_alone_equals_it_in_a_batch(minilm):
    ids = np.array([[2000, 0, 0], [101, 2000, 102]])
    mask = np.array([[1, 0, 0], [1, 1, 1]])
    assert_batch_invariant(minilm(ids, attention_mask=mask).last_hidden_state[0, :1],
                           minilm(ids[:1, :1]).last_hidden_state[0])


def test_all_padding_row_is_zero_and_others_unaffected(minilm):
    ids = np.array([[101, 2000, 102], [0, 0, 0]])
    mask = np.array([[1, 1, 1], [0, 0, 0]])
    out = minilm(ids, attention_mask=mask)
    assert not out.last_hidden_state[1].any() and np.isfinite(out.pooler_output).all()
    alone = minilm(ids[:1]).last_hidden_state
    assert_batch_invariant(out.last_hidden_state[:1], alone)
    empty = minilm(ids[1:], attention_mask=mask[1:])  # no real token at all
    assert empty.last_hidden_state.shape == (1, 3, 384) and not empty.last_hidden_state.any()


@pytest.mark.parametrize("score_block", [1, 50, 700, 1 << 18])
def test_packed_attention_in_blocks_equals_attention(monkeypatch, score_block):
    """Long sequences are cut into blocks of query rows; the result must not depend on the cut."""
    monkeypatch.setattr(fast, "SCORE_BLOCK", score_block)
    rng = np.random.default_rng(3)
    N, D, lengths = 4, 8, [9, 1, 9, 30, 9, 2]
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    qkv = rng.standard_normal((offsets[-1], 3 * N * D)).astype(np.float32)  # token-major, as model.py has it
    out = fast.packed_attention(np.ascontiguousarray(qkv.T), offsets, N,
                                np.empty((N * D, offsets[-1]), dtype=np.float32)).T  # feature-major in and out
    for b, L in enumerate(lengths):
        seq = qkv[offsets[b]:offsets[b + 1]][None]  # (1, L, 3H)
        q, k, v = (split_heads(m, N) for m in np.split(seq, 3, axis=-1))
        context, _ = attention(q, k, v, np.zeros((1, 1, 1, L), dtype=np.float32))
        assert np.abs(out[offsets[b]:offsets[b + 1]] - merge_heads(context)[0]).max() <= 1e-6


def test_in_place_elementwise_steps_equal_reference():
    rng = np.random.default_rng(5)
    x = (rng.standard_normal((37, 80)) * 4).astype(np.float32)
    x[0, :6] = [0, -0.0, 1e-30, -1e-30, 30, -30]
    scratch = tuple(np.empty_like(x) for _ in range(3))
    np.testing.assert_array_equal(fast.gelu_(x.copy(), scratch), gelu(x))  # bit-equal: same operations
    np.testing.assert_array_equal(fast.gelu_tanh_(x.copy(), scratch), gelu_tanh(x))
    np.testing.assert_array_equal(fast.relu_(x.copy(), scratch), relu(x))
    w, b = rng.standard_normal(80).astype(np.float32), rng.standard_normal(80).astype(np.float32)
    # Feature-major: the mean runs down each column, summed in another order than the reference's.
    ours = fast.layer_norm_(np.ascontiguousarray(x.T), w, b, 1e-12, np.empty_like(x.T)).T
    assert np.abs(ours - layer_norm(x, Norm(w, b), 1e-12)).max() <= 2e-6
    exact = np.array([0.5 * v * (1 + math.erf(v / math.sqrt(2))) for v in x[0].astype(np.float64)])
    assert np.abs(fast.gelu_(x[:1].copy(), tuple(s[:1] for s in scratch))[0] - exact).max() < 1e-6


def test_split_sequences_balances_tokens_and_covers_the_batch():
    offsets = np.concatenate([[0], np.cumsum([5, 0, 40, 3, 3, 3, 30, 0])])
    for parts in (1, 2, 3, 8, 20):
        ranges = fast.split_sequences(offsets, parts)
        assert ranges[0][0] == 0 and ranges[-1][1] in (7, 8) and len(ranges) <= parts
        assert all(a[1] == b[0] for a, b in zip(ranges, ranges[1:]))  # contiguous, no overlap
        assert all(offsets[b1] > offsets[b0] for b0, b1 in ranges)  # no empty part
    assert fast.split_sequences(offsets, 2) == [(0, 3), (3, 8)]  # 45 | 39 tokens
    assert fast.split_sequences(np.array([0, 0, 0]), 2) == []


def test_blas_thread_count_is_restored(minilm):
    if not blas.controllable():
        pytest.skip("NumPy's BLAS is not an OpenBLAS whose thread count we can set")
    before = blas._openblas().get()
    ids = np.ones((4, 5), dtype=np.int64)
    packed(minilm, ids, ids, 0 * ids, threads=2)
    assert blas._openblas().get() == before


def test_one_thread_keeps_the_blas_on_one_thread(monkeypatch, minilm):
    if not blas.controllable():
        pytest.skip("NumPy's BLAS is not an OpenBLAS whose thread count we can set")
    seen = []
    encoder = fast.packed_encoder
    monkeypatch.setattr(fast, "packed_encoder", lambda *a, **k: seen.append(blas._openblas().get()) or encoder(*a, **k))
    ids = np.ones((1, 80), dtype=np.int64)
    packed(minilm, ids, ids, 0 * ids, threads=1)
    assert seen == [1]


def test_single_threaded_blas_nests(minilm):
    """A caller inside blas.single_threaded() may run the fast path on one thread (which enters it again): no
    deadlock, and the count is restored."""
    import threading
    ids = np.ones((1, 20), dtype=np.int64)

    def nested():
        with blas.single_threaded():
            packed(minilm, ids, ids, 0 * ids, threads=1)

    worker = threading.Thread(target=nested, daemon=True)
    worker.start()
    worker.join(timeout=60)
    assert not worker.is_alive(), "blas.single_threaded() deadlocked when nested"


def test_num_threads_from_environment(monkeypatch):
    monkeypatch.setenv("MINIBERT_NUM_THREADS", "3")
    assert blas.num_threads() == 3
    monkeypatch.delenv("MINIBERT_NUM_THREADS")
    assert blas.num_threads() >= 1


def test_num_threads_refuses_what_is_not_a_count(monkeypatch):
    for bad in ("two", "0", "-1", "1.5"):
        monkeypatch.setenv("MINIBERT_NUM_THREADS", bad)
        with pytest.raises(InputError, match="MINIBERT_NUM_THREADS=.*expected a positive integer"):
            blas.num_threads()


# ---- which OpenBLAS kernels run, and the warning when OPENBLAS_CORETYPE holds them below the CPU ----

CPUINFO = "processor\t: 0\nmodel name\t: Some CPU\nflags\t\t: {}\n\nprocessor\t: 1\n"


def _cpuinfo(tmp_path, flags: str) -> str:
    path = tmp_path / "cpuinfo"
    path.write_text(CPUINFO.format(flags))
    return str(path)


@pytest.mark.parametrize("flags, isa", [
    ("fpu sse sse2 avx avx2 fma avx512f avx512dq avx512bw avx512vl avx512cd", "AVX-512"),
    ("fpu sse sse2 avx avx2 fma avx512f", "AVX2"),  # AVX-512F alone is not what SkylakeX kernels need
    ("fpu sse sse2 avx avx2 fma", "AVX2"),
    ("fpu sse sse2 avx", "AVX"),
    ("fpu sse sse2", "SSE"),
])
def test_cpu_isa_from_flags(tmp_path, flags, isa):
    assert blas.cpu_isa(_cpuinfo(tmp_path, flags)) == isa


@pytest.mark.parametrize("content", [b"no flags here\n", b"flags without a colon\n", b"flags\t: \xff\xfe avx\n", b""])
def test_cpu_isa_unreadable_is_none(tmp_path, content):
    assert blas.cpu_isa(str(tmp_path / "missing")) is None
    (tmp_path / "odd").write_bytes(content)
    assert blas.cpu_isa(str(tmp_path / "odd")) is None


@pytest.mark.parametrize("forced, core, cpu, warns", [
    ("Haswell", "Haswell", "AVX-512", True),
    ("Zen", "Haswell", "AVX-512", True),
    ("Sandybridge", "Sandybridge", "AVX2", True),
    ("Nehalem", "Nehalem", "AVX-512", True),      # older still: SSE kernels
    ("SkylakeX", "Haswell", "AVX-512", True),     # a build without AVX-512 kernels falls back: the message says both
    ("SkylakeX", "SkylakeX", "AVX-512", False),   # held, but to this CPU's best
    (None, "Haswell", "AVX-512", False),          # OpenBLAS's own choice: not the environment's doing
    ("Haswell", "Haswell", "AVX2", False),
    ("Haswell", "Haswell", None, False),          # CPU unknown: say nothing rather than guess
    ("Haswell", None, "AVX-512", False),          # not an OpenBLAS that names its kernels
    ("Haswell", "SomeFutureCore", "AVX-512", False),
])
def test_pinned_kernels_warns_only_when_the_environment_holds_them_below_the_cpu(monkeypatch, forced, core, cpu,
                                                                                 warns):
    if forced is None:
        monkeypatch.delenv("OPENBLAS_CORETYPE", raising=False)
    else:
        monkeypatch.setenv("OPENBLAS_CORETYPE", forced)
    monkeypatch.setattr(blas, "kernels", lambda: core)
    monkeypatch.setattr(blas, "cpu_isa", lambda: cpu)
    monkeypatch.setattr(blas, "_PINNED_WARNED", False)
    message = blas.pinned_kernels()
    assert (message is not None) == warns
    if warns:
        assert f"OPENBLAS_CORETYPE={forced} is set" in message and f"runs its {core} kernels" in message
        assert cpu in message and "set on purpose" in message
        with pytest.warns(blas.KernelWarning, match="^OPENBLAS_CORETYPE"):  # the start conftest's filter matches
            blas.warn_pinned_kernels()
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            blas.warn_pinned_kernels()  # once per process
        assert f"(OPENBLAS_CORETYPE={forced}; this CPU has {cpu})" in blas.describe() or not blas.controllable()


def test_kernels_are_named_where_openblas_says(monkeypatch):
    if not blas.controllable() or blas.kernels() is None:
        pytest.skip("NumPy's BLAS is not an OpenBLAS that names its kernels")
    assert f"{blas.kernels()} kernels" in blas.describe()
    monkeypatch.setenv("MINIBERT_NUM_THREADS", "0")  # a description never fails: it names the bad variable
    assert "MINIBERT_NUM_THREADS='0'" in blas.describe()


def test_l2_cache_size_from_sysfs(tmp_path):
    for i, (level, kind, size) in enumerate([(1, "Data", "48K"), (1, "Instruction", "32K"), (2, "Unified", "2048K"),
                                             (3, "Unified", "32M")]):
        index = tmp_path / f"index{i}"
        index.mkdir()
        (index / "level").write_text(f"{level}\n")
        (index / "type").write_text(f"{kind}\n")
        (index / "size").write_text(f"{size}\n")
    assert blas.l2_cache_bytes(str(tmp_path)) == 2 << 20
    assert blas.l2_cache_bytes(str(tmp_path / "missing")) == 1 << 20  # no sysfs: a common size
    for misread in ("-512K", "0K", "12K", "lots", ""):  # not a cache size: the common one instead
        (tmp_path / "index2" / "size").write_text(misread)
        assert blas.l2_cache_bytes(str(tmp_path)) == 1 << 20, misread


@pytest.mark.parametrize("tile", [1, 100, 1536 * 7 + 3, 10 ** 8])
def test_activation_tiles_change_nothing(monkeypatch, minilm, tile):
    """The activation is element-wise: any tile size (down to one row) gives the same bits."""
    ids = np.random.default_rng(3).integers(1000, 20000, (3, 40))
    expected = minilm(ids).last_hidden_state
    monkeypatch.setattr(fast, "ACT_TILE", tile)
    np.testing.assert_array_equal(minilm(ids).last_hidden_state, expected)


def test_kernel_warning_points_at_the_callers_line(monkeypatch, minilm):
    monkeypatch.setattr(blas, "pinned_kernels", lambda: "OPENBLAS_CORETYPE=Haswell holds OpenBLAS ...")
    monkeypatch.setattr(blas, "_PINNED_WARNED", False)
    with pytest.warns(blas.KernelWarning) as seen:
        minilm(np.array([[101, 7592, 102]]))
    assert seen[0].filename == __file__  # the user's line, not minibert's internals
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        minilm(np.array([[101, 7592, 102]]), path="reference")  # once per process; the reference path never warns
