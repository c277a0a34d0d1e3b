"""Decode at depth on this machine's CPU, beside `SpeedEstimate.tg_at` (what `plan` shows as "with the context full").

    python benchmarks/cpu_depth.py [--size 0.5B] [--depths 0,1024,4096] [--gen 32] [--threads N] [--model PATH]

Generates the shape-faithful Qwen2.5 file (qwenctl.testing.models) unless --model is given, then for each depth fills a
fresh context with that many tokens and times --gen single-token decodes after it (llama-bench's tg at `-d`). The
prediction is for the mean depth of the timed tokens, with this machine's detected (or measured) bandwidth. It prints
figures and asserts nothing.
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from qwenctl.catalog import load_catalog  # noqa: E402
from qwenctl.hardware import detect  # noqa: E402
from qwenctl.machine import host_device  # noqa: E402
from qwenctl.speed import estimate_speed  # noqa: E402
from qwenctl.testing.models import shaped_gguf  # noqa: E402


def decode_rate(model: Path, depth: int, n_gen: int, threads: int) -> float:
    from llama_cpp import Llama

    llm = Llama(str(model), n_ctx=depth + n_gen + 64, n_threads=threads, n_batch=512, flash_attn=True, verbose=False)
    rng = random.Random(depth)
    if depth:
        llm.eval([rng.randrange(1000, 100000) for _ in range(depth)])
    start = time.perf_counter()
    for _ in range(n_gen):
        llm.eval([rng.randrange(1000, 100000)])
    rate = n_gen / (time.perf_counter() - start)
    llm.close()
    return rate


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", default="0.5B")
    ap.add_argument("--depths", default="0,1024,4096")
    ap.add_argument("--gen", type=int, default=32)
    ap.add_argument("--threads", type=int)
    ap.add_argument("--model", type=Path)
    args = ap.parse_args()
    hw = detect()
    host = host_device(hw, args.threads)
    threads = args.threads or host.compute_units
    model = args.model or shaped_gguf(Path(tempfile.gettempdir()) / "qwenctl-cpu-depth", args.size, "Q4_K_M")
    spec = load_catalog().model(args.size)
    est = estimate_speed(spec, spec.weights_for("gguf", "q4_k_m"), None, host)
    print(f"{args.size} Q4_K_M on {threads} threads, {host.bandwidth_bytes_per_s / 1e9:.1f} GB/s: generation tok/s")
    print(f"{'depth':>6} {'measured':>9} {'predicted':>9} {'ratio':>6}")
    for depth in (int(d) for d in args.depths.split(",")):
        measured = decode_rate(model, depth, args.gen, threads)
        predicted = est.tg_at(depth + args.gen // 2)
        print(f"{depth:>6} {measured:>9.2f} {predicted:>9.2f} {predicted / measured:>6.2f}")


if __name__ == "__main__":
    main()
