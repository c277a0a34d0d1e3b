"""predict.predict_for_file on generated GGUFs: the header gives the dimensions, the tensor table the bytes."""

from dataclasses import replace

import pytest
from planning_machines import backends, mac, pc

from qwenctl.backends import LoadOptions
from qwenctl.backends.gguf_check import read_gguf_header
from qwenctl.bench import Predicted
from qwenctl.catalog import load_catalog
from qwenctl.errors import ExitCode, QwenctlError
from qwenctl.estimate import estimate_memory, load_calibration, split_from_tensors
from qwenctl.predict import predict_for_file, tensor_table
from qwenctl.testing import models


def test_tiny_model_is_built_from_its_header(model_cache):
    path = models.tiny_gguf(model_cache)
    p = predict_for_file(pc(16), path, LoadOptions(n_ctx=1024))
    shape = models.TINY
    assert p.size is None  # no Qwen2.5 size has these dimensions
    assert (p.device, p.n_gpu_layers, p.n_layers) == ("cpu", 0, shape.num_hidden_layers)
    (ram,) = p.memory
    assert ram.pool == "ram" and ram.weights_bytes == path.stat().st_size == p.file_bytes
    # n_ctx x layers x KV heads x head_dim x (K, V) x 2 bytes (f16)
    assert ram.kv_bytes == 1024 * shape.num_hidden_layers * shape.num_key_value_heads * shape.head_dim * 2 * 2
    assert p.host_bytes == ram.total_bytes and p.gpu_bytes is None
    assert p.tg_tps > 0 and p.pp_tps > 0 and p.tg_tps_low < p.tg_tps


def test_kv_cache_type_and_flash_attention_shrink_memory(model_cache):
    path = models.tiny_gguf(model_cache)
    f16 = predict_for_file(pc(16), path, LoadOptions(n_ctx=4096))
    q8 = predict_for_file(pc(16), path, LoadOptions(n_ctx=4096, kv_cache_type="q8_0", flash_attn=True))
    assert q8.memory[0].kv_bytes == int(f16.memory[0].kv_bytes * 1.0625 / 2)
    assert q8.memory[0].compute_bytes <= f16.memory[0].compute_bytes
    # on the CPU the compute buffer is committed as it is used: a shallow context holds less than a full one
    shallow = predict_for_file(pc(16), path, LoadOptions(n_ctx=4096), depth=300)
    assert shallow.memory[0].compute_bytes <= f16.memory[0].compute_bytes
    assert shallow.memory[0].kv_bytes == f16.memory[0].kv_bytes  # llama.cpp clears (touches) the whole cache


def test_a_depth_prices_decoding_there(model_cache):
    """A measurement taken after a prompt (estimate_accuracy's, after 1,024 tokens) compares with decoding at that
    depth: every cached token's K and V rows are read again for each new token."""
    path = models.tiny_gguf(model_cache)
    empty = predict_for_file(pc(16), path, LoadOptions(n_ctx=4096))
    deep = predict_for_file(pc(16), path, LoadOptions(n_ctx=4096), depth=4000)
    assert deep.tg_tps < empty.tg_tps
    assert deep.tg_tps_low / deep.tg_tps == pytest.approx(empty.tg_tps_low / empty.tg_tps)
    assert deep.pp_tps == empty.pp_tps


def test_device_follows_the_machine(model_cache):
    path = models.tiny_gguf(model_cache)
    cuda = predict_for_file(pc(16, 8), path, LoadOptions(n_ctx=512, n_gpu_layers=-1))
    assert cuda.device == "cuda" and [p.pool for p in cuda.memory] == ["vram", "ram"]
    assert cuda.gpu_bytes == cuda.pool("vram").total_bytes
    # n_gpu_layers=0 runs every layer on the CPU, but a CUDA build still holds its context and a compute
    # buffer on the GPU (measured on the H200: docs/planning.md), and no weights there
    zero = predict_for_file(pc(16, 8), path, LoadOptions(n_ctx=512, n_gpu_layers=0))
    cpu_only = predict_for_file(pc(16, 8, be=backends(offload=False)), path, LoadOptions(n_ctx=512, n_gpu_layers=0))
    assert cpu_only.device == "cpu" and [p.pool for p in cpu_only.memory] == ["ram"]
    assert zero.pool("vram").weights_bytes == 0 and zero.pool("vram").overhead_bytes > 0
    assert zero.tg_tps == pytest.approx(cpu_only.tg_tps)
    # a load on the CPU alone (a plan there, or a GPU with no room for CUDA's context) names no GPU device: none held
    alone = predict_for_file(pc(16, 8), path, LoadOptions(n_ctx=512, n_gpu_layers=0, op_offload=False))
    assert alone.device == "cpu" and [p.pool for p in alone.memory] == ["ram"] and alone.gpu_bytes in (None, 0)
    # but the CUDA build still starts its runtime on the host (calibration cuda_runtime_host_bytes: 190 MiB measured
    # on the H100 machine against a CPU build's), which a CPU-only build does not
    runtime = load_calibration()["memory"]["cuda_runtime_host_bytes"]
    assert alone.host_bytes - cpu_only.host_bytes == runtime > 100 * 2**20
    metal = predict_for_file(mac(16), path, LoadOptions(n_ctx=512, n_gpu_layers=-1))
    assert metal.device == "metal" and [p.pool for p in metal.memory] == ["unified"]


def test_result_converts_to_bench_predicted(model_cache):
    """The glue the bench command uses: every Predicted field comes straight from the prediction."""
    p = predict_for_file(pc(16, 8), models.tiny_gguf(model_cache), LoadOptions(n_ctx=512, n_gpu_layers=-1))
    pred = Predicted(tg_tps=p.tg_tps, pp_tps=p.pp_tps, gpu_bytes=p.gpu_bytes, host_bytes=p.host_bytes, source=p.source)
    assert pred.gpu_bytes == p.pool("vram").total_bytes and pred.host_bytes == p.pool("ram").total_bytes
    assert pred.source.startswith("qwenctl estimate")


def test_damaged_file_is_a_clear_error(tmp_path, model_cache):
    bad = tmp_path / "cut.gguf"
    bad.write_bytes(models.tiny_gguf(model_cache).read_bytes()[:5000])
    with pytest.raises(QwenctlError) as e:
        predict_for_file(pc(16), bad, LoadOptions())
    assert e.value.code == ExitCode.BAD_INPUT


@pytest.mark.slow
def test_shaped_05b_matches_the_catalog_and_splits_the_real_tensors(model_cache):
    pytest.importorskip("llama_cpp")
    path = models.shaped_gguf(model_cache, "0.5B", "Q4_K_M")
    info = read_gguf_header(path)
    embd = next(t.n_bytes for t in info.tensors if t.name == "token_embd.weight")
    p = predict_for_file(pc(16, 8), path, LoadOptions(n_ctx=8192, n_gpu_layers=-1, flash_attn=True))
    assert p.size == "0.5B" and p.n_layers == 24
    vram, ram = p.pool("vram"), p.pool("ram")
    # token_embd (Q8_0 here: 896-wide rows cannot be k-quantized) stays on the host; the tied
    # output is a copy of it on the GPU, so the GPU holds every tensor's bytes
    assert ram.weights_bytes == embd
    assert abs(vram.weights_bytes - info.tensor_bytes) <= p.n_layers
    assert vram.kv_bytes == 8192 * 24 * 2 * 64 * 2 * 2 and ram.kv_bytes == 0
    cpu = predict_for_file(pc(16), path, LoadOptions(n_ctx=8192))
    assert cpu.pool("ram").weights_bytes == path.stat().st_size
    # the types the GPU multiplies (each loads its own kernels): the catalog's rule agrees with the real tensors
    split = split_from_tensors(tensor_table([info]), p.n_layers)
    catalog = load_catalog()
    m = catalog.model("0.5B")
    assert split.matrix_types == len(catalog.matrix_types(m, m.weights_for("gguf", "q4_k_m"))) == 4
    # a partial offload moves layers (and their cache) from the host to the GPU; llama.cpp counts the output
    # layer as one of them and offloads it first: 13 = the output and 12 of the 24 repeating layers
    half = predict_for_file(pc(16, 8), path, LoadOptions(n_ctx=8192, n_gpu_layers=13))
    assert half.pool("vram").kv_bytes == half.pool("ram").kv_bytes == vram.kv_bytes // 2
    # the host keeps the first 12 layers, counted tensor by tensor (Q4_K_M gives some layers more bits), with
    # a share of the tensors outside the layers (output_norm: 3,584 bytes)
    first = sum(t.n_bytes for t in info.tensors if t.name.startswith("blk.") and int(t.name.split(".")[1]) < 12)
    assert 0 <= half.pool("ram").weights_bytes - embd - first <= 3584
    assert cpu.tg_tps < half.tg_tps < p.tg_tps


def test_a_file_laid_out_as_qwens_own_05b_predicts_as_the_catalog_plans_it(model_cache):
    """Qwen's 0.5B files store output.weight beside token_embd: such a file is still the catalog's 0.5B, and what the
    plan says before the download (from the catalog) is what the file at hand gives: token_embd (Q5_0) on the host,
    the layers and the output matrix on the GPU, each token reading those."""
    pytest.importorskip("llama_cpp")
    shape = replace(models.qwen25_shape("0.5B"), name="qwen2.5-0.5b-untied", tie_word_embeddings=False)
    path = models.gguf_model(model_cache, shape, "Q4_K_M")
    options = LoadOptions(n_ctx=8192, n_gpu_layers=-1, flash_attn=True)
    p = predict_for_file(pc(16, 8), path, options)
    assert p.size == "0.5B"
    catalog = load_catalog()
    m = catalog.model("0.5B")
    w = m.weights_for("gguf", "q4_k_m")
    planned = estimate_memory(m, w, "llama.cpp", "cuda", 8192, -1, flash_attn=True)
    metadata = 6e6  # the official file's tokenizer; this file's is cut down
    assert p.pool("ram").weights_bytes == planned.pool("ram").weights_bytes == 151936 * 896 * 22 // 32
    assert 0 <= planned.pool("vram").weights_bytes - p.pool("vram").weights_bytes < metadata
