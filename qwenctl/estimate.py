"""What a model costs in memory: bytes per memory pool, and how many layers fit on a GPU.

Memory (per pool: ``vram`` of a CUDA GPU, ``ram`` of the host, ``unified`` on Apple Silicon):

* weights: the exact file bytes, split per layer for partial offload. llama.cpp keeps
  ``token_embd`` on the host always; ``output`` (or, with tied embeddings, a duplicate of
  ``token_embd``) goes to the GPU only when every repeating layer is there
  (``n_gpu_layers > n_layers``).
* KV cache: n_ctx x layers x kv_heads x head_dim x 2 (K and V) x bytes per value of the
  cache type; grouped-query attention makes this small for Qwen2.5 (7B: 4 KV heads of 28).
* compute buffers: llama.cpp's worst-case graph for one micro-batch; MLX's prefill chunk.
* overhead: CUDA context, Metal/MLX allocator, the Python runtime.

Speed lives in ``qwenctl.speed``. Memory constants live in ``qwenctl/data/calibration.json``
with their sources; re-fit them there (benchmarks/estimate_accuracy.py --fit).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from functools import lru_cache
from importlib import resources
from typing import Any

from qwenctl.catalog import Architecture, Catalog, ModelSpec, Weights, load_catalog, stored_shape
from qwenctl.cuda_alloc import no_offload_compute_bytes
from qwenctl.errors import ExitCode, QwenctlError
from qwenctl.recipe import FLOAT_TYPES, MATRICES, layer_type_weights, layer_types
from qwenctl.split import Placement, place_layers

BACKENDS = ("llama.cpp", "mlx")
DEVICES = ("cuda", "metal", "cpu")


@lru_cache(maxsize=1)
def load_calibration() -> dict[str, Any]:
    return json.loads(resources.files("qwenctl.data").joinpath("calibration.json").read_text(encoding="utf-8"))


@dataclass(frozen=True)
class PoolMemory:
    """Predicted bytes in one memory pool."""

    pool: str  # "vram" | "ram" | "unified" | "remote" (a device of an RPC worker)
    weights_bytes: int
    kv_bytes: int
    compute_bytes: int
    overhead_bytes: int
    device: int | None = None  # with several devices: the index in llama.cpp's device order (RPC workers, then GPUs)

    @property
    def total_bytes(self) -> int:
        return self.weights_bytes + self.kv_bytes + self.compute_bytes + self.overhead_bytes


@dataclass(frozen=True)
class MemoryEstimate:
    pools: tuple[PoolMemory, ...]

    def pool(self, name: str) -> PoolMemory | None:
        return next((p for p in self.pools if p.pool == name), None)

    @property
    def total_bytes(self) -> int:
        return sum(p.total_bytes for p in self.pools)


@dataclass(frozen=True)
class WeightSplit:
    """How a GGUF's bytes divide into the parts llama.cpp places separately.

    Derived from the catalog's tensor types for a planned download, or read exactly from a
    file's tensor table (``split_from_tensors``) when the file is at hand.
    """

    embd_bytes: int  # token_embd: always on the host
    output_bytes: int  # output matrix (a duplicate of token_embd when tied)
    layer_bytes: float  # one repeating layer
    output_in_file: bool  # False when tied: the output copy is made at load time
    matrix_types: int  # distinct ggml types among the matrices multiplied per token: each loads its own GPU kernels
    per_layer: tuple[int, ...] = ()  # each repeating layer's bytes, from a file's tensors (recipes vary them by layer)
    float_matrices: bool = False  # some matrices are F16/BF16/F32: CUDA multiplies their prompt batches with cuBLAS
    # the average repeating layer's matrix weights by stored ggml type (("Q5_0", 10.5e6), ...): which kernels multiply
    # them; () where unknown (MLX)
    layer_type_weights: tuple[tuple[str, float], ...] = ()
    # each repeating layer's matrix types in recipe.MATRICES order, and the output matrix's (token_embd's where tied):
    # what a CUDA build with no layer offloaded copies into its compute buffer (cuda_alloc); () and None for MLX
    layer_types: tuple[tuple[str, ...], ...] = ()
    output_type: str | None = None

    def layers_bytes(self, indices: Iterable[int]) -> int:
        """Bytes of these repeating layers: exact from a file, else the average layer's. llama.cpp's recipes give
        some layers more bits (Q4_K_M: Q6_K for attn_v and ffn_down in the first and last eighth and every third
        between), and the host keeps the first layers, so a partial offload's host share is not the average."""
        chosen = list(indices)
        return sum(self.per_layer[i] for i in chosen) if self.per_layer else round(len(chosen) * self.layer_bytes)


EMBEDDING = "token_embd.weight"
OUTPUT = "output.weight"


def tied_embeddings(tensor_names: Iterable[str]) -> bool:
    """Whether a GGUF's output matrix is its token embedding: no ``output.weight`` tensor of its own."""
    return OUTPUT not in set(tensor_names)


def split_from_tensors(tensors: Iterable[tuple[str, int, tuple[int, ...], str]], n_layers: int) -> WeightSplit:
    """The exact split of a GGUF from its (tensor name, bytes, shape, ggml type name) table (``predict.tensor_table``).

    Without an ``output.weight`` tensor the embeddings are tied and llama.cpp makes the
    output matrix a copy of ``token_embd``; everything else (norms and biases included)
    is shared equally by the repeating layers. The matrices multiplied per token are the
    layers' 2-D tensors and the output matrix (``token_embd`` itself only when tied: untied,
    it is only looked up).
    """
    table = list(tensors)
    sizes = {name: n_bytes for name, n_bytes, _, _ in table}
    embd = sizes.get(EMBEDDING, 0)
    tied = tied_embeddings(sizes)
    out = embd if tied else sizes[OUTPUT]
    rest = sum(sizes.values()) - embd - (0 if tied else out)
    multiplied = {t for name, _, shape, t in table
                  if len(shape) >= 2 and (name == (EMBEDDING if tied else OUTPUT) or name.startswith("blk."))}
    type_weights: dict[str, float] = {}
    for name, _, shape, t in table:
        if len(shape) >= 2 and name.startswith("blk."):
            type_weights[t] = type_weights.get(t, 0.0) + math.prod(shape) / n_layers
    per_layer = [0] * n_layers
    for name, n_bytes in sizes.items():
        index = name.split(".")[1] if name.startswith("blk.") else ""
        if index.isdigit() and int(index) < n_layers:
            per_layer[int(index)] += n_bytes
    shared = (rest - sum(per_layer)) / n_layers  # output_norm and the like: spread as before
    types = {name: t for name, _, _, t in table}
    layer_types = tuple(tuple(types.get(f"blk.{i}.{m}.weight", "") for m in MATRICES) for i in range(n_layers))
    return WeightSplit(embd, out, rest / n_layers, not tied, len(multiplied), tuple(round(b + shared) for b in per_layer),
                       bool(multiplied & FLOAT_TYPES), tuple(sorted(type_weights.items(), key=lambda kv: -kv[1])),
                       layer_types if all(all(t) for t in layer_types) else (), types.get(EMBEDDING if tied else OUTPUT))


def weight_split(catalog: Catalog, model: ModelSpec, weights: Weights) -> WeightSplit:
    a = model.arch
    n = a.vocab_size * a.hidden_size

    def type_bytes(t: str) -> float:
        return n * catalog.type_bits(catalog.stored_type(t, a.hidden_size)) / 8

    if weights.format == "mlx":
        # MLX quantizes embeddings like any linear layer; nothing is split by the engine
        per_weight = weights.total_bytes / model.params
        embd = int(n * per_weight)
        out = embd
        layers = weights.total_bytes - embd - (0 if a.tied_embeddings else out)
        return WeightSplit(embd, out, layers / a.n_layers, not a.tied_embeddings, 0)
    assert weights.embd_type and weights.output_type
    in_file = weights.output_in_file or not a.tied_embeddings
    out = int(type_bytes(weights.output_type))
    embd = int(type_bytes(weights.embd_type)) if in_file else out
    layers = weights.total_bytes - embd - (out if in_file else 0)
    types = catalog.matrix_types(model, weights)
    stored = stored_shape(a, weights)
    return WeightSplit(embd, out, max(layers, 0) / a.n_layers, in_file, len(types),
                       float_matrices=bool(types & FLOAT_TYPES), layer_type_weights=layer_type_weights(stored, weights.label),
                       layer_types=layer_types(stored, weights.label),
                       output_type=catalog.stored_type(weights.output_type, a.hidden_size))


def kv_cache_bytes(model: ModelSpec, n_ctx: int, kv_cache_type: str = "f16", layers: int | None = None) -> int:
    """n_ctx x layers x kv_heads x head_dim x 2 (K and V) x bytes per value."""
    a = model.arch
    per_value = load_catalog().kv_bytes(kv_cache_type)
    n_layers = a.n_layers if layers is None else layers
    return int(n_ctx * n_layers * a.n_kv_heads * a.head_dim * 2 * per_value)


def _graph_bytes(model: ModelSpec, n_ctx: int, flash_attn: bool, with_output: bool) -> int:
    """llama.cpp's reserved compute buffer: the largest live f32 tensor of a worst-case micro-batch."""
    cal = load_calibration()["memory"]
    a = model.arch
    widest = max(
        a.vocab_size if with_output else 0,
        0 if flash_attn else a.n_heads * n_ctx,
        3 * a.intermediate_size,
    )
    return int(4 * cal["n_ubatch"] * widest + cal["compute_fixed_bytes"])


def _cuda_compute_bytes(model: ModelSpec, n_ctx: int, flash_attn: bool, with_output: bool) -> int:
    """The CUDA compute buffer of a GPU that holds layers: ggml's allocator sizes it for the widest step of a worst-case
    512-token micro-batch over the hidden-state tensors (H each) still live below it: the logits over one, the FFN's
    three products over one, and without flash attention a layer's f32 scores and mask over about four (2.7-5.0 H in
    the traces of benchmarks/results/h200-alloctrace). What llama.cpp logged on the H100's 20 fitting rows: the same
    to the byte but for the 7B's scores at 8,192 cells (494.0 MiB, 492 here), where a fixed 32 MiB stood for H before
    (1.75-16 MiB) and the CUDA context constant, fitted beside it, held the difference. Held out, on the H200 with
    that constant refitted: every recorded row with every layer offloaded within 2 % of VRAM (69 of 69, mean 0.16 %;
    benchmarks/rescore_vram.py), and the 7B and 1.5B Q8_0, predicted before measured, -0.1 and -0.0 %."""
    ubatch = int(load_calibration()["memory"]["n_ubatch"])
    a = model.arch
    h = 4 * ubatch * a.hidden_size
    steps = [3 * 4 * ubatch * a.intermediate_size + h]
    if with_output:
        steps.append(4 * ubatch * a.vocab_size + h)
    if not flash_attn:
        # a layer's f32 scores over every cell and the f32 mask, over about four hidden-state tensors and weight-copy
        # slots the allocator cannot reuse for them (2.7-5.0 in the traces)
        steps.append(_padded(n_ctx) * 4 * ubatch * (a.n_heads + 1) + 4 * h)
    return max(steps)


def _cuda_no_layer_compute_bytes(model: ModelSpec, split: WeightSplit, n_ctx: int, flash_attn: bool,
                                 kv_cache_type: str) -> int:
    """The CUDA compute buffer of a build with no layer offloaded: its prompt batches' products run on the GPU with
    their weights copied in, one matrix at a time, and the buffer is where ggml's allocator left its highest end,
    replayed by `cuda_alloc` over llama.cpp's recorded order of placements. A size rule missed it by up to 113 MiB
    (7B Q8_0 with flash attention: 856 MiB against 969), because which hole a copy lands in depends on the others;
    the replay gives the buffer llama.cpp logged to 0.01 MiB on the H200's 16 no-offload traces (0.5B to 14B, Q4_0 and
    Q8_0, 4,096 to 32,768 cells, with and without flash attention, f16 and q8_0 caches:
    benchmarks/results/h200-alloctrace), on all 74 rows whose log was kept, and on six files predicted before they
    were measured (docs/planning.md, "The no-offload buffer, replayed instead of ruled")."""
    if not split.layer_types or split.output_type is None:
        raise QwenctlError("the file lacks some of its layers' attention or feed-forward matrices, so the CUDA compute "
                           "buffer cannot be sized", code=ExitCode.BAD_INPUT)
    return no_offload_compute_bytes(model.arch, split.layer_types, split.output_type, _padded(n_ctx), flash_attn,
                                    kv_cache_type)


def cuda_host_compute_bytes(arch: Architecture, n_ctx: int, flash_attn: bool) -> int:
    """The pinned host buffer of a CUDA build, however many layers it offloads (those on the host run their prompt
    batches on the GPU): the attention mask of a micro-batch over the whole context (f16 with flash attention, f32
    without) and the token embeddings in and out. Matches the "CUDA_Host compute buffer" llama.cpp logged on the
    H100 and the H200 within 2 MiB (11.5 MiB for 0.5B at 8,192 tokens, 35.5 at 32,768; 22.0 and 46.1 for 7B;
    16.0 for 3B with 0, 7, 17, 27 or 36 layers on the host), where a fixed 32 MiB margin stood before."""
    ubatch = int(load_calibration()["memory"]["n_ubatch"])
    return (2 if flash_attn else 4) * _padded(n_ctx) * ubatch + 2 * 4 * ubatch * arch.hidden_size


def _cublas(split: WeightSplit, flash_attn: bool) -> bool:
    """Whether llama.cpp's CUDA backend calls cuBLAS: for the attention without flash attention, and for the prompt
    batches of float matrices (F16/BF16/F32) either way."""
    return not flash_attn or split.float_matrices


def cuda_host_bytes(arch: Architecture, split: WeightSplit, kv_cache_type: str, flash_attn: bool, decode_on_gpu: bool,
                    gpu_layers: int = 0) -> int:
    """Host memory a process holds beyond the CPU runtime once ggml's CUDA backend has worked: the CUDA runtime
    and driver, and the GPU kernels it ran. CUDA loads kernels lazily, at their first launch (the default since
    CUDA 12.2; with CUDA_MODULE_LOADING=EAGER the same processes hold ~520 MiB more), so the cost follows what
    the plan runs (measured on the H100 and the H200, docs/planning.md "Calibration"):

    * decode on the GPU loads every weight type's matrix kernels: a base plus so much per distinct type
      (0.5B Q4_K_M has four, Q4_K, Q5_0, Q6_K and Q8_0; 7B Q4_K_M two), and so much per layer on the GPUs
      (``gpu_layers``, every local GPU's layers): about half of it the host side of the decode's CUDA graph,
      whose nodes are the layers' kernels (H200, 24 to 64 layers: 0.175 MiB a layer less with
      GGML_CUDA_DISABLE_GRAPHS=1), the rest not traced. With no layer offloaded only the prompt batches'
      products run there, which load less: one figure for that case.
    * a quantized KV cache with flash attention loads the flash-attention kernels for that type.
    * without flash attention cuBLAS multiplies the attention; which of its kernels it loads depends on the
      products' shapes: a base plus so much per unit of attention width (n_heads x head_dim) up to the widest
      measured (the 7B's; the 14B's wider attention measured less, not more), less the share of decode's
      products when no layer is offloaded. F16/BF16 matrices bring cuBLAS with flash attention too (their prompt
      batches' products): the same figure (H200, 0.5B and 1.5B F16: -1.1 and +1.0 % with it, -15 and -13 % without).
    """
    cal = load_calibration()["memory"]
    if decode_on_gpu:
        kernels = (cal["cuda_host_bytes"] + cal["cuda_host_bytes_per_matrix_type"] * split.matrix_types
                   + cal["cuda_host_bytes_per_gpu_layer"] * gpu_layers)
    else:
        kernels = cal["cuda_no_layer_host_bytes"]
    if kv_cache_type != "f16" and flash_attn:  # backends.KV_CACHE_TYPES: f16 or a quantized type
        kernels += cal["cuda_quantized_kv_host_bytes"]
    if _cublas(split, flash_attn):
        width = min(arch.n_heads * arch.head_dim, cal["cuda_no_flash_attn_host_width_max"])
        kernels += cal["cuda_no_flash_attn_host_bytes"] + cal["cuda_no_flash_attn_host_bytes_per_width"] * width
        if not decode_on_gpu:
            kernels -= cal["cuda_no_flash_attn_decode_host_bytes"]
    return int(kernels)


def cuda_stack_bytes(resident_threads: int | None) -> int:
    """How much more local memory a GPU's CUDA context reserves than the context was fitted with: the driver keeps a
    stack for every thread the GPU can hold at once (SMs x resident threads per SM x the 1 KiB default), 264 MiB on
    the H100 and H200 the contexts were measured on, 36 MiB on an RTX 4060 (24 x 1,536). ``resident_threads``: the
    GPU's (`nvidia_specs.resident_threads`); None, unknown: the measured GPUs' (no difference)."""
    cal = load_calibration()["memory"]
    fitted = int(cal["cuda_context_resident_threads"])
    return ((resident_threads or fitted) - fitted) * int(cal["cuda_stack_bytes_per_thread"])


def cuda_context_bytes(resident_threads: int | None) -> int:
    """What a GPU holds once llama.cpp's CUDA backend starts on it, before any buffer of its own: the context with its
    stacks, the kernels and ggml's pool (`cuda_device_bytes` with flash attention). A GPU with less free than this
    takes no load at all: on the H100 with 4 MiB free the first attempt failed ("unable to allocate CUDA0 buffer") and
    the loader's next, with fewer layers, aborted the process (SIGABRT) inside ggml's CUDA backend."""
    return int(load_calibration()["memory"]["cuda_context_bytes"]) + cuda_stack_bytes(resident_threads)


def cuda_device_bytes(arch: Architecture, split: WeightSplit, flash_attn: bool, n_kv: int, heads_share: float = 1.0,
                      resident_threads: int | None = None) -> int:
    """What a CUDA GPU holds beyond llama.cpp's buffers: the context (its stacks by the GPU's resident threads,
    `cuda_stack_bytes`), its kernels and ggml's memory pool (fitted, at 1,024 cells); without flash attention also
    cuBLAS's handle and workspace (fitted likewise), and a pool that grows with the context: cuBLAS multiplies the
    attention in f16, so ggml's pool holds a micro-batch's scores, 2 bytes x n_ubatch x n_heads x n_kv
    (ggml_cuda_mul_mat_batched_cublas's dst_temp; traced on the H200: 28 MiB for the 7B at 1,024 cells, 224 MiB at
    8,192). F16/BF16 matrices bring cuBLAS with flash attention too. ``n_kv``: cells in use; ``heads_share``: this
    GPU's share of the heads (a tensor split)."""
    cal = load_calibration()["memory"]
    cublas = cal["cuda_no_flash_attn_bytes"] if _cublas(split, flash_attn) else 0
    scores = 0 if flash_attn else 2 * cal["n_ubatch"] * arch.n_heads * heads_share * max(0, n_kv - cal["cuda_fit_cells"])
    return int(cuda_context_bytes(resident_threads) + cublas + scores)


def cuda_graph_bytes(host_layers: int, captured: int | None = None) -> int:
    """VRAM of the CUDA graphs ggml captures for the layers left on the host. Their prompt batches run on the GPU
    one weight at a time (the scheduler starts a split for each weight it copies in: 13 CUDA splits per Qwen2
    layer), and ggml's CUDA backend captures and instantiates a graph for every split that runs twice unchanged;
    each instantiated graph holds ~0.1 MiB of device memory (fitted on the H200's 0.5B-7B rows; held out, the 14B
    with 384 graphs: VRAM -0.9 %, docs/planning.md). How many get captured depends on the prompts, so ``captured`` (counted in llama.cpp's log) is for
    measurements; None is the planner's worst case, every split."""
    cal = load_calibration()["memory"]
    graphs = host_layers * cal["cuda_graph_splits_per_layer"] if captured is None else captured
    return int(graphs * cal["cuda_graph_bytes"])


def _padded(tokens: int) -> int:
    """llama.cpp pads the KV cells a graph attends over to a multiple of 256."""
    return -(-tokens // 256) * 256


def _cells(n_ctx: int, depth: int | None) -> int:
    """KV cells llama.cpp attends over at `depth` tokens (None: a full context), within the context."""
    return min(n_ctx, _padded(depth or n_ctx))


def _cpu_compute_bytes(model: ModelSpec, n_ctx: int, flash_attn: bool, depth: int | None) -> int:
    """What llama.cpp's CPU compute buffer really occupies at `depth` tokens (None: a full context).

    The buffer is malloc'd for the worst case (512 rows of logits) but its pages are touched only
    as the graph uses them, and qwenctl asks for the last token's logits only. What is touched
    is the widest activation of a 512-token micro-batch: the FFN's, or without flash attention
    the attention scores over the cells filled so far (padded to 256), whichever is larger.
    Both factors were fitted to RSS measurements (docs/planning.md, "Calibration").
    """
    cal = load_calibration()["memory"]
    a = model.arch
    scores = 0.0 if flash_attn else cal["cpu_attention_scores_factor"] * a.n_heads * _cells(n_ctx, depth)
    return int(4 * cal["n_ubatch"] * max(scores, cal["cpu_ffn_activation_factor"] * a.intermediate_size))


def estimate_memory(
    model: ModelSpec,
    weights: Weights,
    backend: str,
    device: str,
    n_ctx: int,
    n_gpu_layers: int = -1,
    kv_cache_type: str = "f16",
    flash_attn: bool = False,
    split: WeightSplit | None = None,
    depth: int | None = None,
    cuda_graphs: int | None = None,
    resident_threads: int | None = None,
    cuda_runtime: bool = False,
) -> MemoryEstimate:
    """Predicted memory per pool for loading `weights` with these options.

    ``n_gpu_layers`` follows llama.cpp: how many of the n_layers + 1 layers (the repeating ones, then the
    output) go to the GPU, counted from the output down; -1 (or n_layers + 1 and more) is all. It only
    matters for ``device == "cuda"`` (where 0 still costs the CUDA build's context and
    compute buffer); Metal and MLX keep everything in unified memory.
    ``split`` is the file's exact tensor split when the file is at hand (``split_from_tensors``);
    without it the split is derived from the catalog's tensor types. ``depth`` (tokens in the
    context; None = n_ctx, the worst case the planner needs) changes the CPU compute buffer, the one
    buffer whose pages are committed as they are used, and without flash attention the f16 scores ggml's CUDA
    pool holds (``cuda_device_bytes``). ``cuda_graphs``: graphs captured for the
    layers on the host when a CUDA build keeps some there (``cuda_graph_bytes``; None = all of them).
    ``resident_threads``: the CUDA GPU's (``cuda_stack_bytes``; None: as the GPUs the context was measured on).
    ``cuda_runtime``: with ``device == "cpu"``, the load is a CUDA build's that no GPU joins (``machine.cuda_build``:
    a plan on the CPU where another program fills the GPU), which still starts the CUDA runtime on the host.
    """
    catalog = load_catalog()
    cal = load_calibration()["memory"]
    a = model.arch
    if backend not in BACKENDS or device not in DEVICES:
        raise QwenctlError(f"no memory model for backend {backend!r} on {device!r}", code=ExitCode.BAD_INPUT)
    # the process itself: Python, qwenctl and the engine, plus the engine's copy of the vocabulary
    host_runtime = int(cal["host_runtime_bytes"] + cal["host_vocab_bytes_per_token"] * a.vocab_size)

    if backend == "mlx":
        kv = kv_cache_bytes(model, n_ctx, "f16")
        step = min(int(cal["mlx_prefill_step"]), n_ctx)
        compute = int(2 * step * (3 * a.intermediate_size + 4 * a.hidden_size) + cal["compute_fixed_bytes"])
        overhead = host_runtime + (int(cal["mlx_context_bytes"]) if device == "metal" else 0)
        pool = "unified" if device == "metal" else "ram"
        return MemoryEstimate((PoolMemory(pool, weights.total_bytes, kv, compute, overhead),))

    if device == "metal":
        # ggml-metal wraps the mmap'd file as one Metal buffer: the whole file is in the working set
        kv = kv_cache_bytes(model, n_ctx, kv_cache_type)
        compute = _graph_bytes(model, n_ctx, flash_attn, with_output=True)
        overhead = host_runtime + int(cal["metal_context_bytes"])
        return MemoryEstimate((PoolMemory("unified", weights.total_bytes, kv, compute, overhead),))

    if device == "cpu" or n_gpu_layers == 0:
        kv = kv_cache_bytes(model, n_ctx, kv_cache_type)
        if device == "cpu":
            compute = _cpu_compute_bytes(model, n_ctx, flash_attn, depth)
            overhead = host_runtime + (int(cal["cuda_runtime_host_bytes"]) if cuda_runtime else 0)
            return MemoryEstimate((PoolMemory("ram", weights.total_bytes, kv, compute, overhead),))
        # a CUDA build with no layer offloaded still makes its context, and offloads a prompt batch's
        # large products with their weights copied in (its compute buffer: _cuda_no_layer_compute_bytes).
        # The ops left on the CPU take their buffer from the CUDA backend's pinned host type, the same
        # "CUDA_Host compute" buffer a fully offloaded graph has (llama.cpp's log on the H200 lists no CPU
        # compute buffer: 11.5 / 22.0 MiB for 0.5B / 7B with flash attention), not a CPU build's.
        compute = cuda_host_compute_bytes(a, n_ctx, flash_attn)
        s = split or weight_split(catalog, model, weights)
        vram = PoolMemory("vram", 0, 0, _cuda_no_layer_compute_bytes(model, s, n_ctx, flash_attn, kv_cache_type),
                          cuda_device_bytes(a, s, flash_attn, _cells(n_ctx, depth), resident_threads=resident_threads)
                          + cuda_graph_bytes(a.n_layers, cuda_graphs))
        host_overhead = host_runtime + cuda_host_bytes(a, s, kv_cache_type, flash_attn, decode_on_gpu=False)
        return MemoryEstimate((vram, PoolMemory("ram", weights.total_bytes, kv, compute, host_overhead)))

    # llama.cpp counts the output layer as the last of n_layers + 1 it may offload: n_gpu_layers = 5 puts the
    # output and 4 repeating layers on the GPU (split.place_layers)
    placement = place_layers(a.n_layers, n_gpu_layers, (1.0,))
    return estimate_split_memory(model, weights, n_ctx, "layer", placement, (1.0,), ("gpu",), kv_cache_type, flash_attn, split,
                                 cuda_graphs, depth, (resident_threads,))


def estimate_split_memory(
    model: ModelSpec,
    weights: Weights,
    n_ctx: int,
    mode: str,
    placement: Placement,
    proportions: tuple[float, ...],
    kinds: tuple[str, ...],
    kv_cache_type: str = "f16",
    flash_attn: bool = True,
    split: WeightSplit | None = None,
    cuda_graphs: int | None = None,
    depth: int | None = None,
    resident_threads: tuple[int | None, ...] = (),
) -> MemoryEstimate:
    """Memory per device of a model spread over several (llama.cpp's device order: RPC workers, then GPUs).

    ``layer`` mode: each device holds its layers' weights and KV cache and a compute buffer for its part
    of the graph (the logits only where the output layer is); a local GPU also holds its own CUDA context.
    ``tensor`` mode: every weight matrix and the KV cache (by heads) are cut in ``proportions``, and each
    device keeps a whole graph's buffer. ``kinds`` says what each device is: "gpu" (a local CUDA GPU),
    "remote-gpu" or "remote-cpu" (a worker's). A worker runs in another process: its pool holds what the
    worker allocates for this model, not the worker's own runtime; a CPU's compute buffer is committed as
    it is used (``_cpu_compute_bytes``). Layers left on the host run their prompt batches on the first local GPU,
    which holds their CUDA graphs (``cuda_graph_bytes``). ``depth`` as in ``estimate_memory``; ``resident_threads``
    each device's, as ``estimate_memory``'s (missing: unknown).
    """
    cal = load_calibration()["memory"]
    a = model.arch
    s = split or weight_split(load_catalog(), model, weights)
    host_runtime = int(cal["host_runtime_bytes"] + cal["host_vocab_bytes_per_token"] * a.vocab_size)
    pools = []
    # llama.cpp's pipeline parallelism (a layer split with everything offloaded over several devices) keeps
    # n_copies of each device's graph inputs: the attention mask of a micro-batch and its activations
    pipeline = mode == "layer" and len(kinds) > 1 and placement.layers_on(None) == 0 and placement.output_device is not None
    ubatch = int(cal["n_ubatch"])
    copies = int(cal["pipeline_copies"]) * (2 * _padded(n_ctx) * ubatch + 4 * a.hidden_size * ubatch) if pipeline else 0
    for i, kind in enumerate(kinds):
        if mode == "tensor":
            share = proportions[i] / sum(proportions)
            # llama.cpp cuts the layers' matrices and a separate output.weight (llama_meta_device_get_split_state);
            # a tied output is token_embd, which matches none of its split patterns: every GPU holds all of it
            w = round(share * (a.n_layers * s.layer_bytes + (s.output_bytes if s.output_in_file else 0)))
            w += 0 if s.output_in_file else s.output_bytes
            kv = round(share * kv_cache_bytes(model, n_ctx, kv_cache_type))
            compute = _cuda_compute_bytes(model, n_ctx, flash_attn, with_output=True) + int(cal["tensor_split_comm_bytes"])
        elif kind == "remote-cpu":
            layers = placement.layers_on(i)
            has_output = placement.output_device == i
            w = s.layers_bytes(placement.indices_on(i)) + (s.output_bytes if has_output else 0)
            kv = kv_cache_bytes(model, n_ctx, kv_cache_type, layers=layers)
            compute = _cpu_compute_bytes(model, n_ctx, flash_attn, None) if layers or has_output else 0
        else:
            layers = placement.layers_on(i)
            has_output = placement.output_device == i
            w = s.layers_bytes(placement.indices_on(i)) + (s.output_bytes if has_output else 0)
            kv = kv_cache_bytes(model, n_ctx, kv_cache_type, layers=layers)
            compute = _cuda_compute_bytes(model, n_ctx, flash_attn, with_output=has_output) + copies
        local = kind == "gpu"
        # a worker's context exists before the load; what its GPU grows by beyond the buffers is ggml's CUDA pool
        share = proportions[i] / sum(proportions) if mode == "tensor" else 1.0
        threads = resident_threads[i] if i < len(resident_threads) else None
        overhead = (cuda_device_bytes(a, s, flash_attn, _cells(n_ctx, depth), share, threads) if local
                    else int(cal["remote_gpu_pool_bytes"]) if kind == "remote-gpu" else 0)
        pools.append(PoolMemory("vram" if local else "remote", w, kv, compute, overhead, device=i))
    host_layers = placement.layers_on(None) if mode == "layer" else 0
    if host_layers and "gpu" in kinds:
        first = kinds.index("gpu")
        pools[first] = replace(pools[first], overhead_bytes=pools[first].overhead_bytes + cuda_graph_bytes(host_layers, cuda_graphs))
    output_on_host = mode == "layer" and placement.output_device is None
    host_weights = (s.embd_bytes + (s.layers_bytes(placement.indices_on(None)) if mode == "layer" else 0)
                    + (s.output_bytes if output_on_host and s.output_in_file else 0))
    host_kv = kv_cache_bytes(model, n_ctx, kv_cache_type, layers=host_layers)
    local_gpus = "gpu" in kinds
    gpu_layers = sum(a.n_layers if mode == "tensor" else placement.layers_on(i) for i, kind in enumerate(kinds) if kind == "gpu")
    host_overhead = host_runtime + (cuda_host_bytes(a, s, kv_cache_type, flash_attn, decode_on_gpu=True, gpu_layers=gpu_layers)
                                    if local_gpus else 0)
    if local_gpus:
        # the host's ops take their buffer from the CUDA backend's pinned host type, with layers on the host too: their
        # prompt batches run on the GPU (op offload), so it stays the mask and the embeddings (H200, 3B with 7, 17
        # and 27 of 36 layers on the host: the 16.0 MiB "CUDA_Host compute" of every layer offloaded)
        host_compute = cuda_host_compute_bytes(a, n_ctx, flash_attn) * (int(cal["pipeline_copies"]) - 1 if pipeline else 1)
    else:  # a CPU main process with workers: its compute buffer is committed as used
        host_compute = _cpu_compute_bytes(model, n_ctx, flash_attn, None) if host_layers or output_on_host else 0
    return MemoryEstimate((*pools, PoolMemory("ram", host_weights, host_kv, host_compute, host_overhead)))


def idle_gpu(device: int, resident_threads: int | None = None) -> PoolMemory:
    """What a visible GPU that holds no part of the model still costs: the CUDA context llama.cpp opens on
    every GPU while it chooses devices (measured on two H200s: calibration.json; its stacks by the GPU's threads)."""
    idle = int(load_calibration()["memory"]["cuda_idle_context_bytes"]) + cuda_stack_bytes(resident_threads)
    return PoolMemory("vram", 0, 0, 0, idle, device=device)


def fit_gpu_layers(
    model: ModelSpec,
    weights: Weights,
    n_ctx: int,
    vram_budget: int,
    kv_cache_type: str = "f16",
    flash_attn: bool = True,
    split: WeightSplit | None = None,
    resident_threads: int | None = None,
) -> int:
    """How many layers llama.cpp can put on a CUDA GPU within ``vram_budget`` bytes.

    -1 when every layer and the output fit, else the largest ``n_gpu_layers`` (the output layer counts as
    one, and goes first) whose VRAM (weights, KV cache, compute buffer, CUDA context) fits, 0 when not
    even one does.
    VRAM grows with the layer count, so a binary search finds it. The planner and the
    benchmarks that replay published split runs share this one rule.
    """

    def fits(ngl: int) -> bool:
        pool = estimate_memory(model, weights, "llama.cpp", "cuda", n_ctx, ngl, kv_cache_type, flash_attn, split=split,
                               resident_threads=resident_threads).pool("vram")
        assert pool is not None
        return pool.total_bytes <= vram_budget

    return most_layers(model.arch.n_layers, fits)


def most_layers(n_layers: int, fits: Callable[[int], bool]) -> int:
    """The largest ``n_gpu_layers`` whose devices' memory `fits`: -1 when every layer and the output do, 0 when
    not even one layer does. Memory grows with the count, so a binary search finds it (one GPU or several)."""
    if fits(-1):
        return -1
    if not fits(1):
        return 0
    lo, hi = 1, n_layers
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if fits(mid):
            lo = mid
        else:
            hi = mid - 1
    return lo
