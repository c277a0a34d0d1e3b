"""A machine replayed from a snapshot: ``ReplaySource`` answers every probe from the recorded document.

``load_snapshot`` reads and validates a file (a malformed one is one BAD_INPUT error naming the file,
never a traceback later); ``save_snapshot`` writes what a recording ``LiveSource`` read. The format is
snapshot.py's (and docs/detect.md's).
"""

from __future__ import annotations

import errno
import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from qwenctl.errors import ExitCode, QwenctlError, from_os_error
from qwenctl.hardware.snapshot import (
    FORMAT,
    NOT_CAPTURED,
    THIRTY_TWO_BIT_MACHINES,
    VERSION,
    NotCaptured,
    NvmlDevice,
    NvmlError,
    command_key,
    empty_document,
    nvml_key,
)


class ReplaySource:
    """A machine as recorded in a snapshot document (already validated by ``load_snapshot``)."""

    def __init__(self, doc: dict[str, Any], name: str = "<snapshot>"):
        self.name = name
        self._doc = doc
        self.system = doc["platform"]["system"]
        self.machine = doc["platform"]["machine"]
        # snapshots from before the field: a 32-bit kernel runs a 32-bit userland, a 64-bit one (almost always) a 64-bit
        self.pointer_bits = doc["platform"].get("pointer_bits") or (32 if self.machine in THIRTY_TWO_BIT_MACHINES else 64)

    def read_text(self, path: str) -> str:
        if path not in self._doc["files"]:
            raise NotCaptured(errno.ENOENT, "not captured in the snapshot", path)
        value = self._doc["files"][path]
        if value is None:
            raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), path)
        if isinstance(value, dict) and "base64" in value:
            import base64

            return base64.b64decode(value["base64"]).decode("utf-8", "replace")
        if isinstance(value, dict):
            code = getattr(errno, value["error"], errno.EIO)
            raise OSError(code, os.strerror(code), path)
        return value

    def read_bytes(self, path: str) -> bytes:
        import base64

        value = self._doc["files"].get(path)
        if isinstance(value, dict) and "base64" in value:
            return base64.b64decode(value["base64"])
        return self.read_text(path).encode("utf-8")

    def run(self, argv: Sequence[str]) -> str | None:
        return self._doc["commands"].get(command_key(argv))

    def nvml(self, function: str, device: NvmlDevice | None = None, arg: str | None = None) -> Any:
        nv = self._doc["nvml"]
        if nv["init_error"]:
            raise NvmlError(nv["init_error"])
        table = self._nvml_table(device)
        key = nvml_key(function, arg)
        if key not in table:
            raise NvmlError(NOT_CAPTURED, f"{key} was not recorded in {self.name}")
        value = table[key]
        if isinstance(value, dict) and "error" in value:
            raise NvmlError(value["error"])
        return value

    def _nvml_table(self, device: NvmlDevice | None) -> dict[str, Any]:
        nv = self._doc["nvml"]
        if device is None:
            return nv["system"]
        parent, mig = device if isinstance(device, tuple) else (device, None)
        if parent >= len(nv["devices"]):
            raise NvmlError("NVML_ERROR_INVALID_ARGUMENT", f"no device {parent} in {self.name}")
        table = nv["devices"][parent]
        if mig is None:
            return table
        entry = table.get("mig", {}).get(str(mig))
        if entry is None:
            raise NvmlError(NOT_CAPTURED, f"MIG device {parent}/{mig} was not recorded in {self.name}")
        if _is_error(entry):  # the MIG handle itself failed (NOT_FOUND: no instance at that index)
            raise NvmlError(entry["error"])
        return entry

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

    def llama_supports_rpc(self) -> bool | None:
        return self._doc["python"]["llama_supports_rpc"]  # null in snapshots older than the field: unknown

    def llama_system_info(self) -> str | None:
        return self._doc["python"]["llama_system_info"]  # null in snapshots older than the field: unknown

    def mlx_default_device(self) -> str | None:
        return self._doc["python"]["mlx_default_device"]

    def psutil_memory(self) -> dict[str, int] | None:
        return self._doc["psutil"]

    def processor_cores(self) -> bytes | None:
        import base64

        value = self._doc["python"]["processor_cores"]
        return base64.b64decode(value) if value else None

    def measured_bandwidth(self) -> dict[str, Any]:
        return self._doc["measured"]["bandwidth"]


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
    "nvmlDeviceGetNumGpuCores": "int",
    "nvmlDeviceGetMaxClockInfo(NVML_CLOCK_SM)": "int",
    "nvmlDeviceGetMaxCustomerBoostClock(NVML_CLOCK_GRAPHICS)": "int",
    "nvmlDeviceGetMigMode": "pair",
    "nvmlDeviceGetMaxMigDeviceCount": "int",
    "nvmlDeviceGetAttributes": "attributes",
    "nvmlDeviceGetAddressingMode": "int",
    "nvmlDeviceGetEccMode": "pair",
    "nvmlDeviceGetMaxPcieLinkGeneration": "int",
    "nvmlDeviceGetCurrPcieLinkWidth": "int",
}


def load_snapshot(path: str | os.PathLike[str]) -> ReplaySource:
    """Read and validate a snapshot file; any problem is one BAD_INPUT error naming the file."""
    from qwenctl import files

    doc = files.read_json(path, "snapshot")  # bytes as UTF-8 (BOM dropped); folders, binaries, Latin-1 refused
    problem = _validate(doc)
    if problem:
        raise QwenctlError(f"snapshot {path} is malformed: {problem}", code=ExitCode.BAD_INPUT)
    return ReplaySource(doc, str(path))


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
    if plat.get("pointer_bits") not in (None, 32, 64):
        return '"platform" "pointer_bits" is neither 32 nor 64'
    empty = empty_document("", "")
    for section in ("files", "commands", "env", "disk", "nvml", "python"):
        doc.setdefault(section, empty[section])
        if not isinstance(doc[section], dict):
            return f'"{section}" is not an object'
    for path, value in doc["files"].items():
        binary = isinstance(value, dict) and isinstance(value.get("base64"), str)
        if not (value is None or isinstance(value, str) or _is_error(value) or binary):
            return f'files["{path}"] is neither text, {{"base64": ...}} nor {{"error": ...}}'
        if path.rsplit("/", 1)[-1] in _SIZE_FILES and isinstance(value, str) and re.search(r"(^|:)[ \t]*-\d", value, re.M):
            return f'files["{path}"] holds a negative size'
    for key, value in doc["commands"].items():
        if not (value is None or isinstance(value, str)):
            return f'commands["{key}"] is neither text nor null'
    for key, value in doc["env"].items():
        if not (value is None or isinstance(value, str)):
            return f'env["{key}"] is neither text nor null'
    for path, value in doc["disk"].items():
        if not (_is_error(value) or (isinstance(value, dict) and _ints(value, "total", "free"))):
            return f'disk["{path}"] needs integer "total" and "free"'
    doc.setdefault("measured", {"bandwidth": {}})
    if not (isinstance(doc["measured"], dict) and isinstance(doc["measured"].setdefault("bandwidth", {}), dict)):
        return '"measured" needs a "bandwidth" object'
    doc.setdefault("psutil", None)
    if not (doc["psutil"] is None or (isinstance(doc["psutil"], dict) and _ints(doc["psutil"], *_PSUTIL_KEYS))):
        return '"psutil" needs integer "total", "available" and "swap_total"'
    return _validate_nvml(doc["nvml"]) or _validate_python(doc["python"])


def _is_base64(value: Any) -> bool:
    import base64
    import binascii

    try:
        return isinstance(value, str) and bool(base64.b64decode(value, validate=True))
    except (binascii.Error, ValueError):
        return False


_PSUTIL_KEYS = ("total", "available", "swap_total")
# Files of byte counts (memory.py reads them): a negative one is a forged or corrupted snapshot, not a machine.
_SIZE_FILES = ("meminfo", "memory.max", "memory.current", "memory.limit_in_bytes", "memory.usage_in_bytes")


def _validate_nvml(nv: dict[str, Any]) -> str | None:
    nv.setdefault("init_error", None)
    nv.setdefault("system", {})
    nv.setdefault("devices", [])
    if not (nv["init_error"] is None or isinstance(nv["init_error"], str)):
        return 'nvml "init_error" is neither text nor null'
    if not isinstance(nv["system"], dict) or not isinstance(nv["devices"], list):
        return 'nvml needs "system" as an object and "devices" as a list'
    tables = [("nvml.system", nv["system"])] + [(f"nvml.devices[{i}]", d) for i, d in enumerate(nv["devices"])]
    for i, device in enumerate(nv["devices"]):
        mig = device.get("mig", {}) if isinstance(device, dict) else {}
        if not isinstance(mig, dict):
            return f'nvml.devices[{i}].mig is not an object'
        tables += [(f"nvml.devices[{i}].mig[{k}]", t) for k, t in mig.items() if not _is_error(t)]
    for where, table in tables:
        if not isinstance(table, dict):
            return f"{where} is not an object"
        for key, value in table.items():
            if key == "mig":
                continue
            if _is_error(value):
                continue
            shape = _NVML_SHAPES.get(key)
            if shape and not _has_shape(value, shape):
                return f"{where}.{key} = {value!r} is not a valid {shape}"
    # counts the probe walks one by one: a recording holds every device it counts, and MIG's at most seven slots
    # unless more are recorded; more is a forged document (2**64 took hours)
    from qwenctl.hardware.mig import MAX_INSTANCES

    count = nv["system"].get("nvmlDeviceGetCount")
    if isinstance(count, int) and not 0 <= count <= len(nv["devices"]):
        return f"nvml.system.nvmlDeviceGetCount = {count}, but {len(nv['devices'])} devices are recorded"
    for i, device in enumerate(nv["devices"]):
        slots, recorded = device.get("nvmlDeviceGetMaxMigDeviceCount"), len(device.get("mig", {}))
        if isinstance(slots, int) and not 0 <= slots <= max(recorded, MAX_INSTANCES):
            return f"nvml.devices[{i}].nvmlDeviceGetMaxMigDeviceCount = {slots}, but {recorded} MIG slots are recorded"
    return None


def _validate_python(py: dict[str, Any]) -> str | None:
    py.setdefault("packages", {})
    py.setdefault("llama_supports_gpu_offload", None)
    py.setdefault("llama_supports_rpc", None)
    py.setdefault("mlx_default_device", None)
    py.setdefault("llama_system_info", None)
    py.setdefault("processor_cores", None)
    packages = py["packages"]
    if not isinstance(packages, dict) or not all(v is None or isinstance(v, str) for v in packages.values()):
        return 'python "packages" must map names to version strings or null'
    if py["llama_supports_gpu_offload"] not in (None, True, False):
        return 'python "llama_supports_gpu_offload" must be true, false or null'
    if py["llama_supports_rpc"] not in (None, True, False):
        return 'python "llama_supports_rpc" must be true, false or null'
    if py["processor_cores"] is not None and not _is_base64(py["processor_cores"]):
        return 'python "processor_cores" must be base64 text or null'
    if not (py["mlx_default_device"] is None or isinstance(py["mlx_default_device"], str)):
        return 'python "mlx_default_device" must be text or null'
    if not (py["llama_system_info"] is None or isinstance(py["llama_system_info"], str)):
        return 'python "llama_system_info" must be text or null'
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
    if shape == "attributes":
        return isinstance(value, dict) and _ints(value, "multiprocessorCount", "gpuInstanceSliceCount", "memorySizeMB")
    raise AssertionError(shape)


def save_snapshot(source: Any, path: str | os.PathLike[str]) -> None:
    """Write what a ``LiveSource(record=True)`` read, atomically: a temp file in the same folder, fsync, rename."""
    import json

    from qwenctl import files

    target = Path(path)
    try:
        files.write_text(target, json.dumps(source.snapshot(), indent=1, sort_keys=False) + "\n")
    except OSError as e:
        raise from_os_error(e, target, "write the snapshot to") from None
