"""Apple Silicon: chip, core clusters, GPU cores, unified memory and the GPU's wired limit.

All from one `sysctl` call (hw.memsize, machdep.cpu.brand_string, hw.perflevel0/1.physicalcpu,
iogpu.wired_limit_mb) plus `ioreg` for the GPU core count (`gpu-core-count` of the
AGXAccelerator; `system_profiler SPDisplaysDataType` has it too but takes ~0.5 s).

How much memory Metal lets the GPU wire by default is not exposed by sysctl: it is
MTLDevice.recommendedMaxWorkingSetSize, which observed Macs put at 2/3 of RAM below 64 GiB
and 3/4 above (sources in data/apple_silicon.json and docs/detect.md). mlx-lm raises its
wired limit to that figure; `sudo sysctl iogpu.wired_limit_mb=N` overrides it, and a value
above 0 is what counts.
"""

from __future__ import annotations

import re

from qwenctl.hardware._parse import data, sysctl, to_int
from qwenctl.hardware.facts import Absent, AppleSilicon
from qwenctl.hardware.snapshot import Source

IOREG_ARGV = ("ioreg", "-rc", "AGXAccelerator", "-d", "1")
VIRTUAL = " (Virtual)"  # what macOS adds to the chip's name in a guest of Apple's Virtualization framework
_GPU_CORES = re.compile(r'"gpu-core-count"\s*=\s*(\d+)')
MIB = 1024 * 1024


def probe(source: Source) -> AppleSilicon | Absent:
    if source.system != "Darwin":
        return Absent(f"not a Mac ({source.system})")
    values = sysctl(source)
    if values is None:
        return Absent("sysctl gave no answer")
    if values.get("hw.optional.arm64") != "1" and source.machine != "arm64":
        return Absent("an Intel Mac (no unified memory for Metal to share)")
    if virtual_machine(values.get("machdep.cpu.brand_string", "")):
        return Absent(f"a virtual machine on an {chip_named(values['machdep.cpu.brand_string'])}: its GPU is Apple's "
                      "paravirtual device, which runs no Metal Performance Shaders and has crashed ggml's Metal "
                      "encoder on CI runners (docs/detect.md)")
    ram = to_int(values.get("hw.memsize"), "hw.memsize")
    limit, why = wired_limit(ram, values.get("iogpu.wired_limit_mb"))
    brand = values.get("machdep.cpu.brand_string", "Apple Silicon")
    chip = chip_named(brand)
    p_cores, e_cores = values.get("hw.perflevel0.physicalcpu"), values.get("hw.perflevel1.physicalcpu")
    gpu_cores = _gpu_cores(source)
    cpu_cores = to_int(values["hw.physicalcpu"], "hw.physicalcpu") if values.get("hw.physicalcpu") else None
    bandwidth, bandwidth_source = chip_bandwidth(chip, gpu_cores, cpu_cores)
    if chip != brand:
        bandwidth_source += f", the chip macOS 11 named {brand!r}"
    return AppleSilicon(
        chip=chip,
        performance_cores=to_int(p_cores, "hw.perflevel0.physicalcpu") if p_cores else None,
        efficiency_cores=to_int(e_cores, "hw.perflevel1.physicalcpu") if e_cores else None,
        gpu_cores=gpu_cores,
        unified_memory_bytes=ram,
        gpu_wired_limit_bytes=limit,
        gpu_wired_limit_source=why,
        bandwidth_bytes_per_s=bandwidth,
        bandwidth_source=bandwidth_source if bandwidth else None,
    )


def virtual_machine(brand: str) -> bool:
    """Whether macOS runs as a guest of Apple's Virtualization framework (GitHub's and most CI runners, UTM, Tart),
    which names the host's chip with " (Virtual)" added ("Apple M1 (Virtual)"): its CPUs are a share of the host's
    cores, its GPU a paravirtual device."""
    return brand.endswith(VIRTUAL)


def chip_named(brand: str) -> str:
    """The chip a brand string names: macOS 11 called the M1, the only Apple silicon Mac chip of its time, "Apple
    processor" (apple_silicon.json `brand_aliases`, with the sources), which left a Big Sur M1 planned at a guessed
    100 GB/s instead of its 68.25; a virtual machine's "Apple M1 (Virtual)" is the host's M1."""
    brand = brand.removesuffix(VIRTUAL)
    alias = data("apple_silicon.json")["brand_aliases"].get(brand)
    return str(alias["chip"]) if isinstance(alias, dict) else brand


def chip_bandwidth(chip: str, gpu_cores: int | None, cpu_cores: int | None) -> tuple[int | None, str]:
    """(bytes/s, where from) or (None, why not): by chip, then GPU cores, then CPU cores."""
    table = data("apple_silicon.json")["bandwidth"]
    if chip in table["chips"]:
        return table["chips"][chip], f"{chip} (Apple specifications)"
    options = table["configurations"].get(chip)
    if options is None:
        return None, f"no published bandwidth for {chip!r} in apple_silicon.json"
    for key, count, what in (("gpu_cores", gpu_cores, "GPU"), ("cpu_cores", cpu_cores, "CPU")):
        for row in options:
            if count is not None and row[key] == count:
                return row["bytes_per_s"], f"{chip} with {count}-core {what} (Apple specifications)"
    return None, (f"Apple publishes {' or '.join(str(r['bytes_per_s'] // 10**9) for r in options)} GB/s for the {chip} "
                  f"with a {' or '.join(str(r['gpu_cores']) for r in options)}-core GPU; this one's GPU cores ({gpu_cores}) "
                  f"and CPU cores ({cpu_cores}) match none")


def wired_limit(ram_bytes: int, wired_limit_mb: str | None) -> tuple[int, str]:
    """(bytes the GPU may wire, why): the iogpu.wired_limit_mb override, else the default rule."""
    if wired_limit_mb and to_int(wired_limit_mb, "iogpu.wired_limit_mb") > 0:
        return to_int(wired_limit_mb, "iogpu.wired_limit_mb") * MIB, "iogpu.wired_limit_mb"
    for rule in data("apple_silicon.json")["wired_limit"]["rules"]:
        if rule["below_bytes"] is None or ram_bytes < rule["below_bytes"]:
            fraction = rule["fraction"]
            share = "2/3" if fraction < 0.7 else "3/4"
            return int(ram_bytes * fraction), f"macOS default, {share} of RAM (recommendedMaxWorkingSetSize)"
    raise AssertionError("the last wired-limit rule has no bound")


def _gpu_cores(source: Source) -> int | None:
    out = source.run(IOREG_ARGV)
    match = _GPU_CORES.search(out or "")
    return int(match.group(1)) if match else None
