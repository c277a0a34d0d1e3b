"""Whether a CPU model's threads got their cores: the engine's own CPU clock against the time its threads were given."""

import os
import time
from pathlib import Path

import pytest

from qwenctl import cpu_share
from qwenctl.backends import LoadOptions, load_backend
from qwenctl.smoke import smoke_test
from qwenctl.testing import models


def test_thread_time_counts_a_sleeping_block_as_time_lost_and_a_spinning_one_as_run():
    """The share comes from the process's own CPU clock, so only what this process's threads ran counts:
    a block that sleeps reads as contended, one thread that spins for one thread's time reads as run."""
    cpu_model = type("Session", (), {"n_gpu_layers": 0, "n_threads": 1})()
    sleeping, spinning = cpu_share.ThreadTime(cpu_model), cpu_share.ThreadTime(cpu_model)
    assert sleeping.share() is None  # nothing timed yet
    with sleeping:
        time.sleep(cpu_share.MIN_SECONDS / 10)
    assert sleeping.share() is None  # too short to tell: a tiny model's runs are mostly Python between graphs
    with sleeping:
        time.sleep(cpu_share.MIN_SECONDS)
    with spinning:
        end = time.perf_counter() + cpu_share.MIN_SECONDS
        while time.perf_counter() < end:
            pass
    assert cpu_share.contended(sleeping.share()) and sleeping.share() < 0.1
    assert spinning.share() > sleeping.share() + 0.1  # all of a CPU on a quiet machine; some of one on a busy one
    gpu_model = type("Session", (), {"n_gpu_layers": 29, "n_threads": 8})()
    assert cpu_share.ThreadTime(gpu_model).share() is None  # a GPU's host threads idle while it works: no measure there


def _pin_every_thread(cpus: set[int]) -> None:
    for tid in os.listdir("/proc/self/task"):
        os.sched_setaffinity(int(tid), cpus)


@pytest.mark.skipif(not hasattr(os, "sched_setaffinity"), reason="thread affinity is set through Linux's sched_setaffinity")
def test_a_smoke_test_whose_two_threads_share_one_core_says_so_and_corrects_nothing(model_cache):
    """Two llama.cpp threads pinned to one CPU (every thread of this process, the engine's pool included) run about
    half the time they are given, and each waits at every barrier for the other's turn: the 0.5B decoded 0.4 tok/s
    here. The smoke test's speed is then not the machine's; its warning says why (more threads than CPUs) and keeps it
    out of later plans' corrections (pipeline._remember_speed stores no run with a warning)."""
    pytest.importorskip("llama_cpp")
    path = models.gguf_model(model_cache, models.qwen25_shape("0.5B"), "Q4_K_M", intermediate="direct")
    session = load_backend("llama.cpp", Path(path), LoadOptions(n_ctx=512, n_threads=2))
    every = os.sched_getaffinity(0)
    try:
        _pin_every_thread({min(every)})
        result = smoke_test(session, seconds=1.5, predicted_tps=None, hardware=None)
    finally:
        _pin_every_thread(every)
        session.close()
    assert result.warning is not None and result.warning.startswith(f"measured {result.decode_tps:.1f} tok/s while ")
    assert "the engine's 2 threads share 1 CPU and ran " in result.warning  # this thread's affinity: the one CPU
    assert result.warning.endswith("so it corrects no later plan")
    share = int(result.warning.split(" and ran ")[1].split("%")[0])
    assert share < cpu_share.CONTENDED_BELOW * 100
