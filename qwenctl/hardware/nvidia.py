"""NVIDIA GPUs through NVML (the nvidia-ml-py bindings), every call through one door.

``_query`` is that door: the source initialises NVML lazily on first use, an answer of
NVML_ERROR_NOT_SUPPORTED becomes ``None`` (the field is then left out, not invented), and
any other NVML error ends the probe as "absent, because …" with the reason in words.

Peak bandwidth = 2 x max memory clock x bus width / 8. NVML reports the memory clock at
half the per-pin data rate for GDDR6, GDDR6X and HBM alike (RTX 4060: 8501 MHz for 17 Gbps),
so the factor 2 is the same for all of them; data/gpu_bandwidth.json lists the published
figures this was checked against. Unified-memory devices (Jetson, GH200) answer NotSupported
for memory: they get the host's RAM, ``unified_memory=True``, and a bandwidth from that file.
"""

from __future__ import annotations

from typing import Any

from qwenctl.hardware._parse import data
from qwenctl.hardware.facts import Absent, Nvidia, NvidiaGpu
from qwenctl.hardware.snapshot import NVML_BINDINGS_MISSING, NvmlError, Source

# NVML errors that mean "no NVIDIA GPU to talk to here", in words for the report.
NO_DRIVER = {
    "NVML_ERROR_LIBRARY_NOT_FOUND": "the NVIDIA driver (libnvidia-ml) is not installed",
    "NVML_ERROR_DRIVER_NOT_LOADED": "the NVIDIA driver is installed but not loaded",
    "NVML_ERROR_NO_PERMISSION": "NVML refused access to the GPU (permissions)",
    "NVML_ERROR_LIB_RM_VERSION_MISMATCH": "the NVIDIA driver library and kernel module versions differ (reboot?)",
    NVML_BINDINGS_MISSING: "the nvidia-ml-py package is not installed (pip install nvidia-ml-py)",
}


def _query(source: Source, function: str, device: int | None = None, arg: str | None = None) -> Any:
    """The one door to NVML: NotSupported -> None, other errors raise NvmlError."""
    try:
        return source.nvml(function, device, arg)
    except NvmlError as e:
        if e.code == "NVML_ERROR_NOT_SUPPORTED":
            return None
        raise


def probe(source: Source, host_ram_bytes: int | None = None) -> Nvidia | Absent:
    try:
        count = _query(source, "nvmlDeviceGetCount")
        driver = _query(source, "nvmlSystemGetDriverVersion")
        cuda = _query(source, "nvmlSystemGetCudaDriverVersion")
        gpus = tuple(_gpu(source, i, host_ram_bytes) for i in range(count or 0))
    except NvmlError as e:
        return Absent(NO_DRIVER.get(e.code, f"NVML failed: {e.code}"))
    if not gpus:
        return Absent("the NVIDIA driver is loaded but reports no GPU")
    return Nvidia(driver_version=driver or "unknown", cuda_driver_version=_cuda_version(cuda), gpus=gpus)


def _gpu(source: Source, i: int, host_ram_bytes: int | None) -> NvidiaGpu:
    name = _query(source, "nvmlDeviceGetName", i) or f"NVIDIA GPU {i}"
    memory = _query(source, "nvmlDeviceGetMemoryInfo", i)
    unified = memory is None
    if unified:  # Jetson / GH200: no dedicated memory; the GPU shares host RAM
        total = host_ram_bytes or 0
        free, used = total, 0
    else:
        total, free, used = memory["total"], memory["free"], memory["used"]
    bus = _query(source, "nvmlDeviceGetMemoryBusWidth", i)
    clock = _query(source, "nvmlDeviceGetMaxClockInfo", i, "NVML_CLOCK_MEM")
    power_mw = _query(source, "nvmlDeviceGetPowerManagementLimit", i)
    cc = _query(source, "nvmlDeviceGetCudaComputeCapability", i)
    return NvidiaGpu(
        index=i,
        name=name,
        uuid=_query(source, "nvmlDeviceGetUUID", i) or "",
        memory_total_bytes=total,
        memory_free_bytes=free,
        memory_used_bytes=used,
        compute_capability=(cc[0], cc[1]) if cc else (0, 0),
        memory_bus_width_bits=bus or None,
        max_memory_clock_mhz=clock or None,
        bandwidth_bytes_per_s=peak_bandwidth(clock, bus) or known_bandwidth(name),
        power_limit_w=power_mw / 1000 if power_mw else None,
        unified_memory=unified,
    )


def peak_bandwidth(max_memory_clock_mhz: int | None, bus_width_bits: int | None) -> int | None:
    """Bytes/s: two transfers per NVML memory clock, times the bus width in bytes."""
    if not max_memory_clock_mhz or not bus_width_bits:
        return None
    return 2 * max_memory_clock_mhz * 1_000_000 * bus_width_bits // 8


def known_bandwidth(name: str) -> int | None:
    for row in data("gpu_bandwidth.json")["known"]:
        if row["match"] in name:
            return int(row["bytes_per_s"])
    return None


def _cuda_version(value: int | None) -> str | None:
    """NVML encodes the CUDA driver API version as 1000*major + 10*minor (12040 -> "12.4")."""
    if not value:
        return None
    return f"{value // 1000}.{value % 1000 // 10}"
