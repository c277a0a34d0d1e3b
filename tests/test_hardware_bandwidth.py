"""Host memory bandwidth: from chips and boards, from the DIMMs, or measured and cached."""

import json
import struct

import pytest
from click.testing import CliRunner
from hardware_captures import document, replay, rk3588_board

from qwenctl.cli import cli
from qwenctl.hardware import bandwidth, cpu, detect, dimms, host_bandwidth, raspberry_pi
from qwenctl.hardware.live import LiveSource
from qwenctl.hardware.snapshot import command_key

GB = 10**9


@pytest.fixture
def cache_dir(tmp_path, monkeypatch):
    """platformdirs honours XDG_CACHE_HOME: the user's real cache is never touched."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    return tmp_path


def test_m4_max_memory_bandwidth_comes_from_chip_and_gpu_cores():
    mem = detect(replay("apple-m4-max-64gb.json")).memory
    assert (mem.bandwidth_bytes_per_s, mem.bandwidth_source) == (546 * GB, "Apple M4 Max with 40-core GPU (Apple specifications)")


def test_pi_5_and_pi_4_get_their_own_bandwidths():
    mem = detect(replay("raspberry-pi-5-8gb.json")).memory
    assert mem.bandwidth_bytes_per_s == 17_068_000_000
    assert mem.bandwidth_source == "Raspberry Pi 5 Model B Rev 1.0: LPDDR4X-4267, 32-bit (board_bandwidth.json)"
    board = raspberry_pi.probe(replay("raspberry-pi-4-no-device-tree.json"))
    assert host_bandwidth.board_bandwidth(board.model, board.ram_bytes)[0] == 12_800_000_000


def test_pi_4_without_device_tree_is_recognised_from_cpuinfo():
    board = raspberry_pi.probe(replay("raspberry-pi-4-no-device-tree.json"))
    assert (board.model, board.model_source) == ("Raspberry Pi 4 Model B Rev 1.5", "/proc/cpuinfo Model")
    assert (board.revision, board.soc, board.ram_bytes) == ("d03115", "BCM2711", 8 << 30)


def test_pi_recognised_from_the_revision_code_alone():
    doc = document("raspberry-pi-4-no-device-tree.json")
    doc["files"]["/proc/cpuinfo"] = doc["files"]["/proc/cpuinfo"].split("Model")[0]
    board = raspberry_pi.probe(replay(doc))
    assert (board.model, board.model_source) == ("Raspberry Pi 4B", "/proc/cpuinfo Revision")


@pytest.mark.parametrize("model, ram_gib, expected", [
    ("NVIDIA Jetson Orin Nano Developer Kit", 8, 68 * GB),
    ("NVIDIA Jetson Orin Nano Developer Kit", 4, 34 * GB),
    ("NVIDIA Jetson Orin Nano Engineering Reference Developer Kit Super", 8, 102 * GB),
    ("NVIDIA Jetson AGX Orin Developer Kit", 64, 204_800_000_000),
])
def test_jetson_bandwidth_by_board(model, ram_gib, expected):
    assert host_bandwidth.board_bandwidth(model, ram_gib << 30)[0] == expected


@pytest.mark.parametrize("model, expected", [
    ("Xunlong Orange Pi 5", 33_792_000_000),  # LPDDR4X at the blob's 2,112 MHz, 64-bit
    ("Xunlong Orange Pi 5 Plus", 33_792_000_000),
    ("Xunlong Orange Pi 5 Max", 38_400_000_000),  # LPDDR5 at 2,400 MHz: not caught by the Orange Pi 5's row
    ("Xunlong Orange Pi 5 Pro", 38_400_000_000),
    ("Radxa ROCK 5 Model B", 33_792_000_000),
    ("Radxa ROCK 5 ITX", 38_400_000_000),
    ("Hardkernel ODROID-M2", 43_776_000_000),  # LPDDR5 at the earlier blob's 2,736 MHz
])
def test_rk3588_boards_by_their_device_tree_model(model, expected):
    assert host_bandwidth.board_bandwidth(model, 8 << 30)[0] == expected


def test_an_unlisted_rk3588_board_has_no_bandwidth_of_its_own():
    """Its SoC bounds what it fits (LPDDR4X-4224 or LPDDR5), but only its own row or a measurement says which: detect
    reports the figure unknown, with the command that measures it."""
    mem = detect(replay(rk3588_board("FriendlyElec NanoPC-T6", "friendlyelec,nanopc-t6 rockchip,rk3588"))).memory
    assert mem.bandwidth_bytes_per_s is None
    why = dict(mem.unknown)["bandwidth_bytes_per_s"]
    assert "'FriendlyElec NanoPC-T6'" in why and "detect --measure" in why
    assert host_bandwidth.soc_typical("RK3588S") == host_bandwidth.soc_typical("RK3588")
    assert host_bandwidth.soc_typical("BCM2712") is None


def test_a_unified_jetson_gpu_gets_the_boards_bandwidth():
    doc = document("nvidia-h100-sxm.json")
    doc["files"]["/proc/device-tree/model"] = "NVIDIA Jetson Orin Nano Developer Kit\x00"
    dev = doc["nvml"]["devices"][0]
    dev["nvmlDeviceGetName"] = "Orin (nvgpu)"
    for key in ("nvmlDeviceGetMemoryInfo", "nvmlDeviceGetMemoryBusWidth", "nvmlDeviceGetMaxClockInfo(NVML_CLOCK_MEM)"):
        dev[key] = {"error": "NVML_ERROR_NOT_SUPPORTED"}
    hw = detect(replay(doc))
    assert hw.memory.bandwidth_bytes_per_s == hw.gpus[0].bandwidth_bytes_per_s == 68 * GB


def type17(size_mb: int, width: int, speed: int, configured: int, kind: int = 0x22, locator: str = "", bank: str = "") -> bytes:
    """A type 17 structure laid out per DMTF SMBIOS 3.x section 7.18 (length 0x28), its locators as strings 1 and 2."""
    raw = bytearray(0x28)
    raw[0], raw[1] = 17, 0x28
    struct.pack_into("<HHH", raw, 0x08, width, width, size_mb)
    raw[0x10], raw[0x11] = (1 if locator else 0), (2 if bank else 0)
    raw[0x12] = kind
    struct.pack_into("<H", raw, 0x15, speed)
    struct.pack_into("<H", raw, 0x20, configured)
    strings = b"".join(s.encode() + b"\x00" for s in (locator, bank) if s)
    return bytes(raw) + (strings + b"\x00" if strings else b"\x00\x00")


def with_type17(doc: dict, *blobs: bytes) -> dict:
    import base64

    for n, blob in enumerate(blobs):
        doc["files"][f"/sys/firmware/dmi/entries/17-{n}/raw"] = {"base64": base64.b64encode(blob).decode()}
    return doc


def test_smbios_ddr5_two_channels_at_the_configured_speed():
    doc = with_type17(document("linux-x86-no-gpu.json"),
                      type17(16384, 64, 5600, 5200), type17(0, 0, 0, 0), type17(16384, 64, 5600, 5200))
    mem = detect(replay(doc)).memory
    assert mem.bandwidth_bytes_per_s == 5200 * 10**6 * 16  # 83.2 GB/s: DDR5-5200 dual channel
    assert mem.bandwidth_source.startswith("SMBIOS DDR5 at 5200 MT/s x 2 devices")
    assert not mem.bandwidth_measured  # a specification's peak


def test_smbios_unreadable_is_said_and_measuring_is_suggested():
    doc = document("linux-x86-no-gpu.json")
    doc["files"]["/sys/firmware/dmi/entries/17-0/raw"] = {"error": "EACCES"}
    doc["files"][dimms.UDEV_DMI] = {"error": "ENOENT"}
    mem = detect(replay(doc)).memory
    assert mem.bandwidth_bytes_per_s is None
    assert dict(mem.unknown)["bandwidth_bytes_per_s"] == (
        "SMBIOS memory entries not readable (Permission denied; root only); no udev database of memory devices "
        "(/run/udev/data/+dmi:id: systemd 248 or later writes it); run `qwenctl detect --measure` to measure it")


# Two DIMMs a channel, as AMD's firmware names them (Locator "DIMM 0" / "DIMM 1", Bank Locator "P0 CHANNEL A"):
# the slot strings of a TRX40 board's `dmidecode -t 17` (memtest86plus/memtest86plus issue #123), all four slots of
# channels A and B filled with DDR4-3200, as on the ASRock board of lpereira/hardinfo issue #386 ("2x DIMM 0 and
# 2x DIMM1"). Four DIMMs on two 64-bit channels: 51.2 GB/s, not the 102.4 that four channels would have.
TWO_PER_CHANNEL = [("DIMM 0", "P0 CHANNEL A"), ("DIMM 1", "P0 CHANNEL A"), ("DIMM 0", "P0 CHANNEL B"), ("DIMM 1", "P0 CHANNEL B")]


def test_dimms_sharing_a_channel_count_once():
    doc = with_type17(document("linux-x86-no-gpu.json"),
                      *(type17(16384, 64, 3200, 3200, 0x1A, locator, bank) for locator, bank in TWO_PER_CHANNEL))
    value, how = dimms.bandwidth(replay(doc))
    assert value == 3200 * 10**6 * 16
    assert how == "SMBIOS DDR4 at 3200 MT/s x 4 devices on 2 channels (as their locators name them) x their data width (16 B)"


# ThomasKaiser/sbc-bench results/4eOo.txt: an AMD Athlon II X3 420e (socket AM3: two 64-bit channels) with four DDR2-800
# DIMMs in slots "DIMM0".."DIMM3" (as lshw shows their Device Locators; no channel named). Counted as a channel each,
# they read as 25.6 GB/s; the controller has 12.8.
ATHLON_DIMMS = ("DIMM0", "DIMM1", "DIMM2", "DIMM3")


def test_dimms_naming_no_channel_are_no_wider_than_the_cpus_memory_bus():
    doc = with_type17(document("linux-x86-no-gpu.json"),
                      *(type17(1024, 64, 800, 800, 0x13, locator, "") for locator in ATHLON_DIMMS))
    assert detect(replay(doc)).memory.bandwidth_bytes_per_s == 800 * 10**6 * 32  # an "AMD EPYC": not capped
    doc["files"]["/proc/cpuinfo"] = doc["files"]["/proc/cpuinfo"].replace(
        "model name\t: AMD EPYC", "model name\t: AMD Athlon(tm) II X3 420e Processor")
    mem = detect(replay(doc)).memory
    assert mem.bandwidth_bytes_per_s == 800 * 10**6 * 16
    assert mem.bandwidth_source == (
        "SMBIOS DDR2 at 800 MT/s x 4 devices x their data width (32 B), each device counted as its own channel, capped "
        "at the CPU's 128-bit memory bus (client Intel Core, Core Ultra, Pentium and Celeron, AMD Ryzen and Athlon (AM2 "
        "to AM5, the FP laptop sockets): two 64-bit channels (DDR5 and LPDDR split them into 32- or 16-bit subchannels, "
        "128 bits in all))")


@pytest.mark.parametrize(("brand", "bits"), [
    ("Intel(R) Core(TM) i7 CPU         920  @ 2.67GHz", 192),  # LGA1366: three channels
    ("Intel(R) Core(TM) i7 CPU         860  @ 2.80GHz", 128),  # LGA1156: two
    ("Intel(R) Core(TM) i7-5960X CPU @ 3.00GHz", 256),
    ("Intel(R) Core(TM) i9-10980XE CPU @ 3.00GHz", 256),
    ("12th Gen Intel(R) Core(TM) i9-12900K", 128),  # not an X-series part
    ("13th Gen Intel(R) Core(TM) i9-13980HX", 128),
    ("Intel(R) Core(TM) Ultra 7 155H", 128),
    ("Intel(R) N100", 64),
    ("Intel(R) Core(TM) i3-N305", 64),
    ("Intel(R) Celeron(R) N5105 @ 2.00GHz", 128),
    ("AMD Ryzen 7 7800X3D 8-Core Processor", 128),
    ("AMD Ryzen AI 9 HX 370 w/ Radeon 890M", 128),
    ("AMD Ryzen AI Max+ 395 w/ Radeon 8060S", 256),
    ("AMD Ryzen Threadripper 3970X 32-Core Processor", 256),
    ("AMD Ryzen Threadripper PRO 5995WX 64-Cores", 512),
    ("Intel(R) Xeon(R) Platinum 8480+", None),  # channels by model and socket: not capped
    ("AMD EPYC 9654 96-Core Processor", None),
    ("ARM Cortex-A76", None),
])
def test_the_memory_bus_a_cpu_drives(brand, bits):
    bus = host_bandwidth.memory_bus(brand)
    assert (bus.bits if bus else None) == bits


@pytest.mark.parametrize(("locator", "bank", "channel"), [
    ("ChannelA-DIMM0", "BANK 0", "CHANNELA"),  # a Lenovo T490's (the wmic capture below) and systemd issue #16651's
    ("Controller0-ChannelB-DIMM1", "BANK 1", "CONTROLLER0-CHANNELB"),  # Intel's reference firmware (sbc-bench results)
    ("Controller1-ChannelA", "BANK 0", "CONTROLLER1-CHANNELA"),  # the other controller's channel A is another channel
    ("DIMM 1", "P0 CHANNEL A", "P0 CHANNEL A"),
    ("DIMM_B2", "BANK 1", "DIMM B"),  # ASUS: channel B, its second slot
    ("P1-DIMMA1", "P1_Node0_Channel0_Dimm0", "P1-DIMM A"),  # Supermicro
    ("DIMM 0", "BANK 0", ""),  # names no channel: a channel of its own
    ("Bottom-Slot 1(left)", "BANK 0", ""),
])
def test_the_channel_a_locator_names(locator, bank, channel):
    assert dimms.channel_of(locator, bank) == channel


# Framework Desktop (Ryzen AI Max+ 395) `sudo dmidecode` (FrameworkComputer/SoftwareFirmwareIssueTracker issue #181):
# eight 32-bit LPDDR5 devices at 8,000 MT/s, Locator "DIMM 0", Bank Locator "P0 CHANNEL A" ... "P0 CHANNEL H", written
# as systemd's dmi_memory_id records those fields in the udev database (TYPE as systemd before 256 writes LPDDR5).
STRIX_HALO_UDEV = "".join(
    f"E:MEMORY_DEVICE_{n}_TOTAL_WIDTH=32\nE:MEMORY_DEVICE_{n}_DATA_WIDTH=32\nE:MEMORY_DEVICE_{n}_SIZE=17179869184\n"
    f"E:MEMORY_DEVICE_{n}_FORM_FACTOR=Other\nE:MEMORY_DEVICE_{n}_LOCATOR=DIMM 0\n"
    f"E:MEMORY_DEVICE_{n}_BANK_LOCATOR=P0 CHANNEL {'ABCDEFGH'[n]}\nE:MEMORY_DEVICE_{n}_TYPE=<OUT OF SPEC>\n"
    f"E:MEMORY_DEVICE_{n}_SPEED_MTS=8000\nE:MEMORY_DEVICE_{n}_CONFIGURED_SPEED_MTS=8000\n" for n in range(8)
) + "E:MEMORY_ARRAY_NUM_DEVICES=8\n"


def test_a_user_who_is_not_root_reads_the_dimms_udev_recorded():
    """The raw tables are root-only; systemd-udevd wrote the same fields where every user may read them."""
    doc = document("linux-x86-no-gpu.json")
    doc["files"]["/sys/firmware/dmi/entries/17-0/raw"] = {"error": "EACCES"}
    doc["files"][dimms.UDEV_DMI] = "I:2010156\n" + STRIX_HALO_UDEV
    mem = detect(replay(doc)).memory
    assert mem.bandwidth_bytes_per_s == 256 * GB  # 8,000 MT/s x 256 bits: AMD's 256 GB/s for the Ryzen AI Max+ 395
    assert mem.bandwidth_source == (
        "SMBIOS memory at 8000 MT/s x 8 devices on 8 channels (as their locators name them) x their data width (32 B)")
    # an empty slot (PRESENT=0, as systemd writes it) and a device without a speed are not memory to stream from
    doc["files"][dimms.UDEV_DMI] = ("E:MEMORY_DEVICE_0_PRESENT=0\nE:MEMORY_DEVICE_0_LOCATOR=DIMM 0\n"
                                    "E:MEMORY_DEVICE_1_SIZE=8589934592\nE:MEMORY_DEVICE_1_DATA_WIDTH=64\n")
    assert dimms.bandwidth(replay(doc)) == (None, (
        "SMBIOS memory entries not readable (Permission denied; root only); "
        "no populated memory device with a speed and a data width in /run/udev/data/+dmi:id"))


# 5T33Z0/OC-Little-Translated, guide "Fixing falsely reported RAM speed in macOS" (code index file 7092498494): a Lenovo
# T490's `wmic memorychip list full`, two 8 GB DDR4 SODIMMs, one per channel (two of its 31 lines a DIMM kept each)
T490_MEMORYCHIP = """BankLabel=BANK 0\r\r\nCapacity=8589934592\r\r\nDataWidth=64\r\r\nDeviceLocator=ChannelA-DIMM0\r\r
FormFactor=12\r\r\nSpeed=2667\r\r\nTotalWidth=64\r\r\n\r\r\nBankLabel=BANK 2\r\r\nCapacity=8589934592\r\r\nDataWidth=64\r\r
DeviceLocator=ChannelB-DIMM0\r\r\nFormFactor=12\r\r\nSpeed=2667\r\r\nTotalWidth=64\r\r\n\r\r\n"""


def test_windows_memory_devices_give_the_peak_as_smbios_does_on_linux():
    """Win32_PhysicalMemory is SMBIOS type 17 as Windows shows it: a device per block, each its own channel of its
    data width. Without ConfiguredClockSpeed the rated Speed stands in (2,667 here; the same laptop's dmidecode
    shows 2,400 configured, so that peak is 11 % high and the source says which field it took)."""
    doc = document("windows-i7-4710mq.json")
    doc["commands"][command_key(dimms.WMIC_MEMORY_ARGV)] = T490_MEMORYCHIP
    value, how = dimms.bandwidth(replay(doc))
    assert value == 2667 * 10**6 * 16 and "2 devices on 2 channels" in how
    modern = "\n".join(f"ConfiguredClockSpeed=5600\nDataWidth=64\nSMBIOSMemoryType=34\nSpeed=5600\nDeviceLocator=DIMM_{slot}\n"
                       for slot in ("A1", "A2"))  # two DIMMs of one channel
    assert dimms.win32_memory_devices(modern) == [(5600, 64, "DDR5", "DIMM A"), (5600, 64, "DDR5", "DIMM A")]
    assert dimms.peak(dimms.win32_memory_devices(modern), 0, "")[0] == 5600 * 10**6 * 8
    doc["commands"] = {command_key(dimms.CIM_MEMORY_ARGV): "ConfiguredClockSpeed : 7467\nDataWidth : 16\n\n" * 8}
    assert dimms.bandwidth(replay(doc))[0] == 7467 * 10**6 * 16  # eight 16-bit LPDDR5X channels
    doc["commands"] = {}
    assert dimms.bandwidth(replay(doc)) == (None, "neither wmic nor PowerShell's Get-CimInstance answered for Win32_PhysicalMemory")


def test_edac_channels_with_smbios_speed():
    doc = document("linux-x86-no-gpu.json")
    for d, channel in enumerate((0, 1, 2, 3)):
        base = f"/sys/devices/system/edac/mc/mc0/dimm{d}"
        doc["files"][f"{base}/size"] = "32768\n"
        doc["files"][f"{base}/dimm_location"] = f"channel {channel} slot 0 \n"
        doc["files"][f"{base}/dimm_mem_type"] = "Registered-DDR4\n"
    assert dimms.edac_channels(replay(doc)) == (4, "Registered-DDR4")


def test_measure_is_quick_and_positive():
    m = bandwidth.measure(threads=2, buffer_bytes=32 << 20, repeats=2)
    assert m.bytes_per_s > 1e8 and m.threads == 2 and m.seconds < 5


def test_a_recorded_measurement_is_reported_by_plain_detect(cache_dir):
    hw = detect(LiveSource())
    key = host_bandwidth.machine_key(hw.cpu, hw.memory)
    entry = bandwidth.record(key, bandwidth.Measurement(31_000_000_000, 2, 256 << 20, 5, 0.4, "2026-12-01"))
    assert bandwidth.cached(key) == entry
    mem = detect(LiveSource()).memory
    if "SMBIOS" in (mem.bandwidth_source or ""):
        pytest.skip("this machine's DIMMs answer first")
    assert (mem.bandwidth_bytes_per_s, mem.bandwidth_source, mem.bandwidth_measured) == (
        31_000_000_000, "measured 2026-12-01 by qwenctl detect --measure", True)


def test_a_measurement_the_cache_cannot_keep_still_counts_for_this_run(tmp_path, monkeypatch):
    """The cache folder is a file (a read-only home, a full disk): `detect --measure` says it measured, warns that
    it will not remember, and reports the figure; `plan`, which measures where the bandwidth was assumed, plans on it.
    Until session 69 both ended in an error after measuring."""
    (tmp_path / "not-a-folder").write_text("")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "not-a-folder"))
    result = CliRunner().invoke(cli, ["detect", "--measure", "--json"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    measured = float(result.stderr.split()[1]) * 1e9
    assert (f"warning: not remembered for later runs: cannot write the bandwidth cache "
            f"{tmp_path / 'not-a-folder' / 'qwenctl' / 'bandwidth.json'}: Not a directory") in result.stderr
    memory = json.loads(result.stdout)["memory"]
    if "SMBIOS" in (memory["bandwidth_source"] or ""):
        pytest.skip("this machine's DIMMs answer first")
    assert memory["bandwidth_measured"] and abs(memory["bandwidth_bytes_per_s"] - measured) <= 0.05e9


def test_a_plan_rests_on_a_measurement_the_cache_cannot_keep(tmp_path, monkeypatch):
    """`pipeline.plan_here` measures once where a plan assumed the host bandwidth, and plans again on the figure,
    which this process keeps when the cache cannot; it says it will measure again next time."""
    from types import SimpleNamespace

    from qwenctl.machine import MEASURE_HINT
    from qwenctl.pipeline import plan_here

    (tmp_path / "not-a-folder").write_text("")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "not-a-folder"))
    planned_on = []

    def plan_on(hw):  # the planner's one input here: whether the first plan rested on an assumed bandwidth
        planned_on.append(hw.memory)
        return SimpleNamespace(assumptions=(f"host bandwidth assumed; {MEASURE_HINT}",) if len(planned_on) == 1 else ())

    steps: list[str] = []
    plan_here(plan_on, steps.append)
    assert steps[0] == "measuring this machine's memory bandwidth (once; remembered)"
    assert steps[1] == ("not remembered, measured again next time: cannot write the bandwidth cache "
                        f"{tmp_path / 'not-a-folder' / 'qwenctl' / 'bandwidth.json'}: Not a directory")
    if "SMBIOS" not in (planned_on[1].bandwidth_source or ""):
        assert planned_on[1].bandwidth_measured and planned_on[1].bandwidth_bytes_per_s > 1e8


def test_the_measurement_travels_in_a_snapshot(cache_dir, tmp_path):
    from qwenctl.hardware import load_snapshot, save_snapshot

    hw = detect(LiveSource())
    bandwidth.record(host_bandwidth.machine_key(hw.cpu, hw.memory),
                     bandwidth.Measurement(31_000_000_000, 2, 256 << 20, 5, 0.4, "2026-12-01"))
    live = LiveSource(record=True)
    first = detect(live)
    save_snapshot(live, tmp_path / "me.json")
    assert detect(load_snapshot(tmp_path / "me.json")).memory.bandwidth_source == first.memory.bandwidth_source


def test_detect_measure_records_and_reports(cache_dir):
    result = CliRunner().invoke(cli, ["detect", "--measure"], env={"NO_COLOR": "1", "COLUMNS": "300"},
                                catch_exceptions=False)
    assert result.exit_code == 0
    assert result.stderr.startswith("measured ") and "GB/s host memory read bandwidth" in result.stderr
    assert bandwidth.read_cache()


def test_measure_with_a_snapshot_is_a_usage_error():
    result = CliRunner().invoke(cli, ["detect", "--measure", "--snapshot", "x.json"])
    assert result.exit_code == 2


def test_x86_cores_are_cpu_cores_times_sockets():
    got = cpu.probe(replay("linux-x86-epyc-2-sockets-lxc.json"))
    assert (got.physical_cores, got.logical_cores, got.sockets) == (8, 8, 2)
    assert got.cores_source == "cpu cores x sockets (/proc/cpuinfo)"
