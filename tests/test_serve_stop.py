"""`qwenctl serve` stops even when a model call never ends: the drain has a hard end.

The server runs as a real subprocess on the tiny GGUF, with llama-cpp-python's chat call replaced by
one that never returns (the OS-level stand-in for a model stuck in a C call or emitting partial UTF-8
forever). It gets SIGTERM with a 2-second drain and must exit within drain + 5 s with exit 12
(ExitCode.ABANDONED), one warning line per abandoned request and no traceback in its log.
"""

from __future__ import annotations

import json
import signal
import threading
import time
import urllib.error
import urllib.request

import pytest
from serve_helpers import start_planned

from qwenctl.errors import ExitCode

DRAIN_S = 2
NEVER_ENDING = """
import sys, time
import llama_cpp.llama

def never_ending(self, *args, stream=False, **kwargs):
    print("ENGINE CALL STARTED", file=sys.stderr, flush=True)
    def forever():
        while True:
            time.sleep(0.01)
    if not stream:
        forever()
    def chunks():
        yield {"id": "x", "object": "chat.completion.chunk", "created": 0, "model": "m",
               "choices": [{"index": 0, "delta": {"role": "assistant", "content": "hi"}, "finish_reason": None}]}
        forever()
    return chunks()

llama_cpp.llama.Llama.create_chat_completion = never_ending  # the host-sampling path (llama_cpp.server)

# qwenctl's own generation loop (serve/lean.py) calls llama_decode through the C binding: a decode that never
# returns is the model stuck in a C call. Loading the model decodes nothing, so only requests meet it.
import llama_cpp
_decode = llama_cpp.llama_decode
_calls = []
def never_decoding(ctx, batch):
    _calls.append(1)
    if len(_calls) <= 2:  # the prompt and the first generated token go through: a stream has begun
        return _decode(ctx, batch)
    print("ENGINE CALL STARTED", file=sys.stderr, flush=True)
    while True:
        time.sleep(0.01)
llama_cpp.llama_decode = never_decoding
from qwenctl.cli import main
sys.argv[0] = "qwenctl"
main()
"""


def _wait_for(server, text: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while text not in server.stderr:
        assert server.proc.poll() is None and time.monotonic() < deadline, server.stderr
        time.sleep(0.02)


@pytest.mark.parametrize("stream", [False, True], ids=["reply", "stream"])
def test_sigterm_abandons_a_model_call_that_never_ends(model_cache, stream):
    from qwenctl.testing import models

    server = start_planned("--model", str(models.tiny_gguf(model_cache)), "--drain", str(DRAIN_S),
                           python=("-c", NEVER_ENDING))
    answers: list = []

    def ask() -> None:
        body = json.dumps({"messages": [{"role": "user", "content": "hi"}], "stream": stream}).encode()
        request = urllib.request.Request(f"{server.base_url}/chat/completions", body, {"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=60) as reply:
                answers.append((reply.status, reply.read()))
        except urllib.error.HTTPError as e:
            answers.append((e.code, e.read()))
        except OSError as e:  # the connection closed under the client
            answers.append((None, repr(e)))

    client = threading.Thread(target=ask, daemon=True)
    try:
        client.start()
        _wait_for(server, "ENGINE CALL STARTED")
        signalled = time.monotonic()
        server.proc.send_signal(signal.SIGTERM)
        code = server.proc.wait(DRAIN_S + 5)
        took = time.monotonic() - signalled
    finally:
        server.stop()
    client.join(10)

    assert code == ExitCode.ABANDONED == 12
    assert took >= DRAIN_S, "the drain ran its course first"
    assert "Traceback" not in server.stderr and "CancelledError" not in server.stderr, server.stderr
    assert "stopped POST /v1/chat/completions: still running when the drain ended" in server.stderr
    status, body = answers[0]
    if stream:  # the stream had begun (a role chunk, and the llama_cpp.server stand-in's "hi"): it ends, cut short
        assert status == 200 and b'"delta"' in body and b"[DONE]" not in body
    else:  # nothing was sent yet: an OpenAI-shaped 503
        assert status == 503 and json.loads(body)["error"]["code"] == "shutting_down"
