"""Hardware objects built in code for planner tests (detect is the only live source; tests stay off it)."""

from __future__ import annotations

from qwenctl.hardware.facts import Absent, AppleSilicon, Backends, Cpu, Hardware, Memory, Nvidia, NvidiaGpu

GiB = 2**30


def backends(llama: bool = True, offload: bool | None = True, mlx: bool = False) -> Backends:
    return Backends(
        llama_cpp="0.3.36" if llama else Absent("not installed"),
        llama_cpp_gpu_offload=offload if llama else None,
        mlx="0.32.4" if mlx else Absent("not installed"),
        mlx_lm="0.32.2" if mlx else Absent("not installed"),
        mlx_default_device="gpu" if mlx else None,
    )


def pc(ram_gib: float, vram_gib: float | None = None, *, host_bw: float = 51.2e9, gpu_bw: float = 448e9, gpu_name: str = "NVIDIA GeForce RTX 3070", cores: int = 8, be: Backends | None = None) -> Hardware:
    """An x86 desktop with an optional NVIDIA GPU."""
    ram = int(ram_gib * GiB)
    gpus: tuple[NvidiaGpu, ...] = ()
    if vram_gib is not None:
        v = int(vram_gib * GiB)
        gpus = (NvidiaGpu(0, gpu_name, "GPU-test", v, v, 0, (8, 6), bandwidth_bytes_per_s=int(gpu_bw)),)
    return Hardware(
        system="Linux",
        machine="x86_64",
        cpu=Cpu("Test CPU", "x86_64", cores, cores * 2, flags=("avx2", "fma")),
        memory=Memory(ram, ram, 0, bandwidth_bytes_per_s=int(host_bw)),
        nvidia=Nvidia("550", "12.4", gpus) if gpus else Absent("no NVIDIA driver"),
        apple=Absent("not a Mac"),
        board=Absent("not a board"),
        disk=Absent("not probed"),
        backends=be or backends(),
    )


def mac(unified_gib: float, *, bw: float = 100e9, mlx: bool = True) -> Hardware:
    ram = int(unified_gib * GiB)
    return Hardware(
        system="Darwin",
        machine="arm64",
        cpu=Cpu("Apple M2", "arm64", 8, 8, 4, 4),
        memory=Memory(ram, ram, 0, bandwidth_bytes_per_s=int(bw)),
        nvidia=Absent("no NVIDIA on macOS"),
        apple=AppleSilicon("Apple M2", 4, 4, 10, ram, int(ram * 2 / 3), "test", int(bw)),
        board=Absent("not a board"),
        disk=Absent("not probed"),
        backends=backends(mlx=mlx),
    )
