"""Memory: RAM, what is available now, swap, and the container limit that actually binds.

Method 1 (Linux): /proc/meminfo, then the process's own cgroup — found through
/proc/self/cgroup — for cgroup v2 `memory.max` (the smallest along the path up to the
root, since any ancestor's limit binds) or cgroup v1 `memory.limit_in_bytes`.
Method 2 (macOS): sysctl hw.memsize / vm.swapusage and `vm_stat` for what is free.
Method 3 (anything else, live only): psutil.
Inside a container, "available" is clamped to the limit minus what the cgroup already uses:
/proc/meminfo describes the host, not the container.
"""

from __future__ import annotations

import re

from qwenctl.hardware._parse import ParseError, colon_fields, sysctl, to_int
from qwenctl.hardware.facts import Absent, Memory
from qwenctl.hardware.snapshot import Source

CGROUP_ROOT = "/sys/fs/cgroup"
# cgroup v1 reports "no limit" as PAGE_COUNTER_MAX pages (9223372036854771712 on 4 KiB pages);
# anything this large is no limit at all.
V1_UNLIMITED = 1 << 62


def probe(source: Source) -> Memory | Absent:
    if source.system == "Linux":
        return _linux(source)
    if source.system == "Darwin":
        return _darwin(source)
    values = source.psutil_memory()
    if values is None:
        return Absent(f"no memory probe for {source.system} without psutil")
    return Memory(values["total"], values["available"], values["swap_total"])


def parse_meminfo(text: str) -> tuple[int, int, int]:
    """(total, available, swap total) in bytes from /proc/meminfo (values are KiB)."""
    fields = colon_fields(text)

    def kib(name: str) -> int:
        value = fields[name].split()[0] if fields.get(name) else None
        return to_int(value, f"/proc/meminfo {name}") * 1024

    if "MemTotal" not in fields:
        raise ParseError("/proc/meminfo has no MemTotal")
    total = kib("MemTotal")
    if "MemAvailable" in fields:
        available = kib("MemAvailable")
    else:  # kernels before 3.14: the classic estimate, as free(1) made it
        available = kib("MemFree") + kib("Buffers") + kib("Cached")
    swap = kib("SwapTotal") if "SwapTotal" in fields else 0
    return total, min(available, total), swap


def _linux(source: Source) -> Memory:
    total, available, swap = parse_meminfo(source.read_text("/proc/meminfo"))
    limit = cgroup_limit(source)
    if limit is None:
        return Memory(total, available, swap)
    limit_bytes, where, used = limit
    if used is not None:
        available = max(0, min(available, limit_bytes - used))
    return Memory(total, available, swap, container_limit_bytes=limit_bytes, container_limit_source=where)


def cgroup_limit(source: Source) -> tuple[int, str, int | None] | None:
    """(limit bytes, where it was read, bytes the cgroup uses) for this process, or None."""
    try:
        lines = source.read_text("/proc/self/cgroup").splitlines()
    except FileNotFoundError:
        return None
    for line in lines:
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        hierarchy, controllers, path = parts
        if hierarchy == "0" and controllers == "":
            found = _v2_limit(source, path)
        elif "memory" in controllers.split(","):
            found = _v1_limit(source, path)
        else:
            continue
        if found is not None:
            return found
    return None


def _v2_limit(source: Source, path: str) -> tuple[int, str, int | None] | None:
    best: tuple[int, str, int | None] | None = None
    for directory in _self_and_ancestors(f"{CGROUP_ROOT}{path.rstrip('/')}"):
        text = _read_optional(source, f"{directory}/memory.max")
        if text is None or text.strip() == "max":
            continue
        limit = to_int(text, f"{directory}/memory.max")
        if best is None or limit < best[0]:
            best = (limit, f"cgroup v2 {directory}/memory.max", None)
    if best is not None:
        leaf = f"{CGROUP_ROOT}{path.rstrip('/')}"
        current = _read_optional(source, f"{leaf}/memory.current")
        if current is None and leaf != CGROUP_ROOT:  # a namespaced container sees its own cgroup at the root
            current = _read_optional(source, f"{CGROUP_ROOT}/memory.current")
        best = (best[0], best[1], to_int(current, "memory.current") if current is not None else None)
    return best


def _v1_limit(source: Source, path: str) -> tuple[int, str, int | None] | None:
    base = f"{CGROUP_ROOT}/memory"
    # The host's path first; inside a container the controller is usually mounted at its own root.
    for directory in dict.fromkeys((f"{base}{path.rstrip('/')}", base)):
        text = _read_optional(source, f"{directory}/memory.limit_in_bytes")
        if text is None:
            continue
        limit = to_int(text, f"{directory}/memory.limit_in_bytes")
        if limit >= V1_UNLIMITED:
            return None
        usage = _read_optional(source, f"{directory}/memory.usage_in_bytes")
        used = to_int(usage, "memory.usage_in_bytes") if usage is not None else None
        return limit, f"cgroup v1 {directory}/memory.limit_in_bytes", used
    return None


def _self_and_ancestors(directory: str) -> list[str]:
    out = []
    while directory.startswith(CGROUP_ROOT) and directory != CGROUP_ROOT:
        out.append(directory)
        directory = directory.rsplit("/", 1)[0]
    return out or [CGROUP_ROOT]


def _read_optional(source: Source, path: str) -> str | None:
    try:
        return source.read_text(path)
    except FileNotFoundError:
        return None


_SWAP_TOTAL = re.compile(r"total\s*=\s*([\d.]+)([KMGT])")
_VM_STAT_PAGE = re.compile(r"page size of (\d+) bytes")


def _darwin(source: Source) -> Memory | Absent:
    values = sysctl(source)
    if values is None or "hw.memsize" not in values:
        return Absent("sysctl gave no hw.memsize")
    total = to_int(values["hw.memsize"], "hw.memsize")
    swap = 0
    match = _SWAP_TOTAL.search(values.get("vm.swapusage", ""))
    if match:
        swap = int(float(match.group(1)) * 1024 ** "KMGT".index(match.group(2)) * 1024)
    available = _vm_stat_available(source.run(("vm_stat",)))
    if available is None:
        return Absent("vm_stat gave no answer, so what is free is unknown (RAM: see Apple)")
    return Memory(total, min(available, total), swap)


def _vm_stat_available(text: str | None) -> int | None:
    """Free + inactive + speculative pages: what psutil calls available on macOS."""
    if not text:
        return None
    page = _VM_STAT_PAGE.search(text)
    fields = colon_fields(text)
    try:
        pages = sum(int(fields[k].rstrip(".")) for k in ("Pages free", "Pages inactive", "Pages speculative"))
    except (KeyError, ValueError):
        raise ParseError("vm_stat output lacks the free/inactive/speculative page counts") from None
    return pages * (int(page.group(1)) if page else 4096)
