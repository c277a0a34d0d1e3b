"""Which llama.cpp kernel multiplies a device's weights, and what that kernel path costs against the device's peak.

A prompt's products run in MMQ on a CUDA GPU's int8 units, in cuBLAS's fp16 GEMM after dequantizing, in tiled or
row-by-row CPU kernels per weight type, in Metal's tensor API or its ALUs, by the build's date (`pp_kernel`,
`type_slowdown`, `prompt_matrix_rate`); a decoded token's weights stream through the mat-vec kernel of their ggml type
(`decode_kernel`). Every path, with the pull request that introduced it, is in speed_model.json `kernel_paths`;
``qwenctl.speed`` adds the bytes and the fixed costs.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cache
from typing import Any

from qwenctl.catalog import Weights, load_catalog
from qwenctl.device_speed import DeviceSpeed, load_speed_model
from qwenctl.estimate import WeightSplit
from qwenctl.recipe import FLOAT_TYPES, layer_type_weights

TILE = 128  # rows and tokens of one output tile of llama.cpp's matrix kernels (MMQ's mmq_y; cuBLAS alike)
F16_MMV = "F16"  # `decode_kernel`'s name for CUDA's own F16/BF16 mat-vec kernel (mmvf.cu), priced by its geometry


def _wave_utilisation(a, n_tokens: int, dev: DeviceSpeed, layers: int) -> float:
    """The share of a GPU's SMs (Apple GPU cores) that a layer's matrix products keep busy.

    A product of an out x in matrix with n tokens is cut into ceil(out/128) x ceil(n/128) tiles,
    one per SM at a time: 56 tiles on 132 SMs leave 58 % idle for that wave. Small models' narrow
    matrices fill a big GPU badly (Qwen2.5-0.5B's 896-row projections), large ones do not; a CPU
    shares rows among threads evenly (1.0).
    """
    if dev.engine == "cpu" or layers == 0:
        return 1.0
    units = max(round(dev.compute_units * dev.compute_share), 1)
    kv = a.n_kv_heads * a.head_dim
    token_tiles = -(-n_tokens // TILE)
    work = busy = 0.0
    for out, inp in ((a.hidden_size, a.hidden_size), (kv, a.hidden_size), (kv, a.hidden_size), (a.hidden_size, a.hidden_size),
                     (a.intermediate_size, a.hidden_size), (a.intermediate_size, a.hidden_size), (a.hidden_size, a.intermediate_size)):
        tiles = -(-out // TILE) * token_tiles
        waves = -(-tiles // units)
        work += out * inp
        busy += out * inp * tiles / (waves * units)
    return busy / work


def pp_path(family: str) -> str:
    """The matrix-kernel path a device family's prompt processing runs (speed_model.json `pp_paths`): families
    whose SMs run llama.cpp's kernels alike share one efficiency, so it is not fitted to one build's vintage."""
    return str(load_speed_model().get("pp_paths", {}).get(family, family))


def pp_kernel(weights: Weights, dev: DeviceSpeed | None = None, engine_date: str | None = None) -> tuple[str, float, bool]:
    """(matrix units, extra bytes moved per weight, whether the work fills every SM) of llama.cpp's prompt
    matrix products on ``dev``.

    Float weights multiply on the fp16 units. Quantized weights on CUDA take one of two kernels
    (speed_model.json `kernel_paths`, with sources): MMQ, which multiplies the quantized blocks on
    the int8 units (Pascal's dp4a, Turing and later's int8 mma), or dequantization to fp16 followed
    by cuBLAS's fp16 GEMM, which also writes and reads an fp16 copy of every weight (4 bytes per
    weight). Volta takes the second (it has fp16 tensor cores but no int8 ones), and so did every
    GPU with tensor cores before llama.cpp made MMQ the default. MMQ on tensor cores splits its
    work "stream-k" (along the inner dimension too), so a narrow matrix still keeps every SM busy;
    the other kernels cut the output into tiles, which fill a big GPU in whole waves only. A GPU with
    neither dp4a nor fast fp16 (Maxwell) converts every weight, float or quantized, to an fp32 copy for
    cuBLAS's SGEMM (8 bytes per weight); its "fp16" peak is its FP32 rate.
    ``engine_date``: when the llama.cpp that runs was built ("2024-05"; None: the one qwenctl ships).
    """
    paths = load_speed_model()["kernel_paths"]
    if dev is not None and dev.engine == "cuda" and dev.family in paths["fp32_cublas_families"]:
        return "fp16", float(paths["fp32_cublas_bytes_per_weight"]), False
    if weights.quant in ("fp16", "f16", "bf16", "f32"):
        return "fp16", 0.0, False
    if dev is None or dev.engine != "cuda":
        return "int8", 0.0, False
    no_tensor_cores = dev.family in paths["no_fp16_tensor_core_families"]
    if dev.family in paths["fp16_dequant_families"] or (
            built_before(engine_date, paths["mmq_default_since"]) and not no_tensor_cores):
        return "fp16", float(paths["dequant_bytes_per_weight"]), False
    return "int8", 0.0, not no_tensor_cores


def built_before(engine_date: str | None, since: str) -> bool:
    """Whether a row's llama.cpp, built at ``engine_date`` ("2024-05"; None: the one qwenctl ships, newer than every
    date in speed_model.json's `kernel_paths`), predates a kernel change merged on ``since``. A date of a month or a
    year only sorts before every day it is a prefix of, so it counts as before."""
    return engine_date is not None and engine_date < since


def cuda_graphs(family: str, engine_date: str | None = None, pipeline: bool = False) -> bool:
    """Whether llama.cpp's CUDA backend runs a decoded token as a CUDA graph on a GPU of ``family``: never below Volta
    (`no_cuda_graph_families`), on Volta and Turing only since `cuda_graphs_volta_turing_since` (speed_model.json
    kernel_paths, with the pull request; before it the gate was Ampere). ``pipeline``: the token runs over a layer
    split with every layer on the devices (llama.cpp's pipeline parallelism), whose graphs changed every evaluation
    until `cuda_graphs_pipeline_parallel_since`: a build from before runs it without graphs."""
    paths = load_speed_model()["kernel_paths"]
    if family in paths["no_cuda_graph_families"]:
        return False
    if pipeline and built_before(engine_date, paths["cuda_graphs_pipeline_parallel_since"]):
        return False
    return not (family in paths["cuda_graphs_volta_turing_families"]
                and built_before(engine_date, paths["cuda_graphs_volta_turing_since"]))


def decode_kernel(kind: str, dev: DeviceSpeed, engine_date: str | None = None) -> tuple[str, float]:
    """(the `unit_bytes_per_cycle` entry, the multiple of it) that prices the kernel decoding weights of ggml type
    ``kind`` ("Q4_K", "F16"; an MLX file's "mlx-4bit") on ``dev``.

    A type no fitting row has is priced by the type whose kernel it shares a geometry with (speed_model.json
    `unit_bytes_per_cycle_as`, with the reasons): Q5_0 and Q5_1 as Q4_0, Q2_K from Q3_K by the bytes their kernels
    keep in flight. F16 weights ran ggml's old dequantize-mul-mat-vec kernel until llama.cpp gave them one of their
    own (`kernel_paths.cuda_f16_mmv_since`, with the pull request). The two keep different bytes in flight, so a
    row measured with a build from before (or dated only by an earlier year) takes the old kernel's constant.
    ``engine_date``: see `pp_kernel`.
    """
    sm = load_speed_model()
    if dev.engine == "cuda" and kind in FLOAT_TYPES and built_before(engine_date, sm["kernel_paths"]["cuda_f16_mmv_since"]):
        return "F16_dmmv", 1.0
    entry, multiple = sm["engines"][dev.engine].get("unit_bytes_per_cycle_as", {}).get(kind, (kind, 1.0))
    return str(entry), float(multiple)


def mmvf_block(ncols: int, warp: int = 32, largest: int = 256) -> tuple[int, int]:
    """(threads a block, column steps each thread makes) that llama.cpp's F16/BF16 mat-vec kernel takes for rows of
    ``ncols`` weights: the block size from ``2 * warp`` to ``largest`` whose threads, two weights a step, cover the row
    in the fewest steps, the first on a tie (ggml-cuda/mmvf.cu, launch_mul_mat_vec_f_cuda, in the llama.cpp that
    llama-cpp-python 0.3.36 vendors)."""
    best, steps = warp, -(-ncols // (2 * warp))
    for size in range(2 * warp, largest + 1, warp):
        n = -(-ncols // (2 * size))
        if n < steps:
            best, steps = size, n
    return best, steps


def f16_decode_bytes_per_cycle(dev: DeviceSpeed, ncols: int) -> float:
    """Bytes of F16/BF16 rows of ``ncols`` weights one SM of ``dev`` streams per cycle in llama.cpp's mat-vec kernel.

    The kernel gives each row a block (`mmvf_block`); the compiler unrolls its column loop by `unroll`, after a
    remainder loop that waits for one load at a time, so a thread makes ``steps // unroll + steps % unroll`` round
    trips to memory: 3 for a 1,536-wide row (3 steps), 1 for a 2,048-wide one (4 steps), 4 for a 3,584-wide one (7).
    An SM holds as many blocks as its resident threads allow (`DeviceSpeed.threads_per_unit`), each alive for
    `row_cycles` (start, the reduction across its warps, the write) plus `trip_cycles` a round trip
    (speed_model.json engines.cuda.f16_mmv, with how they were measured and fitted).
    """
    k = load_speed_model()["engines"]["cuda"]["f16_mmv"]
    size, steps = mmvf_block(ncols)
    unroll = int(k["unroll"])
    trips = steps // unroll + steps % unroll
    blocks = max(dev.threads_per_unit // size, 1)
    return blocks * 2 * ncols / (float(k["row_cycles"]) + float(k["trip_cycles"]) * trips)


def emulates_dp4a(dev: DeviceSpeed) -> bool:
    """Whether llama.cpp's CUDA kernels run ``dev``'s int8 dot products through ggml_cuda_dp4a's C fallback."""
    return dev.engine == "cuda" and dev.family in load_speed_model()["kernel_paths"]["cuda_mmvq_emulated_dp4a"]["families"]


def emulated_dp4a_rate(kind: str, dev: DeviceSpeed) -> float | None:
    """Bytes/s of ``kind`` weights that llama.cpp's decode kernel can multiply on a GPU without dp4a (Maxwell, the
    P100), where each of its int8 dot products runs as a C fallback of 13 instructions in place of one: the GPU's lanes
    issue one instruction a clock each, and the kernel needs the instructions per weight that speed_model.json
    `kernel_paths.cuda_mmvq_emulated_dp4a` counts (benchmarks/cuda_mmvq_instructions.py), about twice a dp4a GPU's.
    None where dp4a is native (its kernels' instructions are in the fitted constants) or the type has no count."""
    per_weight = load_speed_model()["kernel_paths"]["cuda_mmvq_emulated_dp4a"]["instructions_per_weight"].get(kind)
    if not emulates_dp4a(dev) or per_weight is None:
        return None
    lane_instructions = dev.vector_ops / 2 * dev.compute_share  # vector_ops counts an FMA's two flops a lane and clock
    return lane_instructions / per_weight * load_catalog().type_bits(kind) / 8


def type_slowdown(dev: DeviceSpeed, split: WeightSplit, weights: Weights, engine_date: str | None) -> float:
    """How much longer a device's prompt products take for this file's weight types than for Q4_K_M's: on an Arm
    CPU, the types multiplied row by row (`_rowwise_slowdown`); on x86, each type's measured rate
    (`_x86_type_slowdown`); on CUDA, the instructions MMQ issues per weight of each type (`_cuda_mmq_slowdown`)."""
    if not split.layer_type_weights:
        return 1.0
    if dev.engine == "cpu":
        return _rowwise_slowdown(dev, split, engine_date) * _x86_type_slowdown(dev, split, engine_date)
    if _runs_mmq(dev, weights, engine_date):
        return _cuda_mmq_slowdown(dev, split)
    return 1.0


def _cuda_mmq_slowdown(dev: DeviceSpeed, split: WeightSplit) -> float:
    """MMQ, llama.cpp's CUDA kernel for a prompt's quantized products, runs one block of 8 warps per SM, which the
    warps' instruction issue binds rather than the int8 units' peak: after each int8 product it converts the
    partial sums to fp32 and multiplies them by the blocks' scales, and a type with a scale per 16 weights (Q2_K,
    Q3_K, Q6_K) or a minimum per block issues more of those. Each type's instructions per pass of MMQ's main loop,
    counted in the vendored llama.cpp compiled for the family's architecture (speed_model.json
    `kernel_paths.cuda_mmq_types`, benchmarks/cuda_mmq_instructions.py), against Q4_K's: on sm_90 Q2_K issues
    1.71x Q4_K's and Q8_0 0.72x. A type with no count runs as Q4_K."""
    counts = _mmq_instructions(dev)
    if counts is None:
        return 1.0
    reference = counts[load_speed_model()["kernel_paths"]["cuda_mmq_types"]["reference"]]
    return _at_rates(split, lambda ggml_type: reference / counts.get(ggml_type, reference))


def _mmq_instructions(dev: DeviceSpeed) -> dict[str, int] | None:
    """MMQ's instructions per pass by ggml type for the architecture ``dev``'s family compiles for (None: not counted)."""
    classes = load_speed_model()["kernel_paths"]["cuda_mmq_types"]["classes"]
    return next((c["instructions"] for c in classes.values() if dev.family in c["families"]), None)


def _at_rates(split: WeightSplit, rate: Callable[[str], float]) -> float:
    """How much longer a layer's products take with each ggml type at ``rate(type)`` of the reference rate."""
    total = sum(w for _, w in split.layer_type_weights)
    return sum(w / total / rate(ggml_type) for ggml_type, w in split.layer_type_weights)


@cache
def _reference_mix() -> tuple[tuple[str, float], ...]:
    """The file the x86 per-type rates are measured against (`cpu_x86_types.kquant_tiled.reference`): its layers'
    weights by ggml type, from llama.cpp's recipe (the 1.5B's Q4_K_M: 85 % Q4_K, 15 % Q6_K)."""
    ref = load_speed_model()["kernel_paths"]["cpu_x86_types"]["kquant_tiled"]["reference"]
    return layer_type_weights(load_catalog().model(ref["size"]).arch, ref["file_type"])


def _x86_type_slowdown(dev: DeviceSpeed, split: WeightSplit, engine_date: str | None) -> float:
    """On x86, llama.cpp's prompt kernels run each weight type at its own rate: Q4_0, Q5_0 and Q8_0 through llamafile's
    tinyBLAS or a repacked GEMM (with AVX-VNNI's dot products where the core has them), Q4_K repacked, Q5_1 row by
    row, the other K-quants tiled, and not equally fast. Measured on the development VM with the vendored llama.cpp
    built per instruction set (speed_model.json `kernel_paths.cpu_x86_types`, benchmarks/x86_prompt_types.py): against
    a Q4_K_M file, Q5_0 runs at 0.51-0.54 (Qwen2.5-0.5B's Q4_K_M is mostly Q5_0) and Q8_0 at 0.73-0.80. A type with no
    measured rate counts as Q4_K_M's. Held out (nothing fitted on it), a published i7-12700H thread sweep: its 0.5B
    Q4_K_M prompts from 1.33-1.77x of the measured rate to 0.92-1.09x. A core whose kernels run at their own speed
    has a class of its own (Haswell and Broadwell: one port for the byte multiplies that Skylake issues on two; an AMX
    core, whose build multiplies Q4_0, Q8_0 and most K-quants on its tiles, Q8_0 at 1.6x a Q4_K_M file's pace, and
    leaves Q5_0, Q5_1, Q3_K and Q2_K to the AVX-512 kernels: Q5_0 at 0.27 of it).

    Two dated kernels move these rates. Before llama.cpp's tiled mul_mat for K-quants (PR #27851, in the llama.cpp
    qwenctl ships; `cpu_x86_types.kquant_tiled`) Q3_K, Q5_K and Q6_K ran row by row, at 0.19-0.47 of today's rate
    (measured on one Zen 4 core, llama-cpp-python 0.3.9 against 0.3.36); the fitted constants price a Q4_K_M file of
    that era, which today's build prompts 1.15x (AVX2) to 1.28x (AVX-512) faster, its Q6_K share no longer row by
    row. Before x86 tiled Q4_K (2025-03-20 with AVX2, 2025-04-15 with AVX-512) it was multiplied row by row at 0.4-0.8
    of the later rate by width and vendor (`cpu_x86_types.q4_k_tiled`, measured on Intel and AMD cores).
    ``engine_date``: see `pp_kernel`."""
    paths = load_speed_model()["kernel_paths"]["cpu_x86_types"]
    classes = paths["classes"].items()
    own = next(((k, c) for k, c in classes if dev.core in c.get("cores", ())), None)
    key, cls = own or next(((k, c) for k, c in classes if dev.family in c.get("families", ())), (None, None))
    if cls is None:
        return 1.0
    tiled = paths["q4_k_tiled"]
    width = cls.get("width", "avx512" if key == "avx512" else "avx2")
    q4_k = 1.0
    rowwise = tiled["rowwise_rate"].get(width)  # none for an AMX build: Q4_K on its tiles at every date here
    if rowwise and built_before(engine_date, tiled["since"]["avx2"]):  # no tiled Q4_K at all: row by row
        q4_k = rowwise.get(dev.vendor, rowwise["default"])
    elif rowwise and built_before(engine_date, tiled["since"][width]):  # an AVX-512 build with the AVX2 GEMM only
        q4_k = tiled["avx2_gemm_on_avx512"]
    kquants = paths["kquant_tiled"]
    then = kquants["before_rate"][width]  # each type's kernel before the tiled K-quants, against its rate today

    def rate(rates: dict[str, float], ggml_type: str, before: bool) -> float:  # against today's Q4_K_M file
        return rates.get(ggml_type, 1.0) * (then.get(ggml_type, 1.0) if before else 1.0)

    # the reference the fitted constants price: a Q4_K_M file from before the tiled K-quants, of the class the
    # rates are measured against (a Haswell's against a Skylake's)
    reference = paths["classes"][cls.get("against", key)]["rates"]
    mix = _reference_mix()
    era = sum(w / rate(reference, t, True) for t, w in mix) / sum(w for _, w in mix)
    before = built_before(engine_date, kquants["since"])
    return _at_rates(split, lambda t: rate(cls["rates"], t, before) * (q4_k if t == "Q4_K" else 1.0)) / era


def _rowwise_slowdown(dev: DeviceSpeed, split: WeightSplit, engine_date: str | None) -> float:
    """How much longer a CPU's prompt products take than if every weight type had a tiled kernel.

    On an Arm core with dot-product instructions llama.cpp's CPU backend multiplies a prompt batch with tiled
    kernels (repacked GEMMs that reuse each loaded weight for several tokens, or llamafile's tinyBLAS) for the
    types that have one, and row by row (``ggml_vec_dot_*``: one weight row against one token at a time) for the
    rest: Q2_K, Q3_K, Q5_0 and Q5_1 never had a tiled kernel there, and Q4_K, Q5_K and Q6_K got theirs in
    2025-2026, a month apart for cores with and without i8mm (speed_model.json `kernel_paths.cpu_tiled`, with
    each pull request and its repack-off/on measurements, which give each row-wise kernel's speed against the
    tiled one). Qwen2.5-0.5B's Q4_K_M is mostly Q5_0 (its 896-long rows take k-quants' 32-value fallback), so on a
    Raspberry Pi 5 it prompts slower than the 1.5B's per weight. x86 has its own measured rates per type
    (`_x86_type_slowdown`: there the row-wise K-quant kernels prompt as fast as the tiled ones), and cores without
    dot products (Cortex-A72) have no tiled kernel at all. Apple's cores are not listed (speed_model.json says
    why). ``engine_date``: see `pp_kernel`."""
    isa = _tiled_class(dev)
    if isa is None:
        return 1.0
    rates = load_speed_model()["kernel_paths"]["cpu_tiled"]["rowwise_rate"]
    return _at_rates(split, lambda t: 1.0 if _tiled_in(isa, t, engine_date) else float(rates.get(t, rates["default"])))


def _tiled_class(dev: DeviceSpeed) -> dict[str, Any] | None:
    """The Arm instruction class (speed_model.json `kernel_paths.cpu_tiled`) whose tiled kernels ``dev``'s cores run;
    None for a build without dot products, which has none (repack.cpp and tinyBLAS_Q0_ARM need __ARM_FEATURE_DOTPROD)."""
    classes = load_speed_model()["kernel_paths"]["cpu_tiled"]["classes"].values()
    return next((c for c in classes if dev.family in c["families"]), None) if dev.dot_products else None


def arm_rowwise_decode(dev: DeviceSpeed, ggml_type: str) -> bool:
    """Whether a CPU's decode multiplies ``ggml_type`` with widening multiplies, row by row: every quantized type in a
    llama.cpp built without the dot products its Arm cores have (`DeviceSpeed.dot_products`), whose ggml_vdotq_s32
    takes two SMULLs and two pairwise adds for what one SDOT does."""
    return not dev.dot_products and ggml_type not in FLOAT_TYPES


def _tiled_in(isa: dict[str, Any], ggml_type: str, engine_date: str | None) -> bool:
    """Whether a build of ``engine_date`` has a tiled kernel for ``ggml_type`` in the Arm class ``isa``."""
    since = isa["since"].get(ggml_type)
    return ggml_type in FLOAT_TYPES or (since is not None and not built_before(engine_date, since))


def mmq_rereads(dev: DeviceSpeed, n_tokens: int, weights: Weights, engine_date: str | None) -> int:
    """How many times more than once a prompt batch reads a layer's quantized weights from DRAM on CUDA.

    llama.cpp's MMQ kernel multiplies a weight tile with one tile of 128 tokens at a time (mmq.cuh's J,
    `TILE` here) and fetches the weights again for the next 128 tokens; a layer's matrices do not stay in
    the L2 between passes, so a batch of n tokens streams them ceil(n / 128) times. Held-out rows where
    only the weight bytes differ show it (and chose this form; nothing is fitted on them): on the H200 the
    7B's Q8_0 prompt takes 3.4 ms longer than its Q4_0 for 3.8 GB more weights (512 tokens: 10,615 against
    11,425 tok/s), two to three extra passes at its streaming rate; on DGX Spark's GB10 (273 GB/s) a
    Qwen2.5-7B Q8_0 runs 2,380 tok/s where its Llama-2-7B Q4_0 rows give 3,062-3,661, which with the
    same compute per parameter takes two to three extra passes too, and no extra pass misses it by 25 %.
    Float weights go to cuBLAS, whose GEMM blocks for the L2: read once.
    """
    if not _runs_mmq(dev, weights, engine_date):
        return 0
    return -(-n_tokens // TILE) - 1


def _runs_mmq(dev: DeviceSpeed, weights: Weights, engine_date: str | None) -> bool:
    """Whether a prompt's products of these weights run in llama.cpp's MMQ kernel on ``dev`` (quantized weights on the
    int8 path of a CUDA GPU, `pp_kernel`)."""
    return dev.engine == "cuda" and pp_kernel(weights, dev, engine_date)[0] == "int8"


def pp_layer_cycles(pp_e: dict[str, Any], dev: DeviceSpeed, weights: Weights, engine_date: str | None) -> float:
    """Cycles a layer of a prompt batch costs on ``dev`` beyond its matrix work and reads: its kernels' launches and
    tails. A CUDA build's products on the fp16 units (cuBLAS, `pp_kernel`) run other kernels a layer than MMQ's, so
    they have their own constant where the fitting half had rows of that path (`pp_per_layer_cycles_fp16`)."""
    if "pp_per_layer_cycles_fp16" in pp_e and pp_kernel(weights, dev, engine_date)[0] == "fp16":
        return float(pp_e["pp_per_layer_cycles_fp16"])
    return float(pp_e["pp_per_layer_cycles"])


def prompt_matrix_rate(sm: dict[str, Any], dev: DeviceSpeed, pp_e: dict[str, Any], weights: Weights, engine_date: str | None,
                 a, pp_tokens: int, layers: int) -> tuple[float, float]:
    """(ops/s a prompt's matrix products reach on ``dev``, extra bytes moved per weight by its kernel path).

    Matrix kernels reach different shares of their peak per kernel path (llama.cpp's MMQ uses mma.sync, not
    Hopper's wgmma): the path's own efficiency where the fitting half had one, else the engine's (``pp_e``).
    """
    operand, dequant_bytes, stream_k = pp_kernel(weights, dev, engine_date)
    kernels = sm["families"].get(pp_path(dev.family), {})
    pp_eff = kernels.get("pp_efficiency", {}).get(operand, pp_e["pp_efficiency"][operand])
    wave = 1.0 if stream_k else _wave_utilisation(a, pp_tokens, dev, layers)
    issue = _mmq_issue_rate(dev) if operand == "int8" else None
    # MMQ issues no faster than its int8 units retire: binds where they were cut (the H20's, Blackwell Ultra's)
    peak = min(issue, dev.matrix_ops[operand]) if issue else dev.matrix_ops[operand]
    if dev.engine == "metal" and built_before(engine_date, sm["kernel_paths"]["metal_tensor_since"]):
        peak = dev.vector_ops  # a llama.cpp from before the Metal 4 tensor API multiplies on the ALUs, whatever the chip
    return peak * dev.compute_share * pp_eff * wave, dequant_bytes


def attention_pair_s(dev: DeviceSpeed, n_heads: int, head_dim: int) -> float:
    """Seconds one (query, cached key) pair of a prompt batch costs a layer's flash attention on ``dev``, over its heads.

    Each head multiplies the query by the key (2 x head width ops) and the score by the value row (as many), and
    takes the score through the online softmax (scale, running maximum, exp, sum, the rescale it triggers) on the
    ALUs: `prompt_attention.score_ops`. On CUDA the products are mma.sync instructions, K x Q accumulating in fp32
    and the scores x V in fp16 (ggml-cuda/fattn-mma-f16.cuh), at `mma_share` of those instructions' peaks
    (`DeviceSpeed.attention_mma_ops`: half-rate fp32 accumulation on a GeForce, two thirds of wgmma's peak on
    Hopper). Where there are no tensor cores (an Apple GPU's simdgroup matrices run on its ALUs, as MLX's fused
    attention's do; a Pascal card's tile kernel) all of it is ALU work, the products at `alu_share` of the peak; a
    CPU's tiled batch kernel (ggml-cpu/ops.cpp, flash_attn_ext_tiled: K and V tiles widened to fp32) has its own pair."""
    k = load_speed_model()["prompt_attention"]
    alu = dev.vector_ops * dev.compute_share
    fp32_acc, fp16_acc = dev.attention_mma_ops
    if fp16_acc:
        mma = float(k["mma_share"]) * dev.compute_share
        per_head = 2 * head_dim / (fp32_acc * mma) + 2 * head_dim / (fp16_acc * mma) + float(k["score_ops"]) / alu
    else:
        own = k["cpu"] if dev.engine == "cpu" else k
        per_head = (4 * head_dim / float(own["alu_share"]) + float(own["score_ops"])) / alu
    return n_heads * per_head


def cpu_attention_pair_s(dev: DeviceSpeed, n_heads: int, head_dim: int, engine_date: str | None) -> float:
    """Seconds one (query, key) pair of a prompt batch costs a layer's flash attention on a CPU, over its heads.

    llama.cpp's tiled kernel for a prompt's attention (`kernel_paths.cpu_tiled_flash_attn_since`, with the pull
    request) prices it as `attention_pair_s` does. A build from before walked every key of every query row with the
    vector kernel a decoded token still runs (ops.cpp, flash_attn_ext_f16_one_chunk): the decode's cost per head and
    cached row, `attention_cycles_per_head_row`, for each pair, divided over the threads. ``engine_date``: see
    `pp_kernel`."""
    sm = load_speed_model()
    if built_before(engine_date, sm["kernel_paths"]["cpu_tiled_flash_attn_since"]):
        cycles = float(sm["engines"]["cpu"]["attention_cycles_per_head_row"])
        return n_heads * cycles / (dev.compute_units * dev.compute_share * dev.clock_hz)
    return attention_pair_s(dev, n_heads, head_dim)


def _mmq_issue_rate(dev: DeviceSpeed) -> float | None:
    """int8 ops/s that MMQ's warps can issue on a CUDA GPU whose family has instruction counts (None: the int8
    units' peak prices it): each SM issues `issue_per_sm_per_cycle` warp-instructions a clock, and a pass of the
    reference type's main loop takes its count from each of a block's warps for 2 x rows x tokens x depth ops. It
    does not depend on the int8 units' peak, which per SM and clock is twice GA102's on a GA100, and on a B200, through
    tcgen05 (which MMQ does not use), 3.4x an H100's in all, while MMQ's prompts per SM and clock differ far less
    (docs/planning.md, "Prompts per weight type on CUDA"), unless the units are slower than the issue: `prompt_matrix_rate`
    takes the smaller."""
    counts = _mmq_instructions(dev)
    if counts is None:
        return None
    paths = load_speed_model()["kernel_paths"]["cuda_mmq_types"]
    p = paths["pass"]
    cycles = p["warps"] * counts[paths["reference"]] / p["issue_per_sm_per_cycle"]
    return dev.compute_units * dev.clock_hz * 2 * p["rows"] * p["tokens"] * p["depth"] / cycles
