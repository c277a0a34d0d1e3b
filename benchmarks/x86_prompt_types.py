"""How fast llama.cpp's x86 CPU kernels multiply a prompt batch of each weight type, relative to a Q4_K_M file: the
`kernel_paths.cpu_x86_types` rates of qwenctl/data/speed_model.json.

    python benchmarks/x86_prompt_types.py [RESULTS_DIR]    (default benchmarks/results/x86-prompt-types)

The directory holds llama-bench JSON (pp256, 2 threads) of shape-faithful Qwen2.5-1.5B files, one per file type, named
BUILD-1.5b-FILETYPE.json, measured with the vendored llama.cpp built for one instruction set per BUILD (avx2: AVX2 +
FMA + F16C + BMI2; vnni: the same + AVX-VNNI; avx512: + AVX-512, VNNI, VBMI). Q4_0, Q5_0 and Q8_0 files are one type
throughout; a K-quant file mixes types by llama.cpp's recipe (`qwenctl.recipe`), so a type's time per weight is solved
from the files whose other types are known. Prints, per build, each type's rate against the Q4_K_M file's (time per
weight of the Q4_K_M mix over the type's).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from qwenctl.catalog import load_catalog
from qwenctl.recipe import layer_type_weights

DIR = Path(__file__).parent / "results" / "x86-prompt-types"
PURE = {"Q4_0", "Q5_0", "Q8_0", "Q6_K"}


def mixes() -> dict[str, dict[str, float]]:
    """Each file type's share of its layers' weights by stored ggml type, for the 1.5B."""
    arch = load_catalog().model("1.5B").arch
    out = {}
    for file_type in ("Q4_0", "Q5_0", "Q8_0", "Q4_K_M", "Q5_K_M", "Q6_K", "Q3_K_M"):
        weights = dict(layer_type_weights(arch, file_type))
        total = sum(weights.values())
        out[file_type] = {t: w / total for t, w in weights.items()}
    return out


def type_times(tps: dict[str, float], mix: dict[str, dict[str, float]]) -> dict[str, float]:
    """Time per weight of each ggml type (arbitrary unit: 1 / tok/s of a file of that type alone)."""
    times: dict[str, float] = {}
    pending = dict(tps)
    while pending:
        solvable = [f for f in pending if sum(1 for t in mix[f] if t not in times) == 1]
        if not solvable:
            raise SystemExit(f"cannot solve {sorted(pending)}")
        for f in solvable:
            (unknown,) = [t for t in mix[f] if t not in times]
            rest = sum(share * times[t] for t, share in mix[f].items() if t != unknown)
            times[unknown] = (1 / pending.pop(f) - rest) / mix[f][unknown]
    return times


def main() -> None:
    folder = Path(sys.argv[1]) if len(sys.argv) > 1 else DIR
    mix = mixes()
    builds: dict[str, dict[str, float]] = {}
    for path in sorted(folder.glob("*-1.5b-*.json")):
        build, _, file_type = path.stem.split("-", 2)
        builds.setdefault(build, {})[file_type] = float(json.loads(path.read_text())[0]["avg_ts"])
    for build, tps in builds.items():
        times = type_times(tps, mix)
        reference = 1 / tps["Q4_K_M"]
        rates = {t: round(reference / times[t], 2) for t in sorted(times)}
        files = ", ".join(f"{f} {v:.1f}" for f, v in sorted(tps.items()))
        print(f"{build}: tok/s {files}\n  rates against Q4_K_M: {json.dumps(rates)}")


if __name__ == "__main__":
    main()
