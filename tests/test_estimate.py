from dataclasses import replace

import pytest

from qwenctl.catalog import load_catalog
from qwenctl.estimate import estimate_memory, estimate_split_memory, idle_gpu, kv_cache_bytes, load_calibration
from qwenctl.split import place_layers

GiB = 2**30


def spec(size, quant="q4_k_m", fmt="gguf"):
    m = load_catalog().model(size)
    return m, m.weights_for(fmt, quant)


def test_kv_cache_uses_grouped_query_attention():
    m, _ = spec("7B")
    # 8192 tokens x 28 layers x 4 KV heads x 128 x 2 (K, V) x 2 bytes = 448 MiB, not 28 heads' 3.1 GiB
    assert kv_cache_bytes(m, 8192) == 8192 * 28 * 4 * 128 * 2 * 2 == 448 * 2**20
    assert kv_cache_bytes(m, 8192, "q8_0") == int(448 * 2**20 * 1.0625 / 2)
    assert kv_cache_bytes(m, 8192, "q4_0") < kv_cache_bytes(m, 8192, "q8_0")


@pytest.mark.parametrize("size, output_in_file", [("0.5B", True), ("0.5B", False), ("7B", True), ("32B", True)])
def test_split_conserves_weight_bytes(size, output_in_file):
    """Every byte of the file lands in one pool, and a tied model's output matrix is copied from token_embd onto the GPU
    only when the file has no output.weight (bartowski's and Ollama's 0.5B; Qwen's own 0.5B file stores one)."""
    m, w = spec(size)
    w = replace(w, output_in_file=output_in_file)
    L = m.arch.n_layers
    output = estimate_memory(m, w, "llama.cpp", "cuda", 4096, 1).pool("vram").weights_bytes  # the first layer offloaded
    for ngl in (0, 1, L // 2, L):
        est = estimate_memory(m, w, "llama.cpp", "cuda", 4096, ngl)
        # llama.cpp offloads the output layer first
        copy = output if (ngl and not output_in_file) else 0
        assert abs(sum(p.weights_bytes for p in est.pools) - w.total_bytes - copy) <= L, ngl
    full = estimate_memory(m, w, "llama.cpp", "cuda", 4096, -1)
    extra = sum(p.weights_bytes for p in full.pools) - w.total_bytes
    assert (extra > 0) == (not output_in_file)
    assert extra <= full.pool("ram").weights_bytes + L


def test_partial_offload_moves_memory_monotonically():
    m, w = spec("14B")
    vram = [estimate_memory(m, w, "llama.cpp", "cuda", 8192, k).pool("vram").total_bytes for k in range(1, 49)]
    ram = [estimate_memory(m, w, "llama.cpp", "cuda", 8192, k).pool("ram").total_bytes for k in range(1, 49)]
    assert vram == sorted(vram) and ram == sorted(ram, reverse=True)


def test_full_offload_counts_cuda_context_and_keeps_embedding_on_host():
    m, w = spec("7B")
    est = estimate_memory(m, w, "llama.cpp", "cuda", 8192, -1, flash_attn=True)
    vram, ram = est.pool("vram"), est.pool("ram")
    cal = load_calibration()["memory"]
    assert vram.overhead_bytes == cal["cuda_context_bytes"]
    assert ram.overhead_bytes > cal["cuda_host_bytes"]  # the CPU runtime and the CUDA backend's host side
    # without flash attention cuBLAS comes in, on both sides, and ggml's pool holds a micro-batch's f16 scores:
    # 2 bytes x 512 x 28 heads per cell beyond the 1,024 the constants were measured at
    no_fa = estimate_memory(m, w, "llama.cpp", "cuda", 8192, -1, flash_attn=False)
    scores = 2 * 512 * 28 * (8192 - 1024)
    assert no_fa.pool("vram").overhead_bytes - vram.overhead_bytes == cal["cuda_no_flash_attn_bytes"] + scores
    shallow = estimate_memory(m, w, "llama.cpp", "cuda", 8192, -1, flash_attn=False, depth=1000)
    assert shallow.pool("vram").overhead_bytes - vram.overhead_bytes == cal["cuda_no_flash_attn_bytes"]
    width = m.arch.n_heads * m.arch.head_dim
    cublas_host = cal["cuda_no_flash_attn_host_bytes"] + cal["cuda_no_flash_attn_host_bytes_per_width"] * width
    assert no_fa.pool("ram").overhead_bytes - ram.overhead_bytes == pytest.approx(cublas_host, abs=1)
    # token_embd (Q4_K, 152064 x 3584) stays on the host
    assert ram.weights_bytes == int(152064 * 3584 * 4.5 / 8)
    assert vram.kv_bytes == 448 * 2**20 and ram.kv_bytes == 0


def test_f16_matrices_bring_cublas_with_flash_attention_too():
    """llama.cpp multiplies a float matrix's prompt batches with cuBLAS: its handle and kernels come with F16 weights
    whatever the attention does (H200, 0.5B/1.5B F16 with flash attention: -15/-13 % on the host without this)."""
    cal = load_calibration()["memory"]
    m, q4 = spec("7B")
    _, f16 = spec("7B", "fp16")

    def overheads(w):
        est = estimate_memory(m, w, "llama.cpp", "cuda", 8192, -1, flash_attn=True)
        return est.pool("vram").overhead_bytes, est.pool("ram").overhead_bytes

    (vram_q4, ram_q4), (vram_f16, ram_f16) = overheads(q4), overheads(f16)
    assert vram_f16 - vram_q4 == cal["cuda_no_flash_attn_bytes"]
    # the host: cuBLAS's kernels, less the two types' kernels Q4_K_M loads beyond F16's one
    cublas = cal["cuda_no_flash_attn_host_bytes"] + cal["cuda_no_flash_attn_host_bytes_per_width"] * 3584
    assert ram_f16 - ram_q4 == pytest.approx(cublas - cal["cuda_host_bytes_per_matrix_type"], abs=2)


def test_no_layer_offloaded_sizes_the_gpu_buffer_for_the_wider_step_not_both():
    """With no layer offloaded a CUDA build copies the output matrix in for the logits and, without flash attention, a
    layer's KV cells for its attention: the two steps are never live together (H200, 7B at 32,768 cells: 1,955 MiB
    measured, where their sum said 2,116)."""
    m, w = spec("7B")
    out = estimate_memory(m, w, "llama.cpp", "cuda", 4096, 1).pool("vram").weights_bytes  # the output layer alone
    def compute(n_ctx, fa):
        return estimate_memory(m, w, "llama.cpp", "cuda", n_ctx, 0, flash_attn=fa).pool("vram").compute_bytes
    scores = 4 * 512 * m.arch.n_heads * 32768
    assert compute(32768, True) > out  # the output matrix beside the logits, whatever the context
    assert scores < compute(32768, False) < scores + out  # the attention step alone: scores, mask, K/V cells, activations


def test_a_cuda_context_reserves_a_stack_for_every_thread_its_gpu_holds():
    """The CUDA context was measured on GPUs of 132 SMs x 2,048 resident threads (H100, H200). Its driver reserves
    a 1 KiB stack per resident thread: on the H200 a bare context holds 526.8 MiB, 264 MiB of them that reservation,
    and each byte more of stack adds 270,336 bytes (benchmarks/results/h200-ctxmem). An RTX 4060 (24 SMs x 1,536)
    reserves 36 MiB: 228 MiB less, in its context and in an idle one alike; an unknown GPU is priced as measured."""
    m, w = spec("7B")

    def overhead(threads):
        est = estimate_memory(m, w, "llama.cpp", "cuda", 8192, -1, flash_attn=True, resident_threads=threads)
        return est.pool("vram").overhead_bytes

    assert overhead(None) == overhead(132 * 2048) == load_calibration()["memory"]["cuda_context_bytes"]
    assert overhead(132 * 2048) - overhead(24 * 1536) == (132 * 2048 - 24 * 1536) * 1024 == 228 * 2**20
    assert idle_gpu(1).overhead_bytes - idle_gpu(1, 24 * 1536).overhead_bytes == 228 * 2**20
    # the same on every device of a split, each by its own threads
    split = estimate_split_memory(m, w, 8192, "layer", place_layers(28, -1, (1.0, 1.0)), (1.0, 1.0), ("gpu", "gpu"),
                                  resident_threads=(132 * 2048, 24 * 1536))
    assert split.pools[0].overhead_bytes - split.pools[1].overhead_bytes == 228 * 2**20


def test_the_no_offload_buffer_is_what_ggmls_allocator_placed():
    """The CUDA0 compute buffer llama.cpp logged on the H200 with no layer offloaded (8,192 cells), for files the
    catalog describes, llama.cpp's own recipes (Q4_K_M mixes Q6_K in, the 0.5B's 896-wide rows Q5_0 and Q8_0): the
    allocator replayed over the order recorded from Q4_0 files (tests/test_cuda_alloc.py) gives each to 0.01 MiB. A
    size rule before it was 113 MiB under for the 7B Q8_0 with flash attention, and 5 MiB for the 0.5B."""
    logged = {("7B", "q4_k_m", False, "f16"): 827.47, ("7B", "q4_k_m", True, "f16"): 730.36,
              ("7B", "q8_0", True, "f16"): 969.03, ("7B", "q8_0", False, "f16"): 856.23,
              ("7B", "q3_k_m", True, "f16"): 730.36, ("7B", "q3_k_m", False, "f16"): 773.78,
              ("14B", "q4_k_m", True, "f16"): 916.08, ("3B", "q4_k_m", False, "f16"): 565.81,
              ("3B", "q4_k_m", True, "f16"): 544.18, ("1.5B", "q3_k_m", False, "f16"): 492.70,
              ("1.5B", "q3_k_m", True, "q8_0"): 492.70, ("1.5B", "q8_0", True, "f16"): 536.22,
              ("1.5B", "q4_k_m", False, "f16"): 496.09, ("1.5B", "fp16", True, "f16"): 744.88,
              ("0.5B", "q4_k_m", False, "f16"): 441.69, ("0.5B", "q4_k_m", True, "f16"): 441.60,
              ("0.5B", "q3_k_m", True, "q8_0"): 440.53, ("0.5B", "fp16", True, "f16"): 558.16}
    for (size, quant, fa, cache), mib in logged.items():
        m, w = spec(size, quant)
        got = estimate_memory(m, w, "llama.cpp", "cuda", 8192, 0, cache, flash_attn=fa).pool("vram").compute_bytes
        assert got / 2**20 == pytest.approx(mib, abs=0.006), (size, quant, fa, cache)


def test_layers_left_on_the_host_cost_cuda_graphs_on_the_gpu():
    """Their prompt batches run on the GPU one weight at a time, and ggml captures a CUDA graph per split."""
    cal = load_calibration()["memory"]
    m, w = spec("7B")

    def vram(ngl, graphs=None):
        return estimate_memory(m, w, "llama.cpp", "cuda", 8192, ngl, flash_attn=True, cuda_graphs=graphs).pool("vram")

    # the planner counts every split: 13 per layer, 28 layers
    assert vram(0).overhead_bytes - vram(0, graphs=0).overhead_bytes == int(13 * 28 * cal["cuda_graph_bytes"])
    # a measurement passes what its log counted (224 for the 7B after a 1,024-token prompt on the H200)
    assert vram(0, graphs=224).overhead_bytes - vram(0, graphs=0).overhead_bytes == int(224 * cal["cuda_graph_bytes"])
    # 10 of 28 layers on the host: their graphs only; every layer on the GPU: none
    assert vram(19).overhead_bytes - vram(-1).overhead_bytes == int(13 * 10 * cal["cuda_graph_bytes"])


def test_cuda_host_memory_follows_the_kernels_the_plan_runs():
    """CUDA loads kernels lazily, so the host memory of a CUDA process depends on what it runs."""
    cal = load_calibration()["memory"]
    m, q4 = spec("0.5B")
    _, q8 = spec("0.5B", "q8_0")

    def host(w, ngl=-1, flash_attn=True, kv="f16", model=m):
        return estimate_memory(model, w, "llama.cpp", "cuda", 8192, ngl, kv, flash_attn).pool("ram").overhead_bytes

    # decode multiplies four types in the 0.5B Q4_K_M (Q4_K and Q6_K, and Q5_0 and Q8_0 where rows are 896 long,
    # which k-quants cannot block), one in the Q8_0: three more types' kernels
    assert load_catalog().matrix_types(m, q4) == {"Q4_K", "Q6_K", "Q5_0", "Q8_0"}
    assert host(q4) - host(q8) == pytest.approx(3 * cal["cuda_host_bytes_per_matrix_type"], abs=1)
    # a quantized KV cache brings its own flash-attention kernels
    assert host(q4, kv="q8_0") - host(q4) == pytest.approx(cal["cuda_quantized_kv_host_bytes"], abs=1)
    # with no layer offloaded only prompt batches run on the GPU: no decode kernels, whatever the types
    assert host(q4, ngl=0) == host(q8, ngl=0) < host(q8)
    # without flash attention cuBLAS comes in, more of it for a wider attention, less with no decode on the GPU
    m7, w7 = spec("7B")
    small, large = host(q4, flash_attn=False) - host(q4), host(w7, flash_attn=False, model=m7) - host(w7, model=m7)
    assert 0 < small < large
    # ... but no more beyond the widest attention measured (the 7B's): the 14B's measured less, not more
    m14, w14 = spec("14B")
    assert host(w14, flash_attn=False, model=m14) - host(w14, model=m14) == large
    assert host(q4, ngl=0, flash_attn=False) - host(q4, ngl=0) == pytest.approx(
        small - cal["cuda_no_flash_attn_decode_host_bytes"], abs=1)


def test_flash_attention_shrinks_compute_buffer_at_long_context():
    m, w = spec("7B")
    with_fa = estimate_memory(m, w, "llama.cpp", "cuda", 32768, -1, flash_attn=True).pool("vram").compute_bytes
    without = estimate_memory(m, w, "llama.cpp", "cuda", 32768, -1, flash_attn=False).pool("vram").compute_bytes
    assert with_fa < without


def test_mlx_and_metal_use_unified_pool():
    m, w = spec("7B", "4bit", "mlx")
    est = estimate_memory(m, w, "mlx", "metal", 8192)
    assert [p.pool for p in est.pools] == ["unified"]
    assert est.pools[0].weights_bytes == w.total_bytes


def test_host_side_of_a_cuda_build_grows_with_the_layers_on_the_gpu():
    """The decode's CUDA graph (and more, untraced) holds host memory per offloaded layer: the 72B's 80 layers
    on the H200 held 0.375 MiB each (benchmarks/results/h200-hostgraphs/), the 0.5B's 24 as many each."""
    cal = load_calibration()["memory"]
    per_layer = cal["cuda_host_bytes_per_gpu_layer"]
    assert per_layer == 393216

    def host_overhead(size, ngl):
        m, w = spec(size)
        return estimate_memory(m, w, "llama.cpp", "cuda", 8192, ngl, flash_attn=True).pool("ram").overhead_bytes

    # the same file with 14 fewer of its 28 layers on the GPU: 14 layers' graph nodes fewer on the host
    assert host_overhead("7B", -1) - host_overhead("7B", 15) == 14 * per_layer
    # 72B Q4_K_M against 0.5B, both fully offloaded: the layer term is 56 x 0.375 = 21 MiB of what differs
    m72, w72 = spec("72B")
    m05, w05 = spec("0.5B")
    types = cal["cuda_host_bytes_per_matrix_type"]
    runtime = cal["host_vocab_bytes_per_token"] * (m72.arch.vocab_size - m05.arch.vocab_size)
    kinds = len(load_catalog().matrix_types(m72, w72)) - len(load_catalog().matrix_types(m05, w05))
    assert host_overhead("72B", -1) - host_overhead("0.5B", -1) == pytest.approx(
        56 * per_layer + kinds * types + runtime, abs=2)
