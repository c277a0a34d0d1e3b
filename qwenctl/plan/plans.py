"""What planning returns: the request (`Constraints`), one candidate (`Plan`), the others with why they lost
(`Alternative`) and the whole answer (`PlanResult`)."""

from __future__ import annotations

from dataclasses import dataclass

from qwenctl.device_speed import DeviceSpeed
from qwenctl.machine import PoolUse
from qwenctl.speed import SpeedEstimate
from qwenctl.split import describe


@dataclass(frozen=True)
class Constraints:
    size: str | None = None  # "7B"
    quant: str | None = None  # "q4_k_m", "4bit", ...
    backend: str | None = None  # "llama.cpp" | "mlx"
    n_ctx: int | None = None  # None: 8192, capped at the model's limit
    min_tg_tps: float | None = None  # None: 5 tok/s, relaxed when nothing reaches it


@dataclass(frozen=True)
class Plan:
    size: str
    quant: str  # catalog key: "q4_k_m", "4bit"
    quant_label: str  # "Q4_K_M", "MLX 4-bit"
    backend: str  # "llama.cpp" | "mlx"
    device: str  # "cuda" | "metal" | "cpu"
    repo: str
    files: tuple[str, ...]  # every file to fetch (all parts of a split GGUF); () = the whole repo snapshot (MLX)
    download_bytes: int
    download_bytes_exact: bool
    n_gpu_layers: int  # llama.cpp: -1 = all layers and the output on the GPU; 0 = CPU only
    n_layers: int
    n_ctx: int
    n_threads: int
    kv_cache_type: str  # "f16" | "q8_0" | "q4_0"
    flash_attn: bool
    memory: tuple[PoolUse, ...]
    tg_tps: float  # predicted generation tokens/s
    tg_tps_low: float  # the slow end of that prediction
    tg_tps_full: float  # generation once n_ctx tokens are cached (SpeedEstimate.tg_at): a long chat's speed
    pp_tps: float  # predicted prompt tokens/s
    quality: float  # benchmark mean of the size, lowered for lossy quants
    reasons: tuple[str, ...]  # why this plan (chosen) or the facts behind it (alternatives)
    speed: SpeedEstimate | None = None  # the terms behind tg/pp (plan --explain-speed)
    split_mode: str = "none"  # llama.cpp's: "none" (one device), "layer" or "tensor" (split.LLAMA_SPLIT_MODE)
    tensor_split: tuple[float, ...] = ()  # each device's share, in llama.cpp's order (RPC workers, then GPUs)
    main_gpu: int = 0  # the CUDA index of the GPU a "none" plan uses
    workers: tuple[str, ...] = ()  # RPC workers (host:port) the plan spreads over
    split_reason: str = ""  # with several devices: why this split, against the others predicted

    @property
    def name(self) -> str:
        return f"{self.size} {self.quant_label}"

    @property
    def spread(self) -> str | None:
        """The split in words ("tensor split over GPU 0 and GPU 1, 50/50"), None for one device."""
        if self.split_mode == "none" or not self.tensor_split:
            return None
        return describe(self.split_mode, self.tensor_split, self.main_gpu, tuple(p.name for p in self.memory if p.device is not None))


@dataclass(frozen=True)
class Alternative:
    plan: Plan
    rejected: str | None  # None: feasible; else "memory" | "speed" | "context" | "backend"
    reason: str  # plain words: why not chosen


@dataclass(frozen=True)
class PlanResult:
    hardware_name: str | None
    constraints: Constraints
    chosen: Plan
    alternatives: tuple[Alternative, ...]  # every other candidate, best first; feasible ones before rejected ones
    warnings: tuple[str, ...]  # e.g. what to install, a relaxed speed floor
    assumptions: tuple[str, ...] = ()  # device figures the speeds rest on that were assumed, not detected
    devices: tuple[DeviceSpeed, ...] = ()  # what the speed model knew of each device, with sources
