"""A smoke test runs once per model and machine: the record it leaves, and what it does not match."""

from __future__ import annotations

import time

from planning_machines import pc

from qwenctl import speed_history


def test_a_smoke_test_is_remembered_per_model_file_machine_and_engine(tmp_path):
    here, there = pc(32, 8), pc(64, 16)
    model, other = tmp_path / "a.gguf", tmp_path / "b.gguf"
    model.write_bytes(b"GGUF" + b"\0" * 100)
    other.write_bytes(b"GGUF" + b"\0" * 200)
    link = tmp_path / "snapshot.gguf"
    link.symlink_to(model)  # the HF cache's snapshot link and its blob are one model
    assert speed_history.last_smoke(here, str(model), "llama.cpp") is None
    speed_history.record_smoke(here, str(link), "llama.cpp", 41.5, None)
    found = speed_history.last_smoke(here, str(model), "llama.cpp")
    assert found == speed_history.SmokeRecord(time.strftime("%Y-%m-%d"), 41.5, None)
    assert speed_history.last_smoke(there, str(model), "llama.cpp") is None
    assert speed_history.last_smoke(here, str(other), "llama.cpp") is None
    assert speed_history.last_smoke(here, str(model), "mlx") is None
    model.write_bytes(b"GGUF" + b"\0" * 300)  # replaced by another file: smoke-tested again
    assert speed_history.last_smoke(here, str(model), "llama.cpp") is None
    # a plan-less record never feeds the speed correction
    assert speed_history.correction(here, "llama.cpp", "cpu") is None
