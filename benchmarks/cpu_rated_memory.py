"""Rebuild the Intel part of qwenctl/hardware/data/cpu_rated_memory.json from Intel ARK's specification pages.

    python benchmarks/cpu_rated_memory.py MIRROR

MIRROR is a git directory of github.com/JosuaCarl/cpu-spec-dataset (the `fetch` tool's mirror), whose
dataset/intel-cpus.csv is a scrape of ark.intel.com: per part its 'Memory Types' (e.g. "Up to DDR5 4800 MT/s Up to
LPDDR5 5200 MT/s"), 'Max # of Memory Channels' and, for most, Intel's own 'Max Memory Bandwidth'. The rated figure
is the fastest speed of the newest socketed DDR generation listed (LPDDR only where nothing else is) x the channels x
8 bytes, never above Intel's own figure (which counts the 32-bit channels of Atom-class parts). The file's
`platforms` rows (AMD, Qualcomm) are kept as they are. Prints how often the rule agrees with Intel's figure.
"""

from __future__ import annotations

import csv
import io
import json
import re
import statistics
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from qwenctl.hardware.rated_memory import model_key  # noqa: E402

OUT = Path(__file__).resolve().parents[1] / "qwenctl" / "hardware" / "data" / "cpu_rated_memory.json"
CSV_PATH = "dataset/intel-cpus.csv"
TOKEN = re.compile(r"(LPDDR\d(?: ?X)?|DDR\d)|(?<![\dX])(\d{3,4}(?:\s*[/.]\s*\d{3,4})*)(?![\dGX])")


def memory_kinds(text: str) -> list[tuple[str, int]]:
    """[(kind, fastest MT/s)] in an ARK 'Memory Types' text. A speed belongs to the kinds named since the last speed
    ("DDR4/LPDDR4 upto 2400" gives both 2400; "DDR3/L/-RS 1333/1600" DDR3 at 1600); a speed with no kind before it
    ("Up to 3200 MT/s", Tiger Lake H's page) is a "DDR" of that speed."""
    found, pending = [], []
    for m in TOKEN.finditer(text.upper()):
        if m.group(1):
            pending.append(m.group(1).replace(" ", ""))
            continue
        fastest = max(int(s) for s in re.findall(r"\d{3,4}", m.group(2)))
        found += [(kind, fastest) for kind in pending or ["DDR"]]
        pending = []
    return found


def rated(kinds: list[tuple[str, int]]) -> tuple[str, int]:
    socketed = [k for k in kinds if not k[0].startswith("LP")] or kinds
    generation = {k: re.sub(r"\D", "", k) for k, _ in socketed}  # "DDR5" 5, "LPDDR4X" 4, a bare "DDR" none
    newest = max(generation.values())
    return max((k for k in socketed if generation[k[0]] == newest), key=lambda k: k[1])


def display(name: str) -> str:
    name = re.sub(r"[®™‡]", "", name)
    name = re.sub(r"\s*\(.*?\)|\s+[Pp]rocessor\b", "", name)
    return " ".join(name.split())


def main() -> None:
    mirror = Path(sys.argv[1])
    commit = subprocess.run(["git", "-C", str(mirror), "rev-parse", "HEAD"], capture_output=True, text=True,
                            check=True).stdout.strip()
    text = subprocess.run(["git", "-C", str(mirror), "show", f"HEAD:{CSV_PATH}"], capture_output=True, text=True,
                          check=True).stdout
    parts, agree, ratios = {}, 0, []
    for row in csv.DictReader(io.StringIO(text.lstrip("\ufeff"))):
        channels = row.get("Max # of Memory Channels", "")
        kinds = memory_kinds(row.get("Memory Types", ""))
        if not channels.isdigit() or not kinds:
            continue
        kind, mts = rated(kinds)
        gbs = mts * int(channels) * 8 / 1000
        intel = re.match(r"[\d.]+", row.get("Max Memory Bandwidth", "").strip())
        if intel:
            ratios.append(gbs / float(intel.group()))
            agree += abs(gbs / float(intel.group()) - 1) < 0.03
            gbs = min(gbs, float(intel.group()))
        parts[model_key(row["CpuName"])] = [display(row["CpuName"]), f"{kind}-{mts}", int(channels), round(gbs, 1)]
    doc = json.loads(OUT.read_text("utf-8"))
    doc["intel"] = {
        "source": f"Intel ARK specification pages as scraped in https://github.com/JosuaCarl/cpu-spec-dataset "
                  f"{CSV_PATH} (commit {commit}); rebuilt by benchmarks/cpu_rated_memory.py",
        "source_short": "Intel ARK",
        "parts": dict(sorted(parts.items())),
    }
    text = json.dumps(doc, indent=1, ensure_ascii=False)
    text = re.sub(r"\[\n\s+([^\[\]{}]*?)\n\s+\]", lambda m: "[" + re.sub(r",\n\s+", ", ", m.group(1)) + "]", text)
    OUT.write_text(text + "\n", "utf-8")  # a part a line
    print(f"{len(parts)} Intel parts; where ARK gives its own bandwidth ({len(ratios)}): the rule agrees within 3 % on "
          f"{agree}, median ratio {statistics.median(ratios):.3f}")


if __name__ == "__main__":
    main()
