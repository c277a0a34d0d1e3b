"""How much memory this process holds: host RSS (psutil, the process's own) and GPU memory.

GPU memory is the growth of the devices' used memory since a baseline taken before the model was
loaded (what `nvidia-smi` would show as the difference), asked of NVML through hardware's one door
(qwenctl.hardware.usage); every NVML failure means "unknown" (None), never an exception.
"""

from __future__ import annotations

import resource
import sys

import psutil


def host_rss_bytes() -> int:
    return psutil.Process().memory_info().rss


def peak_host_rss_bytes() -> int:
    """The process's peak resident set size so far (getrusage; kB on Linux, bytes on macOS)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024


def gpu_used_bytes() -> int | None:
    """Bytes in use on all NVIDIA devices, or None where unknown (through hardware's one NVML door)."""
    from qwenctl.hardware import usage

    return usage.gpu_used_bytes()


def gpu_used_by_device() -> tuple[int, ...] | None:
    """Bytes in use on each NVIDIA device (NVML's order), or None where unknown."""
    from qwenctl.hardware import usage

    return usage.gpu_used_by_device()


def nvidia_gpu_present() -> bool:
    """Whether an NVIDIA driver with at least one device answers (for the "no CUDA build" advice)."""
    from qwenctl.hardware import usage

    return usage.nvidia_gpu_present()
