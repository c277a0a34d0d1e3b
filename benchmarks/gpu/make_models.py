"""Generate the shape-faithful models the GPU run measures (7B Q4_K_M and Q8_0, 0.5B Q4_K_M).

    python benchmarks/gpu/make_models.py CACHE_DIR [SIZE:QUANT ...]

The 7B F16 intermediate (15 GB) is written once, quantized to every 7B quant asked for, then
deleted. Prints each file with its size and the seconds it took.
"""

import sys
import time
from pathlib import Path

from qwenctl.testing import models

DEFAULT = ["7B:Q4_K_M", "7B:Q8_0", "0.5B:Q4_K_M"]


def main() -> None:
    cache = Path(sys.argv[1])
    wanted = sys.argv[2:] or DEFAULT
    by_size: dict[str, list[str]] = {}
    for item in wanted:
        size, quant = item.split(":")
        by_size.setdefault(size, []).append(quant)
    for size, quants in by_size.items():
        shape = models.qwen25_shape(size)
        f16 = None
        for quant in quants:
            t0 = time.time()
            path = models.gguf_model(cache, shape, quant, keep_f16=True)
            f16 = f16 or models.gguf_model(cache, shape, "F16")  # exists now: returned at once
            print(f"{path.name} {path.stat().st_size} bytes {time.time() - t0:.0f} s", flush=True)
        if f16 is not None and "F16" not in quants:
            f16.unlink(missing_ok=True)


if __name__ == "__main__":
    main()
