"""A model a running `qwenctl serve` holds, chatted with over its OpenAI API (the resident model).

`run` uses it instead of loading the same model a second time (qwenctl.resident finds the server).
Replies stream from ``/v1/chat/completions``; fitting the conversation to the context needs token
counts, so the model's own vocabulary and chat template are read from the same GGUF on this machine
(llama.cpp's ``vocab_only``: no weights, a fraction of a second), which counts exactly as the server will.
Only what a chat needs is offered: ``bench`` measures an engine it loads itself.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from qwenctl.backends import ChatTemplateSession, GenerationEvent, MemoryUse, SamplingOptions
from qwenctl.errors import ExitCode, QwenctlError

if TYPE_CHECKING:
    from qwenctl.resident import Resident


class RemoteSession(ChatTemplateSession):
    """The Session protocol's chat half, over HTTP to a resident server."""

    def __init__(self, server: Resident, api_key: str | None = None, timeout: float = 600.0):
        from qwenctl.backends.llamacpp import _import_llama_cpp, chat_formatter

        llama_cpp = _import_llama_cpp()
        self.server = server
        self.api_key = api_key
        self.timeout = timeout
        self.backend = f"{server.backend} (qwenctl serve, pid {server.pid})"
        self.n_ctx = server.n_ctx
        self.n_gpu_layers = 0
        self.n_threads: int | None = None  # the server's own
        self.notes: tuple[str, ...] = ()
        started = time.perf_counter()
        self.vocab = llama_cpp.Llama(str(Path(server.model_path)), vocab_only=True, verbose=False)
        self.n_vocab = self.vocab.n_vocab()
        self._format = chat_formatter(self.vocab, server.model_path)
        self.load_seconds = time.perf_counter() - started

    def tokenize(self, text: str) -> list[int]:
        return self.vocab.tokenize(text.encode("utf-8"), add_bos=False, special=False)

    def chat_prompt(self, messages: Sequence[dict]) -> list[int]:
        prompt = self._format(messages=list(messages)).prompt
        return self.vocab.tokenize(prompt.encode("utf-8"), add_bos=False, special=True)

    def chat(self, messages: Sequence[dict], sampling: SamplingOptions) -> Iterator[GenerationEvent]:
        prompt_tokens = self.count_chat_tokens(messages)
        body = {
            "model": self.server.model_id,
            "messages": list(messages),
            "stream": True,
            "stream_options": {"include_usage": True},
            "temperature": sampling.temperature,
            "top_p": sampling.top_p,
            "top_k": sampling.top_k,
            "repeat_penalty": sampling.repeat_penalty,
            **({"max_tokens": sampling.max_tokens} if sampling.max_tokens is not None else {}),  # else: the room left
            **({"seed": sampling.seed} if sampling.seed is not None else {}),
        }
        return self._stream(body, prompt_tokens)

    def _stream(self, body: dict, prompt_tokens: int) -> Iterator[GenerationEvent]:
        headers = {"Content-Type": "application/json", "Accept": "text/event-stream"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        request = urllib.request.Request(f"{self.server.url}/chat/completions", data=json.dumps(body).encode(),
                                         headers=headers, method="POST")
        sent = time.perf_counter()
        first: float | None = None
        generated = 0
        try:
            response = urllib.request.urlopen(request, timeout=self.timeout)
        except urllib.error.HTTPError as e:
            raise QwenctlError(f"the server at {self.server.url} answered {e.code}: {_message(e)}", code=ExitCode.BACKEND) from None
        except (urllib.error.URLError, OSError) as e:
            raise QwenctlError(f"the server at {self.server.url} did not answer: {getattr(e, 'reason', e)}",
                               hint="is it still running? `qwenctl ps`", code=ExitCode.BACKEND) from None
        usage: dict = {}
        reason = None
        with response:
            for raw in response:
                line = raw.decode("utf-8", "replace").strip()
                if not line.startswith("data:"):
                    continue
                data = line[len("data:"):].strip()
                if data == "[DONE]":
                    break
                chunk = json.loads(data)
                usage = chunk.get("usage") or usage  # the last chunk, with stream_options.include_usage
                for choice in chunk.get("choices") or ():
                    text = (choice.get("delta") or {}).get("content") or ""
                    if text:
                        generated += 1  # a chunk a token on llama_cpp.server; the usage chunk corrects it
                        first = first or time.perf_counter()
                        yield self._event(text, prompt_tokens, generated, sent, first, None)
                    reason = choice.get("finish_reason") or reason
        if reason is None:
            raise QwenctlError(f"the server at {self.server.url} ended the reply without a finish reason",
                               hint="its log says why; `qwenctl ps` shows whether it still runs", code=ExitCode.BACKEND)
        yield self._event("", usage.get("prompt_tokens", prompt_tokens), usage.get("completion_tokens", generated),
                          sent, first, "length" if reason == "length" else "stop")

    @staticmethod
    def _event(text: str, prompt_tokens: int, generated: int, sent: float, first: float | None,
               reason: str | None) -> GenerationEvent:
        now = time.perf_counter()
        return GenerationEvent(text, prompt_tokens, generated, (first or now) - sent, now - (first or now), reason)

    def generate(self, prompt: list[int], sampling: SamplingOptions) -> Iterator[GenerationEvent]:
        raise QwenctlError("a resident model answers chats only", hint="run without the server for raw prompts",
                           code=ExitCode.BACKEND)

    def reset(self) -> None:
        pass

    def prefill(self, tokens: Sequence[int]) -> None:
        raise QwenctlError("bench loads its own engine; a resident model cannot be benchmarked", code=ExitCode.BACKEND)

    def decode_one(self, token: int) -> None:
        self.prefill(())

    def memory(self) -> MemoryUse:
        import psutil

        try:
            rss = psutil.Process(self.server.pid).memory_info().rss
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            rss = 0
        return MemoryUse(host_rss_bytes=rss, gpu_bytes=self.server.gpu_bytes)

    def close(self) -> None:
        self.vocab.close()


def _message(e: urllib.error.HTTPError) -> str:
    try:
        doc = json.loads(e.read().decode("utf-8", "replace"))
        return str(doc.get("error", {}).get("message") or doc)
    except (ValueError, AttributeError, OSError):
        return e.reason
