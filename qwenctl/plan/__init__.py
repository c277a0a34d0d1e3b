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
the best of the fastest plans that fit (within SPEED_TIE of the fastest), with a warning. An impossible explicit request raises
QwenctlError (NO_FIT) naming the reason and the nearest plan that works.
"""

from __future__ import annotations

from dataclasses import replace

from qwenctl.backend_choice import BackendChoice, choose_backend
from qwenctl.catalog import Catalog, ModelSpec, load_catalog
from qwenctl.cluster import Worker
from qwenctl.errors import ExitCode, QwenctlError
from qwenctl.hardware.build import shortfall_note
from qwenctl.hardware.facts import Hardware
from qwenctl.machine import Machine, gib, machine
from qwenctl.plan.placement import candidate
from qwenctl.plan.plans import Alternative, Constraints, Plan, PlanResult  # the result types, importable from here

DEFAULT_CTX = 8192
DEFAULT_MIN_TG = 5.0
SMALL_CTX = 2048  # what a machine too small for DEFAULT_CTX is offered instead
SPEED_TIE = 0.05  # predicted speeds closer than this are one speed: the smaller download is chosen


def _tps(a: float, b: float) -> str:
    """"12 vs 15", or "1.7 vs 1.9" where whole numbers would read as a tie."""
    digits = 0 if min(a, b) >= 10 else 1
    return f"{a:.{digits}f} vs {b:.{digits}f}"


def _sizes(a: float, b: float) -> str:
    """"1.20 vs 1.04 GiB", or "469 vs 468 MiB" where both are under a GiB and a tenth of one would read as a tie."""
    if max(a, b) < 2**30:
        return f"{a / 2**20:.0f} vs {b / 2**20:.0f} MiB"
    return f"{a / 2**30:.2f} vs {b / 2**30:.2f} GiB"


def _context(model: ModelSpec, constraints: Constraints) -> tuple[int, str | None]:
    """Requested context, capped at what the weights handle without rope scaling."""
    want = constraints.n_ctx or DEFAULT_CTX
    limit = model.arch.context_native
    if want > limit:
        return limit, f"context capped at {limit} tokens, Qwen2.5-{model.size}'s native window" + (
            f" (up to {model.arch.context_max} needs YaRN rope scaling, which qwenctl does not set up)" if model.arch.context_max > limit else ""
        )
    return want, None


def _evaluate(m: Machine, catalog: Catalog, constraints: Constraints, floor: float) -> list[tuple[Plan, str | None, str]]:
    """Every candidate with (plan, rejection kind or None, reason)."""
    fmt = "mlx" if m.backend == "mlx" else "gguf"
    out: list[tuple[Plan, str | None, str]] = []
    sizes = [catalog.model(constraints.size)] if constraints.size else list(catalog.models)
    for model in sizes:
        n_ctx, ctx_note = _context(model, constraints)
        for w in model.weights:
            if w.format != fmt or (constraints.quant and w.quant != constraints.quant.lower()):
                continue
            plan, misfit = candidate(m, model, w, n_ctx, "f16")
            if (misfit or plan.tg_tps_low < floor) and m.device in ("cuda", "metal"):
                # a q8_0 KV cache (needs flash attention) halves the cache: it may fit, or leave
                # room for more layers on the GPU; take it only when it is what makes the plan work
                alt, alt_misfit = candidate(m, model, w, n_ctx, "q8_0")
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
                        (f"{plan.name} may generate as slowly as {plan.tg_tps_low:.1f} tok/s "
                         f"(predicted {plan.tg_tps:.1f}); the floor is {floor:g} tok/s"),
                    )
                )
            else:
                out.append((replace(plan, reasons=tuple(notes)), None, ""))
    if constraints.quant and not out:
        raise QwenctlError(
            f"no {fmt.upper()} weights named {constraints.quant!r}" + (f" for {constraints.size}" if constraints.size else ""),
            hint=f"{fmt} quants: {', '.join(catalog.quants(fmt))}",
            code=ExitCode.NOT_FOUND,  # as an unknown size: a name that names nothing
        )
    return out


def _score(plan: Plan) -> float:
    """The quality score as plans are compared: equal when equal to 6 places (Q4_K_M and better score alike)."""
    return round(plan.quality, 6)


def _rank_key(plan: Plan) -> tuple[float, float]:
    return (-_score(plan), -plan.tg_tps)


def _settle_tie(ranked: list[tuple[Plan, str | None, str]]) -> list[tuple[Plan, str | None, str]]:
    """First, among the plans of the best one's quality within SPEED_TIE of its speed, the smallest download: the
    speed model cannot tell such speeds apart (a 7B Q5_0 and Q4_K_M on a CPU: 7.4 and 7.4 tok/s, and which is
    ahead turned on a bandwidth measured under load), while the download and the memory it saves are certain."""
    if not ranked:
        return ranked
    best = ranked[0][0]
    tied = [r for r in ranked if _score(r[0]) == _score(best) and r[0].tg_tps >= best.tg_tps * (1 - SPEED_TIE)]
    pick = min(tied, key=lambda r: r[0].download_bytes)
    return [pick, *(r for r in ranked if r is not pick)]


def _same_quality(p: Plan, chosen: Plan) -> str:
    """Why a plan of the chosen one's quality was not chosen (``chosen`` is the other side)."""
    if p.tg_tps < chosen.tg_tps * (1 - SPEED_TIE) or p.download_bytes <= chosen.download_bytes:
        return f"slower ({_tps(p.tg_tps, chosen.tg_tps)} tok/s)"
    return (f"as fast within {SPEED_TIE * 100:g} % ({_tps(p.tg_tps, chosen.tg_tps)} tok/s), a larger download "
            f"({_sizes(p.download_bytes, chosen.download_bytes)})")


def _why_chosen(m: Machine, target: BackendChoice, plan: Plan, runner_up: Plan | None, floor: float,
                short_of: float = 0.0) -> tuple[str, ...]:
    reasons = [target.reason]
    if plan.spread:
        here = "this machine's CPU" if plan.device == "cpu" else "RAM"
        reasons.append(f"{plan.spread}: " + ("every layer fits" if plan.n_gpu_layers == -1 else
                                               f"{plan.n_gpu_layers} of {plan.n_layers + 1} layers there, the rest on {here}"))
    if plan.split_reason:
        reasons.append(plan.split_reason)
    if plan.device == "cuda" and not plan.spread:
        if plan.n_gpu_layers == -1:
            reasons.append(f"every layer fits on the GPU ({gib(plan.memory[0].used_bytes)} of {gib(plan.memory[0].budget_bytes)} VRAM)")
        else:
            reasons.append(f"{plan.n_gpu_layers} of {plan.n_layers + 1} layers (the output layer first) fit on the GPU; the rest run from RAM")
    reasons.append(
        (f"nothing reaches {short_of:g} tok/s: the highest quality of the fastest plans that fit" if short_of else
         "highest quality that fits" + (f" and reaches {floor:g} tok/s" if floor > 0 else "")) + f": score {plan.quality:.1f} "
        f"(Qwen's benchmark mean for {plan.size}" + (", Q4_K_M and better score alike)" if plan.quality >= 0 else ")")
    )
    if runner_up is not None and _score(runner_up) == _score(plan):
        reasons.append(f"same quality as {runner_up.name}, which is {_same_quality(runner_up, plan)}")
    if plan.kv_cache_type != "f16":
        reasons.append(f"KV cache in {plan.kv_cache_type} so the {plan.n_ctx}-token context fits")
    return tuple(reasons) + plan.reasons


def plan(hardware: Hardware, constraints: Constraints = Constraints(), workers: tuple[Worker, ...] = ()) -> PlanResult:
    """The best plan for this machine (and its RPC ``workers``) under these constraints, and every alternative ranked."""
    catalog = load_catalog()
    if constraints.size:
        catalog.model(constraints.size)  # unknown sizes fail early with the list of sizes
    if constraints.n_ctx is not None and constraints.n_ctx < 256:
        raise QwenctlError(f"--ctx {constraints.n_ctx} is too small", hint="use at least 256 tokens", code=ExitCode.BAD_INPUT)
    target = choose_backend(hardware, constraints.backend)
    m = machine(hardware, target.backend, target.device, workers)
    explicit_floor = constraints.min_tg_tps is not None
    # the speed floor chooses for the user only when nothing was asked for: `--size 7B` keeps the usual
    # quant and is told it will be slow, rather than silently handed Q2_K
    asked = bool(constraints.size or constraints.quant)
    floor = constraints.min_tg_tps if explicit_floor else (0.0 if asked else DEFAULT_MIN_TG)
    assert floor is not None
    rows = _evaluate(m, catalog, constraints, floor)
    warnings = list(target.warnings)
    if target.device == "cuda" and rows and all(kind == "memory" for _, kind, _ in rows):
        on_cpu = _on_the_cpu(hardware, workers, catalog, constraints, floor, rows)
        if on_cpu is not None:
            target, m, rows, why = on_cpu
            warnings.append(why)
    if workers and not m.workers:
        warnings.append(f"{len(workers)} RPC worker{'s' if len(workers) > 1 else ''} left out: {target.backend} on "
                        f"{target.device} runs on this machine alone (qwenctl spreads llama.cpp over workers from a "
                        "CUDA or CPU main machine)")
    if constraints.n_ctx is None and rows and all(kind == "memory" for _, kind, _ in rows):
        # a small machine or container: a short context may be what lets the smallest model in
        short = _evaluate(m, catalog, replace(constraints, n_ctx=SMALL_CTX), floor)
        rows = short  # fits or not, the shorter context is the nearer miss to explain
        if any(kind != "memory" for _, kind, _ in short):
            warnings.append(f"context shortened to {SMALL_CTX} tokens: at {DEFAULT_CTX} no model fits in "
                            f"{gib(m.host_budget)} ({m.host_rule})")

    short_of = 0.0  # the floor nothing reached, where the fastest plans stand in
    feasible = sorted((r for r in rows if r[1] is None), key=lambda r: _rank_key(r[0]))
    feasible = _settle_tie(feasible)
    if not feasible and not explicit_floor:
        fits = [r for r in rows if r[1] == "speed"]
        if fits:
            # the fastest plans are one speed where their compute, not their bytes, sets it (every quant of a 0.5B on a
            # scalar RISC-V core): the best of those, not the smallest quant that wins by a rounding
            top = max(r[0].tg_tps for r in fits)
            fastest = _settle_tie(sorted((r for r in fits if r[0].tg_tps >= top * (1 - SPEED_TIE)),
                                         key=lambda r: _rank_key(r[0])))[0][0]
            warnings.append(
                f"nothing here reliably reaches {floor:g} tok/s; chose the best of the fastest plans that fit ({fastest.name}, "
                f"predicted {fastest.tg_tps:.1f} tok/s). Pass --min-speed 0 to rank by quality instead"
            )
            short_of, floor = floor, 0.0  # the choice no longer claims to reach it
            rows = [(p, None, "") if p is fastest else (p, k, r) for p, k, r in rows]
            feasible = [(fastest, None, "")]
    if not feasible:
        raise _no_fit(hardware, constraints, rows, workers)

    chosen = feasible[0][0]
    runner = feasible[1][0] if len(feasible) > 1 else None
    chosen = replace(chosen, reasons=_why_chosen(m, target, chosen, runner, floor, short_of))
    if asked and not explicit_floor and chosen.tg_tps_low < DEFAULT_MIN_TG:
        warnings.append(f"{chosen.name} may generate as slowly as {chosen.tg_tps_low:.1f} tok/s here (predicted "
                        f"{chosen.tg_tps:.1f}), under the usual {DEFAULT_MIN_TG:g} tok/s: expect slow replies, "
                        "or ask for a smaller size")
    alternatives = []
    for p, _, _ in feasible[1:]:
        if _score(p) == _score(chosen):
            why = f"same quality, {_same_quality(p, chosen)}"
        else:
            why = f"lower quality (score {p.quality:.1f} vs {chosen.quality:.1f})"
        alternatives.append(Alternative(p, None, why))
    rejected = sorted((r for r in rows if r[1] is not None), key=lambda r: _rank_key(r[0]))
    alternatives += [Alternative(p, kind, reason) for p, kind, reason in rejected]
    if workers and not m.workers:
        from qwenctl.mlx_cluster import paper_plan

        paper = paper_plan(m, workers, chosen.n_ctx)
        if paper is not None:
            warnings.append(paper.describe(chosen.name, chosen.quality))
    used = {t.device for t in chosen.speed.terms} if chosen.speed else set()
    devices = tuple(d for d in (m.gpu_speed, m.host_speed) if d is not None and d.name in used)
    note = shortfall_note(hardware)
    if note and m.host_speed in devices:  # the CPU runs part of this plan with the kernels its build has
        warnings.append(f"the installed llama-cpp-python was {note}")
    # what the chosen plan rests on: the memory assumptions, then those of the devices it runs on,
    # a bandwidth first (it moves the speed most)
    assumed = list(m.memory_assumptions) + sorted({a for d in devices for a in d.assumed}, key=lambda a: "bandwidth" not in a)
    return PlanResult(hardware.name, constraints, chosen, tuple(alternatives), tuple(warnings), tuple(assumed), devices)


def _on_the_cpu(hardware: Hardware, workers: tuple[Worker, ...], catalog: Catalog, constraints: Constraints, floor: float,
                gpu_rows: list[tuple[Plan, str | None, str]]) -> tuple[BackendChoice, Machine, list, str] | None:
    """The CPU's plans where no model fits what the GPU has free (another program holds it: Ollama keeping a model
    loaded, a game), and why; None where the CPU fits nothing either. Run loads such a plan with no GPU device at all
    (backends.llama_params.cpu_only): a CUDA build otherwise starts a context of hundreds of MiB on the full GPU."""
    from qwenctl.machine import gpu_memory

    m = machine(hardware, "llama.cpp", "cpu", workers)
    rows = _evaluate(m, catalog, constraints, floor)
    if all(kind == "memory" for _, kind, _ in rows):
        return None
    smallest = min(gpu_rows, key=lambda r: sum(p.used_bytes for p in r[0].memory))[2]
    room = ", ".join(f"the {g.name} has {gib(g.memory_free_bytes)} free of {gib(gpu_memory(g)[0])}"
                     for g in hardware.gpus if g.memory_free_bytes is not None)
    why = (f"no model fits the GPU's free memory ({room or 'none free'}; {smallest}): planned on the CPU, without the GPU. "
           "Free it (`nvidia-smi` lists what holds it) and plan again to use it")
    return BackendChoice("llama.cpp", "cpu", "llama.cpp on the CPU (no model fits the GPU's free memory)", ()), m, rows, why


def _no_fit(hardware: Hardware, constraints: Constraints, rows: list[tuple[Plan, str | None, str]],
            workers: tuple[Worker, ...] = ()) -> QwenctlError:
    """Explain the best refused candidate and point at the nearest plan that works."""
    best = sorted(rows, key=lambda r: _rank_key(r[0]))
    why = best[0][2] if best else "no candidate matches the constraints"
    if rows and all(kind == "memory" for _, kind, _ in rows):
        # nothing fits at all: the useful fact is what the smallest model would need, not the largest
        smallest = min(rows, key=lambda r: sum(p.used_bytes for p in r[0].memory))
        why = smallest[2] if constraints.size else f"even the smallest model, {smallest[2]}"
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
            nearest = plan(hardware, c, workers).chosen
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
