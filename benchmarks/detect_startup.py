"""How much slower is `qwenctl detect` than merely importing its own dependencies?

ratio = median wall time of `python -m qwenctl detect`
        / median wall time of `python -c "import click, psutil, pynvml, platformdirs, rich.console, rich.table"`

Goal: <= 1.3. Runs alternate between the two commands after one warm-up each, so disk-cache
and CPU-frequency drift hit both alike. Prints every figure; asserts nothing.

    python benchmarks/detect_startup.py [--runs 15]
"""

from __future__ import annotations

import argparse
import platform
import statistics
import subprocess
import sys
import time

DETECT = [sys.executable, "-m", "qwenctl", "detect"]
IMPORTS = [sys.executable, "-c", "import click, psutil, pynvml, platformdirs, rich.console, rich.table"]
BARE = [sys.executable, "-c", "pass"]


def wall(argv: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=15)
    runs = parser.parse_args().runs
    for argv in (DETECT, IMPORTS, BARE):
        wall(argv)  # warm-up: page cache, .pyc files
    times: dict[str, list[float]] = {"detect": [], "imports": [], "bare": []}
    for _ in range(runs):
        times["detect"].append(wall(DETECT))
        times["imports"].append(wall(IMPORTS))
        times["bare"].append(wall(BARE))
    med = {k: statistics.median(v) for k, v in times.items()}
    print(f"machine: {platform.machine()} {platform.system()}, Python {platform.python_version()}, {runs} runs each")
    for name, label in (("bare", "python -c pass"), ("imports", "import own dependencies"), ("detect", "qwenctl detect")):
        v = times[name]
        print(f"{label:>26}: median {med[name] * 1000:6.1f} ms   min {min(v) * 1000:6.1f}   max {max(v) * 1000:6.1f}")
    print(f"ratio detect / imports: {med['detect'] / med['imports']:.2f} (goal <= 1.3)")


if __name__ == "__main__":
    main()
