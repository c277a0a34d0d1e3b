"""Cloud VMs' llama.cpp CPU decode from SpareCores' public inspector data, as rows for speed_model_fit.py --score.

    python benchmarks/sparecores_rows.py MIRROR > /tmp/rows.json && cp /tmp/rows.json benchmarks/published_sparecores.json

MIRROR is a git directory of github.com/SpareCores/sc-inspector-data (the `fetch` tool's mirror). Each instance type's
folder holds llama-bench's jsonl output (`llm/stdout`: one prebuilt CPU build, 51f311e0 (4753), `-t <physical cores>
-fa 1 -ngl 0`, five repetitions, tg128 and, where it ran, pp512, on the instance's own vCPUs), `lscpu/stdout` and lmbench's `bw_mem` read figures.
Kept: x86 VMs (AMD families 25 and 26, Intel family 6) running LLaMA-1 7B Q4_K_M (TheBloke's llama-7b, the shape of
Llama 2 7B) at 8 threads or fewer on the CPU backend alone (a GPU instance's records with a GPU in them are left
out), where few cores decode and a core's own limits show. Each VM is its own host: its
CPUID, flags and TSC clock (BogoMIPS / 2: what detection reads in a VM) from lscpu, and as its memory bandwidth what
bw_mem read from the largest buffer there, marked measured (a VM's share of the socket is not a specification:
qwenctl measures it, `detect --measure`). Every row is held out: nothing is fitted on them.
"""

from __future__ import annotations

import functools
import json
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

MODEL_FILE = "llama-7b.Q4_K_M.gguf"
MAX_THREADS = 8
SUSPECT_OVER_MEASURED = 1.5  # a row whose decode reads more than this x the VM's measured bandwidth is flagged
FLAGS = ("avx", "avx2", "avx512f", "avx512bw", "avx512_vnni", "avx_vnni", "fma", "f16c", "amx_int8")
SOURCE = "https://github.com/SpareCores/sc-inspector-data"
# the day each llama.cpp commit the benchmark ran was made: kernel paths are dated by build, not by when it ran (a 2026
# run of this build decodes as February 2025's llama.cpp did). 51f311e0 = b4753, "llama : skip loading unused tensors
# (#12004)", committed 2025-02-21 (ggml-ci's summary for that commit; Homebrew's llama.cpp formula pins tag b4753 to it)
BUILD_DATES = {"51f311e0": "2025-02-21"}
# the instructions each CPU variant of the prebuilt build needs, in lscpu's names (llama.cpp's ggml/src/CMakeLists.txt,
# GGML_CPU_ALL_VARIANTS: the variants b4753 ships, each loaded where the CPU has all it needs, the richest first)
_HASWELL = {"avx", "f16c", "fma", "avx2", "bmi2"}
_SKYLAKEX = _HASWELL | {"avx512f"}
VARIANT_FLAGS = {
    "sandybridge": {"avx"}, "haswell": _HASWELL, "alderlake": _HASWELL | {"avx_vnni"}, "skylakex": _SKYLAKEX,
    "icelake": _SKYLAKEX | {"avx512vbmi", "avx512_vnni"},
    "sapphirerapids": _SKYLAKEX | {"avx512vbmi", "avx512_vnni", "avx512_bf16", "amx_tile", "amx_int8"},
}


def git(mirror: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(mirror), *args], capture_output=True, text=True, check=True).stdout


@functools.lru_cache(maxsize=16)  # a folder's files, read once for each of its models (sparecores_models_rows.py)
def show(mirror: Path, path: str) -> str | None:
    try:
        return git(mirror, "show", f"HEAD:{path}")
    except subprocess.CalledProcessError:
        return None


def lscpu_fields(text: str) -> dict[str, str]:
    return {f["field"].rstrip(":"): f["data"] for f in json.loads(text)["lscpu"]}


def read_bandwidth(text: str) -> float | None:
    """bw_mem's read figure (MB/s) at its largest buffer, in bytes a second."""
    reads = [line.split() for line in text.splitlines() if line.startswith("rd ")]
    return float(max(reads, key=lambda r: float(r[1]))[2]) * 1e6 if reads else None


def other_hardware(stderr: str, flags: set[str]) -> str | None:
    """Why the benchmark ran on other hardware than lscpu described, or None: llama.cpp loaded a CPU variant that needs an
    instruction lscpu's flags lack, or one below a variant they allow. Clouds sell some instance types on two CPU
    generations (Azure's Dv5 and Ev5: Ice Lake 8370C or Sapphire Rapids), and the two captures came from two VMs."""
    loaded = sorted(set(re.findall(r"loaded CPU backend from \S*libggml-cpu-([a-z0-9_]+)\.", stderr)))
    if len(loaded) != 1 or loaded[0] not in VARIANT_FLAGS:
        return None
    need = VARIANT_FLAGS[loaded[0]]
    if not need <= flags:
        return f"llama.cpp loaded its {loaded[0]} CPU backend, which needs {', '.join(sorted(need - flags))}: lscpu's CPU has none"
    richer = [v for v, n in VARIANT_FLAGS.items() if need < n <= flags]
    best = max(richer, key=lambda v: len(VARIANT_FLAGS[v]), default=None)  # what llama.cpp loads there: the richest
    return f"llama.cpp loaded its {loaded[0]} CPU backend where lscpu's CPU runs {best}" if best else None


def host_key(folder: str) -> str:
    return "sparecores-" + folder.removeprefix("data/").replace("/", "-").lower()


def host_spec(folder: str, cpu: dict[str, str], bandwidth: float, cores: int) -> dict:
    """A VM as detection would see it: its CPUID, flags and TSC clock from lscpu, `cores` as llama-bench's threads (its
    physical cores), and bw_mem's read figure as its measured bandwidth."""
    vendor, family = cpu.get("Vendor ID"), cpu.get("CPU family")
    flags = set(cpu.get("Flags", "").split())
    return {
        "cpu": cpu["Model name"],
        "cpuid": {"vendor_id": vendor, "family": int(family or 0), "model": int(cpu["Model"])},
        "cores": {"performance": cores, "efficiency": 0},
        "threads_total": int(cpu.get("CPU(s)", cores)),
        "clock_ghz": {"base": round(float(cpu["BogoMIPS"]) / 2000, 3), "max_turbo": None, "all_core_typical": None},
        "isa": [f for f in FLAGS if f in flags],
        "core_type": f"{vendor} family {family} model {cpu['Model']}, {cpu.get('Hypervisor vendor', 'no')} hypervisor",
        "memory": {"type": "a cloud VM's share (not a specification)", "bandwidth_gbs": round(bandwidth / 1e9, 2), "measured": True,
                   "note": "lmbench bw_mem read at its largest buffer on this VM (bw_mem/stdout)"},
        "sources": [f"{SOURCE} {folder}/lscpu/stdout and {folder}/bw_mem/stdout"],
    }


def read_instance(mirror: Path, folder: str, model_file: str = MODEL_FILE) -> tuple[dict[str, str], list[dict], dict[int, dict], float] | None:
    """An instance's lscpu fields, its llama-bench tg128 records of ``model_file`` on the CPU alone, its pp512 records by
    thread count and bw_mem's read figure; None where a capture is missing."""
    out = show(mirror, f"{folder}/llm/stdout")
    cpu_text = show(mirror, f"{folder}/lscpu/stdout")
    bw_text = show(mirror, f"{folder}/bw_mem/stdout")
    if not out or model_file not in out or not cpu_text or not bw_text:
        return None
    records = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    mine = [r for r in records if r["model_filename"].endswith(model_file) and r.get("backends") == "CPU" and not r.get("gpu_info")]
    tg = [r for r in mine if r["n_prompt"] == 0 and r["n_gen"] == 128]
    pp = {r["n_threads"]: r for r in mine if r["n_prompt"] == 512 and r["n_gen"] == 0}
    bandwidth = read_bandwidth(bw_text)
    return (lscpu_fields(cpu_text), tg, pp, bandwidth) if tg and bandwidth else None


LLAMA_7B = ("llama2-7b", "LLaMA-1 7B (TheBloke llama-7b.Q4_K_M.gguf): Llama 2 7B's shape.")


def bench_rows(folder: str, cpu: dict[str, str], tg: list[dict], pp: dict[int, dict], bandwidth: float, host: dict,
               build: str, elsewhere: str | None = None, model: tuple[str, str] = LLAMA_7B) -> list[dict]:
    """An instance's rows for speed_model_fit.py --score: one per tg128 record, with the pp512 of its thread count;
    ``build``: how the binary was built; ``elsewhere``: why the run was on other hardware (`other_hardware`); ``model``:
    the rows' model name and note (LLaMA-1 7B unless told)."""
    key = host_key(folder)
    name, note = model
    suffix = "" if name == LLAMA_7B[0] else f"-{name}"  # the 7B's ids as they were
    return [{
        "id": f"{key}-t{r['n_threads']}{suffix}", "device": f"{folder.split('/')[1]} {folder.split('/')[2]} ({cpu['Model name']}, "
                                                       f"{cpu.get('CPU(s)')} vCPUs)",
        "device_key": key, "backend": "cpu",
        "engine": f"llama.cpp build {r['build_commit']} ({r['build_number']}) (llama-bench -t {r['n_threads']} -fa 1 -ngl 0, "
                  f"-p 0 -n 128 and -p 512 -n 0, {build})",
        "date": BUILD_DATES[r["build_commit"]], "model": name, "quant": "q4_k_m", "model_bytes": r["model_size"],
        "params": r["model_n_params"], "n_gpu_layers": 0, "threads": r["n_threads"], "flash_attn": bool(r["flash_attn"]),
        "pp": {"n_tokens": 512, "tps": round(pp[r["n_threads"]]["avg_ts"], 4)} if r["n_threads"] in pp else None,
        "tg": {"n_tokens": 128, "tps": round(r["avg_ts"], 4)}, "host_memory": host["memory"]["type"],
        "gpu_power_limit_w": None, "source": f"{SOURCE} {folder}/llm/stdout (test_time {r['test_time']})",
        "note": note,
        **({"suspect": {"figures": "both", "why": f"{elsewhere} (llm/stderr): the benchmark ran on other hardware than "
                                                  "lscpu and bw_mem describe"}} if elsewhere else
           {"suspect": {"figures": "tg", "why": f"reads {r['avg_ts'] * r['model_size'] / 1e9:.0f} GB/s, over "
                        f"{SUSPECT_OVER_MEASURED}x what bw_mem read there ({bandwidth / 1e9:.0f}): a decode cannot outrun the memory"}}
           if r["avg_ts"] * r["model_size"] > SUSPECT_OVER_MEASURED * bandwidth else {}),
    } for r in tg]


def instance_rows(mirror: Path, folder: str, model_file: str = MODEL_FILE,
                  model: tuple[str, str] = LLAMA_7B) -> tuple[list[dict], dict | None]:
    got = read_instance(mirror, folder, model_file)
    if got is None:
        return [], None
    cpu, tg, pp, bandwidth = got
    vendor, family = cpu.get("Vendor ID"), cpu.get("CPU family")
    tg = [r for r in tg if r["n_threads"] <= MAX_THREADS]
    if cpu.get("Architecture") != "x86_64" or (vendor, family) not in (("AuthenticAMD", "25"), ("AuthenticAMD", "26"),
                                                                        ("GenuineIntel", "6")) or not tg:
        return [], None
    elsewhere = other_hardware(show(mirror, f"{folder}/llm/stderr") or "", set(cpu.get("Flags", "").split()))
    host = host_spec(folder, cpu, bandwidth, tg[0]["n_threads"])
    return bench_rows(folder, cpu, tg, pp, bandwidth, host, "prebuilt CPU binary with dynamic CPU backends", elsewhere,
                      model), \
        {host_key(folder): host}


def convert(mirror: Path, instance: Callable[[Path, str], tuple[list[dict], dict | None]], about: str, script: str) -> dict:
    """Every instance folder of the mirror through ``instance``, as one file of rows and hosts."""
    folders = [f"data/{v}/{i}" for v in git(mirror, "ls-tree", "--name-only", "HEAD:data/").split() if v != ".gitkeep"
               for i in git(mirror, "ls-tree", "--name-only", f"HEAD:data/{v}").split()]
    rows: list[dict] = []
    hosts: dict[str, dict] = {}
    for folder in folders:
        got, host = instance(mirror, folder)
        rows += got
        hosts.update(host or {})
    head = git(mirror, "rev-parse", "HEAD").strip()
    return {"about": f"{about} Converted by benchmarks/{script} from {SOURCE} at {head}.", "rows": rows, "cpu_hosts": hosts}


def main() -> None:
    doc = convert(Path(sys.argv[1]), instance_rows, __doc__.strip().splitlines()[0], "sparecores_rows.py")
    print(json.dumps(doc, indent=1))


if __name__ == "__main__":
    main()
