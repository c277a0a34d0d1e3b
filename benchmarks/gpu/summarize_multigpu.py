"""Print the two-GPU comparison of benchmarks/gpu/run.sh's `multigpu` stage as Markdown.

    python benchmarks/gpu/summarize_multigpu.py RESULTS_DIR

Per model: llama-bench's pp/tg for each split mode and with GPU 1 behind llama.cpp's RPC server;
qwenctl bench with the split it plans (auto) and with each split forced, as a share of llama-bench
with the same split; the auto choice against the best of the sweep; GPU memory per device, measured
(NVML, the rise over the load) against the prediction.
"""

import json
import sys
from pathlib import Path


def _llama_bench(path: Path) -> dict[str, dict[str, float]]:
    """{split mode: {"pp": tok/s, "tg": tok/s}} from llama-bench's JSON rows."""
    out: dict[str, dict[str, float]] = {}
    if not path.exists() or not path.read_text().strip():
        return out
    for row in json.loads(path.read_text()):
        mode = str(row.get("split_mode", "layer"))
        kind = "pp" if row["n_prompt"] and not row["n_gen"] else "tg"
        out.setdefault(mode, {})[kind] = float(row["avg_ts"])
    return out


def _qwenctl(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def main() -> None:
    results = Path(sys.argv[1])
    for sweep in sorted(results.glob("llama-bench-sweep-*.json")):
        name = sweep.stem.removeprefix("llama-bench-sweep-")
        lb = _llama_bench(sweep)
        rpc = _llama_bench(results / f"llama-bench-rpc-{name}.json").get("layer", {})
        print(f"\n### {name}\n")
        print("| split | llama-bench pp | llama-bench tg | qwenctl pp | qwenctl tg | qwenctl/llama-bench tg | pp | "
              "GPU memory measured (predicted) |")
        print("|---|---|---|---|---|---|---|---|")
        best_tg = max((v.get("tg", 0.0) for v in lb.values()), default=0.0)
        for mode in ("auto", "none", "layer", "tensor"):
            q = _qwenctl(results / f"qwenctl-{name}-{mode}.json")
            used = q.get("split") if q else None
            used_mode = {"one": "none"}.get((used or "layer").split()[0], (used or "layer").split()[0].rstrip(","))
            ref = lb.get(used_mode, {}) if mode == "auto" else lb.get(mode, {})
            qpp = q["pp_tps"]["median"] if q else None
            qtg = q["tg_tps"]["median"] if q else None
            pred = (q or {}).get("predicted") or {}
            mem = ", ".join(
                f"{m / 2**30:.2f} GiB ({p / 2**30:.2f}, {(m - p) / p:+.1%})" if p else f"{m / 2**30:.2f} GiB"
                for m, p in zip(q.get("gpu_bytes_by_device") or [q.get("gpu_bytes") or 0],
                                (pred.get("gpu_bytes_by_device") or [pred.get("gpu_bytes")]) + [None] * 4)
            ) if q else ""
            label = f"auto ({used})" if mode == "auto" else mode
            print(f"| {label} | {ref.get('pp', float('nan')):,.0f} | {ref.get('tg', float('nan')):,.1f} | "
                  f"{qpp or float('nan'):,.0f} | {qtg or float('nan'):,.1f} | "
                  f"{(qtg / ref['tg']) if qtg and ref.get('tg') else float('nan'):.3f} | "
                  f"{(qpp / ref['pp']) if qpp and ref.get('pp') else float('nan'):.3f} | {mem} |")
            if mode == "auto" and qtg and best_tg:
                print(f"| auto vs best of sweep (tg {best_tg:,.1f}) | | | | | {qtg / best_tg:.3f} | | |")
            if q and pred:
                print(f"|  predicted ({mode}) | | | {pred.get('pp_tps') or 0:,.0f} | {pred.get('tg_tps') or 0:,.1f} | | | |")
        if rpc:
            print(f"| GPU 0 + GPU 1 over RPC (llama-bench --rpc) | {rpc.get('pp', 0):,.0f} | {rpc.get('tg', 0):,.1f} | | | | | |")


if __name__ == "__main__":
    main()
