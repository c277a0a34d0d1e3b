import dataclasses
import re

import pytest
from hardware_captures import document, replay

from qwenctl.hardware import cpu, detect
from qwenctl.hardware._parse import ParseError
from qwenctl.hardware.facts import Absent, Cpu
from qwenctl.hardware.snapshot import command_key
from qwenctl.plan import plan


@pytest.mark.parametrize(
    "capture, brand, arch, physical, logical, flags",
    [
        ("linux-x86-no-gpu.json", "AMD EPYC", "x86_64", 2, 2,
         ("avx", "avx2", "avx512f", "avx512bw", "avx512_vnni", "avx_vnni", "fma", "f16c")),
        ("raspberry-pi-5-8gb.json", "ARM Cortex-A76", "arm64", 4, 4, ("neon", "fp16", "dotprod")),
        ("raspberry-pi-4-8gb.json", "ARM Cortex-A72", "arm64", 4, 4, ("neon",)),
        # 8 Cortex-A720s and 4 Cortex-A520s, CPU 1-4 the little ones: named by the cores most CPUs are
        ("cix-p1-cd8180-cpuinfo.json", "ARM Cortex-A720", "arm64", 12, 12, ("neon", "fp16", "dotprod", "i8mm", "sve", "sve2")),
        # an RK3588: 4 Cortex-A55 (CPUs 0-3), then 4 Cortex-A76: named by its performance cores
        ("radxa-rock-5b-rk3588-cpuinfo.json", "ARM Cortex-A76", "arm64", 8, 8, ("neon", "fp16", "dotprod")),
        ("apple-m3-max-36gb.json", "Apple M3 Max", "arm64", 14, 14, ("neon", "fp16", "dotprod", "i8mm")),
        ("apple-m2-16gb.json", "Apple M2", "arm64", 8, 8, ("neon", "fp16", "dotprod", "i8mm")),
        ("apple-m1-8gb-bigsur.json", "Apple processor", "arm64", 8, 8, ("neon",)),
        # a Pi 4 under 32-bit Raspberry Pi OS (armv7l): a 32-bit Arm kernel, named by its CPU part as on arm64
        ("raspberry-pi-4-2gb-32bit.json", "ARM Cortex-A72", "arm", 4, 4, ("neon",)),
        # a Pi 2: the 32-bit Armv7 cores are named by their parts too (0xc07: Cortex-A7)
        ("raspberry-pi-2-1gb.json", "ARM Cortex-A7", "arm", 4, 4, ("neon",)),
        # RISC-V: a hart's `uarch` (or `model name`) names it, the V among its ISA string's single letters is RVV 1.0
        ("starfive-jh7110-cpuinfo.json", "SiFive U74-MC", "riscv64", 4, 4, ()),
        ("eswin-eic7700x-cpuinfo.json", "ESWIN EIC770X", "riscv64", 4, 4, ()),  # "rv64imafdch": H, the hypervisor
        ("spacemit-k1-cpuinfo.json", "Spacemit(R) X60", "riscv64", 8, 8, ("rvv",)),
        # a T-Head kernel prints its RVV 0.7.1 as a bare V ("rv64imafdcvsu", cpu-vector 0.7.1): not what llama.cpp's
        # RVV kernels run on
        ("thead-th1520-cpuinfo.json", "unknown RISC-V CPU", "riscv64", 4, 4, ("xtheadvector",)),
        # Windows: wmic's Win32_Processor, the ISA flags from llama.cpp's own system info (its Haswell CPU backend)
        ("windows-i7-4710mq.json", "Intel(R) Core(TM) i7-4710MQ CPU @ 2.50GHz", "x86_64", 4, 8, ("avx", "avx2", "fma", "f16c")),
    ],
    ids=lambda v: v if isinstance(v, str) and v.endswith(".json") else None,
)
def test_cpu_on_captured_machines(capture, brand, arch, physical, logical, flags):
    got = cpu.probe(replay(capture))
    assert (got.brand, got.arch, got.physical_cores, got.logical_cores, got.flags) == (
        brand, arch, physical, logical, flags)


def test_apple_clusters_come_from_perflevels_and_are_absent_before_macos_12():
    assert (cpu.probe(replay("apple-m3-max-36gb.json")).performance_cores,
            cpu.probe(replay("apple-m3-max-36gb.json")).efficiency_cores) == (10, 4)
    old = cpu.probe(replay("apple-m1-8gb-bigsur.json"))
    assert old.performance_cores is None and old.efficiency_cores is None


DESKTOP_CPUINFO = """processor\t: {n}
vendor_id\t: GenuineIntel
model name\t: Intel(R) Core(TM) i7-8850H CPU @ 2.60GHz
physical id\t: 0
siblings\t: 12
core id\t\t: {core}
cpu cores\t: 6
flags\t\t: fpu sse sse2 ssse3 fma sse4_1 sse4_2 avx f16c avx2 bmi2

"""


def test_hyperthreads_count_once_as_physical_cores():
    # 6 cores x 2 threads, numbered as Linux numbers them (thread n and n+6 share core n).
    text = "".join(DESKTOP_CPUINFO.format(n=n, core=n % 6) for n in range(12))
    got = cpu.parse_cpuinfo(text, "x86_64")
    assert (got.physical_cores, got.logical_cores) == (6, 12)
    assert got.flags == ("avx", "avx2", "fma", "f16c")


def test_32_bit_arm_features_are_understood():
    # Raspberry Pi 4 on a 32-bit kernel (hrw/arm-socs-table#28): `neon`, model name ARMv7.
    block = ("processor\t: 0\nmodel name\t: ARMv7 Processor rev 3 (v7l)\nFeatures\t: half thumb fastmult vfp edsp neon "
             "vfpv3 tls vfpv4 idiva idivt vfpd32 lpae evtstrm crc32\nCPU implementer\t: 0x41\nCPU part\t: 0xd08\n\n")
    got = cpu.parse_cpuinfo(block, "armv7l")
    assert got.brand == "ARM Cortex-A72" and got.flags == ("neon",) and got.arch == "armv7l"


def test_garbage_cpuinfo_is_a_parse_error_and_detect_reports_it_absent():
    with pytest.raises(ParseError):
        cpu.parse_cpuinfo("not cpuinfo at all", "x86_64")
    doc = document("linux-x86-no-gpu.json")
    doc["files"]["/proc/cpuinfo"] = "\x00\x00 truncated"
    hw = detect(replay(doc))
    assert hw.cpu == Absent("unexpected input: /proc/cpuinfo lists no processor")
    assert isinstance(hw.memory, type(detect(replay("linux-x86-no-gpu.json")).memory))


def test_unreadable_cpuinfo_is_absent_with_the_reason():
    doc = document("linux-x86-no-gpu.json")
    doc["files"]["/proc/cpuinfo"] = {"error": "EACCES"}
    hw = detect(replay(doc))
    assert hw.cpu == Absent("cannot read /proc/cpuinfo: Permission denied")


def test_a_system_without_a_cpu_probe_is_absent_not_guessed():
    doc = document("linux-x86-no-gpu.json")
    doc["platform"] = {"system": "FreeBSD", "machine": "amd64"}
    assert cpu.probe(replay(doc)) == Absent("no CPU probe for FreeBSD yet")
    assert isinstance(cpu.probe(replay("linux-x86-no-gpu.json")), Cpu)


def test_cpufreq_maximum_is_the_clock_and_its_absence_is_none():
    """sysfs gives kHz; a VM without a cpufreq driver has no such file, and the speed model then says it assumed."""
    from hardware_captures import document, replay

    from qwenctl.hardware import cpu as cpu_probe

    doc = document("linux-x86-no-gpu.json")
    assert cpu_probe.max_clock_mhz(replay(doc)) is None
    doc["files"][cpu_probe.CPUFREQ_MAX.format(0)] = "4700000\n"
    assert cpu_probe.max_clock_mhz(replay(doc)) == 4700
    assert cpu_probe.probe(replay(doc)).max_clock_mhz == 4700


def test_the_clock_is_the_all_core_base_not_the_one_core_turbo():
    """Real sysfs values: an i7-7820HQ's intel_pstate base_frequency 2900000 and cpuinfo_max_freq 3900000 (kHz; a
    public perf-notes file, code-index file id 49065403067); a Ryzen 9 7950X's acpi_cppc/nominal_freq 4501 (MHz,
    "matching the rated 4.5 GHz base", code-index file id 58583730722); a broken BIOS's nominal_freq 0
    (amd-pstate's patch, linux-pm, code-index file id 39546067532). The CPU speed model was fitted on base clocks:
    the turbo would price every prompt 1.3-2.2x too fast on a laptop."""
    from qwenctl.hardware import cpu_specs
    from qwenctl.machine import host_device

    doc = document("linux-x86-no-gpu.json")
    doc["files"][cpu.CPUFREQ_MAX.format(0)] = "3900000\n"
    doc["files"][cpu.CPU_BASE.format(0)] = "2900000\n"
    intel = cpu.probe(replay(doc))
    assert (intel.base_clock_mhz, intel.max_clock_mhz) == (2900, 3900)
    core = cpu_specs.cpu_core(intel, None)
    assert core.clock_hz == 2.9e9 and not core.assumed

    del doc["files"][cpu.CPU_BASE.format(0)]
    doc["files"][cpu.CPPC_NOMINAL.format(0)] = "4501\n"
    assert cpu.base_clock_mhz(replay(doc)) == 4501
    doc["files"][cpu.CPPC_NOMINAL.format(0)] = "0\n"  # unknown, not zero: cpufreq's maximum is the next witness
    amd = cpu.probe(replay(doc))
    assert amd.base_clock_mhz is None and cpu_specs.cpu_core(amd, None).clock_hz == 3.9e9

    from qwenctl.hardware.facts import Hardware, Memory
    hw = Hardware("Linux", "x86_64", intel, Memory(16 * 2**30, 8 * 2**30, 0, bandwidth_bytes_per_s=int(38.4e9)),
                  Absent("-"), Absent("-"), Absent("-"), Absent("-"), Absent("-"))
    base = host_device(hw)
    turbo = host_device(dataclasses.replace(hw, cpu=dataclasses.replace(intel, base_clock_mhz=None)))
    assert turbo.matrix_ops["int8"] / base.matrix_ops["int8"] == pytest.approx(3.9 / 2.9)


def test_a_hybrid_intel_cpu_runs_on_its_performance_cores():
    """A real Raptor Lake i7-1370P (hwloc's capture): 6 P-cores with two threads each and 8 E-cores, told apart by
    each CPU's base_frequency. llama.cpp's own default runs a hybrid CPU's P-cores only; qwenctl passed all 14
    physical cores, E-cores too, and priced 14 threads at the P-cores' rate."""
    from qwenctl.hardware.facts import Hardware, Memory
    from qwenctl.machine import host_device, threads

    doc = document("linux-x86-hybrid-i7-1370p.json")
    found = cpu.probe(replay(doc))
    assert (found.physical_cores, found.logical_cores, found.performance_cores, found.efficiency_cores) == (14, 20, 6, 8)
    assert found.base_clock_mhz == 1900  # the P-cores' (CPU 0's), not the 5.0 GHz turbo
    hw = Hardware("Linux", "x86_64", found, Memory(32 * 2**30, 16 * 2**30, 0, bandwidth_bytes_per_s=int(83.2e9)),
                  Absent("-"), Absent("-"), Absent("-"), Absent("-"), Absent("-"))
    assert threads(hw) == 6
    host = host_device(hw)
    assert (host.compute_units, host.clock_hz) == (6, 1.9e9)

    # the kernel's PMU lists, where published, decide first (cpulist format as tools/perf's intel-hybrid.txt shows)
    doc["files"][cpu.PMU_P_CORES] = "0-11\n"
    doc["files"][cpu.PMU_E_CORES] = "12-19\n"
    for c in range(20):
        del doc["files"][cpu.CPU_BASE.format(c)]
    assert cpu.hybrid_cores(replay(doc), doc["files"]["/proc/cpuinfo"]) == (6, 8)
    # cores that are alike (every base the same, or no intel_pstate at all): no kinds
    alike = document("linux-x86-hybrid-i7-1370p.json")
    for c in range(20):
        alike["files"][cpu.CPU_BASE.format(c)] = "1900000\n"
    assert cpu.probe(replay(alike)).performance_cores is None
    assert cpu.probe(replay("linux-x86-no-gpu.json")).performance_cores is None


def test_arm_cores_take_the_throughput_of_their_pipe_count_not_of_their_isa():
    """A Cortex-A720 has i8mm like a Neoverse V1 but two 128-bit SIMD pipes, not four (LLVM's scheduling models):
    it must get the A76/N1 row, and "Cortex-A72" must not match inside "Cortex-A720"."""
    from qwenctl.hardware import cpu_specs

    cix = cpu.probe(replay("cix-p1-cd8180-cpuinfo.json"))
    assert cpu_specs.cpu_core(cix, None).family == "cpu-arm-cortex-a76-n1"
    for brand, family in (("ARM Cortex-A72", "cpu-arm-cortex-a72"), ("ARM Neoverse-N2", "cpu-arm-cortex-a76-n1"),
                          ("ARM Cortex-X4", "cpu-arm-neoverse-v2"), ("ARM Neoverse-V1", "cpu-arm-neoverse-v1")):
        named = Cpu(brand=brand, arch="arm64", physical_cores=4, logical_cores=4, flags=("neon", "dotprod", "i8mm"))
        assert cpu_specs.cpu_core(named, None).family == family, brand


@pytest.mark.parametrize("capture, kinds, threads, clock_mhz", [
    ("radxa-rock-5b-rk3588-cpuinfo.json", (4, 4), 4, 2400),  # CPU 0 is an A55 at 1,800 MHz: not the A76s' clock
    ("cix-p1-cd8180-cpuinfo.json", (8, 4), 8, None),  # its capture has no cpufreq
    ("raspberry-pi-5-8gb.json", (None, None), 4, None),  # four A76s: all alike
])
def test_arm_big_little_runs_on_its_big_cores_at_their_clock(capture, kinds, threads, clock_mhz):
    """Real /proc/cpuinfo of an RK3588 (Radxa ROCK 5B, with each CPU's cpufreq limits) and of a Cix P1: their in-order
    LITTLE cores (Cortex-A55, A520) are efficiency cores, left out of llama.cpp's threads as llama.cpp leaves x86
    E-cores out ("efficiency cores harm lockstep threading"), and the clock priced is a big core's."""
    from qwenctl.hardware import cpu_specs
    from qwenctl.hardware.facts import Absent, Hardware
    from qwenctl.machine import threads as machine_threads

    got = cpu.probe(replay(capture))
    assert (got.performance_cores, got.efficiency_cores) == kinds
    assert got.max_clock_mhz == clock_mhz
    hw = Hardware("Linux", "aarch64", got, *(Absent("-"),) * 6)
    assert machine_threads(hw) == threads
    if clock_mhz:
        assert cpu_specs.cpu_core(got, None).clock_hz == clock_mhz * 1e6


def test_an_n_series_intel_is_priced_as_the_gracemont_cores_it_has_not_by_its_flags():
    """An N100 ("Intel(R) N100" in /proc/cpuinfo) has AVX2 and AVX-VNNI like a Golden Cove P-core, but its four Gracemont
    cores run FP32 on two 128-bit pipes (half the P-core's rate) and int8 dot products on one (VPDPBUSD ymm every 2
    cycles as two halves, where a Golden Cove issues two a cycle: uops.info's figures): a quarter. The published N100
    prompt was priced at 4.7x its measured 6.5 tok/s with the P-core's rates, 2.36x with two int8 pipes, 1.18x now."""
    from qwenctl.hardware import cpu_specs

    flags = ("avx", "avx2", "fma", "f16c", "avx_vnni")
    n100 = cpu_specs.cpu_core(Cpu(brand="Intel(R) N100", arch="x86_64", physical_cores=4, logical_cores=4, flags=flags), None)
    p_core = cpu_specs.cpu_core(Cpu(brand="12th Gen Intel(R) Core(TM) i7-12700H", arch="x86_64", physical_cores=14,
                                logical_cores=20, flags=flags), None)
    assert (n100.family, p_core.family) == ("cpu-x86-gracemont", "cpu-x86-avx-vnni-256")
    assert (n100.int8_per_cycle, n100.fp32_per_cycle) == (p_core.int8_per_cycle / 4, p_core.fp32_per_cycle / 2)
    assert cpu_specs.cpu_core(Cpu(brand="Intel(R) Core(TM) i3-N305", arch="x86_64", physical_cores=8, logical_cores=8,
                              flags=flags), None).family == "cpu-x86-gracemont"


def test_a_vm_without_cpufreq_reports_the_tsc_rate_of_cpuinfo_as_its_clock():
    """The development VM's verbatim capture (hypervisor flag, no cpufreq driver, "cpu MHz: 2596.122"): the kernel's
    TSC rate, the host's nominal clock, where the speed model assumed a typical 3.5 GHz before. A cpufreq driver, or
    bare metal (where the line is an idle core's current clock), leaves it unread."""
    from qwenctl.hardware import cpu_specs

    vm = cpu.probe(replay("linux-x86-no-gpu.json"))
    assert (vm.base_clock_mhz, vm.max_clock_mhz) == (2596, None)
    core = cpu_specs.cpu_core(vm, None)
    assert core.clock_hz == 2596e6 and not any("clock" in a for a in core.assumed)
    with_driver = document("linux-x86-no-gpu.json")
    with_driver["files"][cpu.CPUFREQ_MAX.format(0)] = "3500000\n"
    assert cpu.probe(replay(with_driver)).base_clock_mhz is None
    bare = document("linux-x86-no-gpu.json")
    bare["files"]["/proc/cpuinfo"] = bare["files"]["/proc/cpuinfo"].replace(" hypervisor", "")
    assert cpu.probe(replay(bare)).base_clock_mhz is None


def _cloud_vm(name: str, family: int, model: int, mhz: str, cpufreq_max_khz: str | None = None,
              flags: str | None = None) -> dict:
    """The development VM's capture under the name, CPUID and TSC rate of another cloud VM's part (from that VM's own
    lscpu in SpareCores' sc-inspector-data), with the cpufreq maximum its hypervisor shows, if any, and its flags."""
    doc = document("linux-x86-no-gpu.json")
    info = doc["files"]["/proc/cpuinfo"]
    if flags:
        info = re.sub(r"(?m)^flags\t\t: .*$", lambda _: f"flags\t\t: {flags}", info)
    for old, value in (("vendor_id\t: AuthenticAMD", "vendor_id\t: GenuineIntel"), ("cpu family\t: 26", f"cpu family\t: {family}"),
                       ("model\t\t: 2\n", f"model\t\t: {model}\n"), ("model name\t: AMD EPYC", f"model name\t: {name}"),
                       ("cpu MHz\t\t: 2596.122", f"cpu MHz\t\t: {mhz}")):
        assert old in info
        info = info.replace(old, value)
    doc["files"]["/proc/cpuinfo"] = info
    if cpufreq_max_khz:
        doc["files"][cpu.CPUFREQ_MAX.format(0)] = cpufreq_max_khz
    return doc


@pytest.mark.parametrize("name, family, model, mhz, cpufreq_max_khz, clock, single_core, how", [
    # AWS m7i.2xlarge: "Intel(R) Xeon(R) Platinum 8488C", family 6 model 143, BogoMIPS 4800 (TSC 2,400 MHz), no cpufreq;
    # AWS: "an all-core turbo frequency of 3.2 GHz (max core turbo frequency of 3.8 GHz)"
    ("Intel(R) Xeon(R) Platinum 8488C", 6, 143, "2400.000", None, 2.4e9, 3.8e9, "max turbo 3.8 GHz"),
    # Azure Standard_D8s_v6: "INTEL(R) XEON(R) PLATINUM 8573C", family 6 model 207, "CPU max MHz: 2300" while lscpu shows
    # "CPU(s) scaling MHz: 155%"; Azure publishes only its all-core turbo, 3.0 GHz
    ("INTEL(R) XEON(R) PLATINUM 8573C", 6, 207, "2300.000", "2300000\n", 2.3e9, 3.0e9, "all-core turbo 3 GHz"),
    # a Cascade Lake part is not listed (its AVX2 licence clock is not published by name): the TSC rate stands
    ("Intel(R) Xeon(R) Platinum 8259CL CPU @ 2.50GHz", 6, 85, "2499.998", None, 2.5e9, 2.5e9, None),
])
def test_a_cloud_vms_part_decodes_at_its_published_turbo_not_the_rate_its_hypervisor_shows(
        name, family, model, mhz, cpufreq_max_khz, clock, single_core, how):
    """SpareCores' Sapphire, Emerald and Granite Rapids VMs decoded 1.3-1.9x faster than the TSC rate priced them: a few
    busy cores run at the turbo the VM cannot see. Prompts keep the base clock, which all cores hold."""
    from qwenctl.hardware import cpu_specs
    from qwenctl.hardware.facts import Absent, Hardware, Memory
    from qwenctl.machine import host_device

    vm = cpu.probe(replay(_cloud_vm(name, family, model, mhz, cpufreq_max_khz)))
    core = cpu_specs.cpu_core(vm, None)
    assert (core.clock_hz, core.single_core_clock_hz) == (clock, single_core)
    assert (how in core.source) if how else "turbo" not in core.source
    hw = Hardware("Linux", "x86_64", vm, Memory(16 * 2**30, 8 * 2**30, 0, bandwidth_bytes_per_s=int(100e9)),
                  *(Absent("-"),) * 5)
    assert host_device(hw).thread_weights_per_s == pytest.approx(core.decode_weights_per_cycle * single_core)


@pytest.mark.parametrize("capture, design, single_core, measured", [
    # the development VM on a Zen 5 (2026-12-04) and on a Zen 4 (2026-12-06): "AMD EPYC", 2,596 MHz, no cpufreq; a
    # chain of dependent adds (benchmarks/core_clock.c) ran 3.89-4.01 and 3.57-3.66 GHz there
    ("linux-x86-no-gpu.json", "AMD Zen 5", 4.1e9, (3.89e9, 4.01e9)),
    ("linux-x86-zen4-genoa-vm.json", "AMD Zen 4", 3.7e9, (3.57e9, 3.66e9)),
])
def test_a_vm_naming_no_part_decodes_at_the_lowest_turbo_the_clouds_publish_for_its_design(
        capture, design, single_core, measured):
    """A bare "AMD EPYC" names no part whose turbo a provider publishes, and its hypervisor shows only the TSC rate, the
    base clock. Its CPUID still tells the design, and the clouds' parts of one design turbo alike (Genoa's 9B14, 9R14 and
    9V74 all at 3.7 GHz), so a few decoding threads are priced at the lowest of them: within 5 % of what the cores were
    measured running at, where the TSC rate was 0.65-0.73 of it. Prompts keep the base clock."""
    from qwenctl.hardware import cpu_specs

    vm = cpu.probe(replay(capture))
    core = cpu_specs.cpu_core(vm, None)
    assert vm.virtual_machine and vm.max_clock_mhz is None
    assert core.single_core_clock_hz == pytest.approx(single_core) and f"the clouds publish for {design} parts" in core.source
    assert all(abs(single_core / clock - 1) < 0.06 for clock in measured)
    assert core.clock_hz == 2.596e9  # the TSC rate: all cores busy on a prompt


def test_an_intel_vm_naming_no_part_decodes_at_its_designs_lowest_cloud_turbo():
    """The H100 machine's host, a verbatim capture: "Intel(R) Xeon(R) Processor", CPUID family 6 model 207 (Emerald
    Rapids) under KVM, 2.1 GHz TSC, no cpufreq. The clouds' Emerald Rapids parts turbo at 3.0 GHz (GCP's 8573C, all
    cores) to 4.0 (AWS's 8581C): priced at 3.0, its one decoding thread of the 1.5B Q4_K_M makes 7.0 tok/s where
    llama-bench measured 8.4 there (benchmarks/results/emr-host-per-type), and 4.9 at the TSC rate. Held out, SpareCores'
    Emerald Rapids VMs whose part has no published clock: 2 -> 12 of 12 decode figures within 20 %."""
    from qwenctl.catalog import load_catalog
    from qwenctl.hardware import cpu_specs
    from qwenctl.machine import host_device
    from qwenctl.speed import estimate_speed

    hw = detect(replay("nvidia-h100-gpu-machine.json"))
    core = cpu_specs.cpu_core(hw.cpu, None)
    assert (hw.cpu.cpu_family, hw.cpu.cpu_model, hw.cpu.virtual_machine, hw.cpu.max_clock_mhz) == (6, 207, True, None)
    assert core.single_core_clock_hz == 3.0e9 and "the clouds publish for Intel Emerald Rapids parts" in core.source
    assert core.clock_hz == 2.1e9  # the TSC rate: all cores busy on a prompt
    m = load_catalog().model("1.5B")
    w = m.weights_for("gguf", "q4_k_m")
    assert estimate_speed(m, w, None, host_device(hw, 1), sampling=False).tg_tps == pytest.approx(8.4, rel=0.2)


def test_a_vm_naming_its_part_or_showing_cpufreq_keeps_that_clock():
    """The design's figure stands in only where nothing names the clock: an Azure 9V74 VM has its part's published
    turbo, and a guest whose hypervisor shows a cpufreq maximum keeps it."""
    from qwenctl.hardware import cpu_specs

    doc = document("linux-x86-zen4-genoa-vm.json")
    doc["files"]["/proc/cpuinfo"] = doc["files"]["/proc/cpuinfo"].replace(
        "model name\t: AMD EPYC\n", "model name\t: AMD EPYC 9V74 80-Core Processor\n")
    named = cpu_specs.cpu_core(cpu.probe(replay(doc)), None)
    assert named.single_core_clock_hz == 3.7e9 and "max turbo 3.7 GHz (AMD EPYC 9V74" in named.source
    assert "the clouds publish for" not in named.source
    doc = document("linux-x86-zen4-genoa-vm.json")
    doc["files"][cpu.CPUFREQ_MAX.format(0)] = "3400000\n"
    shown = cpu_specs.cpu_core(cpu.probe(replay(doc)), None)
    assert shown.single_core_clock_hz == 3.4e9 and "the clouds publish for" not in shown.source


# AWS c3.4xlarge's lscpu (SpareCores sc-inspector-data data/aws/c3.4xlarge/lscpu/stdout): an Ivy Bridge-EP under Xen
IVY_BRIDGE_FLAGS = ("fpu vme de pse tsc msr pae mce cx8 apic sep mtrr pge mca cmov pat pse36 clflush mmx fxsr sse sse2 ht "
                    "syscall nx rdtscp lm constant_tsc rep_good nopl xtopology cpuid tsc_known_freq pni pclmulqdq ssse3 "
                    "cx16 pcid sse4_1 sse4_2 x2apic popcnt tsc_deadline_timer aes xsave avx f16c rdrand hypervisor "
                    "lahf_lm pti fsgsbase smep erms xsaveopt")


def test_a_core_with_avx_but_not_avx2_decodes_at_the_avx_builds_rate_not_the_sse_ones():
    """llama.cpp's quantized dot products have an __AVX__ branch between the AVX2 and the SSE ones, which the
    prebuilt 'sandybridge' CPU variant runs on Sandy and Ivy Bridge: measured one thread at a time on the development
    VM, 2.37 weights a cycle against SSE's 1.8 and AVX2's 3.6 (devices.json, with the figures), at the part's turbo
    (x86_part_clocks.json; Xen shows only the TSC rate). Priced as SSE at the TSC rate, SpareCores' Ivy Bridge VMs
    decoded at 1.3-1.9x their prediction; now 0.90-1.14."""
    from qwenctl.hardware import cpu_specs

    ivy = cpu_specs.cpu_core(cpu.probe(replay(_cloud_vm("Intel(R) Xeon(R) CPU E5-2680 v2 @ 2.80GHz", 6, 62, "2792.998",
                                                     flags=IVY_BRIDGE_FLAGS))), None)
    no_avx = cpu_specs.cpu_core(cpu.probe(replay(_cloud_vm("Intel(R) Xeon(R) CPU E5-2680 v2 @ 2.80GHz", 6, 62, "2792.998",
                                                        flags=IVY_BRIDGE_FLAGS.replace(" avx f16c", "")))), None)
    avx2 = cpu_specs.cpu_core(cpu.probe(replay(_cloud_vm("Intel(R) Xeon(R) CPU E5-2680 v2 @ 2.80GHz", 6, 62, "2792.998",
                                                      flags=IVY_BRIDGE_FLAGS + " avx2 fma"))), None)
    assert (ivy.core, ivy.family, no_avx.core, avx2.core) == ("x86-avx", "cpu-x86-avx", "x86-sse", "x86-avx2-fma-2x256")
    assert ivy.clock_hz == no_avx.clock_hz  # the TSC rate both VMs show
    assert ivy.single_core_clock_hz == 3.6e9 and "max turbo 3.6 GHz (Intel Xeon E5-2680 v2" in ivy.source  # Intel's
    assert no_avx.decode_weights_per_cycle < ivy.decode_weights_per_cycle < avx2.decode_weights_per_cycle
    assert ivy.int8_per_cycle == no_avx.int8_per_cycle  # no 256-bit integer instructions before AVX2: prompts alike


@pytest.mark.parametrize("capture, brand, kinds, threads, family", [
    ("arm-snapdragon-855-plus-cpuinfo.json", "Qualcomm Kryo 4XX Gold", (4, 4), 4, "cpu-arm-cortex-a76-n1"),
    ("arm-snapdragon-x-elite-cpuinfo.json", "Qualcomm Oryon", (None, None), 12, "cpu-arm-neoverse-v2"),
    ("arm-apple-m1-cpuinfo.json", "Apple M1 Firestorm", (4, 4), 4, "cpu-apple-p-core"),  # Asahi Linux
    ("arm-rk3308-cpuinfo.json", "ARM Cortex-A35", (None, None), 4, "cpu-arm-cortex-a53"),
])
def test_arm_cores_of_other_implementers_are_named_and_classed(capture, brand, kinds, threads, family):
    """Real /proc/cpuinfo (hrw/arm-socs-table): Qualcomm's own part numbers (implementer 0x51) and Apple's under Asahi
    Linux (0x61) were "unknown ARM CPU", priced by their ISA flags and run on every core, little ones too; an in-order
    Cortex-A35 took the A72's two-pipe row."""
    from qwenctl.hardware import cpu_specs
    from qwenctl.hardware.facts import Absent, Hardware
    from qwenctl.machine import threads as machine_threads

    got = cpu.probe(replay(capture))
    assert (got.brand, (got.performance_cores, got.efficiency_cores)) == (brand, kinds)
    assert machine_threads(Hardware("Linux", "aarch64", got, *(Absent("-"),) * 6)) == threads
    assert cpu_specs.cpu_core(got, None).family == family


@pytest.mark.parametrize("capture, brand, arch, cores, flags", [
    ("raspberry-pi-1-uniprocessor-cpuinfo.json", "ARM ARM1176", "arm", 1, ()),
    ("odroid-u2-cpuinfo.json", "ARM Cortex-A9", "arm", 4, ("neon",)),
    ("cavium-thunderx-scaleway-cpuinfo.json", "Cavium ThunderX-88XX", "arm64", 6, ("neon",)),
])
def test_arm_cpuinfo_of_older_kernels_and_other_implementers(capture, brand, arch, cores, flags):
    """Real /proc/cpuinfo (pytorch/cpuinfo's test captures): a uniprocessor 32-bit kernel prints no `processor` line
    (the probe failed: "lists no processor"); an older SMP one prints the core's Features and part once, after the
    processors' blocks (the ODROID-U2 read as four "unknown ARM CPU"s without NEON); a Cavium part was unnamed."""
    got = cpu.probe(replay(capture))
    assert (got.brand, got.arch, got.physical_cores, got.logical_cores, got.flags) == (brand, arch, cores, cores, flags)


def test_an_azure_cobalt_is_priced_as_the_neoverse_n2_it_is():
    """Microsoft's own implementer code (0x6d) on the Neoverse N2 design: named, and priced by the N2's row rather than
    guessed from its flags (i8mm alone would take the Neoverse-V1's)."""
    from qwenctl.hardware import cpu_specs

    block = ("processor\t: {n}\nBogoMIPS\t: 2000.00\nFeatures\t: fp asimd asimddp i8mm sve sve2\n"
             "CPU implementer\t: 0x6d\nCPU architecture: 8\nCPU variant\t: 0x0\nCPU part\t: 0xd49\nCPU revision\t: 0\n")
    got = cpu.parse_cpuinfo("\n".join(block.format(n=n) for n in range(4)), "arm64")
    assert got.brand == "Microsoft Azure Cobalt 100 (Neoverse-N2)"
    family = cpu_specs.cpu_core(got, None).family
    assert family == cpu_specs.cpu_core(dataclasses.replace(got, brand="ARM Neoverse-N2"), None).family
    assert family != cpu_specs.cpu_core(dataclasses.replace(got, brand="unknown ARM CPU"), None).family  # the flags' guess


# dotnet/BenchmarkDotNet tests/BenchmarkDotNet.Tests/Detectors/Cpu/CpuInfoParserTests_Cim.cs, RealTwoProcessorEightCoresTest:
# Get-CimInstance Win32_Processor on a two-socket Xeon E5-2630 v3 (Format-List's "Key:value", one block per socket)
CIM_TWO_SOCKETS = """MaxClockSpeed:2400
Name:Intel(R) Xeon(R) CPU E5-2630 v3
NumberOfCores:8
NumberOfLogicalProcessors:16


MaxClockSpeed:2400
Name:Intel(R) Xeon(R) CPU E5-2630 v3
NumberOfCores:8
NumberOfLogicalProcessors:16

"""


def test_windows_without_wmic_asks_powershell_and_adds_up_the_sockets():
    """wmic is gone from Windows 11 24H2 unless added back: the probe asks Get-CimInstance for the same fields.
    Each socket is a block of its own; the nominal clock is the base the speed model's constants were fitted on."""
    doc = document("windows-i7-4710mq.json")
    doc["commands"] = {command_key(cpu.CIM_ARGV): CIM_TWO_SOCKETS}
    got = cpu.probe(replay(doc))
    assert (got.brand, got.physical_cores, got.logical_cores, got.sockets, got.base_clock_mhz) == (
        "Intel(R) Xeon(R) CPU E5-2630 v3", 16, 32, 2, 2400)
    assert got.flags == ("avx", "avx2", "fma", "f16c") and got.flags_source == "llama.cpp's system info"


@pytest.mark.parametrize(("cores", "logical"), [(0, 8), (4, 0), (8, 4)])
def test_windows_core_counts_no_processor_has_are_unexpected_input(cores, logical):
    """Counts no processor has (an edited or damaged capture): the CPU is absent with the counts, as any input the
    probe cannot read. A Cpu of 0 cores had ended `plan` in an internal error (a ZeroDivisionError)."""
    doc = document("windows-i7-4710mq.json")
    (key,) = [k for k in doc["commands"] if k.startswith("wmic cpu")]
    doc["commands"][key] = doc["commands"][key].replace("NumberOfCores=4", f"NumberOfCores={cores}").replace(
        "NumberOfLogicalProcessors=8", f"NumberOfLogicalProcessors={logical}")
    hw = detect(replay(doc))
    assert isinstance(hw.cpu, Absent) and f"counts {cores} cores and {logical} logical processors" in hw.cpu.reason
    plan(hw)  # plans on what is known, or refuses in one line: no internal error


def test_windows_flags_unknown_without_llama_cpp_are_said_not_guessed():
    """Windows has no cpuinfo: before llama-cpp-python is installed nothing reports the ISA, so the flags are
    unknown (not "none"), the plan prices the slowest kernels and says so; with neither wmic nor PowerShell
    answering, the CPU is absent with the reason."""
    from qwenctl.hardware.cpu_specs import cpu_core

    doc = document("windows-i7-4710mq.json")
    doc["python"]["llama_system_info"] = None
    got = cpu.probe(replay(doc))
    assert got.flags == () and got.flags_source is None
    unnamed = dataclasses.replace(got, brand="Intel(R) Core(TM) i7-9999X CPU @ 2.50GHz")
    assert any("instruction sets unknown" in a for a in cpu_core(unnamed, None).assumed)
    assert not cpu_core(dataclasses.replace(unnamed, flags_source="/proc/cpuinfo"), None).assumed  # an SSE-only CPU
    doc["commands"] = {}
    assert cpu.probe(replay(doc)) == Absent("neither wmic nor PowerShell's Get-CimInstance answered for Win32_Processor")
    with pytest.raises(ParseError):
        cpu.parse_win32_processor("Name=\nNumberOfCores=4\n", "x86_64")


def test_llama_system_info_names_only_the_cpu_backends_features():
    info = ("CUDA : ARCHS = 700 | USE_GRAPHS = 1 | PEER_MAX_BATCH_SIZE = 128 | CPU : SSE3 = 1 | SSSE3 = 1 | AVX = 1 | "
            "AVX2 = 1 | F16C = 1 | FMA = 1 | AVX512 = 1 | AVX512_VNNI = 1 | AMX_INT8 = 1 | LLAMAFILE = 1 | ")
    assert cpu.llama_cpu_flags(info) == ("avx", "avx2", "avx512f", "avx512_vnni", "fma", "f16c", "amx_int8")
    assert cpu.llama_cpu_flags("CPU : NEON = 1 | ARM_FMA = 1 | FP16_VA = 1 | DOTPROD = 1 | MATMUL_INT8 = 1 | ") == (
        "neon", "fp16", "dotprod", "i8mm")
    assert cpu.llama_cpu_flags(None) == cpu.llama_cpu_flags("Metal : EMBED_LIBRARY = 1 | ") == ()


def test_a_windows_hybrids_cores_split_by_their_threads():
    """Win32_Processor has no core types, but a 12th-14th generation Intel hybrid runs two threads on each P-core and
    one on each E-core: an i5-12600KF's 10 cores and 16 threads are 6 + 4 (the expected wmic output of a public
    Windows test plan, code index file 55966125845); an i7-1360P's 12 and 16 are 4 + 8 (Intel ARK, through
    felixsteinke/cpu-spec-dataset dataset/intel-cpus.csv). A CPU whose threads are 1x or 2x its cores is not a hybrid."""
    listing = "Name=Intel(R) Core(TM) i5-12600KF\nNumberOfCores=10\nNumberOfLogicalProcessors=16\n"
    got = cpu.parse_win32_processor(listing, "x86_64")
    assert (got.physical_cores, got.performance_cores, got.efficiency_cores) == (10, 6, 4)
    got = cpu.parse_win32_processor(listing.replace("i5-12600KF", "i7-1360P").replace("=10", "=12"), "x86_64")
    assert (got.performance_cores, got.efficiency_cores) == (4, 8)
    for threads in (10, 20):
        flat = cpu.parse_win32_processor(listing.replace("=16", f"={threads}"), "x86_64")
        assert flat.performance_cores is None and flat.efficiency_cores is None


def test_an_sg2042s_bare_v_is_t_heads_vector_by_its_vendor_id():
    """The Milk-V Pioneer's SG2042 (64 XuanTie C920) prints "rv64imafdcv" with no cpu-vector line (ThomasKaiser/sbc-bench
    results/cpuinfo/Sophon-SG2042-6.1.18.cpuinfo): T-Head's vendor ID says the V is 0.7.1."""
    hart = {"isa": "rv64imafdcv", "mvendorid": "0x5b7"}
    assert cpu.riscv_flags(hart) == ("xtheadvector",) and cpu.riscv_core_name(hart) == "T-Head RISC-V CPU"
    assert cpu.riscv_flags({"isa": "rv64imafdc_xtheadvector"}) == ("xtheadvector",)
    assert cpu.riscv_flags({"isa": "rv64imafdcvh_zicbom_zvfh"}) == ("rvv",)  # a SpacemiT K3's: V and H


def test_a_cpu_with_no_core_rates_is_named_and_its_pricing_said_to_be_a_guess():
    """A POWER9's cpuinfo (verbatim from avocado-framework's tests, test_cpu_arch_ppc64_le_power9) names its CPU in a
    `cpu` line and lists no features the speed model knows: it is named so, not "unknown ARM CPU", and the speed model
    says it priced it as an x86 core with SSE."""
    from qwenctl.hardware import cpu_specs

    block = ("processor\t: 20\ncpu\t\t: POWER9 (raw), altivec supported\nclock\t\t: 2050.000000MHz\n"
             "revision\t: 1.0 (pvr 004e 0100)\n\ntimebase\t: 512000000\nplatform\t: PowerNV\nmodel\t\t: 8375-42A\n"
             "machine\t\t: PowerNV 8375-42A\nfirmware\t: OPAL\n")
    got = cpu.parse_cpuinfo(block, "ppc64le")
    assert (got.brand, got.flags, got.physical_cores) == ("POWER9 (raw), altivec supported", (), 1)
    (note,) = [a for a in cpu_specs.cpu_core(got, None).assumed if "core rates" in a]
    assert note.startswith("no core rates for ppc64le CPUs here: priced as an x86 core with SSE")


def core_records(classes: list[int]) -> bytes:
    """GetLogicalProcessorInformationEx(RelationProcessorCore)'s buffer as Microsoft documents its records: Relationship
    and Size (DWORDs), then PROCESSOR_RELATIONSHIP (Flags, EfficiencyClass, Reserved[20], GroupCount = 1) and one
    GROUP_AFFINITY (a 64-bit mask, Group, Reserved[3]): 48 bytes a physical core."""
    import struct

    return b"".join(struct.pack("<IIBB20sH", 0, 48, 0, c, bytes(20), 1) + struct.pack("<QH6s", 1 << n, 0, bytes(6))
                    for n, c in enumerate(classes))


def test_a_windows_hybrid_without_hyper_threading_is_split_by_the_kernels_efficiency_classes():
    """A Core Ultra 7 258V (Lunar Lake: 4 Lion Cove P-cores and 4 Skymont LP E-cores, no Hyper-Threading): its
    Win32_Processor counts (8 cores, 8 threads) cannot tell them apart, its cores' efficiency classes can, so llama.cpp
    gets the 4 performance cores. A homogeneous CPU (all class 0) and a malformed buffer change nothing."""
    from qwenctl.hardware import win32_cores
    from qwenctl.machine import threads

    doc = document("windows-i7-4710mq.json")
    doc["commands"] = {command_key(cpu.WMIC_ARGV):
                       "\n\nMaxClockSpeed=2200\nName=Intel(R) Core(TM) Ultra 7 258V\nNumberOfCores=8\n"
                       "NumberOfLogicalProcessors=8\n\n"}
    import base64

    doc["python"]["processor_cores"] = base64.b64encode(core_records([1, 1, 1, 1, 0, 0, 0, 0])).decode()
    got = cpu.probe(replay(doc))
    assert (got.physical_cores, got.performance_cores, got.efficiency_cores) == (8, 4, 4)
    assert threads(detect(replay(doc))) == 4
    assert win32_cores.efficiency_classes(core_records([0] * 8)) == [0] * 8
    assert win32_cores.efficiency_classes(core_records([1, 0])[:-5]) == []  # a truncated record
    doc["python"]["processor_cores"] = base64.b64encode(core_records([0] * 8)).decode()
    assert cpu.probe(replay(doc)).performance_cores is None


@pytest.mark.parametrize("capture, cpuid, design", [
    # the development VM's bare "AMD EPYC" on 2026-12-04 (verbatim capture): Linux's amd.c makes family 26 model 2 Zen 5
    ("linux-x86-no-gpu.json", ("AuthenticAMD", 26, 2), "AMD Zen 5"),
    # the same VM's host a day earlier: family 25 model 1, a Zen 3 (Milan), whose decode is priced as Zen 4's and 5's
    ("linux-x86-cgroup-v1-cpu-quota-1.5.json", ("AuthenticAMD", 25, 1), "AMD Zen 3"),
    # ollama issue #5554's EPYC 9754 (Bergamo, Zen 4c): family 25 model 160 = 0xa0, inside Zen 4's 0x60-0xaf
    ("linux-x86-epyc-2-sockets-lxc.json", ("AuthenticAMD", 25, 160), "AMD Zen 4"),
    ("linux-x86-hybrid-i7-1370p.json", ("GenuineIntel", 6, 186), None),
])
def test_an_x86_core_design_is_told_by_its_cpuid_even_where_the_name_says_nothing(capture, cpuid, design):
    from qwenctl.hardware import cpu_specs

    got = cpu.probe(replay(capture))
    assert (got.vendor_id, got.cpu_family, got.cpu_model) == cpuid
    found = cpu_specs.x86_design(got)
    assert (found and found["design"]) == design
    core = cpu_specs.cpu_core(got, None)
    if design:  # a Zen core's decode is held to what one thread reads (24.45 GB/s), its kernels priced whole
        assert core.thread_read_bytes_per_s == 24.45e9 and core.decode_weights_per_cycle == 8.9
        assert f"{design} (CPUID family {cpuid[1]} model {cpuid[2]})" in core.source
    else:  # the x86 rows' figures, from two Intel cores, and no per-thread limit
        assert core.thread_read_bytes_per_s is None and core.decode_weights_per_cycle == 3.6


@pytest.mark.parametrize("brand, design", [
    ("AMD Ryzen 9 7950X 16-Core Processor", "AMD Zen 4"),
    ("AMD Ryzen 5 7600 6-Core Processor", "AMD Zen 4"),
    ("AMD Ryzen 7 7840U w/ Radeon  780M Graphics", "AMD Zen 4"),
    ("AMD Ryzen 7 8700G w/ Radeon 780M Graphics", "AMD Zen 4"),
    ("AMD EPYC 9654 96-Core Processor", "AMD Zen 4"),
    ("AMD Ryzen Threadripper PRO 7995WX 96-Cores", "AMD Zen 4"),
    ("AMD Ryzen 9 9950X3D 16-Core Processor", "AMD Zen 5"),
    ("AMD Ryzen AI 9 HX 370 w/ Radeon 890M", "AMD Zen 5"),
    ("AMD Ryzen 9 5950X 16-Core Processor", "AMD Zen 3"),
    ("AMD Ryzen 7 5800U with Radeon Graphics", "AMD Zen 3"),
    ("AMD Ryzen 5 7530U with Radeon Graphics", "AMD Zen 3"),
    ("AMD EPYC 7R13 Processor", "AMD Zen 3"),
    ("AMD Ryzen 7 5700U with Radeon Graphics", None),  # Ryzen 5000 U parts with an odd second digit are Zen 2
    ("AMD RYZEN AI MAX+ 395 w/ Radeon 8060S", "AMD Zen 5"),
    ("AMD EPYC 9B45", "AMD Zen 5"),
    # the Ryzen 7000 mobile names of older cores: 7x20U is Zen 2, 7x30U and 7x35 are Zen 3; Zen 2's Ryzen 3000 and Rome
    ("AMD Ryzen 5 7520U with Radeon Graphics", None),
    ("AMD Ryzen 7 7730U with Radeon Graphics", "AMD Zen 3"),
    ("AMD Ryzen 9 3900X 12-Core Processor", None),
    ("AMD EPYC 7742 64-Core Processor", None),
    # Xeon Scalable by generation digit: x1xx Skylake-SP, x2xx Cascade Lake, x3xxH Cooper Lake (all CPUID model 85);
    # x3xx without the H is Ice Lake-SP, x4xx Sapphire Rapids
    ("Intel(R) Xeon(R) Platinum 8259CL CPU @ 2.50GHz", "Intel Skylake-SP"),
    ("Intel(R) Xeon(R) Gold 6149 CPU @ 3.10GHz", "Intel Skylake-SP"),
    ("Intel(R) Xeon(R) Platinum 8369HB CPU @ 3.30GHz", "Intel Skylake-SP"),
    ("Intel(R) Xeon(R) Platinum 8375C CPU @ 2.90GHz", None),
    ("Intel(R) Xeon(R) Platinum 8488C", "Intel Sapphire Rapids"),
])
def test_where_no_cpuid_is_read_a_name_only_one_design_carries_tells_it(brand, design):
    """Windows and macOS give no CPUID family, nor do published rows: the product lines that are all one design."""
    from qwenctl.hardware import cpu_specs

    found = cpu_specs.x86_design(Cpu(brand=brand, arch="x86_64", physical_cores=8, logical_cores=16, flags=("avx2", "fma")))
    assert (found and found["design"]) == design
    assert found is None or found["how"] == "by its name"


@pytest.mark.parametrize("maker, model, virtual", [
    ("Microsoft Corporation", "Virtual Machine", True),  # Hyper-V, Azure
    ("Microsoft Corporation", "Surface Pro 9", False),  # Microsoft's own hardware
    ("VMware, Inc.", "VMware7,1", True),
    ("innotek GmbH", "VirtualBox", True),
    ("QEMU", "Standard PC (Q35 + ICH9, 2009)", True),
    ("Parallels International GmbH.", "Parallels ARM Virtual Machine", True),
    ("Google", "Google Compute Engine", True),
    ("Amazon EC2", "m6i.large", True),
    ("Amazon EC2", "m6i.metal", False),  # bare metal under Amazon's name: systemd's ".metal" test
    ("Amazon EC2", "m7i.metal-24xl", False),
    ("Dell Inc.", "XPS 15 9530", False),
    ("LENOVO", "21HMCTO1WW", False),
])
def test_a_windows_virtual_machine_is_known_by_its_smbios_maker_and_model(maker, model, virtual):
    """Windows has no cpuinfo `hypervisor` flag, and HypervisorPresent is true on bare metal running virtualization-
    based security: the SMBIOS system maker and model that Win32_ComputerSystem reports name the hypervisor, in both
    wmic's and PowerShell's formats."""
    wmic = f"\r\r\n\r\r\nManufacturer={maker}\r\r\nModel={model}\r\r\n\r\r\n"
    cim = f"\n\nManufacturer : {maker}\nModel        : {model}\n\n"
    assert cpu.win32_virtual_machine(wmic) is virtual and cpu.win32_virtual_machine(cim) is virtual


@pytest.mark.parametrize("names, virtual", [
    (("Hetzner", "vServer", "KVM", "Hetzner"), True),  # a Hetzner Cloud server: its board names the hypervisor
    (("Amazon EC2", "c6g.large", "Amazon EC2", "Amazon EC2"), True),  # a Graviton instance
    (("Amazon EC2", "c6g.metal", "Amazon EC2", "Amazon EC2"), False),
    (("Google", "Google Compute Engine", "Google", "Google"), True),
    (("Microsoft Corporation", "Virtual Machine", "Microsoft Corporation", "Microsoft Corporation"), True),
    (("QEMU", "KVM Virtual Machine", "", "EFI Development Kit II / OVMF"), True),
    (("Ampere", "Mt.Jade", "WIWYNN", "American Megatrends International, LLC."), False),  # a bare-metal Altra server
    (("", "", "", ""), False),  # no SMBIOS at all: a Raspberry Pi
])
def test_smbios_names_tell_a_virtual_machine_on_linux_too(names, virtual):
    """Linux's /sys/class/dmi/id names (system maker and product, board maker, firmware maker) by the same rule as
    Windows' Win32_ComputerSystem, with the board's maker as systemd reads it."""
    assert cpu.smbios_virtual_machine(*names) is virtual


def test_an_arm_cloud_server_is_a_virtual_machine_by_its_smbios_names():
    """arm64 kernels print no `hypervisor` flag, so a Hetzner Cloud Arm server (2 vCPUs of an Ampere Altra under KVM)
    read as bare metal; its firmware's names, which any user may read, say KVM. Without them (a board with no SMBIOS, a
    capture from before) it stays bare metal, and the Pi 5 is bare metal either way."""
    doc = document("hetzner-cax-neoverse-n1-vm.json")
    guest = cpu.probe(replay(doc))
    assert (guest.brand, guest.physical_cores, guest.flags, guest.virtual_machine) == (
        "ARM Neoverse-N1", 2, ("neon", "fp16", "dotprod"), True)
    for field in cpu.DMI_NAMES:
        del doc["files"][f"/sys/class/dmi/id/{field}"]
    assert not cpu.probe(replay(doc)).virtual_machine
    assert not cpu.probe(replay("raspberry-pi-5-8gb.json")).virtual_machine


def test_a_windows_cloud_vm_is_a_share_of_its_host_and_keeps_no_parts_rating():
    """A GitHub Actions Windows runner (an Azure guest on an EPYC 7763, whose rating is 8 channels of DDR4-3200,
    204.8 GB/s) is a virtual machine: its memory is a share of the host's, so it is not planned on the part's rating
    but on the fallback its plan says it assumed, which `detect --measure` replaces. A Windows machine that cannot
    say (no answer from Win32_ComputerSystem) is taken for bare metal, as before."""
    from qwenctl.machine import host_device

    doc = document("windows-azure-vm-epyc-7763.json")
    guest = detect(replay(doc))
    assert isinstance(guest.cpu, Cpu)
    assert (guest.cpu.brand, guest.cpu.physical_cores, guest.cpu.logical_cores, guest.cpu.virtual_machine) == (
        "AMD EPYC 7763 64-Core Processor", 2, 4, True)
    host = host_device(guest)
    assert host.bandwidth_bytes_per_s == 25.6e9 and host.bandwidth_assumed
    del doc["commands"][command_key(cpu.SYSTEM_ARGVS[0])]
    metal = detect(replay(doc))
    assert not metal.cpu.virtual_machine and host_device(metal).bandwidth_bytes_per_s == 204.8e9
    assert not cpu.probe(replay(document("windows-i7-4710mq.json"))).virtual_machine
