"""``LiveSource``: the raw inputs of this machine, read on demand and optionally recorded.

Every answer a probe gets (file text, command output, NVML value, environment variable,
disk usage, package facts, the measured-bandwidth cache) goes through here, so that
``snapshot()`` can write exactly what was read and a replay runs the same parsing code.
"""

from __future__ import annotations

import errno
import os
import struct
from collections.abc import Sequence
from typing import Any

from qwenctl.hardware import engines
from qwenctl.hardware.snapshot import (
    COMMAND_TIMEOUT_S,
    NVML_BINDINGS_MISSING,
    NvmlDevice,
    NvmlError,
    command_key,
    empty_document,
    nvml_key,
)


class LiveSource:
    """This machine. With ``record=True`` every answer is kept for ``snapshot()``."""

    def __init__(self, record: bool = False):
        self.system, self.machine = _platform()
        self.pointer_bits = struct.calcsize("P") * 8
        self._doc: dict[str, Any] | None = empty_document(self.system, self.machine, self.pointer_bits) if record else None
        self._commands: dict[str, str | None] = {}
        self._nvml_state: str | None = None  # None: not tried; "ok"; or the init error code
        self._handles: dict[NvmlDevice, Any] = {}

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

    def read_bytes(self, path: str) -> bytes:
        import base64

        try:
            with open(path, "rb") as f:
                blob = f.read()
        except OSError as e:
            self._record("files", path, {"error": errno.errorcode.get(e.errno or 0, "EIO")})
            raise
        self._record("files", path, {"base64": base64.b64encode(blob).decode("ascii")})
        return blob

    # Commands ---------------------------------------------------------------
    def run(self, argv: Sequence[str]) -> str | None:
        """stdout of a command that exited 0, else None (not installed, failed, timed out)."""
        key = command_key(argv)
        if key not in self._commands:
            self._commands[key] = _run(argv)
            self._record("commands", key, self._commands[key])
        return self._commands[key]

    # NVML ---------------------------------------------------------------------
    def nvml(self, function: str, device: NvmlDevice | None = None, arg: str | None = None) -> Any:
        try:
            value = self._nvml_call(function, device, arg)
        except _MigHandleError as e:  # no MIG instance at that index (NOT_FOUND), or the handle failed
            self._record_mig_slot(device, {"error": e.code})
            raise NvmlError(e.code) from None
        except NvmlError as e:
            self._record_nvml(function, device, arg, {"error": e.code})
            raise
        self._record_nvml(function, device, arg, value)
        return value

    def _nvml_call(self, function: str, device: NvmlDevice | None, arg: str | None) -> Any:
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
        fn = getattr(pynvml, function, None)
        if fn is None:  # bindings older than the call: what NVML itself answers for a driver without it
            raise NvmlError("NVML_ERROR_FUNCTION_NOT_FOUND")
        try:
            args: list[Any] = []
            if device is not None:
                args.append(self._handle(pynvml, device))
            if arg is not None:
                args.append(getattr(pynvml, arg))
            return _plain(fn(*args))
        except pynvml.NVMLError as e:
            raise NvmlError(_nvml_error_name(pynvml, e), str(e)) from None

    def _handle(self, pynvml: Any, device: NvmlDevice) -> Any:
        if device not in self._handles:
            if isinstance(device, tuple):
                parent = self._handle(pynvml, device[0])
                try:
                    self._handles[device] = pynvml.nvmlDeviceGetMigDeviceHandleByIndex(parent, device[1])
                except pynvml.NVMLError as e:
                    raise _MigHandleError(_nvml_error_name(pynvml, e)) from None
            else:
                self._handles[device] = pynvml.nvmlDeviceGetHandleByIndex(device)
        return self._handles[device]

    def _device_table(self, device: NvmlDevice) -> dict[str, Any] | None:
        if self._doc is None:
            return None
        devices = self._doc["nvml"]["devices"]
        parent = device[0] if isinstance(device, tuple) else device
        while len(devices) <= parent:
            devices.append({})
        if not isinstance(device, tuple):
            return devices[parent]
        slots = devices[parent].setdefault("mig", {})
        slot = slots.setdefault(str(device[1]), {})
        return slot

    def _record_mig_slot(self, device: NvmlDevice | None, value: dict[str, Any]) -> None:
        if self._doc is not None and isinstance(device, tuple):
            self._device_table(device[0])
            self._doc["nvml"]["devices"][device[0]].setdefault("mig", {})[str(device[1])] = value

    def _record_nvml(self, function: str, device: NvmlDevice | None, arg: str | None, value: Any) -> None:
        if self._doc is None:
            return
        if device is None:
            self._doc["nvml"]["system"][nvml_key(function, arg)] = value
            return
        table = self._device_table(device)
        if table is not None:
            table[nvml_key(function, arg)] = value

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
        version = engines.installed_versions().get(engines.normalize(name)) or engines.source_tree_version(name)
        if self._doc is not None:
            self._doc["python"]["packages"][name] = version
        return version

    def llama_supports_gpu_offload(self) -> bool | None:
        value = engines.llama_supports_gpu_offload()
        if self._doc is not None:
            self._doc["python"]["llama_supports_gpu_offload"] = value
        return value

    def llama_supports_rpc(self) -> bool | None:
        value = engines.llama_supports_rpc()
        if self._doc is not None:
            self._doc["python"]["llama_supports_rpc"] = value
        return value

    def llama_system_info(self) -> str | None:
        value = engines.llama_system_info()
        if self._doc is not None:
            self._doc["python"]["llama_system_info"] = value
        return value

    def mlx_default_device(self) -> str | None:
        value = engines.mlx_default_device_of(self.system, self.package_version)
        if self._doc is not None:
            self._doc["python"]["mlx_default_device"] = value
        return value

    def processor_cores(self) -> bytes | None:
        import base64

        from qwenctl.hardware import win32_cores

        value = win32_cores.read() if self.system == "Windows" else None
        if self._doc is not None:
            self._doc["python"]["processor_cores"] = base64.b64encode(value).decode() if value else None
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

    def measured_bandwidth(self) -> dict[str, Any]:
        """The bandwidth figures `qwenctl detect --measure` cached for this user (see bandwidth.py)."""
        from qwenctl.hardware import bandwidth

        value = bandwidth.read_cache()
        if self._doc is not None:
            self._doc["measured"]["bandwidth"] = value
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
    if hasattr(value, "multiprocessorCount"):  # c_nvmlDeviceAttributes (MIG devices)
        return {name: int(getattr(value, name)) for name, _ in value._fields_}
    return value


class _MigHandleError(Exception):
    """nvmlDeviceGetMigDeviceHandleByIndex failed: recorded as the whole MIG slot's error."""

    def __init__(self, code: str):
        super().__init__(code)
        self.code = code
