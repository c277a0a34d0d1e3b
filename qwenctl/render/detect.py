"""`qwenctl detect` for people: one compact table, a row per fact, "absent, because …"
where a probe could not answer. Memory sizes in binary units (a card sold as 8 GB has
8188 MiB = 8.0 GiB), disk too (render.human_bytes: one unit system for sizes); bandwidth in GB/s."""

from __future__ import annotations

from dataclasses import replace

from rich.table import Table
from rich.text import Text

from qwenctl.hardware import cpu_specs, nvidia_specs
from qwenctl.hardware.build import shortfall_note
from qwenctl.hardware.drm import COMPUTE_VENDORS, describe
from qwenctl.hardware.engines import oldest_capability
from qwenctl.hardware.facts import Absent, AppleSilicon, Backends, Board, Cpu, Disk, Hardware, Memory, Nvidia
from qwenctl.render import console, human_bytes, plural


def gib(n: int | None) -> str:
    if n is None:
        return "?"
    value = n / 2**30
    return f"{value:.0f} GiB" if value >= 1 and abs(value - round(value)) < 1e-9 else f"{value:.1f} GiB"


def rate(bytes_per_s: int | None) -> str:
    if not bytes_per_s:
        return ""
    return f"{bytes_per_s / 1e12:.2f} TB/s" if bytes_per_s >= 1e12 else f"{bytes_per_s / 1e9:.0f} GB/s"


def rows(hw: Hardware) -> list[tuple[str, str, bool]]:
    """(label, text, is_absent) for every fact, in display order."""
    out: list[tuple[str, str, bool]] = [("System", f"{hw.system} {hw.machine}", False)]

    def add(label: str, fact: object, describe) -> None:  # type: ignore[no-untyped-def]
        if isinstance(fact, Absent):
            out.append((label, f"absent, because {fact.reason}", True))
        else:
            out.append((label, describe(fact), False))

    add("CPU", hw.cpu, _cpu)
    add("Memory", hw.memory, _memory)
    if isinstance(hw.nvidia, Nvidia):
        out.append(("NVIDIA", _driver(hw.nvidia), False))
        for gpu in hw.nvidia.gpus:
            out.append((f"GPU {gpu.index}", _gpu(gpu), False))
        for bad in hw.nvidia.unusable:
            out.append((f"NVML {bad.nvml_index}", f"{bad.name or 'GPU'} not used, because {bad.reason}", True))
    else:
        add("NVIDIA", hw.nvidia, str)
    for g in hw.display_gpus:
        if g.vendor in COMPUTE_VENDORS and (g.vendor != "NVIDIA" or not hw.gpus):  # NVML's are the rows above
            out.append((f"Display {g.card}", f"{describe(g)}: not planned on (CUDA, Metal and MLX only)", False))
    add("Apple", hw.apple, _apple)
    add("Board", hw.board, _board)
    add("Disk", hw.disk, _disk)
    add("Backends", hw.backends, _backends)
    note = shortfall_note(hw)
    if note:  # the CPU's kernels run slower than the CPU can: say so where the backends are listed
        out.append(("llama.cpp", note, False))
    return out


def show(hw: Hardware, origin: str | None = None) -> None:
    """A rich table on a terminal; plain `label  text` lines when piped (no padding, no wrapping)."""
    con = console()
    if not con.is_terminal:
        if origin:
            con.out(origin, highlight=False)
        for label, text, _ in rows(hw):
            con.out(f"{label:<9} {text}", highlight=False)
        return
    table = Table(show_header=False, box=None, pad_edge=False, title=origin, title_justify="left")
    table.add_column(style="bold", no_wrap=True)
    table.add_column(overflow="fold")
    for label, text, absent in rows(hw):
        table.add_row(label, Text(text, style="dim" if absent else ""))
    con.print(table)


def _cpu(c: Cpu) -> str:
    cores = f"{plural(c.physical_cores, 'core')} / {plural(c.logical_cores, 'thread')}"
    if c.sockets and c.sockets > 1:
        cores += f" on {c.sockets} sockets"
    if c.performance_cores is not None:
        cores += f" ({c.performance_cores}P + {c.efficiency_cores}E)"
    if c.usable_cpus is not None:
        cores += f", {c.usable_cpus:g} usable ({c.usable_cpus_source})"
    flags = " ".join(c.flags) if c.flags else "no SIMD flags reported"
    design = cpu_specs.x86_design(c)  # the core design the speed model prices by its own figures, where it knows one
    name = f"{c.brand} ({design['design']})" if design else c.brand
    host = " · virtual machine" if c.virtual_machine else ""  # a share of a host's CPU: no rated memory for it
    return f"{name} · {c.arch} · {cores}{host} · {flags}"


def _memory(m: Memory) -> str:
    why = dict(m.unknown)
    ram = "RAM unknown" if "total_bytes" in why else f"{gib(m.total_bytes)} RAM"
    available = f"available unknown ({why.get('available_bytes', '?')})" if m.available_bytes is None \
        else f"{gib(m.available_bytes)} available"
    text = f"{ram} · {available}"
    text += f" · swap {gib(m.swap_total_bytes)}" if m.swap_total_bytes else " · no swap"
    if m.container_limit_bytes is not None:
        text += f" · container limit {gib(m.container_limit_bytes)} ({m.container_limit_source})"
        text += f" → usable {gib(m.usable_bytes)}"
    if m.address_space_bytes is not None:
        text += f" · 32-bit: one process maps at most {gib(m.address_space_bytes)} ({m.address_space_source})"
    if m.bandwidth_bytes_per_s:
        text += f" · {rate(m.bandwidth_bytes_per_s)} ({m.bandwidth_source})"
    elif "bandwidth_bytes_per_s" in why:
        text += f" · bandwidth unknown ({why['bandwidth_bytes_per_s']})"
    if m.numa_nodes:
        text += f" · {m.numa_nodes} NUMA nodes"
    return text


def _driver(n: Nvidia) -> str:
    cuda = f", CUDA {n.cuda_driver_version}" if n.cuda_driver_version else ""
    return f"driver {n.driver_version}{cuda}"


def _gpu(g) -> str:  # type: ignore[no-untyped-def]
    kind = "shared with the CPU (unified memory)" if g.unified_memory else "VRAM"
    why = dict(g.unknown)
    memory = (f"{gib(g.memory_total_bytes)} {kind} ({gib(g.memory_free_bytes)} free)" if g.memory_total_bytes is not None
              else f"memory unknown ({why.get('memory_total_bytes', '?')})")
    cc = f"CC {g.compute_capability[0]}.{g.compute_capability[1]}" if g.compute_capability else "CC unknown"
    parts = [g.name, memory, cc]
    if g.mig_profile:
        parts.insert(1, f"MIG {g.mig_profile} of {g.parent_name}")
    if g.pcie_link_gen and g.pcie_link_width:
        parts.append(f"PCIe {g.pcie_link_gen}.0 x{g.pcie_link_width}")
    if g.sm_count:
        parts.append(f"{g.sm_count} SMs" + (f" @ {g.max_sm_clock_mhz} MHz" if g.max_sm_clock_mhz else ""))
    if g.bandwidth_bytes_per_s:
        how = (f"{g.memory_bus_width_bits}-bit @ {g.max_memory_clock_mhz} MHz → "
               if g.memory_bus_width_bits and g.max_memory_clock_mhz else "")
        parts.append(f"{how}{rate(g.bandwidth_bytes_per_s)}")
    if g.ecc_enabled:
        from qwenctl.machine import ecc_read_share  # the speed model's rule, loaded only for a card with ECC on

        share = ecc_read_share(g, nvidia_specs.nvidia_peaks(g).memory_kind)
        parts.append(f"ECC on (bandwidth priced at {share}x)" if share != 1.0 else "ECC on")
    if g.power_limit_w:
        spec = nvidia_specs.gpu_spec_of(g)
        held, why = nvidia_specs.held_clock(g, spec) if spec else (1.0, None)
        parts.append(f"{g.power_limit_w:.0f} W" + ("" if held == 1 else f" (SM clock priced at {held:.2f}: {why})" if why
                                                   else f" limit (rated {spec['power_w']} W: SM clock priced at {held:.2f})"))
    if g.power_mode_clock_mhz or g.power_mode_tpc_mask is not None:  # a Jetson: what its power mode leaves of the module
        mode, full = nvidia_specs.nvidia_peaks(g), nvidia_specs.nvidia_peaks(replace(g, power_mode_clock_mhz=None, power_mode_tpc_mask=None))
        parts.append(f"power mode: {mode.sm_count} of {full.sm_count} SMs @ {mode.clock_hz / 1e6:,.0f} of "
                     f"{full.clock_hz / 1e6:,.0f} MHz" if (mode.sm_count, mode.clock_hz) != (full.sm_count, full.clock_hz)
                     else "power mode: the module's full SMs and clock")
    return " · ".join(parts)


def _apple(a: AppleSilicon) -> str:
    cores = f"{a.performance_cores}P + {a.efficiency_cores}E" if a.performance_cores is not None else "cores ?"
    gpu = f"{a.gpu_cores}-core GPU" if a.gpu_cores else "GPU cores ?"
    bw = f" · {rate(a.bandwidth_bytes_per_s)}" if a.bandwidth_bytes_per_s else ""
    return (f"{a.chip} · {cores} · {gpu} · {gib(a.unified_memory_bytes)} unified memory{bw} · "
            f"GPU may wire {gib(a.gpu_wired_limit_bytes)} ({a.gpu_wired_limit_source})")


def _board(b: Board) -> str:
    parts = [b.model]
    if b.soc:
        parts.append(b.soc)
    if b.ram_bytes:
        parts.append(f"{gib(b.ram_bytes)} RAM fitted")
    if b.throttled is not None:
        parts.append("not throttled" if not b.throttled else "; ".join(b.throttled))
    if b.temperature_c is not None:
        parts.append(f"{b.temperature_c:.1f} °C")
    return " · ".join(parts)


def _disk(d: Disk) -> str:
    return f"{d.path} · {human_bytes(d.free_bytes)} free of {human_bytes(d.total_bytes)}"


def _backends(b: Backends) -> str:
    def version(v: str | Absent) -> str:
        return v.reason if isinstance(v, Absent) else v

    offload = {True: "GPU offload", False: "CPU only", None: ""}[b.llama_cpp_gpu_offload]
    oldest = oldest_capability(b.llama_cpp_cuda_archs)  # CUDA code from it on
    cuda = f"CUDA {oldest[0]}.{oldest[1]}+" if oldest else ""
    features = [f for f in (offload, cuda, "RPC" if b.llama_cpp_rpc else "") if f]
    llama = f"llama-cpp-python {version(b.llama_cpp)}" + (f" ({', '.join(features)})" if features else "")
    mlx = f"mlx {version(b.mlx)}" + (f" ({b.mlx_default_device})" if b.mlx_default_device else "")
    return f"{llama} · {mlx} · mlx-lm {version(b.mlx_lm)}"
