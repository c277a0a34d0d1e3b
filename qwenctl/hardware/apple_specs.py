"""Peak figures of an Apple Silicon GPU that no probe reports: its chip configuration's row (cores, clock, bandwidth)
in hardware/data/devices.json, or, for a chip newer than the table, the listed configurations that bound it, with
what was assumed said in ``assumed``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from qwenctl.hardware._parse import data, devices
from qwenctl.hardware.facts import AppleSilicon


@dataclass(frozen=True)
class ApplePeaks:
    family: str
    gpu_cores: int
    clock_hz: float
    fp32_flops: float
    bandwidth_bytes_per_s: float | None
    source: str
    assumed: tuple[str, ...] = ()
    dies: int = 1  # an Ultra is two Max dies joined by UltraFusion: one GPU to software, two to synchronise
    matrix_flops: float = 0.0  # fp16 matrix peak: the GPU cores' Neural Accelerators where they have them (M5), else fp32_flops


APPLE_ALU_FLOP_PER_CYCLE = 256  # an Apple GPU core: 128 FP32 lanes x 2 (FMA), half precision alike


def apple_spec(chip: str, gpu_cores: int | None) -> dict | None:
    """The specification of one Apple chip configuration ("Apple M3 Max" with 40 GPU cores), None if not in the table."""
    return next((r for r in devices()["apple"] if r["chip"] == chip and r["gpu_cores"] == gpu_cores), None)


def apple_spec_by_key(key: str) -> dict | None:
    """An Apple chip configuration by its key ("apple-m2-max-38c")."""
    return next((r for r in devices()["apple"] if r.get("key") == key), None)


def apple_generation(chip: str) -> int | None:
    """The M generation of an Apple chip's GPU: an M chip's own number; an iPhone chip in a Mac (the MacBook Neo's
    A18 Pro) that of the M series in its Metal GPU family and year (devices.json `apple_a_series_generation`)."""
    m = re.search(r"\bM(\d+)", chip)
    if m:
        return int(m.group(1))
    a = re.search(r"\bA(\d+)", chip)
    return devices()["apple_a_series_generation"].get(a.group(0)) if a else None


def apple_peaks(apple: AppleSilicon) -> ApplePeaks:
    gen = apple_generation(apple.chip)
    rows = [r for r in devices()["apple"] if r["chip"] == apple.chip]
    by_cpu = None if apple.gpu_cores else _gpu_cores_of_cpu(apple)
    exact = apple_spec(apple.chip, apple.gpu_cores or by_cpu)
    assumed = []
    stand_in = None if rows or gen is None else _unlisted_apple(apple.chip, gen)
    if stand_in:  # a chip newer than this table: priced as the listed configurations that bound it
        rows, stand_gen, bandwidth_gbs, why = stand_in
        assumed.append(why)
        # the GPU's generation its own where the table has it (an A19 Pro's is the M5's), else the stand-in's
        gen = gen if any(apple_generation(r["chip"]) == gen for r in devices()["apple"]) else stand_gen
    family = f"apple-m{gen}" if gen else "apple-unknown"
    dies = 2 if stand_in and _apple_tier(apple.chip) == "M Ultra" else int(rows[0].get("dies", 1)) if rows else 1
    same_gen = [r for r in devices()["apple"] if gen and apple_generation(r["chip"]) == gen]
    # matrix work per core a cycle: a generation's Neural Accelerators (M5: 4x the ALUs), else the ALUs
    per_core = float(next((r["gpu_matrix_flop_per_cycle_per_core"] for r in same_gen if r.get("gpu_matrix_flop_per_cycle_per_core")),
                          APPLE_ALU_FLOP_PER_CYCLE))
    if exact:
        clock = _apple_clock(exact)
        fp32 = (exact.get("gpu_fp32_tflops") or exact["gpu_cores"] * APPLE_ALU_FLOP_PER_CYCLE * clock / 1e3) * 1e12
        settled = (f", its GPU cores told by its {apple.performance_cores}P + {apple.efficiency_cores}E CPU" if by_cpu else "")
        return ApplePeaks(family, exact["gpu_cores"], clock * 1e9, fp32, exact["bandwidth_gbs"] * 1e9,
                          f"{exact['key']} specification ({exact['sources'][0][:80]}...){settled}", dies=dies,
                          matrix_flops=fp32 * per_core / APPLE_ALU_FLOP_PER_CYCLE)
    clock = _apple_clock(same_gen[0]) if same_gen else devices()["apple_default_gpu_clock_ghz"]
    cores = apple.gpu_cores or (dies * min(r["gpu_cores"] for r in rows) if rows else 8)
    if not apple.gpu_cores:
        assumed.append(f"{apple.chip}: GPU core count unknown, assumed the smallest configuration's {cores}")
    if not same_gen:
        assumed.append(f"{apple.chip}: GPU clock unknown, assumed {clock} GHz")
    bw = (bandwidth_gbs * 1e9 if stand_in else
          rows[0]["bandwidth_gbs"] * 1e9 if len({r["bandwidth_gbs"] for r in rows}) == 1 else None)
    return ApplePeaks(family, cores, clock * 1e9, cores * APPLE_ALU_FLOP_PER_CYCLE * clock * 1e9, bw,
                      f"{cores} GPU cores x 128 FP32 lanes x 2 x {clock} GHz (hardware/data/devices.json)", tuple(assumed), dies,
                      matrix_flops=cores * per_core * clock * 1e9)


def _apple_tier(chip: str) -> str | None:
    """The line and tier of an Apple chip's name: "M Max", "M" (a base M chip), "A Pro" (an iPhone chip in a Mac, the
    MacBook Neo's A18 Pro); None for any other name."""
    m = re.fullmatch(r"Apple ([MA])\d+(?: (Pro|Max|Ultra))?", chip)
    return " ".join(filter(None, m.groups())) if m else None


def _unlisted_apple(chip: str, gen: int) -> tuple[list[dict], int, float, str] | None:
    """(the listed configurations standing in, their generation, GB/s, why) for an Apple chip newer than devices.json.

    An Ultra is two Max dies joined by UltraFusion, each with its own memory (M1, M2 and M3 Ultra: twice their Max's
    400 GB/s, 819 for the M3's faster memory): twice the newest listed Max of its generation or before. Any other
    tier takes the newest listed generation's same tier at its lowest bin, an assumption it names: bandwidth has
    mostly grown from one generation to the next (M1 68 -> M2 100 -> M3 100 -> M4 120 -> M5 153 GB/s), not always
    (the M3 Pro's 150 after the M2 Pro's 200); an iPhone chip in a Mac, as the newest listed one of its tier (an A19
    Pro as the A18 Pro). Without this an M5 Ultra was planned at the 100 GB/s fallback, a 14B at 10 tok/s on a chip
    of ~1.2 TB/s.
    """
    tier = _apple_tier(chip)
    if tier is None:
        return None
    listed = [r for r in devices()["apple"] if _apple_tier(r["chip"]) is not None]
    if tier == "M Ultra":
        maxes = [r for r in listed if _apple_tier(r["chip"]) == "M Max" and (apple_generation(r["chip"]) or 0) <= gen]
        if not maxes:
            return None
        g = max(apple_generation(r["chip"]) or 0 for r in maxes)
        rows = [r for r in maxes if apple_generation(r["chip"]) == g]
        gbs = 2 * max(r["bandwidth_gbs"] for r in rows)
        return rows, g, gbs, (f"{chip}: not in this release's table; priced as two {rows[0]['chip']} dies (every Ultra is two "
                              f"Max dies joined by UltraFusion): {gbs:g} GB/s")
    same = [r for r in listed if _apple_tier(r["chip"]) == tier and (apple_generation(r["chip"]) or 0) < gen]
    if not same:
        return None
    g = max(apple_generation(r["chip"]) or 0 for r in same)
    rows = [r for r in same if apple_generation(r["chip"]) == g]
    gbs = min(r["bandwidth_gbs"] for r in rows)
    return rows, g, gbs, (f"{chip}: not in this release's table; priced as the {rows[0]['chip']}, the newest of its tier listed "
                          f"({gbs:g} GB/s, its lowest bin)")


def _gpu_cores_of_cpu(apple: AppleSilicon) -> int | None:
    """The GPU core count the CPU core count settles where ioreg gave none: Apple sells each GPU bin of an M3 Max or
    M4 Max only with its own CPU bin (apple_silicon.json `configurations`: 14 cores with 30 or 32 GPU cores, 16 with
    40). None where the CPU is not known or no such pairing is listed."""
    if apple.performance_cores is None or apple.efficiency_cores is None:
        return None
    cpu_cores = apple.performance_cores + apple.efficiency_cores
    rows = data("apple_silicon.json")["bandwidth"]["configurations"].get(apple.chip, [])
    found = [r["gpu_cores"] for r in rows if r["cpu_cores"] == cpu_cores]
    return int(found[0]) if len(found) == 1 else None


def _apple_clock(row: dict) -> float:
    """GHz of an Apple GPU configuration; the M5s have none published: the newest earlier generation's."""
    if row.get("gpu_clock_ghz"):
        return float(row["gpu_clock_ghz"])
    return max(float(r["gpu_clock_ghz"]) for r in devices()["apple"] if r.get("gpu_clock_ghz"))
