"""`qwenctl serve`: one model behind an OpenAI-compatible HTTP API, through the engines' own server code.

GGUF files are served by llama-cpp-python's FastAPI app (``llama_cpp.server``) under uvicorn; MLX
folders by ``mlx_lm.server``'s request handler and generation thread. Both run in this process, so
plan -> pull -> load -> serve is one command and one process to stop.

qwenctl adds only what those servers lack, as a thin layer in front of them (each point says why):

- On llama.cpp, chat and text completions run on qwenctl's generation loop (serve/lean.py): the
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
  cut them), exit 0; what still runs when the drain ends is abandoned, exit 12 (serve/stop.py).

The rooms: this module (what to serve, the start-up document, binding, the engine table);
openai.py (what qwenctl adds to both engines); llamacpp.py with lean.py (GGUF); mlx.py (MLX folders);
stop.py (the drain with a hard end).
"""

from __future__ import annotations

import json
import socket
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from qwenctl.backends import LoadOptions
from qwenctl.errors import ExitCode, QwenctlError
from qwenctl.install import INSTALL
from qwenctl.names import is_loopback, served_model_id
from qwenctl.serve.openai import SamplingDefaults
from qwenctl.split import describe, workers_named

if TYPE_CHECKING:
    from qwenctl.pipeline import Reporter, RunRequest

__all__ = ["GRACEFUL_STOP_SECONDS", "SamplingDefaults", "ServeOptions", "ServeTarget", "ServerInfo", "check_server_deps",
           "is_loopback", "resolve_target", "serve", "server_info", "target_from_path"]

# Requests still running this long after Ctrl-C / SIGTERM are abandoned, exit 12 (a second Ctrl-C: at once).
GRACEFUL_STOP_SECONDS = 60


@dataclass(frozen=True)
class _Engine:
    """How qwenctl serves one backend's models."""

    module: str  # qwenctl's module with serve(target, options, sock, on_ready)
    server_code: str  # the engine's server module, which must import (an optional extra)
    extra: str  # the qwenctl extra that installs it
    load_settings: bool  # whether n_gpu_layers / n_threads / flash_attn mean anything to it


# backend -> engine, as backends/__init__.py's _BACKENDS: adding one touches only this table
_ENGINES = {
    "llama.cpp": _Engine("qwenctl.serve.llamacpp", "llama_cpp.server.app", "server", True),
    "mlx": _Engine("qwenctl.serve.mlx", "mlx_lm.server", "mlx", False),
}


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
    split: str | None = None  # how the model is spread over GPUs and workers, in words; None: one device


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
        model_id=prepared.model_id or served_model_id(path, prepared.files.repo),  # never a path: qwen2.5:7b for Ollama's
        load=prepared.load_options,
        plan_summary=prepared.plan.reasons if prepared.plan else (),
    )


def check_server_deps(backend: str) -> None:
    """Fail with the install line when the engine's server code cannot be imported (it is an optional extra).

    It imports the server module rather than looking the packages up: a package that is present but
    broken (fastapi without its own opentelemetry-api, seen on a hand-assembled GPU machine) fails
    only on import, and would otherwise end in a traceback.
    """
    engine = _engine(backend)
    import importlib

    own = engine.server_code.split(".")[0]  # the engine's package (llama_cpp, mlx_lm)
    try:
        importlib.import_module(own)
    except ImportError:
        raise QwenctlError(f"serving a {backend} model needs {own}, which is not installed", hint=INSTALL[engine.extra],
                           code=ExitCode.BACKEND) from None
    try:
        importlib.import_module(engine.server_code)
    except ImportError as e:
        missing = (e.name or "").split(".")[0]
        why = (f"needs {missing}, which is not installed" if missing and missing != own
               else f"cannot import {engine.server_code}: {e}")  # a part of the engine's package failed, not the package
        raise QwenctlError(f"serving a {backend} model {why}", hint=INSTALL[engine.extra], code=ExitCode.BACKEND) from None


def _engine(backend: str) -> _Engine:
    if backend not in _ENGINES:
        raise QwenctlError(f"qwenctl cannot serve the {backend!r} backend", hint="serve a GGUF (llama.cpp) or MLX model", code=ExitCode.BAD_INPUT)
    return _ENGINES[backend]


# --- the start-up document ------------------------------------------------------------------------


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
    loaded = _engine(target.backend).load_settings  # MLX has no such settings: None, not a made-up value
    return ServerInfo(
        url=url,
        model_id=target.model_id,
        backend=target.backend,
        model_path=str(target.model_path),
        n_ctx=target.load.n_ctx,
        n_gpu_layers=target.load.n_gpu_layers if loaded else None,
        n_threads=target.load.n_threads if loaded else None,
        flash_attn=target.load.flash_attn if loaded else None,
        parallel=parallel,
        api_key_required=bool(options.api_key),
        sampling_defaults=options.sampling,
        curl=curl,
        plan=target.plan_summary,
        warnings=tuple(warnings),
        split=describe(target.load.split_mode, target.load.tensor_split, target.load.main_gpu, workers_named(target.load.workers))
        if loaded else None,
    )


def serve(target: ServeTarget, options: ServeOptions, on_ready: Callable[[ServerInfo], None]) -> None:
    """Load `target` and answer the OpenAI API until Ctrl-C or SIGTERM; return once in-flight requests end.

    `on_ready` is called once the model is loaded and the port is bound (connections made from then on
    are queued and answered), with the start-up document to show. Serving installs SIGINT/SIGTERM
    handlers, so call it from the main thread; after an MLX server stops, the process exits (see
    serve/mlx.py).
    """
    check_server_deps(target.backend)
    if options.parallel is not None and options.parallel < 1:
        raise QwenctlError("--parallel must be at least 1", code=ExitCode.USAGE)
    import importlib

    engine = importlib.import_module(_engine(target.backend).module)
    sock = _bind(options.host, options.port)
    try:
        engine.serve(target, options, sock, on_ready)
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
        raise QwenctlError(f"cannot listen on {host}:{port}: {e.strerror or e}", hint="choose another --host or --port", code=ExitCode.ERROR) from None
    return sock
