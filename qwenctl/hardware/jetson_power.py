"""A Jetson's power mode, as its GPU runs under it: nvpmodel's modes below MAXN cap the GPU's devfreq clock and power
some of its TPCs off (the AGX Orin 64GB in its 30 W mode decoded Llama-3.1-8B Q4_K_M at 8.09 tok/s against MAXN's 26.9:
benchmarks/published_late7.json), while the module's specification row is its MAXN. Both are files nvpmodel writes
(its configuration names them: PARAM GPU MAX_FREQ and TPC_POWER_GATING TPC_PG_MASK), read here as the mode left them.
The paths are JetPack 6's and JetPack 5's, as `nvpmodel -q --verbose` prints them on an Orin Nano (L4T r36.4) and an
Orin NX (L4T r35)."""

from __future__ import annotations

from dataclasses import replace

from qwenctl.hardware.facts import NvidiaGpu
from qwenctl.hardware.snapshot import Source

CLOCK_CAPS = ("/sys/devices/platform/17000000.gpu/devfreq_dev/max_freq",  # JetPack 6
              "/sys/devices/17000000.ga10b/devfreq_dev/max_freq")  # JetPack 5
TPC_MASKS = ("/sys/devices/platform/gpu.0/tpc_pg_mask", "/sys/devices/gpu.0/tpc_pg_mask")


def with_power_mode(source: Source, gpu: NvidiaGpu) -> NvidiaGpu:
    """``gpu`` (a Jetson's integrated GPU) with what its power mode allows: the devfreq clock cap in MHz and the TPC
    mask, each None, with why, where no file answered."""
    clock_hz, clock_why = _first_int(source, CLOCK_CAPS)
    mask, mask_why = _first_int(source, TPC_MASKS)
    unknown = tuple((f, why) for f, why in (("power_mode_clock_mhz", clock_why), ("power_mode_tpc_mask", mask_why)) if why)
    return replace(gpu, power_mode_clock_mhz=clock_hz / 1e6 if clock_hz else None, power_mode_tpc_mask=mask,
                   unknown=gpu.unknown + unknown)


def _first_int(source: Source, paths: tuple[str, ...]) -> tuple[int | None, str]:
    """The integer the first readable file of ``paths`` holds, else (None, why)."""
    for path in paths:
        try:
            return int(source.read_text(path).strip()), ""
        except (OSError, ValueError):
            continue
    return None, f"none of {', '.join(paths)} could be read"
