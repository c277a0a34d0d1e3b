"""Running `qwenctl serve` processes: a resident model, as Ollama's server keeps one.

A server writes one small JSON file once it answers (``servers/<pid>.json`` in the user state directory,
platformdirs) and removes it when it stops. `run` looks here before loading a model itself and talks to
a server of the same model instead (qwenctl.backends.remote); `qwenctl ps` lists them. A file whose
process is gone (a server that was killed) is ignored and removed; a process id reused by another
program is told apart by the process's start time.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from qwenctl.serve import ServerInfo


@dataclass(frozen=True)
class Resident:
    """One running server, as it registered itself."""

    pid: int
    url: str  # the OpenAI base URL, ending in /v1
    model_id: str
    model_path: str  # the GGUF (first part) or MLX folder it loaded, resolved
    backend: str
    n_ctx: int
    api_key_required: bool
    started: float  # the process's start time (psutil create_time), epoch seconds
    gpu_bytes: int | None = None  # device memory the server measured for its model, where known


@dataclass(frozen=True)
class ResidentStatus:
    server: Resident
    uptime_seconds: float
    host_rss_bytes: int | None


@dataclass(frozen=True)
class ResidentList:
    folder: str
    servers: tuple[ResidentStatus, ...]


def registry_dir() -> Path:
    import platformdirs

    return platformdirs.user_state_path("qwenctl") / "servers"


def _process_start(pid: int) -> float | None:
    import psutil

    try:
        return psutil.Process(pid).create_time()
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return None


def register(info: ServerInfo, gpu_bytes: int | None = None) -> Path:
    """Announce this process as a server of `info`; returns the file to remove when it stops."""
    from qwenctl import files

    pid = os.getpid()
    entry = Resident(pid=pid, url=info.url, model_id=info.model_id, model_path=os.path.realpath(info.model_path),
                     backend=info.backend, n_ctx=info.n_ctx, api_key_required=info.api_key_required,
                     started=_process_start(pid) or time.time(), gpu_bytes=gpu_bytes)
    folder = registry_dir()
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{pid}.json"
    files.write_text(path, json.dumps(asdict(entry)) + "\n")
    return path


def unregister(path: Path) -> None:
    path.unlink(missing_ok=True)


def running() -> list[Resident]:
    """Every registered server whose process still runs; stale files are removed."""
    folder = registry_dir()
    out = []
    for path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        try:
            entry = Resident(**json.loads(path.read_text(encoding="utf-8")))
        except (OSError, ValueError, TypeError):
            continue  # being written, or not ours: leave it
        started = _process_start(entry.pid)
        if started is None or abs(started - entry.started) > 1.0:
            path.unlink(missing_ok=True)  # the server is gone (or its pid now belongs to another process)
            continue
        out.append(entry)
    return out


def find(model_path: str, n_ctx: int | None = None) -> Resident | None:
    """A running server of this model file (and at least this context), answering now; None otherwise."""
    wanted = os.path.realpath(model_path)
    for entry in running():
        if entry.model_path == wanted and (n_ctx is None or entry.n_ctx >= n_ctx) and answers(entry):
            return entry
    return None


def answers(entry: Resident, timeout: float = 2.0) -> bool:
    """Whether the server answers its /health route now."""
    import urllib.error
    import urllib.request

    base = entry.url.removesuffix("/v1")
    try:
        with urllib.request.urlopen(f"{base}/health", timeout=timeout) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError, ValueError):
        return False


def status() -> ResidentList:
    """What `qwenctl ps` shows: each running server with its uptime and memory."""
    import psutil

    now = time.time()
    rows = []
    for entry in running():
        try:
            rss = psutil.Process(entry.pid).memory_info().rss
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            rss = None
        rows.append(ResidentStatus(entry, max(0.0, now - entry.started), rss))
    return ResidentList(str(registry_dir()), tuple(rows))
