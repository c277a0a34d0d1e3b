"""Real NVML on the GPU machine (run with `pytest -m gpu`): the H100 must describe itself."""

import pytest

from qwenctl.hardware import LiveSource, detect
from qwenctl.hardware.facts import Nvidia

pytestmark = pytest.mark.gpu


def test_real_nvml_reports_the_h100():
    hw = detect(LiveSource())
    assert isinstance(hw.nvidia, Nvidia), hw.nvidia
    gpu = hw.nvidia.gpus[0]
    print(f"\n{gpu}\ndriver {hw.nvidia.driver_version}, CUDA {hw.nvidia.cuda_driver_version}")
    assert "H100" in gpu.name
    assert 79e9 <= gpu.memory_total_bytes <= 86e9  # an H100 80GB reports 81559 MiB = 85.5e9 bytes
    assert gpu.compute_capability == (9, 0)
    assert gpu.bandwidth_bytes_per_s and gpu.bandwidth_bytes_per_s > 1.9e12  # PCIe 2.0 TB/s, SXM 3.35 TB/s
    assert not gpu.unified_memory


def test_a_snapshot_taken_on_the_gpu_replays_identically(tmp_path):
    from qwenctl.hardware import load_snapshot, save_snapshot

    live = LiveSource(record=True)
    first = detect(live)
    save_snapshot(live, tmp_path / "gpu.json")
    again = detect(load_snapshot(tmp_path / "gpu.json"))
    assert [g.name for g in again.gpus] == [g.name for g in first.gpus]
    assert [g.memory_total_bytes for g in again.gpus] == [g.memory_total_bytes for g in first.gpus]
