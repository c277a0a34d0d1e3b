"""What every shipped profile plans: the table of docs/planning.md's "Profiles" section.

    python benchmarks/profile_plans.py        # prints the markdown table

Each row is `qwenctl plan --profile NAME --json` of the qwenctl beside this script (a cluster profile with its
workers): the model, backend, GPU layers, split, predicted decode (its slow end) and each memory pool's use
against its budget, in GB.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def row(name: str) -> str:
    out = subprocess.run([sys.executable, "-m", "qwenctl", "plan", "--profile", name, "--json"], cwd=ROOT,
                         capture_output=True, text=True, check=True).stdout
    c = json.loads(out)["chosen"]
    layers = "0" if c["device"] == "cpu" else "all" if c["n_gpu_layers"] in (-1, c["n_layers"] + 1) else str(c["n_gpu_layers"])
    pools = ", ".join(f"{p['name']} {sum(p[k] for k in ('weights_bytes', 'kv_bytes', 'compute_bytes', 'overhead_bytes')) / 1e9:.1f}"
                      f"/{p['budget_bytes'] / 1e9:.1f} GB" for p in c["memory"])
    return (f"| {name} | {c['size']} {c['quant_label']} | {c['backend']}/{c['device']} | {layers} | {c.get('split_mode') if c.get('split_mode') not in (None, 'none') else '—'} "
            f"| {c['tg_tps']:.1f} ({c['tg_tps_low']:.1f}) | {pools} |")


def main() -> None:
    print("| profile | plan | backend | GPU layers | split | tg tok/s (slow end) | memory used / budget |")
    print("|---|---|---|---|---|---|---|")
    for path in sorted((ROOT / "profiles").glob("*.toml")):
        print(row(path.stem))


if __name__ == "__main__":
    main()
