"""One two-level top-k for every sequence of a batch draws exactly what a full top-k per sequence draws.

On Qwen2.5-0.5B's exact shapes (151,936 logits a row; CPU): four seeded sequences decoded together,
once with the engine's batched top-k and once with llama.cpp's own top-k sampler per sequence, give
the same tokens token for token; a sequence that read another's row, or a first level that lost a
candidate, would not. On the tiny model (1,283 logits, not a multiple of the chunk) and behind a logit
bias each sampler sorts its own row. On the host the batched sampler is llama.cpp's top-k (same draws
from fixed logits), and a clone of a chain that holds one draws alike.
"""

from __future__ import annotations

import ctypes

import numpy as np
import pytest

from qwenctl.backends import LoadOptions, load_backend
from qwenctl.backends.batched_top_k import BatchedTopK, available
from qwenctl.backends.generation import Engine, Request, context_for_slots
from qwenctl.backends.sampling import Chain, ChainSpec

QUESTIONS = ["Say hello.", "Count to five.", "Name a colour.", "What is rain?"]


@pytest.fixture(scope="module")
def session(model_cache):
    from qwenctl.testing import models

    s = load_backend("llama.cpp", models.shaped_gguf(model_cache, "0.5B", "Q4_K_M"), LoadOptions(n_ctx=256, n_threads=2))
    yield s
    s.close()


@pytest.fixture(scope="module")
def tiny(model_cache):
    from qwenctl.testing import models

    s = load_backend("llama.cpp", models.tiny_gguf(model_cache), LoadOptions(n_ctx=256, n_threads=2))
    yield s
    s.close()


def _together(session, specs: list[ChainSpec], batched: bool) -> tuple[list[list[int]], BatchedTopK | None]:
    """Every request's tokens, all four decoded in one batch per step."""
    import llama_cpp as lc

    ctx = context_for_slots(session.llm, len(specs), 128)
    engine = Engine(ctx, session.llm.model, len(specs), 128, 64)
    group = engine.top_k if batched else None
    engine.top_k = group
    try:
        tokens: list[list[int]] = [[] for _ in specs]
        for slot, question, spec in zip(engine.slots, QUESTIONS, specs):
            engine.start(slot, Request(tuple(session.chat_prompt([{"role": "user", "content": question}])), spec, 12))
            tokens[slot.seq_id].append(slot.next_token)
        while any(slot.busy for slot in engine.slots):
            for slot, _tick in engine.step():
                tokens[slot.seq_id].append(slot.next_token)
        return tokens, group
    finally:
        engine.close()
        lc.llama_free(ctx)


def test_the_engine_batches_top_k_where_ggml_is_the_one_it_knows():
    assert available()


def test_four_sequences_draw_what_a_top_k_each_would_draw(session):
    specs = [ChainSpec(seed=10 + i, temperature=1.5, top_k=40, top_p=1.0) for i in range(4)]
    batched, group = _together(session, specs, batched=True)
    alone, _ = _together(session, specs, batched=False)
    assert batched == alone
    assert all(len(t) == 12 for t in batched) and len({tuple(t) for t in batched}) == 4
    # the steps with all four attached took their rows from one op each; the first prompts, with fewer, sorted alone
    assert group is not None and group.rows_shared > 3 * group.shared_ops > 0 and group.rows_alone > 0


def test_a_logit_bias_before_it_gives_each_row_its_own_sort(session):
    """The biased logits are no longer a row of llama.cpp's logits matrix, so each sampler sorts its own."""
    specs = [ChainSpec(seed=20 + i, temperature=1.5, top_k=40, top_p=1.0, logit_bias=((0, 1.0),)) for i in range(4)]
    batched, group = _together(session, specs, batched=True)
    alone, _ = _together(session, specs, batched=False)
    assert batched == alone
    assert group is not None and group.rows_shared == group.shared_ops == 0 and group.rows_alone >= 4


def test_one_op_serves_one_k_so_mixed_requests_sort_alone(session):
    """Four requests with four top-k values: no k has enough samplers for an op of its own to pay."""
    specs = [ChainSpec(seed=40 + i, temperature=1.5, top_k=10 * (i + 1), top_p=1.0) for i in range(4)]
    batched, group = _together(session, specs, batched=True)
    alone, _ = _together(session, specs, batched=False)
    assert batched == alone
    assert group is not None and group.shared_ops == 0 and group.rows_alone >= 4


def test_a_vocabulary_not_in_whole_chunks_sorts_each_row(tiny):
    specs = [ChainSpec(seed=30 + i, temperature=1.5, top_k=40, top_p=1.0) for i in range(4)]
    batched, group = _together(tiny, specs, batched=True)
    alone, _ = _together(tiny, specs, batched=False)
    assert batched == alone
    assert group is not None and group.shared_ops == 0 and group.rows_alone >= 4


def _host_draws(chain_ptr, logits: np.ndarray, n: int = 200) -> list[int]:
    import llama_cpp as lc

    template = (lc.llama_token_data * len(logits))(*(lc.llama_token_data(i, float(x), 0.0) for i, x in enumerate(logits)))
    work = (lc.llama_token_data * len(logits))()
    out = []
    for _ in range(n):
        ctypes.memmove(work, template, ctypes.sizeof(template))
        arr = lc.llama_token_data_array(work, len(logits), -1, False)
        lc.llama_sampler_apply(chain_ptr, ctypes.byref(arr))
        out.append(work[arr.selected].id)
    return out


def test_on_the_host_it_is_llamas_top_k_and_a_clone_draws_alike():
    import llama_cpp as lc

    logits = np.random.default_rng(5).normal(0.0, 2.0, 1000)
    spec = ChainSpec(seed=9, temperature=1.0, top_k=8, top_p=1.0, repeat_penalty=1.0)
    ours, theirs = Chain(spec, len(logits), top_k=BatchedTopK()), Chain(spec, len(logits))
    clone = lc.llama_sampler_clone(ours.ptr)
    try:
        assert ours.names()[0] == "top-k" and theirs.names()[0] == "top-k"
        drawn = _host_draws(ours.ptr, logits)
        assert drawn == _host_draws(theirs.ptr, logits) == _host_draws(clone, logits)
        assert set(drawn) <= set(np.argsort(-logits)[:8].tolist()) and len(set(drawn)) > 3
    finally:
        ours.close()
        theirs.close()
        lc.llama_sampler_free(clone)
