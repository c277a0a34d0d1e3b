"""Arm cloud VMs' llama.cpp CPU decode from SpareCores' public inspector data, as rows for speed_model_fit.py --score.

    python benchmarks/sparecores_arm_rows.py MIRROR > /tmp/rows.json && cp /tmp/rows.json benchmarks/published_sparecores_arm.json

The Arm half of what benchmarks/sparecores_rows.py converts for x86 (its docstring tells the harness: one prebuilt
build, 51f311e0 (4753), llama-bench `-t <vCPUs> -fa 1 -ngl 0`, tg128 and pp512 of LLaMA-1 7B Q4_K_M, lmbench's
`bw_mem`). On arm64 that build is llama.cpp's Docker image, compiled for a generic armv8-a: each row carries the CPU
features its system info would report (`llama_cpp_cpu_flags`, `BUILD_CPU_FLAGS`), which lack the cores' dot products. Kept: aarch64 VMs whose lscpu names a core devices.json maps (Graviton 1 to 5, Ampere Altra, Azure Cobalt
100, Google Axion and T2A, Alibaba Yitian 710 and its N1 parts, Hetzner's CAX), at every thread count: an Arm vCPU is a
whole core. Each VM is its own host: its core and ISA from lscpu, as its clock lscpu's `CPU max MHz` or else the nominal
clock its SMBIOS processor name carries (lscpu's `BIOS Model name`, "AWS Graviton3 CPU @ 2.6GHz"), and as its memory
bandwidth what bw_mem read from the largest buffer there, marked measured. Every row is held out: nothing is fitted on
them unless a script says so and splits them first.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent)]

from sparecores_rows import LLAMA_7B, MODEL_FILE, SOURCE, bench_rows, convert, host_key, read_instance  # noqa: E402

from qwenctl.hardware._parse import devices  # noqa: E402
from qwenctl.hardware.cpu import ARM_FEATURES  # noqa: E402
from qwenctl.hardware.cpu_specs import clock_in_name  # noqa: E402

# What llama_print_system_info's CPU part says of the binary SpareCores ran: ghcr.io/ggml-org/llama.cpp:full-b4753
# (github.com/SpareCores/sc-images images/benchmark-llm/Dockerfile at 5f44c28), whose arm64 build was configured
# -DGGML_NATIVE=OFF -DGGML_CPU_ARM_ARCH=armv8-a (.devops/cpu.Dockerfile since https://github.com/ggml-org/llama.cpp/pull/11419,
# 2025-01-25; "The ARM images are not very useful for inference until runtime detection of CPU features is
# implemented", #13356): NEON and nothing newer, so no dot products, i8mm or fp16 arithmetic on any of these cores.
BUILD_CPU_FLAGS = ("neon",)


def arm_cores() -> set[str]:
    """The Arm core names devices.json maps to a throughput row (`core_of.arm`)."""
    return set(devices()["core_of"]["arm"])


def nominal_clock_ghz(cpu: dict[str, str]) -> float | None:
    """cpufreq's maximum where the VM has one, else the clock in its SMBIOS processor name; None where neither says."""
    if cpu.get("CPU max MHz"):
        return round(float(cpu["CPU max MHz"]) / 1000, 3)
    return clock_in_name(cpu.get("BIOS Model name", ""))


def host_spec(folder: str, cpu: dict[str, str], bandwidth: float, cores: int) -> dict:
    flags = set(cpu.get("Flags", "").split())
    clock = nominal_clock_ghz(cpu)
    return {
        "cpu": cpu["Model name"],
        "cores": {"performance": cores, "efficiency": 0},
        "threads_total": int(cpu.get("CPU(s)", cores)),
        "clock_ghz": {"base": clock, "max_turbo": None, "all_core_typical": None,
                      "note": "lscpu's CPU max MHz, else the clock in its BIOS Model name (the SMBIOS processor version)"},
        "isa": sorted({ARM_FEATURES[f] for f in flags if f in ARM_FEATURES}),
        "core_type": f"ARM {cpu['Model name']} ({cpu.get('BIOS Model name', '').strip()}), "
                     f"{cpu.get('Hypervisor vendor', 'no')} hypervisor",
        "memory": {"type": "a cloud VM's share (not a specification)", "bandwidth_gbs": round(bandwidth / 1e9, 2), "measured": True,
                   "note": "lmbench bw_mem read at its largest buffer on this VM (bw_mem/stdout)"},
        "sources": [f"{SOURCE} {folder}/lscpu/stdout and {folder}/bw_mem/stdout"],
    }


def instance_rows(mirror: Path, folder: str, cores: set[str], model_file: str = MODEL_FILE,
                  model: tuple[str, str] = LLAMA_7B) -> tuple[list[dict], dict | None]:
    got = read_instance(mirror, folder, model_file)
    if got is None:
        return [], None
    cpu, tg, pp, bandwidth = got
    if cpu.get("Architecture") != "aarch64" or cpu.get("Model name") not in cores:
        return [], None
    host = host_spec(folder, cpu, bandwidth, tg[0]["n_threads"])
    rows = bench_rows(folder, cpu, tg, pp, bandwidth, host, "llama.cpp's arm64 Docker image, built for armv8-a",
                      model=model)
    return [{**r, "llama_cpp_cpu_flags": list(BUILD_CPU_FLAGS)} for r in rows], {host_key(folder): host}


def main() -> None:
    cores = arm_cores()
    doc = convert(Path(sys.argv[1]), lambda mirror, folder: instance_rows(mirror, folder, cores),
                  __doc__.strip().splitlines()[0], "sparecores_arm_rows.py")
    print(json.dumps(doc, indent=1))


if __name__ == "__main__":
    main()
