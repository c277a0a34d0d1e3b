"""The bytes of the tensors llama.cpp's quantizer writes for a model shape, computed without writing them.

Published speed rows often name a model and a quant (llama-bench's "llama 7B Q4_0", an Ollama tag) but not the
file's size, and the speed model's decode time is mostly those bytes read once per token. A flat bits-per-weight
guess misses by up to 17 %: a Q4_K_M keeps its output matrix and half its ``attn_v`` and ``ffn_down`` matrices at
Q6_K, and Q4_0 still stores the output at Q6_K. This follows llama.cpp's own rules
(src/llama-quant.cpp, ``llama_tensor_get_type_impl`` and ``tensor_type_fallback``, as vendored in
llama-cpp-python 0.3.36) for the file types the benchmarks meet, for dense Llama- and Qwen2-style models:

* the output matrix (the token embeddings when they are tied) is Q6_K, or Q8_0 for a Q8_0 file or a row
  length that is no multiple of the file type's block; F16 files keep every matrix F16;
* Q4_K_M / Q5_K_M: ``attn_v`` and ``ffn_down`` are Q6_K in the layers ``use_more_bits`` picks (the first and
  last eighth, and every third one between);
* Q3_K_M: ``attn_v`` Q5_K in the first two layers and Q4_K after, ``attn_output`` Q4_K, ``ffn_down`` Q5_K in
  the first sixteenth and Q4_K after; Q2_K: ``attn_v`` Q4_K (Q3_K with fewer than four query heads per KV head),
  ``attn_output`` and ``ffn_down`` Q3_K;
* an 80-layer model with grouped-query attention is llama.cpp's "70B" type: its Q3_K / Q4_K ``attn_v`` becomes
  Q5_K;
* a k-quant on rows that are no multiple of 256 falls back to a 32-value type (Qwen2.5-0.5B's 896-wide rows).

Norms and biases stay F32. The sum is what llama-bench prints as the model's size (tensor data only; a file
adds its metadata, a few MB of tokenizer). MLX files store every matrix, the embeddings included, in groups of
64 with a 16-bit scale and bias each: 4.5 bits a weight at 4-bit, 8.5 at 8-bit.
"""

from __future__ import annotations

from qwenctl.catalog import Architecture, load_catalog

# the file type's default matrix type
FILE_TYPES = {"F16": "F16", "Q8_0": "Q8_0", "Q4_0": "Q4_0", "Q4_1": "Q4_1", "Q5_0": "Q5_0", "Q5_1": "Q5_1",
              "Q2_K": "Q2_K", "Q3_K_M": "Q3_K", "Q4_K_M": "Q4_K", "Q5_K_M": "Q5_K", "Q6_K": "Q6_K"}
MLX_BITS = {"4bit": 4.5, "8bit": 8.5, "bf16": 16.0, "fp16": 16.0}


def _use_more_bits(i: int, n: int) -> bool:
    return i < n // 8 or i >= 7 * n // 8 or (i - n // 8) % 3 == 2


def _layer_types(quant: str, i: int, n: int, seventy_b: bool, gqa: bool) -> dict[str, str]:
    """The type of each matrix of repeating layer ``i`` of ``n``, before the fallback for short rows."""
    base = FILE_TYPES[quant]
    types = dict.fromkeys(("attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up", "ffn_down"), base)
    if quant in ("Q4_K_M", "Q5_K_M") and _use_more_bits(i, n):
        types["attn_v"] = types["ffn_down"] = "Q6_K"
    elif quant == "Q2_K":
        types["attn_v"] = "Q4_K" if gqa else "Q3_K"
        types["attn_output"] = types["ffn_down"] = "Q3_K"
    elif quant == "Q3_K_M":
        types["attn_v"] = "Q5_K" if i < 2 else "Q4_K"
        types["attn_output"] = "Q4_K"
        types["ffn_down"] = "Q5_K" if i < n // 16 else "Q4_K"
    if seventy_b and types["attn_v"] in ("Q3_K", "Q4_K"):
        types["attn_v"] = "Q5_K"
    return types


def gguf_tensor_bytes(arch: Architecture, quant: str, *, biases: bool = False) -> int:
    """Bytes of every tensor of a GGUF of this shape at ``quant`` ("Q4_K_M", "Q4_0", "F16", ...) as llama.cpp's
    quantizer writes it. ``biases``: the attention's q/k/v biases (Qwen2 has them, Llama not)."""
    if quant not in FILE_TYPES:
        raise ValueError(f"no recipe for {quant!r}; known: {', '.join(FILE_TYPES)}")
    catalog = load_catalog()
    base = FILE_TYPES[quant]

    def matrix(rows: int, row_length: int, ggml_type: str) -> int:
        block, size = catalog.type_block(catalog.stored_type(ggml_type, row_length))
        return rows * row_length // block * size

    a = arch
    h, f, q, kv = a.hidden_size, a.intermediate_size, a.n_heads * a.head_dim, a.n_kv_heads * a.head_dim
    if base == "F16":
        output = "F16"
    elif base == "Q8_0" or h % catalog.type_block(base)[0]:
        output = "Q8_0"
    else:
        output = "Q6_K"
    total = matrix(a.vocab_size, h, output)
    if not a.tied_embeddings:
        total += matrix(a.vocab_size, h, base)
    seventy_b = a.n_layers == 80 and a.n_kv_heads < a.n_heads
    gqa = a.n_heads >= 4 * a.n_kv_heads
    shapes = {"attn_q": (q, h), "attn_k": (kv, h), "attn_v": (kv, h), "attn_output": (h, q),
              "ffn_gate": (f, h), "ffn_up": (f, h), "ffn_down": (h, f)}
    for i in range(a.n_layers):
        types = _layer_types(quant, i, a.n_layers, seventy_b, gqa) if base != "F16" else dict.fromkeys(shapes, "F16")
        total += sum(matrix(rows, length, types[name]) for name, (rows, length) in shapes.items())
    f32_values = (2 * a.n_layers + 1) * h + (a.n_layers * (q + 2 * kv) if biases else 0)
    return total + 4 * f32_values


def mlx_bytes(params: int, quant: str) -> int:
    """Bytes of an mlx-lm conversion at ``quant`` ("4bit", "8bit", "bf16"): every weight at the same rate (norms,
    a few thousand values a layer, are counted with them)."""
    if quant not in MLX_BITS:
        raise ValueError(f"no MLX rate for {quant!r}; known: {', '.join(MLX_BITS)}")
    return int(params * MLX_BITS[quant] / 8)
