"""serve as a daily tool (issue 16, friction 9 and "serve"): every malformed body a 400 in OpenAI's shape,
unsupported endpoints 501, /health, stream_options.include_usage, the served id never a path, owned_by
qwenctl; and the resident model: `qwenctl ps` lists the server, `run` of the same model chats through it."""

from __future__ import annotations

import json
import shutil
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pexpect
import pytest
from daily_helpers import cli_env, qwenctl
from run_helpers import tiny_model
from serve_helpers import start

from qwenctl.testing.ollama_store import make_store


@pytest.fixture(scope="module")
def tiny(request) -> Path:
    return tiny_model(request.config)


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    return cli_env(tmp_path_factory.mktemp("resident"))


@pytest.fixture(scope="module")
def server(tiny, env):
    s = start(tiny, "--ctx", "512", env=env)
    yield s
    s.stop()


@pytest.fixture(scope="module", params=["llama.cpp", "mlx"])
def either(request, server, tmp_path_factory):
    """The llama.cpp server above, or one of mlx-lm's on the tiny MLX folder: both answer alike."""
    if request.param == "llama.cpp":
        yield server
        return
    pytest.importorskip("mlx_lm")
    from run_helpers import model_cache

    from qwenctl.testing import models

    folder = models.tiny_mlx(model_cache(request.config))
    s = start(folder, "--ctx", "512", env=cli_env(tmp_path_factory.mktemp("mlx")))
    yield s
    s.stop()


def call(server, method: str, path: str, body: bytes | None = None) -> tuple[int, dict | str]:
    url = server.base_url.removesuffix("/v1") + path
    request = urllib.request.Request(url, data=body, method=method, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=60) as r:
            status, text = r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        status, text = e.code, e.read().decode()
    try:
        return status, json.loads(text)
    except ValueError:
        return status, text


HI = {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 2}
# fields of the wrong shape; each once ended worse than a 400: mlx_lm's generation thread died on a `stop` that is
# not text (every later request failed), llama.cpp asserted on a bias for no token (the server ended), a seed out of
# range or stream_options that is no object were 500s or dropped connections
BAD_FIELDS = [
    ("/v1/chat/completions", HI, {"stop": 5}),
    ("/v1/chat/completions", HI, {"stop": [5]}),
    ("/v1/chat/completions", HI, {"logit_bias": {"99999999": 5}}),
    ("/v1/chat/completions", HI, {"logit_bias": {"-5": 5}}),
    ("/v1/chat/completions", HI, {"logit_bias": {"abc": 5}}),
    ("/v1/chat/completions", HI, {"logit_bias": {"5": "x"}}),
    ("/v1/chat/completions", HI, {"seed": -5}),
    ("/v1/chat/completions", HI, {"seed": 2**70}),
    ("/v1/chat/completions", HI, {"stream": True, "stream_options": "x"}),
    ("/v1/chat/completions", {"max_tokens": 2}, {"messages": [{"content": "hi"}]}),
    ("/v1/completions", {"max_tokens": 2}, {"prompt": 5}),
    ("/v1/completions", {"max_tokens": 2}, {"prompt": ""}),
    ("/v1/completions", {"max_tokens": 2}, {"prompt": ["a", "b"]}),
    ("/v1/chat/completions", HI, {"logprobs": True, "top_logprobs": True}),
    ("/v1/chat/completions", {"messages": HI["messages"]}, {"max_completion_tokens": "x"}),
    ("/v1/chat/completions", HI, {"repetition_penalty": "x"}),
    ("/v1/chat/completions", HI, {"repetition_penalty": -1}),
]


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "code"),
    [
        ("POST", "/v1/chat/completions", b"{}", 400, "missing_required_parameter"),
        ("POST", "/v1/chat/completions", b'{"messages": []}', 400, "invalid_value"),
        ("POST", "/v1/chat/completions", b'{"messages": "hi"}', 400, "invalid_value"),
        ("POST", "/v1/chat/completions", b"[1, 2]", 400, None),
        ("POST", "/v1/chat/completions", b"{not json", 400, None),
        ("POST", "/v1/completions", b'{"max_tokens": 3}', 400, "missing_required_parameter"),
        ("POST", "/v1/chat/completions", b'{"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]}', 404,
         "model_not_found"),
        ("GET", "/v1/chat/completions", None, 405, "method_not_allowed"),
        ("POST", "/v1/embeddings", b'{"input": "hi"}', 501, "unsupported_endpoint"),
        ("GET", "/v1/embeddings", None, 501, "unsupported_endpoint"),
        ("POST", "/v1/audio/speech", b"{}", 501, "unsupported_endpoint"),
        ("POST", "/v1/responses", b"{}", 501, "unsupported_endpoint"),
        ("GET", "/docs", None, 404, "not_found"),
        *[("POST", path, json.dumps({**ask, **field}).encode(), 400, "invalid_value") for path, ask, field in BAD_FIELDS],
    ],
    ids=["no-messages", "empty-messages", "messages-not-a-list", "not-an-object", "not-json", "no-prompt",
         "other-model", "wrong-method", "embeddings", "embeddings-get", "audio", "responses", "unknown",
         *[next(iter(field)) + "-" + str(next(iter(field.values())))[:12] for _, _, field in BAD_FIELDS]],
)
def test_every_mistake_gets_an_openai_shaped_error(either, method, path, body, status, code):
    got, doc = call(either, method, path, body)
    assert got == status
    assert set(doc) == {"error"} and set(doc["error"]) == {"message", "type", "param", "code"}
    assert doc["error"]["message"] and doc["error"]["code"] == code


def test_health_models_and_the_served_id(either):
    name = either.model_id
    assert "/" not in name
    assert call(either, "GET", "/health") == (200, {"status": "ok", "model": name})
    status, models = call(either, "GET", "/v1/models")
    assert status == 200 and [(m["id"], m["owned_by"]) for m in models["data"]] == [(name, "qwenctl")]
    assert call(either, "GET", f"/v1/models/{name}")[1]["owned_by"] == "qwenctl"
    status, reply = call(either, "POST", "/v1/chat/completions",
                         json.dumps({"messages": [{"role": "user", "content": "hi"}], "max_tokens": 3}).encode())
    assert status == 200 and reply["model"] == name  # no model in the request: the id, never the path
    status, reply = call(either, "POST", "/v1/chat/completions", json.dumps({**HI, "logprobs": True}).encode())
    assert status == 200 and reply["model"] == name  # llama_cpp.server's own path (logprobs) too


def test_the_engine_generates_on_after_every_wrong_field(either):
    for path, ask, field in BAD_FIELDS:
        assert call(either, "POST", path, json.dumps({**ask, **field}).encode())[0] == 400
    # what the fields mean at their edges is served: a top_k of the whole vocabulary or more (mlx_lm's sampler
    # refuses it in its generation thread) is no limit, a seed of -1 llama.cpp's "random", and mlx_lm's penalty
    # window of more tokens than the context holds (it died on 2**31) the whole context
    status, reply = call(either, "POST", "/v1/chat/completions",
                         json.dumps({**HI, "top_k": 10**9, "seed": -1, "repetition_context_size": 10**12}).encode())
    assert status == 200 and reply["usage"]["completion_tokens"] >= 1
    # null is "the default", on llama_cpp.server's path (logprobs) too, where it reached llama.cpp's C API (a 500)
    status, reply = call(either, "POST", "/v1/chat/completions",
                         json.dumps({**HI, "logprobs": True, "frequency_penalty": None, "stop": None}).encode())
    assert status == 200 and reply["usage"]["completion_tokens"] >= 1
    # OpenAI's list form of one prompt (mlx_lm's generation thread died on any list; llama_cpp.server asserted on two)
    status, reply = call(either, "POST", "/v1/completions", json.dumps({"prompt": ["hi"], "max_tokens": 2}).encode())
    assert status == 200 and reply["usage"]["prompt_tokens"] >= 1
    assert call(either, "GET", "/health")[0] == 200


NO_VALUE = {"type": "json_object", "schema": {"enum": []}}  # a JSON schema no value meets: llama-cpp-python's GBNF does not parse


@pytest.mark.parametrize(("field", "refused"), [  # refused: the param each engine's 400 names, None where it serves it
    ({"xtc_probability": 0.5, "xtc_threshold": 0.9}, {"mlx": "xtc_threshold", "llama.cpp": None}),
    ({"grammar": "x"}, {"llama.cpp": "grammar", "mlx": "grammar"}),
    ({"grammar": 'a ::= "b"'}, {"llama.cpp": "grammar", "mlx": "grammar"}),
    ({"response_format": NO_VALUE}, {"llama.cpp": "grammar", "mlx": "response_format"}),
    ({"response_format": NO_VALUE, "stream": True}, {"llama.cpp": "grammar", "mlx": "response_format"}),
    ({"response_format": {"type": "json_object"}}, {"llama.cpp": None, "mlx": "response_format"}),
    ({"grammar": 'root ::= "a"'}, {"llama.cpp": None, "mlx": "grammar"}),
], ids=["xtc-threshold", "grammar-no-rule", "grammar-no-root", "schema-no-value", "schema-no-value-streamed",
        "json-mode", "grammar"])
def test_one_engines_fields_that_ended_it_are_a_400(either, field, refused):
    """mlx_lm's sampler refused an xtc_threshold above 0.5 inside its generation thread, which died; llama_cpp.server
    added the NULL that llama.cpp's parser returns for a bad grammar (given, or made from a JSON schema) to its
    sampler chain, and the server crashed at the next token. And mlx_lm, which constrains no output, answered JSON
    mode and a grammar with free text as if it had; llama.cpp honours both."""
    status, doc = call(either, "POST", "/v1/chat/completions", json.dumps({**HI, **field}).encode())
    param = refused[either.info["backend"]]
    if param:
        assert status == 400 and doc["error"]["param"] == param, doc
    else:
        assert status == 200
    assert call(either, "GET", "/health")[0] == 200


def test_stream_options_include_usage(server):
    stream = server.client().chat.completions.create(
        model=server.model_id, messages=[{"role": "user", "content": "hi"}], max_tokens=4, stream=True,
        stream_options={"include_usage": True})
    chunks = list(stream)
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens == 4 and chunks[-1].usage.prompt_tokens > 0
    plain = server.client().chat.completions.create(
        model=server.model_id, messages=[{"role": "user", "content": "hi"}], max_tokens=4, stream=True)
    assert all(c.usage is None for c in plain)


def test_ps_lists_the_server_and_run_chats_through_it(server, tiny, env):
    listed = json.loads(qwenctl("ps", "--json", env=env).stdout)
    (entry,) = listed["servers"]
    assert entry["server"]["url"] == server.base_url and entry["server"]["model_path"] == str(tiny.resolve())
    assert entry["server"]["pid"] == server.proc.pid and entry["host_rss_bytes"] > 0 and entry["uptime_seconds"] >= 0
    table = qwenctl("ps", env=env).stdout.splitlines()
    assert table[0].split() == ["pid", "url", "memory", "context", "up", "model"]
    assert table[1].startswith(f"{server.proc.pid}  {server.base_url}") and table[1].endswith(f"{tiny.stem} ({tiny.resolve()})")

    done = qwenctl("run", str(tiny), "--ctx", "512", "-p", "hello", "-n", "5", "--seed", "1", "--json", env=env)
    assert done.returncode == 0, done.stderr
    assert f"using the running qwenctl serve of {tiny.name} at {server.base_url} (pid {server.proc.pid})" in done.stderr
    assert "loading" not in done.stderr  # no second copy in this process
    reply = json.loads(done.stdout)["reply"]
    assert (reply["generated_tokens"], reply["finish_reason"]) == (5, "length") and reply["text"]
    local = qwenctl("run", str(tiny), "--ctx", "512", "-p", "hello", "-n", "5", "--no-server", "-q", "--seed", "1", env=env)
    assert local.returncode == 0 and local.stdout.strip()

    # a chat through the server, in a terminal: the context is counted with the model's own vocabulary here
    child = pexpect.spawn(sys.executable, ["-m", "qwenctl", "run", str(tiny)], env={**env, "TERM": "xterm"},
                          encoding="utf-8", timeout=120, dimensions=(50, 200))
    child.expect_exact("using the running qwenctl serve")
    child.expect_exact(">>> ")
    child.sendline("/set max_tokens 6")
    child.expect_exact(">>> ")
    child.sendline("hello there")
    child.expect_exact(">>> ")
    child.sendline("/stats")
    # random weights may end a reply early: the limit holds either way, and an early end says "stop"
    child.expect(r"last reply: (\d+) tokens?, .*?\), (\w+)")
    generated, finish = int(child.match.group(1)), child.match.group(2)
    assert (generated, finish) == (6, "length") or (generated < 6 and finish == "stop")
    child.expect_exact("context: ")
    child.expect_exact("of 512 tokens")
    child.sendline("/show info")
    child.expect_exact(f"llama.cpp in the running qwenctl serve at {server.base_url} (pid {server.proc.pid})")
    child.sendline("/bye")
    child.expect(pexpect.EOF)


def test_an_ollama_model_is_served_under_its_own_name(tiny, tmp_path):
    env = cli_env(tmp_path)
    make_store(Path(env["OLLAMA_MODELS"]), "qwen2.5:0.5b", tiny)
    s = start_named("ollama:qwen2.5:0.5b", env)
    try:
        assert s.model_id == "qwen2.5:0.5b"
        assert call(s, "GET", "/health")[1]["model"] == "qwen2.5:0.5b"
    finally:
        s.stop()


def start_named(model: str, env):
    from serve_helpers import start_planned

    return start_planned(model, "--ctx", "512", env=env)


def test_a_stopped_server_leaves_ps(tiny, tmp_path):
    env = cli_env(tmp_path)
    shutil.copyfile(tiny, tmp_path / "m.gguf")
    s = start(tmp_path / "m.gguf", "--ctx", "512", env=env)
    assert len(json.loads(qwenctl("ps", "--json", env=env).stdout)["servers"]) == 1
    s.stop()
    assert json.loads(qwenctl("ps", "--json", env=env).stdout)["servers"] == []
    assert qwenctl("ps", env=env).stdout == "no qwenctl server is running (`qwenctl serve` starts one)\n"


def test_serve_loads_with_the_threads_run_uses(server, tiny, env):
    """Issue 16: `serve --model PATH` used half the threads `run` uses; both take machine.threads now."""
    done = qwenctl("run", str(tiny), "--ctx", "512", "--no-chat", "--no-server", "--no-smoke-test", "--json", env=env)
    assert json.loads(done.stdout)["load_options"]["n_threads"] == server.info["n_threads"]
