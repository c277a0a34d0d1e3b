"""CUDA: run on the GPU machine (benchmarks/gpu/run.sh runs `pytest -m gpu tests/test_backend_gpu.py`).

QWENCTL_GPU_MODELS points at the folder of shape-faithful models the script generated; the tests that
need one skip without it.
"""

import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from qwenctl.backends import LoadOptions, SamplingOptions, load_backend
from qwenctl.catalog import load_catalog
from qwenctl.estimate import kv_cache_bytes
from qwenctl.hardware import LiveSource, detect
from qwenctl.testing import models

pytestmark = pytest.mark.gpu
llama_cpp = pytest.importorskip("llama_cpp")


def _model(size: str, quant: str) -> Path:
    folder = os.environ.get("QWENCTL_GPU_MODELS")
    if not folder:
        pytest.skip("QWENCTL_GPU_MODELS is not set")
    found = sorted(Path(folder).glob(f"qwen2.5-{size.lower()}-*-{quant}.gguf"))
    if not found:
        pytest.skip(f"no {size} {quant} model in {folder}")
    return found[0]


def test_this_build_offloads():
    assert llama_cpp.llama_supports_gpu_offload()


def _tiny_gguf(cache: Path) -> Path:
    """Generated in another process: the generator imports the gguf package (and with it sentencepiece),
    and on the H100 machine that import, before a CUDA model load, crashed the process."""
    code = f"from pathlib import Path; from qwenctl.testing import models; print(models.tiny_gguf(Path({str(cache)!r})))"
    return Path(subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout.strip())


def test_full_offload_uses_gpu_memory_and_generates(model_cache):
    s = load_backend("llama.cpp", _tiny_gguf(model_cache), LoadOptions(n_ctx=2048, n_gpu_layers=-1))
    try:
        assert s.n_gpu_layers == models.TINY.num_hidden_layers + 1 and s.notes == ()
        events = list(s.chat([{"role": "user", "content": "Hello"}], SamplingOptions(max_tokens=16, seed=1)))
        assert events[-1].generated_tokens >= 1
        used = s.memory().gpu_bytes
        assert used is not None and used > 100 * 2**20  # the CUDA context and buffers (~550 MiB seen on an H100)
    finally:
        s.close()


_GPU_USE_OF_A_LOAD = """
import sys
from pathlib import Path
from qwenctl.backends import LoadOptions, load_backend, memory
before = memory.gpu_used_bytes()
s = load_backend("llama.cpp", Path(sys.argv[1]), LoadOptions(n_ctx=512, n_gpu_layers=0, op_offload={op_offload}))
s.reset()
s.prefill([1, 2, 3])
print(memory.gpu_used_bytes() - before)
"""


def test_a_plan_on_the_cpu_starts_nothing_on_the_gpu(model_cache):
    """A plan on the CPU (the planner's choice where the GPU's memory is taken by other programs) loads with no GPU
    device, so NVML sees no more memory used on the GPU; the same load left to llama.cpp's default device list starts
    a CUDA context there, hundreds of MiB, with no layer on it. Each load in a fresh process: a context, once started,
    stays for the process's life."""
    model = _tiny_gguf(model_cache)

    def rise(op_offload) -> int:
        code = _GPU_USE_OF_A_LOAD.format(op_offload=op_offload)
        out = subprocess.run([sys.executable, "-c", code, str(model)], check=True, capture_output=True, text=True).stdout
        return int(out.strip().splitlines()[-1])

    assert rise(None) > 100 * 2**20
    assert rise(False) < 16 * 2**20


_HOLD_THE_GPU = """
import sys
import torch
free, _ = torch.cuda.mem_get_info()
held = torch.empty(free - int(sys.argv[1]), dtype=torch.uint8, device="cuda")
print("holding", held.numel(), flush=True)
sys.stdin.read()
"""

_UNPLANNED_LOAD = """
import sys
from pathlib import Path
from qwenctl.backends import load_backend
from qwenctl.hardware import LiveSource, detect
from qwenctl.pipeline import unplanned_load_options
s = load_backend("llama.cpp", Path(sys.argv[1]), unplanned_load_options(detect(LiveSource()), 512))
s.reset()
s.prefill([1, 2, 3])
print(s.n_gpu_layers, s.notes)
"""


def test_a_gpu_another_program_fills_gets_a_plan_on_the_cpu_that_loads(model_cache):
    """Another process (PyTorch, as Ollama or a game would) holds all but 4 MiB of the GPU. Live detection reads the
    free memory, the plan moves to the CPU and its load starts nothing on the GPU; a `--model` load, with no plan,
    goes to the CPU alone as well (in its own process, which has no CUDA context yet: there a load that let llama.cpp
    start one on the full GPU failed, and the loader's retry aborted the process, rc -6, on the H100 in session 71)."""
    from qwenctl.backends import memory
    from qwenctl.pipeline import load_options
    from qwenctl.plan import plan

    model = _tiny_gguf(model_cache)
    holder = subprocess.Popen([sys.executable, "-c", _HOLD_THE_GPU, str(4 * 2**20)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().startswith("holding")
        chosen = plan(detect(LiveSource())).chosen
        assert (chosen.device, chosen.n_gpu_layers) == ("cpu", 0)
        before = memory.gpu_used_bytes()
        s = load_backend("llama.cpp", model, replace(load_options(chosen), n_ctx=512))
        try:
            s.reset()
            s.prefill([1, 2, 3])
            assert memory.gpu_used_bytes() - before < 16 * 2**20
        finally:
            s.close()
        unplanned = subprocess.run([sys.executable, "-c", _UNPLANNED_LOAD, str(model)], capture_output=True, text=True)
        assert unplanned.returncode == 0, unplanned.stderr[-2000:]
        assert unplanned.stdout.startswith("0 ()"), unplanned.stdout
    finally:
        holder.communicate("")


@pytest.mark.slow
def test_out_of_memory_ladder_on_a_real_gpu():
    """A 7B-shape model whose f16 KV cache is 1.15x the GPU's memory (an H100 80GB: 1.7M cells, 98 GB; an H200:
    3.0M cells, 173 GB) cannot be all on the card: the loader must step down the layer ladder and say so, not
    fail. Sized from the GPU it runs on, so the ladder is reached on any card."""
    path = _model("7B", "Q4_K_M")
    gpus = detect(LiveSource()).gpus
    assert gpus, "NVML found no GPU"
    per_cell = kv_cache_bytes(load_catalog().model("7B"), 1, "f16")
    n_ctx = int(1.15 * gpus[0].memory_total_bytes / per_cell) // 256 * 256
    s = load_backend("llama.cpp", path, LoadOptions(n_ctx=n_ctx, n_gpu_layers=-1, flash_attn=True, n_batch=512))
    try:
        assert 0 < s.n_gpu_layers < 29
        assert s.notes and s.notes[-1].startswith("out of GPU memory with 29 of 29 layers on the GPU; loaded with")
    finally:
        s.close()
