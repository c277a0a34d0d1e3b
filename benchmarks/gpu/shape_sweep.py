"""Decode speed against matrix width and layer count, one at a time: is a big model's byte cheaper because its matrices
are wider, or because it has more of them?

    python benchmarks/gpu/shape_sweep.py WORK_DIR LLAMA_BENCH OUT_JSON [SIZE:LAYERS:QUANT ...] [--deadline S] [--pp]

Each case is a random-weight GGUF of Qwen2.5-SIZE's widths (hidden, feed-forward, heads, vocabulary) with LAYERS layers
instead of its own, every matrix written in QUANT (Q4_0, Q8_0 or F16), or in the type llama.cpp's quantizer gives it in
a QUANT file (a k-quant recipe: Q4_K_M, Q6_K, ...; `models.write_gguf(recipe=True)`); no quantizer run. For each: qwenctl's prediction for
the file on this machine (`predict_for_file`, every layer on the GPU, flash attention, as the planned rows), then
llama-bench tg128 (-p 0 -n 128 -r 3 -ngl 99 -fa 1); the file is deleted before the next (the GPU machine's disk is
64 GB). The H200's 72B rows decode at 1.09-1.20x their prediction where its 3B and 7B rows sit at 1.0
(docs/planning.md, "Big models' bytes on HBM"): at equal widths, a ratio that moves with the layer count points at
something a layer or a byte costs; at equal layer counts, one that moves with the width points at the matrices.
Cases run in the order given, until the deadline (seconds from the start) leaves too little for another. With --pp,
pp512 too (-p 512: the median of its three samples, the first of which pays cuBLAS's and the graph's first run): at
equal widths, the prompt time's growth with the layer count is what a prompt layer costs on that weight type's kernel
path (docs/planning.md, "A prompt layer's cost per kernel path").
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import subprocess
import time
from pathlib import Path

from qwenctl.backends import LoadOptions
from qwenctl.hardware import detect
from qwenctl.predict import predict_for_file
from qwenctl.testing import models

BLOCKS_WRITTEN = ("Q4_0", "Q8_0", "F16")  # every matrix in the one type; a k-quant file takes its recipe's types
DEFAULT = ["3B:36:Q4_0", "3B:72:Q4_0", "7B:28:Q4_0", "7B:56:Q4_0", "14B:24:Q4_0", "14B:48:Q4_0",
           "32B:32:Q4_0", "32B:64:Q4_0", "72B:16:Q4_0", "72B:32:Q4_0", "7B:28:Q8_0", "72B:16:Q8_0"]


def measure(bench: str, path: Path, prompt: bool) -> tuple[float | None, float | None]:
    """llama-bench's tg128 mean over three repetitions and, with ``prompt``, the median of its three pp512 samples;
    None where it failed."""
    argv = [bench, "-m", str(path), "-p", "512" if prompt else "0", "-n", "128", "-r", "3", "-ngl", "99", "-fa", "1", "-o", "json"]
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=120, check=True)
        tests = json.loads(done.stdout)
        tg = float(next(t["avg_ts"] for t in tests if t["n_gen"] == 128))
        pp = float(statistics.median(next(t["samples_ts"] for t in tests if t["n_prompt"] == 512))) if prompt else None
        return tg, pp
    except (subprocess.SubprocessError, ValueError, StopIteration, KeyError) as e:
        print(f"llama-bench failed on {path.name}: {e}", flush=True)
        return None, None


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("work", type=Path)
    ap.add_argument("llama_bench")
    ap.add_argument("out", type=Path)
    ap.add_argument("cases", nargs="*", default=DEFAULT)
    ap.add_argument("--deadline", type=float, default=480.0)
    ap.add_argument("--pp", action="store_true", help="measure and predict pp512 too")
    args = ap.parse_args()
    start, hw, rows = time.time(), detect(), []
    args.work.mkdir(parents=True, exist_ok=True)
    for case in args.cases:
        size, layers, quant = case.split(":")
        if rows and time.time() - start + 2 * rows[-1]["seconds"] > args.deadline:
            print(f"deadline: {case} and after left out", flush=True)
            break
        t0 = time.time()
        shape = models.qwen25_shape(size)
        shape = dataclasses.replace(shape, name=f"sweep-{size.lower()}-{layers}l", num_hidden_layers=int(layers))
        path = models.gguf_model(args.work, shape, quant, intermediate=quant if quant in BLOCKS_WRITTEN else "direct")
        prediction = predict_for_file(hw, path, LoadOptions(n_ctx=8192, n_gpu_layers=-1, flash_attn=True))
        predicted = prediction.tg_tps
        measured, measured_pp = measure(args.llama_bench, path, args.pp)
        row = {"size": size, "layers": int(layers), "quant": quant, "hidden": shape.hidden_size,
               "ffn": shape.intermediate_size, "file_bytes": path.stat().st_size, "predicted_tg": round(predicted, 2),
               "measured_tg": measured, "ratio": round(predicted / measured, 3) if measured else None}
        if args.pp:
            row |= {"predicted_pp": round(prediction.pp_tps, 1), "measured_pp": measured_pp,
                    "pp_ratio": round(prediction.pp_tps / measured_pp, 3) if measured_pp else None}
        row["seconds"] = round(time.time() - t0, 1)
        path.unlink()
        rows.append(row)
        print(json.dumps(row), flush=True)
        args.out.write_text(json.dumps({"rows": rows}, indent=1) + "\n")


if __name__ == "__main__":
    main()
