"""One candidate: a (size, quant) placed on this machine's devices, with its memory and speed.

On one GPU as many layers as fit, the rest on the host; with several GPUs or RPC workers also a layer split and
(local GPUs) a tensor split, the fastest that fits (docs/planning.md, "Several GPUs and several machines").
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

from qwenctl.catalog import ModelSpec, Weights, load_catalog
from qwenctl.estimate import (
    MemoryEstimate,
    estimate_memory,
    estimate_split_memory,
    fit_gpu_layers,
    idle_gpu,
    most_layers,
    weight_split,
)
from qwenctl.machine import Machine, PoolUse, Slot, overflow, pool_uses
from qwenctl.plan.plans import Plan
from qwenctl.speed import SpeedEstimate, estimate_placed_speed, estimate_speed
from qwenctl.split import place_layers, proportions_by_room


def _new_plan(m: Machine, model: ModelSpec, w: Weights, n_ctx: int, kv_type: str, flash: bool,
              pools: tuple[PoolUse, ...], sp: SpeedEstimate, device: str, n_gpu_layers: int, split_mode: str = "none",
              tensor_split: tuple[float, ...] = (), workers: tuple[str, ...] = ()) -> Plan:
    """A candidate: the (size, quant) download, its settings, where it runs, its memory and speed."""
    return Plan(size=model.size, quant=w.quant, quant_label=w.label, backend=m.backend, device=device, repo=w.repo,
                files=w.file_names, download_bytes=w.total_bytes, download_bytes_exact=w.bytes_exact,
                n_gpu_layers=n_gpu_layers, n_layers=model.arch.n_layers, n_ctx=n_ctx, n_threads=m.threads,
                kv_cache_type=kv_type, flash_attn=flash, memory=pools, tg_tps=sp.tg_tps, tg_tps_low=sp.tg_tps_low,
                tg_tps_full=sp.tg_at(n_ctx), pp_tps=sp.pp_tps, quality=load_catalog().quality(model, w), reasons=(), speed=sp,
                split_mode=split_mode, tensor_split=tensor_split, workers=workers)


def candidate(m: Machine, model: ModelSpec, w: Weights, n_ctx: int, kv_type: str) -> tuple[Plan, str | None]:
    """Best offload of one (size, quant): the plan and, if it cannot run, why not (memory)."""
    # GPU plans ask for flash attention; CPU plans leave it to llama.cpp's auto rule, which turns it on
    # there too: the memory is a flash-attention graph's either way
    flash = m.device in ("cuda", "metal")

    def build(ngl: int) -> tuple[Plan, str | None]:
        device = m.device if not (m.device == "cuda" and ngl == 0) else "cpu"
        # the memory of a CUDA build with no layer offloaded is still a CUDA build's
        pools = pool_uses(m, estimate_memory(model, w, m.backend, m.device if m.device == "cuda" else device, n_ctx, ngl, kv_type, True,
                                             resident_threads=m.gpu_threads, cuda_runtime=m.cuda_runtime))
        gpu_speed = m.gpu_speed if device != "cpu" else None
        sp = m.corrected(estimate_speed(model, w, gpu_speed, m.host_speed, ngl if device == "cuda" else -1, kv_type))
        plan = _new_plan(m, model, w, n_ctx, kv_type, flash, pools, sp, device=device,
                         n_gpu_layers=ngl if device == "cuda" else (-1 if device == "metal" else 0))
        return plan, overflow(m, pools)

    if m.slots:
        return _best_spread(m, model, w, n_ctx, kv_type, build)
    if m.device != "cuda":
        return build(0 if m.device == "cpu" else -1)
    return _one_gpu(m, model, w, n_ctx, kv_type, flash, build)


def _one_gpu(m: Machine, model: ModelSpec, w: Weights, n_ctx: int, kv_type: str, flash: bool,
             build: Callable[[int], tuple[Plan, str | None]]) -> tuple[Plan, str | None]:
    """As many layers on the GPU as fit, the rest on the host."""
    ngl = fit_gpu_layers(model, w, n_ctx, m.gpu_budget, kv_type, flash, resident_threads=m.gpu_threads)
    if ngl in (-1, 0):
        return build(ngl if ngl == -1 else 0)
    split, misfit = build(ngl)
    # a split plan's slow end is uncertain (split_uncertainty), but it is never slower than
    # the same model on the CPU alone, which it could always fall back to
    cpu_only, _ = build(0)
    return replace(split, tg_tps_low=max(split.tg_tps_low, min(cpu_only.tg_tps_low, split.tg_tps))), misfit


SPREAD_MARGIN = 1.05  # a split must beat one device by this much when one device holds the model


def _best_spread(m: Machine, model: ModelSpec, w: Weights, n_ctx: int, kv_type: str,
                 build: Callable[[int], tuple[Plan, str | None]]) -> tuple[Plan, str | None]:
    """One GPU, a layer split or a tensor split over every device: the fastest that fits, with the others as reasons.

    A split has to beat one GPU by SPREAD_MARGIN when one GPU holds the whole model: it costs another
    CUDA context and a device the user may want for something else, and the prediction has its spread.
    """
    flash = m.device == "cuda" or m.device == "cpu"
    options: list[tuple[str, Plan, str | None]] = []
    if m.device == "cuda":
        one, misfit = _one_gpu(m, model, w, n_ctx, kv_type, flash, build)
        assert m.gpu is not None
        # the main GPU's pool by its index, and every other visible GPU's idle CUDA context beside it
        others = tuple(s for s in m.slots if s.kind == "gpu" and s.gpu_index != m.gpu.index)
        idle = pool_uses(m, MemoryEstimate(tuple(idle_gpu(i, s.resident_threads) for i, s in enumerate(m.slots) if s in others)),
                         m.slots)
        at = next(i for i, s in enumerate(m.slots) if s.gpu_index == m.gpu.index)
        main = tuple(replace(p, device=at, name=m.slots[at].label) if p.pool == "vram" else p for p in one.memory)
        options.append(("one GPU", replace(one, main_gpu=m.gpu.index, memory=main + idle), misfit))
    else:
        options.append(("this machine alone", *build(0)))
    options.append(("layer split", *_spread(m, model, w, n_ctx, kv_type, flash, "layer")))
    local = [s for s in m.slots if s.kind == "gpu"]
    if len(local) > 1 and not m.workers:
        options.append(("tensor split", *_spread(m, model, w, n_ctx, kv_type, flash, "tensor")))

    def score(option: tuple[str, Plan, str | None]) -> tuple[bool, bool, float]:
        label, plan, misfit = option
        alone = label in ("one GPU", "this machine alone")
        return misfit is None, plan.n_gpu_layers == -1 or alone, plan.tg_tps * (SPREAD_MARGIN if alone else 1.0)

    ranked = sorted(options, key=score, reverse=True)
    label, best, misfit = ranked[0]
    compared = "; ".join(f"{lbl} {p.tg_tps:.0f} tok/s" + ("" if mf is None else " (does not fit)")
                         for lbl, p, mf in ranked[1:])
    why = f"{label}: predicted {best.tg_tps:.0f} tok/s" + (f" (vs {compared})" if compared else "")
    fewer = _fewer_gpus(m, model, w, n_ctx, kv_type, flash, local) if len(local) > 2 and not m.workers else None
    if fewer and misfit is None and fewer[1].tg_tps > SPREAD_MARGIN * best.tg_tps:
        gpus, plan = fewer
        why += (f"; a tensor split over {len(gpus)} of the {len(local)} GPUs is predicted at {plan.tg_tps:.0f} tok/s "
                f"(`--gpus {','.join(map(str, gpus))}`): each all-reduce waits on every GPU it spans")
    return replace(best, split_reason=why), misfit


def _fewer_gpus(m: Machine, model: ModelSpec, w: Weights, n_ctx: int, kv_type: str, flash: bool, local: list[Slot]
                ) -> tuple[tuple[int, ...], Plan] | None:
    """The fastest tensor split over 2 ... n - 1 of the local GPUs (the fastest ones, then the roomiest) that fits:
    (their CUDA indices, the plan), or None.

    Past some count more GPUs are slower: an all-reduce waits on every GPU it spans (ceil(log2 n) exchanges,
    speed_model.json `links`) while each GPU's reads shrink as 1/n, and a small model reads little. llama.cpp's tensor split spans every GPU CUDA shows it, and qwenctl
    starts CUDA while it detects the machine, so the plan names the GPUs (`--gpus` narrows CUDA_VISIBLE_DEVICES
    before that) rather than taking them itself.
    """
    fastest = sorted(local, key=lambda s: (-s.speed.bandwidth_bytes_per_s, -s.budget))
    best = None
    for k in range(2, len(local)):
        chosen = tuple(s for s in local if s in fastest[:k])
        plan, misfit = _spread(replace(m, slots=chosen), model, w, n_ctx, kv_type, flash, "tensor")
        if misfit is None and (best is None or plan.tg_tps > best[1].tg_tps):
            best = tuple(s.gpu_index for s in chosen if s.gpu_index is not None), plan
    return best


def _spread(m: Machine, model: ModelSpec, w: Weights, n_ctx: int, kv_type: str, flash: bool, mode: str
            ) -> tuple[Plan, str | None]:
    """The model over every device of ``m.slots`` (tensor: the local GPUs), shares by the room each has."""
    slots = m.slots if mode == "layer" else tuple(s for s in m.slots if s.kind == "gpu")
    kinds = tuple(s.kind for s in slots)
    a = model.arch
    links = replace(m.links, remote=tuple(s.link for s in slots))

    def memory(ngl: int, shares: tuple[float, ...]) -> MemoryEstimate:
        placement = place_layers(a.n_layers, ngl, shares)
        return estimate_split_memory(model, w, n_ctx, mode, placement, shares, kinds, kv_type, flash,
                                     resident_threads=tuple(s.resident_threads for s in slots))

    # shares in proportion to the room each device has once its own fixed costs (context, compute buffer,
    # the output layer where it lands) are paid
    even = tuple(1.0 for _ in slots)
    first = memory(-1, even)
    room = tuple(s.budget - (p.total_bytes - p.weights_bytes - p.kv_bytes) - (0 if mode == "tensor" else
                 (p.weights_bytes - round(place_layers(a.n_layers, -1, even).layers_on(i) * weight_split(load_catalog(), model, w).layer_bytes)))
                 for i, (s, p) in enumerate(zip(slots, first.pools)))
    shares = proportions_by_room(room)

    def build(ngl: int) -> tuple[Plan, str | None]:
        placement = place_layers(a.n_layers, ngl, shares)
        pools = pool_uses(m, memory(ngl, shares), slots)
        sp = m.corrected(estimate_placed_speed(model, w, tuple(s.speed for s in slots), m.host_speed, placement, mode,
                                               shares, links, kv_type))
        plan = _new_plan(m, model, w, n_ctx, kv_type, flash, pools, sp, device=m.device, n_gpu_layers=ngl, split_mode=mode,
                         tensor_split=shares, workers=tuple(dict.fromkeys(s.endpoint for s in slots if s.endpoint)))
        return plan, overflow(m, pools)

    def devices_fit(ngl: int) -> bool:  # memory only: the host's part is the plan's misfit to report
        return all(p.total_bytes <= s.budget for p, s in zip(memory(ngl, shares).pools, slots))

    if m.device == "cpu" and mode == "layer":
        # a CPU main process is one of the machines: it keeps the first layers, in proportion to its room
        host_room = max(m.host_budget - memory(-1, shares).pools[-1].total_bytes, 0)
        offloaded = round((a.n_layers + 1) * sum(room) / max(sum(room) + host_room, 1))
        for ngl in range(max(offloaded, 1), a.n_layers + 2):  # more on the workers while the host overflows
            plan, misfit = build(ngl if ngl <= a.n_layers else -1)
            if misfit is None or not devices_fit(ngl if ngl <= a.n_layers else -1):
                break
        if misfit is None:
            return plan, misfit
    plan, misfit = build(-1)
    if misfit is None or mode == "tensor":
        return plan, misfit

    ngl = most_layers(a.n_layers, devices_fit)
    if ngl == -1:
        return plan, misfit  # the devices hold everything: what overflows is the host
    if ngl == 0:
        return build(0) if m.device == "cpu" else (plan, misfit)
    return build(ngl)
