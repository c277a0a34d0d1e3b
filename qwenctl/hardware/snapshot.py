"""The raw inputs every probe reads, live or replayed from a saved snapshot.

Probes never touch the OS directly: they ask a ``Source`` for file contents, command
output, NVML values, environment variables, disk usage and installed-package facts.
``LiveSource`` answers from this machine (and can record every answer); ``ReplaySource``
answers from a snapshot written by ``qwenctl detect --save-snapshot``, so a bug report or
a test fixture goes through exactly the parsing code a live run does.

The snapshot format is documented in docs/detect.md. In short::

    {"format": "qwenctl-snapshot", "version": 1,
     "platform": {"system": "Linux", "machine": "x86_64"},
     "files":    {"/proc/meminfo": "MemTotal: ...", "/proc/device-tree/model": {"error": "ENOENT"}},
     "commands": {"vcgencmd get_throttled": "throttled=0x0\\n", "sysctl -i hw": null},
     "nvml":     {"init_error": null, "system": {...}, "devices": [{"nvmlDeviceGetName": "...", ...}]},
     "env":      {"HF_HOME": null},
     "disk":     {"/root/.cache/huggingface/hub": {"total": 1, "free": 1}},
     "python":   {"packages": {"llama-cpp-python": "0.3.36"}, "llama_supports_gpu_offload": false,
                  "mlx_default_device": null},
     "psutil":   null}

A path that the snapshot does not mention reads as missing; a command it does not mention
reads as not installed. Everything else is validated when the snapshot is loaded, so a
malformed file is one ``QwenctlError`` naming the file, never a traceback later.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

from qwenctl.errors import ExitCode, QwenctlError

FORMAT = "qwenctl-snapshot"
VERSION = 1
COMMAND_TIMEOUT_S = 5.0


NVML_BINDINGS_MISSING = "PYNVML_NOT_INSTALLED"  # not an NVML code: the Python bindings themselves are missing


class NvmlError(Exception):
    """An NVML call failed; ``code`` is the NVML_ERROR_* name (the same live and replayed)."""

    def __init__(self, code: str, message: str | None = None):
        super().__init__(message or code)
        self.code = code


class Source(Protocol):
    """Everything a probe may read. Missing files raise OSError; missing commands give None."""

    system: str  # platform.system()
    machine: str  # platform.machine()

    def read_text(self, path: str) -> str: ...

    def run(self, argv: Sequence[str]) -> str | None: ...

    def nvml(self, function: str, device: int | None = None, arg: str | None = None) -> Any: ...

    def getenv(self, name: str) -> str | None: ...

    def disk_usage(self, path: str) -> tuple[int, int]: ...  # (total, free) bytes

    def package_version(self, name: str) -> str | None: ...

    def llama_supports_gpu_offload(self) -> bool | None: ...

    def mlx_default_device(self) -> str | None: ...

    def psutil_memory(self) -> dict[str, int] | None: ...  # {total, available, swap_total}


def nvml_key(function: str, arg: str | None) -> str:
    """How an NVML call is named in a snapshot: the function, with its constant argument if any."""
    return f"{function}({arg})" if arg else function


def command_key(argv: Sequence[str]) -> str:
    import shlex

    return shlex.join(argv)


# ---------------------------------------------------------------------------- live


class LiveSource:
    """This machine. With ``record=True`` every answer is kept for ``snapshot()``."""

    def __init__(self, record: bool = False):
        self.system, self.machine = _platform()
        self._doc: dict[str, Any] | None = _empty_document(self.system, self.machine) if record else None
        self._commands: dict[str, str | None] = {}
        self._nvml_state: str | None = None  # None: not tried; "ok"; or the init error code
        self._handles: dict[int, Any] = {}

    # Files ------------------------------------------------------------------
    def read_text(self, path: str) -> str:
        try:
            with open(path, encoding="utf-8", errors="replace") as f:
                text = f.read()
        except OSError as e:
            self._record("files", path, {"error": errno.errorcode.get(e.errno or 0, "EIO")})
            raise
        self._record("files", path, text)
        return text

    # Commands ---------------------------------------------------------------
    def run(self, argv: Sequence[str]) -> str | None:
        """stdout of a command that exited 0, else None (not installed, failed, timed out)."""
        key = command_key(argv)
        if key not in self._commands:
            self._commands[key] = _run(argv)
            self._record("commands", key, self._commands[key])
        return self._commands[key]

    # NVML ---------------------------------------------------------------------
    def nvml(self, function: str, device: int | None = None, arg: str | None = None) -> Any:
        try:
            value = self._nvml_call(function, device, arg)
        except NvmlError as e:
            self._record_nvml(function, device, arg, {"error": e.code})
            raise
        self._record_nvml(function, device, arg, value)
        return value

    def _nvml_call(self, function: str, device: int | None, arg: str | None) -> Any:
        try:
            import pynvml  # only when a probe asks: the nvidia-ml-py bindings load libnvidia-ml lazily
        except ImportError:  # a dependency, but an install can still lack it: then no GPU can be seen
            raise NvmlError(NVML_BINDINGS_MISSING) from None

        if self._nvml_state is None:
            try:
                pynvml.nvmlInit()
                self._nvml_state = "ok"
            except pynvml.NVMLError as e:
                self._nvml_state = _nvml_error_name(pynvml, e)
            if self._doc is not None:
                self._doc["nvml"]["init_error"] = None if self._nvml_state == "ok" else self._nvml_state
        if self._nvml_state != "ok":
            raise NvmlError(self._nvml_state)
        try:
            fn = getattr(pynvml, function)
            args: list[Any] = []
            if device is not None:
                if device not in self._handles:
                    self._handles[device] = pynvml.nvmlDeviceGetHandleByIndex(device)
                args.append(self._handles[device])
            if arg is not None:
                args.append(getattr(pynvml, arg))
            return _plain(fn(*args))
        except pynvml.NVMLError as e:
            raise NvmlError(_nvml_error_name(pynvml, e), str(e)) from None

    def _record_nvml(self, function: str, device: int | None, arg: str | None, value: Any) -> None:
        if self._doc is None:
            return
        nv = self._doc["nvml"]
        if device is None:
            nv["system"][nvml_key(function, arg)] = value
            return
        while len(nv["devices"]) <= device:
            nv["devices"].append({})
        nv["devices"][device][nvml_key(function, arg)] = value

    # Environment, disk, Python packages --------------------------------------
    def getenv(self, name: str) -> str | None:
        value = os.environ.get(name)
        self._record("env", name, value)
        return value

    def disk_usage(self, path: str) -> tuple[int, int]:
        import shutil

        try:
            usage = shutil.disk_usage(path)
        except OSError as e:
            self._record("disk", path, {"error": errno.errorcode.get(e.errno or 0, "EIO")})
            raise
        self._record("disk", path, {"total": usage.total, "free": usage.free})
        return usage.total, usage.free

    def package_version(self, name: str) -> str | None:
        version = _installed_versions().get(_normalize(name))
        if self._doc is not None:
            self._doc["python"]["packages"][name] = version
        return version

    def llama_supports_gpu_offload(self) -> bool | None:
        value = _llama_supports_gpu_offload()
        if self._doc is not None:
            self._doc["python"]["llama_supports_gpu_offload"] = value
        return value

    def mlx_default_device(self) -> str | None:
        value = _mlx_default_device(self.system, self.package_version)
        if self._doc is not None:
            self._doc["python"]["mlx_default_device"] = value
        return value

    def psutil_memory(self) -> dict[str, int] | None:
        """The memory probe's last resort on systems without /proc/meminfo or sysctl."""
        try:
            import psutil
        except ImportError:
            value = None
        else:
            vm, swap = psutil.virtual_memory(), psutil.swap_memory()
            value = {"total": int(vm.total), "available": int(vm.available), "swap_total": int(swap.total)}
        self._record_value("psutil", value)
        return value

    # Recording ----------------------------------------------------------------
    def _record_value(self, section: str, value: Any) -> None:
        if self._doc is not None:
            self._doc[section] = value

    def _record(self, section: str, key: str, value: Any) -> None:
        if self._doc is not None:
            self._doc[section][key] = value

    def snapshot(self) -> dict[str, Any]:
        """The recorded raw inputs, as the JSON document ``save_snapshot`` writes."""
        if self._doc is None:
            raise RuntimeError("LiveSource(record=True) is needed to take a snapshot")
        return self._doc


def _empty_document(system: str, machine: str) -> dict[str, Any]:
    return {
        "format": FORMAT,
        "version": VERSION,
        "platform": {"system": system, "machine": machine},
        "files": {},
        "commands": {},
        "nvml": {"init_error": None, "system": {}, "devices": []},
        "env": {},
        "disk": {},
        "python": {"packages": {}, "llama_supports_gpu_offload": None, "mlx_default_device": None},
        "psutil": None,
    }


def _platform() -> tuple[str, str]:
    """platform.system()/machine(); os.uname() gives the same on POSIX without importing platform."""
    if hasattr(os, "uname"):
        u = os.uname()
        return u.sysname, u.machine
    import platform

    return platform.system(), platform.machine()


def _run(argv: Sequence[str]) -> str | None:
    import shutil
    import subprocess

    if shutil.which(argv[0]) is None:
        return None
    try:
        done = subprocess.run(
            list(argv), check=False, capture_output=True, text=True, timeout=COMMAND_TIMEOUT_S, errors="replace"
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout if done.returncode == 0 else None


def _nvml_error_name(pynvml: Any, e: Exception) -> str:
    value = getattr(e, "value", None)
    for name in dir(pynvml):
        if name.startswith("NVML_ERROR_") and getattr(pynvml, name) == value:
            return name
    return "NVML_ERROR_UNKNOWN"


def _plain(value: Any) -> Any:
    """NVML answers as JSON-ready values: bytes -> str, memory structs -> dicts, tuples -> lists."""
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, (tuple, list)):
        return [_plain(v) for v in value]
    if hasattr(value, "total") and hasattr(value, "free"):  # c_nvmlMemory_t (v1 or v2)
        return {"total": int(value.total), "free": int(value.free), "used": int(value.used)}
    return value


_VERSIONS: dict[str, str] | None = None


def _normalize(name: str) -> str:
    import re

    return re.sub(r"[-_.]+", "-", name).lower()


def _installed_versions() -> dict[str, str]:
    """{normalized name: version} from the *.dist-info / *.egg-info folder names on sys.path.

    What importlib.metadata.version() answers, from one directory listing per path entry:
    importing importlib.metadata and asking it once per package cost ~10 ms of detect's
    start-up; the folder names ("llama_cpp_python-0.3.36.dist-info") already say it.
    """
    global _VERSIONS
    if _VERSIONS is None:
        import sys

        _VERSIONS = {}
        for entry in sys.path:
            try:
                names = os.listdir(entry or ".")
            except OSError:
                continue
            for folder in names:
                for suffix in (".dist-info", ".egg-info"):
                    if folder.endswith(suffix):
                        name, _, rest = folder[: -len(suffix)].partition("-")
                        if rest:
                            _VERSIONS.setdefault(_normalize(name), rest.split("-")[0])
    return _VERSIONS


_LLAMA_LOG_SINK: Any = None


def _llama_supports_gpu_offload() -> bool | None:
    """Ask libllama itself, through ctypes, without importing the ``llama_cpp`` package.

    ``import llama_cpp`` costs 85-110 ms here (it pulls in numpy and builds every binding),
    which alone would break detect's start-up budget; loading the shared library and calling
    this one function costs about 4 ms on a CPU build (benchmarks/detect_startup.py). On a
    CUDA build the call also initialises the CUDA backend: that is the answer's real cost.
    llama.cpp's log callback is silenced first so backend start-up lines do not reach stderr.
    """
    import ctypes
    import importlib.util

    spec = importlib.util.find_spec("llama_cpp")
    if spec is None or not spec.submodule_search_locations:
        return None
    lib_dir = Path(next(iter(spec.submodule_search_locations))) / "lib"
    candidates = sorted(lib_dir.glob("libllama.*")) + sorted(lib_dir.glob("llama.dll"))
    if not candidates:
        return None
    try:
        lib = ctypes.CDLL(str(candidates[0]))
        global _LLAMA_LOG_SINK
        log_callback = ctypes.CFUNCTYPE(None, ctypes.c_int, ctypes.c_char_p, ctypes.c_void_p)
        _LLAMA_LOG_SINK = log_callback(lambda level, text, user_data: None)  # kept alive: C holds it
        lib.llama_log_set(_LLAMA_LOG_SINK, None)
        lib.llama_supports_gpu_offload.restype = ctypes.c_bool
        return bool(lib.llama_supports_gpu_offload())
    except (OSError, AttributeError):  # a library that will not load, or an older ABI
        return None


def _mlx_default_device(system: str, package_version: Any) -> str | None:
    """MLX's default device, importing mlx only where the answer can differ.

    On macOS the answer depends on Metal, so mlx.core is imported (20-40 ms, only when mlx is
    installed). On Linux the CPU wheel (`mlx-cpu`, what `mlx[cpu]` installs) has no GPU
    backend, so its default device is the CPU without asking; a CUDA build is asked.
    """
    if package_version("mlx") is None:
        return None
    if system == "Linux" and package_version("mlx-cuda") is None:
        return "cpu"
    try:
        import mlx.core as mx
    except ImportError:
        return None
    return "gpu" if mx.default_device() == mx.gpu else "cpu"


# ---------------------------------------------------------------------------- replay


class ReplaySource:
    """A machine as recorded in a snapshot document (already validated by ``load_snapshot``)."""

    def __init__(self, doc: dict[str, Any], name: str = "<snapshot>"):
        self.name = name
        self._doc = doc
        self.system = doc["platform"]["system"]
        self.machine = doc["platform"]["machine"]

    def read_text(self, path: str) -> str:
        value = self._doc["files"].get(path)
        if value is None:
            raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), path)
        if isinstance(value, dict):
            code = getattr(errno, value["error"], errno.EIO)
            raise OSError(code, os.strerror(code), path)
        return value

    def run(self, argv: Sequence[str]) -> str | None:
        return self._doc["commands"].get(command_key(argv))

    def nvml(self, function: str, device: int | None = None, arg: str | None = None) -> Any:
        nv = self._doc["nvml"]
        if nv["init_error"]:
            raise NvmlError(nv["init_error"])
        if device is None:
            table = nv["system"]
        elif device < len(nv["devices"]):
            table = nv["devices"][device]
        else:
            raise NvmlError("NVML_ERROR_INVALID_ARGUMENT", f"no device {device} in {self.name}")
        key = nvml_key(function, arg)
        if key not in table:
            raise NvmlError("NVML_ERROR_NOT_SUPPORTED", f"{key} was not recorded in {self.name}")
        value = table[key]
        if isinstance(value, dict) and "error" in value:
            raise NvmlError(value["error"])
        return value

    def getenv(self, name: str) -> str | None:
        return self._doc["env"].get(name)

    def disk_usage(self, path: str) -> tuple[int, int]:
        value = self._doc["disk"].get(path)
        if value is None or "error" in value:
            code = getattr(errno, (value or {}).get("error", "ENOENT"), errno.EIO)
            raise OSError(code, os.strerror(code), path)
        return value["total"], value["free"]

    def package_version(self, name: str) -> str | None:
        return self._doc["python"]["packages"].get(name)

    def llama_supports_gpu_offload(self) -> bool | None:
        return self._doc["python"]["llama_supports_gpu_offload"]

    def mlx_default_device(self) -> str | None:
        return self._doc["python"]["mlx_default_device"]

    def psutil_memory(self) -> dict[str, int] | None:
        return self._doc["psutil"]


# What each recorded NVML value must look like (anything else makes the snapshot malformed).
_NVML_SHAPES: dict[str, str] = {
    "nvmlSystemGetDriverVersion": "str",
    "nvmlSystemGetCudaDriverVersion": "int",
    "nvmlSystemGetCudaDriverVersion_v2": "int",
    "nvmlDeviceGetCount": "int",
    "nvmlDeviceGetName": "str",
    "nvmlDeviceGetUUID": "str",
    "nvmlDeviceGetMemoryInfo": "memory",
    "nvmlDeviceGetCudaComputeCapability": "pair",
    "nvmlDeviceGetMemoryBusWidth": "int",
    "nvmlDeviceGetMaxClockInfo(NVML_CLOCK_MEM)": "int",
    "nvmlDeviceGetPowerManagementLimit": "int",
}


def load_snapshot(path: str | os.PathLike[str]) -> ReplaySource:
    """Read and validate a snapshot file; any problem is one BAD_INPUT error naming the file."""
    from qwenctl import files

    name = str(path)
    doc = files.read_json(path, "snapshot")
    problem = _validate(doc)
    if problem:
        raise QwenctlError(f"snapshot {name} is malformed: {problem}", code=ExitCode.BAD_INPUT)
    return ReplaySource(doc, name)


def _validate(doc: Any) -> str | None:
    """The first thing wrong with a snapshot document, or None. Missing sections default empty."""
    if not isinstance(doc, dict):
        return "the top level is not an object"
    if doc.get("format") != FORMAT:
        return f'"format" is not "{FORMAT}"'
    if doc.get("version") != VERSION:
        return f'"version" {doc.get("version")!r} is not {VERSION} (written by another qwenctl?)'
    plat = doc.get("platform")
    if not (isinstance(plat, dict) and isinstance(plat.get("system"), str) and isinstance(plat.get("machine"), str)):
        return '"platform" needs "system" and "machine" strings'
    empty = _empty_document("", "")
    for section in ("files", "commands", "env", "disk", "nvml", "python"):
        doc.setdefault(section, empty[section])
        if not isinstance(doc[section], dict):
            return f'"{section}" is not an object'
    for path, value in doc["files"].items():
        if not (value is None or isinstance(value, str) or _is_error(value)):
            return f'files["{path}"] is neither text nor {{"error": ...}}'
    for key, value in doc["commands"].items():
        if not (value is None or isinstance(value, str)):
            return f'commands["{key}"] is neither text nor null'
    for key, value in doc["env"].items():
        if not (value is None or isinstance(value, str)):
            return f'env["{key}"] is neither text nor null'
    for path, value in doc["disk"].items():
        if not (_is_error(value) or (isinstance(value, dict) and _ints(value, "total", "free"))):
            return f'disk["{path}"] needs integer "total" and "free"'
    doc.setdefault("psutil", None)
    if not (doc["psutil"] is None or (isinstance(doc["psutil"], dict) and _ints(doc["psutil"], *_PSUTIL_KEYS))):
        return '"psutil" needs integer "total", "available" and "swap_total"'
    return _validate_nvml(doc["nvml"]) or _validate_python(doc["python"])


_PSUTIL_KEYS = ("total", "available", "swap_total")


def _validate_nvml(nv: dict[str, Any]) -> str | None:
    nv.setdefault("init_error", None)
    nv.setdefault("system", {})
    nv.setdefault("devices", [])
    if not (nv["init_error"] is None or isinstance(nv["init_error"], str)):
        return 'nvml "init_error" is neither text nor null'
    if not isinstance(nv["system"], dict) or not isinstance(nv["devices"], list):
        return 'nvml needs "system" as an object and "devices" as a list'
    tables = [("nvml.system", nv["system"])] + [(f"nvml.devices[{i}]", d) for i, d in enumerate(nv["devices"])]
    for where, table in tables:
        if not isinstance(table, dict):
            return f"{where} is not an object"
        for key, value in table.items():
            if _is_error(value):
                continue
            shape = _NVML_SHAPES.get(key)
            if shape and not _has_shape(value, shape):
                return f"{where}.{key} = {value!r} is not a valid {shape}"
    return None


def _validate_python(py: dict[str, Any]) -> str | None:
    py.setdefault("packages", {})
    py.setdefault("llama_supports_gpu_offload", None)
    py.setdefault("mlx_default_device", None)
    packages = py["packages"]
    if not isinstance(packages, dict) or not all(v is None or isinstance(v, str) for v in packages.values()):
        return 'python "packages" must map names to version strings or null'
    if py["llama_supports_gpu_offload"] not in (None, True, False):
        return 'python "llama_supports_gpu_offload" must be true, false or null'
    if not (py["mlx_default_device"] is None or isinstance(py["mlx_default_device"], str)):
        return 'python "mlx_default_device" must be text or null'
    return None


def _is_error(value: Any) -> bool:
    return isinstance(value, dict) and isinstance(value.get("error"), str)


def _ints(d: dict[str, Any], *keys: str) -> bool:
    return all(isinstance(d.get(k), int) and not isinstance(d.get(k), bool) and d[k] >= 0 for k in keys)


def _has_shape(value: Any, shape: str) -> bool:
    if shape == "str":
        return isinstance(value, str)
    if shape == "int":
        return isinstance(value, int) and not isinstance(value, bool) and value >= 0
    if shape == "memory":
        return isinstance(value, dict) and _ints(value, "total", "free", "used")
    if shape == "pair":
        return isinstance(value, list) and len(value) == 2 and all(isinstance(v, int) for v in value)
    raise AssertionError(shape)


def save_snapshot(source: LiveSource, path: str | os.PathLike[str]) -> None:
    """Write the recorded inputs atomically: a temp file in the same folder, fsync, rename."""
    import json

    from qwenctl import files

    target = Path(path)
    try:
        files.write_text(target, json.dumps(source.snapshot(), indent=1, sort_keys=False) + "\n")
    except OSError as e:
        raise QwenctlError(f"cannot write snapshot {target}: {e.strerror or e}", code=ExitCode.ERROR) from None
