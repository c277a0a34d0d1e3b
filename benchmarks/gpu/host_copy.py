"""One host thread's copy and read rates, to set beside a pageable host-to-GPU copy (benchmarks/gpu/h2d_copy.cu):
the CUDA driver stages a pageable copy through pinned buffers with one thread's memcpy.

    python benchmarks/gpu/host_copy.py [MiB]
"""

from __future__ import annotations

import json
import sys
import time

import numpy as np


def best(fn, repeats: int = 5) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def main() -> None:
    size = (int(sys.argv[1]) if len(sys.argv) > 1 else 1024) << 20
    src, dst = np.ones(size, dtype=np.uint8), np.zeros(size, dtype=np.uint8)
    print(json.dumps({"kind": "one thread's copy", "bytes": size, "gb_per_s": round(size / best(lambda: np.copyto(dst, src)) / 1e9, 2)}))
    words = src.view(np.int64)
    print(json.dumps({"kind": "one thread's read", "bytes": size, "gb_per_s": round(size / best(words.sum) / 1e9, 2)}))


if __name__ == "__main__":
    main()
