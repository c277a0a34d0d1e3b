"""Real NVML on the GPU machine (run with `pytest -m gpu`): the GPU must describe itself as its specification does."""

import pytest

from qwenctl.hardware import LiveSource, detect
from qwenctl.hardware.facts import Nvidia
from qwenctl.hardware.nvidia_specs import gpu_spec_of, spec_compute_capability

pytestmark = pytest.mark.gpu


def test_real_nvml_describes_the_gpu_as_its_specification_does():
    """Whatever GPU the machine lends (an H100 before 2026-11-30, an H200 since), NVML's facts must match the
    specification row its name finds: memory, compute capability, SMs, and bandwidth from bus width x clock."""
    hw = detect(LiveSource())
    assert isinstance(hw.nvidia, Nvidia), hw.nvidia
    gpu = hw.nvidia.gpus[0]
    print(f"\n{gpu}\ndriver {hw.nvidia.driver_version}, CUDA {hw.nvidia.cuda_driver_version}")
    spec = gpu_spec_of(gpu)
    assert spec is not None, f"no specification row for {gpu.name!r}"
    # NVML reports what the driver leaves usable: an H100 80GB 81,559 MiB, an H200 141 GB 143,771 MiB
    assert 0.9 * spec["memory_gib"] * 2**30 <= gpu.memory_total_bytes <= 1.1 * spec["memory_gib"] * 2**30
    assert gpu.compute_capability == spec_compute_capability(spec)
    assert gpu.sm_count == spec["sm_count"]
    assert gpu.bandwidth_bytes_per_s is not None
    assert abs(gpu.bandwidth_bytes_per_s / (spec["bandwidth_gbs"] * 1e9) - 1) < 0.05
    assert not gpu.unified_memory


def test_a_snapshot_taken_on_the_gpu_replays_identically(tmp_path):
    from qwenctl.hardware import load_snapshot, save_snapshot

    live = LiveSource(record=True)
    first = detect(live)
    save_snapshot(live, tmp_path / "gpu.json")
    again = detect(load_snapshot(tmp_path / "gpu.json"))
    assert [g.name for g in again.gpus] == [g.name for g in first.gpus]
    assert [g.memory_total_bytes for g in again.gpus] == [g.memory_total_bytes for g in first.gpus]
