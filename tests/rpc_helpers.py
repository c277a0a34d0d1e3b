"""Real `qwenctl worker` processes on free loopback ports, for the RPC tests."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from qwenctl.backends import rpc
from qwenctl.install import INSTALL

ROOT = Path(__file__).resolve().parent.parent
READY = "use it from the main machine"

needs_rpc = pytest.mark.skipif(not rpc.available(), reason=f"llama-cpp-python built without RPC: {INSTALL['llama-rpc']}")


def free_port_pair() -> int:
    """A port P with P and P+1 free on 127.0.0.1 (the worker's RPC server and its info answer)."""
    for _ in range(50):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port >= 65535:
            continue
        try:
            with socket.socket() as s:
                s.bind(("127.0.0.1", port + 1))
        except OSError:
            continue
        return port
    raise RuntimeError("no two consecutive free ports")


def env() -> dict[str, str]:
    e = dict(os.environ)
    e["PYTHONPATH"] = os.pathsep.join([str(ROOT), *filter(None, [e.get("PYTHONPATH")])])
    return e


def start_worker(*args: str, port: int | None = None, wait: bool = True, timeout: float = 60.0) -> tuple[subprocess.Popen, int]:
    port = port or free_port_pair()
    proc = subprocess.Popen([sys.executable, "-m", "qwenctl", "worker", "--port", str(port), "--threads", "1", *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env(), cwd=ROOT)
    if wait:
        deadline = time.monotonic() + timeout
        assert proc.stdout is not None
        for line in proc.stdout:  # llama.cpp's own banner lines come first on the same stdout
            if READY in line:
                break
            if time.monotonic() > deadline:
                break
        else:
            proc.wait(5)
            raise AssertionError(f"the worker did not start: rc={proc.returncode} {proc.stderr.read() if proc.stderr else ''}")
        drain(proc)
    return proc, port


def drain(proc: subprocess.Popen) -> None:
    """Keep reading a running worker's output (llama.cpp prints a line per client) so a full pipe never blocks it;
    the lines are kept on proc.output for a failing test to show."""
    proc.output = []  # type: ignore[attr-defined]
    for stream in (proc.stdout, proc.stderr):
        threading.Thread(target=lambda s=stream: proc.output.extend(s), daemon=True).start()  # type: ignore[attr-defined]


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


@contextlib.contextmanager
def workers(n: int, *args: str) -> Iterator[list[tuple[subprocess.Popen, int]]]:
    started: list[tuple[subprocess.Popen, int]] = []
    try:
        for _ in range(n):
            started.append(start_worker(*args))
        yield started
    finally:
        for proc, _ in started:
            stop(proc)
