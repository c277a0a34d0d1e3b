"""The machine as the planner sees it: memory budgets per device, device speeds, threads.

``Hardware`` says what a machine has; this module turns it into what a model may use
(capacity minus headroom, per pool) and how fast each device moves and multiplies bytes
(``device_speed.DeviceSpeed``), and holds a plan's predicted pools against those budgets (``pool_uses``,
``overflow``). Every figure is detected, read from a sourced specification
(hardware/data/devices.json) or, failing both, an assumption from
``qwenctl/data/speed_model.json`` that is named in ``Machine.notes`` so the plan says so.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from functools import cached_property

from qwenctl.cluster import Link, Worker
from qwenctl.device_speed import DeviceSpeed, load_speed_model
from qwenctl.errors import ExitCode, QwenctlError
from qwenctl.estimate import MemoryEstimate, PoolMemory, load_calibration
from qwenctl.hardware import apple_specs, cpu_specs, nvidia_specs
from qwenctl.hardware.build import as_built, shortfall_note, without_dot_products
from qwenctl.hardware.cpu import thread_limit
from qwenctl.hardware.facts import AppleSilicon, Backends, Board, Cpu, Hardware, Memory, Nvidia, NvidiaGpu
from qwenctl.speed import Links, SpeedEstimate, corrected
from qwenctl.speed_history import Run, correction_for, runs
from qwenctl.split import gpu_label

MEASURE_HINT = "run `qwenctl detect --measure` to measure it"  # pipeline.plan_here measures when a plan carries it
PROFILE_HINT = "give it as [memory] bandwidth in the profile"  # a profile's machine is not this one: nothing to measure


def threads(hw: Hardware) -> int:
    """CPU threads for llama.cpp: the performance cores, else every physical core, but never more than the CPUs
    this process may use (its affinity, or its container's CPU quota rounded up: a thread per part of a CPU).

    One rule for run, bench and serve: llama.cpp's decode is bandwidth-bound, and hyper-threads
    or efficiency cores only add synchronisation to it; threads beyond the usable CPUs queue for them. On the
    development VM's two cores (0.5B Q4_K_M, four passes, benchmarks/results/cpu-quota): under a 1-CPU quota 1 thread
    decodes 19.1-24.5 tok/s and 2 threads 16.8-20.2; under 1.5 CPUs 2 threads 22.1-29.9 and 1 thread 18.6-23.3.
    """
    if isinstance(hw.apple, AppleSilicon) and hw.apple.performance_cores:
        return hw.apple.performance_cores
    if isinstance(hw.cpu, Cpu):
        return min(hw.cpu.performance_cores or hw.cpu.physical_cores, usable_threads(hw.cpu))
    return int(load_speed_model()["fallbacks"]["threads"])


def usable_threads(cpu: Cpu) -> int:
    """The most threads worth giving llama.cpp here (`threads`' measurements): hardware.cpu.thread_limit of its facts."""
    return thread_limit(cpu.logical_cores, cpu.usable_cpus)


def in_container(memory: Memory) -> bool:
    return memory.container_limit_bytes is not None and memory.container_limit_bytes < memory.total_bytes


# What a 32-bit process maps besides the model: Python and its modules, libllama, the thread stacks, the heap's
# fragments. An assumption (no measurement on a 32-bit userland here), kept generous so a plan that fits loads.
PROGRAM_MAPPINGS = 512 * 2**20


def host_budget(hw: Hardware) -> tuple[int, int, str]:
    """(budget, capacity, how the headroom was chosen) of host RAM.

    A whole machine keeps the larger of 20 % and 1 GiB for the OS and other programs, but
    never more than a quarter of a small machine; a container's limit already excludes the
    OS, so only a tenth (at least 64 MiB) is kept there. A free-memory figure, when the probe
    has one, caps the budget too.
    """
    cal = load_calibration()["memory"]
    if not isinstance(hw.memory, Memory) and isinstance(hw.board, Board) and hw.board.ram_bytes:
        # a board's revision code says how much RAM it was sold with (Raspberry Pi): plan on that
        capacity = hw.board.ram_bytes
        reserve = max(min(int(cal["host_reserve_min_bytes"]), int(cal["host_reserve_small_fraction"] * capacity)),
                      int(cal["host_reserve_fraction"] * capacity))
        return capacity - reserve, capacity, f"RAM from the board's model ({hw.board.model}), memory probe absent"
    if not isinstance(hw.memory, Memory):
        raise QwenctlError(
            f"cannot plan without knowing the memory size ({hw.memory.reason})",
            hint="pass --profile or fix the memory probe",
            code=ExitCode.NO_FIT,
        )
    capacity = hw.memory.usable_bytes
    if in_container(hw.memory):
        reserve = max(int(cal["container_reserve_min_bytes"]), int(cal["container_reserve_fraction"] * capacity))
        rule = f"container limit {capacity / 2**30:.2f} GiB, {cal['container_reserve_fraction']:.0%} kept for other processes"
    else:
        floor = min(int(cal["host_reserve_min_bytes"]), int(cal["host_reserve_small_fraction"] * capacity))
        reserve = max(floor, int(cal["host_reserve_fraction"] * capacity))
        rule = f"{reserve / 2**30:.1f} GiB kept for the OS and other programs"
    budget = capacity - reserve
    if hw.memory.available_bytes is not None:
        budget = min(budget, hw.memory.available_bytes)
    space = hw.memory.address_space_bytes
    if space is not None and space - PROGRAM_MAPPINGS < budget:
        # a 32-bit llama.cpp maps its model, cache and buffers into its own address space, however much RAM is free
        budget = space - PROGRAM_MAPPINGS
        rule = (f"{hw.memory.address_space_source}, {PROGRAM_MAPPINGS / 2**30:.1f} GiB of it taken by the program "
                "itself: a model beyond the rest cannot be loaded, whatever the RAM (a 64-bit OS lifts this)")
    return max(budget, 0), capacity, rule


def gpu_memory(gpu: NvidiaGpu) -> tuple[int, int | None, str | None]:
    """(total, free, assumption) of a GPU's memory: NVML's, else its specification's (said so), else 0."""
    if gpu.memory_total_bytes is not None:
        return gpu.memory_total_bytes, gpu.memory_free_bytes, None
    spec = nvidia_specs.gpu_spec_of(gpu)
    if spec and spec.get("memory_gib") and not gpu.mig_profile:
        total = int(spec["memory_gib"] * 2**30)
        why = dict(gpu.unknown).get("memory_total_bytes", "NVML could not say")
        return total, None, f"{gpu.name}: memory unknown ({why}): assumed the specification's {spec['memory_gib']:g} GiB"
    return 0, 0, f"{gpu.name}: memory unknown and no specification: no layers planned on it"


def gpu_budget(gpu: NvidiaGpu, host: int) -> tuple[int, int]:
    """(budget, capacity) of a GPU: free memory less a reserve; a unified-memory GPU shares the host's."""
    total, free, _ = gpu_memory(gpu)
    if gpu.unified_memory:  # Jetson: the GPU allocates from host RAM
        return host, total
    reserve = int(load_calibration()["memory"]["gpu_reserve_bytes"])
    return max(min(total if free is None else free, total - reserve), 0), total


def host_device(hw: Hardware, n_threads: int | None = None) -> DeviceSpeed:
    """The CPU with host RAM: bandwidth detected, measured or assumed; ALU peaks by core type.
    ``n_threads``: the threads llama.cpp is given (`bench -t`), else `threads`' choice; more threads than the CPU
    runs at once add no speed, so no more than its logical CPUs are priced."""
    fb = load_speed_model()["fallbacks"]
    n = n_threads or threads(hw)
    if n_threads and isinstance(hw.cpu, Cpu):
        n = min(n, usable_threads(hw.cpu))
    cpu = as_built(hw.cpu, hw)[0] if isinstance(hw.cpu, Cpu) else None
    core = cpu_specs.cpu_core(cpu, hw.board if isinstance(hw.board, Board) else None)
    bw = hw.memory.bandwidth_bytes_per_s if isinstance(hw.memory, Memory) else None
    bw_source = hw.memory.bandwidth_source if isinstance(hw.memory, Memory) else None
    sustained = None  # (bytes/s, source, kind) of what the memory streams: a board's STREAM figure or a read test's
    if isinstance(hw.board, Board):
        from qwenctl.hardware.host_bandwidth import board_bandwidth, board_sustained

        if not bw:  # no memory probe, but the board's model says it
            bw, bw_source = board_bandwidth(hw.board.model, hw.board.ram_bytes) or (None, None)
        streamed = board_sustained(hw.board.model, hw.board.ram_bytes)
        sustained = (*streamed, "stream") if streamed else None
    if not sustained and bw and isinstance(hw.memory, Memory) and hw.memory.bandwidth_measured:
        sustained = (bw, bw_source or "measured", "read_test")  # a read test's figure is what the memory streams
    sources, assumed = [core.source], list(core.assumed)
    note = shortfall_note(hw)
    if note:
        sources.append(f"llama.cpp here (its system info): {note}")
    bandwidth_assumed = not (sustained or bw)
    if sustained:  # what the memory streams, not its peak: price reads on it, at its kind's share
        bw, bw_source, _ = sustained
        sources.append(f"host bandwidth: {bw_source} (sustained)")
    elif bw:
        sources.append(f"host bandwidth: {bw_source or 'detected'}")
        bw, node = one_node(bw, hw)
        if node:
            sources.append(f"host bandwidth: {node}: llama.cpp without its NUMA options reads the weights from the "
                           "node that loaded them")
    else:
        from qwenctl.hardware.host_bandwidth import soc_typical
        from qwenctl.hardware.rated_memory import rated_bandwidth

        typical = soc_typical(hw.board.soc) if isinstance(hw.board, Board) else None
        if not typical and isinstance(hw.cpu, Cpu) and not hw.cpu.virtual_machine:
            # the CPU's rating, not this machine's DIMMs; a VM gets a share of its host's memory, no part's rating
            typical = rated_bandwidth(hw.cpu.brand)
        bw, why = typical or (fb["host_bandwidth_bytes_per_s"], fb["host_bandwidth_source"])
        assumed.append(f"host memory bandwidth unknown: assumed {bw / 1e9:.1f} GB/s ({why}); "
                       f"{PROFILE_HINT if hw.name else MEASURE_HINT}")
    fabric = 0.0
    if core.complexes and not sustained:  # a read test's or a STREAM figure has already met the links
        links = min(core.complexes, n)
        fabric = links * core.complex_read_bytes_per_s
        whose = f"{links} core complexes' fabric links" if links > 1 else "1 core complex's fabric link"
        sources.append(f"host bandwidth: at most {fabric / 1e9:.0f} GB/s through {whose} "
                       f"({core.complex_read_bytes_per_s / 1e9:.1f} GB/s each)")
    per_core = core.clock_hz * n
    no_dot = core.int8_per_cycle_without_dot if without_dot_products(hw) else None  # None: the build has them
    int8_per_cycle = no_dot or core.int8_per_cycle  # SMULLs for SDOTs, and no tiled kernels (kernels._tiled_class)
    share = cpu_specs.thread_share(cpu, core, n)
    if cpu is not None and share < 1.0:
        sources.append(f"{n} threads on {cpu.performance_cores} performance cores: {share:.2f} of their rate each")
    if cpu is not None and cpu.usable_cpus and cpu.usable_cpus < n:  # a quota's part of a CPU: its threads share the time
        share *= cpu.usable_cpus / n
        sources.append(f"{n} threads on {cpu.usable_cpus:g} CPUs' time ({cpu.usable_cpus_source}): "
                       f"{cpu.usable_cpus / n:.2f} of a CPU each")
    return DeviceSpeed(
        name=f"{core.name} ({n} threads)",
        family=core.family,
        core=core.core,
        vendor=core.vendor,
        engine="cpu",
        memory_kind=core.memory_kind,
        bandwidth_bytes_per_s=float(bw),
        vector_ops=per_core * core.fp32_per_cycle,
        matrix_ops={"int8": per_core * int8_per_cycle, "fp16": per_core * core.fp32_per_cycle},
        compute_units=n,
        clock_hz=core.clock_hz,
        sources=tuple(sources),
        compute_share=share,
        assumed=tuple(assumed),
        bandwidth_measure=sustained[2] if sustained else None,
        bandwidth_assumed=bandwidth_assumed,
        thread_weights_per_s=(core.decode_weights_per_cycle or 0.0) * core.single_core_clock_hz,
        thread_type_weights_per_s=tuple((t, rate * core.single_core_clock_hz) for t, rate in core.decode_type_weights_per_cycle),
        dot_products=no_dot is None,
        thread_read_bytes_per_s=core.thread_read_bytes_per_s or 0.0,
        staging_copy_bytes_per_s=core.staging_copy_bytes_per_s or 0.0,
        fabric_read_bytes_per_s=fabric,
    )


def gpu_offload(hw: Hardware) -> bool:
    """Whether llama.cpp here offloads to a GPU (`llama_supports_gpu_offload()`; an engine not probed counts as one, as
    on a profile)."""
    b = hw.backends if isinstance(hw.backends, Backends) else None
    return b is None or b.llama_cpp_gpu_offload is not False


def cuda_build(hw: Hardware) -> bool:
    """Whether llama.cpp here is a CUDA build on a machine with NVIDIA's driver: every load then starts ggml's CUDA
    backend, and with it the CUDA runtime on the host, also a load no GPU joins and one where CUDA_VISIBLE_DEVICES hides
    every GPU (estimate.estimate_memory's ``cuda_runtime``; both measured on the H100 machine,
    benchmarks/results/h100-cpu-alone-s72). With every GPU hidden `gpu_offload` says no, but the build still names the
    CUDA archs it carries."""
    b = hw.backends if isinstance(hw.backends, Backends) else None
    return isinstance(hw.nvidia, Nvidia) and (gpu_offload(hw) or bool(b and b.llama_cpp_cuda_archs))


def one_node(bw: int, hw: Hardware) -> tuple[int, str | None]:
    """The share of a NUMA host's memory that llama.cpp's decode reads: one node's, and which share ("one of 2
    sockets' memory (307.2 GB/s)"), or None on a host of one node.

    The DIMMs (or a profile) give every node's channels, but qwenctl runs llama.cpp without its NUMA options, so the
    weights' pages sit on the node whose thread first read them, and every thread reads them from that node's memory.
    llama.cpp's own `--numa distribute` spreads them only after the page cache is dropped (its help text, citing
    llama.cpp issue #1437). The nodes are sysfs's (`Memory.numa_nodes`: a second socket, an EPYC's NPS4 quarters, a
    Xeon's SNC clusters), else the sockets. The planner and bench's roofline both read it. A measured figure is not
    divided: the read test's buffer sat on one node."""
    if isinstance(hw.memory, Memory) and hw.memory.bandwidth_measured:
        return bw, None
    nodes = hw.memory.numa_nodes if isinstance(hw.memory, Memory) else None
    what = "NUMA nodes'"
    if not nodes and isinstance(hw.cpu, Cpu) and hw.cpu.sockets:
        nodes, what = hw.cpu.sockets, "sockets'"
    if not nodes or nodes < 2:
        return bw, None
    return bw // nodes, f"one of {nodes} {what} memory ({bw / nodes / 1e9:.1f} GB/s)"


def cuda_device(gpu: NvidiaGpu) -> DeviceSpeed:
    """An NVIDIA GPU (or MIG slice): NVML's bandwidth, peaks from its specification or its SMs.

    The clock is the rated boost, not NVML's maximum SM clock: on a GeForce card that is the top of its
    voltage-frequency table (a GTX 1050 Ti's 1,911 MHz against its rated 1,392), which it holds only lightly loaded,
    and every constant of the speed model was fitted at the rated boost. The specification's where there is one, else
    what NVML says of it (`nvidia_specs.nvml_rated_clock`). A desktop GeForce runs above its rated boost under load: the speed
    model prices it there (`above_rated_clock`). A GDDR card with ECC on reads its check bits from the same memory as
    the data: its bandwidth is priced at `gddr_ecc_read_share` of the peak (HBM has ECC resources of its own)."""
    fb = load_speed_model()["fallbacks"]
    peaks = nvidia_specs.nvidia_peaks(gpu)
    assumed = list(peaks.assumed)
    bw = gpu.bandwidth_bytes_per_s or peaks.bandwidth_bytes_per_s
    sources = [peaks.source, "bandwidth: the GPU's own (NVML, or the profile)" if gpu.bandwidth_bytes_per_s else f"bandwidth: {peaks.source}"]
    if peaks.above_rated_clock:
        sources.append("clock: a desktop GeForce runs above its rated boost under load (speed_model.json geforce_sustained_clock)")
    if not bw:
        bw = fb["gpu_bandwidth_bytes_per_s"]
        assumed.append(f"{gpu.name}: memory bandwidth unknown, assumed {bw / 1e9:.0f} GB/s ({fb['gpu_bandwidth_source']})")
    ecc = ecc_read_share(gpu, peaks.memory_kind)
    if ecc != 1.0:
        bw *= ecc
        sources.append(f"bandwidth: x{ecc} with ECC on GDDR, whose check bits share the data's memory "
                       "(speed_model.json gddr_ecc_read_share)")
    return DeviceSpeed(
        name=gpu.name,
        family=peaks.family,
        engine="cuda",
        memory_kind=peaks.memory_kind,
        bandwidth_bytes_per_s=float(bw),
        vector_ops=peaks.fp32_flops,
        matrix_ops={"int8": peaks.int8_ops, "fp16": peaks.fp16_flops},
        attention_mma_ops=peaks.attention_mma_flops,
        compute_units=max(peaks.sm_count, 1),
        clock_hz=peaks.clock_hz,
        above_rated_clock=peaks.above_rated_clock,
        sources=tuple(sources),
        assumed=tuple(assumed),
        threads_per_unit=nvidia_specs.threads_per_sm(gpu) or int(fb["gpu_threads_per_sm"]),
        host_link_bytes_per_s=pcie_copy_rate(gpu.pcie_link_gen, gpu.pcie_link_width),
    )


def pcie_copy_rate(gen: int | None, lanes: int | None) -> float:
    """Bytes a second a host-to-GPU copy crosses a PCIe link of ``gen`` x ``lanes`` at: the lanes' data rate less each
    packet's headers (speed_model.json links.pcie_link_source); 0.0 where either is not known."""
    if not gen or not lanes:
        return 0.0
    links = load_speed_model()["links"]
    lane = links["pcie_lane_bytes_per_s"].get(str(gen))
    return float(lane) * lanes * float(links["pcie_copy_share"]) if lane else 0.0


def ecc_read_share(gpu: NvidiaGpu, memory_kind: str) -> float:
    """The share of its peak bandwidth a GPU's data gets: `gddr_ecc_read_share` on a GDDR card with ECC on, whose check
    bits are read from the same memory; 1.0 otherwise (HBM has ECC resources of its own)."""
    return float(load_speed_model()["gddr_ecc_read_share"]["share"]) if gpu.ecc_enabled and memory_kind == "gddr" else 1.0


def apple_device(apple: AppleSilicon, engine: str) -> DeviceSpeed:
    """The Apple GPU for Metal or MLX: bandwidth by chip and GPU cores, FP32 peak by its cores, and the matrix peak of
    its Neural Accelerators where its cores have them (M5: the prompt's products run there)."""
    fb = load_speed_model()["fallbacks"]
    peaks = apple_specs.apple_peaks(apple)
    assumed = list(peaks.assumed)
    bw = apple.bandwidth_bytes_per_s or peaks.bandwidth_bytes_per_s
    if not bw:
        bw = fb["apple_bandwidth_bytes_per_s"]
        assumed.append(f"{apple.chip}: bandwidth unknown for this GPU configuration, assumed {bw / 1e9:.0f} GB/s ({fb['apple_bandwidth_source']})")
    return DeviceSpeed(
        name=f"{apple.chip} GPU" + (f" ({apple.gpu_cores} cores)" if apple.gpu_cores else ""),
        family=peaks.family,
        engine=engine,
        memory_kind="apple",
        bandwidth_bytes_per_s=float(bw),
        vector_ops=peaks.fp32_flops,
        matrix_ops={"int8": peaks.matrix_flops, "fp16": peaks.matrix_flops},
        compute_units=peaks.gpu_cores,
        clock_hz=peaks.clock_hz,
        sources=(peaks.source,),
        assumed=tuple(assumed),
        dies=peaks.dies,
    )


@dataclass(frozen=True)
class Slot:
    """One device a plan may spread a model over (several GPUs, RPC workers), in llama.cpp's device order."""

    label: str  # "GPU 1 (NVIDIA H200)", "worker 10.0.0.2:50052 CPU"
    kind: str  # "gpu" (local CUDA) | "remote-gpu" | "remote-cpu"
    budget: int  # bytes the plan may use on it
    capacity: int
    speed: DeviceSpeed
    gpu_index: int | None = None  # a local GPU's CUDA index
    resident_threads: int | None = None  # a local GPU's (nvidia_specs.resident_threads): its CUDA context's stacks
    endpoint: str | None = None  # a worker's
    link: Link | None = None  # to a worker


def gpu_slots(hw: Hardware, host: int) -> tuple[Slot, ...]:
    """Every local GPU with memory a plan can use, in CUDA's order."""
    out = []
    for g in hw.gpus:
        budget, capacity = gpu_budget(g, host)
        if capacity and not g.unified_memory:
            out.append(Slot(gpu_label(g.index, g.name), "gpu", budget, capacity, cuda_device(g), gpu_index=g.index,
                            resident_threads=nvidia_specs.resident_threads(g)))
    return tuple(out)


def peer_link(hw: Hardware) -> tuple[float, str]:
    """(bytes/s, what it is) between the local GPUs: NVLink where every GPU is an SXM part, else PCIe: the narrowest
    GPU's link where NVML gave every GPU's (`pcie_copy_rate`), else a typical x16 link's copies. The source's first
    word tells which."""
    links = load_speed_model()["links"]
    rates = [float((nvidia_specs.gpu_spec_of(g) or {}).get("nvlink_gbs") or 0) for g in hw.gpus]
    if rates and min(rates) > 0:
        per_direction = min(rates) / 2 * 1e9  # NVIDIA quotes both directions together
        return per_direction, f"NVLink ({min(rates):g} GB/s per GPU, SXM boards; devices.json)"
    detected = [(pcie_copy_rate(g.pcie_link_gen, g.pcie_link_width), g) for g in hw.gpus]
    if detected and all(rate for rate, _ in detected):
        rate, g = min(detected, key=lambda d: d[0])
        return rate, f"PCIe ({rate / 1e9:.1f} GB/s: {g.name}'s gen {g.pcie_link_gen} x{g.pcie_link_width}, NVML)"
    return links["pcie_bytes_per_s"], f"PCIe ({links['pcie_bytes_per_s'] / 1e9:g} GB/s; {links['pcie_source']})"


def worker_slots(hw: Hardware, workers: tuple[Worker, ...]) -> tuple[tuple[Slot, ...], tuple[str, ...]]:
    """(each worker device as a slot, the assumptions made about them), in the order llama.cpp registers them."""
    reserve = int(load_calibration()["memory"]["gpu_reserve_bytes"])
    out, assumed = [], []
    for w in workers:
        remote_hw = w.hardware
        if remote_hw is None:
            assumed.append(f"worker {w.endpoint} did not say what it is: its devices assumed as fast as this machine's CPU")
        assumed += ["links to the workers: " + {"rtt": f"round trip {w.link.rtt_s * 1e3:g} ms assumed",
                     "bandwidth": f"{w.link.bandwidth_bytes_per_s * 8 / 1e9:g} Gbit/s assumed"}.get(a, a) for a in w.link.assumed]
        for d in w.devices:
            is_gpu = d.name.upper().startswith(("CUDA", "MTL", "METAL", "VULKAN", "ROCM"))
            speed = host_device(hw)
            if remote_hw is not None:
                cuda = [g for g in remote_hw.gpus if f"CUDA{g.index}" == d.name.upper()]
                if cuda:
                    speed = cuda_device(cuda[0])
                elif is_gpu and isinstance(remote_hw.apple, AppleSilicon):
                    speed = apple_device(remote_hw.apple, "metal")
                else:
                    speed = host_device(remote_hw)
            if is_gpu:
                budget = max(min(d.free_bytes, d.total_bytes - reserve), 0)
            elif remote_hw is not None and isinstance(remote_hw.memory, Memory):
                budget = min(host_budget(remote_hw)[0], d.free_bytes or remote_hw.memory.total_bytes)
            else:
                cal = load_calibration()["memory"]
                budget = max(min(d.free_bytes, d.total_bytes - max(int(cal["host_reserve_min_bytes"]),
                                                                    int(cal["host_reserve_fraction"] * d.total_bytes))), 0)
            label = f"worker {w.endpoint} {d.name}"
            # the speed named for the worker too, so the terms of a split (plan --explain-speed) say which device is which
            out.append(Slot(label, "remote-gpu" if is_gpu else "remote-cpu", budget, d.total_bytes,
                            replace(speed, name=f"{label}: {speed.name}"), endpoint=w.endpoint, link=w.link))
    return tuple(out), tuple(dict.fromkeys(assumed))


@dataclass(frozen=True)
class Machine:
    """Budgets and device speeds of one machine for one backend/device choice."""

    hw: Hardware
    device: str  # "cuda" | "metal" | "cpu"
    backend: str  # "llama.cpp" | "mlx"
    host_budget: int
    host_capacity: int
    host_rule: str
    gpu: NvidiaGpu | None
    gpu_budget: int
    gpu_capacity: int
    unified_budget: int  # Apple: min(wired limit, host budget)
    host_speed: DeviceSpeed
    gpu_speed: DeviceSpeed | None
    threads: int
    measured: tuple[Run, ...] = ()  # what earlier runs on this very machine measured against the predictions
    memory_assumptions: tuple[str, ...] = ()
    slots: tuple[Slot, ...] = ()  # with several GPUs or workers: every device a plan may spread over, llama.cpp's order
    peer_bytes_per_s: float = 0.0  # between the local GPUs
    peer_source: str = ""
    workers: tuple[Worker, ...] = ()

    @cached_property
    def gpu_threads(self) -> int | None:
        """The GPU's resident threads (`nvidia_specs.resident_threads`), which size its CUDA context's stacks."""
        return nvidia_specs.resident_threads(self.gpu) if self.gpu else None

    @cached_property
    def cuda_runtime(self) -> bool:
        """Whether a plan on this machine's CPU still starts the CUDA runtime on the host: llama.cpp's CUDA build where
        the plan leaves the GPU out (another program holds its memory) or CUDA_VISIBLE_DEVICES hides it, `cuda_build`."""
        return self.device == "cpu" and self.backend == "llama.cpp" and cuda_build(self.hw)

    @property
    def links(self) -> Links:
        return Links(remote=tuple(s.link for s in self.slots), peer_bytes_per_s=self.peer_bytes_per_s,
                     peer_source=self.peer_source, peer_nvlink=self.peer_source.startswith("NVLink"))

    def corrected(self, estimate: SpeedEstimate) -> SpeedEstimate:
        """The physics estimate, scaled by this machine's own measurements of models of its size when it has any
        (`speed_history.correction_for`)."""
        c = correction_for(self.measured, estimate.bytes_read or None)
        if c is None:
            return estimate
        return corrected(estimate, c.tg_factor, c.describe(), c.pp_factor if c.pp_factor is not None else 1.0)



def main_gpu(hw: Hardware, host: int) -> NvidiaGpu:
    """The GPU a single-GPU plan uses: the one with the most memory to give (CUDA's first on a tie)."""
    return max(hw.gpus, key=lambda g: (gpu_budget(g, host)[0], -g.index))


def machine(hw: Hardware, backend: str, device: str, workers: tuple[Worker, ...] = ()) -> Machine:
    unknown_ram = None
    if not isinstance(hw.memory, Memory) and device == "cuda" and hw.gpus and not hw.gpus[0].unified_memory:
        # a GPU plan needs host RAM only for the host part of the split: assume the usual, RAM >= VRAM
        capacity = gpu_memory(hw.gpus[0])[0]
        budget, rule = capacity, "host RAM unknown"
        unknown_ram = (f"host RAM unknown ({hw.memory.reason}): assumed at least the GPU's "
                       f"{capacity / 2**30:.0f} GiB for the host part of the plan")
    else:
        budget, capacity, rule = host_budget(hw)
        if not isinstance(hw.memory, Memory):
            unknown_ram = f"memory probe absent ({hw.memory.reason}): planned on the {capacity / 2**30:.0f} GiB the board was sold with"
    gpu, gpu_speed, gpu_b, gpu_c, unified = None, None, 0, 0, 0
    assumptions = [unknown_ram] if unknown_ram else []
    slots: tuple[Slot, ...] = ()
    peer, peer_source = 0.0, ""
    if device == "cuda":
        gpu = main_gpu(hw, budget)
        gpu_b, gpu_c = gpu_budget(gpu, budget)
        gpu_speed = cuda_device(gpu)
        note = gpu_memory(gpu)[2]
        assumptions += [note] if note else []
        slots = gpu_slots(hw, budget)
        peer, peer_source = peer_link(hw)
    elif device == "metal":
        assert isinstance(hw.apple, AppleSilicon)
        unified = min(hw.apple.gpu_wired_limit_bytes, budget)
        gpu_speed = apple_device(hw.apple, "mlx" if backend == "mlx" else "metal")
    if workers and backend == "llama.cpp" and device in ("cuda", "cpu"):
        remote, remote_assumed = worker_slots(hw, workers)
        slots = remote + slots  # llama.cpp puts RPC devices first
        assumptions += remote_assumed
    return Machine(hw, device, backend, budget, capacity, rule, gpu, gpu_b, gpu_c, unified, host_device(hw), gpu_speed,
                   threads(hw), runs(hw, backend, device) if hw.name is None else (), tuple(assumptions),
                   slots if len(slots) > 1 or workers else (), peer, peer_source, workers if slots else ())


# --- a plan's memory against this machine's budgets ------------------------------------------


@dataclass(frozen=True, kw_only=True)
class PoolUse(PoolMemory):
    """Predicted use of one memory pool (``total_bytes``) next to what the plan may use of it."""

    name: str  # "NVIDIA GeForce RTX 4060", "RAM", "Apple M2 unified memory"
    budget_bytes: int  # capacity minus headroom
    capacity_bytes: int

    @property
    def used_bytes(self) -> int:
        """What the plan uses of the pool, the figure held against its budget: the estimate's total."""
        return self.total_bytes


def gib(n: float) -> str:
    return f"{n / 2**30:.1f} GiB"  # memory sizes in binary units, as everywhere (render.human_bytes)


def pool_uses(m: Machine, est: MemoryEstimate, slots: tuple[Slot, ...] = ()) -> tuple[PoolUse, ...]:
    """Each pool of an estimate beside the budget and capacity this machine gives it (``slots``: the devices of a split)."""
    out = []
    for p in est.pools:
        if p.device is not None and slots:
            slot = slots[p.device]
            name, budget, cap = slot.label, slot.budget, slot.capacity
        elif p.pool == "vram":
            assert m.gpu is not None
            name, budget, cap = m.gpu.name, m.gpu_budget, m.gpu_capacity
        elif p.pool == "unified":
            assert isinstance(m.hw.apple, AppleSilicon)
            name, budget, cap = f"{m.hw.apple.chip} unified memory (GPU wired limit)", m.unified_budget, m.hw.apple.unified_memory_bytes
        else:
            name, budget, cap = "RAM", m.host_budget, m.host_capacity
        out.append(PoolUse(**asdict(p), name=name, budget_bytes=budget, capacity_bytes=cap))
    return tuple(out)


def overflow(m: Machine, pools: tuple[PoolUse, ...]) -> str | None:
    """Plain words for the first pool that overflows, or None when everything fits."""
    for p in pools:
        if p.used_bytes > p.budget_bytes:
            where = {"vram": "of VRAM", "ram": "of RAM", "unified": "of the GPU's share of unified memory", "remote": "on"}[p.pool]
            if p.device is not None:
                where = f"on {p.name}" if p.pool == "remote" else f"of {p.name}'s VRAM"
            return f"needs {gib(p.used_bytes)} {where}; {gib(p.budget_bytes)} is available after headroom"
    if m.gpu is not None and m.gpu.unified_memory:
        total = sum(p.used_bytes for p in pools)
        if total > m.host_budget:
            return f"needs {gib(total)} of shared memory; {gib(m.host_budget)} is available after headroom"
    return None
