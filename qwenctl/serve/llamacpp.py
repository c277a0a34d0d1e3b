"""GGUF models: llama-cpp-python's FastAPI app (``llama_cpp.server``) under uvicorn, behind qwenctl's layer.

Chat and text completions run on qwenctl's generation loop (lean.py: device sampling, --parallel
sequences in one batch); every other route, and a request the loop cannot do, is llama_cpp.server's.
The layer (``_OpenAILayer``) checks the key, fills Qwen's defaults, serves one model id, and turns
llama_cpp.server's errors into OpenAI-shaped 4xx bodies, also inside a stream.
"""

from __future__ import annotations

import json
import logging
import socket
from collections.abc import Callable
from dataclasses import replace

from qwenctl.errors import ExitCode, QwenctlError
from qwenctl.serve import ServeOptions, ServerInfo, ServeTarget, server_info
from qwenctl.serve import stop as serve_stop
from qwenctl.serve.openai import (
    HEALTH_PATH,
    SamplingDefaults,
    authorized,
    error_body,
    fill_request,
    request_error,
    route,
    send_json,
    text_parts_joined,
    unauthorized,
    vocab_error,
    well_formed_json,
)

log = logging.getLogger("qwenctl.serve")


def serve(target: ServeTarget, options: ServeOptions, sock: socket.socket, on_ready: Callable[[ServerInfo], None]) -> None:
    """Load the GGUF into llama_cpp.server's app and answer behind the OpenAI layer until a stop signal drains it."""
    import os

    from llama_cpp.server.app import create_app
    from llama_cpp.server.settings import ModelSettings, ServerSettings

    from qwenctl.backends.gguf_check import check_gguf
    from qwenctl.backends.llama_amx import safe_buffers
    from qwenctl.backends.llama_flash import flash_attn_mode
    from qwenctl.backends.llama_params import op_offload
    from qwenctl.backends.llamacpp import can_offload, default_threads, split_arguments

    if os.environ.get("CONFIG_FILE"):
        # create_app would read that file instead of the settings given here
        raise QwenctlError("CONFIG_FILE is set; llama_cpp.server would take its settings from that file",
                           hint="unset CONFIG_FILE", code=ExitCode.USAGE)
    load = target.load
    model_settings = {
        "model": str(target.model_path),
        "model_alias": target.model_id,
        "n_ctx": load.n_ctx,
        "n_batch": load.n_batch,
        "n_gpu_layers": load.n_gpu_layers,
        "flash_attn": bool(load.flash_attn),  # None (auto) is set at load by llama_flash.flash_attn_mode
        "seed": load.seed,
        "chat_format": None,  # None: the chat template stored in the GGUF
        "verbose": options.verbose,
        **_kv_cache_types(load.kv_cache_type),
        **split_arguments(load),  # the planned split mode, shares and main GPU
    }
    lost: list = []  # the lean path, once it exists: a lost RPC worker fails its jobs instead of hanging them
    if load.workers:
        from qwenctl.backends import rpc

        rpc.attach(load.workers)  # registered before llama_cpp.server loads the model, each checked first
        rpc.on_worker_lost(lambda error: [lean.scheduler.fail(error) for lean in lost])
    threads = load.n_threads or default_threads()  # machine.threads via the load options (the server's own: half the CPUs)
    settings = ModelSettings(**model_settings, n_threads=threads, n_threads_batch=threads)
    try:
        with flash_attn_mode(load.flash_attn), op_offload(load.op_offload), \
                safe_buffers(t.type_name for t in check_gguf(target.model_path).tensors) as amx_problem:
            if amx_problem:
                log.warning("%s", amx_problem)
            app = create_app(
                server_settings=ServerSettings(
                    host=options.host,
                    port=sock.getsockname()[1],
                    api_key=options.api_key,
                    # True would end a streaming reply as soon as another request arrives
                    interrupt_requests=False,
                ),
                model_settings=[settings],
            )
    except (ValueError, RuntimeError, OSError) as e:
        raise QwenctlError(f"llama.cpp could not load {target.model_path}: {e}", code=ExitCode.BACKEND) from e

    refuse_unparsed_grammars()
    # chat and text completions run on qwenctl's loop (device sampling, --parallel sequences in one batch)
    from llama_cpp.server import app as llama_app

    from qwenctl.serve import lean as serve_lean

    parallel = options.parallel or 1
    on_gpu = load.n_gpu_layers != 0 and can_offload(bool(load.workers))
    lean = serve_lean.start(llama_app._llama_proxy(), target.model_id, load.n_ctx, parallel, on_gpu)
    lost.append(lean)
    wrapped = _OpenAILayer(app, target.model_id, options.api_key, options.sampling, lean)

    # sse-starlette ends open streams when uvicorn starts shutting down; we let them finish instead
    from sse_starlette.sse import AppStatus

    AppStatus.disable_automatic_graceful_drain()
    config = {"log_level": "info" if options.verbose else "warning", "access_log": options.verbose, "lifespan": "off"}
    # report the thread count llama.cpp uses (ModelSettings picks one when the plan did not)
    served = replace(target, load=replace(load, n_threads=settings.n_threads))
    ready = lambda: on_ready(server_info(served, options, sock.getsockname()[1], parallel))  # noqa: E731 - once serving
    try:
        serve_stop.run_uvicorn(wrapped, config, sock, options.drain_s, ready)  # the drain's hard end: serve/stop.py
    finally:
        lean.stop()


def _kv_cache_types(kind: str) -> dict:
    if kind == "f16":  # the server's own default
        return {}
    from qwenctl.backends.llamacpp import kv_type_id

    return {"type_k": kv_type_id(kind), "type_v": kv_type_id(kind)}


class _OpenAILayer:
    """ASGI layer in front of llama_cpp.server's app: key, model id, sampling defaults, error bodies."""

    def __init__(self, app, model_id: str, api_key: str | None, sampling: SamplingDefaults, lean=None):
        import time

        self.created = int(time.time())
        self.app = app
        self.model_id = model_id
        self.api_key = api_key
        self.sampling = sampling
        self.lean = lean  # lean.LeanCompletions: the generation routes, unless a request needs the host path

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", ())}
        if scope["method"] == "OPTIONS":  # CORS preflight: the app's own middleware
            return await self.app(scope, receive, send)
        if scope["path"] != HEALTH_PATH and self.api_key and not authorized(headers.get("authorization"), self.api_key):
            return await send_json(send, 401, unauthorized())
        failed = self.lean.scheduler.failed if self.lean is not None else None
        answer = route(scope["method"], scope["path"], self.model_id, self.created, str(failed) if failed else None)
        if answer is not None:
            return await send_json(send, *answer)

        raw = await _read_body(receive)
        doc, error = _parse_llama_request(raw, scope["path"])
        if doc is not None:  # a JSON object: what it lacks first, in the words both engines use
            error = request_error(doc, scope["path"]) or text_parts_joined(doc) or error
        if error or doc is None:
            return await send_json(send, 400, error)
        error = fill_request(doc, self.model_id, self.sampling, "repeat_penalty")
        if error:
            return await send_json(send, 404, error)
        if failed is not None:  # the engine is gone (a lost RPC worker): every request gets that error, none waits on it
            return await send_json(send, 503, error_body(str(failed), "service_unavailable"))
        error = vocab_error(doc, self.lean.llm.n_vocab()) if self.lean is not None else None
        if error:
            return await send_json(send, 400, error)
        if self.lean is not None:
            why = self.lean.unsupported(doc)
            if why is None:
                return await self.lean(doc, scope["path"], receive, send)
            self.lean.fallback(why)
        raw = json.dumps(doc).encode()
        headers = [(k, v) for k, v in scope["headers"] if k.lower() != b"content-length"]
        scope = dict(scope, headers=headers + [(b"content-length", str(len(raw)).encode())])
        receive = _replay(raw, receive)
        if not doc.get("stream"):
            return await self.app(scope, receive, send)

        # A streamed reply. llama_cpp raises a context overflow inside the stream, after the 200 head
        # went out, and sse-starlette then ends the stream as if all was well. So the head is held
        # until the first chunk (an error before it becomes a proper 4xx) and the end until the app
        # returns (an error after it becomes an error event, as OpenAI's API sends).
        head: list = []
        end: list = []

        async def send_held(message):
            if message["type"] == "http.response.start":
                head.append(message)
                return
            if not message.get("more_body", False):
                end.append(message)
                return
            if head:
                await send(head.pop())
            await send(message)

        try:
            await self.app(scope, receive, send_held)
        except Exception as exc:  # noqa: BLE001 - every failure becomes an OpenAI error body
            status, body = _llama_error(_leaf(exc), doc)
            if status >= 500:
                log.error("request failed", exc_info=exc)
            if head:
                return await send_json(send, status, body)
            return await send({"type": "http.response.body", "body": f"data: {json.dumps(body)}\n\n".encode(), "more_body": False})
        for message in head + (end or [{"type": "http.response.body", "body": b"", "more_body": False}]):
            await send(message)


def _parse_llama_request(raw: bytes, path: str) -> tuple[dict | None, dict | None]:
    """The body as a dict (None when it is not a JSON object), and a 400 body saying why llama_cpp.server's
    request model rejects it.

    Checked here because llama_cpp.server's error route turns FastAPI's validation errors into 500s.
    """
    import pydantic
    from llama_cpp.server.types import CreateChatCompletionRequest, CreateCompletionRequest

    try:
        doc = well_formed_json(json.loads(raw))
    except ValueError as e:
        return None, error_body(f"the body is not valid JSON: {e}", "invalid_request_error")
    if not isinstance(doc, dict):
        return None, error_body("the body must be a JSON object", "invalid_request_error")
    model = CreateCompletionRequest if path == "/v1/completions" else CreateChatCompletionRequest
    try:
        model.model_validate(doc)
    except pydantic.ValidationError as e:
        first = e.errors()[0]
        param = ".".join(str(p) for p in first["loc"]) or None
        message = "; ".join(f"{'.'.join(str(p) for p in err['loc']) or 'body'}: {err['msg']}" for err in e.errors())
        return doc, error_body(message, "invalid_request_error", None, param)
    return doc, None


UNPARSED_GRAMMAR = "a grammar llama.cpp cannot parse"


def refuse_unparsed_grammars() -> None:
    """Make a grammar that llama.cpp cannot parse a 400, not the end of the server.

    llama_cpp.server hands every grammar (a request's `grammar`, or the one it derives from `response_format`'s JSON
    schema or from `tools`) to llama_sampler_init_grammar and adds what that returns to the sampler chain unchecked:
    the NULL returned for a grammar that does not parse (a schema with an empty `enum` makes one) crashed the whole
    process at the next token. Each grammar is now parsed by the same function first and refused with an error that
    llama_cpp.server's own table of error messages (RouteErrorHandler.pattern_and_formatters, which `_llama_error`
    reads for streams too) answers with a 400. Installed once, for the serving process."""
    import re

    from llama_cpp import _internals, llama_cpp
    from llama_cpp.server.errors import RouteErrorHandler

    sampler_class = _internals.LlamaSampler
    if getattr(sampler_class, "qwenctl_grammars_checked", False):
        return

    def checked(original):
        def add(self, model, grammar, *args):
            parsed = llama_cpp.llama_sampler_init_grammar(model.vocab, grammar._grammar.encode("utf-8"),
                                                          grammar._root.encode("utf-8"))
            if not parsed:
                raise ValueError(f"{UNPARSED_GRAMMAR} (the server's log has where its parser stopped)")
            llama_cpp.llama_sampler_free(parsed)
            return original(self, model, grammar, *args)
        return add

    sampler_class.add_grammar = checked(sampler_class.add_grammar)
    sampler_class.add_grammar_lazy_patterns = checked(sampler_class.add_grammar_lazy_patterns)
    sampler_class.qwenctl_grammars_checked = True
    RouteErrorHandler.pattern_and_formatters[re.compile(re.escape(UNPARSED_GRAMMAR))] = lambda request, match: (
        400, {"message": f"the request's grammar (given, or made from its response_format or tools) is "
                         f"{match.string}", "type": "invalid_request_error", "param": "grammar", "code": "invalid_value"})


def _leaf(exc: BaseException) -> BaseException:
    """The first real error inside (nested) exception groups, as anyio task groups wrap them."""
    while hasattr(exc, "exceptions") and exc.exceptions:
        exc = exc.exceptions[0]
    return exc


def _llama_error(exc: BaseException, doc: dict) -> tuple[int, dict]:
    """The status and body llama_cpp.server gives this error when it is raised outside a stream."""
    from llama_cpp.server.errors import RouteErrorHandler
    from llama_cpp.server.types import CreateChatCompletionRequest, CreateCompletionRequest

    try:
        request = CreateChatCompletionRequest(**doc) if "messages" in doc else CreateCompletionRequest(**doc)
    except Exception:  # noqa: BLE001 - a body the engine accepted but its model class does not
        request = None
    if request is not None:
        for pattern, formatter in RouteErrorHandler.pattern_and_formatters.items():
            match = pattern.search(str(exc))
            if match:
                status, error = formatter(request, match)
                return status, {"error": dict(error)}
    return 500, error_body(str(exc) or type(exc).__name__, "internal_server_error")


async def _read_body(receive) -> bytes:
    chunks = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            break
    return b"".join(chunks)


def _replay(body: bytes, receive):
    """A `receive` that hands out `body` once, then listens to the client (for disconnects)."""
    sent = False

    async def replay():
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay
