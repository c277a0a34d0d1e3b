"""llama.cpp's RPC backend from Python: probe a worker, attach workers before a load, and a lost worker as one line.

A worker is llama.cpp's RPC server (``qwenctl worker``, or llama.cpp's own ``rpc-server``) at
``host:port``. Three things here:

* ``probe(endpoint)``: a pure-Python client of the RPC protocol (ggml-rpc.cpp, v7.0.0): HELLO, the
  device count, each device's free and total memory, and a few round trips timed. It answers
  before llama.cpp ever connects, because llama.cpp's own client aborts the process on any
  failure to connect or to agree on the protocol (``GGML_ABORT`` in ``rpc_dispatcher::start``).
  A ``qwenctl worker`` also answers a small read-only HTTP request on port+1 with what its
  machine is; a plain ``rpc-server`` has no such port and its ``Worker.hardware`` stays None.
* ``attach(endpoints)``: registers each worker's devices with ggml, as llama.cpp's ``--rpc`` does
  (common/arg.cpp ``add_rpc_devices``), so the next model load sees them: RPC devices first, then
  local GPUs (src/llama.cpp, "add RPC servers at the front of the list"), which is the order
  ``tensor_split`` indexes. Registering is once per endpoint per process and cannot be undone.
* ``install_abort_handler()`` / ``on_worker_lost(handler)``: any failed send or receive to a worker
  later (it died, the network went) is ``GGML_ABORT`` in llama.cpp's dispatcher thread; ggml's
  abort callback turns it into one line and a distinct exit code instead of a core dump, or, for a
  server that must keep answering, hands it to a handler and parks the failing thread.

The wire format (little-endian, ggml-rpc.cpp ``send_rpc_cmd``): a request is ``cmd (1 byte) |
size (u64) | payload``, a reply ``size (u64) | payload``. The server serves one client at a time
(``ggml_backend_rpc_start_server``'s accept loop), so a probe closes its socket before llama.cpp
connects, and a worker already serving another client does not answer (the probe times out).
"""

from __future__ import annotations

import ctypes
import http.client
import json
import logging
import os
import socket
import statistics
import struct
import sys
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from qwenctl.cluster import Link, RemoteDevice, Worker
from qwenctl.errors import ExitCode, QwenctlError
from qwenctl.install import INSTALL
from qwenctl.names import is_loopback

log = logging.getLogger("qwenctl.rpc")

# RPC_PROTO_{MAJOR,MINOR,PATCH}_VERSION of the ggml-rpc.h vendored in llama-cpp-python 0.3.36: the
# protocol this client speaks. A server must have the same major and a minor no newer than ours
# (ggml-rpc.cpp ``negotiate_hello``), or llama.cpp's own client aborts.
PROTOCOL = (7, 0, 0)
PROTOCOL_TEXT = ".".join(map(str, PROTOCOL))
DEFAULT_PORT = 50052  # llama.cpp's rpc-server default (tools/rpc/rpc-server.cpp)
INFO_PATH = "/qwenctl-worker"  # the info answer, on port + 1 of a qwenctl worker

# enum rpc_cmd in ggml-rpc.cpp (HELLO is pinned at 14 by a static_assert there)
_CMD_GET_DEVICE_MEMORY = 11
_CMD_HELLO = 14
_CMD_DEVICE_COUNT = 15
_CONN_CAPS_SIZE = 24  # RPC_CONN_CAPS_SIZE (transport.h); zeros: plain TCP, no RDMA upgrade

RTT_SAMPLES = 5  # DEVICE_COUNT round trips timed per probe; the median is the link's rtt
INFO_TIMEOUT_S = 1.0  # the info answer is optional: a worker without one must not slow the probe much

# Not measured by a probe (that would mean pushing megabytes through a worker that may be busy):
# gigabit Ethernet, the common case between two machines. 1 Gbit/s is 125 MB/s on the wire; TCP over
# a 1500-byte MTU carries 1448 payload bytes per 1538 bytes of frame (headers, timestamps, preamble,
# inter-frame gap), so ~117.7 MB/s of payload.
ASSUMED_BANDWIDTH_BYTES_PER_S = 125_000_000 * 1448 / 1538
ASSUMED_BANDWIDTH = ("bandwidth 117.7 MB/s: gigabit Ethernet's TCP payload rate, assumed (not measured); "
                     "a profile can state the real link")

_START_HINT = "start it there with `qwenctl worker --host ADDRESS --port PORT`"


# --- endpoints -------------------------------------------------------------------------------


def parse_endpoint(text: str) -> tuple[str, int]:
    """``"host:port"`` -> (host, port); one-line QwenctlError (BAD_INPUT) for anything llama.cpp would not take.

    llama.cpp splits at the first ':' and resolves the host with gethostbyname (IPv4 only), so an
    IPv6 address cannot name a worker.
    """
    text = text.strip()
    host, sep, port_text = text.partition(":")
    if not sep or not host or not port_text:
        raise QwenctlError(f"bad RPC worker endpoint {text!r}: expected HOST:PORT", hint=f"for example 192.168.1.20:{DEFAULT_PORT}",
                           code=ExitCode.BAD_INPUT)
    if ":" in port_text or host.startswith("["):
        raise QwenctlError(f"bad RPC worker endpoint {text!r}: llama.cpp's RPC client takes IPv4 addresses and host names only",
                           hint="give the worker's IPv4 address or name", code=ExitCode.BAD_INPUT)
    if not port_text.isdigit() or not 1 <= int(port_text) <= 65535:
        raise QwenctlError(f"bad RPC worker endpoint {text!r}: the port must be a number from 1 to 65535",
                           hint=f"for example {host}:{DEFAULT_PORT}", code=ExitCode.BAD_INPUT)
    return host, int(port_text)


def endpoint_text(host: str, port: int) -> str:
    return f"{host}:{port}"


# --- probe: the protocol in Python --------------------------------------------------------------


class _Conn:
    """One RPC connection; every failure becomes a QwenctlError naming the endpoint."""

    def __init__(self, endpoint: str, host: str, port: int, timeout: float):
        self.endpoint = endpoint
        self.timeout = timeout
        try:
            self.sock = socket.create_connection((host, port), timeout=timeout)
        except ConnectionRefusedError:
            raise QwenctlError(f"cannot reach RPC worker {endpoint} (connection refused: nothing listens there)",
                               hint=_START_HINT, code=ExitCode.NETWORK) from None
        except socket.gaierror as e:
            raise QwenctlError(f"cannot reach RPC worker {endpoint} (unknown host {host!r}: {e.strerror})",
                               hint="check the name or give its IPv4 address", code=ExitCode.NETWORK) from None
        except TimeoutError:
            raise QwenctlError(f"cannot reach RPC worker {endpoint} (no answer to connect within {timeout:g} s: "
                               "the machine is down or a firewall drops the port)",
                               hint="check the address, the network and the firewall", code=ExitCode.NETWORK) from None
        except OSError as e:
            raise QwenctlError(f"cannot reach RPC worker {endpoint} ({e.strerror or e})",
                               hint="check the address and the network", code=ExitCode.NETWORK) from None
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def close(self) -> None:
        self.sock.close()

    def _recv(self, n: int, doing: str) -> bytes:
        data = bytearray()
        while len(data) < n:
            try:
                chunk = self.sock.recv(n - len(data))
            except TimeoutError:
                raise QwenctlError(
                    f"RPC worker {self.endpoint} did not answer {doing} within {self.timeout:g} s: it is serving another "
                    "client (llama.cpp's RPC server serves one at a time) or it is not an RPC worker",
                    hint="wait until the other client is done, or check the port", code=ExitCode.NETWORK) from None
            except OSError as e:
                raise QwenctlError(f"RPC worker {self.endpoint} dropped the connection during {doing} ({e.strerror or e})",
                                   hint="check the worker's output", code=ExitCode.NETWORK) from None
            if not chunk:
                raise QwenctlError(
                    f"RPC worker {self.endpoint} closed the connection during {doing}: it is not a llama.cpp RPC server "
                    f"speaking protocol {PROTOCOL[0]}.x (an older rpc-server closes on a newer HELLO)",
                    hint="run the same llama-cpp-python version on both machines", code=ExitCode.NETWORK)
            data += chunk
        return bytes(data)

    def call(self, cmd: int, payload: bytes, reply_size: int, doing: str) -> bytes:
        try:
            self.sock.sendall(struct.pack("<BQ", cmd, len(payload)) + payload)
        except OSError as e:
            raise QwenctlError(f"RPC worker {self.endpoint} dropped the connection during {doing} ({e.strerror or e})",
                               hint="check the worker's output", code=ExitCode.NETWORK) from None
        (size,) = struct.unpack("<Q", self._recv(8, doing))
        if size != reply_size:
            raise QwenctlError(f"RPC worker {self.endpoint} answered {doing} with {size} bytes instead of {reply_size}: "
                               f"it does not speak llama.cpp's RPC protocol {PROTOCOL_TEXT}",
                               hint="run the same llama-cpp-python version on both machines", code=ExitCode.NETWORK)
        return self._recv(size, doing)


def check_version(endpoint: str, server: tuple[int, int, int]) -> None:
    """The rule of ggml-rpc.cpp ``negotiate_hello``: same major, server minor <= ours; else which side to upgrade."""
    theirs = ".".join(map(str, server))
    if server[0] == PROTOCOL[0] and server[1] <= PROTOCOL[1]:
        return
    newer = server[:2] > PROTOCOL[:2]
    side = "this machine's" if newer else f"the one on {endpoint}"
    raise QwenctlError(
        f"RPC worker {endpoint} speaks llama.cpp RPC protocol {theirs}, this machine speaks {PROTOCOL_TEXT}",
        hint=f"upgrade {side} llama-cpp-python so both match (pip install --upgrade llama-cpp-python, built with RPC: "
             f"{INSTALL['llama-rpc']})", code=ExitCode.BACKEND)


def probe(endpoint: str, timeout: float = 5.0, *, info: bool = True) -> Worker:
    """Ask a worker what it offers: protocol version, devices and their memory, and the round trip to it.

    With `info`, a qwenctl worker's info answer (port + 1) fills ``hardware`` and the devices' names;
    without one (a plain rpc-server, or ``--no-info``) they stay unknown, silently. Raises a one-line
    QwenctlError naming the endpoint when the worker cannot be reached, is busy, or speaks another version.
    """
    host, port = parse_endpoint(endpoint)
    endpoint = endpoint_text(host, port)
    conn = _Conn(endpoint, host, port, timeout)
    try:
        hello = conn.call(_CMD_HELLO, bytes(_CONN_CAPS_SIZE), 4 + _CONN_CAPS_SIZE, "the HELLO handshake")
        version = (hello[0], hello[1], hello[2])
        check_version(endpoint, version)
        rtts = []
        count = 0
        for _ in range(RTT_SAMPLES):
            start = time.perf_counter()
            (count,) = struct.unpack("<I", conn.call(_CMD_DEVICE_COUNT, b"", 4, "the device count"))
            rtts.append(time.perf_counter() - start)
        memory = []
        for i in range(count):
            free, total = struct.unpack("<QQ", conn.call(_CMD_GET_DEVICE_MEMORY, struct.pack("<I", i), 16,
                                                         f"device {i}'s memory"))
            memory.append((min(free, total), total))  # clamp: free > total is a driver's rounding, not memory
    finally:
        conn.close()  # before anything else connects: the server serves one client at a time
    described = fetch_info(host, port + 1) if info else None
    names = _device_names(described, count)
    devices = tuple(RemoteDevice(name, desc, free, total) for (name, desc), (free, total) in zip(names, memory))
    link = Link(rtt_s=statistics.median(rtts), bandwidth_bytes_per_s=ASSUMED_BANDWIDTH_BYTES_PER_S,
                source=f"measured: median of {RTT_SAMPLES} round trips to {endpoint}", assumed=(ASSUMED_BANDWIDTH,))
    if is_loopback(host):  # this machine: what the RPC server moves on loopback, measured (speed_model.json links)
        from qwenctl.device_speed import load_speed_model

        link = Link(rtt_s=link.rtt_s, bandwidth_bytes_per_s=float(load_speed_model()["links"]["loopback_bytes_per_s"]),
                    source=link.source + "; loopback bandwidth as measured through the RPC server on the H200 pair")
    return Worker(endpoint=endpoint, devices=devices, hardware=_hardware(described, endpoint), link=link,
                  protocol=".".join(map(str, version)))


def _device_names(described: dict[str, Any] | None, count: int) -> list[tuple[str, str]]:
    """(name, description) per device: the info answer's when it lists as many devices as the protocol counts."""
    listed = described.get("devices") if described else None
    if isinstance(listed, list) and len(listed) == count and all(isinstance(d, dict) for d in listed):
        return [(str(d.get("name", f"device {i}")), str(d.get("description", d.get("name", f"device {i}"))))
                for i, d in enumerate(listed)]
    return [(f"device {i}", f"device {i}") for i in range(count)]  # the RPC protocol carries no names


def _hardware(described: dict[str, Any] | None, endpoint: str):
    if not described or not isinstance(described.get("hardware"), dict):
        return None
    from qwenctl.hardware.facts import hardware_from_dict

    try:
        return hardware_from_dict(described["hardware"])
    except (ValueError, TypeError) as e:  # another qwenctl version's schema: the plan says it did not know
        log.info("RPC worker %s described its machine in a form this qwenctl does not read (%s)", endpoint, e)
        return None


def fetch_info(host: str, port: int, timeout: float = INFO_TIMEOUT_S) -> dict[str, Any] | None:
    """A qwenctl worker's info answer (GET /qwenctl-worker on port + 1), or None when there is none."""
    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        conn.request("GET", INFO_PATH)
        response = conn.getresponse()
        if response.status != 200:
            return None
        doc = json.loads(response.read(1 << 20))
        return doc if isinstance(doc, dict) else None
    except (OSError, http.client.HTTPException, ValueError) as e:  # no info port: a plain rpc-server, or --no-info
        log.debug("no worker info at %s:%d (%s)", host, port, e)
        return None
    finally:
        conn.close()


# --- ggml through ctypes ------------------------------------------------------------------------


def available() -> bool:
    """Whether the installed llama-cpp-python was built with llama.cpp's RPC backend (GGML_RPC=ON)."""
    try:
        import llama_cpp
    except ImportError:
        return False
    ask = getattr(llama_cpp, "llama_supports_rpc", None)
    return bool(ask()) if ask is not None else False


def require() -> None:
    """A one-line error with the install line when RPC cannot be used here."""
    try:
        import llama_cpp  # noqa: F401
    except ImportError:
        raise QwenctlError("llama-cpp-python is not installed", hint=f"install it with RPC: {INSTALL['llama-rpc']}",
                           code=ExitCode.BACKEND) from None
    if not available():
        raise QwenctlError("this llama-cpp-python was built without llama.cpp's RPC backend",
                           hint=f"reinstall it with RPC: {INSTALL['llama-rpc']}", code=ExitCode.BACKEND)


ABORT_CALLBACK = ctypes.CFUNCTYPE(None, ctypes.c_char_p)  # ggml_abort_callback_t (ggml.h)
_ADD_SERVER = ctypes.CFUNCTYPE(ctypes.c_void_p, ctypes.c_char_p)  # ggml_backend_rpc_add_server
_START_SERVER = ctypes.CFUNCTYPE(None, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_size_t, ctypes.c_size_t,
                                 ctypes.POINTER(ctypes.c_void_p))  # ggml_backend_rpc_start_server
DEVICE_TYPES = {0: "CPU", 1: "GPU", 2: "IGPU", 3: "ACCEL", 4: "META"}  # enum ggml_backend_dev_type (ggml-backend.h)


class Ggml:
    """The few ggml-backend functions this needs, from the libraries llama-cpp-python ships (libggml and
    libggml-base, which it has already loaded; dlopen hands back the same copies)."""

    _instance: Ggml | None = None

    def __init__(self) -> None:
        import llama_cpp

        # where llama-cpp-python loads its libraries from: LLAMA_CPP_LIB_PATH when set (its own override), else lib/
        lib_dir = Path(os.environ.get("LLAMA_CPP_LIB_PATH") or Path(llama_cpp.__file__).parent / "lib")
        self.ggml = _load(lib_dir, "ggml")
        self.base = _load(lib_dir, "ggml-base")
        vp, sz, cp = ctypes.c_void_p, ctypes.c_size_t, ctypes.c_char_p
        self._sig(self.ggml, "ggml_backend_reg_by_name", vp, cp)
        self._sig(self.ggml, "ggml_backend_register", None, vp)
        self._sig(self.ggml, "ggml_backend_dev_count", sz)
        self._sig(self.ggml, "ggml_backend_dev_get", vp, sz)
        self._sig(self.ggml, "ggml_backend_dev_by_name", vp, cp)
        self._sig(self.base, "ggml_backend_reg_get_proc_address", vp, vp, cp)
        self._sig(self.base, "ggml_backend_reg_dev_count", sz, vp)
        self._sig(self.base, "ggml_backend_reg_dev_get", vp, vp, sz)
        self._sig(self.base, "ggml_backend_reg_name", cp, vp)
        self._sig(self.base, "ggml_backend_dev_backend_reg", vp, vp)
        self._sig(self.base, "ggml_backend_dev_name", cp, vp)
        self._sig(self.base, "ggml_backend_dev_description", cp, vp)
        self._sig(self.base, "ggml_backend_dev_type", ctypes.c_int, vp)
        self._sig(self.base, "ggml_backend_dev_memory", None, vp, ctypes.POINTER(sz), ctypes.POINTER(sz))
        self._sig(self.base, "ggml_set_abort_callback", vp, ABORT_CALLBACK)

    @staticmethod
    def _sig(lib: ctypes.CDLL, name: str, restype: Any, *argtypes: Any) -> None:
        fn = getattr(lib, name)
        fn.restype, fn.argtypes = restype, list(argtypes)

    @classmethod
    def get(cls) -> Ggml:
        if cls._instance is None:
            cls._instance = Ggml()
        return cls._instance

    def rpc_function(self, name: str, prototype: Any) -> Any:
        """A function of the RPC backend by name, through its registry entry (as rpc-server.cpp and
        common/arg.cpp reach it: it works whether RPC is built into libggml or loaded as a module)."""
        reg = self.ggml.ggml_backend_reg_by_name(b"RPC")
        address = self.base.ggml_backend_reg_get_proc_address(reg, name.encode()) if reg else None
        if not address:
            require()  # raises the install line
            raise QwenctlError(f"llama.cpp's RPC backend has no {name}", hint=f"reinstall it: {INSTALL['llama-rpc']}",
                               code=ExitCode.BACKEND)
        return prototype(address)

    def device(self, dev: int) -> dict[str, Any]:
        free, total = ctypes.c_size_t(0), ctypes.c_size_t(0)
        self.base.ggml_backend_dev_memory(dev, ctypes.byref(free), ctypes.byref(total))
        reg = self.base.ggml_backend_dev_backend_reg(dev)
        return {
            "name": (self.base.ggml_backend_dev_name(dev) or b"").decode("utf-8", "replace"),
            "description": (self.base.ggml_backend_dev_description(dev) or b"").decode("utf-8", "replace"),
            "type": DEVICE_TYPES.get(self.base.ggml_backend_dev_type(dev), "?"),
            "backend": (self.base.ggml_backend_reg_name(reg) or b"").decode("utf-8", "replace") if reg else "",
            "free_bytes": min(free.value, total.value), "total_bytes": total.value,
        }

    def devices(self) -> list[tuple[int, dict[str, Any]]]:
        """(handle, facts) of every device ggml knows, in its registry's order."""
        handles = [self.ggml.ggml_backend_dev_get(i) for i in range(self.ggml.ggml_backend_dev_count())]
        return [(h, self.device(h)) for h in handles]


def _load(lib_dir: Path, name: str) -> ctypes.CDLL:
    """The copy of lib`name` that libllama itself uses.

    A wheel cannot hold symlinks, so llama-cpp-python's lib/ has three separate copies of each library
    (libggml.so, libggml.so.0, libggml.so.0.25.3); libllama links the soname (libggml.so.0), and a device
    registered in another copy is invisible to it (each copy has its own backend registry).
    Method 1: the file already mapped into this process (Linux /proc/self/maps). Method 2: the soname-style
    file (lib`name`.so.N). Method 3: the plain names (macOS, Windows).
    """
    prefix = f"lib{name}.so"
    try:
        with open("/proc/self/maps") as maps:
            for line in maps:
                path = Path(line.split(maxsplit=5)[-1].strip()) if line.count(" ") >= 5 else None
                if path is not None and path.parent == lib_dir and path.name.startswith(prefix + ".") \
                        and path.name[len(prefix) + 1:].isdigit():
                    return ctypes.CDLL(str(path))
    except OSError:
        pass
    sonames = sorted(p.name for p in lib_dir.glob(prefix + ".*") if p.name[len(prefix) + 1:].isdigit())
    for candidate in (*sonames, f"lib{name}.so", f"lib{name}.dylib", f"{name}.dll", f"lib{name}.dll"):
        if (lib_dir / candidate).exists():
            return ctypes.CDLL(str(lib_dir / candidate))
    raise QwenctlError(f"this llama-cpp-python has no {name} library in {lib_dir}",
                       hint=f"reinstall it: {INSTALL['llama-rpc']}", code=ExitCode.BACKEND)


# --- attach: workers' devices for the next model load ------------------------------------------

_attached: dict[str, tuple[str, ...]] = {}  # endpoint -> the ggml device names its devices got (RPC0, RPC1, ...)
_attach_lock = threading.Lock()


def attach(endpoints: Iterable[str], timeout: float = 5.0) -> tuple[str, ...]:
    """Register each worker's devices with ggml so the next llama.cpp load can use them; idempotent.

    Each worker is probed first (a clear error instead of llama.cpp's abort when it cannot be reached,
    is busy or speaks another protocol), then added as llama.cpp's ``--rpc`` does. Returns the ggml
    device names of all attached workers' devices, in llama.cpp's device order: ``tensor_split`` indexes
    them first, then local GPUs. Also installs the abort handler (``install_abort_handler``) unless one is.
    """
    require()
    wanted = [endpoint_text(*parse_endpoint(e)) for e in endpoints]
    ggml = Ggml.get()
    with _attach_lock:
        if _abort_callback is None:
            install_abort_handler()
        for endpoint in wanted:
            if endpoint in _attached:
                continue
            probe(endpoint, timeout, info=False)
            add_server = ggml.rpc_function("ggml_backend_rpc_add_server", _ADD_SERVER)
            reg = add_server(endpoint.encode())
            if not reg:
                raise QwenctlError(f"RPC worker {endpoint} offers no devices", hint="check the worker's --device",
                                   code=ExitCode.BACKEND)
            ggml.ggml.ggml_backend_register(reg)
            names = tuple((ggml.base.ggml_backend_dev_name(ggml.base.ggml_backend_reg_dev_get(reg, i)) or b"").decode()
                          for i in range(ggml.base.ggml_backend_reg_dev_count(reg)))
            _attached[endpoint] = names
            log.info("attached RPC worker %s: %s", endpoint, ", ".join(names))
        return attached_devices()


def attached_devices() -> tuple[str, ...]:
    """The ggml names of the attached workers' devices (RPC0, RPC1, ...), in llama.cpp's device order."""
    return tuple(name for names in _attached.values() for name in names)


# --- a lost worker: one line, not a core dump --------------------------------------------------

_abort_callback: Any = None  # keeps the ctypes callback alive for as long as ggml may call it
_lost_handler: Callable[[QwenctlError], None] | None = None
_exit_code = ExitCode.BACKEND
_RPC_MARKERS = ("Remote RPC server crashed", "RPC handshake failed", "Failed to connect to", "Failed to parse endpoint")


def lost_worker_error(message: str, probe_timeout: float = 0.5) -> QwenctlError:
    """The error for ggml's abort `message` about RPC: which attached worker stopped answering, when a quick
    connect tells (refused: its process is gone; no answer: its machine or network), else all of them."""
    suspects: list[str] = []
    for _ in range(5):  # a worker killed a moment ago may still hold its port: ask again, briefly
        for endpoint in _attached:
            host, port = parse_endpoint(endpoint)
            try:
                socket.create_connection((host, port), timeout=probe_timeout).close()
            except ConnectionRefusedError:
                suspects.append(f"{endpoint} (its process is gone: connection refused)")
            except OSError:
                suspects.append(f"{endpoint} (no answer: its machine or the network is down)")
        if suspects:
            break
        time.sleep(0.1)
    if len(suspects) == 1:
        what = f"lost RPC worker {suspects[0]}"
    elif suspects:
        what = "lost RPC workers " + ", ".join(suspects)
    else:
        what = f"lost an RPC worker ({', '.join(_attached) or 'none attached'}): {message.split(': ', 1)[-1].strip()}"
    return QwenctlError(what, hint="restart `qwenctl worker` there, then run again", code=_exit_code)


def _on_abort(raw: bytes | None) -> None:
    message = (raw or b"").decode("utf-8", "replace")
    if not any(marker in message for marker in _RPC_MARKERS):
        os.write(2, (message.rstrip("\n") + "\n").encode())  # what ggml prints by default; abort() follows
        return
    try:
        error = lost_worker_error(message)
    except Exception as e:  # noqa: BLE001 - inside a C abort: never raise back into ggml
        error = QwenctlError(f"lost an RPC worker ({message.strip()}; {e})", code=_exit_code)
    handler = _lost_handler
    if handler is None:
        sys.stdout.flush()
        os.write(2, f"error: {error.one_line()}\n".encode())
        os._exit(int(error.code))
    try:
        handler(error)
    except Exception:  # noqa: BLE001 - the handler's bug must not turn into the abort it replaces
        log.exception("the lost-worker handler failed")
    threading.Event().wait()  # park the failing thread for good: returning would abort() the process


def install_abort_handler(exit_code: ExitCode = ExitCode.BACKEND) -> None:
    """From now on a lost worker ends the process with one line on stderr and `exit_code` (run, chat, bench).

    ggml's abort callback is process-wide: aborts that are not about RPC print ggml's message and abort as before.
    """
    global _abort_callback, _exit_code
    _exit_code = exit_code
    if _abort_callback is None:
        _abort_callback = ABORT_CALLBACK(_on_abort)
        Ggml.get().base.ggml_set_abort_callback(_abort_callback)


def on_worker_lost(handler: Callable[[QwenctlError], None] | None) -> None:
    """For a server that must keep answering: a lost worker calls `handler(error)` (from llama.cpp's dispatcher
    thread, with the GIL) and that thread then waits forever, so the generation waiting on it never returns and
    the process does not abort. The engine is dead: the handler marks it so and later requests get the error.
    None puts back the default (one line, exit)."""
    global _lost_handler
    _lost_handler = handler
    install_abort_handler(_exit_code)
