"""Fold the GPU run's result files into one Markdown table and one JSON document.

    python benchmarks/gpu/summarize.py RESULTS_DIR SUMMARY.md RESULTS.json
"""

import json
import statistics
import sys
from pathlib import Path


def _load(path: Path):
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def main() -> None:
    results, md_path, json_path = Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3])
    doc = {"gpu": (results / "gpu.txt").read_text() if (results / "gpu.txt").exists() else None,
           "qwenctl": {}, "llama_bench": {}, "vs": {}}
    for p in sorted(results.glob("qwenctl-*.json")):
        doc["qwenctl"][p.stem.removeprefix("qwenctl-")] = _load(p)
    for p in sorted(results.glob("llama-bench-*.json")):
        doc["llama_bench"][p.stem.removeprefix("llama-bench-")] = _load(p)
    for p in sorted(results.glob("vs-*.json")):
        doc["vs"][p.stem.removeprefix("vs-")] = _load(p)
    json_path.write_text(json.dumps(doc, indent=1))

    lines = ["# qwenctl bench vs llama-bench on the GPU machine", "", "```", (doc["gpu"] or "").strip(), "```", "",
             "| model | fa | qwenctl pp | llama-bench pp | pp ratio | qwenctl tg | llama-bench tg | tg ratio "
             "| chat tok/s (sampling) | TTFT ms | GPU mem (NVML) | predicted GPU mem | tg / roofline | load s |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    first = next((q for q in doc["qwenctl"].values() if q), None)
    if first:
        lines[6:6] = [f"pp{first['n_prompt']} and tg{first['n_gen']}, tok/s; full offload; {first['machine']}; "
                      f"llama-cpp-python {first['engine_version']}; roofline at {first['bandwidth']['bytes_per_s'] / 1e12:.2f} TB/s "
                      f"({first['bandwidth']['source']})" if first.get("bandwidth") else "", ""]
    for key, q in doc["qwenctl"].items():
        if not q:
            lines.append(f"| {key} | failed |")
            continue
        name, fa = key.rsplit("-fa", 1)
        ref = {}
        for row in doc["llama_bench"].get(name) or []:
            if int(bool(row.get("flash_attn"))) == int(fa):
                ref["pp" if row["n_gen"] == 0 else "tg"] = row["avg_ts"]
        pp, tg = statistics.mean(q["pp_tps"]["samples"]), statistics.mean(q["tg_tps"]["samples"])
        ratio = lambda ours, k, ref=ref: f"{ours / ref[k]:.3f}" if ref.get(k) else "—"
        pred = (q.get("predicted") or {}).get("gpu_bytes")
        lines.append(
            f"| {name} | {fa} | {pp:,.0f} | {ref.get('pp', 0):,.0f} | {ratio(pp, 'pp')} | {tg:,.1f} | {ref.get('tg', 0):,.1f} "
            f"| {ratio(tg, 'tg')} | {q['chat_tps']['median'] if q.get('chat_tps') else 0:,.1f} "
            f"| {q['chat_ttft_seconds']['median'] * 1000 if q.get('chat_ttft_seconds') else 0:,.0f} "
            f"| {(q.get('gpu_bytes') or 0) / 2**30:.2f} GiB | {f'{pred / 2**30:.2f} GiB' if pred else '—'} "
            f"| {q['tg_efficiency'] or 0:.0%} | {q['load_seconds']:.2f} |")
    lines += ["", "Means of the per-repetition rates (llama-bench's avg_ts; qwenctl's samples). "
              "Interleaved comparison (bench_vs_llama_bench.py, 2 rounds, flash attention on):", ""]
    for key, v in doc["vs"].items():
        if v:
            s = v["summary"]
            lines.append(f"- {key}: pp ratio {s['pp']['ratio']:.3f} ({s['pp']['qwenctl_mean']:,.0f} vs "
                         f"{s['pp']['llama_bench_mean']:,.0f}), tg ratio {s['tg']['ratio']:.3f} "
                         f"({s['tg']['qwenctl_mean']:,.1f} vs {s['tg']['llama_bench_mean']:,.1f} tok/s)")
    md_path.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
