"""The facts `detect` reports and `plan` consumes, as plain frozen dataclasses.

Bytes are ints and speeds are bytes/second everywhere; formatting happens only in the
renderer. A probe that cannot answer returns ``Absent(reason)`` instead of a value, so
the report always says *why* something is missing. ``qwenctl.result.to_dict`` /
``hardware_from_dict`` give the stable JSON schema documented in docs/detect.md, which profiles reuse.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from qwenctl.result import Absent, from_dict

__all__ = ["Absent", "AppleSilicon", "Backends", "Board", "Cpu", "Disk", "Hardware", "Memory", "Nvidia", "NvidiaGpu",
           "UnusableGpu", "hardware_from_dict"]


@dataclass(frozen=True)
class Cpu:
    brand: str
    arch: str  # "x86_64" | "arm64" | "arm" (32-bit) | "riscv64" | ...
    physical_cores: int
    logical_cores: int
    performance_cores: int | None = None  # big cores on hybrid/Apple chips; None if not hybrid or unknown
    efficiency_cores: int | None = None
    flags: tuple[str, ...] = ()  # ISA features llama.cpp cares about: avx, avx2, avx512f, fma, f16c, neon, dotprod, i8mm, sve
    cores_source: str | None = None  # how physical_cores was counted, e.g. "cpu cores x sockets"
    sockets: int | None = None  # distinct `physical id` values; None where the OS does not say
    max_clock_mhz: int | None = None  # cpufreq's maximum (Linux); None where no driver says it
    base_clock_mhz: int | None = None  # the clock guaranteed under all-core load (intel_pstate base / ACPI CPPC nominal)
    flags_source: str | None = None  # where `flags` came from; None: not known (Windows before llama-cpp-python is installed)
    usable_cpus: float | None = None  # CPUs this process may keep busy (affinity, cgroup quota) where fewer than logical_cores
    usable_cpus_source: str | None = None  # why: "affinity: CPUs 0-7 (/proc/self/status)", "CPU quota 2 CPUs (cgroup v2 ...)"
    vendor_id: str | None = None  # x86 CPUID vendor ("AuthenticAMD", "GenuineIntel"); None where the OS does not say
    cpu_family: int | None = None  # x86 CPUID family and model (/proc/cpuinfo, decimal): they name the core design
    cpu_model: int | None = None  # where the brand does not ("AMD EPYC" in a cloud VM is family 26 model 2: Zen 5)
    virtual_machine: bool = False  # cpuinfo's `hypervisor` flag, a hypervisor's SMBIOS names (Windows, Linux), a Mac chip
    # named "(Virtual)": a VM's share of a host's CPU


Unknown = tuple[tuple[str, str], ...]  # (field name, why it is not known): "unknown, with why"


@dataclass(frozen=True)
class Memory:
    total_bytes: int  # physical RAM (see total_source: where no RAM figure exists, the container limit stands in)
    available_bytes: int | None  # None: not known (see `unknown` for why)
    swap_total_bytes: int
    container_limit_bytes: int | None = None  # cgroup memory.max / memory.limit_in_bytes, None when unlimited
    container_limit_source: str | None = None  # e.g. "cgroup v2 /sys/fs/cgroup/memory.max"
    bandwidth_bytes_per_s: int | None = None  # host memory bandwidth: board/chip data, DIMMs, or measured
    bandwidth_source: str | None = None  # e.g. "measured 2026-12-01 by qwenctl detect --measure"
    bandwidth_measured: bool = False  # the figure is what a read test streamed here, not a specification's peak
    numa_nodes: int | None = None  # NUMA nodes with both CPUs and memory (Linux sysfs); None: one, or not read
    address_space_bytes: int | None = None  # what one 32-bit process can map (a model must fit in it); None: 64-bit
    address_space_source: str | None = None  # why that much
    total_source: str | None = None  # "/proc/meminfo MemTotal", "hw.memsize", ...
    available_source: str | None = None  # "/proc/meminfo MemAvailable", "cgroup limit - usage", ...
    unknown: Unknown = ()  # fields that could not be read, and why

    @property
    def usable_bytes(self) -> int:
        """What a model may count on: the smaller of RAM and the container limit."""
        if self.container_limit_bytes is None:
            return self.total_bytes
        return min(self.total_bytes, self.container_limit_bytes)


@dataclass(frozen=True)
class NvidiaGpu:
    index: int  # CUDA ordinal: the position in Hardware.gpus (what llama.cpp calls device N)
    name: str
    uuid: str
    memory_total_bytes: int | None  # None: NVML could not say (see `unknown`)
    memory_free_bytes: int | None
    memory_used_bytes: int | None
    compute_capability: tuple[int, int] | None  # None: unknown
    memory_bus_width_bits: int | None = None
    max_memory_clock_mhz: int | None = None
    bandwidth_bytes_per_s: int | None = None  # peak, from bus width x clock (or the profile)
    power_limit_w: float | None = None
    # nvmlDeviceGetEccMode's current mode: True on, False off, None where NVML has none (a GeForce) or it was not captured
    ecc_enabled: bool | None = None
    # the PCIe link a host-to-GPU copy crosses: the highest generation the GPU and its slot both support
    # (nvmlDeviceGetMaxPcieLinkGeneration; the current one drops at idle) and the lanes it trained at
    # (nvmlDeviceGetCurrPcieLinkWidth: an AWS g4dn's T4 runs x8 in an x16 slot); None: not known (integrated GPUs)
    pcie_link_gen: int | None = None
    pcie_link_width: int | None = None
    unified_memory: bool = False  # Jetson / GH200: NVML reports no dedicated memory; host RAM is shared
    board: str | None = None  # an integrated GPU's board (device-tree model): NVML names every Jetson Orin "Orin (nvgpu)"
    cuda_cores: int | None = None  # nvmlDeviceGetNumGpuCores (MIG: SMs x the parent's cores per SM)
    sm_count: int | None = None  # streaming multiprocessors (MIG: nvmlDeviceGetAttributes)
    max_sm_clock_mhz: int | None = None  # nvmlDeviceGetMaxClockInfo(NVML_CLOCK_SM): the top of the board's clock range
    rated_sm_clock_mhz: int | None = None  # nvmlDeviceGetMaxCustomerBoostClock: the rated boost (NotSupported on GeForce)
    # a Jetson's power mode (hardware.jetson_power): the GPU's devfreq max_freq, the highest clock nvpmodel's mode allows,
    # and its tpc_pg_mask, the TPCs the mode powers off (bit i: TPC i); None where not read (every other GPU)
    power_mode_clock_mhz: float | None = None
    power_mode_tpc_mask: int | None = None
    mig_profile: str | None = None  # "1g.10gb" for a MIG instance, None for a whole GPU
    parent_name: str | None = None  # the physical GPU a MIG instance belongs to
    nvml_index: int | None = None  # NVML's index of the physical GPU (of the parent for a MIG instance)
    unknown: Unknown = ()  # fields NVML could not answer, and why


@dataclass(frozen=True)
class UnusableGpu:
    """A physical GPU CUDA will not use here, and why (NVML failed on it, MIG on without a visible instance)."""

    nvml_index: int
    name: str | None
    uuid: str | None
    reason: str


@dataclass(frozen=True)
class Nvidia:
    driver_version: str
    cuda_driver_version: str | None
    gpus: tuple[NvidiaGpu, ...]  # what CUDA will use, in CUDA's order (CUDA_VISIBLE_DEVICES honoured)
    unusable: tuple[UnusableGpu, ...] = ()
    visible_devices: str | None = None  # CUDA_VISIBLE_DEVICES as read; None when unset
    order_source: str | None = None  # how the CUDA order was decided


@dataclass(frozen=True)
class AppleSilicon:
    chip: str  # "Apple M2"
    performance_cores: int | None
    efficiency_cores: int | None
    gpu_cores: int | None
    unified_memory_bytes: int
    gpu_wired_limit_bytes: int  # what Metal may wire for the GPU by default or per iogpu.wired_limit_mb
    gpu_wired_limit_source: str
    bandwidth_bytes_per_s: int | None = None
    bandwidth_source: str | None = None  # the chip and GPU-core configuration it was looked up by


@dataclass(frozen=True)
class Board:
    """A single-board computer (Raspberry Pi, other ARM boards) from the device tree."""

    model: str  # "Raspberry Pi 5 Model B Rev 1.0"
    revision: str | None
    soc: str | None  # "BCM2712"
    ram_bytes: int | None
    throttled: tuple[str, ...] | None = None  # decoded vcgencmd get_throttled flags; () = none
    temperature_c: float | None = None
    model_source: str | None = None  # "/proc/device-tree/model" or "/proc/cpuinfo Model"


@dataclass(frozen=True)
class Disk:
    path: str  # where models are stored (the Hugging Face cache)
    free_bytes: int
    total_bytes: int


@dataclass(frozen=True)
class Backends:
    llama_cpp: str | Absent  # version or why it is unusable
    llama_cpp_gpu_offload: bool | None  # llama_supports_gpu_offload(); None if not installed
    mlx: str | Absent
    mlx_lm: str | Absent
    mlx_default_device: str | None  # "gpu" / "cpu"
    llama_cpp_rpc: bool | None = None  # built with llama.cpp's RPC backend (`qwenctl worker`, --workers); None if not installed
    # the CUDA architectures the build has code for (llama_print_system_info's "CUDA : ARCHS = 610,750", as
    # __CUDA_ARCH_LIST__: 610 = compute capability 6.1); None: no CUDA backend, or a build that does not say
    llama_cpp_cuda_archs: tuple[int, ...] | None = None
    # the CPU features llama.cpp's CPU backend was built with (llama_print_system_info's "CPU : NEON = 1 | DOTPROD = 0
    # | ...", in cpu.py's names): a build for a generic armv8-a lacks the dot products its CPU has. None: not installed,
    # or a build that does not say
    llama_cpp_cpu_flags: tuple[str, ...] | None = None


@dataclass(frozen=True)
class DisplayGpu:
    """A display GPU the OS lists (hardware/drm.py: the kernel's DRM on Linux, Win32_VideoController on Windows), so a
    plan can name what it leaves unused."""

    card: str  # "card1" (Linux DRM), "video0" (the Windows video controller's position)
    vendor: str  # "AMD" | "Intel" | "NVIDIA" | "PCI vendor 1A03"
    pci_id: str  # vendor:device, "1002:744C"
    driver: str | None  # the kernel driver bound to it: "amdgpu", "i915", "xe", "nouveau", "nvidia"; None: none bound
    vram_bytes: int | None = None  # amdgpu's mem_info_vram_total; None where the driver does not say
    name: str | None = None  # the name Windows gives it ("AMD Radeon RX 7900 XT"); Linux's DRM gives none

    @property
    def from_drm(self) -> bool:
        """Listed by Linux's DRM, which names the driver bound to it (Windows's list names none)."""
        return self.card.startswith("card")


@dataclass(frozen=True)
class Hardware:
    system: str  # platform.system(): "Linux" | "Darwin" | "Windows"
    machine: str  # platform.machine(): "x86_64" | "arm64" | "aarch64"
    cpu: Cpu | Absent
    memory: Memory | Absent
    nvidia: Nvidia | Absent
    apple: AppleSilicon | Absent
    board: Board | Absent
    disk: Disk | Absent
    backends: Backends | Absent
    name: str | None = None  # a profile's display name; None when detected live
    sources: tuple[str, ...] = field(default=())  # where a profile's figures come from
    display_gpus: tuple[DisplayGpu, ...] = field(default=())  # display GPUs the OS lists, planned on or not

    @property
    def gpus(self) -> tuple[NvidiaGpu, ...]:
        return self.nvidia.gpus if isinstance(self.nvidia, Nvidia) else ()


def hardware_from_dict(d: dict[str, Any]) -> Hardware:
    """The inverse of ``to_dict`` for a Hardware document (``detect --json`` output, minus
    the "schema"/"version" envelope keys, which are ignored). Raises ValueError on a document
    that does not fit the schema, naming the field."""
    return from_dict(Hardware, d, "hardware")
