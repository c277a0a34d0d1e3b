"""What this machine's devices hold *now*, for the engines and bench: the one NVML door, kept open.

``detect`` describes the machine once; a loaded model's memory is measured again and again while it
runs (before loading, after, during bench). Both go through ``LiveSource.nvml``: one process-wide
source here initialises NVML once (the old second door in backends/memory.py called ``nvmlInit`` on
every question) and maps every NVML failure to "unknown", never an exception: no GPU is a normal case.
"""

from __future__ import annotations

import functools
import os
from typing import TYPE_CHECKING

from qwenctl.hardware.snapshot import NvmlError

if TYPE_CHECKING:
    from qwenctl.hardware.live import LiveSource


@functools.lru_cache(maxsize=1)
def _live() -> LiveSource:
    from qwenctl.hardware.live import LiveSource

    return LiveSource()


def gpu_used_bytes() -> int | None:
    """Bytes in use on all NVIDIA devices (NVML), or None where unknown.

    A session's own share is the rise over a baseline taken before it loaded. NVML's per-process
    query (nvmlDeviceGetComputeRunningProcesses) is not used: its structure changed across driver
    versions, and on the GPU machine (driver 580, nvidia-ml-py 13.615, under gVisor) calling it
    crashed the process with a segmentation fault.
    """
    source = _live()
    try:
        return sum(int(source.nvml("nvmlDeviceGetMemoryInfo", i)["used"]) for i in range(int(source.nvml("nvmlDeviceGetCount"))))
    except NvmlError:
        return None


def gpu_used_by_device() -> tuple[int, ...] | None:
    """Bytes in use on each NVIDIA device in NVML's (PCI bus) order, or None where unknown."""
    source = _live()
    try:
        return tuple(int(source.nvml("nvmlDeviceGetMemoryInfo", i)["used"]) for i in range(int(source.nvml("nvmlDeviceGetCount"))))
    except NvmlError:
        return None


def gpu_count() -> int | None:
    """NVIDIA devices NVML sees (physical GPUs, whatever CUDA_VISIBLE_DEVICES says), or None where it cannot say."""
    try:
        return int(_live().nvml("nvmlDeviceGetCount"))
    except NvmlError:
        return None


def nvidia_gpu_present() -> bool:
    """Whether an NVIDIA driver with at least one device answers (for the "no CUDA build" advice);
    where NVML cannot answer, whether the driver is loaded at all."""
    try:
        return int(_live().nvml("nvmlDeviceGetCount")) > 0
    except NvmlError:
        return os.path.exists("/proc/driver/nvidia/version")


def apple_silicon() -> bool:
    """Whether this is a Mac with Apple Silicon (Metal)."""
    source = _live()
    return source.system == "Darwin" and source.machine == "arm64"
