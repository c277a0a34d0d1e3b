"""The memory a CPU is rated for, by the brand string /proc/cpuinfo (or a profile) gives: the assumption a plan makes
where nothing on the machine says its bandwidth, in place of one DDR4-3200 channel for every CPU."""

import sys
from pathlib import Path

import pytest

from qwenctl.hardware.rated_memory import model_key, rated_bandwidth
from qwenctl.plan import Constraints, plan
from qwenctl.profiles import load_profile

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))


@pytest.mark.parametrize("brand, gbs, memory", [
    # Intel: the part's row from ARK, whatever words cpuinfo wraps its name in
    ("12th Gen Intel(R) Core(TM) i7-1260P", 76.8, "DDR5-4800 on 2 channels"),
    ("Intel(R) Core(TM) Ultra 7 258V", 136.5, "LPDDR5X-8533 on 2 channels"),  # Lunar Lake: soldered memory only
    ("Intel(R) N100", 38.4, "DDR5-4800 on 1 channel"),
    ("Intel(R) Xeon(R) CPU E5-2680 v4 @ 2.40GHz", 76.8, "DDR4-2400 on 4 channels"),
    ("Intel(R) Xeon(R) CPU E5-2680 0 @ 2.70GHz", 51.2, "DDR3-1600 on 4 channels"),  # hwloc's capture of a v1 part
    ("Intel(R) Core(TM) i7 CPU         920  @ 2.67GHz", 25.6, "DDR3-1066 on 3 channels"),
    # AMD and Qualcomm: a platform row by the part's number
    ("AMD Ryzen 9 7950X 16-Core Processor", 83.2, "DDR5-5200 on 2 channels"),
    ("AMD Ryzen 7 7840HS w/ Radeon 780M Graphics", 89.6, "DDR5-5600 on 2 channels"),
    ("AMD Ryzen 5 5600 6-Core Processor", 51.2, "DDR4-3200 on 2 channels"),
    ("AMD Ryzen AI Max+ 395 w/ Radeon 8060S", 256.0, "LPDDR5X-8000 on a 256-bit bus"),
    ("AMD EPYC 9575F 64-Core Processor", 576.0, "DDR5-6000 on 12 channels"),
    ("AMD Ryzen Threadripper PRO 7995WX 96-Cores", 332.8, "DDR5-5200 on 8 channels"),
    ("Snapdragon(R) X Elite - X1E78100 - Qualcomm(R) Oryon(TM) CPU", 135.168, "LPDDR5X-8448 on a 128-bit bus"),
    # a Steam Deck's APU has no product name: Valve's specification of each model
    ("AMD Custom APU 0405", 88.0, "LPDDR5-5500 on four 32-bit channels"),
    ("AMD Custom APU 0932", 102.4, "LPDDR5-6400 on four 32-bit channels"),
])
def test_a_cpu_is_rated_for_the_memory_its_vendor_lists(brand, gbs, memory):
    bytes_per_s, why = rated_bandwidth(brand)
    assert bytes_per_s == pytest.approx(gbs * 1e9, rel=1e-3)
    assert memory in why and why.startswith("the rated memory of the")


@pytest.mark.parametrize("brand", ["Intel Xeon Processor (Cascadelake)", "AMD EPYC-Genoa Processor",
                                   "Intel(R) Xeon(R) Platinum 8488C", "ARMv7 Processor rev 5 (v7l)", "Test",
                                   "AMD Ryzen 5 7520U with Radeon Graphics"])
def test_a_cpu_no_row_names_has_no_rating(brand):
    """A VM's generic model name, a cloud provider's own SKU (not on ARK), a name with no part number, or a part no row
    names whose number looks like another's (Mendocino's 7520U, soldered LPDDR5, is not an AM5 desktop part): no rating."""
    assert rated_bandwidth(brand) is None


def test_cpuinfo_and_arks_names_reduce_to_one_key():
    assert model_key("Intel® Core™ i7-1260P Processor") == model_key("12th Gen Intel(R) Core(TM) i7-1260P") == "i7 1260p"
    assert model_key("Intel® Xeon® Processor E5-2680 v4 (35M Cache, 2.40 GHz)") == "xeon e5 2680 v4"


def test_arks_memory_texts_give_the_newest_socketed_memory():
    """The rule the Intel rows were built by (benchmarks/cpu_rated_memory.py), on ARK's texts as its pages write them."""
    from cpu_rated_memory import memory_kinds, rated

    assert rated(memory_kinds("Up to LPDDR5/x 7467 MT/s Up to DDR5 5600 MT/s")) == ("DDR5", 5600)
    assert rated(memory_kinds("Up to DDR5 4800 MT/s Up to DDR4 3200 MT/s Up to LPDDR5 5200 MT/s")) == ("DDR5", 4800)
    assert rated(memory_kinds("DDR3L-1333. 1600; LPDDR3-1333. 1600")) == ("DDR3", 1600)
    assert rated(memory_kinds("LPDDR5X 8533 MT/s")) == ("LPDDR5X", 8533)
    assert rated(memory_kinds("DDR4/LPDDR4 upto 2400 MT/s")) == ("DDR4", 2400)  # Gemini Lake: one speed, two kinds
    assert rated(memory_kinds("DDR3/L/-RS 1333/1600")) == ("DDR3", 1600)  # Ivy Bridge mobile
    assert rated(memory_kinds("Up to 3200 MT/s")) == ("DDR", 3200)  # Tiger Lake H: a speed, no kind


def test_a_profile_without_bandwidth_plans_on_its_cpus_rating_and_says_so(tmp_path):
    """A Ryzen 9 7950X desktop given without [memory] bandwidth: planned on its rated DDR5-5200 (83.2 GB/s), not on one
    DDR4-3200 channel (25.6), which priced it 3x slow; the plan's first assumption names the rating and asks for the
    figure. 14B Q4_K_M decodes at 5-8 tok/s there (published 7950X figures with DDR5-6000: about 7). On an assumed
    bandwidth the slow end is 0.7 of the prediction (speed_model.json `assumed_bandwidth_uncertainty`: nine in ten
    published CPU rows on their CPU's rating reached 0.71 of it), so the plan does not bet the 5 tok/s floor on the
    14B: it picks the 7B, 12 tok/s and at least 8.4; the same machine with its bandwidth given keeps the 0.9 slow end."""
    path = tmp_path / "ryzen.toml"
    path.write_text('name = "7950X desktop"\nsystem = "Linux"\nmachine = "x86_64"\n[cpu]\n'
                    'brand = "AMD Ryzen 9 7950X 16-Core Processor"\narch = "x86_64"\nphysical_cores = 16\n'
                    'logical_cores = 32\nflags = ["avx", "avx2", "fma", "f16c", "avx512f", "avx512bw", "avx512_vnni"]\n'
                    '[memory]\ntotal = "64 GiB"\n[sources]\ncpu = "amd.com"\nmemory = "amd.com"\n')
    result = plan(load_profile(str(path)))
    assumed = result.assumptions[0]
    assert assumed.startswith("host memory bandwidth unknown: assumed 83.2 GB/s (the rated memory of the AMD Raphael")
    assert assumed.endswith("give it as [memory] bandwidth in the profile")
    fourteen = plan(load_profile(str(path)), Constraints(size="14B", quant="q4_k_m")).chosen
    assert fourteen.speed.terms[0].bandwidth_bytes_per_s == 83.2e9
    assert 5 <= fourteen.tg_tps <= 8
    assert fourteen.tg_tps_low == pytest.approx(0.7 * fourteen.tg_tps)
    assert (result.chosen.size, result.chosen.quant) == ("7B", "q4_k_m") and result.chosen.tg_tps_low >= 5
    path.write_text(path.read_text().replace('total = "64 GiB"', 'total = "64 GiB"\nbandwidth = "83.2 GB/s"'))
    given = plan(load_profile(str(path)), Constraints(size="14B", quant="q4_k_m")).chosen
    assert given.tg_tps == pytest.approx(fourteen.tg_tps) and given.tg_tps_low == pytest.approx(0.9 * given.tg_tps)
    path.write_text(path.read_text().replace('bandwidth = "83.2 GB/s"\n', "").replace('"avx512_vnni"]', '"avx512_vnni", "hypervisor"]'))
    vm = plan(load_profile(str(path)))  # lscpu's flags of a VM: its share of a host, not the part's rating
    assert vm.assumptions[0].startswith("host memory bandwidth unknown: assumed 25.6 GB/s")


def test_explain_speed_says_why_the_slow_end_is_wide(tmp_path):
    """`plan --explain-speed` gives the slow end and, where a device the plan runs on has an assumed bandwidth, says so."""
    from click.testing import CliRunner

    from qwenctl.cli import cli

    laptop = Path(__file__).resolve().parents[1] / "profiles" / "laptop-16gb-cpu-only.toml"
    unknown = tmp_path / "laptop.toml"
    unknown.write_text("".join(x for x in laptop.read_text().splitlines(keepends=True) if not x.startswith("bandwidth")))
    for profile, share, why in ((str(laptop), "0.90", False), ("rtx-4060-8gb", "0.90", False), (str(unknown), "0.70", True)):
        result = CliRunner().invoke(cli, ["plan", "--profile", profile, "--explain-speed"])
        assert result.exit_code == 0, result.output
        line = next(x for x in result.output.splitlines() if x.strip().startswith("slow end:"))
        assert f"{share} of the estimate" in line and ("assumed" in line) == why


def test_a_virtual_machine_is_not_planned_on_its_parts_rating():
    """The development VM's capture (cpuinfo's `hypervisor` flag) under the name of AWS's Genoa part: a VM reads a share
    of its host's 12 channels (SpareCores' 8-vCPU m7a.2xlarge: 40 GB/s by bw_mem), so it keeps the fallback and its
    measurement, not the part's 460.8 GB/s; the same capture without the flag (bare metal) is planned on the rating."""
    from hardware_captures import document, replay

    from qwenctl.hardware import detect
    from qwenctl.machine import host_device

    vm = document("linux-x86-no-gpu.json")
    vm["files"]["/proc/cpuinfo"] = vm["files"]["/proc/cpuinfo"].replace("model name\t: AMD EPYC",
                                                                        "model name\t: AMD EPYC 9R14 96-Core Processor")
    vm["measured"] = {}  # no read test recorded for it
    guest = detect(replay(vm))
    assert guest.cpu.virtual_machine and guest.memory.bandwidth_bytes_per_s is None
    assert host_device(guest).bandwidth_bytes_per_s == 25.6e9
    vm["files"]["/proc/cpuinfo"] = vm["files"]["/proc/cpuinfo"].replace(" hypervisor", "")
    metal = detect(replay(vm))
    assert not metal.cpu.virtual_machine and host_device(metal).bandwidth_bytes_per_s == 460.8e9
