import pytest
from hardware_captures import document, replay

from qwenctl.hardware import apple, apple_specs
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


def test_m3_max_36gb_without_ioreg_is_told_apart_by_its_14_core_cpu():
    got = apple.probe(replay("apple-m3-max-36gb.json"))
    assert (got.chip, got.unified_memory_bytes, got.gpu_cores) == ("Apple M3 Max", 36 * GIB, None)
    # Sold as 300 or 400 GB/s; the 14-core CPU only ever comes with the 30-core GPU (300 GB/s).
    assert got.bandwidth_bytes_per_s == 300 * 10**9
    assert got.bandwidth_source == "Apple M3 Max with 14-core CPU (Apple specifications)"


def test_m3_max_without_ioreg_is_priced_with_the_gpu_its_cpu_comes_with():
    """The same capture's GPU: its 10 + 4 CPU cores come only with the 30-core GPU, so the plan prices those 30 cores
    from the specification, not the smallest configuration as an assumption it has to name."""
    peaks = apple_specs.apple_peaks(apple.probe(replay("apple-m3-max-36gb.json")))
    assert (peaks.gpu_cores, peaks.bandwidth_bytes_per_s, peaks.assumed) == (30, 300e9, ())
    assert peaks.source.endswith("its GPU cores told by its 10P + 4E CPU")


def test_big_surs_apple_processor_is_the_m1_at_its_own_bandwidth():
    """macOS 11 named the M1 "Apple processor" (archspec/archspec#38). Read as an unknown chip it was planned at a guessed
    100 GB/s; as the M1, at its 68.25 GB/s, and its GPU cores, which no CPU figure of Big Sur settles, are the one
    assumption left."""
    got = apple.probe(replay("apple-m1-8gb-bigsur.json"))
    assert (got.chip, got.bandwidth_bytes_per_s) == ("Apple M1", 68_250_000_000)
    assert got.bandwidth_source == "Apple M1 (Apple specifications), the chip macOS 11 named 'Apple processor'"
    peaks = apple_specs.apple_peaks(got)
    assert peaks.family == "apple-m1" and peaks.assumed == ("Apple M1: GPU core count unknown, assumed the smallest configuration's 7",)


def test_a_macos_virtual_machine_has_no_apple_gpu_to_plan_on():
    """A GitHub Actions arm64 runner is a guest of Apple's Virtualization framework: macOS names its chip "Apple M1
    (Virtual)" and gives it a paravirtual GPU, no AGXAccelerator. Planned as an M1 it would have run Metal on a device
    that runs no Metal Performance Shaders; its CPUs are a share of the host's (cpu.probe: a virtual machine)."""
    from qwenctl.hardware import cpu

    vm = replay("apple-m1-virtual-github-runner.json")
    got = apple.probe(vm)
    assert isinstance(got, Absent) and got.reason.startswith("a virtual machine on an Apple M1: its GPU is Apple's paravirtual")
    host = cpu.probe(vm)
    assert (host.brand, host.physical_cores, host.virtual_machine) == ("Apple M1 (Virtual)", 3, True)
    assert not cpu.probe(replay("apple-m2-16gb.json")).virtual_machine
    assert apple.chip_named("Apple M1 Pro (Virtual)") == "Apple M1 Pro"  # UTM's guest on an M1 Pro (utmapp/UTM#6996)


def test_m4_max_40_core_gpu_from_ioreg_is_546_gbps():
    got = apple.probe(replay("apple-m4-max-64gb.json"))
    assert (got.chip, got.gpu_cores, got.performance_cores, got.efficiency_cores) == ("Apple M4 Max", 40, 12, 4)
    assert (got.bandwidth_bytes_per_s, got.bandwidth_source) == (
        546 * 10**9, "Apple M4 Max with 40-core GPU (Apple specifications)")
    assert got.unified_memory_bytes == 64 * GIB


@pytest.mark.parametrize("gpu, cpu, expected", [(32, 14, 410), (40, 16, 546), (None, 14, 410), (None, None, None)])
def test_m4_max_configurations(gpu, cpu, expected):
    got, why = apple.chip_bandwidth("Apple M4 Max", gpu, cpu)
    assert got == (expected * 10**9 if expected else None)
    if expected is None:
        assert "410 or 546 GB/s" in why


def test_m5_pro_and_max_bandwidth_from_apples_figures_and_the_32_core_max_says_none():
    """M5 Pro 307 GB/s, M5 Max 614 GB/s with its 40-core GPU (Apple newsroom, 2026-03-03). Both Max bins have the same
    18-core CPU, so the CPU cannot stand in for the GPU count, and the 32-core bin's bandwidth is not published:
    detect says so (the speed model takes devices.json's derived 460 GB/s, with its derivation)."""
    assert apple.chip_bandwidth("Apple M5 Pro", 20, 18)[0] == 307 * 10**9
    assert apple.chip_bandwidth("Apple M5 Max", 40, 18)[0] == 614 * 10**9
    got, why = apple.chip_bandwidth("Apple M5 Max", 32, 18)
    assert got is None and "614 GB/s" in why and "40-core GPU" in why and "(32)" in why
    assert apple.chip_bandwidth("Apple M5 Max", None, 18)[0] is None


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


def renamed_m4_max(chip: str, gpu_cores: int):
    """The M4 Max capture with its brand string and ioreg's core count changed: a chip newer than devices.json."""
    doc = document("apple-m4-max-64gb.json")
    key = command_key(SYSCTL_ARGV)
    doc["commands"][key] = doc["commands"][key].replace("Apple M4 Max", chip)
    ioreg = command_key(apple.IOREG_ARGV)
    doc["commands"][ioreg] = doc["commands"][ioreg].replace('"gpu-core-count" = 40', f'"gpu-core-count" = {gpu_cores}')
    return apple.probe(replay(doc))


def test_an_ultra_newer_than_the_table_is_two_of_its_generations_max_dies():
    """Every Ultra is two Max dies joined by UltraFusion, each with its own memory: an M5 Ultra, which devices.json does not
    list, is priced at twice the M5 Max's 614 GB/s with two dies' synchronisation, not at the 100 GB/s fallback (which
    planned a 14B at 10 tok/s on it), and the plan names that as an assumption."""
    got = renamed_m4_max("Apple M5 Ultra", 80)
    assert (got.chip, got.gpu_cores, got.bandwidth_bytes_per_s) == ("Apple M5 Ultra", 80, None)
    peaks = apple_specs.apple_peaks(got)
    assert (peaks.family, peaks.gpu_cores, peaks.dies, peaks.bandwidth_bytes_per_s) == ("apple-m5", 80, 2, 1228e9)
    assert peaks.assumed == ("Apple M5 Ultra: not in this release's table; priced as two Apple M5 Max dies (every Ultra is two "
                             "Max dies joined by UltraFusion): 1228 GB/s",)


def test_a_chip_of_a_generation_the_table_lacks_takes_the_newest_listed_of_its_tier():
    """An M6 Max is priced as the M5 Max at its lower bin (460 GB/s) with the M5's GPU clock and constants, said as an
    assumption, where it got 100 GB/s and a guessed 1.4 GHz clock; a listed chip is untouched."""
    peaks = apple_specs.apple_peaks(renamed_m4_max("Apple M6 Max", 40))
    assert (peaks.family, peaks.bandwidth_bytes_per_s, peaks.dies, peaks.clock_hz) == ("apple-m5", 460e9, 1, 1.47e9)
    assert len(peaks.assumed) == 1 and "priced as the Apple M5 Max" in peaks.assumed[0]
    listed = apple_specs.apple_peaks(renamed_m4_max("Apple M4 Max", 40))
    assert (listed.bandwidth_bytes_per_s, listed.assumed) == (546e9, ())


def test_an_iphone_chip_newer_than_the_table_is_the_newest_listed_one_on_its_own_gpu_generation():
    """An A19 Pro in a Mac: its memory as the A18 Pro's 60 GB/s (the newest listed iPhone chip of its tier, assumed), its
    GPU of the M5's Metal family (Apple10: devices.json `apple_a_series_generation`), with the M5's Neural Accelerators."""
    peaks = apple_specs.apple_peaks(renamed_m4_max("Apple A19 Pro", 6))
    assert (peaks.family, peaks.bandwidth_bytes_per_s, peaks.matrix_flops / peaks.fp32_flops) == ("apple-m5", 60e9, 4.0)
    assert "priced as the Apple A18 Pro" in peaks.assumed[0]
