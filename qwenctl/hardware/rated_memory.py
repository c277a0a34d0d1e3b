"""The memory a CPU is rated for, by its brand string: an assumption where nothing better is known.

Where neither the DIMMs, a board's model nor a measurement gives the host's bandwidth (a `--profile` without
`[memory] bandwidth`, a snapshot from another machine), the CPU's own specification bounds it far better than one
generic figure: a DDR5 laptop read as one DDR4 channel was planned three times too slow. The figure is the fastest
socketed memory of the newest DDR generation the vendor lists for the part, on all its channels (soldered LPDDR is
often faster, an older generation or a single DIMM slower; a server part's is one socket's, the node llama.cpp reads
its weights from), so the planner states it as an assumption, never as detected, and never for a virtual machine,
which reads a share of its host's memory (`machine.host_device`). Intel parts come from Intel ARK's specification
pages, the rest from platform rows with their vendors' sources (data/cpu_rated_memory.json;
`benchmarks/cpu_rated_memory.py` rebuilds the Intel part).
"""

from __future__ import annotations

import re

from qwenctl.hardware._parse import data

_NOISE = re.compile(
    r"\(r\)|\(tm\)|®|™|\bintel\b|\bamd\b|\bcore\b|\bprocessor\b|\bcpu\b|\bwith radeon.*|\bw/ radeon.*|"
    r"\b\d+(st|nd|rd|th) gen\b|\b\d+-cores?\b|@.*|\(.*?\)|,.*")


def model_key(brand: str) -> str:
    """A part's name as both /proc/cpuinfo and a vendor's list give it, reduced to the words that name the part:
    "12th Gen Intel(R) Core(TM) i7-1260P" and "Intel® Core™ i7-1260P Processor" are both "i7 1260p"."""
    words = _NOISE.sub(" ", brand.lower()).replace("-", " ").split()
    return " ".join(words[:-1] if words[-1:] == ["0"] else words)  # "E5-2680 0": cpuinfo's mark of a v1 Xeon


def rated_bandwidth(brand: str) -> tuple[int, str] | None:
    """(bytes/s, what it is) of the memory the CPU named ``brand`` is rated for, or None where no row names it."""
    key = model_key(brand)
    doc = data("cpu_rated_memory.json")
    part = doc["intel"]["parts"].get(key)
    if part:
        name, memory, channels, gbs = part
        return int(gbs * 1e9), (f"the rated memory of the {name}: {memory} on {channels} "
                                f"channel{'s' * (channels > 1)}; {doc['intel']['source_short']}")
    for row in doc["platforms"]:
        if re.search(row["pattern"], key):
            gbs = row["mts"] * row["bus_bits"] / 8 / 1000
            return int(gbs * 1e9), f"the rated memory of the {row['platform']}: {row['memory']}; {row['source_short']}"
    return None
