"""What `qwenctl plan` says before the download against files laid out as Qwen's own 0.5B-3B GGUFs (run.sh official).

    python benchmarks/gpu/official_layout.py OUT/official-full-*.json OUT/official-ngl0-*.json

Each row of estimate_accuracy.py's JSON measured a file of the official layout (output.weight stored beside a tied
token_embd). Beside its measured VRAM and host memory this prints two predictions for the same options and depth:
the file's (its own tensor table, as `bench` predicts) and the catalog's (the official file's sizes and the
catalog's tensor types, as `plan` predicts before anything is downloaded). The generated file's tokenizer is smaller
than the official one (2.54 MB of metadata less), which no prediction for the weights reads.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from qwenctl.catalog import load_catalog  # noqa: E402
from qwenctl.estimate import estimate_memory  # noqa: E402

MiB = 2**20


def catalog_pools(row: dict) -> dict[str, int]:
    catalog = load_catalog()
    model = catalog.model(row["predicted"]["size"])
    weights = model.weights_for("gguf", "q4_k_m")
    m = row["measured"]
    device = "cuda" if row["gpu"] else "cpu"
    est = estimate_memory(model, weights, "llama.cpp", device, row["n_ctx"], row.get("ngl", -1 if row["gpu"] else 0), row["kv_cache_type"],
                          row["flash_attn"], depth=m["fill"] + 16, cuda_graphs=m.get("cuda_graphs"))
    return {p.pool: p.total_bytes for p in est.pools}


def main() -> None:
    print(f"{'file, case':<44} {'pool':<4} {'measured':>9} {'file':>15} {'catalog (plan)':>17}   MiB")
    for name in sys.argv[1:]:
        for row in json.loads(Path(name).read_text())["rows"]:
            if "measured" not in row:
                print(f"{row['label']}: failed")
                continue
            m = row["measured"]
            from_file = {p["pool"]: p["weights_bytes"] + p["kv_bytes"] + p["compute_bytes"] + p["overhead_bytes"]
                         for p in row["predicted"]["memory"]}
            planned = catalog_pools(row)
            case = (f"{row['predicted']['size']} ngl {row.get('ngl', 'all')} ctx {row['n_ctx']} {row['kv_cache_type']}"
                    f"{' fa' if row['flash_attn'] else ''}")
            for pool, measured in (("ram", m["host_bytes"]), ("vram", m.get("gpu_device_delta_bytes"))):
                if not measured or pool not in from_file:
                    continue
                cells = [f"{b / MiB:7.0f} ({(b / measured - 1) * 100:+.1f}%)" for b in (from_file[pool], planned[pool])]
                print(f"{case if pool == 'ram' else '':<44} {pool:<4} {measured / MiB:9.0f} {cells[0]:>15} {cells[1]:>17}")
            print(f"{'':<44} tg {m['tg_tps']:.1f} measured, {row['predicted']['tg_tps']:.1f} predicted")


if __name__ == "__main__":
    main()
