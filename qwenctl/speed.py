"""Tokens per second from physics: what each device must read, unpack and multiply per token.

Decoding one token (tg) costs, on every device that holds layers:

    layers x per_layer_cycles[engine] / clock           kernel launches and synchronisation: a fixed
                                                       count of the device's cycles per layer, not
                                                       set by its bandwidth
  + bytes_read / streaming rate                        the weights and the KV cache once (once per query
                                                       head without flash attention), at the smaller
                                                       of the DRAM's rate (bandwidth x efficiency) and
                                                       what the SMs / GPU cores / threads keep in flight
                                                       (units x bytes per cycle x clock: Little's law) and,
                                                       on a GPU without dp4a, what its lanes issue of the
                                                       kernel's instructions (kernels.emulated_dp4a_rate)
  + weights x dequant_ops[engine][quant] / vector_ops   unpacking quantized blocks on the ALUs (Metal, MLX, CPU;
                                                       on CUDA a weight type's cost is its kernel's bytes in flight
                                                       per SM, unit_bytes_per_cycle[type] for each ggml type the
                                                       file stores, measured on the H100 and H200 as decode that
                                                       does not speed up with bandwidth)
  (on a CPU, the reads and unpacking overlap the threads' multiplying: max(them, weights / (threads x
   decode_weights_per_cycle x single-core clock)), which binds a few threads on fast memory; an AMD Zen core is
   priced by the bytes each thread keeps in flight instead, its kernels whole, with no unpacking term: devices.json
   x86_designs; on a Zen 4 the 256-bit kernels of Q5_0, Q5_1, Q8_0, Q3_K and Q5_K each at its own rate, and a token's
   products one by one, each at the slower of its bytes and its instructions: _threads_s)

The latency-bound share of streaming is why an H200 (1.44x the H100's bandwidth, the same 132
SMs) decodes a 7B model only ~1.05x faster, and why a few CPU threads cannot use DDR5's peak. Prompt
processing (pp) of n tokens is one batch: the same fixed and streaming costs once, plus
2 x (layer params x n + output params) FLOPs (only the last token's logits are computed) on the matrix units llama.cpp's kernel for that device uses (`kernels.pp_kernel`:
int8 tensor cores for quantized weights on CUDA since Turing, fp16 for F16/BF16 weights and on
Volta), at pp_efficiency of their peak; from Ampere on, CUDA's quantized products (MMQ) are priced at
what their warps issue instead (`kernels._mmq_issue_rate`), with each weight type's instruction count
(`kernels._cuda_mmq_slowdown`); on CUDA the quantized weights are read once per 128 tokens
(`kernels.mmq_rereads`), which binds a GPU whose matrix units outrun its DRAM (DGX Spark's GB10). A GPU
prompt without flash attention also writes every attention score to DRAM and reads it back
(`_unfused_attention_s`); with it, each (query, key) pair costs its products and softmax (`_prompt_attention`), which
binds a batch read after a long conversation (`SpeedEstimate.pp_at`).

Every constant lives in ``qwenctl/data/speed_model.json`` with how it was fitted: on a fitting
half of published measurements split by device, the other half held out
(benchmarks/speed_model_fit.py). Device figures (bandwidth, ALU and matrix peaks) come from
detection or sourced specifications (``qwenctl.machine``), never from the fit.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from typing import Any

from qwenctl.catalog import ModelSpec, Weights, load_catalog
from qwenctl.cluster import Link
from qwenctl.device_speed import DeviceSpeed, load_speed_model, under_load
from qwenctl.estimate import WeightSplit, kv_cache_bytes, weight_split
from qwenctl.kernels import (
    F16_MMV,
    arm_rowwise_decode,
    attention_pair_s,
    built_before,
    cpu_attention_pair_s,
    cuda_graphs,
    decode_kernel,
    emulated_dp4a_rate,
    f16_decode_bytes_per_cycle,
    mmq_rereads,
    pp_layer_cycles,
    prompt_matrix_rate,
    type_slowdown,
)
from qwenctl.recipe import matrix_shapes
from qwenctl.split import Placement, place_layers

PP_TOKENS = 512  # what pp is quoted for: llama-bench's pp512


@dataclass(frozen=True)
class DeviceTerms:
    """The decode time of one device's share of a token, term by term (seconds)."""

    device: str
    layers: int
    fixed_s: float
    stream_s: float
    dequant_s: float
    bytes_read: float
    bandwidth_bytes_per_s: float
    memory_efficiency: float
    pp_compute_s: float  # the prompt batch's matrix work
    pp_fixed_s: float  # the prompt batch's per-layer costs: launches, activation quantization, partly filled tiles
    pp_stream_s: float | None = None  # the prompt batch's reads, where not `stream_s` (copied to a GPU; attention unfused)
    threads_s: float = 0.0  # a CPU's threads multiplying the token's weights, at their kernels' rate
    pp_types: float = 1.0  # how much longer the prompt's products take for this file's weight types here (`kernels.type_slowdown`)
    context_s: float = 0.0  # what each further token in the KV cache adds: its K and V rows in this device's layers
    context_threads_s: float = 0.0  # a CPU's threads' cycles for each further cached token's attention (cpu_attention_source)
    type_rates: tuple[tuple[str, float, float], ...] = ()  # (ggml type, share of the weight bytes, its bytes/s): `_type_rates`
    pp_attention_s: float = 0.0  # the prompt batch's attention over its own tokens (`_prompt_attention`)
    pp_context_s: float = 0.0  # what each token cached before the batch adds to it
    # host layers whose prompt runs on a GPU: (bytes copied over per batch, bytes/s, what sets that rate)
    pp_copy: tuple[float, float, str] | None = None

    @property
    def decode_s(self) -> float:
        """A CPU's threads multiply while its prefetchers stream the next weights, so the slower of the two sets
        the pace: few threads on fast memory are bound by their kernels, many threads by the memory. (A smooth
        maximum, as `_streaming_rate` takes for its knee, fitted the fitting half's CPUs worse the softer it was.)"""
        return self.decode_after(0)

    def decode_after(self, more_tokens: float) -> float:
        """`decode_s` with ``more_tokens`` more in the KV cache than the reference depth. Attention is a node of its own
        after the weights' products: each further token's K and V rows are streamed (a GPU) or multiplied per head by
        the threads (a CPU, where that, not the bytes, is what binds), whichever takes longer."""
        return self.fixed_s + max(self.stream_s + self.dequant_s, self.threads_s) + self.context_after(more_tokens)

    def context_after(self, more_tokens: float) -> float:
        """What ``more_tokens`` further cached tokens add to a token: their rows streamed, or a CPU's attention on them."""
        return more_tokens * max(self.context_s, self.context_threads_s)

    @property
    def prompt_s(self) -> float:
        return (self.pp_fixed_s + (self.stream_s if self.pp_stream_s is None else self.pp_stream_s) + self.pp_compute_s
                + self.pp_attention_s)


@dataclass(frozen=True)
class SpeedEstimate:
    tg_tps: float  # generation tokens/s, typical
    tg_tps_low: float  # the slow end of the prediction (held-out spread of the model)
    pp_tps: float  # prompt tokens/s for one batch (PP_TOKENS unless asked otherwise)
    chat_tps: float = 0.0  # generation with each token drawn on the host, as a chat sees it
    sampling_s: float = 0.0  # what drawing one token on the host costs
    terms: tuple[DeviceTerms, ...] = field(default=(), compare=False)
    correction: float = 1.0  # this machine's measured/predicted ratio applied (1.0: none)
    correction_source: str | None = None
    pp_correction: float = 1.0  # the same for its prompts, where a bench measured them
    link_s: float = 0.0  # per token: moving activations between devices (part of the decode time)
    link_notes: tuple[str, ...] = ()  # what that time is: "2 hops between GPUs per token", ...
    depth_tokens: int = 0  # the KV cache's depth tg_tps is for (speed_model.json `kv_read_depth_tokens`)
    pp_tokens: int = PP_TOKENS  # the prompt batch pp_tps is for, from an empty cache
    concurrent: bool = False  # the devices work on each token at once (a tensor split): the slowest sets the pace

    @property
    def bytes_read(self) -> float:
        """What one token reads over every device: its weights, and its KV cache at the estimate's depth."""
        return sum(t.bytes_read for t in self.terms)

    @property
    def decode_s(self) -> float:
        """One token's decode over every device, before a correction: the devices' times combined as they work
        (`_combined`) and the links between them."""
        return _combined((t.decode_s for t in self.terms), self.concurrent) + self.link_s

    def tg_at(self, depth_tokens: int) -> float:
        """Generation tokens/s with ``depth_tokens`` already in the KV cache.

        Every generated token reads the K and V rows of every cached token in every layer, so decoding slows as
        a conversation grows: on a GPU the reads are priced at its streaming rate, like the weights' (the H200
        measured within 5 % for a 7B up to 32k tokens, docs/planning.md); on a CPU the threads' work per head and
        cached row binds instead (held out, a 2-vCPU Zen 5 host: 2.7 µs a cached token for the 0.5B, its bytes 0.4). Where
        attention runs unfused (flash attention off) a GPU reads each KV head's rows once per query head of its group
        (`_attention_reads`)."""
        more = depth_tokens - self.depth_tokens
        if not self.terms or more <= 0:
            return self.tg_tps
        added = (_combined((t.decode_after(more) for t in self.terms), self.concurrent)
                 - _combined((t.decode_s for t in self.terms), self.concurrent))
        return 1.0 / (1.0 / self.tg_tps + added / self.correction)

    def first_token_s(self, prompt_tokens: int) -> float:
        """Seconds to read a prompt of ``prompt_tokens`` into an empty cache, batch after batch of `pp_tokens`, each after
        the ones before it (`pp_at`): what a chat that fills its context waits for its first token."""
        batch = self.pp_tokens
        return sum(min(batch, prompt_tokens - done) / self.pp_at(done) for done in range(0, prompt_tokens, batch))

    def pp_at(self, depth_tokens: int) -> float:
        """Prompt tokens/s of the batch when ``depth_tokens`` are already in the KV cache (a conversation's next turn,
        llama-bench's `-d`): every token of the batch also attends to the cached ones (`_prompt_attention`)."""
        if not self.terms or depth_tokens <= 0:
            return self.pp_tps
        added = (_combined((t.prompt_s + depth_tokens * t.pp_context_s for t in self.terms), self.concurrent)
                 - _combined((t.prompt_s for t in self.terms), self.concurrent))
        return 1.0 / (1.0 / self.pp_tps + added / (self.pp_tokens * self.pp_correction))


def _combined(device_times: Iterable[float], concurrent: bool) -> float:
    """A token's time over its devices: the slowest where they work on it at once (a tensor split), else their sum
    (a layer split visits them one after another)."""
    return max(device_times) if concurrent else sum(device_times)


def _streaming_rate(dev: DeviceSpeed, efficiency: float, unit_bytes_per_cycle: float, issue: float | None = None,
                    row_cycles_per_byte: float = 0.0) -> float:
    """Bytes/s one token's reads stream at: the DRAM's rate or what the units keep in flight, whichever binds.

    Little's law: the SMs (GPU cores, threads) issuing the reads hold a bounded number of bytes in
    flight each, so a GPU with more bandwidth but the same SMs (H200 vs H100) cannot use all of it.
    A smooth minimum (p = 3): both limits bite near the knee. What an SM keeps in flight depends on the kernel
    (``unit_bytes_per_cycle`` per weight type on CUDA: the warps its registers allow x the bytes each loads). A CPU
    core whose design says what one thread reads at most (``thread_read_bytes_per_s``: the misses its core keeps in
    flight, devices.json `x86_designs`) is held to that, so a few threads cannot reach the DRAM's rate. ``issue``: what
    the lanes can multiply where the kernel's instructions, not its reads, are the limit (`kernels.emulated_dp4a_rate`).
    ``row_cycles_per_byte``: a unit's cycles for each matrix row beyond streaming its bytes (a thread block's start and
    its closing reduction across warps), spread over the row's bytes: a unit streams slower where rows are short.
    ``fabric_read_bytes_per_s`` (an AMD Ryzen's links from its core complexes to the memory controller) caps the DRAM's
    share outright: a link is a fixed width at a fixed clock, not a memory that loses a share of its peak to refresh
    and page misses (assumed: no published row isolates it; the two that meet it are in devices.json `die_links`).
    """
    dram = dev.bandwidth_bytes_per_s * efficiency
    if dev.fabric_read_bytes_per_s:
        dram = min(dram, dev.fabric_read_bytes_per_s)
    per_unit = dev.thread_read_bytes_per_s or unit_bytes_per_cycle * dev.clock_hz
    if row_cycles_per_byte:
        per_unit = 1.0 / (1.0 / per_unit + row_cycles_per_byte / dev.clock_hz)
    units = dev.compute_units * dev.compute_share * per_unit
    return (dram ** -3 + units ** -3 + (issue ** -3 if issue else 0.0)) ** (-1 / 3)


def per_row_cycles(engine: str) -> float:
    """An engine's fixed cycles a matrix row on a unit (speed_model.json `per_row_cycles`; 0 where it has none)."""
    return float(load_speed_model()["engines"][engine].get("per_row_cycles", 0.0))


def _kernel_rate(dev: DeviceSpeed, efficiency: float, units: dict[str, float], kind: str, engine_date: str | None,
                 shapes: tuple[tuple[int, int], ...] = ()) -> float:
    """`_streaming_rate` of the kernel that reads ``kind`` weights (`kernels.decode_kernel`) on ``dev``; ``shapes``:
    (rows, row length) of the matrices it reads, a layer's.

    The quantized kernels keep a weight type's bytes in flight (`unit_bytes_per_cycle`) and spend a row's fixed cycles
    (`per_row_cycles`) over the average row. CUDA's F16/BF16 kernel (`F16_MMV`) is priced matrix by matrix from its
    geometry (`kernels.f16_decode_bytes_per_cycle`): how many round trips to memory a thread makes depends on the row's
    width, not on its type. The unfused attention's K and V rows (no ``shapes``) stream at the DRAM's rate."""
    entry, multiple = decode_kernel(kind, dev, engine_date)
    if entry == F16_MMV and dev.engine == "cuda":
        if not shapes:
            return _streaming_rate(dev, efficiency, math.inf)
        weights = sum(rows * length for rows, length in shapes)
        return weights / sum(rows * length / _streaming_rate(dev, efficiency, multiple * f16_decode_bytes_per_cycle(dev, length))
                             for rows, length in shapes)
    row_weights = sum(rows * length for rows, length in shapes) / sum(rows for rows, _ in shapes) if shapes else 0.0
    per_row = per_row_cycles(dev.engine) if row_weights else 0.0
    per_byte = per_row / (row_weights * load_catalog().type_bits(kind) / 8) if per_row else 0.0
    return _streaming_rate(dev, efficiency, multiple * units.get(entry, units["default"]), emulated_dp4a_rate(kind, dev),
                           per_byte)


def _type_rates(dev: DeviceSpeed, efficiency: float, units: dict[str, float], split: WeightSplit, weights: Weights,
                engine_date: str | None, shapes: tuple[tuple[int, int], ...] = ()) -> tuple[tuple[str, float, float], ...]:
    """(ggml type, share of the layers' weight bytes, bytes/s its kernel streams at on ``dev``) for each type a file
    stores: the weights stream at each type's rate for that type's bytes (`_streaming_rate`).

    A recipe is no one type: a Q4_K_M quantized from Qwen2.5-72B's weights holds 22 % Q8_0 and 15 % Q5_0 by bytes (the
    fallbacks of its 29,568-long ffn_down rows, which are no multiple of 256; Qwen's own file pads them), the 7B's 80 %
    Q4_K and 20 % Q6_K, and on a GPU whose SMs bind each kernel keeps its own bytes in flight. An MLX file (no per-type
    split) is one entry, its quantization's.
    """
    if not split.layer_type_weights:
        quant = _quant_key(weights)
        return ((quant, 1.0, _kernel_rate(dev, efficiency, units, quant, engine_date, shapes)),)
    bits = load_catalog().type_bits
    parts = [(t, w * bits(t) / 8) for t, w in split.layer_type_weights]
    total = sum(b for _, b in parts)
    return tuple((t, b / total, _kernel_rate(dev, efficiency, units, t, engine_date, shapes)) for t, b in parts)


def _threads_s(dev: DeviceSpeed, split: WeightSplit, layer_params: float, logit_params: float,
               type_rates: tuple[tuple[str, float, float], ...], weight_bytes: float, streaming: float,
               attention_s: float, matrix_rate: float) -> float:
    """What a CPU's threads take to multiply one token's weights at their kernels' rates (0 where not known).

    A kernel's rate is the core's (`thread_weights_per_s`) unless its design runs that type's kernel slower
    (`thread_type_weights_per_s`): on a Zen 4 core the legacy types' and the 3- and 5-bit K-quants' dot products are
    llama.cpp's 256-bit AVX2 loops, where Q4_0 and Q4_K are repacked into wider kernels. Such a design's products are
    priced one by one: llama.cpp runs a token's matrix products one after another, each bound by its own bytes
    (``type_rates``) or its own instructions, so a file that mixes a slow type with a bytes-bound one (Qwen2.5-0.5B's
    Q4_K_M: 70 % of its layers' bytes Q5_0, the rest Q4_K and Q6_K) takes the sum of each product's slower limit,
    the output matrix's and the cache's reads (``attention_s``) added; the decode's max() then takes that sum.

    An Arm core is priced the same way where its llama.cpp was built without the core's dot products
    (`kernels.arm_rowwise_decode`): such a build multiplies a decoded token row by row with the same ggml_vec_dot as
    its prompt, so each quantized product runs at most at a thread's share of the prompt's rate (``matrix_rate``, int8
    ops/s: two a weight), not a figure fitted to decode rows."""
    threads = dev.compute_units * dev.compute_share
    total = sum(w for _, w in split.layer_type_weights)
    stored = {t for t, _ in split.layer_type_weights} | {split.output_type or ""}
    rowwise = {t for t in stored if arm_rowwise_decode(dev, t)}
    if rowwise and total:
        def type_rate(ggml_type: str) -> float:
            return matrix_rate / 2 / threads if ggml_type in rowwise else math.inf
    elif dev.thread_weights_per_s:
        slower = dict(dev.thread_type_weights_per_s)
        if not (slower and total):
            return (layer_params + logit_params) / (threads * dev.thread_weights_per_s)

        def type_rate(ggml_type: str) -> float:
            return slower.get(ggml_type, dev.thread_weights_per_s)
    else:
        return 0.0

    def product_s(ggml_type: str, params: float, bytes_s: float) -> float:  # the slower of its bytes and its instructions
        return max(bytes_s, params / (threads * type_rate(ggml_type)))

    bits = load_catalog().type_bits
    streams = {t: rate for t, _, rate in type_rates}
    seconds = layer_bytes = 0.0
    for ggml_type, w in split.layer_type_weights:
        params = layer_params * w / total
        type_bytes = params * bits(ggml_type) / 8
        layer_bytes += type_bytes
        seconds += product_s(ggml_type, params, type_bytes / streams[ggml_type])
    output = product_s(split.output_type or "", logit_params, max(weight_bytes - layer_bytes, 0.0) / streaming)
    return seconds + output + attention_s


def _quant_key(weights: Weights) -> str:
    return weights.quant if weights.format == "gguf" else f"mlx-{weights.quant}"


def _per_layer_cycles(e: dict[str, Any], dev: DeviceSpeed, engine_date: str | None, pipeline: bool = False) -> float:
    """Cycles a layer of one decoded token costs beyond its reads: a count of kernels, each with its launch and tail.

    llama.cpp's CUDA backend fuses a layer's small kernels (RMS norm with its multiplication, the
    residual adds with the next norm, ...) since `kernel_fusion_since` (speed_model.json, with the
    pull requests): a build from before runs more kernels a layer, so it has its own constant, as
    Pascal and Maxwell do on every build (`no_cuda_graph_families`: no mat-vec fusion there). Where
    llama.cpp runs without CUDA graphs (`cuda_graphs`: below Volta, on Volta and Turing before
    2026-07, and over a layer split of every layer before 2025-05: ``pipeline``) it launches every
    kernel from the host: `per_layer_no_graph_factor` times the cost. Each kernel ends in a barrier
    across every die of the GPU: a second die (an Apple Ultra) adds `cross_die_fixed_factor` of the
    cost.

    On a CPU every graph node ends in ggml's barrier: each thread increments one shared counter and
    spins until all have, so a barrier costs a cache-line handover per thread and a layer's fixed cost
    grows with the threads (`per_layer_cycles_per_thread`), which is why more threads stop helping a
    small model's decode long before the memory saturates.
    """
    if "per_layer_cycles_per_thread" in e:
        return float(e["per_layer_cycles_per_thread"]) * dev.compute_units
    sm = load_speed_model()
    paths = sm["kernel_paths"]
    since = paths.get("kernel_fusion_since")
    graphs = dev.engine != "cuda" or cuda_graphs(dev.family, engine_date, pipeline)
    unfused = dev.engine == "cuda" and ((since and built_before(engine_date, since))
                                        or dev.family in paths.get("no_cuda_graph_families", ()))
    cycles = float(e["per_layer_cycles_unfused" if unfused else "per_layer_cycles"])
    if not graphs:
        cycles *= float(e["per_layer_no_graph_factor"])
    return cycles * (1 + sm["cross_die_fixed_factor"] * (dev.dies - 1))


def estimate_speed(
    model: ModelSpec,
    weights: Weights,
    gpu: DeviceSpeed | None,
    host: DeviceSpeed,
    n_gpu_layers: int = -1,
    kv_cache_type: str = "f16",
    split: WeightSplit | None = None,
    pp_tokens: int = PP_TOKENS,
    sampling: bool = False,
    engine_date: str | None = None,
    flash_attn: bool = True,
) -> SpeedEstimate:
    """Predicted decode (tg) and prompt (pp) tokens/s of one device (or the host alone), with its terms.

    ``gpu`` is None for CPU-only plans; with a GPU, ``n_gpu_layers`` as llama.cpp counts them (the output
    layer first, then repeating layers from the last; -1: all) run there and the rest on ``host``. Metal
    and MLX plans pass the Apple GPU as ``gpu`` with every layer on it. ``pp_tokens``: the prompt batch pp
    is for. ``sampling``: include drawing each token on the host (what a chat sees; llama-bench's tg does
    not sample), which costs time in proportion to the vocabulary. ``engine_date``: see `kernels.pp_kernel`.
    ``flash_attn``: whether llama.cpp runs attention as one fused kernel (what qwenctl's GPU plans ask for).
    """
    if gpu is None:
        return estimate_placed_speed(model, weights, (), host, place_layers(model.arch.n_layers, 0, ()),
                                     kv_cache_type=kv_cache_type, split=split, pp_tokens=pp_tokens, sampling=sampling,
                                     engine_date=engine_date, flash_attn=flash_attn)
    placement = place_layers(model.arch.n_layers, n_gpu_layers, (1.0,))
    return estimate_placed_speed(model, weights, (gpu,), host, placement, kv_cache_type=kv_cache_type, split=split,
                                 pp_tokens=pp_tokens, sampling=sampling, engine_date=engine_date, flash_attn=flash_attn)


@dataclass(frozen=True)
class Links:
    """What connects the devices of a split: local GPUs to each other, and each RPC worker's network link.

    ``remote[i]`` is the link to device i when it belongs to a worker (None for a local device);
    ``peer_bytes_per_s``: GPU-to-GPU bandwidth inside the machine (NVLink or PCIe).
    """

    remote: tuple[Link | None, ...] = ()
    peer_bytes_per_s: float = 0.0
    peer_source: str = ""
    peer_nvlink: bool = False  # NVLink between the GPUs (else PCIe): sets the all-reduce cost of a tensor split


def estimate_placed_speed(
    model: ModelSpec,
    weights: Weights,
    devices: tuple[DeviceSpeed, ...],
    host: DeviceSpeed,
    placement: Placement,
    mode: str = "layer",
    proportions: tuple[float, ...] = (),
    links: Links = Links(),
    kv_cache_type: str = "f16",
    split: WeightSplit | None = None,
    pp_tokens: int = PP_TOKENS,
    sampling: bool = False,
    engine_date: str | None = None,
    flash_attn: bool = True,
) -> SpeedEstimate:
    """Predicted tg and pp of a model placed over ``devices`` (llama.cpp's order) and the host.

    ``layer`` mode: a token visits the devices one after another, so their times add, plus a hop
    wherever its activations change device (``links.gpu_hop_s`` between local GPUs; a worker's round
    trips, its per-graph cost and the activations over its link for every visit to a worker).
    ``tensor`` mode: every device works on every layer with its share of each matrix at the same time
    (the slowest sets the pace), and the partial results are summed across devices twice per layer: a
    synchronisation latency plus the activations over the GPU-to-GPU link.
    """
    sm = load_speed_model()
    devices = tuple(under_load(d) for d in devices)
    a = model.arch
    s = split or weight_split(load_catalog(), model, weights)
    depth = int(sm["kv_read_depth_tokens"])
    kv_per_layer = kv_cache_bytes(model, depth, kv_cache_type, layers=1)
    params_per_layer = (model.params - a.vocab_size * a.hidden_size * (1 if a.tied_embeddings else 2)) / a.n_layers
    out_params = a.vocab_size * a.hidden_size
    shapes = tuple(matrix_shapes(a).values())  # (rows, row length) of a layer's matrices

    # device, layers, weight bytes read, weights multiplied for every token, output weights multiplied (the logits),
    # the layers whose K and V rows a token reads (a tensor split's share of all of them)
    shares: list[tuple[DeviceSpeed, int, float, float, float, float]] = []
    host_share = False
    if mode == "tensor":
        total = sum(proportions)
        for dev, p in zip(devices, proportions):
            f = p / total
            out_share = f if s.output_in_file else 1.0  # a tied output (token_embd) is not cut: every GPU reads all of it
            shares.append((dev, a.n_layers, f * a.n_layers * s.layer_bytes + out_share * s.output_bytes,
                           f * a.n_layers * params_per_layer, out_share * out_params, f * a.n_layers))
    else:
        for i, dev in enumerate(devices):
            layers, out = placement.layers_on(i), placement.output_device == i
            if layers or out:
                shares.append((dev, layers, layers * s.layer_bytes + (s.output_bytes if out else 0),
                               layers * params_per_layer, out_params if out else 0, layers))
        host_layers, out = placement.layers_on(None), placement.output_device is None
        if host_layers or out:
            host_share = bool(devices)
            shares.append((host, host_layers, host_layers * s.layer_bytes + (s.output_bytes if out else 0),
                           host_layers * params_per_layer, out_params if out else 0, host_layers))

    # llama.cpp's pipeline parallelism: several devices in layer mode holding every layer and the output
    pipeline = mode == "layer" and len(devices) > 1 and placement.layers_on(None) == 0 and placement.output_device is not None
    quant = _quant_key(weights)
    terms = []
    uncertainty = 0.0
    for dev, layers, weight_bytes, layer_params, logit_params, kv_layers in shares:
        params = layer_params + logit_params
        e = sm["engines"][dev.engine]
        pp_e = sm["engines"][e["pp_constants"]] if "pp_constants" in e else e  # an engine with no prompt rows of its own
        family = sm["families"].get(dev.family, {})
        eff = sm["memory_efficiency_of_sustained"][dev.bandwidth_measure] if dev.bandwidth_measure else _memory_efficiency(sm, dev)
        unpack = e.get("dequant_ops_per_weight", {})  # CUDA has none: its kernels unpack while their loads are in flight
        dequant = unpack.get(quant, unpack.get("default", 0.0))
        matrix_rate, dequant_bytes = prompt_matrix_rate(sm, dev, pp_e, weights, engine_date, a, pp_tokens, layers)
        types = type_slowdown(dev, s, weights, engine_date)
        units = e["unit_bytes_per_cycle"]
        type_rates = _type_rates(dev, eff, units, s, weights, engine_date, shapes)
        streaming = 1.0 / sum(share / rate for _, share, rate in type_rates)
        attention_per_layer, attention_kernel = _attention_reads(dev, a, kv_per_layer, depth, flash_attn)
        attention_rate = streaming if attention_kernel is None else _kernel_rate(dev, eff, units, attention_kernel, engine_date)
        attention_s = kv_layers * attention_per_layer / attention_rate
        own_attention, per_cached_token = _prompt_attention(dev, a, kv_layers, pp_tokens, flash_attn, eff, engine_date)
        terms.append(DeviceTerms(
            device=dev.name,
            layers=layers,
            fixed_s=layers * _per_layer_cycles(e, dev, engine_date, pipeline) / dev.clock_hz,
            stream_s=weight_bytes / streaming + attention_s,
            # a prompt reads the cache once; its own unfused attention is `_unfused_attention_s`
            pp_stream_s=None if attention_kernel is None else (weight_bytes + kv_layers * kv_per_layer) / streaming,
            # a core design measured whole (devices.json x86_designs) has its unpacking inside its threads' kernel rate
            dequant_s=0.0 if dev.thread_read_bytes_per_s else params * dequant / (dev.vector_ops * dev.compute_share),
            threads_s=_threads_s(dev, s, layer_params, logit_params, type_rates, weight_bytes, streaming, attention_s,
                                 matrix_rate),
            bytes_read=weight_bytes + kv_layers * attention_per_layer,
            bandwidth_bytes_per_s=dev.bandwidth_bytes_per_s,
            memory_efficiency=eff,
            # a prompt needs the logits of its last token only (llama.cpp outputs just that row; mlx-lm
            # evaluates only the KV cache until the last token): the output matrix multiplies one token
            pp_compute_s=2 * (layer_params * pp_tokens * types + logit_params) / matrix_rate
            + layer_params * dequant_bytes / streaming
            + mmq_rereads(dev, pp_tokens, weights, engine_date) * (layer_params / params_per_layer) * s.layer_bytes / streaming,
            pp_fixed_s=layers * pp_layer_cycles(pp_e, dev, weights, engine_date) / dev.clock_hz,
            pp_types=types,
            context_s=attention_s / depth,
            context_threads_s=kv_layers * a.n_heads * e.get("attention_cycles_per_head_row", 0.0)
            / (dev.compute_units * dev.compute_share * dev.clock_hz),
            type_rates=type_rates,
            pp_attention_s=own_attention,
            pp_context_s=per_cached_token,
        ))
        uncertainty = max(uncertainty, family.get("uncertainty", e["uncertainty"]))  # a family's own, where wider
        if dev.bandwidth_assumed:  # a CPU's rating or the fallback: the machine may run slower memory, or one DIMM
            uncertainty = max(uncertainty, sm["assumed_bandwidth_uncertainty"])
    offload_to = next((d for d in devices if d.engine == "cuda"), None)
    if host_share and offload_to is not None and pp_tokens >= sm["links"]["op_offload_min_batch"]:
        terms[-1] = _prompt_offloaded(terms[-1], shares[-1], offload_to, a, weights, s, pp_tokens, engine_date, sm, host)
    if host_share and any(d.engine != "cpu" for d in devices):
        uncertainty = max(uncertainty, sm["split_uncertainty"])  # a GPU/host split: the host's share is the shaky part
    link_s, link_pp_s, notes = _link_costs(sm["links"], a, placement, mode, len(devices), links, pp_tokens)
    if notes:
        uncertainty = max(uncertainty, sm["links"]["uncertainty"])
    concurrent = mode == "tensor"
    prompt_s = _combined((t.prompt_s for t in terms), concurrent) + link_pp_s
    sample_s = a.vocab_size * sm["sampling_s_per_vocab_entry"]
    est = SpeedEstimate(tg_tps=0.0, tg_tps_low=0.0, pp_tps=pp_tokens / prompt_s, sampling_s=sample_s, terms=tuple(terms),
                        link_s=link_s, link_notes=tuple(notes), depth_tokens=depth, pp_tokens=pp_tokens, concurrent=concurrent)
    tg = 1.0 / (est.decode_s + (sample_s if sampling else 0.0))
    return replace(est, tg_tps=tg, tg_tps_low=tg * (1 - uncertainty), chat_tps=1.0 / (est.decode_s + sample_s))


def memory_family(family: str) -> str:
    """The family whose share of its DRAM's peak a device's reads reach. A CPU's is its platform's ("cpu-x86"), not
    its instruction set's: how much of the memory's bandwidth the cores' reads keep busy is a matter of the memory
    controller and the prefetchers, which an AVX-512 core shares with an AVX2 one. A GPU's is its own family's."""
    return "cpu-x86" if family.startswith("cpu-x86") else family


def _memory_efficiency(sm: dict[str, Any], dev: DeviceSpeed) -> float:
    """A device's share of its DRAM's peak: its family's where fitted (`memory_family`), else its memory kind's."""
    own = sm["families"].get(memory_family(dev.family), {})
    return float(own.get("memory_efficiency", sm["memory_efficiency"][dev.memory_kind]))


def _prompt_attention(dev: DeviceSpeed, a, kv_layers: float, n_tokens: int, flash_attn: bool,
                      efficiency: float, engine_date: str | None = None) -> tuple[float, float]:
    """A prompt batch's attention: (its time over the batch's own tokens, what each token cached before the batch adds
    to it), `DeviceTerms.pp_attention_s` and `pp_context_s`.

    With flash attention (and MLX's fused attention, which every mlx-lm prompt runs) each (query, key) pair costs
    its products and its softmax (`kernels.attention_pair_s`); a causal batch of n tokens after d cached ones holds
    n x (d + (n + 1) / 2) pairs a layer. At pp512 that is little beside the weights' products (0.5 % of a 7B's on an
    H100), after 32k cached tokens two thirds as much again. Without flash attention the scores go through DRAM instead
    (`_unfused_attention_s`), over every pair of the batch, masked or not. On a CPU the batch's attention over its own
    tokens with llama.cpp's tiled kernel is inside the prompt constants, fitted on empty-cache rows of builds that
    have it; a build from before walked each pair with the vector kernel a decoded token runs
    (`kernels.cpu_attention_pair_s`), several times the tiled kernel's cost and a large share of a small model's
    prompt: it pays the difference. The cached tokens before the batch are added at the build's pair cost (without
    flash attention, at the tiled one's)."""
    if dev.engine == "cpu":
        tiled = kv_layers * attention_pair_s(dev, a.n_heads, a.head_dim)
        if not flash_attn:
            return 0.0, tiled * n_tokens
        per_pair = kv_layers * cpu_attention_pair_s(dev, a.n_heads, a.head_dim, engine_date)
        return max(per_pair - tiled, 0.0) * n_tokens * (n_tokens + 1) / 2, per_pair * n_tokens
    if flash_attn or dev.engine == "mlx":
        per_pair = kv_layers * attention_pair_s(dev, a.n_heads, a.head_dim)
        return per_pair * n_tokens * (n_tokens + 1) / 2, per_pair * n_tokens
    unfused = _unfused_attention_s(dev, a, kv_layers, n_tokens, efficiency)
    return unfused, unfused / n_tokens


def _unfused_attention_s(dev: DeviceSpeed, a, layers: float, n_tokens: int, efficiency: float) -> float:
    """What a prompt batch's attention costs a GPU beyond its matrix products when flash attention is off.

    Without the fused kernel llama.cpp builds attention from separate ops (llama-graph.cpp, build_attn_mha): the
    product of K and Q writes one score per head, token and cached token to memory, the softmax reads and writes
    them, and the product with V reads them; each pass streams through DRAM (speed_model.json
    `attention_without_flash`: bytes per score per engine, with how they were counted). On CUDA the K x Q product
    is asked for at fp32 precision, which cuBLAS computes on the fp32 ALUs, not the tensor cores. A lower bound:
    the kernels' own costs are not priced. Llama-bench's prompt starts from an empty cache, so it attends over its
    own tokens."""
    k = load_speed_model()["attention_without_flash"]
    score_bytes = k["score_bytes"].get(dev.engine)
    if score_bytes is None:
        return 0.0
    scores = layers * a.n_heads * n_tokens * n_tokens
    seconds = scores * score_bytes / (dev.bandwidth_bytes_per_s * efficiency)
    if dev.engine in k["fp32_score_product"]:
        seconds += 2 * scores * a.head_dim / (dev.vector_ops * dev.compute_share)
    return seconds


def _attention_reads(dev: DeviceSpeed, a, kv_bytes: float, tokens: int, flash_attn: bool) -> tuple[float, str | None]:
    """Bytes one layer's attention moves for one decoded token over ``tokens`` cached tokens whose K and V rows take
    ``kv_bytes``, and the `unit_bytes_per_cycle` kernel that moves them (None: the flash kernel, priced at the weights'
    kernel's streaming rate, which the H200 measured within 5 % for a 7B up to 32k tokens).

    Flash attention reads each KV head's rows once for all the query heads of its group. Without it llama.cpp
    multiplies K by Q and V by the scores as two broadcast matrix-vector products (build_attn_mha; on CUDA
    mul_mat_vec_f, one block per row and query head, on Metal mul_mv alike), so every query head reads its group's
    K and V rows again, at the F16 mat-vec kernel's rate, and each score is written, softmaxed and read
    (speed_model.json `attention_without_flash`). A CPU's attention is priced in its threads' cycles instead.
    """
    k = load_speed_model()["attention_without_flash"]
    if flash_attn or dev.engine not in k["score_bytes"]:
        return kv_bytes, None
    return kv_bytes * a.n_heads / a.n_kv_heads + tokens * a.n_heads * k["decode_score_bytes"], "F16"


def _prompt_offloaded(terms: DeviceTerms, share: tuple, gpu: DeviceSpeed, a, weights: Weights, split: WeightSplit,
                      pp_tokens: int, engine_date: str | None, sm: dict[str, Any], host: DeviceSpeed) -> DeviceTerms:
    """The host's layers of a prompt batch (its ``terms``) as a CUDA build runs them: on the GPU, their weights copied
    over per batch.

    ggml's scheduler hands an op whose weights sit in host memory to the GPU when its batch has at least
    `op_offload_min_batch` (32) tokens (ggml-cuda.cu, ``ggml_backend_cuda_device_offload_op``; the memory model's
    CUDA graphs per host layer are these). Each batch then copies every host layer's weights from pageable
    memory (the mmap'd file) to the GPU, a copy per weight matrix, each with its staging cost, and the GPU
    multiplies them; the output layer's one row stays on the host. The copy runs at the host's staging rate or, where
    the GPU's PCIe link is narrower (a T4 at gen 3 x8, an eGPU, a card in a x4 slot), the link's. The batch's attention
    over its own tokens, which stays with the cache on the host, is not added: the copy's constants were solved from
    rows that hold it.
    """
    _, layers, _, layer_params, _, _ = share
    e = sm["engines"]["cuda"]
    matrix_rate, _ = prompt_matrix_rate(sm, gpu, e, weights, engine_date, a, pp_tokens, layers)
    types = type_slowdown(gpu, split, weights, engine_date)
    link = sm["links"]
    # one host thread copies the pages into pinned buffers: at its core design's measured rate (devices.json
    # x86_designs), else the H200 machine's (an Emerald Rapids host)
    staging = host.staging_copy_bytes_per_s or link["host_to_gpu_pageable_bytes_per_s"]
    pcie = gpu.host_link_bytes_per_s or math.inf
    rate = min(staging, pcie)
    copy_s = layers * (split.layer_bytes / rate + link["host_to_gpu_per_layer_s"])
    binds = "the GPU's PCIe link" if pcie < staging else "the host's copy into pinned memory"
    return replace(terms, pp_stream_s=copy_s, pp_copy=(layers * split.layer_bytes, rate, binds),
                   pp_compute_s=2 * layer_params * pp_tokens * types / matrix_rate,
                   pp_fixed_s=layers * pp_layer_cycles(e, gpu, weights, engine_date) / gpu.clock_hz, pp_types=types,
                   pp_attention_s=0.0)


def _link_costs(k: dict[str, Any], a, placement: Placement, mode: str, n_devices: int, links: Links,
                pp_tokens: int) -> tuple[float, float, list[str]]:
    """(decode seconds, prompt seconds, what they are) spent moving activations between devices."""
    act = a.hidden_size * 4  # one token's activations between layers: f32
    decode = prompt = 0.0
    notes = []
    if mode == "tensor" and n_devices > 1:
        # NVLink: measured on two H200s; PCIe: from one published 4x RTX 4090 pair (speed_model.json's links); an
        # all-reduce over n GPUs takes ceil(log2 n) exchanges, each one such latency (`tensor_sync_scaling`)
        sync = (k["tensor_sync_s"] if links.peer_nvlink else k["tensor_sync_pcie_s"]) * math.ceil(math.log2(n_devices))
        peer = links.peer_bytes_per_s if links.peer_nvlink else k["pcie_allreduce_bytes_per_s"]
        moved = 2 * a.n_layers * act * (n_devices - 1) / n_devices  # two all-reduces per layer
        decode = 2 * a.n_layers * sync + moved / peer
        prompt = 2 * a.n_layers * sync + moved * pp_tokens / peer
        notes.append(f"{2 * a.n_layers} all-reduces per token over {links.peer_source or 'PCIe (assumed)'}")
        return decode, prompt, notes
    path = placement.path
    hops = remote_visits = 0
    for before, after in zip(path, path[1:]):
        if before == after:
            continue
        into = links.remote[after] if after is not None and after < len(links.remote) else None
        if into is not None:
            remote_visits += 1
            decode += k["rpc_graph_s"] + k["rpc_round_trips"] * into.rtt_s + 2 * act / into.bandwidth_bytes_per_s
            prompt += k["rpc_graph_s"] + k["rpc_round_trips"] * into.rtt_s + 2 * act * pp_tokens / into.bandwidth_bytes_per_s
        elif before is not None and after is not None:
            hops += 1
            decode += k["gpu_hop_s"]
            prompt += k["gpu_hop_s"] + act * pp_tokens / (links.peer_bytes_per_s or k["pcie_bytes_per_s"])
    last = links.remote[placement.output_device] if placement.output_device is not None and placement.output_device < len(links.remote) else None
    if last is not None:  # the logits come back over the worker's link: a vocabulary of f32 per token
        decode += a.vocab_size * 4 / last.bandwidth_bytes_per_s
        prompt += a.vocab_size * 4 / last.bandwidth_bytes_per_s
    if hops:
        notes.append(f"{hops} hop{'s' if hops > 1 else ''} between GPUs per token")
    if remote_visits:
        notes.append(f"{remote_visits} visit{'s' if remote_visits > 1 else ''} to RPC workers per token")
    return decode, prompt, notes


def corrected(estimate: SpeedEstimate, factor: float, source: str, pp_factor: float = 1.0) -> SpeedEstimate:
    """The estimate's generation speed, and its prompt speed by its own factor, scaled by what this machine measured
    against earlier predictions."""
    return replace(estimate, tg_tps=estimate.tg_tps * factor, tg_tps_low=estimate.tg_tps_low * factor,
                   chat_tps=estimate.chat_tps * factor, correction=factor, correction_source=source,
                   pp_tps=estimate.pp_tps * pp_factor, pp_correction=pp_factor)
