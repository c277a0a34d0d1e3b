"""A compute device as the speed model sees it, and the model's constants (``qwenctl/data/speed_model.json``).

``DeviceSpeed`` is what ``qwenctl.machine`` builds from detected or sourced figures and ``qwenctl.speed`` prices a
token on; ``qwenctl.kernels`` reads the same constants to say which llama.cpp kernel runs on it.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, replace
from functools import lru_cache
from importlib import resources
from typing import Any

ENGINES = ("cuda", "metal", "mlx", "cpu")
MEMORY_KINDS = ("hbm", "gddr", "gpu_lpddr", "lpddr", "ddr", "apple")


@lru_cache(maxsize=1)
def load_speed_model() -> dict[str, Any]:
    return json.loads(resources.files("qwenctl.data").joinpath("speed_model.json").read_text(encoding="utf-8"))


def speed_model_date() -> str:
    """The date of the speed model's latest fit: its `version` is the whole history of fits, a paragraph, too long
    for a line that only names which model predicted."""
    version = load_speed_model()["version"]
    return max(re.findall(r"\b\d{4}-\d{2}-\d{2}\b", version), default=version)


@dataclass(frozen=True)
class DeviceSpeed:
    """What the speed model needs to know about one compute device, each figure with its origin.

    ``matrix_ops`` maps the operand type of prompt processing ("int8" for quantized weights,
    "fp16" for F16/BF16 ones) to the device's dense peak in ops/s; ``vector_ops`` is the
    FP32 ALU peak that unpacks quantized blocks during decode.
    """

    name: str  # "NVIDIA GeForce RTX 4060", "host CPU (8 threads)"
    family: str  # "nvidia-ada", "apple-m2", "cpu-x86-avx2", ... (explanations and per-family checks)
    engine: str  # one of ENGINES
    memory_kind: str  # one of MEMORY_KINDS
    bandwidth_bytes_per_s: float
    vector_ops: float
    matrix_ops: dict[str, float]
    compute_units: int = 1  # SMs, Apple GPU cores or CPU threads: each keeps a bounded number of reads in flight
    clock_hz: float = 1.5e9  # the units' clock: fixed per-layer costs are counted in its cycles
    sources: tuple[str, ...] = ()  # where bandwidth and peaks came from
    assumed: tuple[str, ...] = ()  # figures that were not detected or sourced for this device
    bandwidth_assumed: bool = False  # the bandwidth is an assumption (a CPU's rating, the fallback), not this machine's
    compute_share: float = 1.0  # a MIG slice's share of the GPU's SMs; a hybrid CPU's threads beyond its P-cores (cpu_specs.thread_share)
    dies: int = 1  # GPU dies that every kernel's completion must synchronise (an Apple Ultra: 2)
    # what the bandwidth figure is, where not a specification's peak: "stream", a board's published STREAM figure, or
    # "read_test", this machine's `qwenctl detect --measure`; each is what the memory streams, priced at its own share
    bandwidth_measure: str | None = None
    thread_weights_per_s: float = 0.0  # weights one CPU thread's decode kernels multiply per second (0: not known)
    # the ggml types whose kernels one thread runs slower than that: (type, weights per second)
    thread_type_weights_per_s: tuple[tuple[str, float], ...] = ()
    # False where llama.cpp was built without the dot products the CPU has (an armv8-a build of an Arm core with SDOT:
    # hardware.build.without_dot_products): `matrix_ops` is then its widening multiplies' rate, it has no tiled kernels, and
    # its decode threads multiply at its prompt kernel's rate (kernels.arm_rowwise_decode)
    dot_products: bool = True
    # what one CPU thread's decode reads at most: its core's misses in flight (0: not known). Set for a core design
    # measured whole (devices.json x86_designs), whose thread_weights_per_s includes the unpacking (no dequant term)
    thread_read_bytes_per_s: float = 0.0
    # what one host thread copies from pageable into pinned memory, a CUDA build's staging of host layers' weights
    # (devices.json x86_designs); 0: not measured for this core design
    staging_copy_bytes_per_s: float = 0.0
    # what the CPU's cores read together at most where links between its dies and the memory bind before the DRAM
    # does (an AMD Ryzen's fabric links: cpu_specs.die_links); 0: no such limit
    fabric_read_bytes_per_s: float = 0.0
    core: str = ""  # a CPU's core row (devices.json cpu_core_throughput), where its kernels' speed differs from its family's
    vendor: str = ""  # an x86 CPU's CPUID vendor (cpu_specs.x86_vendor), where its kernels' speed differs by vendor; "" elsewhere
    above_rated_clock: bool = False  # a desktop GeForce: GPU Boost holds it above its rated clock under load
    threads_per_unit: int = 0  # a CUDA GPU's resident threads per SM (devices.json nvidia_arch, else a fallback); 0 elsewhere
    host_link_bytes_per_s: float = 0.0  # what a host-to-GPU copy can cross its PCIe link at (machine.pcie_copy_rate); 0: not known
    # a CUDA GPU's (fp32-accumulate, fp16-accumulate) fp16 mma.sync rates, what its flash attention issues (0: none)
    attention_mma_ops: tuple[float, float] = (0.0, 0.0)


def under_load(dev: DeviceSpeed) -> DeviceSpeed:
    """The device at the clock it runs a model at. A desktop GeForce's GPU Boost runs well above the rated boost
    wherever power and temperature allow (hardware.nvidia_specs.geforce_desktop), by a share fitted on the fitting half
    (speed_model.json `geforce_sustained_clock`); the clock sets its per-layer costs, what its SMs keep in flight
    and its ALU and matrix peaks alike. Every other device runs at the clock its figures are given for."""
    if not dev.above_rated_clock:
        return dev
    k = float(load_speed_model()["geforce_sustained_clock"]["factor"])
    return replace(dev, clock_hz=dev.clock_hz * k, vector_ops=dev.vector_ops * k,
                   matrix_ops={op: rate * k for op, rate in dev.matrix_ops.items()},
                   attention_mma_ops=(dev.attention_mma_ops[0] * k, dev.attention_mma_ops[1] * k), above_rated_clock=False)
