"""Score qwenctl's speed model on published measurements it was not fitted to, and (re-)fit it.

    python benchmarks/speed_model_fit.py            # score the shipped constants (speed_model.json)
    python benchmarks/speed_model_fit.py --fit      # fit on the fitting half, score the held-out half,
                                                    # write the constants and benchmarks/results/speed_model_fit.json
    python benchmarks/speed_model_fit.py --fit --resplit   # the same over a new split of the devices
    python benchmarks/speed_model_fit.py --fit --only prompt   # refit one group (or cuda-prompt, cpu-decode, gpu-decode, cuda-kernels, gddr, lpddr, geforce-clock)
    python benchmarks/speed_model_fit.py --fit --only cuda-kernels --kernel Q8_0   # one CUDA decode kernel's constant
    python benchmarks/speed_model_fit.py --rows     # also print every row
    python benchmarks/speed_model_fit.py --score F  # score the shipped constants on the rows of F (collected
                                                    # after the fit, e.g. published_cpu_sweeps.json), never fit

Rows: benchmarks/published_speeds.json (each with its source). Devices are split BEFORE any
fitting into a fitting half and a held-out half: within each device family, devices are ordered
by a hash of their key and alternate between the halves, so no device is in both and every
family with two or more devices is in both. That split is kept (speed_model.json's `fitted_on`):
a device whose rows arrive later is held out, and a refit cannot move devices between the halves
unless asked to (--resplit). Rows measured for this project on the H200 are
always held out. Every device goes through the same code as a detected machine: facts
(NvidiaGpu, AppleSilicon, Cpu + Memory) -> qwenctl.machine -> qwenctl.speed.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import re
import statistics
import sys
from collections.abc import Callable
from dataclasses import replace
from datetime import date
from pathlib import Path

# The qwenctl beside this script, whose speed_model.json it reads and (with --fit) writes: another tree's
# installed copy would score or start the fit from that tree's constants.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from qwenctl.catalog import Architecture, load_catalog  # noqa: E402
from qwenctl.device_speed import DeviceSpeed, load_speed_model  # noqa: E402
from qwenctl.estimate import fit_gpu_layers, weight_split  # noqa: E402
from qwenctl.hardware.facts import (  # noqa: E402
    Absent,
    AppleSilicon,
    Backends,
    Board,
    Cpu,
    Hardware,
    Memory,
    NvidiaGpu,
)
from qwenctl.hardware.nvidia_specs import (  # noqa: E402
    geforce_desktop,
    gpu_spec_by_key,
    gpu_spec_of,
    resident_threads,
    spec_compute_capability,
)
from qwenctl.kernels import F16_MMV, built_before, decode_kernel  # noqa: E402
from qwenctl.machine import apple_device, cuda_device, host_device, threads  # noqa: E402
from qwenctl.recipe import FILE_TYPES  # noqa: E402
from qwenctl.speed import estimate_placed_speed, estimate_speed, memory_family  # noqa: E402
from qwenctl.split import place_layers  # noqa: E402
from qwenctl.testing.recipe import gguf_tensor_bytes, mlx_bytes  # noqa: E402

HERE = Path(__file__).resolve().parent
DATA = HERE / "published_speeds.json"
MODEL_FILE = HERE.parent / "qwenctl" / "data" / "speed_model.json"
RESULTS = HERE / "results" / "speed_model_fit.json"
# The H200 is the acceptance check: never fitted. The H100 SXM carries this project's own rows, measured
# with the llama.cpp that qwenctl ships (the best-controlled data there is): always fitted.
ALWAYS_HELD_OUT = ("h200-sxm",)
ALWAYS_FITTED = ("h100-sxm",)


# --- rows -> (model, weights, devices) -------------------------------------------------------------

def recipe_label(quant: str) -> str | None:
    """The llama.cpp file type whose recipe (qwenctl.recipe.FILE_TYPES) writes a catalog quant ("q4_k_m" -> "Q4_K_M",
    "fp16" -> "F16"); None for one it has no recipe for."""
    label = "F16" if quant == "fp16" else quant.upper()
    return label if label in FILE_TYPES else None


def model_for(row: dict, shapes: dict):
    """The catalog model, or a non-Qwen model from its shape, with weights of the row's quant and bytes.

    A row without the file's size gets the bytes llama.cpp's quantizer writes for the shape (`recipe`), or the
    official Qwen file's. A tied model's file may or may not store output.weight (Qwen's own 0.5B-3B files do,
    bartowski's and Ollama's not); the tokens read the same bytes either way, but the file's size holds the copy or
    not, so a row's size says which file it was: the nearer of the two recipes. Qwen's own 72B files pad the
    feed-forward (no fallback types), files quantized from its weights do not: the row's size says which, alike."""
    catalog = load_catalog()
    name, quant = row["model"], row["quant"]
    base = catalog.model("7B")
    qwen = name.startswith("qwen2.5-")
    if qwen:
        model = catalog.model(name.split("-", 1)[1].upper())
        if row.get("n_layers"):  # a shape sweep's file: the size's widths at another depth (benchmarks/gpu/shape_sweep.py)
            a0, n = model.arch, int(row["n_layers"])
            embedding = a0.vocab_size * a0.hidden_size * (1 if a0.tied_embeddings else 2)
            model = replace(model, arch=replace(a0, n_layers=n), params=embedding + (model.params - embedding) * n // a0.n_layers)
    else:
        sh = shapes[name]
        arch = Architecture(**{k: sh[k] for k in ("hidden_size", "n_layers", "n_heads", "n_kv_heads", "head_dim",
                                                   "intermediate_size", "vocab_size", "tied_embeddings")},
                            context_native=8192, context_max=8192)
        model = replace(base, size=name, arch=arch, params=sh["params"], weights=())
    fmt = "mlx" if quant.startswith("mlx-") else "gguf"
    q = quant.removeprefix("mlx-")
    q = {"f16": "fp16"}.get(q, q)
    template = next((w for m in catalog.models for w in m.weights if w.format == fmt and w.quant == q), None)
    if template is None:
        return None
    a = model.arch
    label = recipe_label(q)
    output_in_file = not a.tied_embeddings
    official = model.weights_for(fmt, q) if qwen and any(w.quant == q and w.format == fmt for w in model.weights) else None
    padded = official.feed_forward_length if official else None  # Qwen's own 72B files pad the feed-forward
    if row.get("model_bytes"):
        nbytes = int(row["model_bytes"])
        if fmt == "gguf" and a.tied_embeddings and label:
            tied, untied = (gguf_tensor_bytes(replace(a, tied_embeddings=t), label, biases=qwen) for t in (True, False))
            output_in_file = abs(nbytes - untied) < abs(nbytes - tied)
        if padded and label:  # Qwen's padded file or one quantized from the unpadded weights (direct, bartowski's)
            wide = gguf_tensor_bytes(replace(a, intermediate_size=padded), label, biases=qwen)
            padded = padded if abs(nbytes - wide) < abs(nbytes - gguf_tensor_bytes(a, label, biases=qwen)) else None
    elif official:
        nbytes, output_in_file = official.total_bytes, official.output_in_file
    elif fmt == "mlx":
        nbytes = mlx_bytes(model.params, q)
    elif label:
        nbytes = gguf_tensor_bytes(a, label, biases=qwen)
    else:
        return None
    embd = template.embd_type
    out = row.get("output_type") or template.output_type  # a file written in one type throughout says so
    if fmt == "gguf" and name.startswith(("llama", "mistral", "tinyllama")):
        embd = {"q4_k_m": "Q4_K", "q4_0": "Q4_0", "q8_0": "Q8_0", "fp16": "F16"}.get(q, embd)
    w = replace(template, total_bytes=nbytes, files=(), embd_type=embd, output_type=out, output_in_file=output_in_file,
                feed_forward_length=padded)
    return replace(model, weights=(w,)), w


def _no_backends() -> Backends:
    return Backends("installed", True, Absent("n/a"), Absent("n/a"), None)


def devices_for(row: dict, cpus: dict, aliases: dict, shapes: dict):
    """(gpu DeviceSpeed or None, host DeviceSpeed, n_gpu_layers) through the same code as a live machine."""
    backend = row["backend"]
    key = aliases.get(row["device_key"], row["device_key"])
    if backend in ("metal", "mlx"):
        apple = apple_facts(key)
        if apple is None:
            return None
        host = host_device(Hardware("Darwin", "arm64", Absent("-"), Memory(apple.unified_memory_bytes, 0, 0), Absent("-"),
                                    apple, Absent("-"), Absent("-"), _no_backends()))
        return apple_device(apple, backend), host, -1
    if backend in ("cuda", "split"):
        spec = gpu_spec_by_key(key)
        if spec is None:
            return None
        # an integrated GPU's module is told by its board (every Jetson Orin is "Orin (nvgpu)" to NVML): the row's own
        # board words, so the specification detection would find is this row's, not the first of that NVML name
        board = " ".join(spec["board_models"]) if spec.get("board_models") else None
        gpu = NvidiaGpu(0, (spec.get("nvml_names") or [spec["key"]])[0], "", int((spec.get("memory_gib") or 24) * 2**30), 0, 0,
                        spec_compute_capability(spec),
                        bandwidth_bytes_per_s=int(spec["bandwidth_gbs"] * 1e9) if spec.get("bandwidth_gbs") else None,
                        power_limit_w=row.get("gpu_power_limit_w"), ecc_enabled=row.get("gpu_ecc"), board=board,
                        pcie_link_gen=row.get("gpu_pcie_gen"), pcie_link_width=row.get("gpu_pcie_width"))
        assert gpu_spec_of(gpu)["key"] == key, (key, gpu_spec_of(gpu)["key"])
        host_hw = cpu_hardware({**row, "device_key": row.get("host_key", "")}, cpus) or _default_host()
        ngl = -1 if backend == "cuda" else row.get("n_gpu_layers")
        if ngl is None:  # a split whose layer count the source does not give: as many as fit, as the tools do
            model, w = model_for(row, shapes) or (None, None)
            if model is None:
                return None
            ngl = fit_gpu_layers(model, w, 2048, gpu.memory_total_bytes - 2**30, resident_threads=resident_threads(gpu)) or 0
        return cuda_device(gpu), host_device(host_hw), ngl
    hw = cpu_hardware(row, cpus)
    return (None, host_device(hw, row.get("threads")), 0) if hw else None


def apple_facts(key: str) -> AppleSilicon | None:
    from qwenctl.hardware.apple_specs import apple_spec_by_key

    spec = apple_spec_by_key(key)
    if spec is None:
        return None
    return AppleSilicon(spec["chip"], None, None, spec["gpu_cores"], 64 * 2**30, 48 * 2**30, "-",
                        bandwidth_bytes_per_s=int(spec["bandwidth_gbs"] * 1e9))


def cpu_hardware(row: dict, cpus: dict) -> Hardware | None:
    """A CPU host as detect would see it: cores and ISA from its specification, bandwidth as configured.

    The clock is the base clock of the specification, as detection reads it on Linux (intel_pstate's
    base_frequency, ACPI CPPC's nominal_freq), with its maximum turbo as cpufreq's maximum; a CPU whose
    specification has no base clock gets the typical clock the model assumes live, and no turbo."""
    spec = cpus.get(row["device_key"])
    if spec is None or not spec.get("isa"):  # a host whose instruction sets were not found has no specification
        return None
    cores = spec.get("cores") or {}
    perf = cores.get("performance") or None
    total = sum(v for v in cores.values() if isinstance(v, int)) or spec.get("threads_total") or 4
    threads = row.get("threads") or perf or total
    arm = any(f in spec.get("isa", []) for f in ("neon", "dotprod", "i8mm"))
    riscv = any(f.startswith("rv") for f in spec.get("isa", []))  # "rv64gc" (scalar) or "rvv" (RVV 1.0)
    clock = spec.get("clock_ghz") or {}
    base = clock.get("base") or clock.get("p_core_base")  # a hybrid's CPU 0 is a P-core: its base is what detection reads
    brand = spec["cpu"]
    core = re.search(r"(Cortex-[AX]\d+\w*|Neoverse-[NV]\d)", spec.get("core_type") or "") if arm else None
    if core:  # an Arm host's /proc/cpuinfo names its cores, not the chip; the core most of its CPUs are comes first
        brand = f"ARM {core.group(1)}"
    # cpufreq's maximum (the turbo), where the driver that gives the base (intel_pstate, CPPC) would give it too
    turbo = (clock.get("max_turbo") or clock.get("p_core_turbo")) if base else None
    eff = cores.get("efficiency") or None
    physical = (perf + eff) if perf and eff else threads
    cpuid = spec.get("cpuid") or {}  # where the specification records it (a VM whose name names no part)
    cpu = Cpu(brand, "arm64" if arm else "riscv64" if riscv else "x86_64", physical, max(spec.get("threads_total") or physical, physical),
              perf if eff else None, eff if perf else None, tuple(spec.get("isa", [])),
              max_clock_mhz=round(turbo * 1000) if turbo else None, base_clock_mhz=round(base * 1000) if base else None,
              vendor_id=cpuid.get("vendor_id"), cpu_family=cpuid.get("family"), cpu_model=cpuid.get("model"),
              # a CPUID recorded from a VM's lscpu or cpuinfo, with no cpufreq maximum: a guest its hypervisor hides
              # the clock from, as detection sees one (the `hypervisor` flag)
              virtual_machine=bool(cpuid) and not turbo)
    memory = spec.get("memory") or {}
    bw = memory.get("bandwidth_gbs")
    measured = bool(memory.get("measured"))  # a read test's figure (detect --measure), which detection marks as such
    mem = Memory(16 * 2**30, 8 * 2**30, 0, bandwidth_bytes_per_s=int(bw * 1e9) if bw else None,
                 bandwidth_source="measured" if measured else "specification", bandwidth_measured=measured)
    key = row["device_key"]
    board = Board("Raspberry Pi 5" if key.endswith("5") else "Raspberry Pi 4", None, None, None) if key.startswith("raspberry") else Absent("-")
    # the CPU features the row's llama.cpp was built with, where the source says (`llama_cpp_cpu_flags`: a generic
    # armv8-a build lacks the dot products its cores have), as detection reads them from llama_print_system_info
    backends = replace(_no_backends(), llama_cpp_cpu_flags=tuple(row["llama_cpp_cpu_flags"])) if row.get("llama_cpp_cpu_flags") else _no_backends()
    return Hardware("Linux", cpu.arch, cpu, mem, Absent("-"), Absent("-"), board, Absent("-"), backends)


def _default_host() -> Hardware:
    cpu = Cpu("x86 host", "x86_64", 8, 16, None, None, ("avx2", "fma"))
    return Hardware("Linux", "x86_64", cpu, Memory(64 * 2**30, 32 * 2**30, 0, bandwidth_bytes_per_s=int(64e9)),
                    Absent("-"), Absent("-"), Absent("-"), Absent("-"), _no_backends())


# --- predicting and splitting ----------------------------------------------------------------------

def prepare(doc: dict, cpus: dict) -> list[dict]:
    """Every row with what the model needs; rows whose device or model has no specification are listed apart."""
    out = []
    for row in doc["rows"]:
        if row["backend"] not in ("cuda", "metal", "mlx", "cpu", "split") or not row.get("quant"):
            continue
        mw = model_for(row, doc.get("shapes", {}))
        dev = devices_for(row, cpus, doc.get("device_aliases", {}), doc.get("shapes", {}))
        if mw is None or dev is None:
            out.append({**row, "_skip": "no specification for the device or model"})
            continue
        gpu, host, ngl = dev
        family = (gpu or host).family
        key = doc.get("device_aliases", {}).get(row["device_key"], row["device_key"])
        # llama-bench's tg decodes without sampling; every other tool's figure includes drawing the token
        sampled = "llama-bench" not in (row.get("engine") or "")
        out.append({**row, "_device": key, "_sampled": sampled, "_model": mw, "_gpu": gpu, "_host": host, "_ngl": ngl, "_family": family})
    return out


def predict(r: dict) -> tuple[float | None, float | None]:
    """(tg, pp) of a row. A tg figure that is the mean over tests (`tg.mean_over`: [prompt, generated] pairs) is
    priced as the mean of the tests' rates at their mean depths. A tg figure measured as single-token batches (llama-bench's pp at n_ubatch 1, which
    the pull requests that tune decode kernels print) reads every weight per token but the output matrix: only the
    prompt's last token computes logits."""
    model, w = r["_model"]
    pp_n = (r.get("pp") or {}).get("n_tokens") or 512
    split = None
    if (r.get("tg") or {}).get("per_token_batches"):
        split = replace(weight_split(load_catalog(), model, w), output_bytes=0)
    gpus = r.get("gpus", 1)
    if gpus > 1:  # identical GPUs, every layer offloaded: llama.cpp's layer split gives each an equal share
        est = estimate_placed_speed(model, w, (r["_gpu"],) * gpus, r["_host"], place_layers(model.arch.n_layers, -1, (1.0,) * gpus),
                                    split=split, pp_tokens=pp_n, sampling=r["_sampled"], engine_date=r.get("date"),
                                    flash_attn=flash_attn(r))
    else:
        est = estimate_speed(model, w, r["_gpu"], r["_host"], r["_ngl"], split=split, pp_tokens=pp_n, sampling=r["_sampled"],
                             engine_date=r.get("date"), flash_attn=flash_attn(r))
    pp = est.pp_at(int((r.get("pp") or {}).get("depth") or 0))  # llama-bench's -d: the batch after that many cached tokens
    tests = (r.get("tg") or {}).get("mean_over")
    if tests:  # the mean of several tests' rates, each decoding after its prompt (LocalScore's figure)
        return statistics.mean(est.tg_at(prompt + generated // 2) for prompt, generated in tests), pp
    return est.tg_tps, pp


def flash_attn(r: dict) -> bool:
    """Whether a row ran with flash attention: as it says, else llama-bench's default when it was built (off until
    `kernel_paths.flash_attn_default_since`, then auto, which turns it on wherever the backend supports it)."""
    if r.get("flash_attn") is not None:
        return bool(r["flash_attn"])
    return not built_before(r.get("date"), load_speed_model()["kernel_paths"]["flash_attn_default_since"])


def split_devices(rows: list[dict]) -> dict[str, str]:
    """device_key -> "fit" | "held-out": alternate within each family, in hash order."""
    families: dict[str, set[str]] = {}
    for r in rows:
        if "_skip" not in r:
            families.setdefault(r["_family"], set()).add(r["_device"])
    role = {}
    for _family, keys in sorted(families.items()):
        ordered = sorted(keys, key=lambda k: hashlib.sha256(k.encode()).hexdigest())
        for k in ordered:
            if k in ALWAYS_HELD_OUT:
                role[k] = "held-out"
            elif k in ALWAYS_FITTED:
                role[k] = "fit"
        free = [k for k in ordered if k not in role]
        # alternate, starting with the half this family has fewer devices in so far
        fitted = sum(1 for k in ordered if role.get(k) == "fit")
        held = sum(1 for k in ordered if role.get(k) == "held-out")
        first = "fit" if fitted <= held else "held-out"
        other = "held-out" if first == "fit" else "fit"
        for i, k in enumerate(free):
            role[k] = first if i % 2 == 0 else other
    return role


def shipped_split(rows: list[dict]) -> dict[str, str]:
    """device_key -> "fit" for the devices the shipped constants were fitted on (speed_model.json's fitted_on), else
    "held-out": a device whose row or specification arrived after the fit is held out, and cannot move another
    device between the halves as a new split would."""
    fitted = set(load_speed_model()["fitted_on"])
    return {r["_device"]: "fit" if r["_device"] in fitted else "held-out" for r in rows if "_skip" not in r}


def on_assumed_bandwidth(r: dict) -> bool:
    """Whether a row's host reads its weights at the fallback bandwidth (a CPU whose specification gives no memory)."""
    return r["_host"].bandwidth_assumed and (r["_gpu"] is None or r["_ngl"] != -1)


def fitting_set(rows: list[dict], role: dict[str, str]) -> tuple[list[dict], list[tuple[dict, str, float]]]:
    """(rows, figures) a fit may use: the fitting half's, less any row priced on the fallback host bandwidth, which
    would fit the fallback rather than a memory's share of its peak (scored with its half, never fitted)."""
    usable = [r for r in rows if "_skip" not in r and role.get(r["_device"]) == "fit" and not on_assumed_bandwidth(r)]
    return usable, observations(usable, role, "fit")


def observations(rows: list[dict], role: dict[str, str], which: str) -> list[tuple[dict, str, float]]:
    obs = []
    for r in rows:
        if "_skip" in r or role.get(r["_device"]) != which:
            continue
        suspect = (r.get("suspect") or {}).get("figures")
        for kind in ("tg", "pp"):
            if suspect in (kind, "both"):
                continue
            fig = r.get(kind)
            if fig and fig.get("tps") and (kind == "tg" or fig.get("n_tokens")):
                obs.append((r, kind, float(fig["tps"])))
    return obs


def errors(obs) -> list[tuple[dict, str, float, float]]:
    out = []
    for r, kind, measured in obs:
        tg, pp = predict(r)
        p = tg if kind == "tg" else pp
        out.append((r, kind, measured, p))
    return out


def summary(errs, kind: str | None = None) -> dict:
    ratios = [p / m for r, k, m, p in errs if kind in (None, k)]
    if not ratios:
        return {"rows": 0}
    within = sum(1 for x in ratios if 0.8 <= x <= 1.2) / len(ratios)
    return {"rows": len(ratios), "within_20pct": round(within, 3), "median_ratio": round(statistics.median(ratios), 3),
            "mean_abs_log_error": round(statistics.mean(abs(math.log(x)) for x in ratios), 3)}


# --- fitting -----------------------------------------------------------------------------------------

MIN_DEVICES = 3  # a family's own efficiency needs this many fitting devices
# Engines whose decode kernels unpack while their loads are in flight (CUDA's mul_mat_vec_q): a weight type's cost is
# the bytes its kernel keeps in flight per SM (unit_bytes_per_cycle per type), with no ALU unpacking term.
PER_QUANT_UNITS = ("cuda",)
MIN_QUANT_DEVICES = 1  # a quant's unpacking cost is its kernel's (bit-twiddling per weight), not a device's: one device measures it
# Memory kinds that share one DRAM efficiency. HBM and GDDR were one constant until 2026-12-03, so that a GPU
# family's DRAM share could not absorb what its SMs keep in flight (the units' cap, unit_bytes_per_cycle): what differs
# between an RTX 4090 (85 % of its GDDR6X in decode) and an A100 or H100 (60 % of their HBM) is that cap, not the DRAM,
# and per-family efficiencies had left the cap unidentified (fitted to its search bound). With the cap fitted, GDDR's
# share alone was refitted (--only gddr): 0.876 -> 0.912 of peak, every held-out summary better or the same (docs/
# planning.md, "GDDR's share of its peak"). A GPU's LPDDR (Jetson, GB10, Thor) keeps the share it had, HBM's: the
# fitting half's one such GPU (the AGX Orin) is bound by its SMs and cannot tell the two apart.
TIED = (("hbm", "gpu_lpddr"),)
GPU_DRAM = ("hbm", "gddr", "gpu_lpddr")
# GPU families whose decode reads a share of their DRAM's peak of their own, not their memory kind's: Pascal's GDDR5
# and GDDR5X cards read 49-60 % of it where Turing's GTX 1660, on GDDR5 too, reads 82 % (docs/planning.md, "Pascal's
# share of its DRAM"). Two fitting devices suffice here: the share is one figure a family, checked on the held-out ones.
OWN_DRAM_SHARE = {"nvidia-pascal": 2}


def _decode_keys(dev, model, weights, engine_date: str | None) -> set[str]:
    """The decode-constant keys a row depends on: on CUDA, the `unit_bytes_per_cycle` entry of each ggml type its
    file stores (`decode_kernel`; Q5_0 counts as Q4_0, Q2_K as Q3_K), elsewhere its file's quantization."""
    if dev.engine in PER_QUANT_UNITS and weights.format == "gguf":
        split = weight_split(load_catalog(), model, weights)
        return {decode_kernel(t, dev, engine_date)[0] for t, _ in split.layer_type_weights}
    return {weights.quant if weights.format == "gguf" else f"mlx-{weights.quant}"}


def parameters(sm: dict, rows: list[dict]) -> list[tuple[list[tuple[dict, str]], float, float]]:
    """([(container, key), ...] set together, low, high) for every fitted constant some fitting row depends on.

    Per-quant unpacking costs and per-family matrix efficiencies get a constant of their own only
    where MIN_DEVICES fitting devices carry them; the rest share the engine's default.
    """
    live = [r for r in rows if "_skip" not in r]
    devices: dict[tuple, set[str]] = {}
    for r in live:
        dev = r["_gpu"] or r["_host"]
        _, w = r["_model"]
        for q in _decode_keys(dev, *r["_model"], r.get("date")):
            devices.setdefault(("quant", dev.engine, q), set()).add(r["_device"])
        if r.get("pp"):
            from qwenctl.kernels import pp_kernel, pp_path

            operand = pp_kernel(w, dev, r.get("date"))[0]
            devices.setdefault(("family", pp_path(dev.family), dev.engine, operand), set()).add(r["_device"])
        devices.setdefault(("engine", dev.engine), set()).add(r["_device"])
        for d in (r["_gpu"], r["_host"]):
            if d:
                devices.setdefault(("memory", d.memory_kind), set()).add(r["_device"])
        devices.setdefault(("family-memory", memory_family(dev.family), dev.memory_kind), set()).add(r["_device"])
    out: list = []
    kinds = {k[1] for k in devices if k[0] == "memory"}
    for kind in sorted(kinds):
        tie = next((t for t in TIED if kind in t), (kind,))
        if kind != tie[0]:
            continue
        out.append(([(sm["memory_efficiency"], k) for k in tie], 0.4, 0.95))
    out.append(([(sm, "sampling_s_per_vocab_entry")], 1e-10, 5e-8))
    if any(r["_gpu"] and r["_gpu"].dies > 1 for r in rows if "_skip" not in r):
        out.append(([(sm, "cross_die_fixed_factor")], 0.01, 2.0))
    if any(r["_gpu"] and geforce_desktop(gpu_spec_by_key(r["_device"]) or {}) for r in live):
        out.append(([(sm["geforce_sustained_clock"], "factor")], 0.9, 1.4))
    for key in sorted(k for k in devices if k[0] == "engine"):
        e = sm["engines"][key[1]]
        if "per_layer_cycles_per_thread" in e:  # a CPU: its barriers cost a cache-line handover per thread
            out.append(([(e, "per_layer_cycles_per_thread")], 2e2, 1e6))
        else:
            out.append(([(e, "per_layer_cycles")], 2e3, 1e6))
        if "per_layer_cycles_unfused" in e:
            out.append(([(e, "per_layer_cycles_unfused")], 2e3, 1e6))
        if "per_layer_no_graph_factor" in e:  # without CUDA graphs every kernel is launched from the host
            out.append(([(e, "per_layer_no_graph_factor")], 1.0, 3.0))
        if "per_row_cycles" in e:  # a matrix row's fixed cycles on a GPU's unit (speed._kernel_rate)
            out.append(([(e, "per_row_cycles")], 1.0, 2000.0))
        if key[1] not in PER_QUANT_UNITS:  # else the median of the quants' own, as for dequant_ops_per_weight
            out.append(([(e["unit_bytes_per_cycle"], "default")], 0.5, 500.0))
        if "pp_constants" not in e:  # an engine that borrows another's prompt constants has no prompt rows to fit them on
            out.append(([(e, "pp_per_layer_cycles")], 1e3, 1e7))
            if "pp_per_layer_cycles_fp16" in e:
                out.append(([(e, "pp_per_layer_cycles_fp16")], 1e3, 1e7))
            for op in ("int8", "fp16"):
                out.append(([(e["pp_efficiency"], op)], 0.005, 1.0))
    for key, devs in sorted(devices.items()):
        if key[0] == "quant" and len(devs) >= MIN_QUANT_DEVICES:
            if key[1] == "cuda" and key[2] == F16_MMV:  # priced by its geometry (kernels.f16_decode_bytes_per_cycle)
                k = sm["engines"]["cuda"]["f16_mmv"]
                out += [([(k, "row_cycles")], 1.0, 2e4), ([(k, "trip_cycles")], 50.0, 1e4)]
            elif key[1] in PER_QUANT_UNITS:
                units = sm["engines"][key[1]]["unit_bytes_per_cycle"]
                units.setdefault(key[2], units["default"])
                out.append(([(units, key[2])], 0.5, 500.0))
            else:
                box = sm["engines"][key[1]]["dequant_ops_per_weight"]
                box.setdefault(key[2], box["default"])
                out.append(([(box, key[2])], 0.1, 30.0))
        elif key[0] == "quant":
            sm["engines"][key[1]].get("dequant_ops_per_weight", {}).pop(key[2], None)  # too few devices: the engine's default
        if key[0] == "family-memory" and (len(devs) >= MIN_DEVICES and key[2] not in GPU_DRAM
                                          or len(devs) >= OWN_DRAM_SHARE.get(key[1], len(devs) + 1)):
            fam = sm["families"].setdefault(key[1], {})
            fam.setdefault("memory_efficiency", sm["memory_efficiency"][key[2]])
            out.append(([(fam, "memory_efficiency")], 0.3, 0.98))
        if key[0] == "family" and len(devs) >= MIN_DEVICES:
            fam = sm["families"].setdefault(key[1], {}).setdefault("pp_efficiency", {})
            fam.setdefault(key[3], sm["engines"][key[2]]["pp_efficiency"][key[3]])
            out.append(([(fam, key[3])], 0.005, 1.0))
    return out


ROBUST_SCALE = 0.2  # log-error where the loss turns from squared to linear: a few suspect published rows
# (an A100 F16 prompt figure 10x below its peers) must not drag a whole engine's constant


def loss(obs) -> float:
    """Mean soft-L1 loss of log(predicted / measured): squared near zero, linear beyond ROBUST_SCALE."""
    total = 0.0
    for r, kind, measured in obs:
        tg, pp = predict(r)
        z = math.log((tg if kind == "tg" else pp) / measured) / ROBUST_SCALE
        total += 2 * (math.sqrt(1 + z * z) - 1)
    return total / max(len(obs), 1)


def fit(rows: list[dict], obs, sweeps: int = 5, only: str | None = None, kernel: str | None = None) -> None:
    """Coordinate descent in log space: each constant in turn, golden-section search on its range.

    ``only``: one group of constants, the others kept, for a change to one part of the model that should
    move nothing else: "prompt" (per-layer cycles and matrix efficiencies), "cuda-prompt" (CUDA's alone: its per-layer
    cycles of each prompt kernel path and the matrix efficiencies of its engine and NVIDIA's paths), "cpu-decode" (the CPU engine's
    decode constants and the DDR / LPDDR efficiencies, which only CPUs use), "gpu-decode" (CUDA's, Metal's and
    MLX's decode constants and the HBM / GDDR / Apple efficiencies), "gddr" or "lpddr" (that memory's share of its peak alone),
    "gpu-family-memory" (the share of their DRAM's peak of the GPU families in OWN_DRAM_SHARE, alone),
    "geforce-clock" (how far above its rated boost a desktop GeForce runs under load), "cuda-no-graph" (how much more a
    decoded layer costs where llama.cpp runs CUDA without graphs, per_layer_no_graph_factor) or "cuda-kernels" (the bytes
    each CUDA decode kernel keeps in flight, unit_bytes_per_cycle, and a matrix row's fixed cycles, per_row_cycles, with
    the memory and per-layer constants kept: for rows that measure the quantized kernels); ``kernel`` narrows that to
    one weight type's constant (and its tie's), for a type whose first row where the SMs bind arrived after the others
    were fitted, or names the F16 kernel, whose two cycle counts (f16_mmv) only F16 and BF16 rows inform and so are
    fitted only on their own: they lie in a flat valley (session 54: 18.5 and 102 row cycles within 0.5 % of each
    other's loss on the F16 rows), where a refit of the quantized kernels would move them for nothing."""
    sm = load_speed_model()  # the cached dict the model reads: changed in place
    params = parameters(sm, rows)
    if only == "prompt":
        boxes = {id(e["pp_efficiency"]) for e in sm["engines"].values() if "pp_efficiency" in e}
        boxes |= {id(f["pp_efficiency"]) for f in sm["families"].values() if "pp_efficiency" in f}
        params = [p for p in params if all(key.startswith("pp_per_layer_cycles") or id(box) in boxes for box, key in p[0])]
    elif only == "cpu-decode":
        cpu = sm["engines"]["cpu"]
        cpu_families = {id(f) for name, f in sm["families"].items() if name.startswith("cpu-")}

        def cpu_decode(box: dict, key: str) -> bool:
            return ((box is sm["memory_efficiency"] and key in ("ddr", "lpddr")) or box is cpu["dequant_ops_per_weight"]
                    or (box is cpu and key == "per_layer_cycles_per_thread") or box is cpu["unit_bytes_per_cycle"]
                    or (id(box) in cpu_families and key == "memory_efficiency"))

        params = [p for p in params if all(cpu_decode(box, key) for box, key in p[0])]
    elif only == "gpu-decode":
        gpus = [sm["engines"][name] for name in ("cuda", "metal", "mlx")]
        apple_families = {id(f) for name, f in sm["families"].items() if name.startswith("apple-")}

        def gpu_decode(box: dict, key: str) -> bool:
            return ((box is sm["memory_efficiency"] and key in ("hbm", "gddr", "gpu_lpddr", "apple"))
                    or any(box is e.get("dequant_ops_per_weight") for e in gpus)
                    or (any(box is e for e in gpus) and key in ("per_layer_cycles", "per_layer_cycles_unfused",
                                                                "per_layer_no_graph_factor", "per_row_cycles"))
                    or any(box is e["unit_bytes_per_cycle"] for e in gpus) or box is sm["engines"]["cuda"]["f16_mmv"]
                    or (id(box) in apple_families and key == "memory_efficiency")
                    or (box is sm and key == "cross_die_fixed_factor"))

        params = [p for p in params if all(gpu_decode(box, key) for box, key in p[0])]
    elif only == "cuda-prompt":
        cuda = sm["engines"]["cuda"]
        nvidia = {id(f["pp_efficiency"]) for name, f in sm["families"].items() if name.startswith("nvidia-") and "pp_efficiency" in f}
        params = [p for p in params if all((box is cuda and key.startswith("pp_per_layer_cycles")) or box is cuda["pp_efficiency"]
                                           or id(box) in nvidia for box, key in p[0])]
    elif only == "geforce-clock":
        params = [p for p in params if all(box is sm["geforce_sustained_clock"] for box, _ in p[0])]
    elif only == "cuda-no-graph":
        params = [p for p in params if all(key == "per_layer_no_graph_factor" for _, key in p[0])]
    elif only in ("gddr", "lpddr"):
        params = [p for p in params if all(box is sm["memory_efficiency"] and key == only for box, key in p[0])]
    elif only == "gpu-family-memory":
        own = {id(sm["families"][f]) for f in OWN_DRAM_SHARE if f in sm["families"]}
        params = [p for p in params if all(id(box) in own and key == "memory_efficiency" for box, key in p[0])]
    elif only == "cuda-kernels":
        cuda, cuda_units = sm["engines"]["cuda"], sm["engines"]["cuda"]["unit_bytes_per_cycle"]
        params = [p for p in params if all((box is cuda_units and kernel in (None, key.lower()))
                                           or (box is cuda["f16_mmv"] and kernel == F16_MMV.lower())
                                           or (box is cuda and key == "per_row_cycles" and kernel is None) for box, key in p[0])]
        if not params:
            raise SystemExit(f"speed_model_fit.py: no fitting row decodes {kernel} on CUDA: nothing to fit")
    for sweep in range(sweeps):
        for targets, lo, hi in params:
            a, b = math.log(lo), math.log(hi)
            g = (math.sqrt(5) - 1) / 2

            def f(x: float, targets=targets) -> float:
                for box, key in targets:
                    box[key] = math.exp(x)
                return loss(obs)

            c, d = b - g * (b - a), a + g * (b - a)
            fc, fd = f(c), f(d)
            for _ in range(24):
                if fc < fd:
                    b, d, fd = d, c, fc
                    c = b - g * (b - a)
                    fc = f(c)
                else:
                    a, c, fc = c, d, fd
                    d = a + g * (b - a)
                    fd = f(d)
            for box, key in targets:
                box[key] = float(f"{math.exp((a + b) / 2):.4g}")
        if only not in ("prompt", "cuda-prompt"):  # a prompt refit leaves the decode tables alone
            for e in sm["engines"].values():  # a quant without a constant of its own: the median of the fitted ones
                for table in (e.get("dequant_ops_per_weight", {}), e["unit_bytes_per_cycle"]):
                    own = [v for k, v in table.items() if k != "default"]
                    if own:
                        table["default"] = float(f"{statistics.median(own):.4g}")
        print(f"sweep {sweep + 1}: fitting loss {loss(obs):.4f}", file=sys.stderr)


def set_uncertainties(obs) -> None:
    """Each engine's slow end: 1 - the lower quartile of measured/predicted tg over its fitting rows,
    so three devices in four run at least a plan's "at least" figure (the planner's speed floor
    holds against it)."""
    sm = load_speed_model()
    by_engine: dict[str, list[float]] = {}
    for r, kind, measured in obs:
        if kind == "tg":
            tg, _ = predict(r)
            by_engine.setdefault((r["_gpu"] or r["_host"]).engine, []).append(measured / tg)
    for engine, ratios in by_engine.items():
        ratios.sort()
        q25 = ratios[max(0, int(0.25 * len(ratios)) - 1)] if len(ratios) >= 5 else 0.7
        sm["engines"][engine]["uncertainty"] = round(min(max(1 - q25, 0.1), 0.5), 2)


def published_cpu_hosts() -> dict[str, dict]:
    """Every CPU the published files specify (their `cpu_hosts`), by key: a CPU is specified once, in the file its
    first row was collected in. A host whose bandwidth was measured on it (a cloud VM of SpareCores', the development
    VM) is that one machine, not its CPU's specification: only its own file's rows are priced on it."""
    hosts: dict[str, dict] = {}
    for path in sorted(HERE.glob("published_*.json")):
        hosts.update({k: h for k, h in json.loads(path.read_text()).get("cpu_hosts", {}).items()
                      if not (h.get("memory") or {}).get("measured")})
    return hosts


def with_shipped_tables(later: dict, shipped: dict) -> dict:
    """A later file's rows with the shipped file's model shapes and device aliases, and the later file's own shapes
    (the models it alone measured) over them."""
    return {**later, "shapes": {**shipped.get("shapes", {}), **later.get("shapes", {})},
            "device_aliases": shipped.get("device_aliases", {})}


def prepared_later(later: dict, shipped: dict) -> tuple[list[dict], dict]:
    """A later file's rows prepared as the shipped file's are, and the CPU hosts (the published ones and the file's own)
    they are priced on."""
    cpus = {**published_cpu_hosts(), **later.get("cpu_hosts", {})}
    return prepare(with_shipped_tables(later, shipped), cpus), cpus


def decode_rows(path: Path) -> tuple[list[dict], dict]:
    """The rows of a later file that a split script scores (a specification, a decode figure, nothing flagged suspect),
    with the CPU hosts they are priced on."""
    rows, cpus = prepared_later(json.loads(path.read_text()), json.loads(DATA.read_text()))
    return [r for r in rows if "_skip" not in r and not r.get("suspect") and (r.get("tg") or {}).get("tps")], cpus


def decode_score(rows: list[dict], host: Callable[[dict], DeviceSpeed]) -> tuple[int, float]:
    """Decode figures within ±20 % and the median predicted/measured, each row's host replaced by ``host(row)`` (a
    candidate figure set on it)."""
    ratios = [predict({**r, "_host": host(r)})[0] / r["tg"]["tps"] for r in rows]
    return sum(0.8 <= x <= 1.2 for x in ratios), statistics.median(ratios)


def score_later_rows(path: Path, doc: dict) -> None:
    """The shipped constants on rows collected after they were fitted: every row is held out, by device and
    at the thread count qwenctl itself would run (the performance cores, else the physical cores)."""
    later = json.loads(path.read_text())
    if not later.get("rows") or any("backend" not in r for r in later["rows"]):
        sys.exit(f"{path.name}: not a file of speed rows: every row must name its backend, as in {DATA.name}")
    rows, cpus = prepared_later(later, doc)
    errs = errors(observations(rows, {r["_device"]: "later" for r in rows if "_skip" not in r}, "later"))

    def own_threads(r: dict) -> bool:  # the row's threads are those machine.threads would pick for its CPU
        hw = cpu_hardware({**r, "threads": None}, cpus)
        return hw is not None and r.get("threads") == threads(hw)

    print(f"{path.name}: {len(rows)} rows, {sum(1 for r in rows if '_skip' in r)} without a specification, "
          f"{sum(1 for r in rows if r.get('suspect'))} with suspect figures (left out)")
    for label, subset in (("every thread count", errs), ("qwenctl's thread count", [e for e in errs if own_threads(e[0])])):
        for k in ("tg", "pp"):
            s = summary(subset, k)
            if s["rows"]:
                print(f"  {label:22s} {k}: {s['rows']:3d} figures, {s['within_20pct']:.0%} within ±20 %, median {s['median_ratio']:.3f}")
    fitted = set(load_speed_model()["fitted_on"])
    groups = {"devices the constants were fitted on": lambda r: r["_device"] in fitted,
              "devices never fitted": lambda r: r["_device"] not in fitted,
              **{f"{b}, {m}": (lambda r, b=b, m=m: (r["backend"], r["model"]) == (b, m))
                 for b, m in sorted({(r["backend"], r["model"]) for r, *_ in errs})}}
    for label, member in groups.items():
        s = summary([e for e in errs if member(e[0])], "tg")
        if s["rows"]:
            devices = len({r["_device"] for r, *_ in errs if member(r)})
            print(f"  {label:38s} tg: {s['rows']:3d} figures on {devices:3d} devices, {s['within_20pct']:.0%} within ±20 %, "
                  f"median {s['median_ratio']:.3f}")
    for dev in sorted({r["_device"] for r, *_ in errs}):
        cells = [(k, [p / m for r, kk, m, p in errs if r["_device"] == dev and kk == k]) for k in ("tg", "pp")]
        print(f"  {dev:30s} " + "   ".join(f"{k} {len(v):2d} rows, ratio {min(v):.2f}-{max(v):.2f} (median {statistics.median(v):.2f})"
                                             for k, v in cells if v))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--fit", action="store_true", help="refit the constants on the fitting half (the shipped split's)")
    ap.add_argument("--only", choices=("prompt", "cuda-prompt", "cpu-decode", "gpu-decode", "cuda-kernels", "gddr", "lpddr", "geforce-clock", "gpu-family-memory", "cuda-no-graph"), help="with --fit: refit one group of constants only")
    ap.add_argument("--kernel", help="with --only cuda-kernels: refit this ggml type's constant only (e.g. Q8_0; F16: the F16 kernel's cycle counts)")
    ap.add_argument("--resplit", action="store_true",
                    help="deal the devices into halves anew (by family, in hash order) instead of keeping the shipped split")
    ap.add_argument("--rows", action="store_true")
    ap.add_argument("--score", type=Path, help="rows collected after the fit: score the shipped constants on them")
    args = ap.parse_args()
    if args.kernel and args.only != "cuda-kernels":
        ap.error("--kernel goes with --fit --only cuda-kernels")
    doc = json.loads(DATA.read_text())
    if args.score:
        score_later_rows(args.score, doc)
        return
    cpus = doc.get("cpu_hosts", {})
    rows = prepare(doc, cpus)
    role = split_devices(rows) if args.resplit else shipped_split(rows)
    fit_obs, held_obs = observations(rows, role, "fit"), observations(rows, role, "held-out")
    skipped = [r for r in rows if "_skip" in r]
    if args.fit:
        # constants exist only where fitting rows are
        fit(*fitting_set(rows, role), only=args.only, kernel=args.kernel and args.kernel.lower())
        set_uncertainties(fit_obs)
    fit_err, held_err = errors(fit_obs), errors(held_obs)
    families = sorted({r["_family"] for r in rows if "_skip" not in r})
    report = {
        "devices": {"fit": sorted(k for k, v in role.items() if v == "fit"),
                    "held_out": sorted(k for k, v in role.items() if v == "held-out")},
        "skipped_rows": len(skipped),
        "fit": {"all": summary(fit_err), "tg": summary(fit_err, "tg"), "pp": summary(fit_err, "pp")},
        "held_out": {"all": summary(held_err), "tg": summary(held_err, "tg"), "pp": summary(held_err, "pp")},
        "held_out_by_family": {f: {"tg": summary([e for e in held_err if e[0]["_family"] == f], "tg"),
                                   "pp": summary([e for e in held_err if e[0]["_family"] == f], "pp")} for f in families},
        "held_out_rows": [{"id": r["id"], "device": r["_device"], "family": r["_family"], "kind": k,
                           "measured": m, "predicted": round(p, 2), "ratio": round(p / m, 3)} for r, k, m, p in held_err],
    }
    if args.fit:
        sm = load_speed_model()
        # a group's refit adds to the record of the constants it kept; a whole fit starts it anew
        group = f"{args.only} ({args.kernel})" if args.kernel else args.only
        sm["version"] = (f"{sm['version']}; {group} refitted {date.today().isoformat()}" if args.only
                         else "fitted " + doc.get("collected", ""))
        sm["fitted_on"] = report["devices"]["fit"]
        sm["held_out"] = {"devices": report["devices"]["held_out"], **{k: report["held_out"][k] for k in ("tg", "pp")}}
        MODEL_FILE.write_text(json.dumps(sm, indent=1) + "\n")
        RESULTS.write_text(json.dumps(report, indent=1) + "\n")
    suspect = sum(1 for r in rows if r.get("suspect"))
    print(f"devices: {len(report['devices']['fit'])} fitting, {len(report['devices']['held_out'])} held out; "
          f"{len(fit_obs)} fitting and {len(held_obs)} held-out figures; {len(skipped)} rows without a specification, "
          f"{suspect} with figures flagged as suspect when collected (left out)")
    for half in ("fit", "held_out"):
        for k in ("tg", "pp", "all"):
            s = report[half][k]
            if s["rows"]:
                print(f"{half:9s} {k:3s}: {s['rows']:4d} figures, {s['within_20pct']:.0%} within ±20 %, median predicted/measured {s['median_ratio']:.3f}")
    print("held out, by family (tg | pp: figures, within ±20 %, median ratio):")
    for f, s in report["held_out_by_family"].items():
        cells = [f"{s[k]['rows']:3d} {s[k]['within_20pct']:.0%} {s[k]['median_ratio']:.2f}" if s[k]["rows"] else "  -" for k in ("tg", "pp")]
        print(f"  {f:24s} {cells[0]:16s} | {cells[1]}")
    if args.rows:
        for e in report["held_out_rows"]:
            print(f"  {e['id'][:60]:60s} {e['kind']} {e['measured']:9.1f} {e['predicted']:9.1f} {e['ratio']:.2f}")


if __name__ == "__main__":
    main()
