"""The raw inputs every probe reads, live or replayed from a saved snapshot.

Probes never touch the OS directly: they ask a ``Source`` for file contents, command
output, NVML values, environment variables, disk usage and installed-package facts.
``LiveSource`` answers from this machine (and can record every answer); ``ReplaySource``
answers from a snapshot written by ``qwenctl detect --save-snapshot``, so a bug report or
a test fixture goes through exactly the parsing code a live run does.

The snapshot format is documented in docs/detect.md. In short::

    {"format": "qwenctl-snapshot", "version": 1,
     "platform": {"system": "Linux", "machine": "x86_64", "pointer_bits": 64},
     "files":    {"/proc/meminfo": "MemTotal: ...", "/proc/device-tree/model": {"error": "ENOENT"}},
     "commands": {"vcgencmd get_throttled": "throttled=0x0\\n", "sysctl -i hw": null},
     "nvml":     {"init_error": null, "system": {...}, "devices": [{"nvmlDeviceGetName": "...", ...}]},
     "env":      {"HF_HOME": null},
     "disk":     {"/root/.cache/huggingface/hub": {"total": 1, "free": 1}},
     "python":   {"packages": {"llama-cpp-python": "0.3.36"}, "llama_supports_gpu_offload": false,
                  "mlx_default_device": null},
     "psutil":   null,
     "measured": {"bandwidth": {...}}}

A path that the snapshot does not mention reads as missing (``NotCaptured``, a kind of
FileNotFoundError, so a probe can say "not captured" rather than "absent"); a command it
does not mention reads as not installed; an NVML value it does not mention fails with
``NOT_CAPTURED`` — distinct from a recorded ``NVML_ERROR_NOT_SUPPORTED``. A MIG instance's
values sit under its parent's ``"mig"`` table, keyed by MIG index. Everything else is validated when the snapshot is loaded, so a
malformed file is one ``QwenctlError`` naming the file, never a traceback later.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

FORMAT = "qwenctl-snapshot"
VERSION = 1
COMMAND_TIMEOUT_S = 5.0


NVML_BINDINGS_MISSING = "PYNVML_NOT_INSTALLED"  # not an NVML code: the Python bindings themselves are missing
NOT_CAPTURED = "NOT_CAPTURED"  # not an NVML code: a snapshot that does not hold this value
NvmlDevice = int | tuple[int, int]  # a GPU's NVML index, or (parent index, MIG index)


class NotCaptured(FileNotFoundError):
    """A path the replayed snapshot does not mention: not captured, as opposed to missing there."""


class NvmlError(Exception):
    """An NVML call failed; ``code`` is the NVML_ERROR_* name (the same live and replayed)."""

    def __init__(self, code: str, message: str | None = None):
        super().__init__(message or code)
        self.code = code


class Source(Protocol):
    """Everything a probe may read. Missing files raise OSError; missing commands give None."""

    system: str  # platform.system()
    machine: str  # platform.machine(): the kernel's architecture
    pointer_bits: int  # this Python's pointers (32 under a 32-bit userland, whatever the kernel): what one process maps

    def read_text(self, path: str) -> str: ...

    def read_bytes(self, path: str) -> bytes: ...  # binary files (SMBIOS tables); kept as base64

    def run(self, argv: Sequence[str]) -> str | None: ...

    def nvml(self, function: str, device: NvmlDevice | None = None, arg: str | None = None) -> Any: ...

    def getenv(self, name: str) -> str | None: ...

    def disk_usage(self, path: str) -> tuple[int, int]: ...  # (total, free) bytes

    def package_version(self, name: str) -> str | None: ...

    def llama_supports_gpu_offload(self) -> bool | None: ...

    def llama_supports_rpc(self) -> bool | None: ...

    def llama_system_info(self) -> str | None: ...  # llama_print_system_info: the CPU features llama.cpp uses

    def mlx_default_device(self) -> str | None: ...

    def psutil_memory(self) -> dict[str, int] | None: ...  # {total, available, swap_total}

    def processor_cores(self) -> bytes | None: ...  # Windows: GetLogicalProcessorInformationEx's core records

    def measured_bandwidth(self) -> dict[str, Any]: ...  # the bandwidth cache: {machine key: record}


def nvml_key(function: str, arg: str | None) -> str:
    """How an NVML call is named in a snapshot: the function, with its constant argument if any."""
    return f"{function}({arg})" if arg else function


def command_key(argv: Sequence[str]) -> str:
    import shlex

    return shlex.join(argv)


# platform.machine() of 32-bit kernels: their userland is 32-bit too
THIRTY_TWO_BIT_MACHINES = ("armv6l", "armv7l", "armv8l", "i386", "i486", "i586", "i686", "x86", "riscv32")


def empty_document(system: str, machine: str, pointer_bits: int = 64) -> dict[str, Any]:
    return {
        "format": FORMAT,
        "version": VERSION,
        "platform": {"system": system, "machine": machine, "pointer_bits": pointer_bits},
        "files": {},
        "commands": {},
        "nvml": {"init_error": None, "system": {}, "devices": []},
        "env": {},
        "disk": {},
        "python": {"packages": {}, "llama_supports_gpu_offload": None, "llama_supports_rpc": None, "mlx_default_device": None,
                   "llama_system_info": None, "processor_cores": None},
        "psutil": None,
        "measured": {"bandwidth": {}},
    }


def __getattr__(name: str) -> Any:
    """The format lives here; ``LiveSource`` (live.py) and ``ReplaySource`` with loading, validating and
    saving (replay.py) load on first use, and old imports keep working."""
    if name == "LiveSource":
        from qwenctl.hardware.live import LiveSource

        return LiveSource
    if name in ("ReplaySource", "load_snapshot", "save_snapshot"):
        from qwenctl.hardware import replay

        return getattr(replay, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
