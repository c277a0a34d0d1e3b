"""Host memory bandwidth, MEASURED: a short multi-threaded read test, cached per machine.

Used where nothing the OS tells settles the figure (x86 without readable SMBIOS, ARM servers,
VMs). ``measure()`` reads a buffer several times the last-level cache with one thread per
physical core, each summing its own slice as int64 (numpy's reductions release the GIL and
run vectorised, so the threads really run in parallel), and reports the best of a few
repeats: the figure an inference engine streaming weights can get. Well under a second.
``record()`` keeps it in the user cache (platformdirs), keyed by CPU brand + RAM + cores, so
a plain `qwenctl detect` reads it back cheaply as "measured <date> by qwenctl detect --measure".

    from qwenctl.hardware import bandwidth
    m = bandwidth.measure(threads=8)
    bandwidth.record(bandwidth.machine_key("AMD EPYC", 25 << 30, 8), m)
    bandwidth.cached(bandwidth.machine_key(...))     # the record, or None
"""

from __future__ import annotations

import datetime
import json
import os
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from qwenctl.errors import ExitCode, QwenctlError
from qwenctl.install import INSTALL

MIB = 1 << 20
MIN_BUFFER = 256 * MIB  # several times any desktop or server L3 cache per socket
MAX_BUFFER = 1024 * MIB
LLC_MULTIPLE = 8
REPEATS = 5
MEASURED_BY = "qwenctl detect --measure"


@dataclass(frozen=True)
class Measurement:
    bytes_per_s: int  # the best repeat
    threads: int
    buffer_bytes: int
    repeats: int
    seconds: float  # the whole test, allocation included
    date: str  # ISO date of the measurement
    method: str = "numpy int64 sum of a private slice per thread, best of repeats"


def measure(threads: int | None = None, buffer_bytes: int | None = None, repeats: int = REPEATS) -> Measurement:
    """Run the read test now. ``threads`` defaults to the CPU count (pass physical cores)."""
    try:
        import numpy as np
    except ImportError:
        raise QwenctlError("measuring memory bandwidth needs numpy", hint=INSTALL["numpy"],
                           code=ExitCode.ERROR) from None
    started = time.perf_counter()
    threads = max(1, threads or os.cpu_count() or 1)
    size = buffer_bytes or default_buffer_bytes()
    size -= size % (8 * threads)
    buffer = np.ones(size // 8, dtype=np.int64)  # written once: every page is resident before timing
    slices = np.array_split(buffer, threads)
    start, done = threading.Barrier(threads + 1), threading.Barrier(threads + 1)
    stop = False
    spans: list[tuple[float, float]] = [(0.0, 0.0)] * threads

    def worker(n: int, part: Any) -> None:
        # Each thread times itself: the main thread may be descheduled right after the
        # barrier (more threads than free cores), which would shorten a wall-clock span.
        while True:
            start.wait()
            if stop:
                return
            t0 = time.perf_counter()
            part.sum()
            spans[n] = (t0, time.perf_counter())
            done.wait()

    pool = [threading.Thread(target=worker, args=(n, s), daemon=True) for n, s in enumerate(slices)]
    for t in pool:
        t.start()
    best = 0.0
    for _ in range(repeats):
        start.wait()
        done.wait()
        elapsed = max(end for _, end in spans) - min(begin for begin, _ in spans)
        best = max(best, size / elapsed)
    stop = True
    start.wait()
    for t in pool:
        t.join()
    return Measurement(int(best), threads, size, repeats, round(time.perf_counter() - started, 3),
                       datetime.date.today().isoformat())


def default_buffer_bytes() -> int:
    """LLC_MULTIPLE x the last-level cache, at least MIN_BUFFER, at most MAX_BUFFER."""
    llc = 0
    for index in range(4, -1, -1):  # highest cache level first
        try:
            text = Path(f"/sys/devices/system/cpu/cpu0/cache/index{index}/size").read_text().strip()
        except OSError:
            continue
        units = {"K": 1024, "M": MIB, "G": 1 << 30}
        llc = int(text.rstrip("KMG")) * units.get(text[-1], 1)
        break
    return min(MAX_BUFFER, max(MIN_BUFFER, LLC_MULTIPLE * llc))


def machine_key(cpu_brand: str, ram_bytes: int, cores: int) -> str:
    """What a measurement belongs to: the same CPU, RAM size and core count."""
    return f"{cpu_brand}|{ram_bytes}|{cores}"


def cache_path() -> Path:
    import platformdirs

    return platformdirs.user_cache_path("qwenctl") / "bandwidth.json"


# This process's measurements the cache could not keep (a full disk, a read-only home): they still count until it exits.
_UNSAVED: dict[str, dict[str, Any]] = {}


class NotRemembered(QwenctlError):
    """A measurement the cache could not keep; this process still reads it (`read_cache`)."""


def read_cache() -> dict[str, Any]:
    """{machine key: record}, with this process's unsaved measurements; an unreadable or foreign cache reads as empty
    (it is only a cache)."""
    try:
        doc = json.loads(cache_path().read_text(encoding="utf-8"))
    except (OSError, ValueError):
        doc = {}
    return {**(doc if isinstance(doc, dict) else {}), **_UNSAVED}


def cached(key: str) -> dict[str, Any] | None:
    record = read_cache().get(key)
    return record if isinstance(record, dict) and isinstance(record.get("bytes_per_s"), int) else None


def record(key: str, m: Measurement) -> dict[str, Any]:
    """Store a measurement for this machine (atomically) and return the record written. `NotRemembered` where the
    cache cannot be written: the measurement then holds for this process only."""
    from qwenctl import files

    entry = {**asdict(m), "source": f"measured {m.date} by {MEASURED_BY}"}
    doc = read_cache()
    doc[key] = entry
    path = cache_path()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        files.write_text(path, json.dumps(doc, indent=1) + "\n")
    except OSError as e:
        _UNSAVED[key] = entry
        raise NotRemembered(f"cannot write the bandwidth cache {path}: {e.strerror or e}", code=ExitCode.ERROR) from None
    _UNSAVED.pop(key, None)
    return entry
