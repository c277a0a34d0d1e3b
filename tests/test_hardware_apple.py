import pytest
from hardware_captures import document, replay

from qwenctl.hardware import apple
from qwenctl.hardware._parse import SYSCTL_ARGV, data
from qwenctl.hardware.facts import Absent
from qwenctl.hardware.snapshot import command_key

GIB = 1 << 30


def test_m2_16gb_reads_as_apple_m2_with_16_gb_unified_memory():
    got = apple.probe(replay("apple-m2-16gb.json"))
    assert got.chip == "Apple M2"
    assert got.unified_memory_bytes == 16 * GIB
    assert (got.performance_cores, got.efficiency_cores, got.gpu_cores) == (4, 4, 10)
    assert got.gpu_wired_limit_bytes == int(16 * GIB * 2 / 3)
    assert got.gpu_wired_limit_source.startswith("macOS default, 2/3 of RAM")
    assert got.bandwidth_bytes_per_s == 100_000_000_000


def test_m3_max_36gb_without_ioreg_has_unknown_gpu_cores_and_no_bandwidth_guess():
    got = apple.probe(replay("apple-m3-max-36gb.json"))
    assert (got.chip, got.unified_memory_bytes, got.gpu_cores) == ("Apple M3 Max", 36 * GIB, None)
    assert got.bandwidth_bytes_per_s is None  # sold as 300 or 400 GB/s: the name does not say which


def test_iogpu_wired_limit_overrides_the_default():
    doc = document("apple-m2-16gb.json")
    key = command_key(SYSCTL_ARGV)
    doc["commands"][key] = doc["commands"][key].replace("iogpu.wired_limit_mb: 0", "iogpu.wired_limit_mb: 14336")
    got = apple.probe(replay(doc))
    assert (got.gpu_wired_limit_bytes, got.gpu_wired_limit_source) == (14336 << 20, "iogpu.wired_limit_mb")


@pytest.mark.parametrize("row", data("apple_silicon.json")["wired_limit"]["observations"], ids=lambda r: f"{r['ram_gib']}GiB")
def test_default_wired_limit_rule_matches_observed_recommended_working_sets(row):
    limit, _ = apple.wired_limit(row["ram_gib"] * GIB, None)
    assert limit / (1 << 20) == pytest.approx(row["recommended_mib"], abs=0.01)


def test_not_a_mac_and_intel_macs_are_absent():
    assert apple.probe(replay("linux-x86-no-gpu.json")) == Absent("not a Mac (Linux)")
    doc = document("apple-m1-8gb-bigsur.json")
    doc["platform"]["machine"] = "x86_64"
    key = command_key(SYSCTL_ARGV)
    doc["commands"][key] = doc["commands"][key].replace("hw.optional.arm64: 1", "hw.optional.arm64: 0")
    assert apple.probe(replay(doc)) == Absent("an Intel Mac (no unified memory for Metal to share)")
