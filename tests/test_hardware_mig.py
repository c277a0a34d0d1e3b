"""MIG, CUDA's device list, and NVML answers field by field (A100 MIG and GTX 1050 Ti captures)."""

import sys
import types

import pytest
from hardware_captures import document, replay

from qwenctl.hardware import cuda_visible, detect, nvidia
from qwenctl.render.detect import rows

MIB = 1 << 20
A100 = "nvidia-a100-80gb-mig-7x1g.json"
SLICE_3 = "MIG-36c795f2-5cf7-55d6-af30-e535e79b7bb6"
A100_PEAK = 2 * 1593 * 10**6 * 5120 // 8  # 2039 GB/s, NVIDIA's A100 80GB SXM figure


def with_env(name: str, **env: str) -> dict:
    doc = document(name)
    doc["env"].update(env)
    return doc


def test_a100_with_mig_is_planned_as_the_slice_cuda_uses_not_the_card():
    nv = detect(replay(A100)).nvidia
    (gpu,) = nv.gpus
    assert (gpu.index, gpu.name, gpu.mig_profile, gpu.parent_name) == (
        0, "NVIDIA A100-SXM4-80GB MIG 1g.10gb", "1g.10gb", "NVIDIA A100-SXM4-80GB")
    assert gpu.uuid == "MIG-feb88891-0321-5fef-9c87-d4af3b54259e" and gpu.nvml_index == 0
    assert gpu.memory_total_bytes == 9728 * MIB
    assert (gpu.sm_count, gpu.cuda_cores, gpu.compute_capability) == (14, 14 * 64, (8, 0))
    assert gpu.bandwidth_bytes_per_s == A100_PEAK // 8  # one of eight memory slices
    assert len(nv.unusable) == 6 and all(u.reason == cuda_visible.ONE_MIG for u in nv.unusable)


def test_cuda_visible_devices_picks_a_mig_instance_by_uuid():
    (gpu,) = detect(replay(with_env(A100, CUDA_VISIBLE_DEVICES=SLICE_3))).gpus
    assert (gpu.index, gpu.uuid) == (0, SLICE_3)


def test_cuda_visible_devices_empty_means_no_gpu():
    nv = detect(replay(with_env(A100, CUDA_VISIBLE_DEVICES=""))).nvidia
    assert nv.gpus == () and nv.visible_devices == ""
    assert {u.reason for u in nv.unusable} == {"not in CUDA_VISIBLE_DEVICES="}


def test_cuda_visible_devices_stops_at_the_first_unknown_entry():
    nv = detect(replay(with_env(A100, CUDA_VISIBLE_DEVICES="7,0"))).nvidia
    assert nv.gpus == ()


def test_mig_on_without_instances_reports_the_card_as_unusable_and_why():
    doc = document(A100)
    doc["nvml"]["devices"][0]["mig"] = {str(j): {"error": "NVML_ERROR_NOT_FOUND"} for j in range(7)}
    nv = detect(replay(doc)).nvidia
    assert nv.gpus == ()
    (card,) = nv.unusable
    assert (card.name, card.uuid) == ("NVIDIA A100-SXM4-80GB", "GPU-7fdaf0a5-179b-f636-d15d-daf243e3ff16")
    assert card.reason == "MIG is on and no MIG instance exists on it (create one with nvidia-smi mig -cgi)"


def test_mig_off_keeps_the_whole_card_with_cores_and_sm_clock():
    doc = document(A100)
    doc["nvml"]["devices"][0]["nvmlDeviceGetMigMode"] = [0, 0]
    (gpu,) = detect(replay(doc)).gpus
    assert (gpu.memory_total_bytes, gpu.bandwidth_bytes_per_s) == (81920 * MIB, A100_PEAK)
    assert (gpu.cuda_cores, gpu.sm_count, gpu.max_sm_clock_mhz, gpu.mig_profile) == (6912, 108, 1410, None)


def test_gtx_1050_ti_not_supported_memory_is_unknown_not_unified():
    (gpu,) = detect(replay("nvidia-gtx-1050-ti-memory-not-supported.json")).gpus
    assert gpu.name == "GeForce GTX 1050 Ti" and not gpu.unified_memory
    assert gpu.memory_total_bytes is None and gpu.memory_free_bytes is None
    assert dict(gpu.unknown)["memory_total_bytes"] == (
        "NVML: nvmlDeviceGetMemoryInfo is not supported on this device; "
        "not a unified-memory device, so host RAM does not stand in")
    assert gpu.bandwidth_bytes_per_s == 112_128_000_000  # 128-bit x 7 Gbps: NVIDIA's 112 GB/s
    assert (gpu.compute_capability, gpu.cuda_cores, gpu.sm_count) == ((6, 1), 768, 6)


def test_not_captured_is_told_apart_from_not_supported():
    doc = document("nvidia-rtx-4060.json")  # captured before qwenctl asked for CUDA cores
    dev = doc["nvml"]["devices"][0]
    dev["nvmlDeviceGetMaxClockInfo(NVML_CLOCK_SM)"] = {"error": "NVML_ERROR_NOT_SUPPORTED"}
    (gpu,) = detect(replay(doc)).gpus
    why = dict(gpu.unknown)
    assert why["cuda_cores"] == "nvmlDeviceGetNumGpuCores was not captured in the snapshot"
    assert why["max_sm_clock_mhz"] == "NVML: nvmlDeviceGetMaxClockInfo is not supported on this device"


def test_unknown_compute_capability_is_none_and_shown_as_unknown():
    doc = document("nvidia-rtx-4060.json")
    del doc["nvml"]["devices"][0]["nvmlDeviceGetCudaComputeCapability"]
    hw = detect(replay(doc))
    assert hw.gpus[0].compute_capability is None
    gpu_row = next(text for label, text, _ in rows(hw) if label == "GPU 0")
    assert "CC unknown" in gpu_row and "CC 0.0" not in gpu_row


def test_mixed_gpus_are_ordered_fastest_first_unless_pci_bus_id():
    doc = document("nvidia-a100-80gb-mig-7x1g.json")
    a100 = dict(doc["nvml"]["devices"][0], nvmlDeviceGetMigMode=[0, 0])
    gtx = document("nvidia-gtx-1050-ti-memory-not-supported.json")["nvml"]["devices"][0]
    doc["nvml"]["devices"], doc["nvml"]["system"]["nvmlDeviceGetCount"] = [gtx, a100], 2
    nv = detect(replay(doc)).nvidia
    assert [(g.index, g.nvml_index) for g in nv.gpus] == [(0, 1), (1, 0)]
    assert nv.order_source.startswith("fastest first")
    doc["env"]["CUDA_DEVICE_ORDER"] = "PCI_BUS_ID"
    assert [g.nvml_index for g in detect(replay(doc)).gpus] == [0, 1]


class _FakeNvml(types.ModuleType):
    """The NVML boundary only: what libnvidia-ml answers for the A100 capture, two instances."""

    NVML_ERROR_NOT_FOUND, NVML_ERROR_NOT_SUPPORTED = 6, 3
    NVML_CLOCK_MEM, NVML_CLOCK_SM = 2, 1

    class NVMLError(Exception):
        def __init__(self, value):
            super().__init__(value)
            self.value = value

    def __init__(self, table):
        super().__init__("pynvml")
        self.t = table
        self.NVML_ERROR_NOT_FOUND, self.NVML_ERROR_NOT_SUPPORTED = 6, 3  # in the module's namespace, as pynvml has them

    def nvmlInit(self): pass
    def nvmlDeviceGetCount(self): return 1
    def nvmlSystemGetDriverVersion(self): return "535.216.01"
    def nvmlSystemGetCudaDriverVersion(self): return 12020
    def nvmlDeviceGetHandleByIndex(self, i): return ("gpu", i)

    def nvmlDeviceGetMigDeviceHandleByIndex(self, h, j):
        if j >= 2:
            raise self.NVMLError(self.NVML_ERROR_NOT_FOUND)
        return ("mig", j)

    def __getattr__(self, name):
        def call(handle, *args):
            table = self.t if handle[0] == "gpu" else self.t["mig"][str(handle[1])]
            key = name if not args else f"{name}({'NVML_CLOCK_MEM' if args[0] == 2 else 'NVML_CLOCK_SM'})"
            if key not in table:
                raise self.NVMLError(self.NVML_ERROR_NOT_SUPPORTED)
            value = table[key]
            if key == "nvmlDeviceGetMemoryInfo":
                return types.SimpleNamespace(**value)
            if key == "nvmlDeviceGetAttributes":
                attrs = types.SimpleNamespace(**value)
                attrs._fields_ = [(k, None) for k in value]
                return attrs
            return value
        return call


def test_a_live_snapshot_records_mig_and_replays_to_the_same_gpus(tmp_path, monkeypatch):
    from qwenctl.hardware import load_snapshot, save_snapshot
    from qwenctl.hardware.live import LiveSource

    monkeypatch.setitem(sys.modules, "pynvml", _FakeNvml(document(A100)["nvml"]["devices"][0]))
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    live = LiveSource(record=True)
    first = nvidia.probe(live)
    save_snapshot(live, tmp_path / "mig.json")
    recorded = live.snapshot()["nvml"]["devices"][0]["mig"]
    assert recorded["2"] == {"error": "NVML_ERROR_NOT_FOUND"}
    assert recorded["1"]["nvmlDeviceGetAttributes"]["multiprocessorCount"] == 14
    again = nvidia.probe(load_snapshot(tmp_path / "mig.json"))
    assert again == first and first.gpus[0].mig_profile == "1g.10gb" and len(first.unusable) == 1


@pytest.mark.parametrize("name", ["Orin (nvgpu)", "NVIDIA GB10"])
def test_not_supported_memory_means_unified_only_for_soc_class_devices(name):
    doc = document("nvidia-gtx-1050-ti-memory-not-supported.json")
    doc["nvml"]["devices"][0]["nvmlDeviceGetName"] = name
    hw = detect(replay(doc))
    assert hw.gpus[0].unified_memory and hw.gpus[0].memory_total_bytes == hw.memory.total_bytes
