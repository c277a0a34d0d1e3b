"""How much memory this process holds: host RSS (psutil, the process's own), the clean file pages within it that the OS
may drop, and GPU memory.

GPU memory is the growth of the devices' used memory since a baseline taken before the model was
loaded (what `nvidia-smi` would show as the difference), asked of NVML through hardware's one door
(qwenctl.hardware.usage); every NVML failure means "unknown" (None), never an exception.
"""

from __future__ import annotations

import ctypes
import os
import resource
import sys
from collections.abc import Iterable

import psutil


def host_rss_bytes() -> int:
    return psutil.Process().memory_info().rss


def peak_host_rss_bytes() -> int:
    """The process's peak resident set size so far (getrusage; kB on Linux, bytes on macOS)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024


def resident_file_bytes(ranges: Iterable[tuple[str, int, int]]) -> int:
    """Bytes of whole pages inside the (file, offset, length) ranges that this process maps and has resident.

    llama.cpp mmaps a GGUF and, on a CPU with repacked kernels, copies some weights once at load into an anonymous
    buffer: their file pages stay mapped and resident but are never read again. RSS counts those weights twice; they
    are clean page cache the OS drops when memory runs short. mincore(2) over /proc/self/maps finds them; 0 where
    there is no /proc (macOS)."""
    ranges = tuple(ranges)
    if not ranges:
        return 0
    try:
        with open("/proc/self/maps") as fh:
            lines = fh.read().splitlines()
    except OSError:
        return 0
    maps: dict[str, list[tuple[int, int, int]]] = {}
    for line in lines:
        parts = line.split(maxsplit=5)
        if len(parts) == 6:
            start, end = (int(x, 16) for x in parts[0].split("-"))
            maps.setdefault(parts[5].strip(), []).append((start, end, int(parts[2], 16)))
    libc = ctypes.CDLL(None, use_errno=True)
    page = os.sysconf("SC_PAGE_SIZE")
    total = 0
    for path, offset, length in ranges:
        for start, end, map_offset in maps.get(os.path.realpath(path), ()):
            lo, hi = max(offset, map_offset), min(offset + length, map_offset + (end - start))
            first = -(-(start + lo - map_offset) // page) * page  # whole pages only: a neighbour's share stays
            last = (start + hi - map_offset) // page * page
            if last <= first:
                continue
            vec = (ctypes.c_ubyte * ((last - first) // page))()
            if libc.mincore(ctypes.c_void_p(first), ctypes.c_size_t(last - first), vec) == 0:
                total += sum(b & 1 for b in bytes(vec)) * page
    return total


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
