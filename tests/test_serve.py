"""`qwenctl serve` end to end: a real server process on a generated model, the official openai client.

Both engines run for real: llama.cpp (CPU) on the tiny GGUF, mlx-lm (mlx[cpu]) on the tiny MLX
folder. Each gets one long-lived server (with an API key and a 256-token context) for the API
tests, and a fresh one for the stop test.
"""

from __future__ import annotations

import json
import signal
import urllib.error
import urllib.request
from pathlib import Path

import openai
import pytest
from serve_helpers import start, start_planned

KEY = "test-key-9f3a1c"
N_CTX = 256
MESSAGES = [{"role": "system", "content": "You are terse."}, {"role": "user", "content": "Say hello to the world."}]


def _model(backend: str, model_cache: Path) -> Path:
    from qwenctl.testing import models

    return models.tiny_gguf(model_cache) if backend == "llama.cpp" else models.tiny_mlx(model_cache)


@pytest.fixture(scope="module", params=["llama.cpp", "mlx"])
def served(request, model_cache):
    backend = request.param
    if backend == "mlx":
        pytest.importorskip("mlx_lm")
    model = _model(backend, model_cache)
    server = start(model, "--ctx", str(N_CTX), env={"QWENCTL_API_KEY": KEY})
    server.backend = backend
    server.model_path = model
    yield server
    assert server.stop() == 0, server.stderr


def _no_eos(server) -> dict:
    """Request fields that keep the random model from ending early, in each engine's own terms."""
    if server.backend == "llama.cpp":
        return {"logit_bias": {"<|im_end|>": -100, "<|endoftext|>": -100}, "logit_bias_type": "tokens"}
    tokenizer = json.loads((server.model_path / "tokenizer.json").read_text())
    ids = [t["id"] for t in tokenizer["added_tokens"] if t["content"] in ("<|im_end|>", "<|endoftext|>")]
    return {"logit_bias": {str(i): -100 for i in ids}}


def _templated_prompt_tokens(server, messages) -> int:
    """How many tokens the model's own chat template makes of `messages` (what the server must count)."""
    if server.backend == "llama.cpp":
        import jinja2
        import llama_cpp

        llm = llama_cpp.Llama(str(server.model_path), vocab_only=True, verbose=False)
        template = jinja2.Environment().from_string(llm.metadata["tokenizer.chat_template"])
        text = template.render(messages=messages, add_generation_prompt=True)
        return len(llm.tokenize(text.encode(), add_bos=False, special=True))
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(server.model_path))
    return len(tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=True)["input_ids"])


def test_start_up_line_describes_the_server(served):
    info = served.info
    assert info["schema"] == "serve"
    assert info["url"].startswith("http://127.0.0.1:") and info["url"].endswith("/v1")
    assert info["backend"] == served.backend
    assert info["n_ctx"] == N_CTX
    assert info["api_key_required"] is True
    assert info["sampling_defaults"] == {"temperature": 0.7, "top_p": 0.8, "top_k": 20, "repeat_penalty": 1.05}
    assert "/chat/completions" in info["curl"] and info["model_id"] in info["curl"]
    assert info["warnings"] == []
    assert KEY not in json.dumps(info)


def test_lists_the_one_model(served):
    models = served.client(KEY).models.list()
    assert [m.id for m in models.data] == [served.model_id]


def test_chat_completion_uses_the_models_template(served):
    reply = served.client(KEY).chat.completions.create(model=served.model_id, messages=MESSAGES, max_tokens=8, temperature=0)
    choice = reply.choices[0]
    assert choice.message.role == "assistant"
    assert isinstance(choice.message.content, str)
    assert choice.finish_reason in ("stop", "length")
    assert 1 <= reply.usage.completion_tokens <= 8
    assert reply.usage.prompt_tokens == _templated_prompt_tokens(served, MESSAGES)


def test_streamed_deltas_join_to_the_full_reply(served):
    client = served.client(KEY)
    args = dict(model=served.model_id, messages=MESSAGES, max_tokens=16, temperature=0, seed=7, extra_body=_no_eos(served))
    full = client.chat.completions.create(**args)
    chunks = list(client.chat.completions.create(stream=True, **args))
    streamed = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert len([c for c in chunks if c.choices and c.choices[0].delta.content]) > 1
    assert streamed == full.choices[0].message.content
    assert full.choices[0].finish_reason == "length"
    assert [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason] == ["length"]


def test_text_completion(served):
    reply = served.client(KEY).completions.create(model=served.model_id, prompt="Once upon a time", max_tokens=6, extra_body=_no_eos(served))
    assert reply.object == "text_completion"
    assert isinstance(reply.choices[0].text, str)
    assert reply.usage.completion_tokens == 6


def test_wrong_key_is_refused(served):
    client = served.client("wrong-key")
    with pytest.raises(openai.AuthenticationError) as caught:
        client.models.list()
    assert caught.value.status_code == 401
    with pytest.raises(openai.AuthenticationError):
        client.chat.completions.create(model=served.model_id, messages=MESSAGES, max_tokens=2)


def test_missing_key_is_refused(served):
    # the openai client always sends a key, so this one is a bare request
    body = json.dumps({"model": served.model_id, "messages": MESSAGES}).encode()
    request = urllib.request.Request(served.base_url + "/chat/completions", data=body, headers={"Content-Type": "application/json"})
    with pytest.raises(urllib.error.HTTPError) as caught:
        urllib.request.urlopen(request, timeout=60)
    assert caught.value.code == 401
    assert json.loads(caught.value.read())["error"]["code"] == "invalid_api_key"


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "streamed"])
def test_context_overflow_is_a_400_and_the_server_goes_on(served, stream):
    client = served.client(KEY)
    too_long = [{"role": "user", "content": "hello world " * N_CTX}]
    with pytest.raises(openai.BadRequestError) as caught:
        reply = client.chat.completions.create(model=served.model_id, messages=too_long, max_tokens=4, stream=stream)
        if stream:
            list(reply)
    assert caught.value.status_code == 400
    assert caught.value.code == "context_length_exceeded"
    after = client.chat.completions.create(model=served.model_id, messages=MESSAGES, max_tokens=3)
    assert after.usage.completion_tokens >= 1


def test_half_a_character_in_the_json_is_answered_not_a_500(served):
    """A JSON escape of a lone surrogate, half an emoji ("\\ud83d"), decodes to text no UTF-8 encoder takes; it
    reaches the model as U+FFFD, as a browser shows it (a 500 from the tokenizer until session 69)."""
    body = (b'{"model": "' + served.model_id.encode() + b'", "max_tokens": 3, '
            b'"messages": [{"role": "user", "content": "hi \\ud83d there"}]}')
    request = urllib.request.Request(
        served.base_url + "/chat/completions", data=body, headers={"Content-Type": "application/json", "Authorization": f"Bearer {KEY}"}
    )
    with urllib.request.urlopen(request, timeout=60) as answer:
        reply = json.loads(answer.read())
    assert reply["usage"]["completion_tokens"] >= 1
    same = [{"role": "user", "content": "hi \ufffd there"}]
    assert reply["usage"]["prompt_tokens"] == _templated_prompt_tokens(served, same)


def test_content_given_as_text_parts_is_the_same_prompt(served):
    """OpenAI's list-of-parts form of a message, which many clients send for plain text, reaches the template as the
    parts' text joined by newlines (Qwen2.5's template failed on the list until session 69); a part that is not text
    is a 400 naming it."""
    client = served.client(KEY)
    text = [{"role": "user", "content": "Say hello\nto me"}]
    parts = [{"role": "user", "content": [{"type": "text", "text": "Say hello"}, {"type": "text", "text": "to me"}]}]
    reply = client.chat.completions.create(model=served.model_id, messages=parts, max_tokens=3)
    assert reply.usage.prompt_tokens == _templated_prompt_tokens(served, text)
    image = [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "http://127.0.0.1:9/cat.png"}}]}]
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(model=served.model_id, messages=image, max_tokens=3)
    assert caught.value.body["message"] == ("messages[0].content: a part of type 'image_url' is not text; this "
                                            "server's model reads text only")


def test_more_than_one_choice_is_a_400_not_fewer_choices(served):
    """Both engines generate one choice a request; asked for `n` = 3 they answered one until session 69."""
    client = served.client(KEY)
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(model=served.model_id, messages=MESSAGES, max_tokens=2, n=3)
    assert caught.value.body["param"] == "n"
    assert len(client.chat.completions.create(model=served.model_id, messages=MESSAGES, max_tokens=2, n=1).choices) == 1


def test_unknown_model_is_a_404(served):
    with pytest.raises(openai.NotFoundError) as caught:
        served.client(KEY).chat.completions.create(model="gpt-4o", messages=MESSAGES, max_tokens=2)
    assert caught.value.code == "model_not_found"


@pytest.mark.parametrize(
    "body",
    [b"{not json", b"[1, 2]", json.dumps({"messages": "not a list"}).encode()],
    ids=["not-json", "not-an-object", "bad-field"],
)
def test_malformed_request_is_a_400_with_an_error_body(served, body):
    request = urllib.request.Request(
        served.base_url + "/chat/completions", data=body, headers={"Content-Type": "application/json", "Authorization": f"Bearer {KEY}"}
    )
    with pytest.raises(urllib.error.HTTPError) as caught:
        urllib.request.urlopen(request, timeout=60)
    assert caught.value.code == 400
    assert json.loads(caught.value.read())["error"]["type"] == "invalid_request_error"
    assert served.client(KEY).models.list().data


@pytest.mark.parametrize("backend", ["llama.cpp", "mlx"])
def test_sigterm_finishes_the_request_in_flight_and_exits_0(backend, model_cache):
    if backend == "mlx":
        pytest.importorskip("mlx_lm")
    server = start(_model(backend, model_cache), "--api-key", KEY)
    server.backend, server.model_path = backend, _model(backend, model_cache)
    try:
        stream = server.client(KEY).chat.completions.create(
            model=server.model_id, messages=MESSAGES, max_tokens=64, stream=True, extra_body=_no_eos(server)
        )
        finish = []
        for n, chunk in enumerate(stream):
            if n == 2:
                server.proc.send_signal(signal.SIGTERM)
            if chunk.choices and chunk.choices[0].finish_reason:
                finish.append(chunk.choices[0].finish_reason)
        assert finish == ["length"]  # the reply ran to its end after the signal
        assert server.proc.wait(60) == 0
        with pytest.raises(openai.APIConnectionError):
            server.client(KEY).models.list()
    finally:
        server.stop()
    assert KEY not in server.stderr


def test_sigint_exits_0(model_cache):
    server = start(_model("llama.cpp", model_cache))
    server.client().models.list()
    server.proc.send_signal(signal.SIGINT)
    assert server.proc.wait(60) == 0


def test_serves_the_planned_model_pulled_from_the_hub(request, tmp_path):
    """No --model: detect -> plan -> pull from the (fake) hub -> serve, with the published file's name as id."""
    from fakehub import FakeHub
    from run_helpers import tiny_model

    from qwenctl.hardware import detect
    from qwenctl.plan import Constraints, plan

    chosen = plan(detect(), Constraints(size="0.5B", quant="q4_k_m", n_ctx=2048)).chosen
    with FakeHub({chosen.repo: {name: tiny_model(request.config) for name in chosen.files}}) as hub:
        env = {"HF_HUB_OFFLINE": "0", "HF_ENDPOINT": hub.url, "HF_HOME": str(tmp_path / "hf"),
               "XDG_DATA_HOME": str(tmp_path / "data"), "HF_HUB_DISABLE_TELEMETRY": "1"}
        server = start_planned("--size", "0.5B", "--quant", "q4_k_m", "--ctx", "2048", "--yes", env=env)
        try:
            assert server.model_id == "qwen2.5-0.5b-instruct-q4_k_m"
            assert [m.id for m in server.client().models.list().data] == [server.model_id]
            reply = server.client().chat.completions.create(
                model=server.model_id, messages=[{"role": "user", "content": "hi"}], max_tokens=4)
            assert reply.choices[0].finish_reason in ("stop", "length")
        finally:
            assert server.stop() == 0


def test_serves_repo_colon_file_pulled_from_the_hub(request, tmp_path):
    """`--model REPO:FILE.gguf` is a repo, as `run` reads it (names.looks_like_path), not a missing file:
    pulled from the (fake) hub, verified, served under the published file's name."""
    from fakehub import FakeHub
    from run_helpers import tiny_model

    repo, name = "Qwen/Qwen2.5-0.5B-Instruct-GGUF", "qwen2.5-0.5b-instruct-q4_k_m.gguf"
    with FakeHub({repo: {name: tiny_model(request.config)}}) as hub:
        env = {"HF_HUB_OFFLINE": "0", "HF_ENDPOINT": hub.url, "HF_HOME": str(tmp_path / "hf"),
               "XDG_DATA_HOME": str(tmp_path / "data"), "HF_HUB_DISABLE_TELEMETRY": "1"}
        server = start_planned("--model", f"{repo}:{name}", "--ctx", "512", "--yes", env=env)
        try:
            assert server.model_id == "qwen2.5-0.5b-instruct-q4_k_m"
            assert server.info["model_path"].startswith(str(tmp_path / "hf" / "hub" / "models--Qwen--Qwen2.5-0.5B-Instruct-GGUF"))
            reply = server.client().chat.completions.create(
                model=server.model_id, messages=[{"role": "user", "content": "hi"}], max_tokens=4)
            assert reply.choices[0].finish_reason in ("stop", "length")
        finally:
            assert server.stop() == 0
        assert hub.bytes_sent[f"{repo}/{name}"] == tiny_model(request.config).stat().st_size
