"""The current memory model's VRAM for every recorded H200 CUDA row, where the files are not at hand.

    python benchmarks/rescore_vram.py [--rows]

`estimate_accuracy.py --repredict` needs the measured files; these rows' files lived on the GPU machine. This takes each
row's recorded weights and KV cache (read from its file when it was measured) and everything else from the code as it
is now, for the catalog's weights of the row's size and quant (the generator writes llama.cpp's own recipe; Q4_0 files
were written directly, output and FFN included, so they take Q4_0 there). Rows with no layer offloaded whose CUDA graphs
were not counted are left out (the planner's worst case, every split, would stand in for what ran). Prints, per
placement, how many rows are within 2 % of NVML's measured rise, the largest and the mean error.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
from dataclasses import replace
from pathlib import Path

from qwenctl.catalog import load_catalog
from qwenctl.estimate import estimate_memory, weight_split
from qwenctl.recipe import MATRICES, matrix_bytes

RESULTS = Path(__file__).parent / "results"


def size_and_quant(label: str) -> tuple[str, str] | None:
    if m := re.search(r"([\d.]+B) (\S+)", label):
        return m.group(1), m.group(2)
    if m := re.search(r"qwen2\.5-([\d.]+b)-.*-(\w+)$", label):
        return m.group(1).upper(), m.group(2)
    return None


def rescored(r: dict) -> float | None:
    """The VRAM error (%) of one row with the current model, or None where the row cannot be re-predicted."""
    catalog = load_catalog()
    found = size_and_quant(r["label"])
    if found is None:
        return None
    size, quant = found
    model = catalog.model(size)
    weights = model.weights_for("gguf", {"F16": "fp16"}.get(quant, quant.lower()))
    split = weight_split(catalog, model, weights)
    if quant == "Q4_0" and "official" not in r["label"]:
        a = model.arch
        split = replace(split, output_bytes=matrix_bytes(a.vocab_size, a.hidden_size, "Q4_0"),
                        layer_types=(("Q4_0",) * len(MATRICES),) * a.n_layers, output_type="Q4_0")
    m = r["measured"]
    recorded = next(p for p in r["predicted"]["memory"] if p["pool"] == "vram")
    vram = estimate_memory(model, weights, "llama.cpp", "cuda", r["n_ctx"], r["ngl"], kv_cache_type=r["kv_cache_type"],
                           flash_attn=r["flash_attn"], split=split, cuda_graphs=m.get("cuda_graphs"),
                           depth=m.get("fill", 1024) + 16).pool("vram")
    predicted = recorded["weights_bytes"] + recorded["kv_bytes"] + vram.compute_bytes + vram.overhead_bytes
    return 100 * (predicted - m["gpu_device_delta_bytes"]) / m["gpu_device_delta_bytes"]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", action="store_true", help="print every row")
    args = ap.parse_args()
    errors: dict[str, list[float]] = {"no layer offloaded": [], "every layer offloaded": []}
    for path in sorted(RESULTS.glob("**/*.json")):
        if "h100" in path.name or "eager" in path.name:  # the H100 rows fitted the constants; EAGER loads all kernels
            continue
        try:
            rows = json.loads(path.read_text()).get("rows")
        except (json.JSONDecodeError, AttributeError):
            continue
        for r in rows or ():
            m = r.get("measured") if isinstance(r, dict) else None
            if not m or not r.get("gpu") or "gpu_device_delta_bytes" not in m or r.get("ngl", -1) not in (0, -1, 99):
                continue
            r = {**r, "ngl": 0 if r.get("ngl", -1) == 0 else -1}
            if r["ngl"] == 0 and m.get("cuda_graphs") is None:
                continue
            error = rescored(r)
            if error is None:
                continue
            errors["no layer offloaded" if r["ngl"] == 0 else "every layer offloaded"].append(error)
            if args.rows:
                print(f"{path.relative_to(RESULTS)}: {r['label']} ctx {r['n_ctx']} {r['kv_cache_type']} "
                      f"fa {int(r['flash_attn'])} ngl {r['ngl']}: {error:+.2f} %")
    for placement, e in errors.items():
        if e:
            print(f"{placement}: {len(e)} rows, {sum(abs(x) <= 2 for x in e)} within 2 %, max |error| "
                  f"{max(abs(x) for x in e):.2f} %, mean |error| {statistics.mean(abs(x) for x in e):.2f} %")


if __name__ == "__main__":
    main()
