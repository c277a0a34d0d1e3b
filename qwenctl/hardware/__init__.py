"""``detect()``: run every probe against one source of raw inputs and collect the facts.

Each probe is wrapped so that an *expected* failure — an OSError reading /proc or /sys, an
NVML error, input that does not parse — becomes ``Absent("because …")`` and the report goes
on. Any other exception is a bug and propagates, so tests see it.

    from qwenctl.hardware import detect, load_snapshot
    hw = detect()                                   # this machine
    hw = detect(load_snapshot("pi5.json"))          # a recorded machine
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from qwenctl.hardware.facts import Absent, Board, Hardware, Memory, hardware_from_dict

if TYPE_CHECKING:
    from qwenctl.hardware.live import LiveSource
    from qwenctl.hardware.replay import ReplaySource, load_snapshot, save_snapshot
    from qwenctl.hardware.snapshot import Source

__all__ = ["LiveSource", "ReplaySource", "Source", "detect", "hardware_from_dict", "load_snapshot", "measure_bandwidth",
           "save_snapshot"]

log = logging.getLogger(__name__)
T = TypeVar("T")
# name -> the module it lives in (snapshot.py: the format; live.py: this machine; replay.py: a recorded one)
_LAZY = {"LiveSource": "live", "ReplaySource": "replay", "Source": "snapshot", "load_snapshot": "replay",
         "save_snapshot": "replay"}


def __getattr__(name: str) -> Any:
    """The snapshot layer loads on first use: `import qwenctl.hardware.facts` (which every
    command's renderer does) must not pay for the probes."""
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f"qwenctl.hardware.{_LAZY[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def detect(source: Source | None = None) -> Hardware:
    """The facts of this machine (or of the machine a snapshot source recorded)."""
    from qwenctl.hardware import apple, cpu, disk, drm, engines, memory, nvidia, raspberry_pi
    from qwenctl.hardware.live import LiveSource

    source = source or LiveSource()
    mem = _probe("memory", lambda: memory.probe(source))
    the_cpu = _probe("cpu", lambda: cpu.probe(source))
    the_apple = _probe("apple", lambda: apple.probe(source))
    board = _probe("board", lambda: raspberry_pi.probe(source))
    if isinstance(mem, Memory):
        mem = _with_bandwidth(source, mem, the_cpu, the_apple, board)
    host_ram = mem.total_bytes if isinstance(mem, Memory) else None
    host_bw = mem.bandwidth_bytes_per_s if isinstance(mem, Memory) else None
    return Hardware(
        system=source.system,
        machine=source.machine,
        cpu=the_cpu,
        memory=mem,
        nvidia=_probe("nvidia", lambda: nvidia.probe(source, host_ram, host_bw, board.model if isinstance(board, Board) else None)),
        apple=the_apple,
        board=board,
        disk=_probe("disk", lambda: disk.probe(source)),
        backends=_probe("backends", lambda: engines.probe(source)),
        display_gpus=drm.probe(source),
    )


def _with_bandwidth(source: Source, mem: Memory, cpu: Any, apple: Any, board: Any) -> Memory:
    """Memory with the host bandwidth filled in, or its absence explained in ``unknown``."""
    import dataclasses

    from qwenctl.hardware import host_bandwidth

    found = _probe("memory bandwidth", lambda: host_bandwidth.probe(source, mem, cpu, apple, board))
    if isinstance(found, Absent):
        value, how, measured = None, found.reason, False
    else:
        value, how, measured = found
    if value:
        return dataclasses.replace(mem, bandwidth_bytes_per_s=value, bandwidth_source=how, bandwidth_measured=measured)
    return dataclasses.replace(mem, unknown=mem.unknown + (("bandwidth_bytes_per_s", how),))


def measure_bandwidth(hw: Hardware) -> tuple[Any, str | None]:
    """Measure host memory bandwidth now (threads = physical cores) and cache it for this
    machine, so later `detect()` calls report it; returns the ``bandwidth.Measurement`` and, where
    the cache could not keep it (later `detect()` calls of this process still see it), why.
    The run pipeline calls this once before the first plan that needs a host bandwidth."""
    from qwenctl.hardware import bandwidth, host_bandwidth
    from qwenctl.hardware.facts import Cpu

    threads = hw.cpu.physical_cores if isinstance(hw.cpu, Cpu) else None
    m = bandwidth.measure(threads=threads)
    key = host_bandwidth.machine_key(hw.cpu, hw.memory) if isinstance(hw.memory, Memory) else None
    try:
        if key:
            bandwidth.record(key, m)
    except bandwidth.NotRemembered as e:
        return m, e.one_line()
    return m, None


def _probe(name: str, run: Callable[[], T | Absent]) -> T | Absent:
    from qwenctl.hardware._parse import ParseError
    from qwenctl.hardware.snapshot import NvmlError

    try:
        return run()
    except OSError as e:
        where = f" {e.filename}" if e.filename else ""
        reason = f"cannot read{where}: {e.strerror or e}"
    except NvmlError as e:
        reason = f"NVML failed: {e.code}"
    except ParseError as e:
        reason = f"unexpected input: {e}"
    log.info("%s probe absent: %s", name, reason)
    return Absent(reason)
