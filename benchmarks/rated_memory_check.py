"""How a CPU's rated memory (qwenctl/hardware/rated_memory.py) prices published decode rows, against the alternatives.

    python benchmarks/rated_memory_check.py

Two sets of rows, each rescored with every host's bandwidth replaced and nothing else changed:
- the published CPU rows whose machine's memory was not published (their hosts carry the part's "max supported"
  figure): the hosts' own figure, the part's rating, and the 25.6 GB/s fallback the rating replaced;
- SpareCores' cloud VMs whose part a rating names: the VM's own bw_mem figure, the part's rating and the fallback,
  which is why a virtual machine takes no rating.
Prints, per set and choice, the tg figures within ±20 %, the median predicted/measured and its 10th and 90th
percentiles. Nothing is fitted.
"""

from __future__ import annotations

import copy
import json
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import speed_model_fit as fit  # noqa: E402

from qwenctl.hardware.rated_memory import rated_bandwidth  # noqa: E402

FALLBACK_GBS = 25.6
SKIPPED = ("published_speeds.json", "published_sparecores.json", "published_splits.json")


def unpublished_config(host: dict) -> bool:
    memory = host.get("memory") or {}
    return "max supp" in f"{memory.get('type', '')}{memory.get('note', '')}" and rated_bandwidth(host["cpu"]) is not None


def ratios(files: list[str], which, choice: str) -> list[float]:
    """predicted/measured tg of the rows whose host `which` selects, its bandwidth set by `choice`."""
    shipped = json.loads((fit.HERE / "published_speeds.json").read_text())
    out = []
    for name in files:
        doc = shipped if name == "published_speeds.json" else json.loads((fit.HERE / name).read_text())
        hosts = copy.deepcopy({**fit.published_cpu_hosts(), **doc.get("cpu_hosts", {})})
        chosen = {k for k, h in hosts.items() if which(k, h)}
        for k in chosen:
            memory = hosts[k]["memory"]
            if choice != "own":
                memory["bandwidth_gbs"] = rated_bandwidth(hosts[k]["cpu"])[0] / 1e9 if choice == "rating" else FALLBACK_GBS
                memory.pop("measured", None)
        rows = fit.prepare(fit.with_shipped_tables(doc, shipped), hosts)
        observed = fit.observations(rows, {r["_device"]: "all" for r in rows if "_skip" not in r}, "all")
        out += [p / m for r, kind, m, p in fit.errors(observed) if kind == "tg" and r.get("device_key") in chosen]
    return out


def report(title: str, files: list[str], which, choices: tuple[str, ...]) -> None:
    print(title)
    for choice in choices:
        v = sorted(ratios(files, which, choice))
        within = sum(0.8 <= x <= 1.2 for x in v)
        print(f"  {choice:8s} {len(v)} tg figures, {within} within ±20 %, median {statistics.median(v):.3f}, "
              f"10th-90th percentile {v[len(v) // 10]:.2f}-{v[9 * len(v) // 10]:.2f}")


def main() -> None:
    files = ["published_speeds.json"] + [p.name for p in sorted(fit.HERE.glob("published_*.json")) if p.name not in SKIPPED]
    report("CPU rows whose machine's memory was not published:", files,
           lambda k, h: not k.startswith("sparecores-") and unpublished_config(h), ("own", "rating", "fallback"))
    report("SpareCores' VMs whose part a rating names:", ["published_sparecores.json"],
           lambda k, h: k.startswith("sparecores-") and rated_bandwidth(h["cpu"]) is not None, ("own", "rating", "fallback"))


if __name__ == "__main__":
    main()
