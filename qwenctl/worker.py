"""This machine's devices offered to another qwenctl through llama.cpp's RPC server.

``serve_worker`` runs llama.cpp's own server (``ggml_backend_rpc_start_server``, what llama.cpp's
tools/rpc/rpc-server.cpp runs) in a daemon thread, with rpc-server's device choice: the devices
named, else every GPU, else the CPU. The main thread waits for Ctrl-C or SIGTERM and returns.
Beside it, unless ``info=False``, a small read-only HTTP answer on port + 1 says what this machine
is (``GET /qwenctl-worker``: protocol, devices, and the Hardware ``qwenctl detect --json`` gives),
so the main machine's planner knows the worker's CPU and memory bandwidth, not just its free bytes.

llama.cpp's RPC protocol has no authentication and no encryption: anyone who can reach the port can
run graphs on the offered devices and read or write the memory they hold. It listens on loopback
unless told otherwise; a wider address is said in words (``WorkerStart.warning``).
"""

from __future__ import annotations

import ctypes
import ipaddress
import json
import logging
import signal
import socket
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from qwenctl.backends import rpc
from qwenctl.errors import ExitCode, QwenctlError
from qwenctl.names import is_loopback

log = logging.getLogger("qwenctl.worker")

DEFAULT_HOST = "127.0.0.1"  # as rpc-server: loopback unless asked


@dataclass(frozen=True)
class OfferedDevice:
    name: str  # ggml's name: "CPU", "CUDA0"
    description: str
    type: str  # "CPU", "GPU", "IGPU", "ACCEL"
    free_bytes: int
    total_bytes: int


@dataclass(frozen=True)
class WorkerStart:
    """What a started worker offers, for the renderer."""

    endpoint: str  # host:port the RPC server listens on
    protocol: str  # llama.cpp RPC protocol version, "7.0.0"
    devices: tuple[OfferedDevice, ...]
    threads: int  # the CPU backend's threads
    info_url: str | None  # the info answer; None with --no-info
    warning: str | None  # set when the address is reachable from other machines


def security_warning(host: str, port: int) -> str:
    return (f"listening on {host}, not loopback: llama.cpp's RPC protocol has no authentication or encryption, so anyone "
            "who can reach this port can run code-like graphs on the offered devices and read or write the memory they "
            f"hold; use it on a private network only, or keep the loopback default and reach it through an SSH tunnel "
            f"(`ssh -L {port}:127.0.0.1:{port} THIS-HOST` on the main machine)")


def _ipv4(host: str) -> str:
    """The IPv4 address to bind: llama.cpp's server takes a dotted address only (inet_addr), so a name is resolved here."""
    try:
        return str(ipaddress.IPv4Address(host))
    except ValueError:
        pass
    try:
        return socket.gethostbyname(host)
    except (socket.gaierror, UnicodeError):
        raise QwenctlError(f"cannot listen on {host!r}: not an IPv4 address or a known host name",
                           hint="give an IPv4 address such as 127.0.0.1 or 0.0.0.0 (llama.cpp's RPC server has no IPv6)",
                           code=ExitCode.BAD_INPUT) from None


def check_port_free(host: str, port: int, what: str) -> None:
    """Bind and release the port first: llama.cpp's server only prints when its bind fails."""
    probe = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as llama.cpp's server: TIME_WAIT is no conflict
    try:
        probe.bind((host, port))
    except OSError as e:
        reason = "the port is in use" if e.errno == 98 or "in use" in str(e) else (e.strerror or str(e))
        raise QwenctlError(f"cannot listen on {host}:{port} for the {what}: {reason}",
                           hint="stop what uses it or choose another --port", code=ExitCode.ERROR) from None
    finally:
        probe.close()


def choose_devices(ggml: rpc.Ggml, names: Sequence[str]) -> list[tuple[int, OfferedDevice]]:
    """rpc-server's rule (tools/rpc/rpc-server.cpp ``get_devices``): the devices named, else every GPU, else the CPU."""
    known = [(h, d) for h, d in ggml.devices() if d["backend"] != "RPC"]  # another worker's devices are not ours to offer
    offer = lambda h, d: (h, OfferedDevice(d["name"], d["description"], d["type"], d["free_bytes"], d["total_bytes"]))  # noqa: E731
    if names:
        chosen = []
        by_name = {d["name"].lower(): (h, d) for h, d in known}
        for name in names:
            if name.lower() not in by_name:
                raise QwenctlError(f"no device {name!r} here", hint="this machine has " + ", ".join(d["name"] for _, d in known),
                                   code=ExitCode.BAD_INPUT)
            chosen.append(offer(*by_name[name.lower()]))
        return chosen
    gpus = [offer(h, d) for h, d in known if d["type"] in ("GPU", "IGPU")]
    if gpus:
        return gpus
    cpus = [offer(h, d) for h, d in known if d["type"] == "CPU"]
    if not cpus:
        raise QwenctlError("llama.cpp found no device to offer", hint="check the llama-cpp-python install", code=ExitCode.BACKEND)
    return cpus[:1]


def info_document(ggml: rpc.Ggml, offered: Sequence[tuple[int, OfferedDevice]], hardware: dict[str, Any]) -> dict[str, Any]:
    """The info answer: the protocol, the offered devices with their memory now, and this machine's Hardware."""
    devices = []
    for handle, device in offered:
        now = ggml.device(handle)
        devices.append({"name": device.name, "description": device.description, "type": device.type,
                        "free_bytes": now["free_bytes"], "total_bytes": now["total_bytes"]})
    return {"schema": "qwenctl-worker", "protocol": rpc.PROTOCOL_TEXT, "devices": devices, "hardware": hardware}


def _info_server(host: str, port: int, answer: Callable[[], dict[str, Any]]) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's name
            if self.path != rpc.INFO_PATH:
                self.send_error(404)
                return
            body = json.dumps(answer()).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - http.server's signature
            log.debug("info: " + format, *args)

    return ThreadingHTTPServer((host, port), Handler)


def _wait_listening(host: str, port: int, stop: threading.Event) -> None:
    """Until llama.cpp's server accepts connections (backends start first: CUDA takes seconds), so "ready" is true.

    The test connection is closed at once; the server reads no HELLO from it and goes back to accepting.
    """
    while not stop.is_set():
        try:
            socket.create_connection((host, port), timeout=1.0).close()
            return
        except OSError:
            stop.wait(0.05)


def serve_worker(host: str = DEFAULT_HOST, port: int = rpc.DEFAULT_PORT, devices: Sequence[str] = (),
                 threads: int | None = None, info: bool = True, *,
                 on_ready: Callable[[WorkerStart], None] | None = None,
                 stop: threading.Event | None = None) -> None:
    """Offer this machine's devices at host:port until Ctrl-C, SIGTERM or `stop` is set; then return.

    Raises a one-line QwenctlError when RPC is not built in, the port (or port + 1 for the info answer) is
    taken, a named device does not exist, or llama.cpp's server stops on its own.
    """
    rpc.require()
    address = _ipv4(host)
    if not 1 <= port <= 65535 - (1 if info else 0):
        raise QwenctlError(f"port {port} leaves no room for the info answer on port + 1", hint="choose a lower --port or --no-info",
                           code=ExitCode.BAD_INPUT)
    check_port_free(address, port, "RPC server")
    if info:
        check_port_free(address, port + 1, "worker's info answer (--no-info turns it off)")
    ggml = rpc.Ggml.get()
    offered = choose_devices(ggml, devices)
    if threads is None:
        from qwenctl.backends.llamacpp import default_threads

        threads = default_threads()
    endpoint = rpc.endpoint_text(address, port)

    stop = stop or threading.Event()
    failed: list[str] = []
    handles = (ctypes.c_void_p * len(offered))(*(h for h, _ in offered))
    start_server = ggml.rpc_function("ggml_backend_rpc_start_server", rpc._START_SERVER)

    def run() -> None:  # returns only when llama.cpp's server could not start or its accept failed
        start_server(endpoint.encode(), None, threads, len(offered), handles)
        failed.append("llama.cpp's RPC server stopped (its own message is above)")
        stop.set()

    info_http = None
    if info:
        from qwenctl import hardware
        from qwenctl.result import envelope

        described = envelope("hardware", hardware.detect())
        info_http = _info_server(address, port + 1, lambda: info_document(ggml, offered, described))
        threading.Thread(target=info_http.serve_forever, name="qwenctl-worker-info", daemon=True).start()
    threading.Thread(target=run, name="qwenctl-worker-rpc", daemon=True).start()

    previous = {s: signal.signal(s, lambda *_: stop.set()) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        _wait_listening(address, port, stop)
        if not stop.is_set() and on_ready is not None:
            on_ready(WorkerStart(
                endpoint=endpoint, protocol=rpc.PROTOCOL_TEXT, devices=tuple(d for _, d in offered), threads=threads,
                info_url=f"http://{address}:{port + 1}{rpc.INFO_PATH}" if info else None,
                warning=None if is_loopback(address) else security_warning(address, port)))
        while not stop.wait(0.5):
            pass
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
        if info_http is not None:
            info_http.shutdown()
            info_http.server_close()
    if failed:
        raise QwenctlError(failed[0], hint="check the port and the devices", code=ExitCode.BACKEND)
