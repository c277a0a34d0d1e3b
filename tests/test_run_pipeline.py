"""The pipeline's own logic: the smoke test and its diagnosis, --model paths, cache-first fetch.

The smoke test runs a real llama.cpp session; the machines it diagnoses are captured
snapshots of real ones (tests/fixtures/captures), replayed through detect().
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from run_helpers import tiny_model

from qwenctl.backends import LoadOptions, load_backend
from qwenctl.errors import ExitCode, QwenctlError
from qwenctl.hardware import detect, load_snapshot
from qwenctl.pipeline import backend_for_path, unplanned_load_options
from qwenctl.smoke import SMOKE_MAX_TOKENS, likely_cause_of_slowness, smoke_test

CAPTURES = Path(__file__).parent / "fixtures" / "captures"


@pytest.fixture(scope="module")
def session(request):
    s = load_backend("llama.cpp", tiny_model(request.config), LoadOptions(n_ctx=512, n_threads=2))
    yield s
    s.close()


def machine(capture: str):
    return detect(load_snapshot(CAPTURES / capture))


# The smoke test stops after SMOKE_MAX_TOKENS decoded tokens or after `seconds`; the tests give it
# time enough that the token count ends it even on a busy machine (no timing is asserted).


def test_smoke_test_measures_real_generation(session):
    result = smoke_test(session, seconds=120.0, predicted_tps=None, hardware=machine("linux-x86-no-gpu.json"))
    assert result.generated_tokens >= SMOKE_MAX_TOKENS
    assert result.decode_tps > 0 and result.prompt_tps > 0
    assert result.warning is None or CONTENDED in result.warning  # other work took the CPUs meanwhile (tests/test_cpu_share.py)


CONTENDED = "of the time they were given"  # the smoke test's warning when the engine's threads lost their cores


def test_smoke_test_warns_far_below_prediction_with_the_cause(session):
    result = smoke_test(session, seconds=120.0, predicted_tps=1e9, hardware=machine("linux-x86-no-gpu.json"))
    assert result.warning == (
        f"measured {result.decode_tps:.1f} tok/s, far below the predicted 1000000000.0 tok/s: "
        "another program may be using the CPU, or the machine is in a power-saving or throttled state"
    ) or CONTENDED in result.warning  # the cause, measured, where other work took the CPUs meanwhile


def test_cause_cpu_only_build_on_a_gpu_machine(session):
    """The classic: pip built llama-cpp-python without CUDA on an NVIDIA machine."""
    hw = machine("nvidia-rtx-4060.json")
    assert hw.gpus
    hw = dataclasses.replace(hw, backends=dataclasses.replace(hw.backends, llama_cpp_gpu_offload=False))
    assert likely_cause_of_slowness(session, hw) == (
        "llama-cpp-python was built without CUDA, so the model runs on the CPU; reinstall it with "
        'CMAKE_ARGS="-DGGML_CUDA=on" pip install --force-reinstall --no-cache-dir llama-cpp-python'
    )


def test_cause_gpu_build_with_nothing_offloaded(session):
    hw = machine("nvidia-rtx-4060.json")
    hw = dataclasses.replace(hw, backends=dataclasses.replace(hw.backends, llama_cpp_gpu_offload=True))
    assert session.n_gpu_layers == 0  # this machine has no GPU: the session runs on the CPU
    assert likely_cause_of_slowness(session, hw).startswith("no layer is on the GPU")


@pytest.mark.parametrize(
    "name,make,expected",
    [
        ("m.gguf", lambda p: p.write_bytes(b"GGUF"), "llama.cpp"),
        ("mlx-model", lambda p: (p.mkdir(), (p / "config.json").write_text("{}")), "mlx"),
    ],
    ids=["gguf", "mlx"],
)
def test_backend_for_path(tmp_path, name, make, expected):
    path = tmp_path / name
    make(path)
    assert backend_for_path(path) == expected


@pytest.mark.parametrize(
    "name,make,message",
    [
        ("empty-dir", lambda p: p.mkdir(), "is a folder without config.json"),
        ("notes.txt", lambda p: p.write_text("hi"), "is not a GGUF file"),
    ],
    ids=["folder", "text"],
)
def test_backend_for_path_refuses(tmp_path, name, make, message):
    path = tmp_path / name
    make(path)
    with pytest.raises(QwenctlError, match=message) as e:
        backend_for_path(path)
    assert e.value.code == ExitCode.BAD_INPUT


def test_prepare_a_local_model_loads_nothing_and_asks_nothing(tiny_path, monkeypatch):
    """What `serve` uses: the file and its load options, no engine started, no question asked."""
    import io

    from qwenctl.pipeline import RunRequest, prepare
    from qwenctl.render.chat import make_console
    from qwenctl.render.run import RunReporter

    out = io.StringIO()
    prepared = prepare(RunRequest(model=str(tiny_path), n_ctx=1024), RunReporter(make_console(out), ask=None))
    assert (prepared.backend, prepared.plan, prepared.model_name) == ("llama.cpp", None, tiny_path.name)
    assert prepared.files.load_path == str(tiny_path.resolve())
    assert prepared.load_options.n_ctx == 1024
    assert out.getvalue() == "detecting hardware\n"


@pytest.fixture
def tiny_path(request) -> Path:
    return tiny_model(request.config)


@pytest.mark.parametrize(
    ("capture", "n_gpu_layers", "flash_attn"),
    [("nvidia-h100-gpu-machine.json", -1, True), ("apple-m2-16gb.json", -1, True), ("linux-x86-no-gpu.json", 0, None),
     ("apple-m1-virtual-github-runner.json", 0, None)],
)
def test_a_model_without_a_plan_goes_wherever_a_plan_would_put_it(capture, n_gpu_layers, flash_attn):
    """`--model PATH` has no plan: all layers on a GPU with flash attention (what plans choose there), else the CPU
    with flash attention by llama.cpp's auto rule (None) and no op offload; a macOS virtual machine's paravirtual GPU
    is no GPU to plan on."""
    from qwenctl.machine import threads

    options = unplanned_load_options(machine(capture), None)
    assert (options.n_gpu_layers, options.flash_attn, options.n_ctx) == (n_gpu_layers, flash_attn, LoadOptions.n_ctx)
    assert options.op_offload is (None if n_gpu_layers else False)
    assert options.n_threads == threads(machine(capture))  # the one threads rule, as plans use
    assert unplanned_load_options(machine(capture), 16384).n_ctx == 16384


@pytest.mark.parametrize(("free_mib", "n_gpu_layers"), [(4, 0), (300, 0), (2048, -1)])
def test_a_model_without_a_plan_stays_off_a_gpu_with_no_room_for_cudas_context(free_mib, n_gpu_layers):
    """The RTX 4060 capture with all but ``free_mib`` of its memory held by another program. Under the ~650 MiB that
    llama.cpp's CUDA backend starts on it (context, kernels, pool; 36 MiB of stacks for its 24 SMs) a load there
    fails, and its retries aborted the process (the H100 with 4 MiB free, benchmarks/results/h100-gpu-s71/): the load
    is the CPU's alone."""
    from hardware_captures import document, replay

    doc = document("nvidia-rtx-4060.json")
    info = doc["nvml"]["devices"][0]["nvmlDeviceGetMemoryInfo"]
    info["free"], info["used"] = free_mib * 2**20, info["total"] - free_mib * 2**20
    options = unplanned_load_options(detect(replay(doc)), None)
    assert (options.n_gpu_layers, options.op_offload) == (n_gpu_layers, None if n_gpu_layers else False)
