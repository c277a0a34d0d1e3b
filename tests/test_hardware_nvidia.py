import sys
from dataclasses import replace

import pytest
from hardware_captures import document, jetpack5_agx_orin, replay

from qwenctl.hardware import _parse, detect, nvidia, nvidia_specs
from qwenctl.hardware._parse import data
from qwenctl.hardware.facts import Absent, NvidiaGpu

GiB = 2**30
MIB = 1 << 20


def test_rtx_4060_reads_as_8_gb_cc_8_9_and_272_gbps():
    gpu = nvidia.probe(replay("nvidia-rtx-4060.json")).gpus[0]
    assert gpu.name == "NVIDIA GeForce RTX 4060"
    assert gpu.memory_total_bytes == 8188 * MIB  # 8.0 GiB: what an "8 GB" card reports
    assert gpu.compute_capability == (8, 9)
    assert (gpu.memory_bus_width_bits, gpu.max_memory_clock_mhz) == (128, 8501)
    assert gpu.bandwidth_bytes_per_s == pytest.approx(272e9, rel=0.001)
    assert gpu.power_limit_w == 115.0 and not gpu.unified_memory


def test_h100_sxm():
    nv = nvidia.probe(replay("nvidia-h100-sxm.json"))
    assert (nv.driver_version, nv.cuda_driver_version) == ("590.48.01", "13.1")
    gpu = nv.gpus[0]
    assert gpu.memory_total_bytes == 81559 * MIB and gpu.memory_free_bytes == 81081 * MIB
    assert gpu.compute_capability == (9, 0)
    assert gpu.bandwidth_bytes_per_s == pytest.approx(3.35e12, rel=0.001)
    assert gpu.power_limit_w == 700.0


@pytest.mark.parametrize("row", data("gpu_bandwidth.json")["checks"], ids=lambda r: r["name"])
def test_peak_bandwidth_formula_matches_published_figures(row):
    got = nvidia.peak_bandwidth(row["max_memory_clock_mhz"], row["bus_width_bits"])
    assert got == pytest.approx(row["published_bytes_per_s"], rel=0.005)


def test_no_driver_is_absent_in_words():
    assert nvidia.probe(replay("linux-x86-no-gpu.json")) == Absent(
        "the NVIDIA driver (libnvidia-ml) is not installed")


def test_driver_not_loaded_is_its_own_reason():
    doc = document("linux-x86-no-gpu.json")
    doc["nvml"] = {"init_error": "NVML_ERROR_DRIVER_NOT_LOADED", "system": {}, "devices": []}
    assert nvidia.probe(replay(doc)) == Absent("the NVIDIA driver is installed but not loaded")


def test_not_supported_fields_are_left_out_not_invented():
    doc = document("nvidia-rtx-4080-super.json")
    dev = doc["nvml"]["devices"][0]
    dev["nvmlDeviceGetMemoryBusWidth"] = {"error": "NVML_ERROR_NOT_SUPPORTED"}
    dev["nvmlDeviceGetPowerManagementLimit"] = {"error": "NVML_ERROR_NOT_SUPPORTED"}
    gpu = nvidia.probe(replay(doc)).gpus[0]
    assert gpu.memory_bus_width_bits is None and gpu.bandwidth_bytes_per_s is None and gpu.power_limit_w is None
    assert gpu.memory_total_bytes == 16376 * MIB


def test_a_call_older_drivers_lack_leaves_that_field_unknown_and_the_gpu_usable():
    """NVML answers NVML_ERROR_FUNCTION_NOT_FOUND for a call its driver predates (the rated-clock and core-count calls
    are newer than the rest); that fact is unknown, with why, and the GPU is planned, not reported unusable."""
    doc = document("nvidia-h100-sxm.json")
    dev = doc["nvml"]["devices"][0]
    for key in ("nvmlDeviceGetNumGpuCores", "nvmlDeviceGetMaxCustomerBoostClock(NVML_CLOCK_GRAPHICS)"):
        dev[key] = {"error": "NVML_ERROR_FUNCTION_NOT_FOUND"}
    found = nvidia.probe(replay(doc))
    assert found.unusable == () and len(found.gpus) == 1
    gpu = found.gpus[0]
    assert (gpu.cuda_cores, gpu.rated_sm_clock_mhz) == (None, None)
    assert dict(gpu.unknown)["cuda_cores"] == "NVML: this driver's NVML has no nvmlDeviceGetNumGpuCores"


def test_unified_memory_device_gets_host_ram_and_a_known_bandwidth():
    # What NVML does on a Jetson Orin: no memory info, no bus width, no memory clock.
    doc = document("nvidia-h100-sxm.json")
    dev = doc["nvml"]["devices"][0]
    dev["nvmlDeviceGetName"] = "Orin (nvgpu)"
    dev["nvmlDeviceGetCudaComputeCapability"] = [8, 7]
    for key in ("nvmlDeviceGetMemoryInfo", "nvmlDeviceGetMemoryBusWidth", "nvmlDeviceGetMaxClockInfo(NVML_CLOCK_MEM)"):
        dev[key] = {"error": "NVML_ERROR_NOT_SUPPORTED"}
    hw = detect(replay(doc))
    gpu = hw.gpus[0]
    assert gpu.unified_memory and gpu.memory_total_bytes == hw.memory.total_bytes
    assert gpu.bandwidth_bytes_per_s == 204_800_000_000


def orin_nano_super_over_nvml() -> dict:
    """A JetPack 6 Orin Nano Super as NVML answers there: "Orin (nvgpu)", compute capability 8.7, no memory, bus, clocks
    or cores (NotSupported), and the board's device-tree model (a real JetPack 6.2 string)."""
    doc = document("nvidia-h100-sxm.json")
    dev = doc["nvml"]["devices"][0]
    dev["nvmlDeviceGetName"] = "Orin (nvgpu)"
    dev["nvmlDeviceGetCudaComputeCapability"] = [8, 7]
    for key in ("nvmlDeviceGetMemoryInfo", "nvmlDeviceGetMemoryBusWidth", "nvmlDeviceGetMaxClockInfo(NVML_CLOCK_MEM)",
                "nvmlDeviceGetMaxClockInfo(NVML_CLOCK_SM)", "nvmlDeviceGetNumGpuCores"):
        dev[key] = {"error": "NVML_ERROR_NOT_SUPPORTED"}
    doc["files"]["/proc/device-tree/model"] = "NVIDIA Jetson Orin Nano Engineering Reference Developer Kit Super\x00"
    return doc


def test_a_jetson_orin_is_priced_as_the_module_its_board_names():
    """NVML names every Jetson Orin "Orin (nvgpu)" and reports neither its SMs nor its clocks (JetPack 6), so the first
    row of that name, the AGX Orin 64GB (16 SMs at 1.3 GHz), priced an Orin Nano's prompts 4x too fast. The board's
    device-tree model (a real JetPack 6.2 string: "NVIDIA Jetson Orin Nano Engineering Reference Developer Kit Super")
    picks the module, and the host's RAM the variant where the model's words leave several."""
    doc = orin_nano_super_over_nvml()
    hw = detect(replay(doc))
    gpu = hw.gpus[0]
    assert gpu.board == "NVIDIA Jetson Orin Nano Engineering Reference Developer Kit Super"
    peaks = nvidia_specs.nvidia_peaks(gpu)
    assert (peaks.sm_count, peaks.clock_hz) == (8, 1020e6)  # the Super module: 1,024 cores at 1,020 MHz
    assert gpu.bandwidth_bytes_per_s == 102_000_000_000  # the board's Super-mode LPDDR5
    for board, ram_gib, key in (("NVIDIA Jetson AGX Orin Developer Kit", 61.4, "jetson-agx-orin-64gb"),
                                ("NVIDIA Jetson AGX Orin Developer Kit", 30.0, "jetson-agx-orin-32gb"),
                                ("NVIDIA Jetson Orin Nano Developer Kit", 7.4, "jetson-orin-nano-8gb"),
                                ("NVIDIA Jetson Orin Nano Developer Kit", 3.6, "jetson-orin-nano-4gb")):
        assert nvidia_specs.gpu_spec("Orin (nvgpu)", board, int(ram_gib * 2**30))["key"] == key, board
    # cards NVML names alike are told apart by their memory the same way
    assert nvidia_specs.gpu_spec("NVIDIA GeForce RTX 3080", None, 12288 * MIB)["key"] == "rtx-3080-12gb"
    assert nvidia_specs.gpu_spec("NVIDIA GeForce RTX 3080", None, 10240 * MIB)["key"] == "rtx-3080-10gb"


def test_a_gpu_nvml_fails_on_is_reported_with_its_error_and_the_others_kept():
    doc = document("nvidia-h100-sxm.json")
    lost = dict(doc["nvml"]["devices"][0], nvmlDeviceGetMemoryInfo={"error": "NVML_ERROR_GPU_IS_LOST"})
    doc["nvml"]["devices"] = [lost, doc["nvml"]["devices"][0]]
    doc["nvml"]["system"]["nvmlDeviceGetCount"] = 2
    nv = detect(replay(doc)).nvidia
    assert [(g.index, g.nvml_index) for g in nv.gpus] == [(0, 1)]  # CUDA ordinal 0 is NVML's GPU 1
    (bad,) = nv.unusable
    assert (bad.nvml_index, bad.name, bad.reason) == (0, "NVIDIA H100 80GB HBM3", "NVML failed: NVML_ERROR_GPU_IS_LOST")


def test_real_capture_of_the_projects_h100_machine():
    """A verbatim snapshot from the GPU machine (gVisor, cgroup v2): every probe reads it as that machine."""
    hw = detect(replay("nvidia-h100-gpu-machine.json"))
    (gpu,) = hw.gpus
    assert gpu.name == "NVIDIA H100 80GB HBM3" and gpu.compute_capability == (9, 0)
    assert gpu.memory_total_bytes == 85_520_809_984  # 81,559 MiB, as nvidia-smi reports it
    assert gpu.bandwidth_bytes_per_s == 2 * 2619 * 10**6 * 5120 // 8  # 3.35 TB/s, NVIDIA's H100 SXM5 figure
    assert hw.nvidia.driver_version == "580.159.04"
    assert hw.memory.container_limit_bytes == 128 * 2**30 and "cgroup v2" in hw.memory.container_limit_source


def test_real_capture_of_the_projects_h200_machine_gives_its_rated_clock():
    """A verbatim snapshot from the H200 machine (2026-12-05): NVML's customer boost clock is read, and it is what a
    GPU with no specification row would be priced at (the H200 as if the table did not name it)."""
    hw = detect(replay("nvidia-h200-gpu-machine.json"))
    (gpu,) = hw.gpus
    assert (gpu.name, gpu.compute_capability, gpu.cuda_cores) == ("NVIDIA H200", (9, 0), 16896)
    assert gpu.bandwidth_bytes_per_s == 2 * 3201 * 10**6 * 6016 // 8  # 4.81 TB/s, NVIDIA's 4.8
    assert (gpu.rated_sm_clock_mhz, gpu.max_sm_clock_mhz) == (1980, 1980)
    unlisted = replace(gpu, name="NVIDIA H2000 (a name no row holds)")
    assert nvidia_specs.gpu_spec_of(unlisted) is None
    assert nvidia_specs.nvml_rated_clock(unlisted) == (1980.0, "NVML's rated boost")
    peaks = nvidia_specs.nvidia_peaks(unlisted)
    assert (peaks.sm_count, peaks.clock_hz, peaks.above_rated_clock) == (132, 1980e6, False)


def test_missing_nvml_bindings_are_absent_in_words(monkeypatch):
    """nvidia-ml-py is a dependency, but a broken install can lack it: detect still answers, and says why."""
    from qwenctl.hardware.live import LiveSource

    monkeypatch.setitem(sys.modules, "pynvml", None)  # any `import pynvml` now fails
    found = nvidia.probe(LiveSource())
    assert found == Absent("the nvidia-ml-py package is not installed (pip install nvidia-ml-py)")


@pytest.mark.parametrize("name, key, sms", [
    ("NVIDIA GeForce RTX 5090 Laptop GPU", "rtx-5090-laptop", 82),  # contains the desktop 5090's name (170 SMs)
    ("NVIDIA GeForce RTX 5070 Laptop GPU", "rtx-5070-laptop", 36),
    ("NVIDIA GeForce RTX 5090", "rtx-5090", 170),
    ("NVIDIA GB10", "gb10", 48),
    ("NVIDIA RTX PRO 4500 Blackwell", "rtx-pro-4500-blackwell", 82),
    ("Quadro RTX 8000", "quadro-rtx-8000", 72),  # an older driver's name, without "NVIDIA "
    ("NVIDIA H800", "h800-sxm", 132),  # the China-market H100 and A100: their own rows, not the NVML fallback
    ("NVIDIA H800 PCIe", "h800-pcie", 114),
    ("NVIDIA A800-SXM4-80GB", "a800-sxm4-80gb", 108),
    ("NVIDIA RTX 4000 SFF Ada Generation", "rtx-4000-sff-ada", 48),  # contains nothing shorter, is not the RTX 4000 Ada
    ("NVIDIA RTX A5000 Laptop GPU", "rtx-a5000-laptop", 48),  # the desktop RTX A5000 has 64
    ("NVIDIA RTX A3000 Laptop GPU", "rtx-a3000-laptop", 32),  # once the A30 (56 SMs of HBM2): "a30" is inside "a3000"
    ("NVIDIA H20", "h20", 78),  # the China-market Hopper, not the H200 whose name it begins
    ("NVIDIA B300 SXM6 AC", "b300", 148),
    ("NVIDIA B300 SXM6 AC MIG 1g.34gb", "b300", 148),  # a MIG instance's name holds its card's
    ("NVIDIA GB200", "gb200", 152),
    ("NVIDIA GB300", "gb300", 152),
    ("NVIDIA TITAN Xp COLLECTORS EDITION", "titan-xp", 30),  # rows added in session 43: once NVML's cores and clock alone
    ("NVIDIA T1000 8GB", "t1000-8gb", 14),
    ("NVIDIA T400 4GB", "t400", 6),  # its name's memory size aside, the T400
    ("NVIDIA GeForce MX150", "mx150", 3),
    ("NVIDIA RTX A5500", "rtx-a5500", 80),  # not its laptop part's 58
    ("NVIDIA RTX 5880 Ada Generation", "rtx-5880-ada", 110),
    ("NVIDIA GH200 144G HBM3e", "gh200-144gb", 132),  # not the H200 its name holds inside a word
])
def test_nvml_names_find_their_own_card_not_a_shorter_named_one(name, key, sms):
    spec = nvidia_specs.gpu_spec(name)
    assert (spec["key"], spec["sm_count"]) == (key, sms)


def test_every_gpu_row_has_its_own_key():
    """A key names one row: the published rows and the scorer find a card by its key (`gpu_spec_by_key`), and a second
    row of the RTX A4500 without NVML names had made its replay look the card up under a name nothing matched."""
    keys = [row["key"] for row in _parse.devices()["gpus"]]
    assert sorted(k for k in set(keys) if keys.count(k) > 1) == []


@pytest.mark.parametrize("board, ram_gib, key", [
    ("NVIDIA Jetson AGX Thor Developer Kit", 128, "jetson-agx-thor-t5000"),  # rbonghi/jetson_stats#711's device tree
    (None, 128, "jetson-agx-thor-t5000"),
    (None, 64, "jetson-thor-t4000"),
])
def test_a_jetson_thor_is_told_apart_by_its_board_then_its_memory(board, ram_gib, key):
    """Both Thor modules answer NVML as "NVIDIA Thor" with no memory of their own (JetPack 7's nvidia-smi: Memory-Usage
    Not Supported); the devkit's device-tree model names the AGX module, and the host's RAM tells 128 GB from 64."""
    assert nvidia_specs.gpu_spec("NVIDIA Thor", board, ram_gib * GiB)["key"] == key


@pytest.mark.parametrize("cc", [(11, 0), (10, 1)])
def test_thors_gpu_has_its_per_sm_figures_under_either_number(cc):
    """CUDA 13 renumbered Thor's GPU from compute capability 10.1 to 11.0 (its release notes: "SM101 has been
    renumbered as SM110"): a driver of either age finds its Blackwell SMs, not the unknown-GPU ratios."""
    gpu = NvidiaGpu(index=0, name="NVIDIA Tegra GPU", uuid="", memory_total_bytes=None, memory_free_bytes=None,
                    memory_used_bytes=None, compute_capability=cc, unified_memory=True, cuda_cores=2560,
                    max_sm_clock_mhz=1575)
    peaks = nvidia_specs.nvidia_peaks(gpu)
    assert (peaks.family, peaks.sm_count, peaks.assumed) == ("nvidia-thor", 20, ())
    assert peaks.int8_ops == pytest.approx(20 * 16384 * 1575e6, rel=0.01)  # NVIDIA's 1,035 sparse TOPS, halved
    assert nvidia_specs.resident_threads(gpu) == 20 * 1536
    assert nvidia.sm_count(2560, cc) == 20  # NVML's core count over the same per-SM figures, under either number


def test_a_laptop_gpu_named_by_its_memory_is_that_laptop_gpu_not_the_desktop_card():
    """lspci's GA107BM [10de:25ac] is "GeForce RTX 3050 6GB Laptop GPU": the RTX 3050 Laptop GPU's 16 SMs at 1,343 MHz,
    not the desktop RTX 3050's 20 at 1,777 (which its name contains once "6GB" is read as a word of the model)."""
    spec = nvidia_specs.gpu_spec("NVIDIA GeForce RTX 3050 6GB Laptop GPU")
    assert (spec["key"], spec["sm_count"]) == ("rtx-3050-laptop", 16)


def test_a_laptop_gpu_with_no_row_of_its_own_is_priced_from_nvml_not_a_desktop_card():
    """A Max-Q part no row names (TensorFlow's device log of one: "GeForce GTX 1050 Ti with Max-Q Design ... compute
    capability: 6.1") contains the desktop GTX 1050 Ti's name, but runs at the laptop's clocks: NVML's cores and
    clock price it, not the desktop card's 1,392 MHz. A GeForce reports no rated boost, so its max clock is taken
    over the ratio captured GeForce boards show (`nvml_rated_clock`), and a laptop is not held above it."""
    assert nvidia_specs.gpu_spec("NVIDIA GeForce GTX 1050 Ti with Max-Q Design") is None
    gpu = NvidiaGpu(index=0, name="NVIDIA GeForce GTX 1050 Ti with Max-Q Design", uuid="", memory_total_bytes=4 * 2**30,
                    memory_free_bytes=None, memory_used_bytes=None, compute_capability=(6, 1), cuda_cores=768,
                    max_sm_clock_mhz=1417)
    peaks = nvidia_specs.nvidia_peaks(gpu)
    assert (peaks.family, peaks.sm_count, peaks.clock_hz) == ("nvidia-pascal", 6, pytest.approx(1417e6 / 1.23))
    assert not peaks.above_rated_clock


@pytest.mark.parametrize("capture, rated_mhz", [("nvidia-rtx-4080-super.json", 2550), ("nvidia-h100-sxm.json", 1980)])
def test_a_gpu_without_a_specification_is_priced_at_its_rated_boost_not_its_max_clock(capture, rated_mhz):
    """NVML's max SM clock is the top of a board's range: an RTX 4080 SUPER's is 3,165 MHz against the 2,550 it is
    rated at, and it answers N/A for the rated (customer) boost, where an H100 answers 1,980, its max. Read from
    each real capture as if no row named the card, the clock lands within 1 % of the rated boost its row gives."""
    gpu = detect(replay(capture)).gpus[0]
    mhz, how = nvidia_specs.nvml_rated_clock(gpu)
    assert mhz == pytest.approx(rated_mhz, rel=0.01)
    assert nvidia_specs.spec_clock_hz(nvidia_specs.gpu_spec_of(gpu)) == rated_mhz * 1e6
    assert how == ("NVML's rated boost" if gpu.rated_sm_clock_mhz else "NVML's max clock 3165 MHz over 1.23")


def test_a_contained_name_matches_whole_words_only():
    """A name no row has falls back to the longest row name it contains, as whole words: the A30's "a30" inside a
    future "A3000"-like name is not a match, and the GPU is priced from what NVML says instead."""
    assert nvidia_specs.gpu_spec("NVIDIA RTX A3000X Laptop GPU") is None
    assert nvidia_specs.gpu_spec("NVIDIA H100 80GB HBM3 MIG 1g.10gb")["key"] == "h100-sxm"  # a MIG instance's name holds its card's


def test_a_contained_name_followed_by_ti_or_super_is_another_card():
    """The RTX 2070 Super with Max-Q Design (a name in the NVIDIA driver README's supported-GPU table, device 1E91) holds
    "RTX 2070", a 115 W laptop row with 36 SMs; it is a TU104 with 40 at 80 W, so no row prices it: NVML's 2,560
    cores do. Names a row holds whole keep theirs."""
    assert nvidia_specs.gpu_spec("NVIDIA GeForce RTX 2070 Super with Max-Q Design") is None
    gpu = NvidiaGpu(index=0, name="NVIDIA GeForce RTX 2070 Super with Max-Q Design", uuid="", memory_total_bytes=8 * 2**30,
                    memory_free_bytes=None, memory_used_bytes=None, compute_capability=(7, 5), cuda_cores=2560,
                    max_sm_clock_mhz=1500)
    assert nvidia_specs.nvidia_peaks(gpu).sm_count == 40
    assert nvidia_specs.gpu_spec("NVIDIA GeForce RTX 2060 SUPER")["key"] == "rtx-2060-super"
    assert nvidia_specs.gpu_spec("NVIDIA GeForce RTX 4060 Ti 8GB")["key"] == "rtx-4060-ti-8gb"


@pytest.mark.parametrize("name, memory_gib, power_limit_w, key", [
    ("NVIDIA GeForce GTX 1650 Ti", 4, None, "gtx-1650-ti-laptop"),  # a laptop chip only: no desktop card has the name
    ("NVIDIA GeForce GTX 1650", 4, 50, "gtx-1650-laptop"), ("NVIDIA GeForce GTX 1650", 4, 75, "gtx-1650"),
    ("NVIDIA GeForce GTX 1060", 6, 80, "gtx-1060-laptop"), ("NVIDIA GeForce GTX 1070", 8, 115, "gtx-1070-laptop"),
    ("NVIDIA GeForce GTX 1050", 4, None, "gtx-1050-laptop"), ("NVIDIA GeForce GTX 1050", 2, None, "gtx-1050"),
    ("NVIDIA GeForce GTX 1660 Ti with Max-Q Design", 6, None, "gtx-1660-ti-max-q")])
def test_gtx_laptop_parts_are_priced_as_laptops(name, memory_gib, power_limit_w, key):
    """The GTX 10 and 16 laptop parts NVML names like the desktop cards are told apart by NVML's power limit (a GTX
    1650 laptop's 50 W against the desktop card's 75 W) or their memory (no desktop GTX 1050 has 4 GB); none of them
    runs above its rated boost as a desktop does."""
    spec = nvidia_specs.gpu_spec(name, memory_bytes=memory_gib * 2**30, power_limit_w=power_limit_w)
    assert spec["key"] == key
    assert nvidia_specs.geforce_desktop(spec) == (key in ("gtx-1650", "gtx-1050"))


def test_gb10_peaks_come_from_its_blackwell_sms_not_the_unknown_gpu_ratios():
    gpu = NvidiaGpu(index=0, name="NVIDIA GB10", uuid="", memory_total_bytes=None, memory_free_bytes=None,
                    memory_used_bytes=None, compute_capability=(12, 1), unified_memory=True, cuda_cores=6144,
                    max_sm_clock_mhz=2418)
    peaks = nvidia_specs.nvidia_peaks(gpu)
    assert peaks.family == "nvidia-blackwell" and peaks.sm_count == 48
    assert peaks.int8_ops == pytest.approx(48 * 2048 * 2418e6, rel=0.01)  # mma.sync int8, 2,048 ops an SM a clock


@pytest.mark.parametrize("name, cc, mhz", [("NVIDIA GH200 480GB", (9, 0), 1983), ("NVIDIA B200", (10, 0), 1980),
                                           ("NVIDIA H100 80GB HBM3", (9, 0), 1980)])
def test_a_gpu_without_an_nvml_clock_runs_at_the_clock_its_specification_implies(name, cc, mhz):
    """NVIDIA publishes no boost clock for the GH200 and the B200; their FP32 peaks imply one (67 TFLOPS over
    16,896 cores x 2 FLOP: 1.98 GHz), where a guessed 1.5 GHz priced a decoded token's per-layer cycles 30 % high."""
    gpu = NvidiaGpu(index=0, name=name, uuid="", memory_total_bytes=None, memory_free_bytes=None,
                    memory_used_bytes=None, compute_capability=cc)
    assert nvidia_specs.nvidia_peaks(gpu).clock_hz == pytest.approx(mhz * 1e6, rel=0.002)


@pytest.mark.parametrize("name, cc, kind", [("NVIDIA GB10", (12, 1), "gpu_lpddr"), ("Orin (nvgpu)", (8, 7), "gpu_lpddr"),
                                            ("NVIDIA H100 80GB HBM3", (9, 0), "hbm"), ("NVIDIA GeForce RTX 4060", (8, 9), "gddr")])
def test_a_gpus_lpddr_is_its_own_memory_kind_not_the_cpus(name, cc, kind):
    """DGX Spark's GB10 reads its LPDDR5X at 0.80 of 273 GB/s (llama.cpp's scoreboard, 57 tok/s on a 3.83 GB Q4_0), not
    at the CPUs' LPDDR share (0.64): a GPU's LPDDR has a share of its own (speed_model.json gpu_lpddr, HBM's until a
    fitting row tells them apart), GDDR another."""
    gpu = NvidiaGpu(index=0, name=name, uuid="", memory_total_bytes=None, memory_free_bytes=None,
                    memory_used_bytes=None, compute_capability=cc)
    assert nvidia_specs.nvidia_peaks(gpu).memory_kind == kind


def test_a_jetson_without_nvml_keeps_its_gpu_from_the_board():
    """JetPack before 6 ships no libnvidia-ml (ollama/ollama#3098; ultralytics/ultralytics#20680: "On Jetpack 5 ...
    nvidia-smi: command not found"), so NVML fails to load as on a machine without a GPU, and a JetPack 5 Orin was
    planned as its CPU alone. The board's device-tree model names the module: its GPU comes from the specification
    and shares the host's RAM and the board's bandwidth."""
    doc = jetpack5_agx_orin()
    assert doc["nvml"]["init_error"] == "NVML_ERROR_LIBRARY_NOT_FOUND"
    hw = detect(replay(doc))
    (gpu,) = hw.gpus
    assert (gpu.name, gpu.compute_capability, gpu.sm_count, gpu.max_sm_clock_mhz) == ("Orin (nvgpu)", (8, 7), 16, 1300)
    assert gpu.unified_memory and gpu.memory_total_bytes == hw.memory.total_bytes
    assert gpu.bandwidth_bytes_per_s == 204_800_000_000
    assert "jetson-agx-orin-64gb module its board names" in dict(gpu.unknown)["uuid"]
    # a board that names no module qwenctl knows keeps NVML's answer
    assert nvidia.probe(replay(document("raspberry-pi-5-8gb.json")), board="Raspberry Pi 5 Model B Rev 1.0") == Absent(
        "the NVIDIA driver (libnvidia-ml) is not installed")


def test_a_jetson_is_priced_in_the_power_mode_it_runs():
    """A specification row is the module at MAXN; nvpmodel's other modes cap the GPU's devfreq clock and power TPCs
    off, and a Jetson AGX Orin 64GB in its 30 W mode decoded Llama-3.1-8B Q4_K_M 3.3x slower than at MAXN
    (benchmarks/published_late7.json), which qwenctl priced at MAXN. Both limits are read from the files nvpmodel
    writes. An Orin Nano Super in its 25 W mode (JetPack 6; a public `nvpmodel -q --verbose` and `jetson_clocks --show`
    report, stored copy find_string id 54837080849: GPU MAX_FREQ 918000000, TPC_PG_MASK 240, 'Active GPU TPCs: 4')
    keeps its 8 SMs, since the mask gates the four TPC slots its GPU does not have, at 918 of its 1,020 MHz."""
    doc = orin_nano_super_over_nvml()
    maxn = nvidia_specs.nvidia_peaks(detect(replay(doc)).gpus[0])
    doc["files"]["/sys/devices/platform/17000000.gpu/devfreq_dev/max_freq"] = "918000000\n"
    doc["files"]["/sys/devices/platform/gpu.0/tpc_pg_mask"] = "240\n"
    gpu = detect(replay(doc)).gpus[0]
    assert (gpu.power_mode_clock_mhz, gpu.power_mode_tpc_mask) == (918.0, 240)
    mode = nvidia_specs.nvidia_peaks(gpu)
    assert (mode.sm_count, mode.clock_hz) == (8, 918e6) and (maxn.sm_count, maxn.clock_hz) == (8, 1020e6)
    assert mode.int8_ops == pytest.approx(maxn.int8_ops * 0.9) and "power mode's 8 of 8 SMs at 918 MHz" in mode.source

    # JetPack 5's paths, on an AGX Orin 64GB with no NVML: half of GA10B's eight TPCs gated and the clock at one of its
    # devfreq steps (624.75 MHz) price 8 of its 16 SMs at 0.48 of its 1,300 MHz
    doc = jetpack5_agx_orin()
    full = detect(replay(doc)).gpus[0]
    assert {"power_mode_clock_mhz", "power_mode_tpc_mask"} <= set(dict(full.unknown))  # no file: MAXN, and why
    doc["files"]["/sys/devices/17000000.ga10b/devfreq_dev/max_freq"] = "624750000\n"
    doc["files"]["/sys/devices/gpu.0/tpc_pg_mask"] = "240\n"
    hw = detect(replay(doc))
    gated = nvidia_specs.nvidia_peaks(hw.gpus[0])
    assert (gated.sm_count, gated.clock_hz) == (8, pytest.approx(624.75e6))
    from qwenctl.render.detect import rows  # `qwenctl detect` says what the mode leaves

    assert any("power mode: 8 of 16 SMs @ 625 of 1,300 MHz" in text for _, text, _ in rows(hw))
    assert gated.fp16_flops == pytest.approx(nvidia_specs.nvidia_peaks(full).fp16_flops * 0.5 * 624.75 / 1300)


def test_resident_threads_are_the_sms_times_the_capabilitys_threads_per_sm():
    """What a CUDA context reserves stacks for (estimate.cuda_stack_bytes): 2,048 threads per SM on Pascal, Ampere's
    A100 and Hopper (the H200 reported 2,048 itself), 1,536 on the other Ampere, Ada and consumer Blackwell chips, 1,024
    on Turing (CUDA C++ Programming Guide, technical specifications per compute capability). A GPU whose SMs are only
    guessed (no specification, no NVML cores) has none: its context is priced as the measured one."""
    rtx_4060 = detect(replay("nvidia-rtx-4060.json")).gpus[0]
    assert nvidia_specs.resident_threads(rtx_4060) == 24 * 1536
    h100 = NvidiaGpu(0, "NVIDIA H100 80GB HBM3", "GPU-1", 80 * 2**30, 80 * 2**30, 0, (9, 0))
    assert nvidia_specs.resident_threads(h100) == 132 * 2048
    turing = NvidiaGpu(0, "NVIDIA GeForce RTX 2080 Ti", "GPU-2", 11 * 2**30, 11 * 2**30, 0, (7, 5))
    assert nvidia_specs.resident_threads(turing) == 68 * 1024
    unknown = NvidiaGpu(0, "NVIDIA Mystery 9000", "GPU-3", 8 * 2**30, 8 * 2**30, 0, (8, 9))
    assert nvidia_specs.resident_threads(unknown) is None


def test_a_cut_sold_under_its_cards_name_is_priced_with_the_sms_nvml_counts():
    """The desktop RTX 3050 6GB (a published log: "NVIDIA GeForce RTX 3050 6GB, GA107", driver 595.71.05) finds the RTX
    3050 row once its memory size is read as a word of the model, but it is GA107 with 18 SMs (2,304 cores, TechPowerUp)
    where that row is GA106's 20: NVML's core count sets the SMs and the peaks with them, and its max clock over the
    captured ratio its clock (2,100 / 1.23 = 1,707 MHz, where the row says 1,777). A whole card is untouched."""
    gpu = NvidiaGpu(index=0, name="NVIDIA GeForce RTX 3050 6GB", uuid="", memory_total_bytes=6 * 2**30, memory_free_bytes=None,
                    memory_used_bytes=None, compute_capability=(8, 6), cuda_cores=2304, sm_count=18, max_sm_clock_mhz=2100)
    row = nvidia_specs.gpu_spec_of(gpu)
    peaks = nvidia_specs.nvidia_peaks(gpu)
    assert (row["key"], row["sm_count"], peaks.sm_count) == ("rtx-3050", 20, 18)
    assert peaks.fp32_flops == pytest.approx(row["fp32_tflops"] * 1e12 * 18 / 20)
    assert peaks.clock_hz == pytest.approx(2100e6 / 1.23)
    whole = nvidia_specs.nvidia_peaks(NvidiaGpu(index=0, name="NVIDIA GeForce RTX 3050", uuid="", memory_total_bytes=8 * 2**30,
                                         memory_free_bytes=None, memory_used_bytes=None, compute_capability=(8, 6),
                                         cuda_cores=2560, sm_count=20, max_sm_clock_mhz=2100))
    assert (whole.sm_count, whole.clock_hz) == (20, 1777e6)


@pytest.mark.parametrize("cc, unified, family, sms", [
    ((12, 2), False, "nvidia-blackwell", 192),  # a new minor of consumer Blackwell: 12.0's SM (GB10's 12.1 is embedded)
    ((10, 4), False, "nvidia-blackwell-dc", 192),  # datacenter Blackwell: B300's 10.3, not Thor's 10.1
    ((8, 8), True, "nvidia-orin", 192),  # an integrated part among the embedded rows
    ((13, 0), False, "nvidia-unknown", None),  # a new architecture: no SM to stand in, the unknown-GPU ratios
])
def test_a_compute_capability_the_table_lacks_takes_its_architectures_sm_just_below(cc, unified, family, sms):
    """Ada (8.9) arrived after Ampere's 8.6 with the same SM figures: a GPU of a listed architecture with a new minor
    version is priced with the SM of the listed minor just below it, among GPUs of its kind, and the plan names that."""
    gpu = NvidiaGpu(index=0, name="NVIDIA Future GPU", uuid="", memory_total_bytes=32 * 2**30, memory_free_bytes=None,
                    memory_used_bytes=None, compute_capability=cc, cuda_cores=24576, max_sm_clock_mhz=2500,
                    unified_memory=unified)
    peaks = nvidia_specs.nvidia_peaks(gpu)
    assert peaks.family == family
    if sms:
        assert peaks.sm_count == sms and f"compute capability {cc[0]}.{cc[1]} is not in this release's table" in peaks.assumed[0]
    else:
        assert peaks.assumed[0].startswith("NVIDIA Future GPU: compute peaks unknown")


def test_a_power_capped_board_is_priced_at_the_clock_its_limit_holds():
    """An RTX 3090 (rated 350 W, 1,695 MHz) capped at 180 W held 1,425 MHz in a published sweep (club-3090 #104), and
    1,815 MHz at 340 W. Priced from NVML's limit, its SMs run at (180/350) ** 1/3 of their rating, and under load (a
    desktop GeForce's sustained share, fitted on the fitting half the 3090 belongs to) at 1,484 MHz: within 5 % of the
    1,425 measured. At its own limit, or a factory board's higher one, nothing changes; a MIG slice's limit is its
    card's, not read."""
    from qwenctl.device_speed import under_load
    from qwenctl.machine import cuda_device

    base = NvidiaGpu(index=0, name="NVIDIA GeForce RTX 3090", uuid="", memory_total_bytes=24 * 2**30,
                     memory_free_bytes=None, memory_used_bytes=None, compute_capability=(8, 6), power_limit_w=350.0)
    spec = nvidia_specs.gpu_spec_of(base)
    capped = replace(base, power_limit_w=180.0)
    assert nvidia_specs.power_held_clock(base, spec) == nvidia_specs.power_held_clock(replace(base, power_limit_w=390.0), spec) == 1.0
    assert nvidia_specs.power_held_clock(capped, spec) == pytest.approx((180 / 350) ** (1 / 3), rel=1e-3)
    held = under_load(cuda_device(capped))
    assert held.clock_hz == pytest.approx(1425e6, rel=0.05)
    full = cuda_device(base)
    assert held.bandwidth_bytes_per_s == full.bandwidth_bytes_per_s  # the memory clock does not move
    assert "by a 180 W power limit where the board is rated 350 W" in cuda_device(capped).sources[0]


def test_a_board_fed_a_fraction_of_the_power_per_sm_of_its_chips_geforce_card_is_priced_below_its_rated_boost():
    """A Tesla T4 (a real g4dn.xlarge capture: 70 W) runs TU104's 40 SMs on a third of the power per SM the RTX 2070
    SUPER gets (215 W): by the cube law it holds 1,770 x 0.33 ** 1/3 = 1,218 MHz, not its rated 1,590, while its memory
    clock, and so its bandwidth, stays. detect says why. An A10G, which NVML says gets 300 W, and an L40S (0.66 of the
    RTX 4090 D's power per SM) keep their rated boost; a GeForce card is its own rule's."""
    from qwenctl.machine import cuda_device
    from qwenctl.render.detect import _gpu

    t4 = detect(replay("nvidia-t4-aws-g4dn.json")).gpus[0]
    dev = cuda_device(t4)
    share = (70 / 40) / (215 / 40)
    assert dev.clock_hz == pytest.approx(1770e6 * share ** (1 / 3), rel=1e-3)  # 1,218 MHz
    assert dev.bandwidth_bytes_per_s == cuda_device(replace(t4, power_limit_w=215.0)).bandwidth_bytes_per_s  # memory clock stays
    assert "0.33 of the power an SM gets on the rtx-2070-super" in dev.sources[0]
    assert _gpu(t4).endswith("· 70 W (SM clock priced at 0.77: 70 W for 40 SMs is 0.33 of the power an SM gets on the "
                             "rtx-2070-super (215 W, 40 SMs at 1770 MHz), same TU104 chip)")
    capped = replace(t4, power_limit_w=50.0)  # a cap below the T4's own rating: the two rules are one, not stacked
    assert cuda_device(capped).clock_hz == pytest.approx(1770e6 * ((50 / 40) / (215 / 40)) ** (1 / 3), rel=1e-3)

    def card(name: str, cc: tuple[int, int], watts: float | None) -> NvidiaGpu:
        return NvidiaGpu(index=0, name=name, uuid="", memory_total_bytes=24 * 2**30, memory_free_bytes=None,
                         memory_used_bytes=None, compute_capability=cc, power_limit_w=watts)

    assert cuda_device(card("NVIDIA A10G", (8, 6), 300.0)).clock_hz == 1710e6
    assert cuda_device(card("NVIDIA A10", (8, 6), 150.0)).clock_hz == pytest.approx(1358e6, rel=1e-3)
    assert cuda_device(card("NVIDIA L40S", (8, 9), 350.0)).clock_hz == 2520e6
    assert cuda_device(card("NVIDIA GeForce RTX 2070 SUPER", (7, 5), 215.0)).clock_hz == 1770e6


def test_ecc_on_a_gddr_card_costs_its_bandwidth_the_check_bits_and_on_hbm_nothing():
    """The T4 capture says ECC is on (nvmlDeviceGetEccMode (1, 1)): its GDDR6 reads the check bits from the same memory,
    so its 320 GB/s is priced at gddr_ecc_read_share of it, and detect says so. An H100's HBM3 has ECC resources of its
    own: the project's H100 machine answers ECC on and keeps its full 3.35 TB/s. A GeForce has no ECC (NVML answers
    NotSupported, read as unknown, priced as off)."""
    from qwenctl.device_speed import load_speed_model
    from qwenctl.machine import cuda_device
    from qwenctl.render.detect import _gpu

    share = load_speed_model()["gddr_ecc_read_share"]["share"]
    t4 = detect(replay("nvidia-t4-aws-g4dn.json")).gpus[0]
    assert t4.ecc_enabled is True
    assert cuda_device(t4).bandwidth_bytes_per_s == pytest.approx(320.064e9 * share, rel=1e-6)
    assert cuda_device(replace(t4, ecc_enabled=False)).bandwidth_bytes_per_s == pytest.approx(320.064e9, rel=1e-6)
    assert f"320 GB/s · ECC on (bandwidth priced at {share}x) · 70 W" in _gpu(t4)
    h100 = detect(replay("nvidia-h100-gpu-machine.json")).gpus[0]  # NVML's real answer there (2026-12-06): (1, 1)
    assert h100.ecc_enabled is True
    assert cuda_device(h100).bandwidth_bytes_per_s == cuda_device(replace(h100, ecc_enabled=False)).bandwidth_bytes_per_s
    assert "ECC on · 700 W" in _gpu(h100)
    doc = document("nvidia-rtx-4080-super.json")
    doc["nvml"]["devices"][0]["nvmlDeviceGetEccMode"] = {"error": "NVML_ERROR_NOT_SUPPORTED"}
    geforce = detect(replay(doc)).gpus[0]
    assert geforce.ecc_enabled is None and "ECC" not in _gpu(geforce)
    doc["nvml"]["devices"][0]["nvmlDeviceGetEccMode"] = {"error": "NVML_ERROR_UNKNOWN"}  # an odd answer keeps the GPU
    assert detect(replay(doc)).gpus[0].ecc_enabled is None


def test_a_prompt_of_host_layers_copies_their_weights_over_the_gpus_pcie_link():
    """The T4 capture's link is PCIe gen 3 at x8 (NVML's max generation with its slot, the lanes it trained at): 7.9 GB/s
    of lanes, about 6.7 of copies, below the host's staging copy (its one thread reads and writes each byte: half of
    what an EPYC core keeps in flight, 12.2 GB/s). A prompt with every layer on the host copies all of them per batch,
    so on that link it is slower than on the same card at gen 4 x16, where the host's copy binds, as it does where the
    link is not known. A decode never crosses the link. An NVML error on the link keeps the GPU."""
    from qwenctl.catalog import load_catalog
    from qwenctl.device_speed import load_speed_model
    from qwenctl.estimate import weight_split
    from qwenctl.machine import cuda_device, host_device, pcie_copy_rate
    from qwenctl.render.detect import _gpu
    from qwenctl.speed import estimate_speed

    t4 = detect(replay("nvidia-t4-aws-g4dn.json")).gpus[0]
    assert (t4.pcie_link_gen, t4.pcie_link_width) == (3, 8) and "PCIe 3.0 x8" in _gpu(t4)
    links = load_speed_model()["links"]
    assert cuda_device(t4).host_link_bytes_per_s == pytest.approx(8 * 0.9846e9 * links["pcie_copy_share"])
    assert pcie_copy_rate(4, 16) > links["host_to_gpu_pageable_bytes_per_s"] and pcie_copy_rate(None, 16) == 0.0
    model = load_catalog().model("7B")
    (weights,) = [w for w in model.weights if w.quant.upper() == "Q4_K_M"]
    host = host_device(detect(replay("nvidia-t4-aws-g4dn.json")))
    staging = host.staging_copy_bytes_per_s  # an EPYC thread reading and writing each byte: half what it reads
    assert staging == pytest.approx(host.thread_read_bytes_per_s / 2, rel=0.01)
    assert staging > cuda_device(t4).host_link_bytes_per_s
    narrow, wide, unknown = (estimate_speed(model, weights, cuda_device(g), host, n_gpu_layers=0)
                             for g in (t4, replace(t4, pcie_link_gen=4, pcie_link_width=16),
                                       replace(t4, pcie_link_gen=None, pcie_link_width=None)))
    copied = model.arch.n_layers * weight_split(load_catalog(), model, weights).layer_bytes
    assert 512 / narrow.pp_tps - 512 / wide.pp_tps == pytest.approx(
        copied / cuda_device(t4).host_link_bytes_per_s - copied / staging, rel=1e-6)
    assert wide.pp_tps == unknown.pp_tps and narrow.tg_tps == wide.tg_tps
    assert narrow.terms[-1].pp_copy == (copied, cuda_device(t4).host_link_bytes_per_s, "the GPU's PCIe link")
    assert wide.terms[-1].pp_copy == (copied, staging, "the host's copy into pinned memory")
    intel = replace(host, staging_copy_bytes_per_s=0.0)  # a core design whose copy is not measured: the H200 host's
    (*_, copy) = estimate_speed(model, weights, cuda_device(replace(t4, pcie_link_gen=4, pcie_link_width=16)), intel,
                                n_gpu_layers=0).terms
    assert copy.pp_copy[1] == links["host_to_gpu_pageable_bytes_per_s"]
    doc = document("nvidia-t4-aws-g4dn.json")
    doc["nvml"]["devices"][0]["nvmlDeviceGetCurrPcieLinkWidth"] = {"error": "NVML_ERROR_UNKNOWN"}
    assert detect(replay(doc)).gpus[0].pcie_link_width is None
    from qwenctl.machine import peer_link

    two = document("nvidia-t4-aws-g4dn.json")  # a g4dn.12xlarge's T4s, each at gen 3 x8: activations between them too
    two["nvml"]["devices"].append(dict(two["nvml"]["devices"][0]))
    two["nvml"]["system"]["nvmlDeviceGetCount"] = 2
    assert peer_link(detect(replay(two))) == (cuda_device(t4).host_link_bytes_per_s, "PCIe (6.7 GB/s: Tesla T4's gen 3 x8, NVML)")
    del two["nvml"]["devices"][1]["nvmlDeviceGetCurrPcieLinkWidth"]  # one link not known: a typical x16 link's copies
    one_unknown = detect(replay(two))
    assert [g.pcie_link_width for g in one_unknown.gpus] == [8, None]
    assert peer_link(one_unknown)[0] == links["pcie_bytes_per_s"]
    h100 = detect(replay("nvidia-h100-gpu-machine.json")).gpus[0]  # NVML's real answer there (2026-12-06): gen 5 at x16
    assert (h100.pcie_link_gen, h100.pcie_link_width) == (5, 16)
    assert cuda_device(h100).host_link_bytes_per_s > links["host_to_gpu_pageable_bytes_per_s"]  # the host's copy binds


def test_a_power_cap_slows_a_prompt_far_more_than_a_decode():
    """The real RTX 4080 SUPER capture (320 W) with its limit set to 200 W: the plan's prompt rate falls about with the
    SM clock (0.86 of it), its decode, bound by memory, by a few per cent at most."""
    from qwenctl.plan import plan

    doc = document("nvidia-rtx-4080-super.json")
    stock = plan(detect(replay(doc))).chosen
    doc["nvml"]["devices"][0]["nvmlDeviceGetPowerManagementLimit"] = 200_000
    capped = plan(detect(replay(doc))).chosen
    assert (capped.size, capped.quant) == (stock.size, stock.quant)
    assert 0.84 <= capped.pp_tps / stock.pp_tps <= 0.92  # 0.89: a prompt is not all SM-clock-bound work
    assert 0.95 <= capped.tg_tps / stock.tg_tps < 1.0
    from qwenctl.render.detect import _gpu  # and detect says why

    assert _gpu(detect(replay(doc)).gpus[0]).endswith("· 200 W limit (rated 320 W: SM clock priced at 0.86)")
    assert _gpu(detect(replay("nvidia-rtx-4080-super.json")).gpus[0]).endswith("· 320 W")


def test_a_laptop_part_named_like_its_desktop_card_is_told_by_its_power_limit():
    """NVIDIA's driver list gives the laptop chip 0x1F10 (TU106M) the desktop card's name, "GeForce RTX 2070". NVML's
    power limit, where it reports one, picks the row rated nearest: 115 W is the laptop part (36 SMs at its own rated
    1,440 MHz, held there by its power, not above it), 175 W the desktop card. A laptop answering N/A keeps the desktop
    row, as before; the power-held clock then has nothing to go on either."""
    def rtx_2070(watts):
        return NvidiaGpu(index=0, name="NVIDIA GeForce RTX 2070", uuid="", memory_total_bytes=8 * 2**30,
                         memory_free_bytes=None, memory_used_bytes=None, compute_capability=(7, 5), power_limit_w=watts)

    laptop = nvidia_specs.nvidia_peaks(rtx_2070(115.0))
    assert nvidia_specs.gpu_spec_of(rtx_2070(115.0))["key"] == "rtx-2070-laptop"
    assert (laptop.sm_count, laptop.clock_hz, laptop.above_rated_clock) == (36, 1440e6, False)
    assert nvidia_specs.gpu_spec_of(rtx_2070(175.0))["key"] == nvidia_specs.gpu_spec_of(rtx_2070(None))["key"] == "rtx-2070"
    assert nvidia_specs.nvidia_peaks(rtx_2070(None)).above_rated_clock
    # memory still comes first: the RTX 3080's 10 and 12 GB cards are told by their memory, whatever the limit
    assert nvidia_specs.gpu_spec("NVIDIA GeForce RTX 3080", None, 12 * 2**30, 250.0)["key"] == "rtx-3080-12gb"
