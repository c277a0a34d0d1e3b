"""How much memory this process holds: host RSS (psutil) and GPU memory (NVML).

NVML is asked for this process's own usage first; inside a container the PID namespace
often hides it, so the fallback is the growth of the devices' used memory since a
baseline taken before the model was loaded (what `nvidia-smi` would show as the difference).
Every NVML failure means "unknown" (None), never an exception: no GPU is a normal case.
"""

from __future__ import annotations

import os
import resource
import sys

import psutil


def host_rss_bytes() -> int:
    return psutil.Process().memory_info().rss


def peak_host_rss_bytes() -> int:
    """The process's peak resident set size so far (getrusage; kB on Linux, bytes on macOS)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024


def _nvml():
    try:
        import pynvml

        pynvml.nvmlInit()
        return pynvml
    except Exception:  # no driver, no library, no GPU: all mean "unknown"
        return None


def gpu_used_bytes() -> int | None:
    """Bytes in use on all NVIDIA devices (NVML), or None where unknown.

    A session's own share is the rise over a baseline taken before it loaded. NVML's per-process
    query (nvmlDeviceGetComputeRunningProcesses) is not used: its structure changed across driver
    versions, and on the GPU machine (driver 580, nvidia-ml-py 13.615, under gVisor) calling it
    crashed the process with a segmentation fault.
    """
    nvml = _nvml()
    if nvml is None:
        return None
    try:
        return sum(nvml.nvmlDeviceGetMemoryInfo(nvml.nvmlDeviceGetHandleByIndex(i)).used
                   for i in range(nvml.nvmlDeviceGetCount()))
    except nvml.NVMLError:
        return None


def nvidia_gpu_present() -> bool:
    """Whether an NVIDIA driver with at least one device answers (for the "no CUDA build" advice)."""
    nvml = _nvml()
    if nvml is None:
        return os.path.exists("/proc/driver/nvidia/version")
    try:
        return nvml.nvmlDeviceGetCount() > 0
    except nvml.NVMLError:
        return False


def gpu_names() -> list[str]:
    """NVIDIA device names, for labelling where a measurement came from."""
    nvml = _nvml()
    if nvml is None:
        return []
    try:
        names = [nvml.nvmlDeviceGetName(nvml.nvmlDeviceGetHandleByIndex(i)) for i in range(nvml.nvmlDeviceGetCount())]
    except nvml.NVMLError:
        return []
    return [n.decode() if isinstance(n, bytes) else n for n in names]
