"""Which ggml type llama.cpp's quantizer gives each matrix of a repeating layer, for the file types qwenctl plans.

The rules are llama.cpp's own (src/llama-quant.cpp, ``llama_tensor_get_type_impl`` and ``tensor_type_fallback``, as
vendored in llama-cpp-python 0.3.36), for dense Llama- and Qwen2-style models:

* Q4_K_M / Q5_K_M: ``attn_v`` and ``ffn_down`` are Q6_K in the layers ``use_more_bits`` picks (the first and
  last eighth, and every third one between);
* Q3_K_M: ``attn_v`` Q5_K in the first two layers and Q4_K after, ``attn_output`` Q4_K, ``ffn_down`` Q5_K in
  the first sixteenth and Q4_K after; Q2_K: ``attn_v`` Q4_K (Q3_K with fewer than four query heads per KV head),
  ``attn_output`` and ``ffn_down`` Q3_K;
* an 80-layer model with grouped-query attention is llama.cpp's "70B" type: its Q3_K / Q4_K ``attn_v`` becomes
  Q5_K;
* a k-quant on rows that are no multiple of 256 falls back to a 32-value type (Qwen2.5-0.5B's 896-wide rows:
  Q4_K -> Q5_0), ``Catalog.stored_type``.

Sizes follow from the types (``qwenctl.testing.recipe`` adds them up for published rows that name no file size), and
so does speed: a CPU multiplies some types with tiled kernels and others row by row (``qwenctl.speed``).
"""

from __future__ import annotations

from collections.abc import Iterator
from functools import cache

from qwenctl.catalog import Architecture, load_catalog

# the file type's default matrix type
FILE_TYPES = {"F16": "F16", "Q8_0": "Q8_0", "Q4_0": "Q4_0", "Q4_1": "Q4_1", "Q5_0": "Q5_0", "Q5_1": "Q5_1",
              "Q2_K": "Q2_K", "Q3_K_M": "Q3_K", "Q4_K_M": "Q4_K", "Q5_K_M": "Q5_K", "Q6_K": "Q6_K"}
FLOAT_TYPES = frozenset({"F32", "F16", "BF16"})  # not quantized: CUDA multiplies their prompt batches with cuBLAS
MATRICES = ("attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up", "ffn_down")


def _use_more_bits(i: int, n: int) -> bool:
    return i < n // 8 or i >= 7 * n // 8 or (i - n // 8) % 3 == 2


def _layer_types(file_type: str, i: int, n: int, seventy_b: bool, gqa: bool) -> dict[str, str]:
    """The type of each matrix of repeating layer ``i`` of ``n``, before the fallback for short rows."""
    base = FILE_TYPES[file_type]
    types = dict.fromkeys(MATRICES, base)
    if file_type in ("Q4_K_M", "Q5_K_M") and _use_more_bits(i, n):
        types["attn_v"] = types["ffn_down"] = "Q6_K"
    elif file_type == "Q2_K":
        types["attn_v"] = "Q4_K" if gqa else "Q3_K"
        types["attn_output"] = types["ffn_down"] = "Q3_K"
    elif file_type == "Q3_K_M":
        types["attn_v"] = "Q5_K" if i < 2 else "Q4_K"
        types["attn_output"] = "Q4_K"
        types["ffn_down"] = "Q5_K" if i < n // 16 else "Q4_K"
    if seventy_b and types["attn_v"] in ("Q3_K", "Q4_K"):
        types["attn_v"] = "Q5_K"
    return types


def matrix_shapes(arch: Architecture) -> dict[str, tuple[int, int]]:
    """(rows, row length) of each matrix of a repeating layer."""
    h, f, q, kv = arch.hidden_size, arch.intermediate_size, arch.n_heads * arch.head_dim, arch.n_kv_heads * arch.head_dim
    return {"attn_q": (q, h), "attn_k": (kv, h), "attn_v": (kv, h), "attn_output": (h, q),
            "ffn_gate": (f, h), "ffn_up": (f, h), "ffn_down": (h, f)}


def layer_matrices(arch: Architecture, file_type: str) -> Iterator[tuple[int, str, int, int, str]]:
    """(layer, matrix, rows, row length, stored ggml type) of every matrix of every repeating layer of a GGUF of
    this shape at ``file_type`` ("Q4_K_M", "Q4_0", "F16", ...)."""
    if file_type not in FILE_TYPES:
        raise ValueError(f"no recipe for {file_type!r}; known: {', '.join(FILE_TYPES)}")
    catalog = load_catalog()
    a = arch
    shapes = matrix_shapes(a)
    seventy_b = a.n_layers == 80 and a.n_kv_heads < a.n_heads
    gqa = a.n_heads >= 4 * a.n_kv_heads
    for i in range(a.n_layers):
        types = (_layer_types(file_type, i, a.n_layers, seventy_b, gqa) if FILE_TYPES[file_type] != "F16"
                 else dict.fromkeys(MATRICES, "F16"))
        for name, (rows, length) in shapes.items():
            yield i, name, rows, length, catalog.stored_type(types[name], length)


def matrix_bytes(rows: int, row_length: int, ggml_type: str) -> int:
    """Bytes of a matrix stored in ``ggml_type`` (blocks along its rows)."""
    block, size = load_catalog().type_block(ggml_type)
    return rows * row_length // block * size


@cache
def layer_types(arch: Architecture, file_type: str) -> tuple[tuple[str, ...], ...]:
    """Each repeating layer's stored matrix types, in ``MATRICES`` order. Cached, as `layer_type_weights`: a plan asks
    for every candidate's split a thousand times."""
    types: dict[int, dict[str, str]] = {}
    for i, name, _, _, stored in layer_matrices(arch, file_type):
        types.setdefault(i, {})[name] = stored
    return tuple(tuple(types[i][name] for name in MATRICES) for i in range(arch.n_layers))


@cache
def layer_type_weights(arch: Architecture, file_type: str) -> tuple[tuple[str, float], ...]:
    """The average repeating layer's matrix weights by stored ggml type, most first (0.5B Q4_K_M: mostly Q5_0)."""
    shapes = matrix_shapes(arch)
    weights: dict[str, float] = {}
    for types in layer_types(arch, file_type):
        for name, stored in zip(MATRICES, types):
            rows, length = shapes[name]
            weights[stored] = weights.get(stored, 0.0) + rows * length / arch.n_layers
    return tuple(sorted(weights.items(), key=lambda kv: -kv[1]))
