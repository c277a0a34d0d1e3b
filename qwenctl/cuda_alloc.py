"""The CUDA compute buffer of a llama.cpp build that offloads no layer, sized as ggml sizes it.

Such a build still runs its prompt batches' products on the GPU: the scheduler copies each layer's weights in, one
matrix at a time, beside the activations. ggml's allocator (``ggml_dyn_tallocr`` in ggml-alloc.c) places every
tensor in the best-fitting free block and the buffer is the highest end it reached, so the size depends on which
holes earlier copies left, which no rule of sizes follows: with flash attention the 7B Q4_0's buffer is its output
copy, the logits and one hidden state (596 MiB), the 7B Q8_0's 113 MiB more than that (969), its last FFN stacked
below the logits.

So this replays the allocator itself over the placements and releases llama.cpp's graph makes, in its order. The
order depends only on the graph, not on the sizes: ``data/cuda_alloc_program.json`` holds it, recorded from traces of
every placement on the H200 (`benchmarks/gpu/alloc_program.py` writes it; the same order held for 0.5B to 14B, Q4_0
and Q8_0, 4,096 to 32,768 cells; a quantized KV cache has a graph of its own). The sizes are the tensors', from the
architecture and each matrix's ggml type.
"""

from __future__ import annotations

import json
from functools import cache
from importlib import resources

from qwenctl.catalog import Architecture
from qwenctl.recipe import FLOAT_TYPES, MATRICES, matrix_bytes, matrix_shapes

MATRIX_ROW_PADDING = 512  # ggml-cuda/common.cuh: a quantized matrix's last row is padded to this many values


class DynamicAllocator:
    """``ggml_dyn_tallocr`` for one chunk (a CUDA buffer's size has no limit that would open a second): a tensor goes
    into the smallest free block that holds it (the last such on a tie), else at the end, which grows the buffer;
    a released block merges with its free neighbours."""

    def __init__(self, alignment: int) -> None:
        self.alignment = alignment
        self.blocks: list[list[int]] = [[0, 1 << 62]]  # [offset, size], by offset; the last is the open end
        self.max_size = 0

    def _aligned(self, size: int) -> int:
        return -(-size // self.alignment) * self.alignment

    def alloc(self, size: int) -> int:
        size = self._aligned(size)
        best, best_size = len(self.blocks) - 1, None
        for i, (_, free) in enumerate(self.blocks[:-1]):
            if free >= size and (best_size is None or free <= best_size):
                best, best_size = i, free
        block = self.blocks[best]
        offset = block[0]
        block[0] += size
        block[1] -= size
        if block[1] == 0:
            del self.blocks[best]
        self.max_size = max(self.max_size, offset + size)
        return offset

    def free(self, offset: int, size: int) -> None:
        size = self._aligned(size)
        blocks = self.blocks
        for i, block in enumerate(blocks):
            if block[0] + block[1] == offset:  # the released bytes end this block
                block[1] += size
                if i + 1 < len(blocks) and block[0] + block[1] == blocks[i + 1][0]:
                    block[1] += blocks.pop(i + 1)[1]
                return
            if offset + size == block[0]:  # they begin it
                block[0] = offset
                block[1] += size
                if i > 0 and blocks[i - 1][0] + blocks[i - 1][1] == offset:
                    blocks[i - 1][1] += blocks.pop(i)[1]
                return
        blocks.insert(sum(1 for b in blocks if b[0] < offset), [offset, size])


@cache
def _program() -> dict:
    return json.loads(resources.files("qwenctl.data").joinpath("cuda_alloc_program.json").read_text(encoding="utf-8"))


def cuda_alloc_bytes(rows: int, row_length: int, ggml_type: str) -> int:
    """What CUDA's buffer type asks the allocator for a matrix (``ggml_backend_cuda_buffer_type_get_alloc_size``):
    its bytes, and for a quantized type one row's worth of ``row_length`` padded to 512 values."""
    padding = MATRIX_ROW_PADDING - row_length % MATRIX_ROW_PADDING
    padded = ggml_type not in FLOAT_TYPES and padding < MATRIX_ROW_PADDING
    return matrix_bytes(rows, row_length, ggml_type) + (matrix_bytes(1, padding, ggml_type) if padded else 0)


def _tensor_sizes(arch: Architecture, cells: int, flash_attn: bool, kv_cache_type: str, n_ubatch: int) -> dict[str, int]:
    """The bytes of each kind of tensor the program places, but the weight copies: a micro-batch's f32 activations,
    the KV cells copied in from the host's cache, the mask and the scores over them."""
    u = n_ubatch
    q, kv = arch.n_heads * arch.head_dim, arch.n_kv_heads * arch.head_dim
    cache_type = kv_cache_type.upper()
    attention = 4 * u * q
    if cache_type != "F16":
        # CUDA's flash attention converts a quantized K and V to f16 inside its output's allocation (fattn-common.cuh,
        # ggml_cuda_flash_attn_ext_get_f16_extra_data), each at a 128-byte boundary
        attention = -(-attention // 128) * 128 + 2 * -(-(cells * kv * 2) // 128) * 128
    k_rotation = 128  # llama_kv_cache::build_input_k_rot: the largest power of two from 128 up that divides the head
    while arch.head_dim % (2 * k_rotation) == 0:
        k_rotation *= 2
    return {
        "k_rotation": 4 * k_rotation**2, "v_rotation": 4 * 64**2,
        "hidden": 4 * u * arch.hidden_size, "q": 4 * u * q, "kv": 4 * u * kv, "ffn": 4 * u * arch.intermediate_size,
        "logits": 4 * u * arch.vocab_size, "token_ids": 4 * u, "norm": 4 * arch.hidden_size,
        "bias_q": 4 * q, "bias_kv": 4 * kv,
        "cache": cuda_alloc_bytes(cells * arch.n_kv_heads, arch.head_dim, cache_type), "mask": (2 if flash_attn else 4) * cells * u,
        "scores": 4 * u * cells * arch.n_heads, "attention": attention,
    }


@cache
def no_offload_compute_bytes(arch: Architecture, layer_types: tuple[tuple[str, ...], ...], output_type: str, cells: int,
                             flash_attn: bool, kv_cache_type: str = "f16") -> int:
    """The CUDA compute buffer of a build with no layer offloaded, for a micro-batch over ``cells`` KV cells:
    ``layer_types`` are each repeating layer's matrix types in ``recipe.MATRICES`` order, ``output_type`` the output
    matrix's (the token embeddings' where tied). Cached: a plan asks for the same file's buffer many times."""
    program = _program()
    rotated = kv_cache_type.upper() not in FLOAT_TYPES  # a quantized cache: llama.cpp rotates K and V, and needs FA
    flash_attn = flash_attn or rotated
    steps = program["flash_attn_rotated" if rotated else "flash_attn" if flash_attn else "no_flash_attn"]
    sizes = _tensor_sizes(arch, cells, flash_attn, kv_cache_type, int(program["n_ubatch"]))
    shapes = matrix_shapes(arch)
    sizes["matrix:output"] = cuda_alloc_bytes(arch.vocab_size, arch.hidden_size, output_type)
    allocator = DynamicAllocator(int(program["alignment"]))
    live: dict[str, tuple[int, int]] = {}
    n = arch.n_layers
    for layer, types in enumerate(layer_types):
        for name, ggml_type in zip(MATRICES, types):
            sizes[f"matrix:{name}"] = cuda_alloc_bytes(*shapes[name], ggml_type)
        part = "first" if layer == 0 else "last" if layer == n - 1 else "layer"
        for step in steps[part]:
            action, name, *symbol = step.split()
            key = name.replace("{L}", str(layer)).replace("{L-1}", str(layer - 1))
            if action == "+":
                size = sizes[symbol[0]]
                live[key] = (allocator.alloc(size), size)
            else:
                allocator.free(*live.pop(key))
    return allocator.max_size
