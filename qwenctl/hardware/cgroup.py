"""The limits of this process's container: the smallest cgroup limit that binds, on memory and on CPU time.

Method 1: /proc/self/mountinfo says where each cgroup hierarchy is mounted (cgroup2, or a
cgroup v1 hierarchy with the `memory` or `cpu` controller) and which cgroup the mount's root is;
/proc/self/cgroup says which cgroup this process is in. Their difference is the process's
folder under the mount point. Method 2, when mountinfo is missing or names no such mount:
the conventional mount points (/sys/fs/cgroup for v2, /sys/fs/cgroup/<controller> for v1).
In both, every folder from the process's cgroup up to the mount point is read, and the
smallest limit wins: any ancestor's limit binds its descendants (cgroup v2 `memory.max`,
v1 `memory.limit_in_bytes` with hierarchical accounting, the default since Linux 3.x; v2 `cpu.max`,
v1 `cpu.cfs_quota_us` over `cpu.cfs_period_us`, the CPU time a period allows, in CPUs).
This is how the JDK's and .NET's container support find their limits.
"""

from __future__ import annotations

import posixpath
from dataclasses import dataclass

from qwenctl.hardware._parse import to_int
from qwenctl.hardware.snapshot import Source

CGROUP_ROOT = "/sys/fs/cgroup"
# cgroup v1 reports "no limit" as PAGE_COUNTER_MAX pages (9223372036854771712 on 4 KiB pages);
# anything this large is no limit at all.
V1_UNLIMITED = 1 << 62


@dataclass(frozen=True)
class Limit:
    bytes: int
    source: str  # "cgroup v2 /sys/fs/cgroup/x/memory.max" (+ ", via mountinfo" when found that way)
    used: int | None  # what the process's own cgroup uses now (memory.current / usage_in_bytes)


@dataclass(frozen=True)
class CpuQuota:
    cpus: float  # CPU time the cgroup may use per period, in CPUs (1.5: one and a half CPUs' worth)
    source: str  # "cgroup v2 /sys/fs/cgroup/x/cpu.max" (+ ", via mountinfo")


@dataclass(frozen=True)
class _Mount:
    root: str  # the cgroup the mount shows at its mount point
    point: str


def limit(source: Source) -> Limit | None:
    found = [_read(source, version, folder, top, how) for version, folder, top, how in _folders(source, "memory")]
    limits = [f for f in found if f is not None]
    return min(limits, key=lambda f: f.bytes) if limits else None


def cpu_quota(source: Source) -> CpuQuota | None:
    """The CPU time this process's cgroups allow, in CPUs: what `docker run --cpus` and a Kubernetes CPU limit set.
    None where no cgroup limits it."""
    found = []
    for version, folder, top, how in _folders(source, "cpu"):
        for directory in _upwards(folder, top):
            quota = _cpu_quota_at(source, version, directory)
            if quota is not None:
                found.append(CpuQuota(quota[0], f"cgroup v{version} {quota[1]}{how}"))
    return min(found, key=lambda q: q.cpus) if found else None


def _cpu_quota_at(source: Source, version: int, directory: str) -> tuple[float, str] | None:
    """(CPUs, file) of one cgroup folder's quota: v2 `cpu.max` is "max 100000" (none) or "<quota> <period>" in
    microseconds; v1 `cpu.cfs_quota_us` is -1 (none) or the quota, over `cpu.cfs_period_us`."""
    if version == 2:
        name = f"{directory}/cpu.max"
        fields = (_optional(source, name) or "").split()
        if not fields or fields[0] == "max":
            return None
        quota, period = to_int(fields[0], name), to_int(fields[1], name) if len(fields) > 1 else 100_000
    else:
        name = f"{directory}/cpu.cfs_quota_us"
        text = _optional(source, name)
        if text is None:
            return None
        period_name = f"{directory}/cpu.cfs_period_us"
        quota, period = to_int(text, name), to_int(_optional(source, period_name) or "100000", period_name)
    return (quota / period, name) if quota > 0 and period > 0 else None  # v1's -1: no limit


def _folders(source: Source, controller: str) -> list[tuple[int, str, str, str]]:
    """(version, the process's cgroup folder, the hierarchy's mount point, how it was found) for every hierarchy
    that has ``controller``: v2's, and v1's own."""
    try:
        memberships = _memberships(source.read_text("/proc/self/cgroup"), controller)
    except FileNotFoundError:
        return []
    mounts = _mounts(source, controller)
    out = []
    for version, path in memberships:
        mount = mounts.get(version)
        if mount is not None:
            out.append((version, _folder(mount, path), mount.point, ", via mountinfo"))
        else:  # method 2: the conventional mount point
            point = CGROUP_ROOT if version == 2 else f"{CGROUP_ROOT}/{controller}"
            out.append((version, posixpath.normpath(point + path), point, ""))
    return out


def _memberships(text: str, controller: str) -> list[tuple[int, str]]:
    """(cgroup version, path) of this process: the `0::` line (v2) and the v1 line of ``controller``."""
    out = []
    for line in text.splitlines():
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        hierarchy, controllers, path = parts
        if hierarchy == "0" and controllers == "":
            out.append((2, path))
        elif controller in controllers.split(","):
            out.append((1, path))
    return out


def _mounts(source: Source, controller: str) -> dict[int, _Mount]:
    """{version: mount} from /proc/self/mountinfo (proc(5): fields, then " - ", fstype, source, options)."""
    try:
        text = source.read_text("/proc/self/mountinfo")
    except OSError:
        return {}
    mounts: dict[int, _Mount] = {}
    for line in text.splitlines():
        head, sep, tail = line.partition(" - ")
        fields, after = head.split(), tail.split()
        if not sep or len(fields) < 5 or len(after) < 3:
            continue
        fstype, options = after[0], after[2].split(",")
        mount = _Mount(root=_unescape(fields[3]), point=_unescape(fields[4]))
        if fstype == "cgroup2":
            mounts.setdefault(2, mount)
        elif fstype == "cgroup" and controller in options:
            mounts.setdefault(1, mount)
    return mounts


def _unescape(field: str) -> str:
    """mountinfo writes space, tab, newline and backslash as octal escapes (\\040 ...)."""
    return field.encode().decode("unicode_escape") if "\\" in field else field


def _folder(mount: _Mount, path: str) -> str:
    """The process's cgroup folder under the mount. A path outside the mount's root (a
    container with its own cgroup namespace seeing the host's path) means the mount point."""
    root = mount.root.rstrip("/")
    if path == root or path.startswith(root + "/"):
        return posixpath.normpath(mount.point + path[len(root):])
    return mount.point


def _read(source: Source, version: int, folder: str, top: str, how: str) -> Limit | None:
    name = "memory.max" if version == 2 else "memory.limit_in_bytes"
    best: tuple[int, str] | None = None
    for directory in _upwards(folder, top):
        text = _optional(source, f"{directory}/{name}")
        if text is None or text.strip() == "max":
            continue
        value = to_int(text, f"{directory}/{name}")
        if version == 1 and value >= V1_UNLIMITED:
            continue
        if best is None or value < best[0]:
            best = (value, f"{directory}/{name}")
    if best is None:
        return None
    # What the process's own cgroup uses: its folder, or the nearest one that exists (a
    # namespaced container sees its cgroup at the mount point).
    usage_name = "memory.current" if version == 2 else "memory.usage_in_bytes"
    usage = next((u for d in _upwards(folder, top) if (u := _optional(source, f"{d}/{usage_name}")) is not None), None)
    used = to_int(usage, usage_name) if usage is not None else None
    return Limit(best[0], f"cgroup v{version} {best[1]}{how}", used)


def _upwards(folder: str, top: str) -> list[str]:
    """folder, its parent, ... up to and including top (the mount point)."""
    out = [folder]
    while folder != top and folder.startswith(top + "/"):
        folder = posixpath.dirname(folder)
        out.append(folder)
    return out


def _optional(source: Source, path: str) -> str | None:
    try:
        return source.read_text(path)
    except FileNotFoundError:
        return None
