"""The one reader of sizes, rates and durations written with units: ``"8 GiB"``, ``"3.35TB/s"``, ``"819 GB/s"``,
``"100e9"``, ``"1 Gbit/s"``, ``"0.25 ms"``.

Decimal units (kB, MB, GB, TB: powers of 10, as disk and bandwidth figures are quoted) and binary ones
(KiB ... TiB: powers of 2, as RAM is sized), any case; ``/s`` marks a rate. Network rates are quoted in
bits: ``bit``, ``kbit`` ... ``Tbit`` (decimal, 8 bits a byte; "1 Gbit/s" is 125,000,000 bytes/s). "Gb" stays
gigabytes, as everywhere else here: a bit unit is spelt out. Callers decide what they accept (a profile wants
a unit and says whether a field is a rate; ``bench --bandwidth`` takes a bare number).

Durations (``parse_seconds``): s, ms, us (or µs), ns; a unit is required.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

UNITS: dict[str, float] = {
    "b": 1,
    "kb": 10**3,
    "mb": 10**6,
    "gb": 10**9,
    "tb": 10**12,
    "kib": 2**10,
    "mib": 2**20,
    "gib": 2**30,
    "tib": 2**40,
    # network rates: decimal bits, 8 to a byte
    "bit": 0.125,
    "kbit": 10**3 // 8,
    "mbit": 10**6 // 8,
    "gbit": 10**9 // 8,
    "tbit": 10**12 // 8,
}
_SIZE = re.compile(r"^\s*([0-9]+(?:\.[0-9]+)?(?:e[0-9]+)?)\s*([kmgt]?(?:bit|i?b))?\s*(/s)?\s*$", re.IGNORECASE)
SECONDS = {"s": 1.0, "ms": 1e-3, "us": 1e-6, "\u00b5s": 1e-6, "\u03bcs": 1e-6, "ns": 1e-9}  # micro sign or Greek mu
_DURATION = re.compile(r"^\s*([0-9]+(?:\.[0-9]+)?(?:e-?[0-9]+)?)\s*(s|ms|us|\u00b5s|\u03bcs|ns)\s*$", re.IGNORECASE)


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
    value = float(m.group(1)) * UNITS[unit or "b"]
    if not math.isfinite(value):  # "1e400 GB": more than a float holds, no size at all
        return None
    return Size(int(value), unit, bool(m.group(3)))


def parse_seconds(text: str) -> float | None:
    """The seconds `text` says ("0.25 ms", "250 us", "1.5 s"), or None when it is not a duration with a unit."""
    m = _DURATION.match(text)
    if not m:
        return None
    seconds = float(m.group(1)) * SECONDS[m.group(2).lower()]
    return seconds if math.isfinite(seconds) else None
