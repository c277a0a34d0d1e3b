"""The no-offload CUDA compute buffer, replayed as ggml's allocator places it, against traces of every placement the
allocator made on the H200 (benchmarks/results/h200-alloctrace, read with the script that recorded the program)."""

from __future__ import annotations

from pathlib import Path

import pytest
from benchmark_scripts import load

from qwenctl.catalog import load_catalog
from qwenctl.cuda_alloc import DynamicAllocator, cuda_alloc_bytes, no_offload_compute_bytes

ROOT = Path(__file__).resolve().parents[1]
TRACES = sorted((ROOT / "benchmarks" / "results" / "h200-alloctrace").glob("alloc-*.txt.gz"))
MiB = 2**20


recorder = load("gpu/alloc_program.py")


def test_best_fit_takes_the_smallest_free_block_and_a_release_merges_with_its_neighbours():
    a = DynamicAllocator(128)
    x, y, z = a.alloc(1000), a.alloc(300), a.alloc(1000)  # rounded up to 1024, 384, 1024
    assert (x, y, z) == (0, 1024, 1408)
    a.free(x, 1000)
    a.free(z, 1000)  # z ran to the end, so it merges into the open end
    assert a.alloc(200) == 0  # the hole at 0 is the only free block besides the end
    assert a.alloc(1024) == 1408  # too big for what is left of the hole: back at the end
    a.free(y, 300)  # merges with the rest of the hole below it
    assert a.blocks[0] == [256, 1152]
    assert a.max_size == 2432


@pytest.mark.parametrize("trace", TRACES, ids=lambda p: p.name.removesuffix(".txt.gz"))
def test_every_tensor_lands_where_ggml_placed_it(trace):
    """Replayed with the sizes the trace logged, the allocator puts each tensor at the offset ggml did: the port is
    ggml's algorithm, with or without layers offloaded."""
    lines, logged = recorder.reserve(trace)
    allocator, where = DynamicAllocator(128), {}
    events = recorder.cuda_events(lines)
    for action, name, _, size, offset in events:
        if action == "+":
            where[offset] = allocator.alloc(size)
            assert where[offset] == offset, name
        else:
            allocator.free(where.pop(offset), size)
    assert len(events) > 500  # the reserve was traced: a 24-layer model places ~27 tensors a layer
    assert allocator.max_size / MiB == pytest.approx(logged, abs=0.005)


NO_OFFLOAD = [t for t in TRACES if "-ngl-" not in t.name]


@pytest.mark.parametrize("trace", NO_OFFLOAD, ids=lambda p: p.name.removesuffix(".txt.gz"))
def test_the_recorded_order_and_the_tensor_sizes_give_the_buffer_llama_cpp_logged(trace):
    """The program was recorded from the 7B Q4_0 traces at 8,192 cells; the others (0.5B to 14B, Q8_0, 4,096 to 32,768
    cells, a q8_0 cache) only check it. Every matrix of these files is at the quant in its name."""
    size, quant, n_ctx, *flags = trace.name.removesuffix(".txt.gz").split("-")[1:]
    arch = load_catalog().model(size).arch
    cache = flags[flags.index("kv") + 1] if "kv" in flags else "f16"
    got = no_offload_compute_bytes(arch, ((quant,) * 7,) * arch.n_layers, quant, int(n_ctx), "fa" in flags, cache)
    assert got / MiB == pytest.approx(recorder.reserve(trace)[1], abs=0.005)


def test_a_quantized_matrix_is_padded_to_a_512_value_row():
    """CUDA pads a quantized matrix by one row's worth of values up to a multiple of 512, so its kernels can read past
    the end: 0.5B's 896-wide Q4_0 attn_q takes 72 bytes more (451,656 logged for its copy); floats are not padded."""
    assert cuda_alloc_bytes(896, 896, "Q4_0") == 896 * 896 // 32 * 18 + 72 == 451_656
    assert cuda_alloc_bytes(3584, 3584, "Q4_0") == 3584 * 3584 // 32 * 18  # already a multiple of 512
    assert cuda_alloc_bytes(896, 896, "F16") == 896 * 896 * 2


def test_a_file_missing_layer_matrices_is_refused_in_words_not_with_a_traceback():
    """The replay needs every layer's matrix types; a GGUF whose table lacks some (split_from_tensors leaves them out)
    gets a one-line error with the bad-input exit code."""
    from dataclasses import replace

    from qwenctl.errors import ExitCode, QwenctlError
    from qwenctl.estimate import estimate_memory, weight_split

    catalog = load_catalog()
    model = catalog.model("0.5B")
    weights = model.weights_for("gguf", "q4_k_m")
    split = replace(weight_split(catalog, model, weights), layer_types=())
    with pytest.raises(QwenctlError) as refused:
        estimate_memory(model, weights, "llama.cpp", "cuda", 4096, 0, flash_attn=True, split=split)
    assert refused.value.code == ExitCode.BAD_INPUT and "matrices" in str(refused.value)
