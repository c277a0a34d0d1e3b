"""`detect` and the host's speed device over hwloc's real /proc and /sys captures: a robustness sweep.

hwloc's test suite keeps tarballs of real machines' /proc and /sys (tests/hwloc/linux/*.tar.bz2:
x86 servers and laptops back to the Opteron, a hybrid Raptor Lake, Arm servers, a DGX Spark, Itanium,
POWER, s390). Each is turned into a qwenctl snapshot of the files the probes read and fed through the
same `detect` as a live machine; a probe that raises on any of them is a bug. It prints one line per
machine (what detection found, the threads, clock and host bandwidth the speed model would use: a capture holds no
DIMMs, so the bandwidth is the CPU's rated memory where a table names the part, else the fallback) and asserts nothing.

    git clone https://github.com/open-mpi/hwloc && python benchmarks/detect_hwloc.py hwloc/tests/hwloc/linux
"""

from __future__ import annotations

import argparse
import tarfile
import tempfile
from pathlib import Path

from qwenctl.hardware import detect
from qwenctl.hardware.facts import Cpu, Memory
from qwenctl.hardware.replay import ReplaySource
from qwenctl.hardware.snapshot import empty_document
from qwenctl.machine import host_device, threads

# what the probes read; the per-CPU cpufreq and CPPC files are added for every cpuN present
FILES = ("proc/cpuinfo", "proc/meminfo", "proc/self/cgroup", "proc/device-tree/model",
         "sys/firmware/devicetree/base/model", "sys/devices/cpu_core/cpus", "sys/devices/cpu_atom/cpus")
PER_CPU = ("cpufreq/base_frequency", "cpufreq/cpuinfo_max_freq", "acpi_cppc/nominal_freq")


def snapshot(root: Path) -> dict:
    """A qwenctl snapshot of the capture unpacked at `root` (sysfs's symlinks, cpuN/cpufreq -> policyN, followed)."""
    files = {f"/{p}": (root / p).read_text(errors="replace") for p in FILES if (root / p).is_file()}
    for cpu in (root / "sys/devices/system/cpu").glob("cpu[0-9]*"):
        for rel in PER_CPU:
            if (cpu / rel).is_file():
                files[f"/sys/devices/system/cpu/{cpu.name}/{rel}"] = (cpu / rel).read_text(errors="replace")
    cpuinfo = files.get("/proc/cpuinfo", "")
    machine = "x86_64" if "\nflags" in cpuinfo or cpuinfo.startswith("flags") else \
        "aarch64" if "CPU implementer" in cpuinfo else "unknown"
    doc = empty_document("Linux", machine)
    doc["files"] = files
    doc["nvml"]["init_error"] = "NVML_ERROR_LIBRARY_NOT_FOUND"  # hwloc captures no GPU driver
    return doc


def unpacked(tarball: Path, into: Path) -> Path | None:
    """The machine's root of an unpacked capture (its top folder, or an fsroot/ within), None without /proc/cpuinfo."""
    with tarfile.open(tarball) as tar:
        tar.extractall(into, filter="data")
    for root in (p for top in into.iterdir() for p in (top / "fsroot", top)):
        if (root / "proc/cpuinfo").is_file():
            return root
    return None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("captures", type=Path, help="hwloc's tests/hwloc/linux (or any folder of its .tar.bz2 captures)")
    a = ap.parse_args()
    failures = 0
    for tarball in sorted(a.captures.rglob("*.tar.bz2")):
        name = tarball.name.removesuffix(".tar.bz2")
        with tempfile.TemporaryDirectory() as tmp:
            root = unpacked(tarball, Path(tmp))
            doc = snapshot(root) if root else None
        if doc is None:
            continue
        try:
            hw = detect(ReplaySource(doc, name))
            dev = host_device(hw)
        except Exception as e:  # noqa: BLE001 - the sweep reports every failure and goes on
            failures += 1
            print(f"{name:42s} FAILED {type(e).__name__}: {e}")
            continue
        c = hw.cpu
        cores = (f"{c.physical_cores} cores" + (f" ({c.performance_cores}P + {c.efficiency_cores}E)" if c.performance_cores else "")
                 if isinstance(c, Cpu) else f"cpu absent ({c.reason})")
        ram = f"{hw.memory.total_bytes / 2**30:.0f} GiB" if isinstance(hw.memory, Memory) else "memory absent"
        unknown = next((a for a in dev.assumed if a.startswith("host memory bandwidth unknown")), "")
        how = "" if not unknown else " (the CPU's rating)" if "rated memory" in unknown else " (fallback)"
        print(f"{name:42s} {(c.brand if isinstance(c, Cpu) else '-')[:38]:38s} {cores:24s} {ram:>9s}  "
              f"{threads(hw)} threads at {dev.clock_hz / 1e9:.2f} GHz, {dev.family}, "
              f"{dev.bandwidth_bytes_per_s / 1e9:.1f} GB/s{how}")
    print(f"{failures} failed")


if __name__ == "__main__":
    main()
