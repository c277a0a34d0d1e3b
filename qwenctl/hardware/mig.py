"""MIG instances of one GPU, each described as the device CUDA sees.

nvmlDeviceGetMigMode gives (current, pending); with MIG on, every index below
nvmlDeviceGetMaxMigDeviceCount may hold an instance (nvmlDeviceGetMigDeviceHandleByIndex;
NOT_FOUND where none was created). Each instance has its own name ("NVIDIA A100-SXM4-80GB
MIG 1g.10gb": the profile is the last word), UUID (MIG-...), memory info, and attributes
(nvmlDeviceGetAttributes: SM count, slice counts, memory MB). Its share of the parent's
bandwidth is its memory slices out of the GPU's 8 (data/nvidia_arch.json, from the MIG
user guide); its compute is its own SM count.
"""

from __future__ import annotations

import dataclasses
import re
from typing import TYPE_CHECKING

from qwenctl.hardware._parse import data
from qwenctl.hardware.facts import NvidiaGpu
from qwenctl.hardware.snapshot import NvmlError, Source

if TYPE_CHECKING:
    from qwenctl.hardware.nvidia import _Reader

MIB = 1 << 20
_PROFILE = re.compile(r"MIG (\S+)$")
EMPTY_SLOT = {"NVML_ERROR_NOT_FOUND", "NVML_ERROR_INVALID_ARGUMENT", "NOT_CAPTURED"}
MAX_INSTANCES = 7  # MIG splits a GPU into at most seven GPU instances (NVIDIA's MIG user guide)


def instances(source: Source, parent: NvidiaGpu) -> tuple[bool, tuple[NvidiaGpu, ...]]:
    """(MIG on?, its instances). A GPU without MIG support answers NotSupported: MIG off."""
    from qwenctl.hardware.nvidia import _Reader

    assert parent.nvml_index is not None
    r = _Reader(source, parent.nvml_index)
    mode = r.get(None, "nvmlDeviceGetMigMode")
    if not mode or mode[0] != 1:
        return False, ()
    found = []
    for j in range(r.get(None, "nvmlDeviceGetMaxMigDeviceCount") or 0):
        slot = _Reader(source, (parent.nvml_index, j))
        try:
            uuid = slot.get(None, "nvmlDeviceGetUUID")
        except NvmlError as e:
            if e.code in EMPTY_SLOT:
                continue
            raise
        found.append(_instance(slot, parent, uuid or ""))
    return True, tuple(found)


def _instance(r: _Reader, parent: NvidiaGpu, uuid: str) -> NvidiaGpu:
    from qwenctl.hardware.nvidia import cores_per_sm

    name = r.get(None, "nvmlDeviceGetName") or f"{parent.name} MIG"
    attributes = r.get("sm_count", "nvmlDeviceGetAttributes") or {}
    memory = r.get("memory_total_bytes", "nvmlDeviceGetMemoryInfo")
    if memory is None and attributes.get("memorySizeMB"):
        size = attributes["memorySizeMB"] * MIB
        memory = {"total": size, "free": size, "used": 0}
        r.unknown = [u for u in r.unknown if u[0] != "memory_total_bytes"]
    total = memory["total"] if memory else None
    sms = attributes.get("multiprocessorCount") or None
    per_sm = cores_per_sm(parent.compute_capability)
    match = _PROFILE.search(name)
    return dataclasses.replace(
        parent,
        name=name,
        uuid=uuid,
        memory_total_bytes=total,
        memory_free_bytes=memory["free"] if memory else None,
        memory_used_bytes=memory["used"] if memory else None,
        bandwidth_bytes_per_s=bandwidth_share(parent, total),
        memory_bus_width_bits=None,  # the bus belongs to the whole GPU; the instance gets its slices' share
        max_memory_clock_mhz=None,
        power_limit_w=None,  # the power limit belongs to the whole GPU
        cuda_cores=sms * per_sm if sms and per_sm else None,
        sm_count=sms,
        mig_profile=match.group(1) if match else None,
        parent_name=parent.name,
        unknown=tuple(r.unknown),
    )


def memory_slices(instance_bytes: int | None, parent_bytes: int | None) -> int | None:
    """How many of the GPU's memory slices an instance owns (1g.10gb on an 80 GB A100: 1 of 8)."""
    if not instance_bytes or not parent_bytes:
        return None
    slices = data("nvidia_arch.json")["mig"]["memory_slices"]
    return max(1, min(slices, round(instance_bytes / parent_bytes * slices)))


def bandwidth_share(parent: NvidiaGpu, instance_bytes: int | None) -> int | None:
    """The instance's memory slices / the GPU's slices x the GPU's peak bandwidth."""
    owned = memory_slices(instance_bytes, parent.memory_total_bytes)
    if owned is None or not parent.bandwidth_bytes_per_s:
        return None
    return parent.bandwidth_bytes_per_s * owned // data("nvidia_arch.json")["mig"]["memory_slices"]
