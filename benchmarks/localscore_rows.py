"""LocalScore's published results as rows for speed_model_fit.py --score (benchmarks/published_localscore.json).

    git clone https://github.com/d893a/localscore-insights   # assets/localscore_results.tsv
    python benchmarks/localscore_rows.py localscore-insights/assets/localscore_results.tsv > benchmarks/published_localscore.json

LocalScore (localscore.ai, Mozilla's llamafile benchmark) runs three models, Llama 3.2 1B, Llama 3.1 8B and
Qwen2.5 14B, all Q4_K_M, fully offloaded and without flash attention, through nine tests (prompt, generated
tokens): (1024, 16), (4096, 256), (2048, 256), (2048, 768), (1024, 1024), (1280, 3072), (384, 1152), (64, 1024),
(16, 1536). Its generation figure is the mean of the nine tests' rates (llamafile localscore/localscore.cpp,
getResultsSummary), each decoded after its prompt: the rows carry the tests (`tg.mean_over`) and are priced
as that mean of `SpeedEstimate.tg_at`. Only generation is kept: the prompt figure is a mean over prompts of
16 to 4,096 tokens run through llamafile's own matrix kernels, not llama.cpp's.

The GPU rows whose device qwenctl has a specification for: an NVIDIA name as NVML gives it (the result's
accelerator name is that), an Apple chip by its GPU core count; and the CPU rows of the CPUs the published files
already specify (`cpu_hosts`, matched by name; a Raspberry Pi by its board), priced at qwenctl's own thread count
and the specification's bandwidth, since LocalScore records neither. A row runs `suspect` (left out of the score)
where another result for the same device and model generated more than twice as fast: the same test on the
same chip, so one of them ran on something else (a shared or throttled GPU, layers left on the CPU). That rule
reads the measurements only, never a prediction.
"""

from __future__ import annotations

import csv
import json
import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from speed_model_fit import published_cpu_hosts  # noqa: E402

from qwenctl.hardware.apple_specs import apple_spec  # noqa: E402
from qwenctl.hardware.facts import NvidiaGpu  # noqa: E402
from qwenctl.hardware.nvidia_specs import gpu_spec_of  # noqa: E402

SOURCE = ("https://github.com/d893a/localscore-insights/blob/a4f81747b3e6f0841f48c7bea6496d4f0e4a464c/"
          "assets/localscore_results.tsv")
TESTS = [[1024, 16], [4096, 256], [2048, 256], [2048, 768], [1024, 1024], [1280, 3072], [384, 1152], [64, 1024], [16, 1536]]
MODELS = {"Llama 3.2 1B Instruct": "llama3.2-1b", "Meta Llama 3.1 8B Instruct": "llama3-8b",
          "Qwen2.5 14B Instruct": "qwen2.5-14b"}
SUSPECT_BELOW = 0.5  # of the fastest result for the same device and model


def apple_key(name: str) -> str | None:
    """'Apple M3 Max 12P+4E+40GPU' -> the devices.json key of that chip with 40 GPU cores."""
    m = re.fullmatch(r"(Apple M\d(?: Pro| Max| Ultra)?) \S*?\+(\d+)GPU", name)
    if not m:
        return None
    spec = apple_spec(m.group(1), int(m.group(2)))
    return spec["key"] if spec else None


def nvidia_key(name: str) -> str | None:
    spec = gpu_spec_of(NvidiaGpu(0, name, "", 0, 0, 0, None))
    return spec["key"] if spec else None


def _plain(name: str) -> str:
    """A CPU's name without what LocalScore or a specification adds to it: llamafile's "(znver3)" microarchitecture,
    the generation prefix, the base clock, the integrated GPU."""
    name = re.sub(r"\(.*?\)|\d+(st|nd|rd|th) Gen |@ *[\d.]+GHz|\b(w/|with) Radeon.*|\d+-Cores?( Processor)?"
                  r"|\b(Processor|CPU)\b", " ", name)
    return " ".join(name.lower().split())


def cpu_key(name: str, hosts: dict[str, dict]) -> str | None:
    """The `cpu_hosts` key of a LocalScore CPU name, where one names the same chip. A Raspberry Pi by its board: the
    Pi 4's rev 1.1 runs the BCM2711 at the 1.5 GHz its specification has (the Pi 400 runs it at 1.8 and is left out)."""
    board = re.fullmatch(r"Raspberry Pi (\d) Model B Rev [\d.]+", name)
    if board:
        key = f"raspberry-pi-{board.group(1)}"
        return key if key in hosts and not (board.group(1) == "4" and not name.endswith("Rev 1.1")) else None
    plain = _plain(name)
    return next((k for k, h in hosts.items() if _plain(h.get("cpu") or "") == plain), None)


def row(r: dict, hosts: dict[str, dict]) -> dict | None:
    model = MODELS.get(r["model_name"])
    if model is None or r["model_quant"] != "Q4_K - Medium":
        return None
    if r["accel_group"] == "NVIDIA GPU":
        key, backend = nvidia_key(r["accel_name"]), "cuda"
    elif r["accel_group"] == "Apple GPU":
        key, backend = apple_key(r["accel_name"]), "metal"
    elif r["accel_type"] == "CPU":
        key, backend = cpu_key(r["accel_name"], hosts), "cpu"
    else:
        return None
    if key is None:
        return None
    day = r["test_date"][:10].replace(".", "-")
    return {
        "id": f"localscore-{r['test_num']}", "device": f"{r['accel_name']} ({r['accel_ram']} {r['accel_ram_unit']}; "
        f"{r['system_cpu']}, {r['system_os']})", "device_key": key, "backend": backend,
        "engine": "llamafile (LocalScore)", "date": day[:7], "model": model, "quant": "q4_k_m", "model_bytes": None,
        "params": None, "n_gpu_layers": None, "threads": None, "flash_attn": False, "pp": None,
        "tg": {"n_tokens": None, "tps": float(r["gen_tps"]), "mean_over": TESTS},
        "source": f"{SOURCE} (test_num {r['test_num']}, {day})",
    }


def main() -> None:
    with open(sys.argv[1], newline="") as f:
        hosts = published_cpu_hosts()
        rows = [x for x in (row(r, hosts) for r in csv.DictReader(f, delimiter="\t")) if x]
    best: dict[tuple[str, str], float] = {}
    for x in rows:
        k = (x["device_key"], x["model"])
        best[k] = max(best.get(k, 0.0), x["tg"]["tps"])
    for x in rows:
        fastest = best[(x["device_key"], x["model"])]
        if x["tg"]["tps"] < SUSPECT_BELOW * fastest:
            x["suspect"] = {"figures": "tg", "why": f"another LocalScore result on this device and model generated "
                                                     f"{fastest:g} tok/s"}
    json.dump({"about": __doc__.strip().splitlines()[0] + " Converted by benchmarks/localscore_rows.py from " + SOURCE,
               "collected": "2026-12-04", "rows": rows}, sys.stdout, indent=1)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
