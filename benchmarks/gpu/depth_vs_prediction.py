"""Decode at depth: llama-bench's `-d` runs (run.sh stage `depth`) beside `SpeedEstimate.tg_at` for the same model.

    python benchmarks/gpu/depth_vs_prediction.py benchmarks/results/h200-depth/depth-*.json [--profile h200-x2-141gb]
    python benchmarks/gpu/depth_vs_prediction.py --predict 14B,32B --profile h100-80gb > predicted.json

The second form writes the predictions alone, before a run (run.sh stage `depth`'s depths, flash attention on and off),
so they can be committed first (benchmarks/results/h100-depth-s73/predicted.json).

llama-bench fills the cache with `n_depth` tokens, then generates `n_gen`: the tokens it times see a cache of
n_depth + n_gen / 2 on average, which is the depth the prediction is asked for. The GPU is the profile's first
(the H200 machine's by default: its bandwidth and name as NVML reports them); nothing is fitted here.
"""

from __future__ import annotations

import argparse
import json
import subprocess
from pathlib import Path

from qwenctl.catalog import load_catalog
from qwenctl.machine import cuda_device, host_device
from qwenctl.profiles import load_profile
from qwenctl.speed import estimate_speed


def size_of(filename: str) -> str:
    """'.../qwen2.5-0.5b-5d8c7de870-s0-v1-Q4_K_M.gguf' -> '0.5B' (make_models.py's names; llama-bench's own
    description rounds the 0.5B to '1B')."""
    return Path(filename).name.split("-")[1].upper()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("files", nargs="*", type=Path)
    ap.add_argument("--predict", help="sizes (comma-separated, '14B,32B'): print their predictions as JSON instead")
    ap.add_argument("--profile", default="h200-x2-141gb")
    ap.add_argument("--quant", default="q4_k_m", help="the files' quantization as the catalog names it")
    args = ap.parse_args()
    if not args.files and not args.predict:
        ap.error("give llama-bench depth files, or --predict SIZES")
    hw = load_profile(args.profile)
    gpu, host = cuda_device(hw.gpus[0]), host_device(hw)
    catalog = load_catalog()
    if args.predict:
        print(json.dumps(predictions(args, hw.gpus[0].name, gpu, host, catalog), indent=1))
        return
    print(f"{hw.gpus[0].name}: predicted (tg_at) vs measured (llama-bench -d), generation tok/s")
    print(f"{'model':6} {'fa':>2} {'depth':>6} {'measured':>9} {'predicted':>9} {'ratio':>6}")
    for path in args.files:
        for row in json.loads(path.read_text()):
            model = catalog.model(size_of(row["model_filename"]))
            fa = bool(row["flash_attn"])
            est = estimate_speed(model, model.weights_for("gguf", args.quant), gpu, host, flash_attn=fa)
            depth = row["n_depth"] + row["n_gen"] // 2
            predicted = est.tg_at(depth)
            print(f"{size_of(row['model_filename']):6} {int(fa):>2} {row['n_depth']:>6} {row['avg_ts']:>9.1f} "
                  f"{predicted:>9.1f} {predicted / row['avg_ts']:>6.2f}")


def predictions(args, gpu_name: str, gpu, host, catalog) -> dict:
    """tg128 at run.sh's depths (0, 2048, 8192, 32768), flash attention on and off, for each size in --predict."""
    code = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    rows = []
    for size in args.predict.split(","):
        model = catalog.model(size)
        for fa in (True, False):
            est = estimate_speed(model, model.weights_for("gguf", args.quant), gpu, host, flash_attn=fa)
            rows += [{"size": size, "quant": args.quant.upper(), "flash_attn": fa, "n_depth": d, "n_gen": 128,
                      "tg_predicted": round(est.tg_at(d + 64), 2)} for d in (0, 2048, 8192, 32768)]
    return {"about": f"tg128 predicted before measuring: SpeedEstimate.tg_at(n_depth + 64), the catalog's {args.quant} "
                     f"weights, the {args.profile} profile's first GPU, by the code of {code}",
            "gpu": gpu_name, "code": code, "rows": rows}


if __name__ == "__main__":
    main()
