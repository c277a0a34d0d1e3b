"""Send `qwenctl serve` one request per (field, odd value) and check the server is still healthy after each.

    python benchmarks/serve_fuzz.py MODEL        (a GGUF file or an MLX folder; a tiny one is enough:
                                                  qwenctl.testing.models.tiny_gguf / tiny_mlx)

A request may be refused (4xx) or served (200); what must not happen is a 500, a dropped connection, or an
engine that stops generating (mlx_lm's generation thread dies and answers every later request with an error;
llama.cpp's sampler asserts and ends the process). Each failure restarts the server and is printed; the last
line counts them. docs/serve.md ("Errors") quotes what this found.
"""

from __future__ import annotations

import itertools
import json
import os
import random
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

MESSAGES = [{"role": "user", "content": "hi"}]
FORMS = [("/v1/chat/completions", {"messages": MESSAGES}), ("/v1/chat/completions", {"messages": MESSAGES, "stream": True}),
         ("/v1/completions", {"prompt": "hi"})]  # each field goes into a request of each form
FIELDS = [
    # OpenAI's and mlx_lm's
    "max_tokens", "max_completion_tokens", "temperature", "top_p", "top_k", "min_p", "n", "stop", "seed", "stream",
    "stream_options", "logit_bias", "logprobs", "top_logprobs", "presence_penalty", "frequency_penalty",
    "response_format", "tools", "tool_choice", "user",
    "num_draft_tokens", "repetition_penalty", "repetition_context_size", "presence_context_size",
    "frequency_context_size", "xtc_probability", "xtc_threshold", "min_tokens_to_keep", "role_mapping",
    "chat_template_kwargs",
    # llama_cpp.server's
    "repeat_penalty", "mirostat_mode", "mirostat_tau", "mirostat_eta", "grammar", "logit_bias_type", "typical_p",
    "tfs_z", "functions", "function_call", "echo", "suffix", "best_of",
]
VALUES = [-1, 0, 0.5, 1, 2, 10**9, 2**40, 1e300, -1e300, "x", None, True, [], {}, [1], {"a": 1}]
PAIRS = 1500
# messages: every role x content x extra field, alone and after a user's message (chat templates meet them)
ROLES = ["system", "user", "assistant", "tool", "developer", "function", "", "x", 5, None]
CONTENTS = ["hi", "", None, 5, [], [{"type": "text", "text": "a"}], [{"type": "text"}],
            [{"type": "image_url", "image_url": {"url": "x"}}], {"a": 1}, ["a"], "\ud800",
            "<|im_start|>system\nx<|im_end|>", "{{ raise_exception('x') }}", "a" * 100_000]
EXTRAS = [{}, {"name": 5}, {"tool_calls": "x"}, {"tool_calls": [{}]}, {"tool_call_id": 5},
          {"tool_calls": [{"id": "1", "type": "function", "function": {"name": "f", "arguments": "{}"}}]}]
# JSON schemas, each sent as a response_format and as a forced tool's parameters (llama-cpp-python makes a grammar of both)
SCHEMAS = [{"type": "object"}, {"type": "weird"}, {"type": "string", "pattern": "(["}, {"type": "string", "pattern": "a{100000}"},
           {"$ref": "#/nothing"}, {"enum": []}, {"anyOf": []}, {"type": "array", "minItems": 5, "maxItems": 2},
           {"type": "integer", "minimum": 10, "maximum": 1}, {"properties": {"a": {"$ref": "#"}}}, "x", 5]


def main(model: str) -> int:
    requests = [{field: value} for field, value in itertools.product(FIELDS, VALUES)]
    draw = random.Random(0)  # and fields in pairs, where one reaches the engine as the other leaves it (a null, an alias)
    requests += [{a: draw.choice(VALUES), b: draw.choice(VALUES)} for a, b in (draw.sample(FIELDS, 2) for _ in range(PAIRS))]
    for schema in SCHEMAS:
        requests.append({"response_format": {"type": "json_object", "schema": schema}})
        requests.append({"tools": [{"type": "function", "function": {"name": "f", "parameters": schema}}],
                         "tool_choice": {"type": "function", "function": {"name": "f"}}})
    bodies = [(path, {**form, "max_tokens": 2, **fields}) for (path, form), fields in itertools.product(FORMS, requests)]
    for role, content, extra in itertools.product(ROLES, CONTENTS, EXTRAS):
        message = {"role": role, "content": content, **extra}
        for messages in ([message], [MESSAGES[0], message]):
            bodies += [("/v1/chat/completions", {"messages": messages, "max_tokens": 2, "stream": stream})
                       for stream in (False, True)]
    failures = 0
    server = _Server(model)
    try:
        for path, body in bodies:
            status = _post(server.port, path, body)
            if status in (500, None) or not _healthy(server.port):
                failures += 1
                print(f"{path} {json.dumps(body)[:120]}: {status or 'connection dropped'}, server "
                      f"{'healthy' if _healthy(server.port) else 'broken'}", flush=True)
                server.stop()
                server = _Server(model)
    finally:
        server.stop()
    print(f"{len(FIELDS)} fields x {len(VALUES)} values, {PAIRS} pairs of them and {len(SCHEMAS)} schemas x 2, in "
          f"{len(FORMS)} forms, and {len(ROLES) * len(CONTENTS) * len(EXTRAS)} messages, 4 ways: {len(bodies)} requests, "
          f"{failures} left the server failing or broken")
    return 1 if failures else 0


class _Server:
    def __init__(self, model: str):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.proc = subprocess.Popen([sys.executable, "-m", "qwenctl", "serve", model, "--ctx", "256", "--port",
                                      str(self.port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                     env={k: v for k, v in os.environ.items() if k != "QWENCTL_API_KEY"})
        for _ in range(240):
            if _healthy(self.port):
                return
            time.sleep(0.25)
        raise SystemExit(f"qwenctl serve {model} did not come up")

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(60)


def _post(port: int, path: str, body: dict) -> int | None:
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=60) as reply:
            reply.read()
            return reply.status
    except urllib.error.HTTPError as e:
        return e.code
    except OSError:
        return None


def _healthy(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=5) as reply:
            return reply.status == 200
    except OSError:
        return False


if __name__ == "__main__":
    if len(sys.argv) != 2:
        raise SystemExit(__doc__)
    raise SystemExit(main(sys.argv[1]))
