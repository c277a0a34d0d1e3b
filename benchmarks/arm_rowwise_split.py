"""What one Arm decode thread multiplies where llama.cpp takes a type row by row, fitted on half of SpareCores' Arm
chips, held out on the other half.

    python benchmarks/arm_rowwise_split.py

benchmarks/published_sparecores_arm.json holds llama-bench tg128 of LLaMA-1 7B Q4_K_M on SpareCores' Arm VMs, built
(b4753, February 2025) before llama.cpp repacked Q4_K and Q6_K for Arm, so every product of that file ran row by row
(`ggml_vec_dot_q4_K_q8_K`, `..._q6_K_q8_K`). The VMs are grouped by chip (the processor name their SMBIOS gives:
Graviton2, Ampere Altra, Cobalt 100, ...), and within each core row of devices.json (`arm-cortex-a76-n1` for
Neoverse-N1 and N2, `arm-neoverse-v1`, `arm-neoverse-v2` for V2 and V3) the chips, sorted by name, go alternately to a
fitting half and a held-out half before anything is scored: no chip is in both. Each candidate figure for the row's
`rowwise_decode_weights_per_cycle` is priced on both halves through the same code as a detected machine
(speed_model_fit.prepare -> qwenctl.speed); the figure shipped is the one with the most fitting-half figures within
±20 %, and the held-out half's line is the figure to quote.
"""

from __future__ import annotations

import re
import sys
from collections import defaultdict
from dataclasses import replace
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent)]

import speed_model_fit as fit  # noqa: E402

from qwenctl.kernels import arm_rowwise_decode  # noqa: E402

ROWS = HERE / "published_sparecores_arm.json"
CANDIDATES = (0.0, 1.5, 1.75, 2.0, 2.25, 2.5, 2.75, 3.0, 3.25, 3.5, 3.75, 4.0)


def chip(host: dict) -> str:
    """A VM's chip: its core and the processor name in its SMBIOS (lscpu's BIOS Model name), less the clock and repeats;
    where that names no chip (a generic "virt-rhel" or an empty one), the core and clock stand for it."""
    core = host["cpu"]
    bios = re.search(r"\((.*)\)", host["core_type"]).group(1)
    name = re.sub(r"\s*CPU @.*|N/A|None|NotSpecified|virt-\S+|\(R\)", " ", bios)
    words = list(dict.fromkeys(name.split()))
    return f"{core} {' '.join(words)}".strip() if words else f"{core} at {host['clock_ghz']['base']} GHz"


def halves() -> dict[str, tuple[list[dict], list[dict]]]:
    """For each core row: (fitting, held-out) decode rows, split by chip."""
    rows, hosts = fit.decode_rows(ROWS)
    rows = [r for r in rows if arm_rowwise_decode(r["_host"], "Q4_K", r["date"])]  # a core without dot products has none
    by_core: dict[str, dict[str, list[dict]]] = defaultdict(lambda: defaultdict(list))
    for r in rows:
        by_core[r["_host"].core][chip(hosts[r["device_key"]])].append(r)
    out = {}
    for core, chips in sorted(by_core.items()):
        names = sorted(chips)
        out[core] = ([r for n in names[::2] for r in chips[n]], [r for n in names[1::2] for r in chips[n]])
        print(f"{core}: fitting {', '.join(names[::2])}; held out {', '.join(names[1::2]) or 'none'}")
    return out


def score(rows: list[dict], per_cycle: float) -> tuple[int, float]:
    """Figures within ±20 % and the median predicted/measured with ``per_cycle`` as the row's figure (0: none)."""
    return fit.decode_score(rows, lambda r: replace(r["_host"], thread_rowwise_weights_per_s=per_cycle * r["_host"].clock_hz))


def main() -> None:
    for core, (fitting, held_out) in halves().items():
        print(f"\n{core}: {len(fitting)} fitting VMs, {len(held_out)} held out")
        fits = {c: score(fitting, c) for c in CANDIDATES}
        best = max(CANDIDATES, key=lambda c: (fits[c][0], -abs(fits[c][1] - 1)))
        for c in CANDIDATES:
            (fw, fm), (hw, hm) = fits[c], (score(held_out, c) if held_out else (0, float("nan")))
            print(f"  {c:4.2f} weights/cycle   fitting {fw:3d} of {len(fitting)}, median {fm:.3f}   "
                  f"held out {hw:3d} of {len(held_out)}, median {hm:.3f}{'   <- most fitting figures within' if c == best else ''}")


if __name__ == "__main__":
    main()
