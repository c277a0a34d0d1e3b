"""Summarise trace-*.json (sitecustomize.py): per busy-slot count, the loop period and each phase's wall / CPU (ms)."""
import json
import statistics
import sys
from pathlib import Path

PHASES = ("step", "collect", "sync", "submit", "decode", "accept", "deliver")


def summarise(path: Path) -> None:
    d = json.loads(path.read_text())
    print(f"== {path.name} variant={d['variant']} switch={d['switchinterval']} threads_cpu_s={d['threads_cpu_s']}")
    for epoch in sorted({s.get("e", 0) for s in d["steps"]}):
        steps = [s for s in d["steps"] if s.get("e", 0) == epoch]
        _table(steps, epoch)


def _table(steps, epoch) -> None:
    for busy in sorted({s["busy"] for s in steps}, reverse=True)[:3]:
        idx = [i for i, s in enumerate(steps) if s["busy"] == busy]
        periods = [steps[i + 1]["t"] - steps[i]["t"] for i in idx if i + 1 < len(steps) and steps[i + 1]["busy"] == busy]
        if len(periods) < 20:
            continue
        row = [f"e{epoch} busy {busy:2d}: n {len(periods):5d} period med {1e3 * statistics.median(periods):.3f} mean {1e3 * statistics.mean(periods):.3f}"]
        for p in PHASES:
            w = [steps[i][p][0] for i in idx if p in steps[i]]
            c = [steps[i][p][1] for i in idx if p in steps[i]]
            if w:
                row.append(f"{p} {1e3 * statistics.mean(w):.3f}/{1e3 * statistics.mean(c):.3f}")
        gap = [steps[i + 1]["t"] - steps[i]["t"] - steps[i]["step"][0] - steps[i].get("deliver", [0, 0])[0]
               for i in idx if i + 1 < len(steps) and steps[i + 1]["busy"] == busy]
        row.append(f"rest {1e3 * statistics.mean(gap):.3f}")
        reused = [steps[i + 1].get("reused", 0) - steps[i].get("reused", 0) for i in idx if i + 1 < len(steps)]
        if any("reused" in steps[i] for i in idx):
            row.append(f"reused {sum(1 for r in reused if r > 0)}/{len(reused)}")
        print("  " + " | ".join(row))


for arg in sys.argv[1:]:
    for p in sorted(Path(arg).glob("trace-*.json")) if Path(arg).is_dir() else [Path(arg)]:
        summarise(p)
