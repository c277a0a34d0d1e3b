"""The bytes of the tensors llama.cpp's quantizer writes for a model shape, computed without writing them.

Published speed rows often name a model and a quant (llama-bench's "llama 7B Q4_0", an Ollama tag) but not the
file's size, and the speed model's decode time is mostly those bytes read once per token. A flat bits-per-weight
guess misses by up to 17 %: a Q4_K_M keeps its output matrix and half its ``attn_v`` and ``ffn_down`` matrices at
Q6_K, and Q4_0 still stores the output at Q6_K. The layers' types are llama.cpp's own rules (``qwenctl.recipe``);
the output matrix (the token embeddings when they are tied) is Q6_K, or Q8_0 for a Q8_0 file or a row length that is
no multiple of the file type's block; F16 files keep every matrix F16.

Norms and biases stay F32. The sum is what llama-bench prints as the model's size (tensor data only; a file
adds its metadata, a few MB of tokenizer). MLX files store every matrix, the embeddings included, in groups of
64 with a 16-bit scale and bias each: 4.5 bits a weight at 4-bit, 8.5 at 8-bit.
"""

from __future__ import annotations

from qwenctl.catalog import Architecture, load_catalog
from qwenctl.recipe import FILE_TYPES, layer_matrices, matrix_bytes

MLX_BITS = {"4bit": 4.5, "8bit": 8.5, "bf16": 16.0, "fp16": 16.0}


def gguf_matrices(arch: Architecture, quant: str) -> dict[str, tuple[int, int, str]]:
    """{tensor name: (rows, row length, stored ggml type)} of every matrix of a GGUF of this shape at ``quant``
    ("Q4_K_M", "Q4_0", "F16", ...), named as in the file, as llama.cpp's quantizer lays it out."""
    catalog = load_catalog()
    base = FILE_TYPES.get(quant)  # an unknown quant: layer_matrices says so
    a = arch
    h = a.hidden_size
    matrices = {f"blk.{i}.{name}.weight": (rows, length, stored) for i, name, rows, length, stored in layer_matrices(a, quant)}
    if base == "F16":
        output = "F16"
    elif base == "Q8_0" or h % catalog.type_block(base)[0]:
        output = "Q8_0"
    else:
        output = "Q6_K"
    matrices["token_embd.weight" if a.tied_embeddings else "output.weight"] = (a.vocab_size, h, catalog.stored_type(output, h))
    if not a.tied_embeddings:
        matrices["token_embd.weight"] = (a.vocab_size, h, catalog.stored_type(base, h))
    return matrices


def gguf_tensor_bytes(arch: Architecture, quant: str, *, biases: bool = False) -> int:
    """Bytes of every tensor of a GGUF of this shape at ``quant`` ("Q4_K_M", "Q4_0", "F16", ...) as llama.cpp's
    quantizer writes it. ``biases``: the attention's q/k/v biases (Qwen2 has them, Llama not)."""
    a = arch
    h, q, kv = a.hidden_size, a.n_heads * a.head_dim, a.n_kv_heads * a.head_dim
    total = sum(matrix_bytes(rows, length, stored) for rows, length, stored in gguf_matrices(a, quant).values())
    f32_values = (2 * a.n_layers + 1) * h + (a.n_layers * (q + 2 * kv) if biases else 0)
    return total + 4 * f32_values


def mlx_bytes(params: int, quant: str) -> int:
    """Bytes of an mlx-lm conversion at ``quant`` ("4bit", "8bit", "bf16"): every weight at the same rate (norms,
    a few thousand values a layer, are counted with them)."""
    if quant not in MLX_BITS:
        raise ValueError(f"no MLX rate for {quant!r}; known: {', '.join(MLX_BITS)}")
    return int(params * MLX_BITS[quant] / 8)
