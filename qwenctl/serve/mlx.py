"""MLX folders: mlx_lm.server's ModelProvider, ResponseGenerator and APIHandler, in this process.

``mlx_lm.server.run`` binds by itself and handles only KeyboardInterrupt, so it cannot take the port
bound before loading, report readiness or drain on SIGTERM: the server loop here does. The handler
subclass adds qwenctl's key, model id, sampling defaults and the plan's context limit (mlx-lm has none).
"""

from __future__ import annotations

import json
import signal
import socket
import threading
from collections.abc import Callable
from typing import Any

from qwenctl.errors import ExitCode, QwenctlError
from qwenctl.serve import ServeOptions, ServerInfo, ServeTarget, server_info
from qwenctl.serve import stop as serve_stop
from qwenctl.serve.openai import (
    HEALTH_PATH,
    authorized,
    error_body,
    fill_request,
    plain_text,
    request_error,
    route,
    text_parts_joined,
    unauthorized,
    vocab_error,
    well_formed_json,
)


def cli_args(target: ServeTarget, options: ServeOptions) -> Any:
    """Every setting mlx_lm.server's ModelProvider and ResponseGenerator read (``cli_args.<name>``), with
    its CLI defaults (mlx_lm.server.main) except where the plan or Qwen says otherwise. A test checks the
    names against mlx_lm/server.py, so an mlx-lm upgrade fails a test, not a request."""
    import argparse

    from mlx_lm.generate import DEFAULT_QUANTIZED_KV_START

    parallel = options.parallel
    return argparse.Namespace(
        model=str(target.model_path),
        adapter_path=None,
        draft_model=None,
        num_draft_tokens=3,
        trust_remote_code=False,
        chat_template="",
        use_default_chat_template=False,
        chat_template_args={},
        allowed_origins=["*"],
        temp=options.sampling.temperature,
        top_p=options.sampling.top_p,
        top_k=options.sampling.top_k,
        min_p=0.0,
        max_tokens=512,
        decode_concurrency=parallel or 32,
        prompt_concurrency=min(parallel or 8, 8),
        prefill_step_size=2048,
        prompt_cache_size=10,
        prompt_cache_bytes=None,
        kv_bits=None,
        kv_group_size=64,
        quantized_kv_start=DEFAULT_QUANTIZED_KV_START,
        pipeline=False,
    )


def serve(target: ServeTarget, options: ServeOptions, sock: socket.socket, on_ready: Callable[[ServerInfo], None]) -> None:
    """Load the MLX folder into mlx_lm.server's provider and answer through its handler until a stop signal; then the process exits."""
    from http.server import ThreadingHTTPServer

    from mlx_lm import server as mlx_server
    from mlx_lm.utils import maybe_set_recommended_wired_limit

    args = cli_args(target, options)
    model_id = target.model_id

    class Provider(mlx_server.ModelProvider):
        """Knows the served model by its id too (mlx_lm maps only "default_model" to --model)."""

        def load(self, model_path, adapter_path=None, draft_model_path=None):
            if model_path == model_id:
                model_path = "default_model"
            return super().load(model_path, adapter_path, draft_model_path)

    provider = Provider(args)
    maybe_set_recommended_wired_limit()
    try:
        provider.load_default()
    except Exception as e:  # noqa: BLE001 - transformers/mlx raise many types for a bad folder
        raise QwenctlError(f"mlx-lm could not load {target.model_path}: {e}", code=ExitCode.BACKEND) from e
    from mlx_lm.models.cache import LRUPromptCache

    generator = mlx_server.ResponseGenerator(provider, LRUPromptCache(args.prompt_cache_size))
    handler_class = _mlx_handler_class(mlx_server.APIHandler, provider, model_id, options, target.load.n_ctx)

    class HTTPServer(ThreadingHTTPServer):
        daemon_threads = False  # server_close() then waits for requests in flight
        block_on_close = True

        def server_bind(self):  # the socket is already bound and listening
            self.server_address = self.socket.getsockname()
            self.server_name, self.server_port = self.server_address[:2]

        def server_activate(self):
            pass

    httpd = HTTPServer(
        sock.getsockname(),
        lambda *a, **kw: handler_class(generator, *a, **kw),
        bind_and_activate=False,
    )
    httpd.socket.close()
    httpd.socket = sock
    httpd.server_bind()

    stop = threading.Event()
    previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGINT, signal.SIGTERM)}
    loop = threading.Thread(target=httpd.serve_forever, name="qwenctl-serve", daemon=True)
    try:
        on_ready(server_info(target, options, sock.getsockname()[1], args.decode_concurrency))
        loop.start()
        while not stop.wait(0.5):
            pass
        serve_stop.start_watchdog(options.drain_s)  # server_close() below waits for requests: not forever
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if loop.is_alive():
            httpd.shutdown()  # stop accepting
        httpd.server_close()  # wait for requests in flight
        generator.stop_and_join()
    # mlx 0.32.4 (CPU, Linux) aborts in a C++ destructor at interpreter exit once its server has
    # generated anything ("terminate called without an active exception", exit 134; plain
    # `mlx_lm server` + Ctrl-C does the same). Everything is drained and closed by now, so the
    # process leaves without running those destructors.
    _exit_now()


def _exit_now() -> None:
    import os
    import sys

    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


def _mlx_handler_class(base, provider, model_id: str, options: ServeOptions, n_ctx: int):
    import time

    started = int(time.time())

    class Handler(base):
        """mlx_lm.server's handler with qwenctl's key, model id, sampling defaults and context limit."""

        created = started  # what /v1/models says (the handler is made anew for every request)

        def log_message(self, format, *args):  # noqa: A002 - the stdlib's signature
            if options.verbose:
                super().log_message(format, *args)

        def _reply(self, status: int, body: dict) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _authorized(self) -> bool:
            if options.api_key and not authorized(self.headers.get("Authorization"), options.api_key):
                self._reply(401, unauthorized())
                return False
            return True

        def _routed(self, method: str) -> bool:
            """qwenctl's answer where it has one (serve/openai.route: /health, /v1/models, 501s, 404s)."""
            if self.path.split("?")[0] != HEALTH_PATH and not self._authorized():
                return True
            # mlx_lm lists every MLX model in the Hugging Face cache; this server serves one
            answer = route(method, self.path, model_id, self.created, self._broken())
            if answer is not None:
                self._reply(*answer)
            return answer is not None

        def _broken(self) -> str | None:
            """Why this server can generate no more: mlx_lm's generation thread ended on an error, and answers every
            later request with a 404 "generation thread died" while the process lives on."""
            if self.response_generator.generation_available():
                return None
            return "mlx_lm's generation thread ended on an error (the server's log has it): restart the server"

        def do_GET(self):
            self._routed("GET")

        def do_DELETE(self):
            self._routed("DELETE")

        def do_PUT(self):
            self._routed("PUT")

        def do_POST(self):
            if self._routed("POST"):
                return
            broken = self._broken()
            if broken:
                return self._reply(503, error_body(broken, "service_unavailable"))
            import io

            try:
                length = int(self.headers.get("Content-Length", ""))
                doc = well_formed_json(json.loads(self.rfile.read(length)))
            except ValueError as e:
                return self._reply(400, error_body(f"invalid JSON body: {e}", "invalid_request_error"))
            if not isinstance(doc, dict):
                return self._reply(400, error_body("the body must be a JSON object", "invalid_request_error"))
            error = request_error(doc, self.path) or text_parts_joined(doc)
            if error:
                return self._reply(400, error)
            error = fill_request(doc, model_id, options.sampling, "repetition_penalty")
            if error:
                return self._reply(404, error)
            error = vocab_error(doc, provider.model.args.vocab_size)
            if error:
                return self._reply(400, error)
            for key in ("adapters", "draft_model"):
                if doc.get(key) is not None:  # both make mlx_lm load other weights from disk or the Hub
                    return self._reply(400, error_body(f"`{key}` is not supported by this server", "invalid_request_error", None, key))
            for key, free in (("response_format", plain_text(doc.get("response_format"))), ("grammar", not doc.get("grammar"))):
                if not free:  # mlx_lm does not constrain its output, and would answer with free text as if it had
                    return self._reply(400, error_body(
                        f"`{key}` is not supported on MLX: mlx_lm generates free text (serve a GGUF model, whose llama.cpp "
                        "constrains output to JSON or a grammar)", "invalid_request_error", "unsupported_value", key))
            threshold = doc.get("xtc_threshold")
            if isinstance(threshold, (int, float)) and not 0 <= threshold <= 0.5:
                # mlx_lm's handler allows up to 1; its sampler refuses more than 0.5 inside the generation thread
                return self._reply(400, error_body(f"`xtc_threshold` must be from 0 to 0.5 (got {threshold!r})",
                                                   "invalid_request_error", "invalid_value", "xtc_threshold"))
            error = self._fit_context(doc)
            if error:
                return self._reply(400, error)
            raw = json.dumps(doc).encode()
            del self.headers["Content-Length"]
            self.headers["Content-Length"] = str(len(raw))
            self.rfile = io.BytesIO(raw)
            return super().do_POST()

        def _fit_context(self, doc: dict) -> dict | None:
            """Refuse prompts that do not fit the planned context, and those mlx_lm's generation thread dies on (an
            empty one, a list); cap max_tokens at what is left, and the penalties' windows at the context (a window of
            2**31 tokens or more, which no context holds, ended the generation thread too).

            mlx-lm grows its KV cache without a limit, so the plan's n_ctx (which its memory
            estimate assumed) is enforced here, with llama.cpp's rule: prompt tokens < n_ctx.
            """
            tokenizer = provider.tokenizer
            try:
                if "messages" in doc:
                    prompt = tokenizer.apply_chat_template(doc["messages"], add_generation_prompt=True, tokenize=True)
                    if isinstance(prompt, dict):  # transformers 5 returns a BatchEncoding
                        prompt = prompt["input_ids"]
                elif isinstance(doc.get("prompt"), str):
                    prompt = tokenizer.encode(doc["prompt"])
                else:  # a list of prompts, which mlx_lm's generation thread dies on (as on an empty one)
                    return error_body("`prompt` must be one string on this server", "invalid_request_error",
                                      "invalid_value", "prompt")
            except Exception as e:  # noqa: BLE001 - a malformed messages list fails inside the template
                return error_body(f"could not apply the chat template: {e}", "invalid_request_error", None, "messages")
            n_prompt = len(prompt)
            if not n_prompt:
                return error_body("the prompt is empty", "invalid_request_error", "invalid_value", "prompt")
            if n_prompt >= n_ctx:
                param = "messages" if "messages" in doc else "prompt"
                return error_body(
                    f"This model's maximum context length is {n_ctx} tokens, however you requested {n_prompt} tokens in the {param}.",
                    "invalid_request_error",
                    "context_length_exceeded",
                    param,
                )
            key = "max_completion_tokens" if doc.get("max_completion_tokens") is not None else "max_tokens"
            wanted, left = doc.get(key), n_ctx - n_prompt
            if wanted is None:
                doc[key] = min(512, left)  # 512: mlx_lm.server's default
            elif isinstance(wanted, int) and wanted > left:
                doc[key] = left
            for window in ("repetition_context_size", "presence_context_size", "frequency_context_size"):
                if isinstance(doc.get(window), int) and doc[window] > n_ctx:
                    doc[window] = n_ctx
            return None

    return Handler
