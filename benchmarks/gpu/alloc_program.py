"""Record the order in which llama.cpp's graph places and releases tensors in the CUDA compute buffer of a build with no
layer offloaded, from `run.sh alloctrace` traces, into qwenctl/data/cuda_alloc_program.json; and check the replay.

    python benchmarks/gpu/alloc_program.py --write FA.txt.gz NO-FA.txt.gz FA-QUANTIZED-CACHE.txt.gz
    python benchmarks/gpu/alloc_program.py --check TRACE.txt.gz ...

A trace's name says what it traced: alloc-SIZE-QUANT-NCTX[-FLAGS].txt.gz (run.sh alloctrace), every matrix at QUANT (the
generator wrote them directly). ``--write`` takes the programs from three traces: with flash attention, without, and
with flash attention over a quantized KV cache (llama.cpp rotates its K and V, which adds products). ``--check`` replays
each trace two ways: with the sizes the trace logged (every offset must come out as ggml placed it), and as qwenctl
does it, from the program and the sizes of the architecture (the buffer must be the size llama.cpp logged).
"""

from __future__ import annotations

import argparse
import gzip
import json
import re
from pathlib import Path

from qwenctl.catalog import load_catalog
from qwenctl.cuda_alloc import DynamicAllocator, no_offload_compute_bytes
from qwenctl.recipe import MATRICES

ALLOC = re.compile(r"^(0x[0-9a-f]+): allocating (.+?) \((\d+) bytes\) - block -?\d+, offset (\d+), chunk (\d+)")
FREE = re.compile(r"^(0x[0-9a-f]+): freeing (.+?) at \{chunk=\d+, offset=(\d+)\} \((\d+) bytes\)")
EXEC = re.compile(r"^exec: (\w+) \((.+?)\) <= ?(.*)$")
LAYER = re.compile(r"blk\.(\d+)\.|-(\d+)$|_l(\d+)$")
MiB = 2**20
OUT = Path(__file__).resolve().parents[2] / "qwenctl" / "data" / "cuda_alloc_program.json"


def reserve(path: Path) -> tuple[list[str], float]:
    """The lines of the last 512-token graph reserve before llama.cpp logged the CUDA compute buffer, and its MiB."""
    with gzip.open(path, "rt", errors="replace") as f:
        lines = [line for line in f.read().splitlines() if not line.startswith("llama_graph_n_input_tensors")]
    end = next(i for i, line in enumerate(lines) if "CUDA0 compute buffer size" in line)
    start = max(i for i, line in enumerate(lines[:end]) if "reserving a graph for ubatch with n_tokens =  512" in line)
    return lines[start:end], float(lines[end].split("=")[-1].split()[0])


def cuda_events(lines: list[str]) -> list[tuple[str, str, str, int, int]]:
    """("+" or "-", tensor name, what the node placed is (its op, and for a product its sources), bytes, offset) of
    the CUDA allocator (the one that places the weight copies, "CUDA0#...")."""
    events: list[tuple[str, str, str, int, int, str]] = []
    for i, line in enumerate(lines):
        if m := ALLOC.match(line):
            op = next((f"{e.group(1)} {e.group(3)}" for e in map(EXEC.match, lines[i + 1:i + 8]) if e), "")
            events.append(("+", m.group(2), op, int(m.group(3)), int(m.group(4)), m.group(1)))
        elif m := FREE.match(line):
            events.append(("-", m.group(2), "", int(m.group(4)), int(m.group(3)), m.group(1)))
    cuda = next(e[5] for e in events if e[1].startswith("CUDA0#"))
    return [e[:5] for e in events if e[5] == cuda]


STEMS = {"Qcur": "q", "Kcur": "kv", "Vcur": "kv", "kq": "scores", "kqv": "q", "kqv_out": "q", "ffn_gate": "ffn",
         "ffn_up": "ffn", "ffn_swiglu": "ffn"}


def symbol(name: str, op: str) -> str:
    """The kind of tensor a placement is, as `cuda_alloc._tensor_sizes` names them (``op``: "OP sources")."""
    base = name.removeprefix("CUDA0#").removesuffix("#0")
    kind, _, sources = op.partition(" ")
    if kind == "FLASH_ATTN_EXT":
        return "attention"
    if kind == "MUL_MAT" and "_rot#0" in sources:  # a quantized cache's Hadamard rotation keeps its operand's shape
        return STEMS[re.sub(r"-\d+$", "", sources.split(", ")[1].split(" ")[0])]
    if m := re.match(r"blk\.\d+\.(\w+)\.weight$", base):
        return "norm" if m.group(1).endswith("norm") else f"matrix:{m.group(1)}"
    if m := re.match(r"blk\.\d+\.attn_(\w)\.bias$", base):
        return "bias_q" if m.group(1) == "q" else "bias_kv"
    rules = {"output.weight": "matrix:output", "token_embd.weight": "matrix:output", "output_norm.weight": "norm",
             "inp_pos": "token_ids", "out_ids": "token_ids", "attn_inp_kq_mask": "mask", "result_output": "logits",
             "attn_inp_k_rot": "k_rotation", "attn_inp_v_rot": "v_rotation"}
    if base in rules:
        return rules[base]
    stem = re.sub(r"-\d+$", "", base.split(" ")[0])
    return "cache" if stem.startswith("cache_") else STEMS.get(stem, "hidden")


def program(path: Path) -> dict[str, list[str]]:
    """The trace's placements and releases as steps ("+ name kind", "- name") for its first, middle and last layers;
    a name's layer is {L} (the current one) or {L-1}."""
    events = cuda_events(reserve(path)[0])
    layer, n_layers = 0, 0
    for _, name, *_ in events:
        if m := LAYER.search(name.removesuffix("#0").split(" ")[0]):
            n_layers = max(n_layers, int(next(g for g in m.groups() if g)) + 1)
    steps: dict[int, list[str]] = {}
    live: dict[int, str] = {}
    seen: dict[tuple[int, str], int] = {}
    for action, name, op, _, offset in events:
        clean = name.removeprefix("CUDA0#").removesuffix("#0").split(" ")[0]
        if m := LAYER.search(clean):
            layer = max(layer, int(next(g for g in m.groups() if g)))
        if action == "+":
            label = LAYER.sub(lambda m: m.group(0).replace(next(g for g in m.groups() if g), "{L}"), clean)
            label = re.sub(r"node_\d+", op.split(" ")[0].lower() + "-{L}", label)
            count = seen[(layer, label)] = seen.get((layer, label), 0) + 1
            label += "'" * (count - 1)
            live[offset] = f"{layer}:{label}"
            steps.setdefault(layer, []).append(f"+ {label} {symbol(name, op)}")
        else:
            at, label = live.pop(offset).split(":", 1)
            if int(at) == layer - 1:
                label = label.replace("{L}", "{L-1}")
            elif int(at) != layer and "{L}" in label:
                raise SystemExit(f"{path}: {label} of layer {at} released in layer {layer}")
            steps.setdefault(layer, []).append(f"- {label}")
    return {"first": steps[0], "layer": steps[1], "last": steps[n_layers - 1]}


def check(path: Path) -> str:
    lines, logged = reserve(path)
    allocator, where, wrong = DynamicAllocator(128), {}, 0
    for action, _, _, size, offset in cuda_events(lines):
        if action == "+":
            where[offset] = allocator.alloc(size)
            wrong += where[offset] != offset
        else:
            allocator.free(where.pop(offset), size)
    size, quant, n_ctx, *flags = path.name.removesuffix(".txt.gz").split("-")[1:]
    replayed = f"{path.name}: {wrong} offsets differ; buffer {allocator.max_size / MiB:.2f} MiB replayed"
    if "ngl" in flags and flags[flags.index("ngl") + 1] != "0":
        return f"{replayed}, {logged:.2f} logged (layers offloaded: not a no-offload program)"
    arch = load_catalog().model(size).arch
    types = ((quant,) * len(MATRICES),) * arch.n_layers
    cache = flags[flags.index("kv") + 1] if "kv" in flags else "f16"
    predicted = no_offload_compute_bytes(arch, types, quant, int(n_ctx), "fa" in flags, cache) / MiB
    return f"{replayed}, {predicted:.2f} predicted, {logged:.2f} logged"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--write", nargs=3, type=Path, metavar=("FA_TRACE", "NO_FA_TRACE", "QUANTIZED_CACHE_TRACE"))
    ap.add_argument("--check", nargs="+", type=Path, default=[])
    args = ap.parse_args()
    if args.write:
        fa, no_fa, rotated = args.write
        data = {
            "source": (f"ggml's CUDA placements and releases while llama.cpp (of llama-cpp-python 0.3.36) reserved a "
                       f"512-token micro-batch's graph with no layer offloaded, on the H200 (2026-12-02): "
                       f"benchmarks/results/h200-alloctrace/{fa.name}, {no_fa.name} and, for a quantized KV cache "
                       f"(which llama.cpp rotates, and which needs flash attention), {rotated.name}; "
                       f"written by benchmarks/gpu/alloc_program.py"),
            "n_ubatch": 512,
            "alignment": 128,
            "flash_attn": program(fa),
            "no_flash_attn": program(no_fa),
            "flash_attn_rotated": program(rotated),
        }
        OUT.write_text(json.dumps(data, indent=1) + "\n", encoding="utf-8")
        print(f"wrote {OUT}")
    for path in args.check:
        print(check(path))


if __name__ == "__main__":
    main()
