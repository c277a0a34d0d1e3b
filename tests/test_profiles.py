import sys
from pathlib import Path

import pytest

from qwenctl.errors import ExitCode, QwenctlError
from qwenctl.hardware.facts import AppleSilicon, Memory
from qwenctl.profiles import hardware_from_profile, list_profiles, load_profile

if sys.version_info >= (3, 11):
    import tomllib
else:
    import tomli as tomllib

ROOT = Path(__file__).resolve().parent.parent
EXPECTED = {
    "raspberry-pi-4-4gb", "raspberry-pi-5-8gb", "raspberry-pi-5-16gb", "orange-pi-5-16gb", "laptop-16gb-cpu-only", "gtx-1050-4gb-laptop",
    "rtx-3060-12gb", "rtx-4060-8gb", "rtx-4090-24gb", "macbook-air-m1-8gb", "macbook-air-m2-16gb",
    "macbook-pro-m3-max-64gb", "macbook-pro-m5-16gb", "macbook-neo-8gb", "jetson-orin-nano-8gb", "jetson-agx-thor-128gb", "dgx-spark-128gb", "a100-80gb", "h100-80gb",
    "steam-deck-oled-16gb", "framework-desktop-128gb", "aws-g4dn-xlarge-t4",
    # multi-GPU hosts and clusters of RPC workers (tests/test_profiles_cluster.py)
    "h200-141gb", "rtx-3090-x2-24gb", "h200-x2-141gb", "h200-x8-141gb", "mac-studio-m2-ultra-192gb",
    "raspberry-pi-5-8gb-x4-cluster", "mac-studio-m2-ultra-192gb-x2-cluster",
}

GOOD = """
name = "Test box"
system = "Linux"
machine = "x86_64"
[cpu]
brand = "Test"
arch = "x86_64"
physical_cores = 4
[memory]
total = "16 GiB"
bandwidth = "51.2 GB/s"
[[gpu]]
name = "NVIDIA GeForce RTX 3060"
memory = "12 GiB"
bandwidth = "360 GB/s"
compute_capability = [8, 6]
[sources]
cpu = "spec sheet"
memory = "spec sheet"
gpu = ["spec sheet", "whitepaper"]
"""


def test_all_required_profiles_ship():
    assert {p.name for p in list_profiles()} == EXPECTED


def test_each_profile_loads_with_sources():
    for info in list_profiles():
        hw = load_profile(info.name)
        assert hw.name and hw.sources
        assert isinstance(hw.memory, Memory) and hw.memory.bandwidth_bytes_per_s


def test_profile_values():
    hw = load_profile("rtx-4060-8gb")
    assert hw.gpus[0].memory_total_bytes == 8 * 2**30
    assert hw.gpus[0].bandwidth_bytes_per_s == 272 * 10**9
    m2 = load_profile("macbook-air-m2-16gb")
    assert isinstance(m2.apple, AppleSilicon)
    assert m2.apple.gpu_wired_limit_bytes == pytest.approx(11453.25e6, rel=1e-5)  # ggml-metal's log on 16 GiB Macs
    orin = load_profile("jetson-orin-nano-8gb").gpus[0]
    assert orin.unified_memory and orin.board == "NVIDIA Jetson Orin Nano Developer Kit"  # from the profile's [board]
    from qwenctl.hardware import nvidia_specs

    assert (nvidia_specs.nvidia_peaks(orin).sm_count, nvidia_specs.nvidia_peaks(orin).clock_hz) == (8, 625e6)  # not the AGX Orin's


def test_profile_by_path(tmp_path):
    f = tmp_path / "box.toml"
    f.write_text(GOOD)
    hw = load_profile(str(f))
    assert hw.name == "Test box" and hw.gpus[0].memory_total_bytes == 12 * 2**30
    assert "gpu: whitepaper" in hw.sources


@pytest.mark.parametrize(
    "edit, field",
    [
        (lambda s: s.replace('total = "16 GiB"\n', ""), "memory.total"),
        (lambda s: s.replace('"16 GiB"', '"sixteen"'), "memory.total"),
        (lambda s: s.replace('"51.2 GB/s"', '"51.2 GB"'), "memory.bandwidth"),
        (lambda s: s.replace("physical_cores = 4", 'physical_cores = "4"'), "cpu.physical_cores"),
        (lambda s: s.replace("[8, 6]", "[8]"), "gpu[0].compute_capability"),
        (lambda s: s.replace('gpu = ["spec sheet", "whitepaper"]\n', ""), "sources.gpu"),
        (lambda s: s.replace('name = "Test box"\n', ""), "name"),
    ],
)
def test_malformed_profile_names_file_and_field(tmp_path, edit, field):
    f = tmp_path / "bad.toml"
    f.write_text(edit(GOOD))
    with pytest.raises(QwenctlError) as e:
        hardware_from_profile(f)
    assert e.value.code == ExitCode.BAD_INPUT
    assert str(f) in e.value.message and f"'{field}'" in e.value.message


def test_not_toml_and_missing(tmp_path):
    f = tmp_path / "broken.toml"
    f.write_text("name = \n")
    with pytest.raises(QwenctlError) as e:
        hardware_from_profile(f)
    assert "not valid TOML" in e.value.message and e.value.code == ExitCode.BAD_INPUT
    with pytest.raises(QwenctlError) as e:
        load_profile("no-such-device")
    assert e.value.code == ExitCode.NOT_FOUND


def test_every_subpackage_is_listed_for_the_wheel():
    """pyproject lists packages explicitly (profiles/ is mapped in); a forgotten subpackage would silently drop out.
    A folder of data files alone (hardware/data/) counts too: Python imports it as a namespace package, and
    setuptools warns at every install about one that is not listed."""
    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    on_disk = {
        ".".join(p.parent.relative_to(ROOT).parts)
        for p in (ROOT / "qwenctl").rglob("*.*")
        if p.is_file() and "__pycache__" not in p.parts
    }
    assert on_disk - listed == set()
    assert "qwenctl.bundled_profiles" in listed


@pytest.mark.parametrize("gib", [16, 32, 36, 48, 64])
def test_a_mac_gets_the_same_gpu_limit_from_detect_and_from_a_profile(tmp_path, gib):
    """One rule for Metal's default working set (hardware/data/apple_silicon.json): 2/3 of RAM up to
    32 GiB, 3/4 from 36 GiB (36 and 48 GiB Macs logged 28991.03 and 38654.71 MB in llama.cpp)."""
    from hardware_captures import document, replay

    from qwenctl.hardware import detect

    doc = document("apple-m3-max-36gb.json")
    key = next(k for k in doc["commands"] if k.startswith("sysctl"))
    doc["commands"][key] = doc["commands"][key].replace(f"hw.memsize: {36 * 2**30}", f"hw.memsize: {gib * 2**30}")
    detected = detect(replay(doc)).apple
    profile = tmp_path / "mac.toml"
    profile.write_text(f'''name = "a Mac"
system = "Darwin"
machine = "arm64"
[cpu]
brand = "Apple M3 Max"
arch = "arm64"
physical_cores = 14
logical_cores = 14
[memory]
total = "{gib} GiB"
[apple]
chip = "Apple M3 Max"
performance_cores = 10
efficiency_cores = 4
gpu_cores = 30
unified_memory = "{gib} GiB"
bandwidth = "300 GB/s"
[sources]
cpu = "test"
memory = "test"
apple = "test"
''')
    profiled = load_profile(str(profile)).apple
    assert detected.unified_memory_bytes == gib * 2**30
    assert detected.gpu_wired_limit_bytes == profiled.gpu_wired_limit_bytes
    assert profiled.gpu_wired_limit_bytes == int(gib * 2**30 * (2 / 3 if gib <= 32 else 0.75))


def test_a_profile_leaves_to_the_tables_what_they_know(tmp_path):
    """A machine on paper needs no more than a detected one: a GPU the specification table names takes its compute
    capability and bandwidth from there (as NVML would give them), an Apple chip its memory from [memory] and its GPU
    from the chip table; what no table settles is planned on a stated assumption, never refused or guessed silently."""
    from qwenctl.plan import plan

    f = tmp_path / "laptop.toml"
    f.write_text(GOOD.replace('name = "NVIDIA GeForce RTX 3060"', 'name = "NVIDIA GeForce RTX 3060 Laptop GPU"')
                 .replace('memory = "12 GiB"\nbandwidth = "360 GB/s"\ncompute_capability = [8, 6]\n', 'memory = "6 GiB"\n'))
    hw = load_profile(str(f))
    (gpu,) = hw.gpus
    assert (gpu.compute_capability, gpu.bandwidth_bytes_per_s) == ((8, 6), None)  # bandwidth: the row prices it
    result = plan(hw)
    gpu_speed = result.chosen.speed.terms[0]
    assert gpu_speed.bandwidth_bytes_per_s == 336e9  # the RTX 3060 Laptop GPU's row, not the 200 GB/s fallback
    assert not result.assumptions

    mac = tmp_path / "mac.toml"
    mac.write_text('name = "M3 Pro"\nsystem = "Darwin"\nmachine = "arm64"\n[cpu]\nbrand = "Apple M3 Pro"\narch = "arm64"\n'
                   'physical_cores = 11\n[memory]\ntotal = "18 GiB"\n[apple]\nchip = "Apple M3 Pro"\n'
                   '[sources]\ncpu = "apple.com"\nmemory = "apple.com"\napple = "apple.com"\n')
    hw = load_profile(str(mac))
    assert isinstance(hw.apple, AppleSilicon) and hw.apple.unified_memory_bytes == 18 * 2**30
    result = plan(hw)
    assert result.assumptions == ("Apple M3 Pro: GPU core count unknown, assumed the smallest configuration's 14",)
    assert result.chosen.speed.terms[0].bandwidth_bytes_per_s == 150e9  # both M3 Pro bins: 150 GB/s

    cpu_only = tmp_path / "desktop.toml"
    cpu_only.write_text(GOOD.split("[[gpu]]")[0].replace('bandwidth = "51.2 GB/s"\n', "")
                        + '[sources]\ncpu = "spec sheet"\nmemory = "spec sheet"\n')
    assumed = plan(load_profile(str(cpu_only))).assumptions[0]  # (then its clock, which "Test" does not name)
    assert assumed.startswith("host memory bandwidth unknown: assumed 25.6 GB/s")
    assert assumed.endswith("give it as [memory] bandwidth in the profile") and "detect --measure" not in assumed


def test_a_profile_gives_a_gpus_power_limit_as_nvml_would(tmp_path):
    """A laptop's RTX 2070 shares its desktop card's name; the TGP its owner reads from `nvidia-smi -q -d POWER` tells
    them apart, as NVML's limit does live: the laptop part's 36 SMs at 1,440 MHz. A limit that is not a number of watts
    is refused with its field named."""
    from qwenctl.hardware import nvidia_specs

    laptop = GOOD.replace('name = "NVIDIA GeForce RTX 3060"\nmemory = "12 GiB"\nbandwidth = "360 GB/s"\ncompute_capability = [8, 6]\n',
                          'name = "NVIDIA GeForce RTX 2070"\nmemory = "8 GiB"\npower_limit_w = 115\n')
    f = tmp_path / "laptop.toml"
    f.write_text(laptop)
    (gpu,) = load_profile(str(f)).gpus
    assert (gpu.power_limit_w, gpu.compute_capability) == (115.0, (7, 5))
    assert nvidia_specs.gpu_spec_of(gpu)["key"] == "rtx-2070-laptop"
    for not_watts in ('"115 W"', "inf", "nan", "0"):  # TOML writes an infinity and a NaN as bare words
        f.write_text(laptop.replace("power_limit_w = 115", f"power_limit_w = {not_watts}"))
        with pytest.raises(QwenctlError) as e:
            hardware_from_profile(f)
        assert "'gpu[0].power_limit_w'" in e.value.message


def test_a_cloud_t4_profile_is_priced_as_its_nvidia_smi_describes_the_card(tmp_path):
    """The g4dn.xlarge profile gives what the instance's nvidia-smi says (70 W, ECC on), as NVML would live: its SMs at
    the clock its power holds (1,218 MHz, 0.77 of the rated boost) and its GDDR6 at gddr_ecc_read_share of 320 GB/s.
    The plan is 14B Q4_K_M on the GPU at about 25 tok/s; SpareCores measured phi-4 (14.7B, Q4_K_M, a build of February
    2025) on the same instance at 18.9 (docs/planning.md, "Cloud GPUs with their nvidia-smi captures": the T4's decode
    stays over-predicted). Its PCIe link, gen 3 at x8, is what a prompt of host layers would copy over. An ecc that is
    not true or false, or a pcie that is not [generation, lanes], is refused with its field named."""
    from qwenctl.device_speed import load_speed_model
    from qwenctl.machine import cuda_device
    from qwenctl.plan import plan

    hw = load_profile("aws-g4dn-xlarge-t4")
    (gpu,) = hw.gpus
    assert (gpu.power_limit_w, gpu.ecc_enabled, gpu.pcie_link_gen, gpu.pcie_link_width) == (70.0, True, 3, 8)
    dev = cuda_device(gpu)
    assert dev.clock_hz == pytest.approx(1218e6, rel=1e-3)
    assert dev.bandwidth_bytes_per_s == pytest.approx(320e9 * load_speed_model()["gddr_ecc_read_share"]["share"])
    chosen = plan(hw).chosen
    assert (chosen.size, chosen.quant, chosen.backend, chosen.n_gpu_layers) == ("14B", "q4_k_m", "llama.cpp", -1)
    assert 22 <= chosen.tg_tps <= 28
    f = tmp_path / "box.toml"
    f.write_text(GOOD.replace('compute_capability = [8, 6]\n', 'compute_capability = [8, 6]\necc = "on"\n'))
    with pytest.raises(QwenctlError) as e:
        hardware_from_profile(f)
    assert "'gpu[0].ecc'" in e.value.message
    for bad in ("[3]", "[3, 0]", '["3", 8]', "[true, 8]"):
        f.write_text(GOOD.replace('compute_capability = [8, 6]\n', f'compute_capability = [8, 6]\npcie = {bad}\n'))
        with pytest.raises(QwenctlError) as e:
            hardware_from_profile(f)
        assert "'gpu[0].pcie'" in e.value.message
