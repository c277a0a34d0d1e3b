"""On the CPU qwenctl loads models as llama.cpp's own tools do by default: flash attention by llama.cpp's
auto rule (llama-bench's `-fa` default), threads = physical cores in run, bench and serve."""

from __future__ import annotations

import json

import psutil
import pytest
from click.testing import CliRunner

from qwenctl.backends import LoadOptions, load_backend
from qwenctl.cli import cli
from qwenctl.profiles import load_profile
from qwenctl.testing import models

llama_cpp = pytest.importorskip("llama_cpp")
PHYSICAL = psutil.cpu_count(logical=False)


@pytest.mark.parametrize("asked, context_type, used", [
    (None, llama_cpp.LLAMA_FLASH_ATTN_TYPE_AUTO, True),  # the CPU runs FLASH_ATTN_EXT: llama.cpp enables it
    (False, llama_cpp.LLAMA_FLASH_ATTN_TYPE_DISABLED, False),
    (True, llama_cpp.LLAMA_FLASH_ATTN_TYPE_ENABLED, True),
], ids=["default-auto", "off", "on"])
def test_flash_attention_is_llama_cpps_auto_rule_by_default(model_cache, asked, context_type, used):
    import llama_cpp._internals as internals

    original = internals.LlamaContext.__init__
    session = load_backend("llama.cpp", models.tiny_gguf(model_cache), LoadOptions(n_ctx=256, flash_attn=asked))
    try:
        assert session.llm.context_params.flash_attn_type == context_type
        assert session.flash_attn is used
        assert session.n_threads == PHYSICAL
        assert internals.LlamaContext.__init__ is original, "the auto hook is gone after loading"
        assert "".join(e.text for e in session.generate(session.tokenize("hello"), _greedy(4)))  # it generates
    finally:
        session.close()


def _greedy(n: int):
    from qwenctl.backends import SamplingOptions

    return SamplingOptions(temperature=0.0, max_tokens=n, seed=1)


def test_plans_leave_flash_attention_to_llama_cpp_on_the_cpu_and_ask_for_it_on_gpus():
    from qwenctl.pipeline import load_options
    from qwenctl.plan import Constraints, plan

    cpu = load_options(plan(load_profile("laptop-16gb-cpu-only"), Constraints()).chosen)
    gpu = load_options(plan(load_profile("rtx-4060-8gb"), Constraints()).chosen)
    assert (cpu.flash_attn, gpu.flash_attn) == (None, True)


def test_a_plan_on_the_cpu_loads_without_llama_cpps_op_offload(model_cache):
    """llama.cpp runs a CPU layer's large batches on any GPU it finds (op offload), which a plan on the CPU neither
    prices nor, on a macOS virtual machine's paravirtual GPU, can trust: such a plan turns it off; a GPU plan keeps
    llama.cpp's default."""
    from qwenctl.pipeline import load_options
    from qwenctl.plan import Constraints, plan

    cpu = load_options(plan(load_profile("laptop-16gb-cpu-only"), Constraints()).chosen)
    gpu = load_options(plan(load_profile("rtx-4060-8gb"), Constraints()).chosen)
    assert (cpu.op_offload, gpu.op_offload) == (False, None)
    session = load_backend("llama.cpp", models.tiny_gguf(model_cache), LoadOptions(n_ctx=256, op_offload=False))
    try:
        assert session.llm.context_params.op_offload is False
    finally:
        session.close()
    session = load_backend("llama.cpp", models.tiny_gguf(model_cache), LoadOptions(n_ctx=256))
    try:
        assert session.llm.context_params.op_offload is True
    finally:
        session.close()


def test_bench_defaults_match_llama_bench_on_the_cpu(model_cache, tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))
    out = CliRunner().invoke(cli, ["bench", "--model", str(models.tiny_gguf(model_cache)), "-p", "32", "-n", "4", "-r", "1",
                                   "--no-chat", "--no-save", "--json"], catch_exceptions=False)
    assert out.exit_code == 0, out.output
    doc = json.loads(out.stdout)
    assert (doc["flash_attn"], doc["n_threads"], doc["n_gpu_layers"]) == (True, PHYSICAL, 0)


def test_serve_model_path_uses_physical_cores_not_half_the_cpus(model_cache):
    from serve_helpers import start

    server = start(models.tiny_gguf(model_cache))
    try:
        assert server.info["n_threads"] == PHYSICAL
    finally:
        assert server.stop() == 0, server.stderr
