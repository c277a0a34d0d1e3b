"""Summarize `run.sh decodetimes`: Nsight Compute's raw CSV of each decode mat-vec kernel -> one row per kernel shape
(median time and DRAM bytes read, the rate they give); with --reduce, each file's kernels as a small CSV there.

    python benchmarks/gpu/decodetimes.py OUT_DIR [--reduce DEST_DIR]
"""

from __future__ import annotations

import argparse
import csv
import statistics
from collections import defaultdict
from pathlib import Path


def kernels(path: Path) -> list[dict[str, str]]:
    lines = path.read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith('"ID"'))
    rows = list(csv.DictReader(lines[start:]))[1:]  # the line after the header holds the units (ns, byte)
    return [{"kernel": r["Kernel Name"].split("(")[0].removeprefix("void "), "grid": r["Grid Size"], "block": r["Block Size"],
             "ns": r["gpu__time_duration.sum"].replace(",", ""), "bytes": r["dram__bytes_read.sum"].replace(",", "")}
            for r in rows]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("out", type=Path)
    ap.add_argument("--reduce", type=Path, help="write each file's kernels as a small CSV here")
    args = ap.parse_args()
    for path in sorted(args.out.glob("decodetimes-*.csv")):
        rows = kernels(path)
        if args.reduce:
            args.reduce.mkdir(parents=True, exist_ok=True)
            with open(args.reduce / path.name, "w", newline="") as f:
                w = csv.DictWriter(f, fieldnames=list(rows[0]))
                w.writeheader()
                w.writerows(rows)
        shapes: dict[tuple[str, str, str], list[tuple[float, float]]] = defaultdict(list)
        for r in rows:
            shapes[(r["kernel"], r["grid"], r["block"])].append((float(r["ns"]), float(r["bytes"])))
        total_ns = sum(float(r["ns"]) for r in rows)
        total_b = sum(float(r["bytes"]) for r in rows)
        print(f"{path.name}: {len(rows)} kernels, {total_b / total_ns:.0f} GB/s over all")
        for (kernel, grid, block), v in sorted(shapes.items(), key=lambda kv: -sum(t for t, _ in kv[1])):
            ns = statistics.median(t for t, _ in v)
            b = statistics.median(x for _, x in v)
            print(f"  {kernel[:46]:46s} grid {grid:16s} block {block:12s} n {len(v):3d}  {ns:9.0f} ns {b / 1e6:9.2f} MB"
                  f"  {b / ns:5.0f} GB/s")


if __name__ == "__main__":
    main()
