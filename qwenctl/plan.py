"""Choose what to run: Hardware (+ the user's constraints) -> the best plan and why.

How it decides (docs/planning.md has the long form):

1. Backend by platform: MLX on Apple Silicon when mlx-lm is installed, llama.cpp on Metal
   otherwise; llama.cpp with CUDA when an NVIDIA GPU is there and llama-cpp-python can
   offload; llama.cpp on the CPU otherwise. Each choice carries its reason.
2. Every size x quant of that backend becomes a candidate. CUDA candidates put as many
   layers on the GPU as fit; the rest stay on the host.
3. A candidate is rejected, with the reason in plain words, when it does not fit the memory
   budget (RAM/VRAM minus headroom for the OS and other programs; on Apple Silicon also the
   GPU wired limit), when its context cannot hold the requested tokens, or when its
   generation speed may fall under the floor (default 5 tok/s; the slow end of the
   prediction is what must clear it, so a shaky prediction is not bet on).
4. Of the rest, the highest quality wins; equal quality (e.g. Q4_K_M..F16, which score
   alike) goes to the faster one.

With no explicit constraints, a machine where nothing reaches the speed floor still gets
the fastest plan that fits, with a warning. An impossible explicit request raises
QwenctlError (NO_FIT) naming the reason and the nearest plan that works.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import TYPE_CHECKING

from qwenctl.catalog import Architecture, Catalog, ModelSpec, RepoFile, Weights, load_catalog
from qwenctl.errors import ExitCode, QwenctlError
from qwenctl.estimate import (
    DeviceSpeed,
    MemoryEstimate,
    PoolMemory,
    estimate_memory,
    estimate_speed,
    load_calibration,
    split_from_tensors,
)
from qwenctl.hardware.facts import AppleSilicon, Backends, Cpu, Hardware, Memory, NvidiaGpu

if TYPE_CHECKING:
    from pathlib import Path

    from qwenctl.backends import LoadOptions

DEFAULT_CTX = 8192
DEFAULT_MIN_TG = 5.0

# Host memory bandwidth when neither detection nor a profile knows it: one channel of
# DDR4-3200 (3200 MT/s x 8 bytes), a deliberately low guess.
_FALLBACK_HOST_BANDWIDTH = 25.6e9
_FALLBACK_GPU_BANDWIDTH = 200e9


@dataclass(frozen=True)
class Constraints:
    size: str | None = None  # "7B"
    quant: str | None = None  # "q4_k_m", "4bit", ...
    backend: str | None = None  # "llama.cpp" | "mlx"
    n_ctx: int | None = None  # None: 8192, capped at the model's limit
    min_tg_tps: float | None = None  # None: 5 tok/s, relaxed when nothing reaches it


@dataclass(frozen=True)
class PoolUse(PoolMemory):
    """Predicted use of one memory pool (``total_bytes``) next to what the plan may use of it."""

    name: str  # "NVIDIA GeForce RTX 4060", "RAM", "Apple M2 unified memory"
    budget_bytes: int  # capacity minus headroom
    capacity_bytes: int

    @property
    def used_bytes(self) -> int:
        """What the plan uses of the pool, the figure held against its budget: the estimate's total."""
        return self.total_bytes


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
    pp_tps: float  # predicted prompt tokens/s
    quality: float  # benchmark mean of the size, lowered for lossy quants
    reasons: tuple[str, ...]  # why this plan (chosen) or the facts behind it (alternatives)

    @property
    def name(self) -> str:
        return f"{self.size} {self.quant_label}"

    def load_options(self):
        """The options the run helper hands to ``qwenctl.backends.load_backend``."""
        from qwenctl.backends import LoadOptions

        return LoadOptions(
            n_ctx=self.n_ctx,
            n_gpu_layers=self.n_gpu_layers,
            n_threads=self.n_threads,
            flash_attn=self.flash_attn,
            kv_cache_type=self.kv_cache_type,
        )


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


# --- hardware -> budgets and device speeds -------------------------------------------------


@dataclass(frozen=True)
class _Target:
    backend: str
    device: str
    reason: str
    warnings: tuple[str, ...]


def _gb(n: float) -> str:
    return f"{n / 1e9:.1f} GB"


def _host_budget(hw: Hardware) -> tuple[int, int]:
    """(budget, capacity) of host RAM after the OS/app headroom."""
    cal = load_calibration()["memory"]
    if not isinstance(hw.memory, Memory):
        raise QwenctlError(
            f"cannot plan without knowing the memory size ({hw.memory.reason})",
            hint="pass --profile or fix the memory probe",
            code=ExitCode.NO_FIT,
        )
    capacity = hw.memory.usable_bytes
    reserve = max(int(cal["host_reserve_min_bytes"]), int(cal["host_reserve_fraction"] * capacity))
    return max(min(capacity - reserve, hw.memory.available_bytes), 0), capacity


def _gpu_budget(gpu: NvidiaGpu, host_budget: int) -> tuple[int, int]:
    if gpu.unified_memory:  # Jetson: the GPU allocates from host RAM
        return host_budget, gpu.memory_total_bytes
    reserve = int(load_calibration()["memory"]["gpu_reserve_bytes"])
    return max(min(gpu.memory_free_bytes, gpu.memory_total_bytes - reserve), 0), gpu.memory_total_bytes


def _threads(hw: Hardware) -> int:
    if isinstance(hw.apple, AppleSilicon) and hw.apple.performance_cores:
        return hw.apple.performance_cores
    if isinstance(hw.cpu, Cpu):
        return hw.cpu.performance_cores or hw.cpu.physical_cores
    return 4


def _host_speed(hw: Hardware) -> tuple[DeviceSpeed, str | None]:
    classes = load_calibration()["speed"]["classes"]
    arm = hw.machine in ("arm64", "aarch64") or (isinstance(hw.cpu, Cpu) and hw.cpu.arch in ("arm64", "aarch64"))
    cls = "cpu_arm" if arm else "cpu_x86"
    bw = hw.memory.bandwidth_bytes_per_s if isinstance(hw.memory, Memory) else None
    note = None
    if not bw:
        bw = _FALLBACK_HOST_BANDWIDTH
        note = f"host memory bandwidth unknown: assumed {bw / 1e9:.1f} GB/s (one DDR4-3200 channel), speeds may be low"
    return DeviceSpeed(cls, float(bw), _threads(hw) * classes[cls]["pp_gflops_per_core"] * 1e9), note


def _gpu_flops(name: str, bandwidth: float) -> float:
    cal = load_calibration()
    for row in cal["gpu_compute"]:
        if row["match"].lower() in name.lower():
            return row["fp16_tflops"] * 1e12
    return cal["gpu_compute_default_flops_per_byte_s"] * bandwidth


def _cuda_speed(gpu: NvidiaGpu) -> tuple[DeviceSpeed, str | None]:
    bw = gpu.bandwidth_bytes_per_s
    note = None
    if not bw:
        bw = _FALLBACK_GPU_BANDWIDTH
        note = f"{gpu.name}: memory bandwidth unknown, assumed {bw / 1e9:.0f} GB/s"
    hbm = any(k in gpu.name for k in ("H100", "H200", "A100", "GH200", "B200"))
    return DeviceSpeed("cuda_hbm" if hbm else "cuda_gddr", float(bw), _gpu_flops(gpu.name, bw)), note


def _apple_speed(apple: AppleSilicon, cls: str) -> DeviceSpeed:
    cal = load_calibration()
    bw = float(apple.bandwidth_bytes_per_s or 100e9)
    return DeviceSpeed(cls, bw, (apple.gpu_cores or 8) * cal["apple_gpu_tflops_per_core"] * 1e12)


def _installed(value) -> bool:
    return isinstance(value, str)


def resolve_target(hw: Hardware, constraints: Constraints) -> _Target:
    """Backend and device for this machine, with the reason and what to install."""
    b = hw.backends if isinstance(hw.backends, Backends) else None
    has_llama = b is not None and _installed(b.llama_cpp)
    has_mlx = b is not None and _installed(b.mlx_lm)
    apple = isinstance(hw.apple, AppleSilicon)
    want = constraints.backend
    if want not in (None, "llama.cpp", "mlx"):
        raise QwenctlError(f"unknown backend {want!r}", hint="choose llama.cpp or mlx", code=ExitCode.BAD_INPUT)
    warnings: list[str] = []

    if want == "mlx" or (want is None and apple and has_mlx):
        if not apple:
            raise QwenctlError(
                "the mlx backend needs Apple Silicon (Metal); this machine has none",
                hint="use --backend llama.cpp",
                code=ExitCode.NO_FIT,
            )
        if not has_mlx:
            warnings.append("mlx-lm is not installed: pip install 'qwenctl[mlx]'")
        return _Target("mlx", "metal", "mlx on the Apple GPU (Apple Silicon, mlx-lm " + ("installed" if has_mlx else "requested") + ")", tuple(warnings))

    if not has_llama:
        warnings.append(
            "llama-cpp-python is not installed: pip install 'qwenctl[llama]'"
            + (" with CMAKE_ARGS='-DGGML_CUDA=on' for the NVIDIA GPU" if hw.gpus else "")
        )
    if apple:
        return _Target("llama.cpp", "metal", "llama.cpp on Metal (Apple Silicon" + (", mlx-lm not installed)" if want is None else ")"), tuple(warnings))
    if hw.gpus:
        offload = b.llama_cpp_gpu_offload if b is not None else None
        if has_llama and offload is False:
            warnings.append(
                "the installed llama-cpp-python was built without GPU offload: reinstall with "
                "CMAKE_ARGS='-DGGML_CUDA=on' pip install --force-reinstall llama-cpp-python to use the GPU"
            )
            return _Target("llama.cpp", "cpu", f"llama.cpp on the CPU (llama-cpp-python cannot offload to the {hw.gpus[0].name})", tuple(warnings))
        return _Target("llama.cpp", "cuda", f"llama.cpp with CUDA on the {hw.gpus[0].name}, as many layers as fit", tuple(warnings))
    return _Target("llama.cpp", "cpu", "llama.cpp on the CPU (no supported GPU)", tuple(warnings))


# --- candidates ---------------------------------------------------------------------------


@dataclass(frozen=True)
class _Machine:
    hw: Hardware
    target: _Target
    host_budget: int
    host_capacity: int
    gpu: NvidiaGpu | None
    gpu_budget: int
    gpu_capacity: int
    unified_budget: int  # Apple: min(wired limit, host budget)
    host_speed: DeviceSpeed
    gpu_speed: DeviceSpeed | None
    notes: tuple[str, ...]


def _machine(hw: Hardware, target: _Target) -> _Machine:
    host_budget, host_capacity = _host_budget(hw)
    host_speed, host_note = _host_speed(hw)
    notes = [n for n in (host_note,) if n]
    gpu, gpu_speed = None, None
    gpu_budget = gpu_capacity = unified = 0
    if target.device == "cuda":
        gpu = hw.gpus[0]
        gpu_budget, gpu_capacity = _gpu_budget(gpu, host_budget)
        gpu_speed, note = _cuda_speed(gpu)
        notes += [note] if note else []
    elif target.device == "metal":
        assert isinstance(hw.apple, AppleSilicon)
        unified = min(hw.apple.gpu_wired_limit_bytes, host_budget)
        gpu_speed = _apple_speed(hw.apple, "mlx" if target.backend == "mlx" else "metal")
    return _Machine(hw, target, host_budget, host_capacity, gpu, gpu_budget, gpu_capacity, unified, host_speed, gpu_speed, tuple(notes))


def _pools(m: _Machine, est: MemoryEstimate) -> tuple[PoolUse, ...]:
    out = []
    for p in est.pools:
        if p.pool == "vram":
            assert m.gpu is not None
            name, budget, cap = m.gpu.name, m.gpu_budget, m.gpu_capacity
        elif p.pool == "unified":
            assert isinstance(m.hw.apple, AppleSilicon)
            name, budget, cap = f"{m.hw.apple.chip} unified memory (GPU wired limit)", m.unified_budget, m.hw.apple.unified_memory_bytes
        else:
            name, budget, cap = "RAM", m.host_budget, m.host_capacity
        out.append(PoolUse(**asdict(p), name=name, budget_bytes=budget, capacity_bytes=cap))
    return tuple(out)


def _misfit(m: _Machine, pools: tuple[PoolUse, ...]) -> str | None:
    """Plain words for the first pool that overflows, or None when everything fits."""
    for p in pools:
        if p.used_bytes > p.budget_bytes:
            where = {"vram": "of VRAM", "ram": "of RAM", "unified": "of the GPU's share of unified memory"}[p.pool]
            return f"needs {_gb(p.used_bytes)} {where}; {_gb(p.budget_bytes)} is available after headroom"
    if m.gpu is not None and m.gpu.unified_memory:
        total = sum(p.used_bytes for p in pools)
        if total > m.host_budget:
            return f"needs {_gb(total)} of shared memory; {_gb(m.host_budget)} is available after headroom"
    return None


def _candidate(m: _Machine, model: ModelSpec, w: Weights, n_ctx: int, kv_type: str) -> tuple[Plan, str | None]:
    """Best offload of one (size, quant): the plan and, if it cannot run, why not (memory)."""
    t = m.target
    flash = t.device in ("cuda", "metal")
    L = model.arch.n_layers

    def build(ngl: int) -> tuple[Plan, str | None]:
        device = t.device if not (t.device == "cuda" and ngl == 0) else "cpu"
        est = estimate_memory(model, w, t.backend, device, n_ctx, ngl, kv_type, flash)
        pools = _pools(m, est)
        gpu_speed = m.gpu_speed if device != "cpu" else None
        sp = estimate_speed(model, w, gpu_speed, m.host_speed, ngl if device == "cuda" else -1, kv_type)
        plan = Plan(
            size=model.size,
            quant=w.quant,
            quant_label=w.label,
            backend=t.backend,
            device=device,
            repo=w.repo,
            files=w.file_names,
            download_bytes=w.total_bytes,
            download_bytes_exact=w.bytes_exact,
            n_gpu_layers=ngl if device == "cuda" else (-1 if device == "metal" else 0),
            n_layers=L,
            n_ctx=n_ctx,
            n_threads=_threads(m.hw),
            kv_cache_type=kv_type,
            flash_attn=flash,
            memory=pools,
            tg_tps=sp.tg_tps,
            tg_tps_low=sp.tg_tps_low,
            pp_tps=sp.pp_tps,
            quality=load_catalog().quality(model, w),
            reasons=(),
        )
        return plan, _misfit(m, pools)

    if t.device != "cuda":
        return build(0 if t.device == "cpu" else -1)
    # as many layers on the GPU as fit: all (-1), else the largest count whose VRAM fits
    full = build(-1)
    if full[1] is None:
        return full
    lo, hi = 0, L  # VRAM use grows with the layer count: binary search the largest that fits

    def vram_ok(ngl: int) -> bool:
        est = estimate_memory(model, w, t.backend, "cuda", n_ctx, ngl, kv_type, flash)
        vram = est.pool("vram")
        return vram is not None and vram.total_bytes <= m.gpu_budget

    if not vram_ok(1):
        return build(0)
    lo = 1
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if vram_ok(mid):
            lo = mid
        else:
            hi = mid - 1
    split, misfit = build(lo)
    # a split plan's slow end is uncertain (split_uncertainty), but it is never slower than
    # the same model on the CPU alone, which it could always fall back to
    cpu_only, _ = build(0)
    u = load_calibration()["speed"]["split_uncertainty"]
    low = max(split.tg_tps * (1 - u), cpu_only.tg_tps_low)
    return replace(split, tg_tps_low=min(low, split.tg_tps_low)), misfit


def _context(model: ModelSpec, constraints: Constraints) -> tuple[int, str | None]:
    """Requested context, capped at what the weights handle without rope scaling."""
    want = constraints.n_ctx or DEFAULT_CTX
    limit = model.arch.context_native
    if want > limit:
        return limit, f"context capped at {limit} tokens, Qwen2.5-{model.size}'s native window" + (
            f" (up to {model.arch.context_max} needs YaRN rope scaling, which qwenctl does not set up)" if model.arch.context_max > limit else ""
        )
    return want, None


def _evaluate(m: _Machine, catalog: Catalog, constraints: Constraints, floor: float) -> list[tuple[Plan, str | None, str]]:
    """Every candidate with (plan, rejection kind or None, reason)."""
    fmt = "mlx" if m.target.backend == "mlx" else "gguf"
    out = []
    sizes = [catalog.model(constraints.size)] if constraints.size else list(catalog.models)
    for model in sizes:
        n_ctx, ctx_note = _context(model, constraints)
        for w in model.weights:
            if w.format != fmt or (constraints.quant and w.quant != constraints.quant.lower()):
                continue
            plan, misfit = _candidate(m, model, w, n_ctx, "f16")
            if (misfit or plan.tg_tps_low < floor) and m.target.device in ("cuda", "metal"):
                # a q8_0 KV cache (needs flash attention) halves the cache: it may fit, or leave
                # room for more layers on the GPU; take it only when it is what makes the plan work
                alt, alt_misfit = _candidate(m, model, w, n_ctx, "q8_0")
                if alt_misfit is None and alt.tg_tps_low >= floor:
                    plan, misfit = alt, None
            notes = [ctx_note] if ctx_note else []
            if constraints.n_ctx and ctx_note:
                out.append((replace(plan, reasons=tuple(notes)), "context", f"cannot hold {constraints.n_ctx} tokens: {ctx_note}"))
            elif misfit:
                out.append((replace(plan, reasons=tuple(notes)), "memory", f"{plan.name} {misfit}"))
            elif plan.tg_tps_low < floor:
                out.append(
                    (
                        replace(plan, reasons=tuple(notes)),
                        "speed",
                        f"{plan.name} may generate as slowly as {plan.tg_tps_low:.1f} tok/s "
                        f"(predicted {plan.tg_tps:.1f}); the floor is {floor:g} tok/s",
                    )
                )
            else:
                out.append((replace(plan, reasons=tuple(notes)), None, ""))
    if constraints.quant and not out:
        raise QwenctlError(
            f"no {fmt.upper()} weights named {constraints.quant!r}" + (f" for {constraints.size}" if constraints.size else ""),
            hint=f"{fmt} quants: {', '.join(catalog.quants(fmt))}",
            code=ExitCode.BAD_INPUT,
        )
    return out


def _rank_key(plan: Plan) -> tuple[float, float]:
    return (-round(plan.quality, 6), -plan.tg_tps)


def _why_chosen(m: _Machine, plan: Plan, runner_up: Plan | None, floor: float) -> tuple[str, ...]:
    reasons = [m.target.reason]
    if plan.device == "cuda":
        if plan.n_gpu_layers == -1:
            reasons.append(f"every layer fits on the GPU ({_gb(plan.memory[0].used_bytes)} of {_gb(plan.memory[0].budget_bytes)} VRAM)")
        else:
            reasons.append(f"{plan.n_gpu_layers} of {plan.n_layers} layers fit on the GPU; the rest run from RAM")
    reasons.append(
        f"highest quality that fits and reaches {floor:g} tok/s: score {plan.quality:.1f} "
        f"(Qwen's benchmark mean for {plan.size}" + (", Q4_K_M and better score alike)" if plan.quality >= 0 else ")")
    )
    if runner_up is not None and round(runner_up.quality, 6) == round(plan.quality, 6):
        reasons.append(f"same quality as {runner_up.name} but faster ({plan.tg_tps:.0f} vs {runner_up.tg_tps:.0f} tok/s)")
    if plan.kv_cache_type != "f16":
        reasons.append(f"KV cache in {plan.kv_cache_type} so the {plan.n_ctx}-token context fits")
    return tuple(reasons) + plan.reasons


def plan(hardware: Hardware, constraints: Constraints = Constraints()) -> PlanResult:
    """The best plan for this machine under these constraints, and every alternative ranked."""
    catalog = load_catalog()
    if constraints.size:
        catalog.model(constraints.size)  # unknown sizes fail early with the list of sizes
    if constraints.n_ctx is not None and constraints.n_ctx < 256:
        raise QwenctlError(f"--ctx {constraints.n_ctx} is too small", hint="use at least 256 tokens", code=ExitCode.BAD_INPUT)
    target = resolve_target(hardware, constraints)
    m = _machine(hardware, target)
    explicit_floor = constraints.min_tg_tps is not None
    floor = constraints.min_tg_tps if explicit_floor else DEFAULT_MIN_TG
    assert floor is not None
    rows = _evaluate(m, catalog, constraints, floor)
    warnings = list(target.warnings) + list(m.notes)

    feasible = sorted((r for r in rows if r[1] is None), key=lambda r: _rank_key(r[0]))
    if not feasible and not explicit_floor:
        fits = sorted((r for r in rows if r[1] == "speed"), key=lambda r: -r[0].tg_tps)
        if fits:
            fastest = fits[0][0]
            warnings.append(
                f"nothing here reliably reaches {floor:g} tok/s; chose the fastest plan that fits ({fastest.name}, "
                f"predicted {fastest.tg_tps:.1f} tok/s). Pass --min-speed 0 to rank by quality instead"
            )
            rows = [(p, None, "") if p is fastest else (p, k, r) for p, k, r in rows]
            feasible = [(fastest, None, "")]
    if not feasible:
        raise _no_fit(hardware, constraints, rows)

    chosen = feasible[0][0]
    runner = feasible[1][0] if len(feasible) > 1 else None
    chosen = replace(chosen, reasons=_why_chosen(m, chosen, runner, floor))
    alternatives = []
    for p, kind, reason in feasible[1:]:
        if round(p.quality, 6) == round(chosen.quality, 6):
            why = f"same quality, slower ({p.tg_tps:.0f} vs {chosen.tg_tps:.0f} tok/s)"
        else:
            why = f"lower quality (score {p.quality:.1f} vs {chosen.quality:.1f})"
        alternatives.append(Alternative(p, None, why))
    rejected = sorted((r for r in rows if r[1] is not None), key=lambda r: _rank_key(r[0]))
    alternatives += [Alternative(p, kind, reason) for p, kind, reason in rejected]
    return PlanResult(hardware.name, constraints, chosen, tuple(alternatives), tuple(warnings))


def _no_fit(hardware: Hardware, constraints: Constraints, rows: list[tuple[Plan, str | None, str]]) -> QwenctlError:
    """Explain the best refused candidate and point at the nearest plan that works."""
    best = sorted(rows, key=lambda r: _rank_key(r[0]))
    why = best[0][2] if best else "no candidate matches the constraints"
    nearest = None
    relaxed = [
        replace(constraints, min_tg_tps=None),
        replace(constraints, quant=None, min_tg_tps=None),
        replace(constraints, size=None, quant=None, min_tg_tps=None),
        Constraints(backend=constraints.backend),
        Constraints(),
    ]
    for c in relaxed:
        if c == constraints:
            continue
        try:
            nearest = plan(hardware, c).chosen
            break
        except QwenctlError:
            continue
    hint = (
        f"nearest plan that works: {nearest.name} on {nearest.backend}/{nearest.device}, n_ctx {nearest.n_ctx}, "
        f"predicted {nearest.tg_tps:.1f} tok/s"
        if nearest
        else "nothing fits this machine"
    )
    return QwenctlError(f"no plan meets the request: {why}", hint=hint, code=ExitCode.NO_FIT)


# --- a file at hand: predictions for bench and the estimate-accuracy benchmark ---------------


@dataclass(frozen=True)
class FilePrediction:
    """What the memory and speed models predict for one local GGUF loaded with given options.

    ``size`` names the catalog model whose dimensions the file has ("0.5B"), or is None when
    the architecture was built from the header alone. Memory pools are those of
    ``estimate_memory`` (``vram`` + ``ram`` with CUDA, ``ram`` on the CPU, ``unified`` on Metal).
    """

    path: str
    size: str | None
    file_bytes: int
    backend: str  # "llama.cpp"
    device: str  # "cuda" | "metal" | "cpu"
    n_gpu_layers: int  # as llama.cpp takes it: -1 or more than n_layers = every layer and the output
    n_layers: int
    arch: Architecture  # as read from the header
    n_ctx: int
    kv_cache_type: str
    flash_attn: bool
    memory: tuple[PoolMemory, ...]
    tg_tps: float
    tg_tps_low: float
    pp_tps: float
    source: str  # "qwenctl estimate (calibration <date>)", for bench's predicted column

    def pool(self, name: str) -> PoolMemory | None:
        return next((p for p in self.memory if p.pool == name), None)

    @property
    def gpu_bytes(self) -> int | None:
        """Device memory: VRAM on CUDA, the GPU's unified share on Metal; None on the CPU."""
        p = self.pool("vram") or self.pool("unified")
        return p.total_bytes if p else None

    @property
    def host_bytes(self) -> int | None:
        p = self.pool("ram")
        return p.total_bytes if p else None


def _file_model(info, tensors: list[tuple[str, int, tuple[int, ...]]]) -> tuple[ModelSpec, str | None]:
    """The catalog model with this header's dimensions, or a spec built from the header."""
    catalog = load_catalog()
    tied = not any(name == "output.weight" for name, _, _ in tensors)
    embd_shape = next((shape for name, _, shape in tensors if name == "token_embd.weight"), ())
    hidden = int(info.get("embedding_length", 0))
    heads = int(info.get("attention.head_count", 0))
    vocab = int(info.metadata.get("tokenizer.ggml.tokens") or (embd_shape[1] if len(embd_shape) > 1 else 0))
    arch = Architecture(
        hidden_size=hidden,
        n_layers=int(info.get("block_count", 0)),
        n_heads=heads,
        n_kv_heads=int(info.get("attention.head_count_kv", heads)),
        head_dim=int(info.get("attention.key_length", hidden // heads if heads else 0)),
        intermediate_size=int(info.get("feed_forward_length", 0)),
        vocab_size=vocab,
        tied_embeddings=tied,
        context_native=int(info.get("context_length", 0)),
        context_max=int(info.get("context_length", 0)),
    )
    if not (arch.hidden_size and arch.n_layers and arch.n_heads and arch.vocab_size):
        raise QwenctlError(f"{info.path} lacks the qwen2 dimensions the estimate needs", code=ExitCode.BAD_INPUT)
    dims = lambda a: (a.hidden_size, a.n_layers, a.n_heads, a.n_kv_heads, a.head_dim, a.intermediate_size, a.tied_embeddings)  # noqa: E731
    for m in catalog.models:
        if dims(m.arch) == dims(arch):
            return replace(m, arch=replace(m.arch, vocab_size=arch.vocab_size)), m.size
    params = 0
    for _, _, shape in tensors:
        n = 1
        for d in shape:
            n *= d
        params += n
    spec = ModelSpec(size=f"{params / 1e9:.2g}B (from header)", hf_repo="", license="", params=params, arch=arch,
                     scores=(), score=0.0, weights=(), sources=(info.path,))
    return spec, None


def predict_for_file(
    hardware: Hardware, path: Path | str, options: LoadOptions, backend: str = "llama.cpp", depth: int | None = None
) -> FilePrediction:
    """Predicted memory per pool and tok/s for loading the GGUF at `path` with `options` on `hardware`.

    `options` is a ``qwenctl.backends.LoadOptions``. The architecture comes from the GGUF
    header (matched to a catalog size when the dimensions agree) and the weights from the
    file's own tensor table, so quant mixes the catalog does not know (llama.cpp's fallbacks
    for rows k-quants cannot split, a custom quantization) are counted exactly. The device
    follows what llama.cpp would do on this machine: CUDA when an NVIDIA GPU is present, the
    installed llama-cpp-python can offload and ``n_gpu_layers != 0``; Metal on Apple Silicon;
    the CPU otherwise. ``depth``: tokens in the context when memory is measured (None: n_ctx, as
    the planner predicts; see ``estimate_memory``).
    """
    from pathlib import Path

    from qwenctl.backends.gguf_check import check_gguf, file_type_quant, read_gguf_header, split_parts

    if backend != "llama.cpp":
        raise QwenctlError(f"file predictions cover GGUF files in llama.cpp, not {backend!r}", code=ExitCode.BAD_INPUT)
    path = Path(path)
    info = check_gguf(path)
    parts = split_parts(path)
    infos = [info] + [read_gguf_header(p) for p in parts[1:]]
    tensors = [(t.name, t.n_bytes, t.shape) for i in infos for t in i.tensors]
    file_bytes = sum(i.file_size for i in infos)
    model, size = _file_model(info, tensors)
    split = split_from_tensors(((n, b) for n, b, _ in tensors), model.arch.n_layers)
    quant = file_type_quant(info.metadata.get("general.file_type")) or ""
    weights = Weights(format="gguf", quant=quant, label=path.name, repo="",
                      files=tuple(RepoFile(p.name, i.file_size, None) for p, i in zip(parts, infos)),
                      total_bytes=file_bytes, bytes_exact=True, bits=0, kld=0.0, embd_type=None, output_type=None,
                      source=str(path))

    b = hardware.backends if isinstance(hardware.backends, Backends) else None
    offload = b is None or b.llama_cpp_gpu_offload is not False
    if isinstance(hardware.apple, AppleSilicon) and options.n_gpu_layers != 0:
        device = "metal"
    elif hardware.gpus and offload and options.n_gpu_layers != 0:
        device = "cuda"
    else:
        device = "cpu"
    ngl = options.n_gpu_layers if device == "cuda" else (-1 if device == "metal" else 0)
    est = estimate_memory(model, weights, backend, device, options.n_ctx, ngl, options.kv_cache_type,
                          options.flash_attn, split=split, depth=depth)
    host_speed, _ = _host_speed(hardware)
    gpu_speed: DeviceSpeed | None = None
    if device == "cuda":
        gpu_speed, _ = _cuda_speed(hardware.gpus[0])
    elif device == "metal":
        assert isinstance(hardware.apple, AppleSilicon)
        gpu_speed = _apple_speed(hardware.apple, "metal")
    sp = estimate_speed(model, weights, gpu_speed, host_speed, ngl if device == "cuda" else -1, options.kv_cache_type,
                        split=split)
    return FilePrediction(
        path=str(path), size=size, file_bytes=file_bytes, backend=backend, device=device, n_gpu_layers=ngl,
        n_layers=model.arch.n_layers, arch=model.arch, n_ctx=options.n_ctx, kv_cache_type=options.kv_cache_type,
        flash_attn=options.flash_attn, memory=est.pools, tg_tps=sp.tg_tps, tg_tps_low=sp.tg_tps_low, pp_tps=sp.pp_tps,
        source=f"qwenctl estimate ({load_calibration()['version']})",
    )
