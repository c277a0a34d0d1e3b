"""The hierarchical top-k (qwenctl.backends.topk) keeps the same candidates as llama.cpp's top-k.

Two ways, both on the CPU: its graph alone, computed by ggml over hundreds of rows (random,
with ties, mostly -inf, vocabularies that pad at every level, several widths and k) against
numpy; and the sampler attached to a sequence of the tiny model, after a random logit bias, its
candidates read back from the decode (``llama_get_sampled_candidates_ith``) against those of
llama.cpp's own top-k in the same place. The sampler runs its levels only where the logits are on
a GPU (on the CPU it builds llama.cpp's graph), so the attached tests tell it the CPU is one.
Where the k-th logit is tied, any choice among the tied tokens is right (llama.cpp's own top-k picks arbitrarily too), so those cases check the rule.
"""

from __future__ import annotations

import ctypes

import numpy as np
import pytest

from qwenctl.backends import topk

pytestmark = pytest.mark.skipif(bool(topk.why_unavailable()), reason=topk.why_unavailable() or "")


def _valid_top_k(values: np.ndarray, ids: np.ndarray, k: int) -> None:
    """`ids` is a top-k of `values`: k distinct tokens, every larger value in, the rest tied at the k-th."""
    assert len(ids) == k and len(set(ids.tolist())) == k, ids
    assert ids.min() >= 0 and ids.max() < len(values), ids
    kth = np.sort(values)[::-1][k - 1]
    chosen = values[ids]
    assert (chosen >= kth).all() and (chosen > kth).sum() == (values > kth).sum(), (chosen, kth)


def _exact_top_k(values: np.ndarray, k: int) -> set[int]:
    return set(np.argsort(-values, kind="stable")[:k].tolist())


# --- the graph alone ----------------------------------------------------------------------------------
def _compute(values: np.ndarray, k: int, width: int, candidates: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(token ids, logits) the sampler's graph leaves for one row, computed by ggml on the CPU."""
    import llama_cpp.llama_cpp as binding
    from llama_cpp._ctypes_extensions import load_shared_library

    g = topk._ggml()
    cpu = load_shared_library("ggml-cpu", binding._base_path)
    cpu.ggml_graph_compute_with_ctx.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int]
    g.ggml_get_data.restype, g.ggml_get_data.argtypes = ctypes.c_void_p, [ctypes.c_void_p]
    n = len(values)
    row = np.ascontiguousarray(values, np.float32)  # held: memmove reads it
    cands = None if candidates is None else np.ascontiguousarray(candidates, np.int32)
    ctx = g.ggml_init(topk._InitParams(64 * n * 4 + (1 << 22), None, False))
    try:
        gf = g.ggml_new_graph_custom(ctx, 2048, False)
        logits = g.ggml_new_tensor_1d(ctx, topk._GGML_TYPE_F32, n)
        ctypes.memmove(g.ggml_get_data(logits), row.ctypes.data, 4 * n)
        data = topk._Data(logits=logits)
        if cands is not None:
            data.candidates = g.ggml_new_tensor_1d(ctx, topk._GGML_TYPE_I32, n)
            ctypes.memmove(g.ggml_get_data(data.candidates), cands.ctypes.data, 4 * n)
        assert topk._build(ctx, data, k, width)  # the hierarchical graph, not llama.cpp's own
        for out in (data.logits, data.candidates):
            g.ggml_build_forward_expand(gf, out)
        assert cpu.ggml_graph_compute_with_ctx(ctx, gf, 2) == 0
        ids = np.ctypeslib.as_array(ctypes.cast(g.ggml_get_data(data.candidates), ctypes.POINTER(ctypes.c_int32)), (k,)).copy()
        got = np.ctypeslib.as_array(ctypes.cast(g.ggml_get_data(data.logits), ctypes.POINTER(ctypes.c_float)), (k,)).copy()
        return ids, got
    finally:
        g.ggml_free(ctx)


SIZES = (1025, 1283, 5003, 151_936)  # each pads: the test vocabulary, Qwen's, one over the single-sort limit


@pytest.mark.parametrize("width", [64, 128, 1024])
@pytest.mark.parametrize("k", [1, 20, 32])
def test_the_graph_keeps_llama_cpps_top_k_on_random_rows(width, k):
    rng = np.random.default_rng(width * 100 + k)
    for n in SIZES:
        for _ in range(3):
            values = rng.normal(0, 5, n).astype(np.float32)
            ids, got = _compute(values, k, width)
            assert set(ids.tolist()) == _exact_top_k(values, k), (n, width, k)
            assert np.array_equal(got, values[ids])  # the logits travel with their tokens


@pytest.mark.parametrize("width", [64, 128])
def test_ties_and_minus_infinity_pick_by_the_rule_and_never_a_pad(width):
    rng = np.random.default_rng(width)
    for n in SIZES:
        ties = rng.integers(0, 4, n).astype(np.float32)  # hundreds of tokens share the k-th value
        _valid_top_k(ties, _compute(ties, 20, width)[0], 20)
        few = np.full(n, -np.inf, dtype=np.float32)  # fewer finite logits than k: the rest are -inf tokens, not pads
        few[rng.choice(n, 3, replace=False)] = rng.normal(0, 1, 3)
        ids, got = _compute(few, 20, width)
        _valid_top_k(few, ids, 20)
        assert np.isfinite(got).sum() == 3


def test_candidates_left_by_an_earlier_sampler_are_looked_up():
    rng = np.random.default_rng(3)
    values = rng.normal(0, 5, 1283).astype(np.float32)
    perm = rng.permutation(1283)
    ids, got = _compute(values, 20, 128, candidates=perm)
    assert set(ids.tolist()) == {int(perm[i]) for i in _exact_top_k(values, 20)}


def test_a_row_that_fits_one_sort_is_llama_cpps_own_graph():
    g = topk._ggml()
    ctx = g.ggml_init(topk._InitParams(1 << 20, None, True))
    try:
        data = topk._Data(logits=g.ggml_new_tensor_1d(ctx, topk._GGML_TYPE_F32, topk.SORT_MAX))
        assert not topk._build(ctx, data, 20, 128)
        data = topk._Data(logits=g.ggml_new_tensor_1d(ctx, topk._GGML_TYPE_F32, 5000))
        assert not topk._build(ctx, data, 65, 128)  # k over half a row: levels would not shrink
    finally:
        g.ggml_free(ctx)


# --- attached to a sequence of the tiny model ------------------------------------------------------
@pytest.fixture(scope="module")
def llm(model_cache):
    import llama_cpp

    from qwenctl.testing import models

    m = llama_cpp.Llama(str(models.tiny_gguf(model_cache)), n_ctx=256, n_threads=2, verbose=False)
    yield m
    m.close()


def _decoded(llm, bias: np.ndarray, sampler) -> tuple[list[str], np.ndarray, np.ndarray]:
    """(chain names, candidates, their logits) after one decode with logit-bias > `sampler` attached."""
    import llama_cpp as lc

    ctx, nv = llm.ctx, llm.n_vocab()
    chain = lc.llama_sampler_chain_init(lc.llama_sampler_chain_default_params())
    arr = (lc.llama_logit_bias * nv)(*(lc.llama_logit_bias(i, float(b)) for i, b in enumerate(bias)))
    lc.llama_sampler_chain_add(chain, lc.llama_sampler_init_logit_bias(nv, nv, arr))
    lc.llama_sampler_chain_add(chain, sampler)
    try:
        assert lc.llama_set_sampler(ctx, 0, chain)
        lc.llama_memory_clear(lc.llama_get_memory(ctx), True)
        tokens = (lc.llama_token * 3)(10, 11, 12)
        assert lc.llama_decode(ctx, lc.llama_batch_get_one(tokens, 3)) == 0
        n = lc.llama_get_sampled_candidates_count_ith(ctx, -1)
        ids = np.ctypeslib.as_array(lc.llama_get_sampled_candidates_ith(ctx, -1), (n,)).copy()
        logits = np.ctypeslib.as_array(lc.llama_get_sampled_logits_ith(ctx, -1), (n,)).copy()
        names = [lc.llama_sampler_name(lc.llama_sampler_chain_get(chain, i)).decode() for i in range(2)]
        return names, ids, logits
    finally:
        lc.llama_set_sampler(ctx, 0, None)
        lc.llama_sampler_free(chain)


@pytest.fixture
def hierarchical_only(monkeypatch):
    """The levels on this CPU, as on a GPU; fails the test if the sampler ever built llama.cpp's graph instead."""
    monkeypatch.setattr(topk, "_pays_on", lambda dev: True)
    built = []
    real = topk._build
    monkeypatch.setattr(topk, "_build", lambda *a: built.append(real(*a)) or built[-1])
    yield
    assert built and all(built)


def test_attached_it_keeps_the_candidates_of_llama_cpps_top_k(llm, hierarchical_only):
    import llama_cpp as lc

    rng = np.random.default_rng(13)
    for _ in range(12):
        bias = rng.normal(0, 100, llm.n_vocab())  # dominates the model's logits: a new random row each time
        names, ours, our_logits = _decoded(llm, bias, topk.init(20))
        ref_names, theirs, their_logits = _decoded(llm, bias, lc.llama_sampler_init_top_k(20))
        assert names == ["+logit-bias", "+" + topk.NAME] and ref_names == ["+logit-bias", "+top-k"]
        assert set(ours.tolist()) == set(theirs.tolist())
        assert dict(zip(ours.tolist(), our_logits.tolist())) == dict(zip(theirs.tolist(), their_logits.tolist()))


def test_attached_ties_and_minus_infinity_follow_the_rule(llm, hierarchical_only):
    rng = np.random.default_rng(14)
    nv = llm.n_vocab()
    # logit + 1e9 * j rounds to 1e9 * j exactly (float spacing 64 and up), so each token's value is its bias
    bias = np.full(nv, -1e9)
    bias[rng.choice(nv, 40, replace=False)] = 2e9
    bias[rng.choice(np.flatnonzero(bias < 0), 5, replace=False)] = 3e9
    _, ids, _ = _decoded(llm, bias, topk.init(20))
    _valid_top_k(bias.astype(np.float32), ids, 20)
    bias = np.full(nv, -np.inf)
    bias[[5, 700, 1200]] = 0.0
    _, ids, _ = _decoded(llm, bias, topk.init(20))
    _valid_top_k(bias.astype(np.float32), ids, 20)
    assert {5, 700, 1200} <= set(ids.tolist())


def test_on_the_cpu_it_is_llama_cpps_top_k_by_name_and_graph(llm, monkeypatch):
    import llama_cpp as lc

    built = []
    monkeypatch.setattr(topk, "_build", lambda *a: built.append(a) or True)
    bias = np.random.default_rng(15).normal(0, 100, llm.n_vocab())
    names, ours, _ = _decoded(llm, bias, topk.init(20))
    assert names[1] == "+top-k" and not built
    assert set(ours.tolist()) == set(_decoded(llm, bias, lc.llama_sampler_init_top_k(20))[1].tolist())


def test_python_runs_when_a_graph_is_built_not_per_token(llm, hierarchical_only):
    import llama_cpp as lc

    ctx = llm.ctx
    chain = lc.llama_sampler_chain_init(lc.llama_sampler_chain_default_params())
    sampler = topk.init(20)
    lc.llama_sampler_chain_add(chain, sampler)
    lc.llama_sampler_chain_add(chain, lc.llama_sampler_init_dist(1))
    try:
        assert lc.llama_set_sampler(ctx, 0, chain)
        lc.llama_memory_clear(lc.llama_get_memory(ctx), True)
        token = (lc.llama_token * 1)(10)
        assert lc.llama_decode(ctx, lc.llama_batch_get_one(token, 1)) == 0
        before = topk.graph_builds(sampler)
        for _ in range(40):
            token[0] = lc.llama_sampler_sample(chain, ctx, -1)
            assert lc.llama_decode(ctx, lc.llama_batch_get_one(token, 1)) == 0
        assert topk.graph_builds(sampler) - before <= 2, topk.graph_builds(sampler) - before  # graphs reused
    finally:
        lc.llama_set_sampler(ctx, 0, None)
        lc.llama_sampler_free(chain)


def test_clone_and_free_leave_nothing_behind():
    import llama_cpp as lc

    live = len(topk._live)
    chain = lc.llama_sampler_chain_init(lc.llama_sampler_chain_default_params())
    lc.llama_sampler_chain_add(chain, topk.init(20))
    twin = lc.llama_sampler_clone(chain)
    assert lc.llama_sampler_name(lc.llama_sampler_chain_get(twin, 0)).decode() == topk.NAME
    assert len(topk._live) == live + 2
    lc.llama_sampler_free(chain)
    lc.llama_sampler_free(twin)
    assert len(topk._live) == live


def test_the_host_apply_is_llama_cpps_top_k():
    import llama_cpp as lc

    rng = np.random.default_rng(5)
    logits = rng.normal(0, 3, 1283).astype(np.float32)
    kept = []
    for sampler in (topk.init(20), lc.llama_sampler_init_top_k(20)):
        data = (lc.llama_token_data * 1283)(*(lc.llama_token_data(i, float(v), 0.0) for i, v in enumerate(logits)))
        cur = lc.llama_token_data_array(data, 1283, -1, False)
        lc.llama_sampler_apply(sampler, ctypes.byref(cur))
        kept.append({data[i].id for i in range(cur.size)})
        lc.llama_sampler_free(sampler)
    assert kept[0] == kept[1] == _exact_top_k(logits, 20)
