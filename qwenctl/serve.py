"""`qwenctl serve`: one model behind an OpenAI-compatible HTTP API, through the engines' own server code.

GGUF files are served by llama-cpp-python's FastAPI app (``llama_cpp.server``) under uvicorn; MLX
folders by ``mlx_lm.server``'s request handler and generation thread. Both run in this process, so
plan -> pull -> load -> serve is one command and one process to stop.

qwenctl adds only what those servers lack, as a thin layer in front of them (each point says why):

- On llama.cpp, chat and text completions run on qwenctl's generation loop (``serve_lean``): the
  token is sampled on the device, the stream costs little above generation, and --parallel N
  requests decode in one batch. llama_cpp.server samples on the host and answers one at a time;
  it still serves the other routes and the requests the lean path cannot do (grammar, logprobs).

- Qwen's sampling defaults (temperature 0.7, top_p 0.8, top_k 20, repeat penalty 1.05) are filled
  into requests that do not set them. llama_cpp.server has no per-server sampling defaults (its
  request models default to 0.8 / 0.95 / 40 / 1.1); mlx_lm.server takes temp/top_p/top_k as defaults
  but no repetition penalty.
- One model id. llama_cpp.server answers any unknown ``model`` with its default model, and
  mlx_lm.server would try to load the name from the Hub; here another name gets 404 model_not_found.
- An API key for every route (mlx_lm.server has none), compared in constant time, never logged.
- OpenAI-shaped 400s: a malformed body gets 400 invalid_request_error; a prompt longer than the
  context gets 400 context_length_exceeded also for ``stream: true`` (llama_cpp raises inside the
  stream, after a 200 went out, so the layer holds the response head until the first chunk).
  On MLX, which has no context limit of its own, the plan's n_ctx is enforced here.
- Ctrl-C / SIGTERM: stop accepting, let in-flight requests finish (streams too: sse-starlette would
  cut them), exit 0; what still runs when the drain ends is abandoned, exit 12 (serve_stop.py).
"""

from __future__ import annotations

import hmac
import ipaddress
import json
import logging
import signal
import socket
import threading
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from qwenctl import serve_stop
from qwenctl.backends import LoadOptions, SamplingOptions
from qwenctl.errors import ExitCode, QwenctlError
from qwenctl.install import INSTALL
from qwenctl.names import served_model_id

if TYPE_CHECKING:
    from qwenctl.pipeline import Reporter, RunRequest

log = logging.getLogger(__name__)

# Requests still running this long after Ctrl-C / SIGTERM are abandoned, exit 12 (a second Ctrl-C: at once).
GRACEFUL_STOP_SECONDS = 60

_GENERATION_PATHS = ("/v1/chat/completions", "/v1/completions", "/chat/completions")


@dataclass(frozen=True)
class SamplingDefaults:
    """What a request gets for each field it leaves out (Qwen2.5-Instruct's generation_config.json)."""

    temperature: float
    top_p: float
    top_k: int
    repeat_penalty: float

    @classmethod
    def qwen(cls) -> SamplingDefaults:
        s = SamplingOptions()
        return cls(s.temperature, s.top_p, s.top_k, s.repeat_penalty)


@dataclass(frozen=True)
class ServeTarget:
    """What to serve: a model on disk, the engine and load options for it, and the id clients use."""

    model_path: Path  # a GGUF file (the first part of a split one) or an MLX folder
    backend: str  # "llama.cpp" | "mlx"
    model_id: str
    load: LoadOptions = LoadOptions()
    plan_summary: tuple[str, ...] = ()  # a few lines on why this model (empty for --model PATH)


@dataclass(frozen=True)
class ServeOptions:
    host: str = "127.0.0.1"
    port: int = 8000  # 0 = any free port (the start-up info says which)
    api_key: str | None = field(default=None, repr=False)
    parallel: int | None = None  # requests generated at once; None = the engine's default
    sampling: SamplingDefaults = field(default_factory=SamplingDefaults.qwen)
    verbose: bool = False  # engine logs and an access log on stderr
    drain_s: float = GRACEFUL_STOP_SECONDS  # after a stop signal, then requests still running are abandoned (exit 12)


@dataclass(frozen=True)
class ServerInfo:
    """The start-up document: where the server listens, what it serves, and how to call it."""

    url: str  # the base URL OpenAI clients take, ending in /v1
    model_id: str
    backend: str
    model_path: str
    n_ctx: int
    n_gpu_layers: int | None  # None where the engine has no such setting (MLX)
    n_threads: int | None
    flash_attn: bool | None
    parallel: int  # requests generated at once; more wait in a queue
    api_key_required: bool
    sampling_defaults: SamplingDefaults
    curl: str
    plan: tuple[str, ...]
    warnings: tuple[str, ...]


# --- targets --------------------------------------------------------------------------------------


def target_from_path(path: Path, load: LoadOptions | None = None, model_id: str | None = None) -> ServeTarget:
    """A target for a model on disk (library callers): pipeline.local_model's rule, names' model id."""
    from qwenctl.pipeline import local_model

    path = Path(path).expanduser()
    if not path.exists():
        raise QwenctlError(f"no such model file or folder: {path}", code=ExitCode.NOT_FOUND)
    path, backend = local_model(path)
    return ServeTarget(model_path=path, backend=backend, model_id=model_id or served_model_id(path), load=load or LoadOptions())


def resolve_target(request: RunRequest, reporter: Reporter) -> ServeTarget:
    """Every ``--model`` form (PATH, REPO[:FILE]) and none (plan and pull), all through ``pipeline.prepare``."""
    from qwenctl import pipeline

    prepared = pipeline.prepare(request, reporter, check_backend=check_server_deps)
    path = Path(prepared.files.load_path)
    return ServeTarget(
        model_path=path,
        backend=prepared.backend,
        model_id=served_model_id(path, prepared.files.repo),
        load=prepared.load_options,
        plan_summary=prepared.plan.reasons if prepared.plan else (),
    )


def check_server_deps(backend: str) -> None:
    """Fail with the install line when the engine's server code cannot be imported (it is an optional extra).

    It imports the server module rather than looking the packages up: a package that is present but
    broken (fastapi without its own opentelemetry-api, seen on a hand-assembled GPU machine) fails
    only on import, and would otherwise end in a traceback.
    """
    if backend == "llama.cpp":
        module, extra = "llama_cpp.server.app", "server"
    elif backend == "mlx":
        module, extra = "mlx_lm.server", "mlx"
    else:
        raise QwenctlError(f"qwenctl cannot serve the {backend!r} backend", hint="serve a GGUF (llama.cpp) or MLX model", code=ExitCode.BAD_INPUT)
    import importlib

    try:
        importlib.import_module(module)
    except ImportError as e:
        missing = e.name.split(".")[0] if e.name else str(e)
        raise QwenctlError(
            f"serving a {backend} model needs {missing}, which is not installed",
            hint=INSTALL[extra],
            code=ExitCode.BACKEND,
        ) from None


# --- the start-up document ------------------------------------------------------------------------


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _url_host(host: str) -> str:
    """The host as a client would type it: a wildcard address becomes loopback, IPv6 gets brackets."""
    if host in ("0.0.0.0", ""):
        return "127.0.0.1"
    if host == "::":
        return "[::1]"
    return f"[{host}]" if ":" in host else host


def server_info(target: ServeTarget, options: ServeOptions, port: int, parallel: int) -> ServerInfo:
    url = f"http://{_url_host(options.host)}:{port}/v1"
    auth = " -H 'Authorization: Bearer $QWENCTL_API_KEY'" if options.api_key else ""
    body = json.dumps({"model": target.model_id, "messages": [{"role": "user", "content": "Hello!"}]})
    curl = f"curl {url}/chat/completions -H 'Content-Type: application/json'{auth} -d '{body}'"
    warnings = []
    if not is_loopback(options.host) and not options.api_key:
        warnings.append(
            f"listening on {options.host} without an API key: anyone who can reach this port can use the model "
            "(set --api-key or QWENCTL_API_KEY)"
        )
    mlx = target.backend == "mlx"
    return ServerInfo(
        url=url,
        model_id=target.model_id,
        backend=target.backend,
        model_path=str(target.model_path),
        n_ctx=target.load.n_ctx,
        n_gpu_layers=None if mlx else target.load.n_gpu_layers,
        n_threads=None if mlx else target.load.n_threads,
        flash_attn=None if mlx else target.load.flash_attn,
        parallel=parallel,
        api_key_required=bool(options.api_key),
        sampling_defaults=options.sampling,
        curl=curl,
        plan=target.plan_summary,
        warnings=tuple(warnings),
    )


# --- serving --------------------------------------------------------------------------------------


def serve(target: ServeTarget, options: ServeOptions, on_ready: Callable[[ServerInfo], None]) -> None:
    """Load `target` and answer the OpenAI API until Ctrl-C or SIGTERM; return once in-flight requests end.

    `on_ready` is called once the model is loaded and the port is bound (connections made from then on
    are queued and answered), with the start-up document to show. Serving installs SIGINT/SIGTERM
    handlers, so call it from the main thread; after an MLX server stops, the process exits (see
    `_serve_mlx`).
    """
    check_server_deps(target.backend)
    if options.parallel is not None and options.parallel < 1:
        raise QwenctlError("--parallel must be at least 1", code=ExitCode.USAGE)
    sock = _bind(options.host, options.port)
    try:
        if target.backend == "llama.cpp":
            _serve_llamacpp(target, options, sock, on_ready)
        else:
            _serve_mlx(target, options, sock, on_ready)
    finally:
        sock.close()


def _bind(host: str, port: int) -> socket.socket:
    """Bind and listen before loading, so a busy port fails fast and port 0 resolves to a real one."""
    sock = None
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[0]
        sock = socket.socket(family, kind, proto)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(128)
    except OSError as e:
        if sock is not None:
            sock.close()
        raise QwenctlError(f"cannot listen on {host}:{port}: {e.strerror or e}", hint="choose another --host or --port", code=ExitCode.ERROR)
    return sock


def _authorized(header: str | None, api_key: str) -> bool:
    if not header or not header.lower().startswith("bearer "):
        return False
    return hmac.compare_digest(header[7:].strip().encode(), api_key.encode())


def _error_body(message: str, type_: str, code: str | None = None, param: str | None = None) -> dict:
    """OpenAI's error shape, which the official clients turn into typed exceptions."""
    return {"error": {"message": message, "type": type_, "param": param, "code": code}}


def _unauthorized() -> dict:
    return _error_body("Invalid or missing API key (send Authorization: Bearer KEY)", "invalid_request_error", "invalid_api_key")


def _unknown_model(name: object, model_id: str) -> dict:
    return _error_body(
        f"The model `{name}` does not exist; this server serves `{model_id}`", "invalid_request_error", "model_not_found", "model"
    )


def _fill_request(doc: dict, model_id: str, sampling: SamplingDefaults, penalty_key: str) -> dict | None:
    """Fill the sampling fields the client left out; return an error body for a model we do not serve.

    Clients send the repeat penalty under either engine's name (llama.cpp: repeat_penalty,
    mlx-lm: repetition_penalty); `penalty_key` is the one this engine reads.
    """
    model = doc.get("model")
    if model is not None and model != model_id:
        return _unknown_model(model, model_id)
    for other in ("repeat_penalty", "repetition_penalty"):
        if other != penalty_key and doc.get(penalty_key) is None and doc.get(other) is not None:
            doc[penalty_key] = doc[other]
    for key, value in (
        ("temperature", sampling.temperature),
        ("top_p", sampling.top_p),
        ("top_k", sampling.top_k),
        (penalty_key, sampling.repeat_penalty),
    ):
        if doc.get(key) is None:
            doc[key] = value
    return None


# --- llama.cpp: llama_cpp.server's FastAPI app under uvicorn --------------------------------------


def _serve_llamacpp(target: ServeTarget, options: ServeOptions, sock: socket.socket, on_ready: Callable[[ServerInfo], None]) -> None:
    import os

    from llama_cpp.server.app import create_app
    from llama_cpp.server.settings import ModelSettings, ServerSettings

    from qwenctl.backends.llama_flash import flash_attn_mode
    from qwenctl.backends.llamacpp import default_threads

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
    }
    threads = load.n_threads or default_threads()  # machine.threads via the load options (the server's own: half the CPUs)
    settings = ModelSettings(**model_settings, n_threads=threads, n_threads_batch=threads)
    try:
        with flash_attn_mode(load.flash_attn):
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

    # chat and text completions run on qwenctl's loop (device sampling, --parallel sequences in one batch)
    from llama_cpp.server import app as llama_app

    from qwenctl import serve_lean

    parallel = options.parallel or 1
    lean = serve_lean.start(llama_app._llama_proxy(), target.model_id, load.n_ctx, parallel)
    wrapped = _OpenAILayer(app, target.model_id, options.api_key, options.sampling, lean)

    # sse-starlette ends open streams when uvicorn starts shutting down; we let them finish instead
    from sse_starlette.sse import AppStatus

    AppStatus.disable_automatic_graceful_drain()
    config = {"log_level": "info" if options.verbose else "warning", "access_log": options.verbose, "lifespan": "off"}
    # report the thread count llama.cpp uses (ModelSettings picks one when the plan did not)
    served = replace(target, load=replace(load, n_threads=settings.n_threads))
    ready = lambda: on_ready(server_info(served, options, sock.getsockname()[1], parallel))  # noqa: E731 - once serving
    try:
        serve_stop.run_uvicorn(wrapped, config, sock, options.drain_s, ready)  # the drain's hard end: serve_stop.py
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
        self.app = app
        self.model_id = model_id
        self.api_key = api_key
        self.sampling = sampling
        self.lean = lean  # serve_lean.LeanCompletions: the generation routes, unless a request needs the host path

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", ())}
        if self.api_key and scope["method"] != "OPTIONS" and not _authorized(headers.get("authorization"), self.api_key):
            return await _send_json(send, 401, _unauthorized())
        if scope["method"] != "POST" or scope["path"] not in _GENERATION_PATHS:
            return await self.app(scope, receive, send)

        raw = await _read_body(receive)
        doc, error = _parse_llama_request(raw, scope["path"])
        if error:
            return await _send_json(send, 400, error)
        error = _fill_request(doc, self.model_id, self.sampling, "repeat_penalty")
        if error:
            return await _send_json(send, 404, error)
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
                return await _send_json(send, status, body)
            return await send({"type": "http.response.body", "body": f"data: {json.dumps(body)}\n\n".encode(), "more_body": False})
        for message in head + (end or [{"type": "http.response.body", "body": b"", "more_body": False}]):
            await send(message)


def _parse_llama_request(raw: bytes, path: str) -> tuple[dict, dict | None]:
    """The body as a dict, or a 400 body saying why llama_cpp.server's request model rejects it.

    Checked here because llama_cpp.server's error route turns FastAPI's validation errors into 500s.
    """
    import pydantic
    from llama_cpp.server.types import CreateChatCompletionRequest, CreateCompletionRequest

    try:
        doc = json.loads(raw)
    except ValueError as e:
        return {}, _error_body(f"the body is not valid JSON: {e}", "invalid_request_error")
    if not isinstance(doc, dict):
        return {}, _error_body("the body must be a JSON object", "invalid_request_error")
    model = CreateCompletionRequest if path == "/v1/completions" else CreateChatCompletionRequest
    try:
        model.model_validate(doc)
    except pydantic.ValidationError as e:
        first = e.errors()[0]
        param = ".".join(str(p) for p in first["loc"]) or None
        message = "; ".join(f"{'.'.join(str(p) for p in err['loc']) or 'body'}: {err['msg']}" for err in e.errors())
        return doc, _error_body(message, "invalid_request_error", None, param)
    return doc, None


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
    return 500, _error_body(str(exc) or type(exc).__name__, "internal_server_error")


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


async def _send_json(send, status: int, body: dict) -> None:
    data = json.dumps(body).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": data})


# --- MLX: mlx_lm.server's handler and generation thread -------------------------------------------


def _serve_mlx(target: ServeTarget, options: ServeOptions, sock: socket.socket, on_ready: Callable[[ServerInfo], None]) -> None:
    import argparse
    from http.server import ThreadingHTTPServer

    from mlx_lm import server as mlx_server
    from mlx_lm.generate import DEFAULT_QUANTIZED_KV_START
    from mlx_lm.utils import maybe_set_recommended_wired_limit

    # Every setting mlx_lm.server's ModelProvider and ResponseGenerator read, with its CLI defaults
    # (mlx_lm.server.main) except where the plan or Qwen says otherwise.
    parallel = options.parallel
    args = argparse.Namespace(
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
    class Handler(base):
        """mlx_lm.server's handler with qwenctl's key, model id, sampling defaults and context limit."""

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
            if options.api_key and not _authorized(self.headers.get("Authorization"), options.api_key):
                self._reply(401, _unauthorized())
                return False
            return True

        def do_GET(self):
            if not self._authorized():
                return
            if self.path.rstrip("/") == "/v1/models":
                # mlx_lm lists every MLX model in the Hugging Face cache; this server serves one
                return self._reply(200, {"object": "list", "data": [{"id": model_id, "object": "model", "created": self.created, "owned_by": "qwenctl"}]})
            return super().do_GET()

        def do_POST(self):
            if not self._authorized():
                return
            if self.path not in _GENERATION_PATHS:
                return super().do_POST()
            import io

            try:
                length = int(self.headers.get("Content-Length", ""))
                doc = json.loads(self.rfile.read(length))
            except ValueError as e:
                return self._reply(400, _error_body(f"invalid JSON body: {e}", "invalid_request_error"))
            if not isinstance(doc, dict):
                return self._reply(400, _error_body("the body must be a JSON object", "invalid_request_error"))
            error = _fill_request(doc, model_id, options.sampling, "repetition_penalty")
            if error:
                return self._reply(404, error)
            for key in ("adapters", "draft_model"):
                if doc.get(key) is not None:  # both make mlx_lm load other weights from disk or the Hub
                    return self._reply(400, _error_body(f"`{key}` is not supported by this server", "invalid_request_error", None, key))
            error = self._fit_context(doc)
            if error:
                return self._reply(400, error)
            raw = json.dumps(doc).encode()
            del self.headers["Content-Length"]
            self.headers["Content-Length"] = str(len(raw))
            self.rfile = io.BytesIO(raw)
            return super().do_POST()

        def _fit_context(self, doc: dict) -> dict | None:
            """Refuse prompts that do not fit the planned context; cap max_tokens at what is left.

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
                else:
                    return None  # let mlx_lm answer what it makes of the body
            except Exception as e:  # noqa: BLE001 - a malformed messages list fails inside the template
                return _error_body(f"could not apply the chat template: {e}", "invalid_request_error", None, "messages")
            n_prompt = len(prompt)
            if n_prompt >= n_ctx:
                param = "messages" if "messages" in doc else "prompt"
                return _error_body(
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
            return None

    return Handler
