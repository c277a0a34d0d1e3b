"""Which devices CUDA will use, in CUDA's order: the contract ``Hardware.gpus`` keeps.

Step 1, order: NVML lists GPUs in PCI bus order. CUDA uses that order when
CUDA_DEVICE_ORDER=PCI_BUS_ID; by default (FASTEST_FIRST) it puts "the fastest" first by an
undocumented heuristic. GPUs of one model keep PCI order either way; for mixed GPUs qwenctl
estimates it (CUDA cores x max SM clock) and says so in ``order_source``.
Step 2, MIG: a GPU with MIG on is not a CUDA device itself, its instances are; and "a single
CUDA process can only enumerate a single MIG device" (MIG user guide, CUDA 11/R450 and
CUDA 12/R525), so with several instances only the first one listed counts.
Step 3, CUDA_VISIBLE_DEVICES (CUDA programming guide, "CUDA Environment Variables"): unset,
every device; empty, none; else a comma-separated list of indices (into the order of step 1),
GPU-UUID prefixes, or MIG-UUIDs (also the older MIG-GPU-<uuid>/<gi>/<ci> form), enumerated
in the order listed, stopping at the first entry that matches nothing.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

from qwenctl.errors import ExitCode, QwenctlError
from qwenctl.hardware.facts import Hardware, Nvidia, NvidiaGpu, UnusableGpu

if TYPE_CHECKING:
    from qwenctl.hardware.nvidia import Physical

ONE_MIG = "CUDA enumerates one MIG device per process (MIG user guide); pick another with CUDA_VISIBLE_DEVICES=MIG-…"


def cuda_devices(physical: list[Physical], visible: str | None, order: str | None
                 ) -> tuple[tuple[NvidiaGpu, ...], tuple[UnusableGpu, ...], str]:
    """(devices CUDA will use, renumbered 0..n-1; GPUs it will not use and why; how ordered)."""
    ranked, how = _order(physical, order)
    chosen, hidden = _select(ranked, visible)
    candidates: list[NvidiaGpu] = []
    mig_taken = False
    for p, inst in chosen:
        if inst is not None:
            if mig_taken:
                hidden.append(_unusable(inst, ONE_MIG))
                continue
            mig_taken = True
            candidates.append(inst)
        elif p.mig_on:
            why = ("MIG is on and no MIG instance exists on it (create one with nvidia-smi mig -cgi)"
                   if not p.instances else "MIG is on: CUDA uses its MIG instances, not the whole GPU")
            hidden.append(_unusable(p.gpu, why))
        else:
            candidates.append(p.gpu)
    gpus = tuple(dataclasses.replace(g, index=n) for n, g in enumerate(candidates))
    return gpus, tuple(hidden), how


def _order(physical: list[Physical], order: str | None) -> tuple[list[Physical], str]:
    if order == "PCI_BUS_ID":
        return physical, "PCI bus order (CUDA_DEVICE_ORDER=PCI_BUS_ID)"
    if len({p.gpu.name for p in physical}) <= 1:
        return physical, "PCI bus order (one GPU model: FASTEST_FIRST keeps it)"
    speed = [(p.gpu.cuda_cores or 0) * (p.gpu.max_sm_clock_mhz or 0) for p in physical]
    if 0 in speed:
        return physical, "PCI bus order assumed (CUDA_DEVICE_ORDER unset, mixed GPUs, speeds unknown)"
    ranked = [p for _, p in sorted(zip(speed, physical), key=lambda t: -t[0])]
    return ranked, "fastest first, estimated by CUDA cores x SM clock (CUDA_DEVICE_ORDER unset; CUDA's heuristic is undocumented)"


def _select(ranked: list[Physical], visible: str | None
            ) -> tuple[list[tuple[Physical, NvidiaGpu | None]], list[UnusableGpu]]:
    """[(physical GPU, the MIG instance meant or None)] in CUDA's order, and what was left out."""
    everything = [(p, i) for p in ranked for i in (p.instances if p.mig_on and p.instances else (None,))]
    if visible is None:
        return everything, []
    chosen: list[tuple[Physical, NvidiaGpu | None]] = []
    for entry in (e.strip() for e in visible.split(",")):
        match = _match(entry, ranked)
        if match is None:
            break  # CUDA stops at the first identifier that matches no device
        chosen.extend(match)
    picked = {id(g) for p, i in chosen for g in (i or p.gpu,)}
    hidden = [_unusable(i or p.gpu, f"not in CUDA_VISIBLE_DEVICES={visible}")
              for p, i in everything if id(i or p.gpu) not in picked]
    return chosen, hidden


def _match(entry: str, ranked: list[Physical]) -> list[tuple[Physical, NvidiaGpu | None]] | None:
    if entry.isdigit():
        n = int(entry)
        if n >= len(ranked):
            return None
        p = ranked[n]
        return [(p, i) for i in p.instances] if p.mig_on and p.instances else [(p, None)]
    if entry.startswith("MIG-"):
        for p in ranked:
            for i in p.instances:
                if i.uuid == entry or (i.uuid and entry.startswith("MIG-GPU-") and p.gpu.uuid in entry):
                    return [(p, i)]
        return None
    if entry.startswith("GPU-"):
        hits = [p for p in ranked if p.gpu.uuid.startswith(entry)]
        if len(hits) != 1:
            return None
        p = hits[0]
        return [(p, i) for i in p.instances] if p.mig_on and p.instances else [(p, None)]
    return None


def _unusable(gpu: NvidiaGpu, reason: str) -> UnusableGpu:
    return UnusableGpu(gpu.nvml_index if gpu.nvml_index is not None else gpu.index, gpu.name, gpu.uuid or None, reason)


def narrow_visible(current: str | None, spec: str, gpu_count: int | None = None) -> str:
    """CUDA_VISIBLE_DEVICES that leaves only the GPUs ``spec`` ("0,1") numbers, in the numbering `detect` shows.

    Those numbers are CUDA's (the order CUDA enumerates under the current CUDA_VISIBLE_DEVICES), so an
    existing list is indexed ("2,3" and --gpus 1 -> "3"); unset, the numbers are CUDA's indices as they are.
    """
    wanted = parse_gpu_list(spec)
    if current is None:
        missing = [i for i in wanted if gpu_count is not None and i >= gpu_count]
        if missing:
            have = f"GPUs 0-{gpu_count - 1}" if gpu_count else "no NVIDIA GPU"
            raise QwenctlError(f"--gpus {spec}: there is no GPU {missing[0]} (this machine has {have})",
                               hint="`qwenctl detect` lists them", code=ExitCode.BAD_INPUT)
        return ",".join(str(i) for i in wanted)
    entries = [e.strip() for e in current.split(",") if e.strip()]
    missing = [i for i in wanted if i >= len(entries)]
    if missing:
        raise QwenctlError(f"--gpus {spec}: no GPU {missing[0]} among CUDA_VISIBLE_DEVICES={current}",
                           hint=f"number them 0-{len(entries) - 1}, as `qwenctl detect` lists them", code=ExitCode.BAD_INPUT)
    return ",".join(entries[i] for i in wanted)


def use_only(spec: str) -> None:
    """Make this process's CUDA see only the GPUs ``spec`` numbers (--gpus), before anything initialises CUDA."""
    import os

    from qwenctl.hardware import usage

    # NVML's count (it does not start CUDA, which would read CUDA_VISIBLE_DEVICES before it is narrowed)
    count = usage.gpu_count()
    os.environ["CUDA_VISIBLE_DEVICES"] = narrow_visible(os.environ.get("CUDA_VISIBLE_DEVICES"), spec, count or 0)


def parse_gpu_list(spec: str) -> tuple[int, ...]:
    """ "0,1" -> (0, 1); anything but distinct non-negative integers is a one-line error."""
    parts = [p.strip() for p in spec.split(",")]
    if not parts or not all(p.isdigit() for p in parts) or len(set(parts)) != len(parts):
        raise QwenctlError(f"--gpus {spec!r}: give GPU numbers as `qwenctl detect` lists them, e.g. 0,1",
                           code=ExitCode.BAD_INPUT)
    return tuple(int(p) for p in parts)


def select_gpus(hw: Hardware, spec: str) -> Hardware:
    """The machine with only the GPUs ``spec`` numbers, renumbered from 0 as CUDA would (for --profile)."""
    wanted = parse_gpu_list(spec)
    missing = [i for i in wanted if i >= len(hw.gpus)]
    if missing:
        have = f"GPUs 0-{len(hw.gpus) - 1}" if hw.gpus else "no GPU"
        raise QwenctlError(f"--gpus {spec}: there is no GPU {missing[0]} ({hw.name or 'this machine'} has {have})",
                           code=ExitCode.BAD_INPUT)
    assert isinstance(hw.nvidia, Nvidia)
    gpus = tuple(dataclasses.replace(hw.gpus[i], index=n) for n, i in enumerate(wanted))
    return dataclasses.replace(hw, nvidia=dataclasses.replace(hw.nvidia, gpus=gpus))
