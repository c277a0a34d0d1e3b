"""Memory: RAM, what is available now, swap, and the container limit that actually binds.

Field by field, each with where it came from (``total_source``, ``available_source``) or
why it is not known (``unknown``); one missing input never blanks the whole probe.
Method 1 (Linux): /proc/meminfo (MemTotal; MemAvailable, else MemFree+Buffers+Cached as
free(1) computed it before Linux 3.14; SwapTotal), and the container limit from cgroup.py.
Without /proc/meminfo but with a container limit, the limit stands in for RAM (it is what
binds anyway) and available is limit − usage.
Method 2 (macOS): sysctl hw.memsize / vm.swapusage and `vm_stat` for what is free.
Method 3 (anything else, live only): psutil.
Inside a container, "available" is clamped to the limit minus what the cgroup already uses:
/proc/meminfo describes the host, not the container.
"""

from __future__ import annotations

import dataclasses
import re

from qwenctl.hardware import cgroup
from qwenctl.hardware._parse import ParseError, colon_fields, cpulist, sysctl, to_int
from qwenctl.hardware.facts import Absent, Memory
from qwenctl.hardware.snapshot import THIRTY_TWO_BIT_MACHINES, NotCaptured, Source

CGROUP_ROOT = cgroup.CGROUP_ROOT
V1_UNLIMITED = cgroup.V1_UNLIMITED


def probe(source: Source) -> Memory | Absent:
    found = _memory(source)
    limit = address_space(source)
    if isinstance(found, Memory) and limit:
        return dataclasses.replace(found, address_space_bytes=limit[0], address_space_source=limit[1])
    return found


def _memory(source: Source) -> Memory | Absent:
    if source.system == "Linux":
        return _linux(source)
    if source.system == "Darwin":
        return _darwin(source)
    values = source.psutil_memory()
    if values is None:
        return Absent(f"no memory probe for {source.system} without psutil")
    return Memory(values["total"], values["available"], values["swap_total"], total_source="psutil",
                  available_source="psutil")


def address_space(source: Source) -> tuple[int, str] | None:
    """(bytes, why) one process of a 32-bit userland can map, which a model, its cache and the program must fit in
    whatever the RAM (a Raspberry Pi 4 8GB under 32-bit Raspberry Pi OS); None for a 64-bit process.

    Under a 32-bit kernel user space ends at PAGE_OFFSET, 3 GiB with the default VMSPLIT_3G, and 32-bit Arm keeps
    16 MiB below it for modules (arch/arm/include/asm/memory.h: TASK_SIZE = PAGE_OFFSET - SZ_16M); 32-bit Windows
    gives a process 2 GiB; a 32-bit process under a 64-bit Linux kernel gets the whole 4 GiB (arm64 TASK_SIZE_32,
    x86-64's IA32 compat)."""
    if source.pointer_bits != 32:
        return None
    if source.system == "Windows" and source.machine in THIRTY_TWO_BIT_MACHINES:
        return 2 * 2**30, "a 32-bit Windows process: 2 GiB of user address space"
    if source.machine in THIRTY_TWO_BIT_MACHINES:
        return 3 * 2**30 - 16 * 2**20, f"a 32-bit process under a 32-bit kernel ({source.machine}): 3 GiB of user address space"
    return 4 * 2**30, f"a 32-bit process under a 64-bit kernel ({source.machine}): 4 GiB of user address space"


def parse_meminfo(text: str) -> tuple[int, int, int]:
    """(total, available, swap total) in bytes from /proc/meminfo (values are KiB)."""
    total, (available, _), swap = _meminfo_fields(text)
    if available is None:
        raise ParseError("/proc/meminfo has neither MemAvailable nor MemFree+Buffers+Cached")
    return total, available, swap or 0


def _meminfo_fields(text: str) -> tuple[int, tuple[int | None, str | None], int | None]:
    fields = colon_fields(text)

    def kib(name: str) -> int | None:
        if name not in fields:
            return None
        value = fields[name].split()[0] if fields[name] else None
        return to_int(value, f"/proc/meminfo {name}") * 1024

    total = kib("MemTotal")
    if total is None:
        raise ParseError("/proc/meminfo has no MemTotal")
    available: tuple[int | None, str | None] = (kib("MemAvailable"), "/proc/meminfo MemAvailable")
    if available[0] is None:  # kernels before 3.14: the classic estimate, as free(1) made it
        parts = [kib(k) for k in ("MemFree", "Buffers", "Cached")]
        available = (sum(p for p in parts if p is not None), "/proc/meminfo MemFree+Buffers+Cached") \
            if None not in parts else (None, None)
    if available[0] is not None:
        available = (min(available[0], total), available[1])
    return total, available, kib("SwapTotal")


def _linux(source: Source) -> Memory:
    unknown: list[tuple[str, str]] = []
    limit = cgroup.limit(source)
    try:
        total, (available, available_source), swap = _meminfo_fields(source.read_text("/proc/meminfo"))
        total_source = "/proc/meminfo MemTotal"
    except (OSError, ParseError) as e:
        if limit is None:
            raise
        why = _why(e)
        total, total_source, available, available_source, swap = limit.bytes, f"container limit ({why})", None, None, None
        unknown.append(("total_bytes", f"{why}; the container limit stands in"))
    if swap is None:
        unknown.append(("swap_total_bytes", "no SwapTotal in /proc/meminfo"))
    if limit is not None and limit.used is not None:
        headroom = max(0, limit.bytes - limit.used)
        if available is None or headroom < available:
            available, available_source = headroom, "container limit − usage"
    elif limit is not None and available is not None:
        available = min(available, limit.bytes)
    if available is None:
        unknown.append(("available_bytes", "neither /proc/meminfo nor the cgroup says what is free"))
    return Memory(
        total, available, swap or 0,
        container_limit_bytes=limit.bytes if limit else None,
        container_limit_source=limit.source if limit else None,
        total_source=total_source, available_source=available_source, unknown=tuple(unknown),
        numa_nodes=numa_nodes(source),
    )


NODES = "/sys/devices/system/node"


def numa_nodes(source: Source) -> int | None:
    """How many NUMA nodes have both CPUs and memory: the nodes a process's pages may sit on. A second socket is one,
    and so is each quarter of an EPYC in NPS4 or each cluster of a Xeon in SNC mode, each with its own channels. Nodes
    of memory alone (a Grace Hopper's GPU memory, persistent memory, CXL expanders) and of CPUs alone do not count
    (the kernel's node lists `has_cpu` and `has_memory`, Documentation/ABI/stable/sysfs-devices-node). None where sysfs
    does not say (not Linux, or not captured) or where there is one such node."""
    try:
        both = cpulist(source.read_text(f"{NODES}/has_cpu")) & cpulist(source.read_text(f"{NODES}/has_memory"))
    except (OSError, ParseError):
        return None
    return len(both) if len(both) > 1 else None


def _why(e: Exception) -> str:
    if isinstance(e, NotCaptured):
        return "/proc/meminfo not captured in the snapshot"
    if isinstance(e, OSError):
        return f"cannot read /proc/meminfo: {e.strerror or e}"
    return str(e)


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
        return Memory(total, None, swap, total_source="hw.memsize",
                      unknown=(("available_bytes", "vm_stat gave no answer"),))
    return Memory(total, min(available, total), swap, total_source="hw.memsize",
                  available_source="vm_stat free+inactive+speculative")


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
