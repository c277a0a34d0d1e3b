"""Print qwenctl's predicted generation speed next to published figures, with the error of each row.

    python benchmarks/predicted_vs_published.py [--markdown]

Rows come from benchmarks/published_speeds.json (each with its source); predictions from
qwenctl.estimate.estimate_speed with the constants in qwenctl/data/calibration.json. 'fit'
rows were used to solve those constants, so their error shows the fit, not a test.
"""

from __future__ import annotations

import json
import sys
from dataclasses import replace
from pathlib import Path

from qwenctl.catalog import Architecture, ModelSpec, Weights, load_catalog
from qwenctl.estimate import DeviceSpeed, estimate_memory, estimate_speed, load_calibration

HERE = Path(__file__).resolve().parent


def shape_model(shape: dict) -> tuple[ModelSpec, Weights]:
    """A non-Qwen model described by its shape, in the catalog's types."""
    base = load_catalog().model("7B")
    arch = Architecture(
        **{k: shape[k] for k in ("hidden_size", "n_layers", "n_heads", "n_kv_heads", "head_dim", "intermediate_size", "vocab_size", "tied_embeddings")},
        context_native=4096,
        context_max=4096,
    )
    w = replace(base.weights_for("gguf", "q4_0"), total_bytes=shape["file_bytes"], embd_type=shape["embd_type"], output_type=shape["output_type"], files=())
    return replace(base, arch=arch, params=shape["params"], weights=(w,)), w


def predict(row: dict, shapes: dict) -> float:
    if "shape" in row:
        model, weights = shape_model(shapes[row["shape"]])
    else:
        model = load_catalog().model(row["model"])
        weights = model.weights_for("gguf", row["quant"])
    flops = 1e12  # pp is not compared here
    host = row.get("host", {"class": "cpu_x86", "bandwidth": 100e9})
    host_dev = DeviceSpeed(host["class"], host["bandwidth"], flops)
    gpu = row.get("gpu")
    if gpu is None:
        return estimate_speed(model, weights, None, host_dev).tg_tps
    gpu_dev = DeviceSpeed(gpu["class"], gpu["bandwidth"], flops)
    ngl = -1
    if "vram_gib" in gpu:  # split: as many layers as fit, as the planner would
        budget = gpu["vram_gib"] * 2**30 - load_calibration()["memory"]["gpu_reserve_bytes"]
        ngl = max(k for k in range(model.arch.n_layers + 1) if k == 0 or estimate_memory(model, weights, "llama.cpp", "cuda", 2048, k, flash_attn=True).pool("vram").total_bytes <= budget)
    return estimate_speed(model, weights, gpu_dev, host_dev, ngl).tg_tps


def main() -> None:
    doc = json.loads((HERE / "published_speeds.json").read_text())
    markdown = "--markdown" in sys.argv
    head = ("row", "device", "engine", "model", "published", "predicted", "error", "role")
    rows = []
    for r in doc["rows"]:
        p = predict(r, doc["shapes"])
        model = r.get("shape") or f"Qwen2.5-{r['model']} {r['quant']}"
        rows.append((r["id"], r["device"], r["engine"], model, f"{r['published_tps']:g}", f"{p:.1f}", f"{(p - r['published_tps']) / r['published_tps'] * 100:+.0f}%", r["role"]))
    if markdown:
        print("| " + " | ".join(head) + " |")
        print("|" + "---|" * len(head))
        for row in rows:
            print("| " + " | ".join(row) + " |")
    else:
        widths = [max(len(str(x)) for x in col) for col in zip(head, *rows)]
        for row in (head, *rows):
            print("  ".join(str(x).ljust(w) for x, w in zip(row, widths)))


if __name__ == "__main__":
    main()
