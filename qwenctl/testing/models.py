"""Generated Qwen2.5-architecture models for tests and benchmarks (no network, no real weights).

Three kinds, all with random weights:

* ``tiny_gguf``: a qwen2 GGUF of a few hundred kB with a real (cut-down) Qwen2 byte-level BPE
  tokenizer, the ChatML special tokens and Qwen2.5-Instruct's chat template, so tokenizing,
  templating, loading and generating are exercised for real in well under a second.
* ``shaped_gguf``: the exact tensor shapes of a Qwen2.5 size ("0.5B", "1.5B", "7B", ...), written
  as F16/F32 (or, for a size whose F16 copy would not fit the disk, as Q8_0 or Q4_0 blocks written directly)
  and quantized by llama.cpp's own quantizer, so file size, memory use and speed are those of the
  real model. Only the text it generates is meaningless.
* ``tiny_mlx``: a folder in the Hugging Face layout (config.json, safetensors, tokenizer.json,
  tokenizer_config.json) that mlx-lm loads offline.

Every function takes a cache directory and names the file after its parameters, so a second call
(or a second test session with the same pytest cache) reuses it. Files appear atomically: written
under a temporary name in the same directory and renamed when complete.

Weights are a fixed pseudo-random block (normal, std 0.02) repeated over each tensor: values stay
small enough that activations do not overflow, and a 7B-shape file is written at disk speed
instead of waiting minutes for numpy's generator.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING

from qwenctl.testing.tokenizer import CONTROL, QWEN2_SPLIT_PATTERN, SPECIAL_TOKENS, Tokenizer, small_vocab_size, tokenizer

if TYPE_CHECKING:
    import numpy as np

    from qwenctl.catalog import Architecture

# Bump when the bytes a generator writes change, so stale cached files are not reused.
FORMAT_VERSION = 1

_DATA_DIR = Path(__file__).parent

# llama.cpp's llama_ftype values for the quantizations the planner uses.
QUANT_FTYPES = {"F32": 0, "F16": 1, "Q8_0": 7, "Q2_K": 10, "Q3_K_M": 12, "Q4_K_M": 15, "Q5_K_M": 17, "Q6_K": 18, "Q4_0": 2, "Q5_0": 8}


@dataclass(frozen=True)
class Shape:
    """The dimensions of a qwen2-architecture model (Hugging Face config.json names)."""

    name: str
    hidden_size: int
    num_hidden_layers: int
    num_attention_heads: int
    num_key_value_heads: int
    intermediate_size: int
    vocab_size: int
    tie_word_embeddings: bool = True
    max_position_embeddings: int = 32768
    rope_theta: float = 1000000.0
    rms_norm_eps: float = 1e-6

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.num_attention_heads

    def architecture(self) -> Architecture:
        """This shape as the catalog describes a model (the small tokenizer's vocabulary where ``vocab_size`` is 0)."""
        from qwenctl.catalog import Architecture

        return Architecture(self.hidden_size, self.num_hidden_layers, self.num_attention_heads, self.num_key_value_heads,
                            self.head_dim, self.intermediate_size, self.vocab_size or small_vocab_size(),
                            self.tie_word_embeddings, self.max_position_embeddings, self.max_position_embeddings)

    def key(self) -> str:
        """A short stable digest of every dimension, for cache file names."""
        blob = json.dumps(dataclasses.asdict(self), sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:10]


# A model about 400 kB in size: two layers, grouped-query attention like the real ones (4 query heads, 2 KV heads).
TINY = Shape("tiny", hidden_size=64, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
             intermediate_size=128, vocab_size=0, max_position_embeddings=4096)  # vocab 0 = the small tokenizer's


@cache
def qwen25_shape(size: str) -> Shape:
    """The real dimensions of Qwen2.5-{size}-Instruct ("0.5B", "1.5B", "3B", "7B", ...)."""
    shapes = json.loads((_DATA_DIR / "qwen25_shapes.json").read_text())["shapes"]
    if size not in shapes:
        raise ValueError(f"unknown Qwen2.5 size {size!r}; known: {', '.join(shapes)}")
    return Shape(name=f"qwen2.5-{size.lower()}", **shapes[size])


def _resolve(shape: Shape) -> Shape:
    return dataclasses.replace(shape, vocab_size=small_vocab_size()) if shape.vocab_size == 0 else shape


def gguf_tensor_shapes(shape: Shape) -> Iterator[tuple[str, tuple[int, ...]]]:
    """(name, numpy shape) of every tensor llama.cpp's qwen2 loader expects, in file order."""
    h, f, kv = shape.hidden_size, shape.intermediate_size, shape.num_key_value_heads * shape.head_dim
    yield "token_embd.weight", (shape.vocab_size, h)
    for i in range(shape.num_hidden_layers):
        p = f"blk.{i}."
        yield p + "attn_norm.weight", (h,)
        yield p + "attn_q.weight", (h, h)
        yield p + "attn_q.bias", (h,)
        yield p + "attn_k.weight", (kv, h)
        yield p + "attn_k.bias", (kv,)
        yield p + "attn_v.weight", (kv, h)
        yield p + "attn_v.bias", (kv,)
        yield p + "attn_output.weight", (h, h)
        yield p + "ffn_norm.weight", (h,)
        yield p + "ffn_gate.weight", (f, h)
        yield p + "ffn_up.weight", (f, h)
        yield p + "ffn_down.weight", (h, f)
    yield "output_norm.weight", (h,)
    if not shape.tie_word_embeddings:
        yield "output.weight", (shape.vocab_size, h)


class _Filler:
    """Tensor contents: one seeded random block, repeated (fast for multi-GB files)."""

    # 2^20 + 7 values: not a multiple of any row length, so rows differ from one another.
    BLOCK = (1 << 20) + 7

    def __init__(self, seed: int):
        import numpy as np

        rng = np.random.default_rng(seed)
        self.block = (rng.standard_normal(self.BLOCK, dtype=np.float32) * 0.02).astype(np.float32)
        self.offset = 0
        self.quantized: dict = {}  # block format -> self.block in it, as bytes

    def weights(self, shape: tuple[int, ...], dtype) -> np.ndarray:
        import numpy as np

        return self._tiled(self.block.astype(dtype, copy=False), int(np.prod(shape)), 1).reshape(shape)

    def blocks(self, shape: tuple[int, ...], qtype) -> np.ndarray:
        """A matrix in a block format (Q8_0, Q4_0, the k-quants) as bytes, from the same block quantized once: a 32B's
        F16 copy (65 GB) does not fit the GPU machine's disk, its Q8_0 does (35 GB), a 72B's Q4_K_M fits in RAM."""
        from gguf import GGML_QUANT_SIZES

        per_block, block_bytes = GGML_QUANT_SIZES[qtype]
        if qtype not in self.quantized:
            values = self.block[: self.BLOCK // 256 * 256]  # whole blocks of every type (32 or 256 values)
            self.quantized[qtype] = _quantize(values, qtype)
        rows, row_bytes = shape[0], shape[-1] // per_block * block_bytes
        return self._tiled(self.quantized[qtype], rows * row_bytes, block_bytes).reshape(rows, row_bytes)

    def _tiled(self, source: np.ndarray, n: int, unit: int) -> np.ndarray:
        """``n`` items of ``source`` repeated, starting at a different whole ``unit`` (a value, a block) each tensor."""
        import numpy as np

        start = (self.offset % (source.size // unit)) * unit
        self.offset += 7919  # a different phase for each tensor
        reps = -(-(start + n) // source.size)
        return np.tile(source, reps)[start : start + n]


def _quantize(values: np.ndarray, qtype) -> np.ndarray:
    """``values`` (whole blocks) in ``qtype`` as bytes: gguf-py's quantizer where it has one (Q8_0, Q4_0, Q5_0), else
    llama.cpp's own (``ggml_quantize_chunk`` of the libggml that llama-cpp-python loads: the k-quants)."""
    import ctypes

    import numpy as np
    from gguf import GGML_QUANT_SIZES
    from gguf.quants import quantize

    try:
        return quantize(values.reshape(1, -1), qtype).ravel()
    except NotImplementedError:
        pass
    import llama_cpp

    ggml = ctypes.CDLL(str(Path(llama_cpp.llama_cpp._lib._name).with_name("libggml-base.so")))
    ggml.ggml_quantize_chunk.restype = ctypes.c_size_t
    ggml.ggml_quantize_chunk.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64, ctypes.c_int64,
                                         ctypes.c_int64, ctypes.c_void_p]
    ggml.ggml_quantize_init(ctypes.c_int(int(qtype)))
    per_block, block_bytes = GGML_QUANT_SIZES[qtype]
    src = np.ascontiguousarray(values, dtype=np.float32)
    out = np.empty(src.size // per_block * block_bytes, dtype=np.uint8)
    written = ggml.ggml_quantize_chunk(int(qtype), src.ctypes.data, out.ctypes.data, 0, 1, src.size, None)
    if written != out.size:
        raise RuntimeError(f"ggml_quantize_chunk wrote {written} bytes of {qtype.name}, expected {out.size}")
    return out


def write_gguf(path: Path, shape: Shape, *, dtype: str = "F16", seed: int = 0, recipe: bool = False) -> None:
    """Write a random-weight qwen2 GGUF with the given shape: F32 or F16 matrices, every matrix in Q8_0 or Q4_0 blocks
    (an intermediate for llama.cpp's quantizer), or, with ``recipe``, each matrix in the type llama.cpp's quantizer
    gives it in a ``dtype`` file ("Q4_K_M": Q4_K, Q6_K for the output and some attn_v / ffn_down; the rules of
    qwenctl.recipe), written directly where quantizing would take too long (a 72B Q4_K_M: over 7 minutes on the GPU
    machine). Norms and biases are F32."""
    import numpy as np
    from gguf import GGML_QUANT_SIZES, GGMLQuantizationType, GGUFWriter

    from qwenctl.testing.recipe import gguf_matrices

    shape = _resolve(shape)
    if recipe:  # the matrices stored in blocks: every one but an F16 file's
        layout = {name: GGMLQuantizationType[t] for name, (_, _, t) in gguf_matrices(shape.architecture(), dtype).items()
                  if t not in ("F32", "F16")}
    elif dtype in ("Q8_0", "Q4_0"):
        layout = {name: GGMLQuantizationType[dtype] for name, dims in gguf_tensor_shapes(shape) if len(dims) == 2}
    elif dtype in ("F32", "F16"):
        layout = {}
    else:
        raise ValueError("write_gguf writes F32, F16, Q8_0 or Q4_0, or a recipe's types; quantize with quantize_gguf")
    tok = tokenizer(shape.vocab_size)
    w = GGUFWriter(path, "qwen2")
    w.add_name(f"{shape.name} (random weights, qwenctl.testing)")
    w.add_context_length(shape.max_position_embeddings)
    w.add_embedding_length(shape.hidden_size)
    w.add_block_count(shape.num_hidden_layers)
    w.add_feed_forward_length(shape.intermediate_size)
    w.add_head_count(shape.num_attention_heads)
    w.add_head_count_kv(shape.num_key_value_heads)
    w.add_rope_freq_base(shape.rope_theta)
    w.add_layer_norm_rms_eps(shape.rms_norm_eps)
    w.add_file_type(QUANT_FTYPES[dtype])
    if recipe and dtype not in ("F32", "F16"):
        w.add_quantization_version(2)  # GGML_QNT_VERSION, as llama.cpp's quantizer writes it
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("qwen2")
    w.add_token_list(list(tok.tokens))
    w.add_token_types(list(tok.token_types))
    w.add_token_merges(list(tok.merges))
    w.add_eos_token_id(tok.eos_id)
    w.add_pad_token_id(tok.pad_id)
    w.add_bos_token_id(tok.pad_id)
    w.add_add_bos_token(False)
    w.add_chat_template(tok.chat_template)

    matrix_dtype = np.float16 if dtype == "F16" else np.float32
    tensors = list(gguf_tensor_shapes(shape))
    for name, dims in tensors:
        if name in layout:
            per_block, block_bytes = GGML_QUANT_SIZES[layout[name]]
            row_bytes = dims[1] // per_block * block_bytes
            w.add_tensor_info(name, (dims[0], row_bytes), np.dtype(np.uint8), dims[0] * row_bytes, raw_dtype=layout[name])
            continue
        dt = matrix_dtype if len(dims) == 2 else np.float32
        w.add_tensor_info(name, dims, np.dtype(dt), int(np.prod(dims)) * np.dtype(dt).itemsize)
    w.write_header_to_file(path)
    w.write_kv_data_to_file()
    w.write_ti_data_to_file()
    filler = _Filler(seed)
    for name, dims in tensors:
        if name.endswith("norm.weight"):
            data = np.ones(dims, dtype=np.float32)
        elif name in layout:
            data = filler.blocks(dims, layout[name])
        else:
            data = filler.weights(dims, matrix_dtype if len(dims) == 2 else np.float32)
        w.write_tensor_data(data)
    w.close()


def quantize_gguf(src: Path, dst: Path, quant: str, *, threads: int | None = None) -> None:
    """Quantize with llama.cpp's own quantizer, as the official GGUF files were made."""
    import llama_cpp

    from qwenctl.backends.llamacpp import route_llama_logs

    route_llama_logs()
    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = QUANT_FTYPES[quant]
    params.nthread = threads or os.cpu_count() or 1
    params.allow_requantize = True  # a Q8_0 intermediate (write_gguf) is requantized like an F16 one is quantized
    rc = llama_cpp.llama_model_quantize(str(src).encode(), str(dst).encode(), params)
    if rc != 0:
        raise RuntimeError(f"llama_model_quantize({src.name} -> {quant}) returned {rc}")


def _atomic(target: Path, make) -> Path:
    """Create `target` through `make(tmp_path)` unless it already exists; never leave a partial file."""
    if target.exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    try:
        make(tmp)
        if tmp.is_file():
            with open(tmp, "rb+") as fh:
                os.fsync(fh.fileno())
        os.replace(tmp, target)
    finally:
        if tmp.is_file():
            tmp.unlink()
        elif tmp.is_dir():
            import shutil

            shutil.rmtree(tmp, ignore_errors=True)
    return target


def gguf_model(cache_dir: Path, shape: Shape = TINY, quant: str = "F32", *, seed: int = 0,
               threads: int | None = None, keep_f16: bool = False, intermediate: str = "F16",
               intermediate_dir: Path | None = None) -> Path:
    """A generated qwen2 GGUF of `shape` in `quant` (F32, F16, or any llama.cpp ftype in QUANT_FTYPES).

    Quantized files are made from an `intermediate` (F16, or Q8_0 / Q4_0 written directly where the F16 copy would
    not fit the disk), which is deleted afterwards unless `keep_f16` (it is the largest file: 15 GB for 7B in F16),
    and written in `intermediate_dir` when given (a RAM disk, where disk space is short). `intermediate="direct"`
    writes each matrix in its recipe type with no quantizer run (`write_gguf(recipe=True)`), named "...-Q4_K_M-direct"
    so that no test takes it for the quantizer's own file.
    """
    if quant not in QUANT_FTYPES:
        raise ValueError(f"unknown quant {quant!r}; known: {', '.join(QUANT_FTYPES)}")
    shape = _resolve(shape)
    cache_dir = Path(cache_dir)
    stem = f"{shape.name}-{shape.key()}-s{seed}-v{FORMAT_VERSION}"
    if intermediate == "direct":
        return _atomic(cache_dir / f"{stem}-{quant}-direct.gguf",
                       lambda tmp: write_gguf(tmp, shape, dtype=quant, seed=seed, recipe=True))
    if quant in ("F32", "F16") or quant == intermediate:
        return _atomic(cache_dir / f"{stem}-{quant}.gguf", lambda tmp: write_gguf(tmp, shape, dtype=quant, seed=seed))
    source_dir = Path(intermediate_dir or cache_dir)
    source_existed = (source_dir / f"{stem}-{intermediate}.gguf").exists()
    source = gguf_model(source_dir, shape, intermediate, seed=seed, intermediate=intermediate)
    out = _atomic(cache_dir / f"{stem}-{quant}.gguf", lambda tmp: quantize_gguf(source, tmp, quant, threads=threads))
    if not keep_f16 and not source_existed:
        source.unlink(missing_ok=True)
    return out


def tiny_gguf(cache_dir: Path, *, seed: int = 0) -> Path:
    """The ~400 kB qwen2 GGUF with the real chat template: the default model for engine tests."""
    return gguf_model(cache_dir, TINY, "F32", seed=seed)


def shaped_gguf(cache_dir: Path, size: str, quant: str = "Q4_K_M", *, seed: int = 0,
                threads: int | None = None, intermediate: str = "F16") -> Path:
    """A random-weight GGUF with the exact tensor shapes of Qwen2.5-{size} ("0.5B", "1.5B", "7B", ...)."""
    return gguf_model(cache_dir, qwen25_shape(size), quant, seed=seed, threads=threads, intermediate=intermediate)


def _hf_tokenizer_json(tok: Tokenizer, path: Path) -> None:
    from tokenizers import AddedToken, Regex, decoders, models, pre_tokenizers, processors
    from tokenizers import Tokenizer as HfTokenizer

    n_bpe = tok.token_types.index(CONTROL)
    vocab = {t: i for i, t in enumerate(tok.tokens[:n_bpe])}
    bpe = models.BPE(vocab=vocab, merges=[tuple(m.split(" ", 1)) for m in tok.merges])
    hf = HfTokenizer(bpe)
    hf.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(QWEN2_SPLIT_PATTERN), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
    ])
    hf.post_processor = processors.ByteLevel(trim_offsets=False)
    hf.decoder = decoders.ByteLevel()
    hf.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in SPECIAL_TOKENS])
    hf.save(str(path))


def write_mlx_folder(folder: Path, shape: Shape, *, seed: int = 0) -> None:
    """Write a Hugging Face-layout qwen2 model folder (float16 safetensors) that mlx-lm loads."""
    import numpy as np
    from safetensors.numpy import save_file

    shape = _resolve(shape)
    tok = tokenizer(shape.vocab_size)
    folder.mkdir(parents=True, exist_ok=True)
    config = {
        "architectures": ["Qwen2ForCausalLM"],
        "model_type": "qwen2",
        "hidden_act": "silu",
        "hidden_size": shape.hidden_size,
        "intermediate_size": shape.intermediate_size,
        "num_attention_heads": shape.num_attention_heads,
        "num_hidden_layers": shape.num_hidden_layers,
        "num_key_value_heads": shape.num_key_value_heads,
        "max_position_embeddings": shape.max_position_embeddings,
        "rms_norm_eps": shape.rms_norm_eps,
        "rope_theta": shape.rope_theta,
        "vocab_size": shape.vocab_size,
        "tie_word_embeddings": shape.tie_word_embeddings,
        "torch_dtype": "float16",
        "bos_token_id": tok.pad_id,
        "eos_token_id": tok.eos_id,
    }
    (folder / "config.json").write_text(json.dumps(config, indent=2))

    hf_names = {
        "attn_norm.weight": "input_layernorm.weight", "ffn_norm.weight": "post_attention_layernorm.weight",
        "attn_q.weight": "self_attn.q_proj.weight", "attn_q.bias": "self_attn.q_proj.bias",
        "attn_k.weight": "self_attn.k_proj.weight", "attn_k.bias": "self_attn.k_proj.bias",
        "attn_v.weight": "self_attn.v_proj.weight", "attn_v.bias": "self_attn.v_proj.bias",
        "attn_output.weight": "self_attn.o_proj.weight", "ffn_gate.weight": "mlp.gate_proj.weight",
        "ffn_up.weight": "mlp.up_proj.weight", "ffn_down.weight": "mlp.down_proj.weight",
    }
    top = {"token_embd.weight": "model.embed_tokens.weight", "output_norm.weight": "model.norm.weight",
           "output.weight": "lm_head.weight"}
    filler = _Filler(seed)
    tensors = {}
    for name, dims in gguf_tensor_shapes(shape):
        if name.startswith("blk."):
            _, layer, rest = name.split(".", 2)
            hf_name = f"model.layers.{layer}.{hf_names[rest]}"
        else:
            hf_name = top[name]
        tensors[hf_name] = np.ones(dims, np.float16) if name.endswith("norm.weight") else filler.weights(dims, np.float16)
    save_file(tensors, str(folder / "model.safetensors"), metadata={"format": "pt"})

    _hf_tokenizer_json(tok, folder / "tokenizer.json")
    n_bpe = tok.token_types.index(CONTROL)
    tokenizer_config = {
        "add_bos_token": False,
        "add_prefix_space": False,
        "added_tokens_decoder": {
            str(n_bpe + i): {"content": t, "lstrip": False, "normalized": False, "rstrip": False,
                             "single_word": False, "special": True}
            for i, t in enumerate(SPECIAL_TOKENS)
        },
        "bos_token": None,
        "chat_template": tok.chat_template,
        "clean_up_tokenization_spaces": False,
        "eos_token": "<|im_end|>",
        "errors": "replace",
        "model_max_length": shape.max_position_embeddings,
        "pad_token": "<|endoftext|>",
        "split_special_tokens": False,
        "tokenizer_class": "Qwen2Tokenizer",
        "unk_token": None,
    }
    (folder / "tokenizer_config.json").write_text(json.dumps(tokenizer_config, indent=2, ensure_ascii=False))


def mlx_model(cache_dir: Path, shape: Shape = TINY, *, seed: int = 0) -> Path:
    """A generated qwen2 model folder for mlx-lm (cached like the GGUF files)."""
    shape = _resolve(shape)
    target = Path(cache_dir) / f"{shape.name}-{shape.key()}-s{seed}-v{FORMAT_VERSION}-mlx"
    return _atomic(target, lambda tmp: write_mlx_folder(tmp, shape, seed=seed))


def tiny_mlx(cache_dir: Path, *, seed: int = 0) -> Path:
    """The tiny model as an mlx-lm folder (the same tokenizer and template as `tiny_gguf`)."""
    return mlx_model(cache_dir, TINY, seed=seed)
