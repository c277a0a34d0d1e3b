"""A model spread over this process and two real `qwenctl worker` processes: each worker holds what the plan
predicts for its device (the issue's 5 %), through qwenctl's own loader and predict_for_file."""

from __future__ import annotations

import subprocess
import sys

import psutil
import pytest
from rpc_helpers import ROOT, env, needs_rpc, workers

from qwenctl.backends import LoadOptions, rpc
from qwenctl.hardware import detect
from qwenctl.predict import predict_for_file
from qwenctl.testing import models

N_GPU_LAYERS = 17  # of 0.5B's 24 + 1: the output and 16 layers on the two workers, 8 layers here


@needs_rpc
@pytest.mark.slow
def test_each_worker_holds_what_the_plan_predicts_for_its_device(model_cache):
    model = models.shaped_gguf(model_cache, "0.5B", "Q4_K_M")  # Qwen2.5-0.5B's exact shapes, 395 MB
    with workers(2) as started:
        endpoints = tuple(f"127.0.0.1:{port}" for _, port in started)
        probed = tuple(rpc.probe(e) for e in endpoints)  # before the main process holds their one connection
        options = LoadOptions(n_ctx=2048, n_gpu_layers=N_GPU_LAYERS, n_threads=1, split_mode="layer",
                              tensor_split=(1.0, 1.0), workers=endpoints)
        predicted = predict_for_file(detect(), model, options, workers=probed).bytes_by_device
        before = [psutil.Process(proc.pid).memory_info().rss for proc, _ in started]
        main = subprocess.Popen([sys.executable, str(ROOT / "tests" / "cluster_main.py"), str(model), "--workers",
                                 ",".join(endpoints), "--ngl", str(N_GPU_LAYERS)], stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env(), cwd=ROOT)
        try:
            assert main.stdout is not None and main.stdin is not None
            line = main.stdout.readline()
            assert line.strip() == "holding", main.stderr.read() if main.stderr else line
            grown = [psutil.Process(proc.pid).memory_info().rss - b for (proc, _), b in zip(started, before)]
            main.stdin.write("\n")
            main.stdin.flush()
            main.wait(60)
        finally:
            if main.poll() is None:
                main.kill()
    assert main.returncode == 0
    assert len(predicted) == 2
    for endpoint, got, want in zip(endpoints, grown, predicted):
        print(f"worker {endpoint}: RSS grew {got / 2**20:.1f} MiB, predicted {want / 2**20:.1f} MiB ({(got - want) / want:+.1%})")
    for got, want in zip(grown, predicted):
        assert abs(got - want) <= 0.05 * want
