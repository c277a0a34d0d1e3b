"""The sampler chain drawn on the device and on the host are the same sampler.

On the tiny generated model (CPU): thousands of first-token draws from each path, compared with
the distribution computed from the model's own logits by a chi-square test whose bound has a
1e-4 false-alarm rate; the same test rejects draws made at a different temperature, so it cannot
pass by accident. Greedy replies are identical token for token on both paths and to
llama-cpp-python's own ``Llama.generate``; a seeded sampled reply is identical on both paths.
"""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest

from qwenctl.backends import LoadOptions, SamplingOptions, load_backend
from qwenctl.backends.generation import Request, run_one
from qwenctl.backends.sampling import Chain, ChainSpec, attach, device_report

DRAWS = 4000
# Eight tokens lifted above the rest so that top-p and temperature both matter (see _expected).
BIASED = {100 + i: 4.0 - 0.5 * i for i in range(8)}


@pytest.fixture(scope="module")
def session(model_cache):
    from qwenctl.testing import models

    s = load_backend("llama.cpp", models.tiny_gguf(model_cache), LoadOptions(n_ctx=512, n_threads=2))
    yield s
    s.close()


def _prompt(session) -> list[int]:
    return session.chat_prompt([{"role": "user", "content": "Pick a token."}])


def _draws(session, spec: ChainSpec, device: bool, n: int = DRAWS) -> np.ndarray:
    """`n` independent draws of the token after the prompt: the last prompt token is decoded again each time."""
    import llama_cpp as lc

    engine = session.engine
    session.reset()
    engine.detach_all()
    prompt = _prompt(session)
    ctx, mem = session.llm.ctx, lc.llama_get_memory(session.llm.ctx)
    head = (lc.llama_token * (len(prompt) - 1))(*prompt[:-1])
    assert lc.llama_decode(ctx, lc.llama_batch_get_one(head, len(prompt) - 1)) == 0
    chain = Chain(spec, session.n_vocab)
    assert attach(ctx, 0, chain) if device else True
    last = (lc.llama_token * 1)(prompt[-1])
    out = np.empty(n, dtype=np.int64)
    try:
        for i in range(n):
            lc.llama_memory_seq_rm(mem, 0, len(prompt) - 1, -1)
            assert lc.llama_decode(ctx, lc.llama_batch_get_one(last, 1)) == 0
            if i == 0:
                assert device_report(ctx, -1, chain).on_device is device
            out[i] = chain.sample(ctx, -1)
    finally:
        attach(ctx, 0, None)
        chain.close()
        session.reset()
    return out


def _logits(session) -> np.ndarray:
    import llama_cpp as lc

    session.reset()
    session.engine.detach_all()
    prompt = _prompt(session)
    arr = (lc.llama_token * len(prompt))(*prompt)
    assert lc.llama_decode(session.llm.ctx, lc.llama_batch_get_one(arr, len(prompt))) == 0
    logits = np.ctypeslib.as_array(lc.llama_get_logits_ith(session.llm.ctx, -1), shape=(session.n_vocab,)).astype(np.float64)
    session.reset()
    return logits


def _expected(logits: np.ndarray, spec: ChainSpec) -> dict[int, float]:
    """llama.cpp's chain in numpy: logit bias, top-k, top-p (on temperature-1 probabilities), temperature, softmax."""
    z = logits.copy()
    for token, bias in spec.logit_bias:
        z[token] += bias
    order = np.argsort(-z, kind="stable")[: spec.top_k]
    p1 = np.exp(z[order] - z[order].max())
    p1 /= p1.sum()
    keep = int(np.searchsorted(np.cumsum(p1), spec.top_p) + 1)
    kept = order[:keep]
    w = np.exp((z[kept] - z[kept].max()) / spec.temperature)
    return dict(zip(kept.tolist(), (w / w.sum()).tolist()))


def _chi_square(draws: np.ndarray, expected: dict[int, float]) -> tuple[float, int]:
    counts = {t: int((draws == t).sum()) for t in expected}
    outside = len(draws) - sum(counts.values())  # draws the chain should never make
    stat = sum((counts[t] - len(draws) * p) ** 2 / (len(draws) * p) for t, p in expected.items())
    return stat + (math.inf if outside else 0.0), len(expected) - 1


def _bound(df: int, z: float = 3.719) -> float:
    """Chi-square quantile for a one-sided 1e-4 tail (z = 3.719), by the Wilson-Hilferty approximation."""
    return df * (1 - 2 / (9 * df) + z * math.sqrt(2 / (9 * df))) ** 3


QWEN = ChainSpec(temperature=0.7, top_k=20, top_p=0.8, repeat_penalty=1.0, logit_bias=tuple(BIASED.items()))


@pytest.fixture(scope="module")
def expected(session) -> dict[int, float]:
    exp = _expected(_logits(session), QWEN)
    assert 4 <= len(exp) <= 8 and max(exp.values()) < 0.7  # a distribution worth testing, not one sure token
    return exp


@pytest.mark.parametrize("device", [True, False], ids=["device", "host"])
def test_draws_follow_the_chains_distribution(session, expected, device):
    stat, df = _chi_square(_draws(session, ChainSpec(**{**QWEN.__dict__, "seed": 11 if device else 12}), device), expected)
    assert stat < _bound(df), (stat, df)


def test_the_same_test_rejects_another_temperature(session, expected):
    wrong = ChainSpec(**{**QWEN.__dict__, "temperature": 1.0, "seed": 11})
    stat, df = _chi_square(_draws(session, wrong, device=True), expected)
    assert stat > 3 * _bound(df), (stat, df)


def _tokens(session, spec: ChainSpec, device: bool, n: int = 48) -> list[int]:
    engine = session.engine
    session.reset()
    request = Request(tuple(_prompt(session)), spec, n, device=device)
    tokens = [engine.slots[0].next_token for _ in run_one(engine, request)]
    session.reset()
    return tokens


NO_EOS = ((1280, -100.0), (1281, -100.0), (1282, -100.0))  # the tiny vocabulary's three specials


def test_greedy_is_identical_on_device_host_and_llama_generate(session):
    spec = ChainSpec(temperature=0.0, repeat_penalty=1.05, logit_bias=NO_EOS)
    device, host = _tokens(session, spec, True), _tokens(session, spec, False)
    assert device == host and len(device) == 48
    import llama_cpp

    plain = ChainSpec(temperature=0.0, repeat_penalty=1.05)
    ours = _tokens(session, plain, True)
    reference = llama_cpp.Llama(str(session.info.path), n_ctx=512, n_threads=2, verbose=False)
    try:
        theirs = []
        for token in reference.generate(_prompt(session), temp=0.0, repeat_penalty=1.05):
            theirs.append(token)
            if len(theirs) == len(ours):
                break
    finally:
        reference.close()
    assert ours == theirs


def test_a_seeded_reply_is_the_same_on_device_and_host(session):
    spec = ChainSpec(seed=5, logit_bias=NO_EOS)  # Qwen's defaults, repetition penalty included
    assert _tokens(session, spec, True) == _tokens(session, spec, False)


def test_session_generate_samples_on_the_device_and_says_so(session):
    events = list(session.generate(_prompt(session), SamplingOptions(max_tokens=4, seed=1)))
    assert events[-1].finish_reason in ("stop", "length")
    assert session.sampling_note.startswith("sampling on the device (")
    assert "dist" in session.sampling_note


# --- the cut: top-k on the device, penalties and the rest on the host ------------------------------

CUT = ChainSpec(temperature=1.0, top_k=4, top_p=0.95, repeat_penalty=2.0, presence_penalty=0.5, seed=7)
HISTORY = (0, 1, 2, 0, 500)  # the three best tokens were generated lately, so the penalties push them down


def _cut_logits(n_vocab: int = 1000) -> np.ndarray:
    z = np.random.default_rng(3).normal(0.0, 1.0, n_vocab)
    z[:10] = 8.0 - 0.3 * np.arange(10)  # a clear head: 8.0, 7.7, ... 5.3
    return z


def _penalised(logits: np.ndarray, spec: ChainSpec, history: tuple[int, ...]) -> np.ndarray:
    """llama.cpp's penalties sampler: repeat (divide positive logits, multiply negative), then frequency and presence."""
    z = logits.copy()
    for token in set(history):
        count = history.count(token)
        z[token] = z[token] * spec.repeat_penalty if z[token] <= 0 else z[token] / spec.repeat_penalty
        z[token] -= count * spec.frequency_penalty + spec.presence_penalty
    return z


def _draws_of(chain_ptr, logits: np.ndarray, history: tuple[int, ...], n: int = DRAWS) -> np.ndarray:
    """`n` draws from a chain applied on the host to fixed logits after `history` (draws are not accepted)."""
    import ctypes

    import llama_cpp as lc

    for token in history:
        lc.llama_sampler_accept(chain_ptr, token)
    template = (lc.llama_token_data * len(logits))(*(lc.llama_token_data(i, float(x), 0.0) for i, x in enumerate(logits)))
    work = (lc.llama_token_data * len(logits))()
    out = np.empty(n, dtype=np.int64)
    for i in range(n):
        ctypes.memmove(work, template, ctypes.sizeof(template))
        arr = lc.llama_token_data_array(work, len(logits), -1, False)
        lc.llama_sampler_apply(chain_ptr, ctypes.byref(arr))
        out[i] = work[arr.selected].id
    return out


def test_the_cut_chain_draws_exactly_what_the_whole_chain_would():
    """The device keeps top-k + 64 candidates; penalties, top-k, top-p, temperature and the draw follow on the host.

    With the three best tokens penalised out of the top 4, a cut at the top 4 would keep them: the
    same chi-square rejects draws from such a chain, so the test can tell a right cut from a wrong one.
    """
    import llama_cpp as lc

    logits = _cut_logits()
    expected = _expected(_penalised(logits, CUT, HISTORY), CUT)
    assert not set(expected) & {0, 1, 2} and len(expected) >= 3  # the penalties changed who is in the top 4
    chain = Chain(CUT, len(logits))
    try:
        assert chain.parts() == (["top-k"], ["penalties", "top-k", "top-p", "?temp", "dist"])  # "?": a no-op at 1.0
        stat, df = _chi_square(_draws_of(chain.ptr, logits, HISTORY), expected)
        assert stat < _bound(df), (stat, df)
    finally:
        chain.close()

    naive = lc.llama_sampler_chain_init(lc.llama_sampler_chain_default_params())
    for sampler in (lc.llama_sampler_init_top_k(CUT.top_k),
                    lc.llama_sampler_init_penalties(len(logits), 64, CUT.repeat_penalty, 0.0, CUT.presence_penalty),
                    lc.llama_sampler_init_top_p(CUT.top_p, 1), lc.llama_sampler_init_temp(1.0), lc.llama_sampler_init_dist(7)):
        lc.llama_sampler_chain_add(naive, sampler)
    try:
        stat, df = _chi_square(_draws_of(naive, logits, HISTORY), expected)
        assert stat > 3 * _bound(df), (stat, df)
    finally:
        lc.llama_sampler_free(naive)


BANNED = ((0, -100.0), (1, -100.0), (2, -100.0))  # the three best tokens of _cut_logits
# penalised: llama.cpp's penalties re-sort what the bias changed (ChainSpec.host_bias); no history, so no token is
BANNING = ChainSpec(temperature=1.0, top_k=4, top_p=0.95, repeat_penalty=1.5, logit_bias=BANNED, seed=7)


def test_a_ban_runs_on_the_host_and_draws_exactly_what_the_whole_chain_would():
    """Lowering biases follow the device's top-k, widened by one per banned token (and 64 for the penalties); a cut
    that is not widened would keep only one unbanned token of the top 4, and the same chi-square rejects its draws."""
    import llama_cpp as lc

    logits = _cut_logits()
    biased = logits.copy()
    for token, bias in BANNED:
        biased[token] += bias
    expected = _expected(biased, replace(BANNING, logit_bias=()))
    assert not set(expected) & {0, 1, 2} and len(expected) >= 3
    chain = Chain(BANNING, len(logits))
    try:
        assert BANNING.narrow == 4 + 64 + 3
        assert chain.parts() == (["top-k"], ["logit-bias", "penalties", "top-k", "top-p", "?temp", "dist"])
        stat, df = _chi_square(_draws_of(chain.ptr, logits, ()), expected)
        assert stat < _bound(df), (stat, df)
    finally:
        chain.close()

    naive = lc.llama_sampler_chain_init(lc.llama_sampler_chain_default_params())
    ban = (lc.llama_logit_bias * 3)(*(lc.llama_logit_bias(t, b) for t, b in BANNED))
    for sampler in (lc.llama_sampler_init_top_k(BANNING.top_k), lc.llama_sampler_init_logit_bias(len(logits), 3, ban),
                    lc.llama_sampler_init_penalties(len(logits), 64, BANNING.repeat_penalty, 0.0, 0.0),
                    lc.llama_sampler_init_top_p(BANNING.top_p, 1), lc.llama_sampler_init_temp(1.0), lc.llama_sampler_init_dist(7)):
        lc.llama_sampler_chain_add(naive, sampler)
    try:
        stat, df = _chi_square(_draws_of(naive, logits, ()), expected)
        assert stat > 3 * _bound(df), (stat, df)
    finally:
        lc.llama_sampler_free(naive)


@pytest.mark.parametrize("spec, narrow", [
    (ChainSpec(), 20 + 64),                                   # Qwen's chain: room for 64 penalised tokens
    (ChainSpec(repeat_penalty=1.0), 20),                      # no penalties: top-k itself is the cut
    (ChainSpec(logit_bias=((7, -100.0), (9, -1.0))), 20 + 64 + 2),  # and for each banned token
    (ChainSpec(logit_bias=((7, 2.0),)), 20 + 64),            # a raising bias stays before the device's top-k
    (ChainSpec(logit_bias=tuple((t, -1.0) for t in range(65))), 20 + 64),  # too many bans to widen for
    (ChainSpec(repeat_penalty=1.0, logit_bias=((7, -100.0),)), 20),  # no penalties to re-sort after a ban
    (ChainSpec(temperature=0.0), 0),                          # greedy stays whole on the device
    (ChainSpec(top_k=0), 0),                                  # no top-k: nothing narrows the vocabulary
    (ChainSpec(presence_penalty=-0.5), 0),                    # a negative penalty can lift a token: no cut
    (ChainSpec(repeat_penalty=0.9), 0),
])
def test_where_the_chain_is_cut(spec, narrow):
    assert spec.narrow == narrow
