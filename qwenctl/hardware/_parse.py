"""Small parsers shared by the probes. Malformed input raises ParseError, which ``detect``
turns into "absent, because …"; anything else escaping a probe is a bug and propagates."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

DATA = Path(__file__).parent / "data"


class ParseError(ValueError):
    """Input that does not look like what the probe reads (a truncated or foreign file)."""


def colon_fields(text: str) -> dict[str, str]:
    """`key : value` lines (/proc/cpuinfo blocks, /proc/meminfo, sysctl) -> {key: value}; first wins."""
    fields: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep and key.strip() and key.strip() not in fields:
            fields[key.strip()] = value.strip()
    return fields


def to_int(text: str | None, what: str) -> int:
    try:
        return int(str(text).strip(), 0)
    except ValueError:
        raise ParseError(f"{what} is {text!r}, not a number") from None


MAX_CPUS = 1 << 16  # Linux's largest CONFIG_NR_CPUS is 8,192 (x86 MAXSMP); a number past this is no machine's


def cpulist(text: str) -> set[int]:
    """The kernel's cpulist format ("0-15", "0,2,4-7"; CPUs and NUMA nodes alike)."""
    out: set[int] = set()
    for part in text.strip().split(","):
        if not part:
            continue
        lo, _, hi = part.partition("-")
        first, last = to_int(lo, "cpulist"), to_int(hi or lo, "cpulist")
        if not 0 <= first <= last < MAX_CPUS:  # "0-18446744073709551615" would be a set of 2**64 numbers
            raise ParseError(f"cpulist range {part!r} is no machine's CPUs")
        out.update(range(first, last + 1))
    return out


@cache
def data(name: str) -> Any:
    """A data file of figures about the world (each with its source) shipped in hardware/data/."""
    return json.loads((DATA / name).read_text("utf-8"))


def devices() -> dict:
    """hardware/data/devices.json: the published specifications of GPUs, Apple chips, CPU cores and boards."""
    return data("devices.json")


# One sysctl call answers every macOS probe; `-i` ignores names an older macOS lacks.
SYSCTL_ARGV = ("sysctl", "-i", "hw", "machdep.cpu", "iogpu", "vm.swapusage")


def sysctl(source: Any) -> dict[str, str] | None:
    """macOS `sysctl` values as {name: text}, or None where sysctl is not there."""
    out = source.run(SYSCTL_ARGV)
    return None if out is None else colon_fields(out)


def win32_argvs(wmic_alias: str, cim_class: str, fields: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The two ways to list a WMI class's fields on Windows: wmic (gone from Windows 11 24H2 unless added back), then
    PowerShell's Get-CimInstance. ``wmic_alias``: an alias ("cpu") or a class path ("path Win32_VideoController")."""
    return (("wmic", *wmic_alias.split(), "get", fields, "/format:list"),
            ("powershell", "-NoProfile", "-Command", f"Get-CimInstance {cim_class} | Format-List {fields}"))


def win32_listing(source: Any, argvs: tuple[tuple[str, ...], ...]) -> str | None:
    """The first answer of ``argvs`` (`win32_argvs`), or None if neither answered."""
    return next((out for argv in argvs if (out := source.run(argv))), None)


def win32_blocks(listing: str) -> list[dict[str, str]]:
    """A WMI class's instances as {field: value}: wmic's "Key=value" or Format-List's "Key : value", a block per
    instance (wmic ends its lines in CR CR LF)."""
    instances = []
    for block in listing.replace("\r", "").split("\n\n"):
        fields = {}
        for line in block.splitlines():
            key, sep, value = line.partition("=") if "=" in line else line.partition(":")
            if sep and key.strip():
                fields[key.strip()] = value.strip()
        if fields:
            instances.append(fields)
    return instances
