"""Cloud VMs' llama.cpp CPU speed on SpareCores' other models, as rows for speed_model_fit.py --score.

    python benchmarks/sparecores_models_rows.py MIRROR > /tmp/rows.json && cp /tmp/rows.json benchmarks/published_sparecores_models.json

The same runs and VMs as benchmarks/sparecores_rows.py (x86, 8 threads or fewer) and sparecores_arm_rows.py (Arm, every
thread count) convert for LLaMA-1 7B, for the benchmark's five other files (sparecores_gpu_rows.MODELS: SmolLM-135M,
Qwen1.5-0.5B, Gemma 2B, Phi-4 14B, Llama 3.3 70B, all Q4_K_M): small models, whose decode per-layer costs and kernels
bind more than the memory, and large ones. Every row is held out: nothing is fitted on them.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent)]

import sparecores_arm_rows as arm  # noqa: E402
import sparecores_rows as x86  # noqa: E402
from sparecores_gpu_rows import MODELS, SHAPES  # noqa: E402


def instance_rows(mirror: Path, folder: str, cores: set[str]) -> tuple[list[dict], dict | None]:
    """Every other model's rows of one instance (x86 or Arm, as the two converters keep them) and its host."""
    rows: list[dict] = []
    hosts: dict = {}
    for file, (name, repo) in MODELS.items():
        if file == x86.MODEL_FILE:
            continue
        model = (name, f"{file} from huggingface.co/{repo}.")
        for got, host in (x86.instance_rows(mirror, folder, file, model), arm.instance_rows(mirror, folder, cores, file, model)):
            rows += [r for r in got if r["tg"]["tps"]]
            hosts.update(host or {})
    return rows, hosts or None


def main() -> None:
    cores = arm.arm_cores()
    doc = x86.convert(Path(sys.argv[1]), lambda mirror, folder: instance_rows(mirror, folder, cores),
                      __doc__.strip().splitlines()[0], "sparecores_models_rows.py")
    print(json.dumps({**doc, "collected": "2026-12-07", "shapes": SHAPES}, indent=1))


if __name__ == "__main__":
    main()
