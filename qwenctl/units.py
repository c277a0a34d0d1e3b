"""The one reader of sizes and rates written with units: ``"8 GiB"``, ``"3.35TB/s"``, ``"819 GB/s"``, ``"100e9"``.

Decimal units (kB, MB, GB, TB: powers of 10, as disk and bandwidth figures are quoted) and binary ones
(KiB ... TiB: powers of 2, as RAM is sized), any case; ``/s`` marks a rate. Callers decide what they
accept (a profile wants a unit and says whether a field is a rate; ``bench --bandwidth`` takes a bare number).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

UNITS = {
    "b": 1,
    "kb": 10**3,
    "mb": 10**6,
    "gb": 10**9,
    "tb": 10**12,
    "kib": 2**10,
    "mib": 2**20,
    "gib": 2**30,
    "tib": 2**40,
}
_SIZE = re.compile(r"^\s*([0-9]+(?:\.[0-9]+)?(?:e[0-9]+)?)\s*([kmgt]?i?b)?\s*(/s)?\s*$", re.IGNORECASE)


@dataclass(frozen=True)
class Size:
    value: int  # bytes, or bytes per second for a rate
    unit: str | None  # as written, lower case; None for a bare number
    rate: bool  # written with /s


def parse_size(text: str) -> Size | None:
    """The bytes (or bytes/s) `text` says, or None when it is not a size."""
    m = _SIZE.match(text)
    if not m:
        return None
    unit = m.group(2).lower() if m.group(2) else None
    if unit is not None and unit not in UNITS:
        return None
    return Size(int(float(m.group(1)) * UNITS[unit or "b"]), unit, bool(m.group(3)))
