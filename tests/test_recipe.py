"""qwenctl.testing.recipe (the tensor bytes llama.cpp's quantizer writes for a shape) against files its quantizer
really writes here, against Qwen's official files, and against sizes llama-bench printed for files nobody here has."""

from dataclasses import replace

import pytest

from qwenctl.backends.gguf_check import read_parts
from qwenctl.catalog import Architecture, load_catalog
from qwenctl.estimate import weight_split
from qwenctl.testing.models import Shape, gguf_model
from qwenctl.testing.recipe import gguf_tensor_bytes

GiB = 2**30


# 16 layers: use_more_bits picks layers 0, 1, 4, 7, 10, 13, 14, 15 and Q3_K_M's first sixteenth is layer 0; four
# query heads per KV head, as in every Qwen2.5 size. The second shape's rows (320, 640) are no multiple of 256, as
# Qwen2.5-0.5B's 896: every k-quant falls back to a 32-value type.
BLOCKED = Shape("recipe-256", hidden_size=256, num_hidden_layers=16, num_attention_heads=4, num_key_value_heads=1,
                intermediate_size=512, vocab_size=0, tie_word_embeddings=False, max_position_embeddings=4096)
ODD_ROWS = replace(BLOCKED, name="recipe-320", hidden_size=320, num_attention_heads=5, intermediate_size=640)


@pytest.mark.parametrize("quant", ["Q2_K", "Q3_K_M", "Q4_0", "Q4_K_M", "Q5_0", "Q5_K_M", "Q6_K", "Q8_0"])
@pytest.mark.parametrize("shape", [BLOCKED, ODD_ROWS, replace(BLOCKED, name="recipe-tied", tie_word_embeddings=True)],
                         ids=["blocked", "odd-rows", "tied"])
def test_recipe_matches_the_quantizer_byte_for_byte(model_cache, shape, quant):
    path = gguf_model(model_cache, shape, quant)
    written = sum(t.n_bytes for info in read_parts(path) for t in info.tensors)
    assert gguf_tensor_bytes(shape.architecture(), quant, biases=True) == written


def test_qwens_own_small_files_store_the_output_matrix_although_the_architecture_ties_it():
    """Every official file from 0.5B to 32B is its tensors plus the same ~6 MB of metadata (the tokenizer), once the
    0.5B-3B files are counted with an output.weight of their own; counted tied, they would be 82-628 MB short."""
    catalog = load_catalog()
    checked = 0
    for m in catalog.models:
        if m.size == "72B":
            continue
        for w in m.weights:
            if w.format != "gguf" or not w.bytes_exact:
                continue
            assert w.output_in_file
            tensors = gguf_tensor_bytes(replace(m.arch, tied_embeddings=False), w.label, biases=True)
            assert 5.9e6 < w.total_bytes - tensors < 6.0e6, (m.size, w.label)
            if m.arch.tied_embeddings:
                assert w.total_bytes - gguf_tensor_bytes(m.arch, w.label, biases=True) > 80e6
            checked += 1
    assert checked == 6 * 9


def test_qwens_72b_files_pad_the_feed_forward_to_a_multiple_of_256():
    """29,568 is no multiple of 256; the official 72B Q4_K_M matches a 29,696-wide feed-forward (k-quant blocks
    everywhere) to the same metadata, and would be 3.4 GB larger with Q5_0 / Q8_0 fallbacks."""
    m = load_catalog().model("72B")
    w = m.weights_for("gguf", "q4_k_m")
    padded = gguf_tensor_bytes(replace(m.arch, intermediate_size=29696), "Q4_K_M", biases=True)
    assert 5.9e6 < w.total_bytes - padded < 6.1e6
    assert gguf_tensor_bytes(m.arch, "Q4_K_M", biases=True) - w.total_bytes > 3e9


LLAMA2_7B = Architecture(4096, 32, 32, 32, 128, 11008, 32000, False, 4096, 4096)
LLAMA3_8B = Architecture(4096, 32, 32, 8, 128, 14336, 128256, False, 8192, 8192)
LLAMA3_70B = Architecture(8192, 80, 64, 8, 128, 28672, 128256, False, 8192, 8192)


@pytest.mark.parametrize("arch, quant, printed_gib", [
    # llama-bench's size column, as the rows of benchmarks/published_speeds.json carry them: ggml-org/llama.cpp
    # discussion 15013 (llama 7B Q4_0), PR 4766 (codellama-7b Q8_0 and F16), XiongjieDai/GPU-Benchmarks-on-LLM-
    # Inference (Llama 3 8B Q4_K_M on an RTX 3070, 70B Q4_K_M on an M1 Max)
    (LLAMA2_7B, "Q4_0", 3.56), (LLAMA2_7B, "Q8_0", 6.67), (LLAMA2_7B, "F16", 12.55),
    (LLAMA3_8B, "Q4_K_M", 4.58), (LLAMA3_70B, "Q4_K_M", 39.59),
], ids=["llama2-7b-q4_0", "llama2-7b-q8_0", "llama2-7b-f16", "llama3-8b-q4_k_m", "llama3-70b-q4_k_m"])
def test_recipe_gives_the_sizes_llama_bench_printed(arch, quant, printed_gib):
    """CodeLlama's 32,016-entry vocabulary is within the rounding; the 70B's attn_v is Q5_K (llama.cpp's 70B rule)."""
    assert gguf_tensor_bytes(arch, quant) / GiB == pytest.approx(printed_gib, abs=0.006)


def test_a_token_of_the_official_05b_reads_what_a_tied_files_token_reads():
    """Qwen's 0.5B Q4_K_M holds token_embd (Q5_0, only looked up) and output.weight (Q8_0, multiplied) apart: the
    planner counts the layers and the output matrix, 0.40 GB, not the whole 0.49 GB file less the output."""
    catalog = load_catalog()
    m = catalog.model("0.5B")
    w = m.weights_for("gguf", "q4_k_m")
    split = weight_split(catalog, m, w)
    read = m.arch.n_layers * split.layer_bytes + split.output_bytes
    tied_file = gguf_tensor_bytes(m.arch, "Q4_K_M", biases=True)
    assert split.output_in_file
    assert split.embd_bytes == 151936 * 896 * 22 // 32  # Q5_0: Q4_K's fallback for 896-long rows
    assert 0 < read - tied_file < 6.1e6  # the metadata, spread over the layers
