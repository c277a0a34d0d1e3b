"""Predicted vs measured on the H200 machine's host: its CPU alone at 2-16 threads, and splits with the GPU.

    python benchmarks/host_cpu_check.py --models-dir DIR

Measurements: ``benchmarks/results/h200-host-cpu/`` (``benchmarks/gpu/run.sh cpu`` and llama-bench -ngl 0..29 on
the same machine). The machine is the one ``detect.json`` there describes (16-core AMX Xeon VM, host bandwidth
83.6 GB/s measured by ``qwenctl detect --measure``, one H200); the models are the shape-faithful Qwen2.5 Q4_K_M
files ``qwenctl.testing.models.shaped_gguf`` makes (generated in DIR when missing). The prediction is
``predict_for_file``, what ``qwenctl plan`` and ``bench`` show, for the thread count and layer split of each row.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from qwenctl.backends import LoadOptions  # noqa: E402
from qwenctl.hardware.facts import hardware_from_dict  # noqa: E402
from qwenctl.predict import predict_for_file  # noqa: E402
from qwenctl.testing import models  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results" / "h200-host-cpu"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models-dir", required=True)
    args = ap.parse_args()
    doc = {k: v for k, v in json.loads((RESULTS / "detect.json").read_text()).items() if k not in ("schema", "version")}
    backends = {**doc["backends"], "llama_cpp": "0.3.36"}
    # detect.json predates reading a VM's clock: the machine's cpuinfo (h200-sampling-steady/h200-host-cpuinfo.txt,
    # 2026-12-01) says "cpu MHz : 2100.000" under KVM with no cpufreq, which detection now takes as the clock
    doc["cpu"] = {**doc["cpu"], "base_clock_mhz": 2100}
    with_gpu = hardware_from_dict({**doc, "backends": {**backends, "llama_cpp_gpu_offload": True}})
    cpu_only = hardware_from_dict({**doc, "nvidia": {"absent": "a CPU-only build"}, "backends": {**backends, "llama_cpp_gpu_offload": False}})
    files = {size: models.shaped_gguf(Path(args.models_dir), size, "Q4_K_M") for size in ("0.5B", "1.5B", "3B", "7B")}

    def threads(n: int):
        return dataclasses.replace(cpu_only, cpu=dataclasses.replace(cpu_only.cpu, physical_cores=n, logical_cores=n))

    def show(label: str, rows: list[dict], hw, path: Path, options: LoadOptions) -> None:
        pp = next(x["avg_ts"] for x in rows if x["n_prompt"])
        tg = next(x["avg_ts"] for x in rows if x["n_gen"])
        p = predict_for_file(hw, path, options)
        print(f"{label:24s} pp512 {pp:8.1f} predicted {p.pp_tps:8.1f} ({p.pp_tps / pp:4.2f})   "
              f"tg {tg:6.1f} predicted {p.tg_tps:6.1f} ({p.tg_tps / tg:4.2f})")

    for size in ("1.5B", "7B"):
        scan = json.loads((RESULTS / f"threads-{size.lower()}.json").read_text())
        for n in sorted({x["n_threads"] for x in scan}):
            show(f"CPU {size}, {n} threads", [x for x in scan if x["n_threads"] == n], threads(n), files[size],
                 LoadOptions(n_ctx=1024, flash_attn=False))
    for size in ("0.5B", "1.5B", "3B", "7B"):
        for f in sorted(RESULTS.glob(f"split-{size.lower()}-ngl*.json"), key=lambda f: int(f.stem.split("ngl")[1])):
            ngl = int(f.stem.split("ngl")[1])
            show(f"H200 + host, {size} ngl {ngl}", json.loads(f.read_text()), with_gpu, files[size],
                 LoadOptions(n_ctx=1024, n_gpu_layers=ngl, flash_attn=True, n_threads=16))


if __name__ == "__main__":
    main()
