"""The CPU probe and the host's speed device over hrw/arm-socs-table's real Arm /proc/cpuinfo captures.

hrw/arm-socs-table keeps /proc/cpuinfo of ~180 Arm machines (cpuinfo-data/: phones from Snapdragon 410 to
8 Elite, Rockchip, Amlogic and MediaTek boards, Apple M1/M2 under Asahi Linux, Graviton, Ampere, Grace, a
DGX Spark). Each is fed through `detect` as a one-file snapshot, as `detect_hwloc.py` does for hwloc's
captures: a probe that raises on any of them is a bug, and a part it cannot name ("unknown ARM CPU") is
priced by its ISA flags alone. It prints one line per machine (the CPU's name, its core kinds, the threads and
the speed model's core row) and the part numbers left unnamed; it asserts nothing.

    git clone https://github.com/hrw/arm-socs-table && python benchmarks/detect_arm_socs.py arm-socs-table/cpuinfo-data
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

from qwenctl.hardware import detect
from qwenctl.hardware.cpu import arm_core_name
from qwenctl.hardware.facts import Cpu
from qwenctl.hardware.replay import ReplaySource
from qwenctl.hardware.snapshot import empty_document
from qwenctl.machine import host_device, threads

PART = re.compile(r"CPU implementer\s*:\s*(\S+)(?:\n[^\n]*){2}\nCPU part\s*:\s*(\S+)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("captures", type=Path, help="arm-socs-table's cpuinfo-data folder")
    a = ap.parse_args()
    failures, unnamed = 0, {}
    for path in sorted(p for p in a.captures.iterdir() if p.is_file()):
        text = path.read_text(errors="replace")
        start = text.find("processor")  # some files carry their collector's header lines
        if start < 0 or "CPU implementer" not in text:
            continue
        doc = empty_document("Linux", "aarch64")
        doc["files"] = {"/proc/cpuinfo": text[start:]}
        doc["nvml"]["init_error"] = "NVML_ERROR_LIBRARY_NOT_FOUND"
        try:
            hw = detect(ReplaySource(doc, path.name))
            dev = host_device(hw)
        except Exception as e:  # noqa: BLE001 - the sweep reports every failure and goes on
            failures += 1
            print(f"{path.name:40s} FAILED {type(e).__name__}: {e}")
            continue
        for implementer, part in PART.findall(text):
            if arm_core_name({"CPU implementer": implementer, "CPU part": part}) is None:
                unnamed.setdefault(f"{implementer.lower()}:{part.lower()}", []).append(path.name)
        c = hw.cpu
        kinds = f"{c.performance_cores}P + {c.efficiency_cores}E" if isinstance(c, Cpu) and c.performance_cores else "alike"
        name = c.brand if isinstance(c, Cpu) else f"absent ({c.reason})"
        print(f"{path.name:40s} {name[:28]:28s} {kinds:10s} {threads(hw):3d} threads, {dev.family}")
    print(f"{failures} failed; parts left unnamed:")
    for part, files in sorted(unnamed.items()):
        print(f"  {part}: {', '.join(sorted(set(files))[:4])}")


if __name__ == "__main__":
    main()
