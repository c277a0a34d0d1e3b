"""Several requests in one batch: the engine's slots, and `serve --parallel` with concurrent openai clients.

Each sequence has its own sampler chain, so a reply must not depend on its company: greedy
replies (and seeded sampled ones) are the same alone and among concurrent requests.
"""

from __future__ import annotations

import threading

import pytest
from serve_helpers import start

from qwenctl.backends import LoadOptions, load_backend
from qwenctl.backends.generation import Engine, Request, context_for_slots, run_one
from qwenctl.backends.sampling import ChainSpec

NO_EOS = ((1280, -100.0), (1281, -100.0), (1282, -100.0))  # the tiny vocabulary's specials
QUESTIONS = ["Say hello.", "Count to five.", "Name a colour.", "What is rain?", "Tell a joke.", "Why?"]


@pytest.fixture(scope="module")
def tiny(model_cache):
    from qwenctl.testing import models

    return models.tiny_gguf(model_cache)


def test_one_step_decodes_every_slot_and_each_reply_is_its_own(tiny):
    session = load_backend("llama.cpp", tiny, LoadOptions(n_ctx=256, n_threads=2))
    ctx = context_for_slots(session.llm, 3, 256)
    engine = Engine(ctx, session.llm.model, 3, 256, 64)
    try:
        specs = [ChainSpec(temperature=0.0, logit_bias=NO_EOS), ChainSpec(seed=3, logit_bias=NO_EOS),
                 ChainSpec(seed=4, temperature=1.0, logit_bias=NO_EOS)]
        requests = [Request(tuple(session.chat_prompt([{"role": "user", "content": q}])), spec, 12)
                    for q, spec in zip(QUESTIONS, specs)]
        alone = []
        for request in requests:
            engine.forget()
            alone.append("".join(t.tick.text for t in run_one(engine, request)))
        engine.forget()
        together = [engine.start(slot, r).text for slot, r in zip(engine.slots, requests)]
        while any(slot.busy for slot in engine.slots):
            ticks = engine.step()
            assert len(ticks) == 3  # all three end together (12 tokens each): every step carried all of them
            for slot, tick in ticks:
                together[slot.seq_id] += tick.text
        assert together == alone
    finally:
        engine.close()
        import llama_cpp

        llama_cpp.llama_free(ctx)
        session.close()


def test_overlapped_steps_give_the_replies_of_plain_steps(tiny):
    """With `overlap` (a GPU model) the next batch is queued before the drawn tokens become text. Whatever happens
    between steps must come out the same: a reply ended by its budget, one ended by a stop string and one
    interrupted (each with one more token decoded into its cache, its draw dropped), and a request started in a
    freed slot while a batch is in flight (its prompt's decode must not overwrite the batch's draws)."""
    session = load_backend("llama.cpp", tiny, LoadOptions(n_ctx=256, n_threads=2))
    ctx = context_for_slots(session.llm, 3, 256)

    def prompt(q: str) -> tuple[int, ...]:
        return tuple(session.chat_prompt([{"role": "user", "content": q}]))

    requests = [Request(prompt("Say hello."), ChainSpec(temperature=0.0, logit_bias=NO_EOS), 6),
                Request(prompt("Count to five."), ChainSpec(seed=3, repeat_penalty=1.3, logit_bias=NO_EOS), 16,
                        stop=("ach",)),
                Request(prompt("Why?"), ChainSpec(seed=4, temperature=1.0, logit_bias=NO_EOS), 12)]
    late = Request(prompt("Tell a joke."), ChainSpec(seed=5, repeat_penalty=1.3, logit_bias=NO_EOS), 7)

    def replies(overlap: bool) -> tuple[dict[str, list], list[int]]:
        """Each request's text and how it ended (steps may interleave differently: a request started while a
        batch is in flight joins the next one)."""
        engine = Engine(ctx, session.llm.model, 3, 256, 64, overlap=overlap)
        out: dict[str, list] = {}
        owner = {}

        def begin(slot, name, request):
            owner[slot.seq_id] = name
            out[name] = [engine.start(slot, request).text, None]

        try:
            engine.forget()
            for slot, name, r in zip(engine.slots, ("budget", "stop string", "interrupted"), requests):
                begin(slot, name, r)
            for step in range(40):
                ticks = engine.step()
                if not ticks:
                    break
                for slot, tick in ticks:
                    out[owner[slot.seq_id]][0] += tick.text
                    out[owner[slot.seq_id]][1] = tick.finish_reason
                if step == 4:  # the client of slot 2 went away
                    out["interrupted"][0] += engine.finish(engine.slots[2], "interrupted").text
                    out["interrupted"][1] = "interrupted"
                if "late" not in out and not engine.slots[0].busy:
                    begin(engine.slots[0], "late", late)
            return out, [len(slot.cached) for slot in engine.slots]
        finally:
            engine.close()

    try:
        plain, plain_cached = replies(False)
        overlapped, overlapped_cached = replies(True)
    finally:
        import llama_cpp

        llama_cpp.llama_free(ctx)
        session.close()
    assert {name: reason for name, (_, reason) in plain.items()} == {
        "budget": "length", "stop string": "stop", "interrupted": "interrupted", "late": "length"}
    assert overlapped == plain
    # replies ended by their text or from outside had one more token queued; those ended by the budget did not
    assert [b - a for a, b in zip(plain_cached, overlapped_cached)] == [0, 1, 1]


def test_overlapped_replies_one_after_another_on_one_slot(tiny):
    """Chat's path with overlap: a reply ended by a stop string leaves a batch in flight, whose draw the next
    reply's prompt takes and drops; the next reply must still step token by token, as plain steps do."""
    session = load_backend("llama.cpp", tiny, LoadOptions(n_ctx=256, n_threads=2))
    stopped = Request(tuple(session.chat_prompt([{"role": "user", "content": "Count to five."}])),
                      ChainSpec(seed=3, repeat_penalty=1.3, logit_bias=NO_EOS), 16, stop=("ach",))
    after = Request(tuple(session.chat_prompt([{"role": "user", "content": "Why?"}])),
                    ChainSpec(seed=4, temperature=1.0, logit_bias=NO_EOS), 8)
    try:
        replies = {}
        for overlap in (False, True):
            engine = Engine(session.llm.ctx, session.llm.model, 1, 256, 64, overlap=overlap)
            try:
                engine.forget()
                replies[overlap] = [[(t.tick.text, t.tick.finish_reason) for t in run_one(engine, r)] for r in (stopped, after)]
            finally:
                engine.close()
    finally:
        session.close()
    assert replies[True] == replies[False]
    assert [reply[-1][1] for reply in replies[True]] == ["stop", "length"] and len(replies[True][1]) == 8


@pytest.fixture(scope="module")
def served(tiny):
    server = start(tiny, "--ctx", "256", "--parallel", "4")
    yield server
    assert server.stop() == 0, server.stderr


# The random-weight model repeats one token whatever it is asked; penalties make its replies differ by question.
_VARIED = {"repeat_penalty": 1.3, "presence_penalty": 1.0}


def _ask(server, question: str, **kw) -> str:
    body = {**_VARIED, "logit_bias": {"<|im_end|>": -100, "<|endoftext|>": -100}, "logit_bias_type": "tokens"}
    reply = server.client().chat.completions.create(
        model=server.model_id, messages=[{"role": "user", "content": question}], max_tokens=20, extra_body=body, **kw)
    assert reply.usage.completion_tokens == 20
    return reply.choices[0].message.content


def _ask_streamed(server, question: str, **kw) -> str:
    body = {**_VARIED, "logit_bias": {"<|im_end|>": -100, "<|endoftext|>": -100}, "logit_bias_type": "tokens"}
    chunks = server.client().chat.completions.create(
        model=server.model_id, messages=[{"role": "user", "content": question}], max_tokens=20, extra_body=body,
        stream=True, **kw)
    return "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)


def _concurrently(fn, jobs: list[tuple]) -> list[str]:
    out: list[str | BaseException] = [""] * len(jobs)

    def run(i, args):
        try:
            out[i] = fn(*args)
        except BaseException as e:  # noqa: BLE001 - re-raised below, in the test's thread
            out[i] = e

    threads = [threading.Thread(target=run, args=(i, job)) for i, job in enumerate(jobs)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(300)
    for result in out:
        if isinstance(result, BaseException):
            raise result
    return out  # type: ignore[return-value]


def test_start_up_line_says_four_at_once(served):
    assert served.info["parallel"] == 4


@pytest.mark.parametrize("kw", [{"temperature": 0}, {"seed": 17, "temperature": 1.0}], ids=["greedy", "seeded"])
def test_concurrent_clients_get_the_replies_they_get_alone(served, kw):
    alone = [_ask(served, q, **kw) for q in QUESTIONS]
    assert len(set(alone)) > 1  # different questions, different replies: a mix-up would show
    together = _concurrently(lambda q: _ask(served, q, **kw), [(q,) for q in QUESTIONS])
    assert together == alone
    streamed = _concurrently(lambda q: _ask_streamed(served, q, **kw), [(q,) for q in QUESTIONS])
    assert streamed == alone


def test_a_host_only_request_falls_back_and_says_so_once(served):
    client = served.client()
    for _ in range(2):
        reply = client.chat.completions.create(model=served.model_id, messages=[{"role": "user", "content": "hi"}],
                                               max_tokens=4, response_format={"type": "json_object"})
        assert reply.choices[0].message.content is not None
    assert served.stderr.count("a request with a response format") == 1
    assert _ask(served, QUESTIONS[0], temperature=0)  # and the device path goes on
