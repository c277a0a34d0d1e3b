"""The Qwen2.5 Instruct family as data: sizes, architecture, downloadable weights, quality.

Everything here is loaded from ``qwenctl/data/models.json`` and ``quants.json``; each figure
there carries its source. The catalog knows nothing about hardware: ``estimate`` turns a
``ModelSpec`` + ``Weights`` into bytes and tokens per second, ``plan`` chooses.

Quality is one number per (size, weights): the mean of Qwen's published instruct benchmark
scores for the size, scaled down for quants that lose measurably (llama.cpp's KL divergence
figures). Quants at or better than the near-lossless threshold (Q4_K_M and up) score the same
as the original, so the planner treats them as ties and picks the faster one.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from dataclasses import dataclass, replace
from functools import lru_cache
from importlib import resources

from qwenctl.errors import ExitCode, QwenctlError

FORMATS = ("gguf", "mlx")


@dataclass(frozen=True)
class Architecture:
    hidden_size: int
    n_layers: int
    n_heads: int
    n_kv_heads: int
    head_dim: int
    intermediate_size: int
    vocab_size: int
    tied_embeddings: bool
    context_native: int  # what the weights handle without rope scaling
    context_max: int  # with YaRN rope scaling (7B and larger), else = native


@dataclass(frozen=True)
class RepoFile:
    name: str
    bytes: int | None  # None where only the name is known (some 72B split parts)
    sha256: str | None


@dataclass(frozen=True)
class Weights:
    """One downloadable variant of a model: a GGUF quant or an MLX repo."""

    format: str  # "gguf" | "mlx"
    quant: str  # catalog key: "q4_k_m", "fp16", "4bit", "bf16", ...
    label: str  # display name: "Q4_K_M", "MLX 4-bit"
    repo: str
    files: tuple[RepoFile, ...]  # every part of a split GGUF; () for MLX = the whole repo snapshot
    total_bytes: int
    bytes_exact: bool  # False: computed (see source), not read from the hub
    bits: int  # nominal bits per weight of the bulk of the tensors
    kld: float  # KL divergence to the unquantized model (llama.cpp scoreboard), nats/token
    embd_type: str | None  # ggml type of token_embd.weight (GGUF only)
    output_type: str | None  # ggml type of output.weight (GGUF only)
    source: str
    # llama.cpp's recipe for the file type (GGUF only): the types of the matrices whose rows are hidden_size
    # long (attention, FFN gate and up) and of ffn_down, before the fallback for rows k-quants cannot block
    hidden_row_types: tuple[str, ...] = ()
    ffn_down_types: tuple[str, ...] = ()
    # the file stores output.weight beside token_embd.weight: every untied model's does, and so do Qwen's own 0.5B-3B
    # GGUFs although their architecture ties the two; llama.cpp then multiplies by output.weight and only looks
    # token_embd up (a tied file without it gets a copy of token_embd as its output matrix at load time)
    output_in_file: bool = False
    # the feed-forward length the file's matrices are stored at, where it pads the architecture's: Qwen's own 72B GGUFs
    # pad 29,568 to 29,696, so every ffn_down row holds whole k-quant blocks and none takes a 32-value fallback type
    # (None: the architecture's)
    feed_forward_length: int | None = None

    @property
    def file_names(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.files)


@dataclass(frozen=True)
class ModelSpec:
    size: str  # "7B"
    hf_repo: str
    license: str
    params: int
    arch: Architecture
    scores: tuple[tuple[str, float], ...]  # (benchmark, score) from Qwen's technical report
    score: float  # mean of scores: the size's quality before quantization
    weights: tuple[Weights, ...]
    sources: tuple[str, ...]

    @property
    def billions(self) -> float:
        return float(self.size.rstrip("B"))

    def weights_for(self, format: str, quant: str) -> Weights:
        for w in self.weights:
            if w.format == format and w.quant == quant:
                return w
        known = ", ".join(w.quant for w in self.weights if w.format == format)
        raise QwenctlError(
            f"Qwen2.5-{self.size} has no {format} weights {quant!r}",
            hint=f"choose one of {known}",
            code=ExitCode.NOT_FOUND,
        )


@dataclass(frozen=True)
class GenerationDefaults:
    system_prompt: str
    temperature: float
    top_p: float
    top_k: int
    repeat_penalty: float
    sources: tuple[str, ...]


@dataclass(frozen=True)
class Catalog:
    models: tuple[ModelSpec, ...]  # smallest first
    generation: GenerationDefaults
    near_lossless_kld: float
    ggml_type_blocks: tuple[tuple[str, tuple[int, int]], ...]  # ggml type -> (values, bytes) of one block (ggml_types.json)
    kv_bytes_per_value: tuple[tuple[str, float], ...]  # cache type -> bytes per stored value
    k_quant_fallback: tuple[tuple[str, str], ...]  # k-quant -> the 32-value type llama.cpp stores odd-length rows in

    def model(self, size: str) -> ModelSpec:
        wanted = size.strip().upper()
        if not wanted.endswith("B"):
            wanted += "B"
        for m in self.models:
            if m.size.upper() == wanted:
                return m
        raise QwenctlError(
            f"no Qwen2.5 size {size!r}",
            hint=f"choose one of {', '.join(m.size for m in self.models)}",
            code=ExitCode.NOT_FOUND,
        )

    def quality(self, model: ModelSpec, weights: Weights) -> float:
        """Benchmark mean of the size, scaled by exp(-KLD) below the near-lossless line."""
        if weights.kld <= self.near_lossless_kld:
            return model.score
        return model.score * math.exp(-weights.kld)

    def type_block(self, ggml_type: str) -> tuple[int, int]:
        """(values, bytes) of one block of ``ggml_type``: Q4_K stores 256 values in 144 bytes."""
        return dict(self.ggml_type_blocks)[ggml_type]

    def type_bits(self, ggml_type: str) -> float:
        values, size = self.type_block(ggml_type)
        return 8 * size / values

    def stored_type(self, ggml_type: str, row_length: int) -> str:
        """The type llama.cpp stores a matrix of ``ggml_type`` in: a k-quant on rows that are no multiple of its
        256-value block takes its 32-value fallback (0.5B's 896-long rows: Q4_K -> Q5_0, Q6_K -> Q8_0)."""
        return dict(self.k_quant_fallback).get(ggml_type, ggml_type) if row_length % 256 else ggml_type

    def matrix_types(self, model: ModelSpec, weights: Weights) -> frozenset[str]:
        """The ggml types of the matrices a GPU multiplies for every token of a planned GGUF: its recipe's types,
        stored as llama.cpp stores them (`stored_type`; 0.5B Q4_K_M: Q4_K, Q6_K, and Q5_0, Q8_0 for the 896-long
        rows). Each type brings its own kernels."""
        def stored(types: Iterable[str], row: int) -> set[str]:
            return {self.stored_type(t, row) for t in types}

        a = stored_shape(model.arch, weights)
        output = (weights.output_type,) if weights.output_type else ()
        return frozenset(stored((*weights.hidden_row_types, *output), a.hidden_size)
                         | stored(weights.ffn_down_types, a.intermediate_size))

    def kv_bytes(self, cache_type: str) -> float:
        try:
            return dict(self.kv_bytes_per_value)[cache_type]
        except KeyError:
            raise QwenctlError(
                f"unknown KV cache type {cache_type!r}",
                hint=f"choose one of {', '.join(k for k, _ in self.kv_bytes_per_value)}",
                code=ExitCode.BAD_INPUT,
            ) from None

    def quants(self, format: str) -> tuple[str, ...]:
        """Every quant key of a format, in catalog order (fewest bits first)."""
        seen: list[str] = []
        for m in self.models:
            for w in m.weights:
                if w.format == format and w.quant not in seen:
                    seen.append(w.quant)
        return tuple(sorted(seen, key=lambda q: _quant_bits_order(self, format, q)))


def _quant_bits_order(catalog: Catalog, format: str, quant: str) -> tuple[int, float]:
    for m in catalog.models:
        for w in m.weights:
            if w.format == format and w.quant == quant:
                return (w.bits, -w.kld)
    return (0, 0.0)


def stored_shape(arch: Architecture, weights: Weights) -> Architecture:
    """The shape a GGUF's matrices are stored in: the architecture's, with the feed-forward its file pads to."""
    return replace(arch, intermediate_size=weights.feed_forward_length) if weights.feed_forward_length else arch


def _read(name: str) -> dict:
    return json.loads(resources.files("qwenctl.data").joinpath(name).read_text(encoding="utf-8"))


def _weights(format: str, quant: str, q: dict, meta: dict, repo: str, output_in_file: bool = False,
             feed_forward_length: int | None = None) -> Weights:
    """One variant from models.json (`q`: files, sizes, source) and quants.json (`meta`: what the quant is).
    MLX variants list no files (the whole repo snapshot) and no per-tensor types."""
    return Weights(
        format=format,
        quant=quant,
        label=meta["label"],
        repo=repo,
        files=tuple(RepoFile(f["name"], f["bytes"], f["sha256"]) for f in q.get("files", ())),
        total_bytes=int(q["total_bytes"]),
        bytes_exact=bool(q["bytes_exact"]),
        bits=int(meta["bits"]),
        kld=float(meta["kld"]),
        embd_type=meta.get("embd_type"),
        output_type=meta.get("output_type"),
        source=q["source"],
        hidden_row_types=tuple(meta.get("hidden_row_types", ())),
        ffn_down_types=tuple(meta.get("ffn_down_types", ())),
        output_in_file=output_in_file,
        feed_forward_length=feed_forward_length,
    )


@lru_cache(maxsize=1)
def load_catalog() -> Catalog:
    """Parse the shipped data files once per process."""
    models_doc = _read("models.json")
    quants_doc = _read("quants.json")
    gguf_q = quants_doc["gguf"]
    mlx_q = quants_doc["mlx"]
    models = []
    for size, m in models_doc["models"].items():
        a = m["arch"]
        arch = Architecture(**a)
        gguf = m["gguf"]
        output_in_file = bool(gguf.get("output_in_file", not arch.tied_embeddings))
        weights = [_weights("gguf", quant, q, gguf_q[quant], gguf["repo"], output_in_file, gguf.get("feed_forward_length"))
                   for quant, q in gguf["quants"].items()]
        weights += [_weights("mlx", quant, q, mlx_q[quant], q["repo"]) for quant, q in m["mlx"].items()]
        scores = tuple((k, float(v)) for k, v in m["scores"].items())
        models.append(
            ModelSpec(
                size=size,
                hf_repo=m["hf_repo"],
                license=m["license"],
                params=int(m["params"]),
                arch=arch,
                scores=scores,
                score=sum(v for _, v in scores) / len(scores),
                weights=tuple(weights),
                sources=(m["params_source"], m["arch_source"], m["scores_source"], m["license_source"]),
            )
        )
    models.sort(key=lambda spec: spec.billions)
    g = models_doc["generation"]
    s = g["sampling"]
    return Catalog(
        models=tuple(models),
        generation=GenerationDefaults(
            system_prompt=g["default_system_prompt"],
            temperature=float(s["temperature"]),
            top_p=float(s["top_p"]),
            top_k=int(s["top_k"]),
            repeat_penalty=float(s["repeat_penalty"]),
            sources=(g["default_system_prompt_source"], g["sampling_source"]),
        ),
        near_lossless_kld=float(quants_doc["near_lossless_kld"]),
        ggml_type_blocks=tuple((t["name"], (int(t["block_size"]), int(t["type_size"])))
                               for t in _read("ggml_types.json")["types"].values()),
        kv_bytes_per_value=tuple((k, float(v)) for k, v in quants_doc["kv_cache_bytes_per_value"].items()),
        k_quant_fallback=tuple(quants_doc["k_quant_fallback"].items()),
    )
