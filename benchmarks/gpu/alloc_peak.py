"""What ggml's allocator had placed in the CUDA compute buffer when it reached its size: the live tensors below the top
of the widest step, read from `run.sh alloctrace` traces (benchmarks/results/h200-alloctrace/).

    python benchmarks/gpu/alloc_peak.py TRACE.txt.gz ...

For each trace and each of the two steps that can set the buffer (a layer's attention scores, ``kq-N``, and the
logits, ``result_output``), the highest end reached and the tensors of a MiB or more live at that moment, with their
offsets: the logits step shows what the last layer's FFN left below the output matrix copy.
"""

from __future__ import annotations

import gzip
import re
import sys

ALLOC = re.compile(r"^(0x[0-9a-f]+): allocating (.+?) \((\d+) bytes\) - block -?\d+, offset (\d+), chunk \d+")
FREE = re.compile(r"^(0x[0-9a-f]+): freeing (.+?) at \{chunk=\d+, offset=(\d+)\}")
MiB = 2**20


def peaks(lines: list[str]) -> dict[str, tuple[int, list[tuple[int, str, int]]]]:
    """step -> (highest end, the live tensors then: (offset, name, bytes)), for the allocator that reached it."""
    live: dict[str, dict[int, tuple[str, int]]] = {}
    best: dict[str, tuple[int, list[tuple[int, str, int]]]] = {}
    for line in lines:
        if m := ALLOC.match(line):
            alloc, name, size, offset = m.group(1), m.group(2), int(m.group(3)), int(m.group(4))
            live.setdefault(alloc, {})[offset] = (name, size)
            step = "attention" if name.startswith("kq-") else "logits" if name == "result_output" else None
            if step and offset + size > best.get(step, (0, []))[0]:
                best[step] = (offset + size, sorted((o, n, s) for o, (n, s) in live[alloc].items()))
        elif m := FREE.match(line):
            live.get(m.group(1), {}).pop(int(m.group(3)), None)
    return best


def main() -> None:
    for path in sys.argv[1:]:
        with gzip.open(path, "rt", errors="replace") as f:
            found = peaks(f.read().splitlines())
        for step, (end, tensors) in found.items():
            below = ", ".join(f"{name} {size / MiB:.2f} @ {offset / MiB:.2f}" for offset, name, size in tensors if size >= MiB)
            print(f"{path}: {step} step reaches {end / MiB:.2f} MiB: {below}")


if __name__ == "__main__":
    main()
