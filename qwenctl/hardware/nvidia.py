"""NVIDIA GPUs through NVML (the nvidia-ml-py bindings), every call through one door.

``_Reader.get`` is that door: the source initialises NVML lazily on first use, an answer of
NVML_ERROR_NOT_SUPPORTED or NVML_ERROR_FUNCTION_NOT_FOUND (a driver older than the call), or a
value a snapshot did not capture, becomes ``None`` and is noted in the GPU's ``unknown`` with
which it was; any other NVML error fails that one GPU, which is reported in ``Nvidia.unusable``
while the others are kept.

Peak bandwidth = 2 x max memory clock x bus width / 8. NVML reports the memory clock at
half the per-pin data rate for GDDR6, GDDR6X and HBM alike (RTX 4060: 8501 MHz for 17 Gbps),
so the factor 2 is the same for all of them; data/gpu_bandwidth.json lists the published
figures this was checked against. Memory info NotSupported means unified memory only on
devices that have no memory of their own (Jetson, GB10, GH200: data/nvidia_arch.json): they
get the host's RAM and bandwidth. On any other card (a GeForce under an old WSL driver) the
memory is unknown, with the reason, and the GPU is kept.

MIG instances (mig.py) and the order and visibility CUDA applies (cuda_visible.py) turn the
physical GPUs into ``Nvidia.gpus``: the devices CUDA will use, in CUDA's order.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from qwenctl.hardware._parse import data
from qwenctl.hardware.facts import Absent, Nvidia, NvidiaGpu, UnusableGpu
from qwenctl.hardware.nvidia_specs import board_gpu_spec, fp32_lanes_per_sm, spec_clock_hz, spec_compute_capability
from qwenctl.hardware.snapshot import NOT_CAPTURED, NVML_BINDINGS_MISSING, NvmlDevice, NvmlError, Source
from qwenctl.install import INSTALL

# NVML errors that mean "no NVIDIA GPU to talk to here", in words for the report.
NO_DRIVER = {
    "NVML_ERROR_LIBRARY_NOT_FOUND": "the NVIDIA driver (libnvidia-ml) is not installed",
    "NVML_ERROR_DRIVER_NOT_LOADED": "the NVIDIA driver is installed but not loaded",
    "NVML_ERROR_NO_PERMISSION": "NVML refused access to the GPU (permissions)",
    "NVML_ERROR_LIB_RM_VERSION_MISMATCH": "the NVIDIA driver library and kernel module versions differ (reboot?)",
    NVML_BINDINGS_MISSING: f"the nvidia-ml-py package is not installed ({INSTALL['nvml']})",
}


@dataclass
class _Reader:
    """NVML for one device; NotSupported / not captured -> None, noted per field."""

    source: Source
    device: NvmlDevice | None = None
    unknown: list[tuple[str, str]] = field(default_factory=list)

    def get(self, what: str | None, function: str, arg: str | None = None) -> Any:
        try:
            return self.source.nvml(function, self.device, arg)
        except NvmlError as e:
            if e.code == "NVML_ERROR_NOT_SUPPORTED":
                why = f"NVML: {function} is not supported on this device"
            elif e.code == "NVML_ERROR_FUNCTION_NOT_FOUND":  # a driver older than the call
                why = f"NVML: this driver's NVML has no {function}"
            elif e.code == NOT_CAPTURED:
                why = f"{function} was not captured in the snapshot"
            else:
                raise
            if what:
                self.unknown.append((what, why))
            return None


@dataclass(frozen=True)
class Physical:
    """One NVML device: the whole GPU, whether MIG is on, and its MIG instances."""

    gpu: NvidiaGpu
    mig_on: bool
    instances: tuple[NvidiaGpu, ...] = ()


def probe(source: Source, host_ram_bytes: int | None = None, host_bandwidth: int | None = None,
          board: str | None = None) -> Nvidia | Absent:
    """The GPUs CUDA will use. `board`: the device-tree model, which an integrated GPU carries to tell its module."""
    from qwenctl.hardware import cuda_visible, jetson_power, mig

    system = _Reader(source)
    try:
        count = system.get(None, "nvmlDeviceGetCount")
        driver = system.get(None, "nvmlSystemGetDriverVersion")
        cuda = system.get(None, "nvmlSystemGetCudaDriverVersion")
    except NvmlError as e:
        reason = NO_DRIVER.get(e.code, f"NVML failed: {e.code}")
        board_gpu = integrated_gpu(board, host_ram_bytes, host_bandwidth, reason) if board else None
        if board_gpu is None:
            return Absent(reason)
        return Nvidia(driver_version="unknown (no NVML; the GPU is the module the board names)", cuda_driver_version=None,
                      gpus=(jetson_power.with_power_mode(source, board_gpu),))
    physical: list[Physical] = []
    unusable: list[UnusableGpu] = []
    for i in range(count or 0):
        try:
            gpu = read_gpu(source, i, host_ram_bytes, host_bandwidth, board)
            mig_on, instances = mig.instances(source, gpu)
            physical.append(Physical(gpu, mig_on, instances))
        except NvmlError as e:
            unusable.append(UnusableGpu(i, _try(source, i, "nvmlDeviceGetName"), _try(source, i, "nvmlDeviceGetUUID"),
                                        f"NVML failed: {e.code}"))
    if not physical and not unusable:
        return Absent("the NVIDIA driver is loaded but reports no GPU")
    visible = source.getenv("CUDA_VISIBLE_DEVICES")
    gpus, hidden, order = cuda_visible.cuda_devices(physical, visible, source.getenv("CUDA_DEVICE_ORDER"))
    if board and board_gpu_spec(board, host_ram_bytes):  # a Jetson module's integrated GPU runs under its power mode
        gpus = tuple(jetson_power.with_power_mode(source, g) if g.unified_memory else g for g in gpus)
    return Nvidia(driver_version=driver or "unknown", cuda_driver_version=_cuda_version(cuda), gpus=gpus,
                  unusable=tuple(unusable) + hidden, visible_devices=visible, order_source=order)


def integrated_gpu(board: str, host_ram_bytes: int | None, host_bandwidth: int | None, why: str) -> NvidiaGpu | None:
    """A Jetson's GPU where NVML does not answer. JetPack before 6 ships no libnvidia-ml (ollama/ollama#3098:
    "NVidia didn't include the NVidia ML library in Jetpack prior to JP 6"; ultralytics/ultralytics#20680: JetPack 5
    has no nvidia-smi), yet CUDA and llama.cpp run there: without this a JetPack 5 Orin was planned as a CPU alone.
    The board's device-tree model names the module (devices.json `board_models`), whose specification gives the
    GPU; it shares the host's RAM and bandwidth, as NVML's unified-memory answer does. None for a board that names
    no module qwenctl knows."""
    row = board_gpu_spec(board, host_ram_bytes)
    if row is None:
        return None
    return NvidiaGpu(
        index=0,
        name=row["nvml_names"][0],
        uuid="",
        memory_total_bytes=host_ram_bytes,
        memory_free_bytes=host_ram_bytes,
        memory_used_bytes=0 if host_ram_bytes else None,
        compute_capability=spec_compute_capability(row),
        bandwidth_bytes_per_s=host_bandwidth,  # None: the speed model takes the module's, as for NVML's Jetsons
        unified_memory=True,
        board=board,
        sm_count=row["sm_count"],
        max_sm_clock_mhz=round(spec_clock_hz(row) / 1e6),
        unknown=(("uuid", f"{why}: the GPU is the {row['key']} module its board names (devices.json)"),),
    )


def read_gpu(source: Source, i: int, host_ram_bytes: int | None, host_bandwidth: int | None,
             board: str | None = None) -> NvidiaGpu:
    """A whole GPU as NVML describes it (index is NVML's here; cuda_visible renumbers)."""
    r = _Reader(source, i)
    name = r.get(None, "nvmlDeviceGetName") or f"NVIDIA GPU {i}"
    memory = r.get("memory_total_bytes", "nvmlDeviceGetMemoryInfo")
    unified = memory is None and _shares_host_memory(r, name)
    if unified:  # Jetson / GB10 / GH200: no dedicated memory; the GPU shares host RAM
        r.unknown = [u for u in r.unknown if u[0] != "memory_total_bytes"]
        total, free, used = host_ram_bytes, host_ram_bytes, 0 if host_ram_bytes else None
    elif memory is None:
        total = free = used = None
        r.unknown = [(f, f"{why}; not a unified-memory device, so host RAM does not stand in" if f == "memory_total_bytes"
                      else why) for f, why in r.unknown]
    else:
        total, free, used = memory["total"], memory["free"], memory["used"]
    bus = r.get("memory_bus_width_bits", "nvmlDeviceGetMemoryBusWidth")
    clock = r.get("max_memory_clock_mhz", "nvmlDeviceGetMaxClockInfo", "NVML_CLOCK_MEM")
    power_mw = r.get(None, "nvmlDeviceGetPowerManagementLimit")
    cc_pair = r.get("compute_capability", "nvmlDeviceGetCudaComputeCapability")
    cc = (cc_pair[0], cc_pair[1]) if cc_pair else None
    cores = r.get("cuda_cores", "nvmlDeviceGetNumGpuCores")
    ecc = _optional(r, "nvmlDeviceGetEccMode")  # (current, pending); NotSupported on a GeForce, which has no ECC
    link_gen, link_width = _optional(r, "nvmlDeviceGetMaxPcieLinkGeneration"), _optional(r, "nvmlDeviceGetCurrPcieLinkWidth")
    bandwidth = peak_bandwidth(clock, bus) or (host_bandwidth if unified else None) or known_bandwidth(name)
    return NvidiaGpu(
        index=i,
        name=name,
        uuid=r.get(None, "nvmlDeviceGetUUID") or "",
        memory_total_bytes=total,
        memory_free_bytes=free,
        memory_used_bytes=used,
        compute_capability=cc,
        memory_bus_width_bits=bus or None,
        max_memory_clock_mhz=clock or None,
        bandwidth_bytes_per_s=bandwidth,
        power_limit_w=power_mw / 1000 if power_mw else None,
        ecc_enabled=bool(ecc[0]) if ecc else None,
        pcie_link_gen=link_gen or None,
        pcie_link_width=link_width or None,
        unified_memory=unified,
        board=board if unified else None,
        cuda_cores=cores or None,
        sm_count=sm_count(cores, cc),
        max_sm_clock_mhz=r.get("max_sm_clock_mhz", "nvmlDeviceGetMaxClockInfo", "NVML_CLOCK_SM") or None,
        rated_sm_clock_mhz=r.get(None, "nvmlDeviceGetMaxCustomerBoostClock", "NVML_CLOCK_GRAPHICS") or None,
        nvml_index=i,
        unknown=tuple(r.unknown),
    )


def _shares_host_memory(r: _Reader, name: str) -> bool:
    table = data("nvidia_arch.json")["unified_memory"]
    if any(word in name for word in table["names"]):
        return True
    return r.get(None, "nvmlDeviceGetAddressingMode") == table["ats_addressing_mode"]


def cores_per_sm(cc: tuple[int, int] | None) -> int | None:
    """FP32 cores per SM of a compute capability: the CUDA guide's table, else the per-SM figures devices.json keeps for
    it (Thor's 11.0, also under its old number 10.1)."""
    if not cc:
        return None
    return data("nvidia_arch.json")["cores_per_sm"].get(f"{cc[0]}.{cc[1]}") or fp32_lanes_per_sm(cc)


def sm_count(cuda_cores: int | None, cc: tuple[int, int] | None) -> int | None:
    per_sm = cores_per_sm(cc)
    return cuda_cores // per_sm if cuda_cores and per_sm else None


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


def _optional(r: _Reader, function: str) -> Any:
    """A fact the plan can do without (the ECC mode, the PCIe link): any NVML error is None, never a reason to drop the
    GPU."""
    try:
        return r.get(None, function)
    except NvmlError:
        return None


def _try(source: Source, i: int, function: str) -> str | None:
    try:
        value = source.nvml(function, i)
    except NvmlError:
        return None
    return value if isinstance(value, str) else None


def _cuda_version(value: int | None) -> str | None:
    """NVML encodes the CUDA driver API version as 1000*major + 10*minor (12040 -> "12.4")."""
    if not value:
        return None
    return f"{value // 1000}.{value % 1000 // 10}"
