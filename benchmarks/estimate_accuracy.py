"""Estimate accuracy: predicted vs measured memory (and tok/s) of real llama.cpp loads.

    python benchmarks/estimate_accuracy.py [--sizes 0.5B,1.5B] [--quants Q4_K_M,Q8_0] [--models-dir DIR]
        [--model PATH ...] [--cases 2048:f16:0,8192:f16:0,32768:f16:1,32768:q8_0:1] [--gpu | --cpu-alone]
        [--fill 1024] [--bandwidth 3.35TB/s] [--json-out FILE] [--markdown]
    python benchmarks/estimate_accuracy.py --fit FILE.json ...        # constants that fit the rows
    python benchmarks/estimate_accuracy.py --repredict FILE.json ...  # old measurements, current constants

Each case (model x n_ctx x KV cache type x flash attention) runs in a fresh subprocess: it loads
the GGUF through qwenctl's own backend (``load_backend("llama.cpp", ...)``), prefills ``--fill``
random prompt tokens (at least one full 512-token micro-batch, so the compute buffer is used) and
decodes 16 tokens, then measures. The prediction is ``qwenctl.predict.predict_for_file`` for the same
file and options on this machine's ``detect()`` (or --bandwidth), i.e. what `qwenctl plan` and
`qwenctl bench` show, with memory and decoding priced at the depth measured (before 2026-12-06 the tg column compared
an empty context's rate with one measured after the prefill); where detect() cannot tell the host's bandwidth it is
measured first, as `qwenctl run` does (the H200 machine's rows before 2026-12-01 predicted splits on the assumed figure).

What "memory" means (the planner's definition, measured the same way):

* host (``ram`` pool): the resident memory the process needs, absolute (the planner's pool includes
  the Python runtime): anonymous RSS + file-backed RSS of the mmap'd GGUF, minus the file pages of
  tensors llama.cpp copied into its CPU repack buffer (it reads them once at load, then uses the
  anonymous copy; those pages are clean and reclaimable, so counting them would count the weights
  twice). Residency is read with mincore(2). llama.cpp's compute buffer is malloc'd for the worst
  case but only touched as used, so RSS is measured after real work at a known depth and the
  prediction is made for that depth (``estimate_memory(..., depth=)``); the planner predicts for
  depth = n_ctx.
* GPU (``vram`` pool, ``--gpu``: every layer offloaded): NVML used memory of the device after the
  work minus before the load (the device-wide rise: NVML's per-process query crashed on the GPU machine), CUDA context
  included, as cudaMalloc commits whole buffers.

Models: ``--models-dir`` holds files named as ``qwenctl.testing.models.shaped_gguf`` names them
(``qwen2.5-0.5b-<key>-s0-v1-Q4_K_M.gguf``); missing ones are generated there unless --no-generate.
``--model`` adds explicit paths. Prints a table and writes every figure to --json-out, including
llama.cpp's own buffer sizes per case. How the constants are fitted: docs/planning.md, "Calibration".
"""

from __future__ import annotations

import argparse
import ctypes
import json
import logging
import os
import random
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

MiB = 2**20
DEFAULT_CPU_CASES = "2048:f16:0,8192:f16:0,32768:f16:1,32768:q8_0:1"
DEFAULT_GPU_CASES = "2048:f16:0,8192:f16:0,8192:f16:1,32768:f16:1,32768:q8_0:1"
_BUFFER = re.compile(r"(\S+)\s+(model|KV|compute|output|RS) buffer size =\s+([0-9.]+) MiB")


# --- worker: one case in its own process -------------------------------------------------------

def _status() -> dict[str, int]:
    out = {}
    with open("/proc/self/status") as fh:
        for line in fh:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM", "RssAnon", "RssFile"):
                out[key] = int(value.split()[0]) * 1024
    return out


def _smaps_groups() -> dict[str, dict[str, int]]:
    """Resident and anonymous bytes of this process's mappings, summed per file name ([anon] for unnamed ones),
    to tell what a CUDA build's host memory is: the driver's and libraries' mappings, pinned buffers, heap."""
    groups: dict[str, dict[str, int]] = {}
    name = "?"
    with open("/proc/self/smaps") as fh:
        for line in fh:
            head = line.split()
            if "-" in head[0] and len(head) >= 5 and not head[0].endswith(":"):
                name = os.path.basename(head[5]) if len(head) > 5 else "[anon]"
                groups.setdefault(name, {"maps": 0, "rss": 0, "anonymous": 0, "locked": 0})["maps"] += 1
            elif head[0] in ("Rss:", "Anonymous:", "Locked:"):
                groups[name][head[0][:-1].lower()] += int(head[1]) * 1024
    return {k: v for k, v in groups.items() if v["rss"] >= MiB}


def _checkpoint(mem) -> dict[str, int | None]:
    status = _status()
    return {"rss_anon": status["RssAnon"], "rss_file": status["RssFile"], "gpu_used": mem.gpu_used_bytes()}


_POOL_LINE = re.compile(r"cuda pool\[\d+\]: (allocated|freed) (\d+) bytes")


def pool_peaks(trace: str) -> dict:
    """ggml's CUDA memory pool as a build with DEBUG_CUDA_MALLOC traces it (one line per allocation and free, on the
    C stdout): per phase (the "== phase" markers the worker writes), the most bytes live at once and the sizes live at
    that moment. The VMM pool maps physical memory for that peak, rounded up to its granularity, and never gives it
    back, so the peak is what the pool holds; llama.cpp logs no line for it."""
    used = 0
    live: list[int] = []
    phases: dict[str, dict] = {}
    phase = "load"
    for line in trace.splitlines():
        if line.startswith("== "):
            phase = line[3:].strip()
            continue
        m = _POOL_LINE.search(line)
        if not m:
            continue
        size = int(m.group(2))
        if m.group(1) == "allocated":
            used += size
            live.append(size)
        else:
            used -= size
            live.remove(size)
        peak = phases.setdefault(phase, {"peak_bytes": 0, "live_at_peak": [], "allocations": 0})
        peak["allocations"] += m.group(1) == "allocated"
        if used > peak["peak_bytes"]:
            peak.update(peak_bytes=used, live_at_peak=sorted(live, reverse=True))
    return phases


def load_options(case: dict):
    """The case's LoadOptions. ``cpu_alone``: no GPU joins the load (LoadOptions.cpu_alone, as a plan on the CPU loads
    on a machine with a GPU): a CUDA build then starts its runtime on the host but no context on any GPU."""
    from qwenctl.backends import LoadOptions

    alone = case.get("cpu_alone", False)
    return LoadOptions(n_ctx=case["n_ctx"], n_gpu_layers=0 if alone else case.get("ngl", -1 if case["gpu"] else 0),
                       flash_attn=case["flash_attn"], kv_cache_type=case["kv_cache_type"], op_offload=False if alone else None)


def worker(case: dict) -> dict:
    lines: list[str] = []
    trace_fd = saved_stdout = None
    libc = ctypes.CDLL(None)
    if case.get("pool_trace"):  # a DEBUG_CUDA_MALLOC build printf()s the pool's traffic: into a file, not the JSON
        trace_fd = os.open(case["pool_trace"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        saved_stdout = os.dup(1)
        os.dup2(trace_fd, 1)

    def phase(name: str) -> None:
        if trace_fd is not None:
            libc.fflush(None)
            os.write(1, f"== {name}\n".encode())

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            lines.append(record.getMessage())

    log = logging.getLogger("qwenctl.llama")
    log.setLevel(logging.DEBUG)
    log.addHandler(Keep())
    log.propagate = False
    from qwenctl.backends import load_backend
    from qwenctl.backends import memory as mem

    path = Path(case["path"])
    gpu_before = mem.gpu_used_bytes()
    options = load_options(case)
    checkpoints = {"before load": _checkpoint(mem)} if case.get("breakdown") else None
    session = load_backend("llama.cpp", path, options)
    try:
        if checkpoints is not None:
            checkpoints["loaded"] = _checkpoint(mem)
        phase("prefill")
        rng = random.Random(0)
        fill = min(case["fill"], session.n_ctx - 32)
        session.reset()
        t0 = time.perf_counter()
        session.prefill([rng.randrange(session.n_vocab) for _ in range(fill)])
        pp = fill / (time.perf_counter() - t0)
        if checkpoints is not None:
            checkpoints["prefilled"] = _checkpoint(mem)
        phase("decode")
        t0 = time.perf_counter()
        for _ in range(16):
            session.decode_one(rng.randrange(session.n_vocab))
        tg = 16 / (time.perf_counter() - t0)
        status = _status()
        device = mem.gpu_used_bytes()
        n_gpu_layers = session.n_gpu_layers
        reclaimable = session.memory().reclaimable_bytes  # while the model is still mapped
        smaps = _smaps_groups() if checkpoints is not None else None
    finally:
        session.close()
        if trace_fd is not None:
            libc.fflush(None)
            os.dup2(saved_stdout, 1)
            os.close(trace_fd)
    pool = pool_peaks(Path(case["pool_trace"]).read_text()) if trace_fd is not None else None
    if case.get("log"):
        Path(case["log"]).write_text("\n".join(lines))
    buffers: dict[str, float] = {}
    for dev, kind, mib in _BUFFER.findall("\n".join(lines)):
        key = f"{dev} {kind}"
        buffers[key] = buffers.get(key, 0.0) + float(mib)
    return {
        "fill": fill, "pp_tps": pp, "tg_tps": tg, "n_gpu_layers": n_gpu_layers,
        "rss_bytes": status["VmRSS"], "hwm_bytes": status["VmHWM"], "rss_anon_bytes": status["RssAnon"],
        "rss_file_bytes": status["RssFile"], "repacked_tensors": len(session.repacked), "repacked_resident_file_bytes": reclaimable,
        "host_bytes": status["VmRSS"] - reclaimable,
        "gpu_device_delta_bytes": (device - gpu_before) if device is not None and gpu_before is not None else None,
        "llama_buffers_mib": buffers,
        # graphs ggml's CUDA backend captured (estimate.cuda_graph_bytes): it logs each one at debug level
        "cuda_graphs": sum("CUDA graph warmup complete" in line for line in lines),
        **({"checkpoints": checkpoints, "smaps": smaps} if checkpoints is not None else {}),
        **({"cuda_pool": pool} if pool is not None else {}),
    }


# --- parent: cases, predictions, table -----------------------------------------------------------

def model_paths(args) -> list[tuple[str, Path]]:
    from qwenctl.testing import models

    out = [(Path(p).stem, Path(p)) for p in args.model]
    if args.models_dir:
        for size in filter(None, args.sizes.split(",")):
            for quant in filter(None, args.quants.split(",")):
                shape = models.qwen25_shape(size)
                name = f"{shape.name}-{shape.key()}-s0-v{models.FORMAT_VERSION}-{quant}.gguf"
                path = Path(args.models_dir) / name
                if not path.exists():
                    if args.no_generate:
                        print(f"skip {size} {quant}: {path} missing", file=sys.stderr)
                        continue
                    print(f"generating {path.name} ...", file=sys.stderr, flush=True)
                    path = models.shaped_gguf(Path(args.models_dir), size, quant)
                out.append((f"{size} {quant}", path))
    return out


def parse_cases(text: str) -> list[tuple[int, str, bool]]:
    cases = []
    for item in filter(None, text.split(",")):
        ctx, kv, fa = item.split(":")
        cases.append((int(ctx), kv, fa == "1"))
    return cases


def err(predicted: int | None, measured: int | None) -> float | None:
    return (predicted - measured) / measured * 100 if predicted is not None and measured else None


def fit(docs: list[dict]) -> dict:
    """Constants of calibration.json "memory" that make the measured rows agree, from --json-out files.

    CPU rows (host memory): measured - predicted weights - predicted KV = the rest, modelled as
    host_runtime_bytes + host_vocab_bytes_per_token x n_vocab + 4 x n_ubatch x cpu_ffn_activation_factor
    x intermediate_size, fitted by least squares over the flash-attention rows (where no attention
    scores are materialized); it takes rows of three shapes, e.g. the tiny model, 0.5B and 1.5B.
    GPU rows: measured - (weights + KV + compute predicted) per pool. VRAM: the CUDA context and pool,
    the median over the flash-attention rows = cuda_context_bytes, and what the rows without flash
    attention need beyond it (cuBLAS) = cuda_no_flash_attn_bytes. Host: the kernels CUDA loaded, as
    ``_fit_cuda_host`` says. The compute-buffer formula itself is checked against the sizes llama.cpp
    logged (llama_buffers_mib). Rows of a CUDA build loaded with no GPU device (--cpu-alone, on a machine with NVIDIA's
    driver: machine.cuda_build) are not CPU rows: what they hold beyond the CPU rule's weights, KV cache, compute
    buffer and runtime is the CUDA runtime's, their median = cuda_runtime_host_bytes.
    """
    import numpy as np

    from qwenctl.estimate import load_calibration
    from qwenctl.hardware.facts import hardware_from_dict
    from qwenctl.machine import cuda_build

    rows = [r for doc in docs for r in doc["rows"] if "measured" in r]
    out: dict = {}
    runtime = [r for doc in docs if cuda_build(hardware_from_dict(doc["machine"])) for r in doc["rows"]
               if "measured" in r and r.get("cpu_alone")]
    if runtime:
        cal = load_calibration()["memory"]
        out["cuda_runtime_host_bytes"] = int(statistics.median(
            r["measured"]["host_bytes"] - _pool_bytes(r, "ram", overhead=False)
            - cal["host_runtime_bytes"] - cal["host_vocab_bytes_per_token"] * r["predicted"]["arch"]["vocab_size"]
            for r in runtime))
    cpu = [r for r in rows if not r["gpu"] and r["flash_attn"] and r not in runtime]
    if cpu:
        a, y = [], []
        for r in cpu:
            ram = next(p for p in r["predicted"]["memory"] if p["pool"] == "ram")
            arch = r["predicted"]["arch"]
            a.append([1.0, arch["vocab_size"], 4 * 512 * arch["intermediate_size"]])
            y.append(r["measured"]["host_bytes"] - ram["weights_bytes"] - ram["kv_bytes"])
        (r0, per_token, factor), *_ = np.linalg.lstsq(np.array(a), np.array(y, dtype=float), rcond=None)
        residual = np.array(y) - np.array(a) @ np.array([r0, per_token, factor])
        out.update(host_runtime_bytes=int(r0), host_vocab_bytes_per_token=round(float(per_token), 1),
                   cpu_ffn_activation_factor=round(float(factor), 2), cpu_rows=len(y),
                   cpu_max_residual_mib=round(float(abs(residual).max()) / MiB, 2))
    gpu = [r for r in rows if r["gpu"] and any(p["pool"] == "vram" for p in r["predicted"]["memory"])]
    if gpu:
        out.update(_fit_vram(gpu))
        out.update(_fit_cuda_host(gpu))
        out["gpu_rows"] = len(gpu)
    return out


def _pool_bytes(row: dict, pool: str, overhead: bool = True) -> int:
    """A row's predicted bytes of one pool: weights, KV cache, compute buffer and (``overhead``) the rest."""
    p = next(p for p in row["predicted"]["memory"] if p["pool"] == pool)
    return p["weights_bytes"] + p["kv_bytes"] + p["compute_bytes"] + (p["overhead_bytes"] if overhead else 0)


def _fit_vram(gpu: list[dict]) -> dict:
    """VRAM beyond the predicted weights, KV cache and compute buffer, every layer offloaded: the median over
    the flash-attention rows = cuda_context_bytes, and what the rows without it need beyond (cuBLAS)."""
    rest: dict[bool, list[int]] = {}
    for r in gpu:
        if r.get("ngl", -1) == 0:
            continue
        p = next(p for p in r["predicted"]["memory"] if p["pool"] == "vram")
        rest.setdefault(r["flash_attn"], []).append(
            r["measured"]["gpu_device_delta_bytes"] - p["weights_bytes"] - p["kv_bytes"] - p["compute_bytes"])
        logged = {k: v for k, v in r["measured"]["llama_buffers_mib"].items() if k.startswith("CUDA")}
        print(f"{r['label']} ctx {r['n_ctx']} {r['kv_cache_type']} fa{int(r['flash_attn'])}: predicted compute "
              f"{p['compute_bytes'] / MiB:.0f} MiB; llama.cpp logged {logged}", file=sys.stderr)
    out: dict = {}
    if True in rest:
        base = int(statistics.median(rest[True]))
        out.update(cuda_context_bytes=base, cuda_context_range_mib=[round(min(rest[True]) / MiB), round(max(rest[True]) / MiB)])
        if False in rest:
            out["cuda_no_flash_attn_bytes"] = int(statistics.median(rest[False])) - base
    return out


def _matrix_types(r: dict) -> int:
    """Distinct types among the matrices multiplied per token: from the file when it is at hand, else from
    llama.cpp's recipe for the row's quant (the label: "0.5B Q4_K_M")."""
    from qwenctl.catalog import load_catalog
    from qwenctl.estimate import split_from_tensors

    path = Path(r["path"])
    if path.exists():
        from qwenctl.backends.gguf_check import read_parts
        from qwenctl.predict import tensor_table

        return split_from_tensors(tensor_table(read_parts(path)), 1).matrix_types
    size, quant = r["label"].split()
    catalog = load_catalog()
    model = catalog.model(size)
    weights = next(w for w in model.weights if w.format == "gguf" and w.label == quant)
    return len(catalog.matrix_types(model, weights))


def _fit_cuda_host(gpu: list[dict]) -> dict:
    """The constants of ``qwenctl.estimate.cuda_host_bytes`` from the rows' host memory beyond the CPU runtime
    (current constants), the weights and KV cache predicted and the pinned compute buffer (current rule):

    1. every layer offloaded, flash attention: least squares over [1, matrix types, quantized KV]
       = cuda_host_bytes, cuda_host_bytes_per_matrix_type, cuda_quantized_kv_host_bytes;
    2. every layer offloaded, no flash attention: what is left beyond 1, over [1, n_heads x head_dim]
       = cuda_no_flash_attn_host_bytes, cuda_no_flash_attn_host_bytes_per_width;
    3. no layer offloaded, flash attention: the median less the quantized-KV term = cuda_no_layer_host_bytes;
    4. no layer offloaded, no flash attention: the median of what 2 predicts beyond what is left
       = cuda_no_flash_attn_decode_host_bytes (the cuBLAS kernels of decode's products, which run on the CPU).
    """
    import numpy as np

    from qwenctl.catalog import Architecture
    from qwenctl.estimate import cuda_host_compute_bytes, load_calibration

    cal = load_calibration()["memory"]
    full_fa: list[tuple] = []
    full_nofa: list[tuple] = []
    none_fa: list[tuple] = []
    none_nofa: list[tuple] = []
    groups = {(True, True): full_fa, (True, False): full_nofa, (False, True): none_fa, (False, False): none_nofa}
    for r in gpu:
        arch = Architecture(**r["predicted"]["arch"])
        ram = next(p for p in r["predicted"]["memory"] if p["pool"] == "ram")
        runtime = cal["host_runtime_bytes"] + cal["host_vocab_bytes_per_token"] * arch.vocab_size
        offloaded = r.get("ngl", -1) != 0
        rest = (r["measured"]["host_bytes"] - ram["weights_bytes"] - ram["kv_bytes"] - runtime
                - cuda_host_compute_bytes(arch, r["n_ctx"], r["flash_attn"])
                - (cal["cuda_host_bytes_per_gpu_layer"] * arch.n_layers if offloaded else 0))  # measured apart (hostgraphs)
        row = (rest, _matrix_types(r), float(r["kv_cache_type"] != "f16"), arch.n_heads * arch.head_dim)
        groups[offloaded, r["flash_attn"]].append(row)
    out: dict = {}
    if len(full_fa) >= 3:
        a = np.array([[1.0, types, kvq] for _, types, kvq, _ in full_fa])
        (base, per_type, kvq), *_ = np.linalg.lstsq(a, np.array([x[0] for x in full_fa], dtype=float), rcond=None)
        out.update(cuda_host_bytes=int(base), cuda_host_bytes_per_matrix_type=int(per_type), cuda_quantized_kv_host_bytes=int(kvq))
        if len(full_nofa) >= 2:
            a = np.array([[1.0, width] for *_, width in full_nofa])
            y = np.array([rest - base - per_type * types for rest, types, _, _ in full_nofa])
            (cublas, per_width), *_ = np.linalg.lstsq(a, y, rcond=None)
            out.update(cuda_no_flash_attn_host_bytes=int(cublas), cuda_no_flash_attn_host_bytes_per_width=round(float(per_width), 1))
    if none_fa:
        no_layer = statistics.median(rest - out.get("cuda_quantized_kv_host_bytes", cal["cuda_quantized_kv_host_bytes"]) * kvq
                                     for rest, _, kvq, _ in none_fa)
        out["cuda_no_layer_host_bytes"] = int(no_layer)
        if none_nofa:
            cublas = out.get("cuda_no_flash_attn_host_bytes", cal["cuda_no_flash_attn_host_bytes"])
            per_width = out.get("cuda_no_flash_attn_host_bytes_per_width", cal["cuda_no_flash_attn_host_bytes_per_width"])
            out["cuda_no_flash_attn_decode_host_bytes"] = int(statistics.median(
                cublas + per_width * width - (rest - no_layer) for rest, _, _, width in none_nofa))
    return out


def predicted_row(hw, label: str, case: dict, m: dict) -> dict:
    """One result row: the measurement `m` of `case` beside predict_for_file's figures for it."""
    from qwenctl.predict import predict_for_file
    from qwenctl.result import to_dict

    p = predict_for_file(hw, case["path"], load_options(case), depth=m["fill"] + 16, cuda_graphs=m.get("cuda_graphs"))
    measured_gpu = m["gpu_device_delta_bytes"]
    return {"label": label, **case, "measured": m, "predicted": to_dict(p),
            "host_error_pct": err(p.host_bytes, m["host_bytes"]),
            "gpu_error_pct": err(p.gpu_bytes, measured_gpu) if case["gpu"] else None,
            "tg_error_pct": err(p.tg_tps, m["tg_tps"]), "pp_error_pct": err(p.pp_tps, m["pp_tps"])}


def _pools(row: dict) -> list[tuple[str, int | None, int | None, float | None]]:
    pred = {p["pool"]: p["weights_bytes"] + p["kv_bytes"] + p["compute_bytes"] + p["overhead_bytes"]
            for p in row["predicted"]["memory"]}
    m = row["measured"]
    out = [("ram", pred.get("ram"), m["host_bytes"], row["host_error_pct"])]
    if row["gpu"]:
        out.append(("vram", pred.get("vram"), m["gpu_device_delta_bytes"], row["gpu_error_pct"]))
    return out


def _name(row: dict) -> str:
    return f"{row['label']} ctx {row['n_ctx']} {row['kv_cache_type']}{' fa' if row['flash_attn'] else ''}"


def print_row(row: dict, markdown: bool) -> None:
    p, m = row["predicted"], row["measured"]
    for i, (pool, pred, meas, e) in enumerate(_pools(row)):
        pct = "" if e is None else f"{e:+.1f}%"
        if markdown:
            print(f"| {_name(row)} | {pool} | {(pred or 0) / MiB:.0f} | {(meas or 0) / MiB:.0f} | {pct} |")
        else:
            speed = f"{p['tg_tps']:6.1f}/{m['tg_tps']:<6.1f} {p['pp_tps']:6.0f}/{m['pp_tps']:<6.0f}" if i == 0 else ""
            print(f"{_name(row) if i == 0 else '':<34} {pool:<4} {(pred or 0) / MiB:13.0f} {(meas or 0) / MiB:12.0f} "
                  f"{pct:>7}   {speed}", flush=True)


def print_header(markdown: bool) -> None:
    if markdown:
        print("| case | pool | predicted MiB | measured MiB | error |\n|---|---|---|---|---|")
    else:
        print(f"{'case':<34} {'pool':<4} {'predicted MiB':>13} {'measured MiB':>12} {'error':>7}   "
              f"{'tg pred/meas':>13} {'pp pred/meas':>13}")


def print_summary(rows: list[dict]) -> None:
    errors = [abs(e) for r in rows if "measured" in r for _, _, _, e in _pools(r) if e is not None]
    if errors:
        print(f"\n{len(errors)} figures: max |error| {max(errors):.1f}%, mean |error| {sum(errors) / len(errors):.1f}%")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="0.5B,1.5B")
    ap.add_argument("--quants", default="Q4_K_M,Q8_0")
    ap.add_argument("--models-dir", help="folder of shaped_gguf models (generated there when missing)")
    ap.add_argument("--model", action="append", default=[], help="an explicit GGUF path (repeatable)")
    ap.add_argument("--no-generate", action="store_true")
    ap.add_argument("--gpu", action="store_true", help="offload every layer (n_gpu_layers=-1) and measure VRAM with NVML")
    ap.add_argument("--cpu-alone", action="store_true",
                    help="load with no GPU device at all (LoadOptions.cpu_alone), as a plan on the CPU does on a GPU machine")
    ap.add_argument("--ngl", type=int, help="with --gpu: offload this many layers instead (0: a CUDA build's own VRAM)")
    ap.add_argument("--cases", help=f"n_ctx:kv:flash_attn,... (default CPU {DEFAULT_CPU_CASES}; GPU {DEFAULT_GPU_CASES})")
    ap.add_argument("--fill", type=int, default=1024, help="prompt tokens prefilled before measuring")
    ap.add_argument("--bandwidth", help="memory bandwidth for the speed prediction (default: detected)")
    ap.add_argument("--json-out")
    ap.add_argument("--markdown", action="store_true", help="print the memory table as markdown")
    ap.add_argument("--fit", metavar="JSON", nargs="+", help="print the constants that fit earlier --json-out files, and exit")
    ap.add_argument("--repredict", metavar="JSON", nargs="+",
                    help="recompute the predictions of earlier --json-out files with the current constants "
                         "(the model files must still be there); no new measurement")
    ap.add_argument("--breakdown", action="store_true",
                    help="also record resident memory and NVML after load / prefill / decode, and smaps per mapping")
    ap.add_argument("--log-dir", help="write each case's llama.cpp log there (e.g. with GGML_SCHED_DEBUG=2 set)")
    ap.add_argument("--pool-trace", metavar="DIR",
                    help="with a llama.cpp built with -DDEBUG_CUDA_MALLOC: keep each case's CUDA pool trace there and "
                         "record the pool's peak per phase (run.sh pooltrace)")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        print(json.dumps(worker(json.loads(args.worker))))
        return
    if args.fit:
        print(json.dumps(fit([json.loads(Path(f).read_text()) for f in args.fit]), indent=1))
        return

    import dataclasses

    from qwenctl.hardware import detect
    from qwenctl.hardware.facts import Memory, hardware_from_dict
    from qwenctl.result import to_dict

    if args.repredict:
        print_header(args.markdown)
        rows = []
        for f in args.repredict:
            doc = json.loads(Path(f).read_text())
            hw = hardware_from_dict(doc["machine"])
            for r in doc["rows"]:
                if "measured" in r:
                    case = {k: r[k] for k in ("path", "n_ctx", "kv_cache_type", "flash_attn", "gpu", "fill", "ngl", "cpu_alone") if k in r}
                    rows.append(predicted_row(hw, r["label"], case, r["measured"]))
                    print_row(rows[-1], args.markdown)
        print_summary(rows)
        if args.json_out:
            Path(args.json_out).write_text(json.dumps({"machine": doc["machine"], "rows": rows}, indent=1))
        return

    hw = detect()
    if isinstance(hw.memory, Memory) and hw.memory.bandwidth_bytes_per_s is None:
        # as `qwenctl run` does before a plan that needs it: measure the host's bandwidth once (cached per machine),
        # so the speed of a split or CPU case is predicted on this machine's figure, not the assumed one
        from qwenctl.hardware import measure_bandwidth

        measure_bandwidth(hw)
        hw = detect()
    if args.bandwidth:
        from qwenctl.bench import parse_bandwidth

        bw = parse_bandwidth(args.bandwidth).bytes_per_s
        if args.gpu and hw.gpus:
            gpus = tuple(dataclasses.replace(g, bandwidth_bytes_per_s=bw) for g in hw.gpus)
            hw = dataclasses.replace(hw, nvidia=dataclasses.replace(hw.nvidia, gpus=gpus))
        elif isinstance(hw.memory, Memory):
            hw = dataclasses.replace(hw, memory=dataclasses.replace(hw.memory, bandwidth_bytes_per_s=bw))
    if args.gpu and not hw.gpus:
        print("warning: --gpu, but detect() sees no NVIDIA GPU: the rows measure the CPU", file=sys.stderr)
    paths = model_paths(args)
    if not paths:
        sys.exit("no models: pass --models-dir or --model")
    cases = parse_cases(args.cases or (DEFAULT_GPU_CASES if args.gpu else DEFAULT_CPU_CASES))
    rows = []
    print_header(args.markdown)
    for label, path in paths:
        for n_ctx, kv, fa in cases:
            case = {"path": str(path), "n_ctx": n_ctx, "kv_cache_type": kv, "flash_attn": fa, "gpu": args.gpu,
                    "fill": args.fill, **({"ngl": args.ngl} if args.ngl is not None else {}),
                    **({"cpu_alone": True} if args.cpu_alone else {}),
                    **({"breakdown": True} if args.breakdown else {})}
            stem = f"{path.stem}-ctx{n_ctx}-{kv}-fa{int(fa)}-" + ("cpu-alone" if args.cpu_alone else f"ngl{'all' if args.ngl is None else args.ngl}")
            for key, folder, suffix in (("log", args.log_dir, ".log"), ("pool_trace", args.pool_trace, ".trace")):
                if folder:
                    Path(folder).mkdir(parents=True, exist_ok=True)
                    case[key] = str(Path(folder) / (stem + suffix))
            proc = subprocess.run([sys.executable, __file__, "--worker", json.dumps(case)], capture_output=True, text=True)
            if proc.returncode != 0:
                print(f"{label} ctx {n_ctx} {kv} fa{int(fa)}: FAILED\n{proc.stderr[-1500:]}", file=sys.stderr)
                rows.append({"label": label, **case, "failed": proc.stderr[-1500:]})
                continue
            rows.append(predicted_row(hw, label, case, json.loads(proc.stdout.strip().splitlines()[-1])))
            print_row(rows[-1], args.markdown)
    print_summary(rows)
    if args.json_out:
        doc = {"machine": to_dict(hw), "gpu": args.gpu, "fill": args.fill, "rows": rows}
        Path(args.json_out).write_text(json.dumps(doc, indent=1))


if __name__ == "__main__":
    main()
