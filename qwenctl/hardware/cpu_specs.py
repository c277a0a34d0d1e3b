"""What one core of the host CPU multiplies a cycle and how fast it decodes: its row of hardware/data/devices.json
(an Arm core by name or board, a RISC-V vector extension, an x86 ISA level or core design), its clocks, and the
fabric links that can bound what its cores read.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from qwenctl.hardware._parse import data, devices
from qwenctl.hardware.facts import Board, Cpu


@dataclass(frozen=True)
class CoreSpec:
    name: str
    family: str  # "cpu-x86-avx2-fma-2x256", "cpu-arm-cortex-a76-n1", ...: whose fitted constants it takes
    core: str  # its cpu_core_throughput row: "x86-avx2-haswell" is of the family above with kernels of its own speed
    memory_kind: str  # "ddr" | "lpddr"
    clock_hz: float
    fp32_per_cycle: float  # per core
    int8_per_cycle: float  # per core, with the ISA's dot-product or matrix instructions
    source: str
    assumed: tuple[str, ...] = ()
    decode_weights_per_cycle: float | None = None  # what one thread of llama.cpp's decode multiplies (None: not measured)
    single_core_clock_hz: float = 0.0  # the clock a few busy cores reach (cpufreq's maximum: the turbo), at least clock_hz
    thread_read_bytes_per_s: float | None = None  # what one decode thread reads at most (None: no per-core limit known)
    staging_copy_bytes_per_s: float | None = None  # what one thread copies from pageable to pinned memory (None: not measured)
    # ggml types whose decode kernel one thread of this design runs slower than decode_weights_per_cycle: (type, weights
    # per cycle) (devices.json x86_designs `decode_type_weights_per_cycle`); () where none is known
    decode_type_weights_per_cycle: tuple[tuple[str, float], ...] = ()
    # per core, in a llama.cpp built without the core's dot products (an armv8-a build of an Arm core; None: not known)
    int8_per_cycle_without_dot: float | None = None
    complexes: int = 0  # core complexes, each behind one fabric link to the memory (`die_links`; 0: no such limit known)
    complex_read_bytes_per_s: float = 0.0  # what one complex's link reads at most
    vendor: str = ""  # an x86 CPU's CPUID vendor ("GenuineIntel", "AuthenticAMD"), or told by its name; "" elsewhere


X86_ARCHES = ("x86_64", "x86")  # what platform.machine() and the probes call an x86 CPU


def _core_row(key: str) -> dict:
    return next(r for r in devices()["cpu_core_throughput"] if r["key"] == key)


def thread_share(cpu: Cpu | None, core: CoreSpec, n_threads: int) -> float:
    """The share of ``n_threads`` performance cores' vector throughput that many llama.cpp threads get on this CPU.

    On an x86 hybrid (its performance and efficiency cores both known) threads beyond the performance cores run on
    the efficiency cores, at their row's rate (core_of's x86_hybrid_efficiency_core, with its source), and threads
    beyond every physical core are SMT siblings, which add no vector pipes; llama.cpp's matrix products hand out
    their chunks to whichever thread is free, so each core adds what it multiplies. Elsewhere every thread counts
    whole."""
    if cpu is None or cpu.arch != "x86_64" or not cpu.performance_cores or not cpu.efficiency_cores:
        return 1.0
    p = cpu.performance_cores
    if n_threads <= p:
        return 1.0
    e_row = _core_row(devices()["core_of"]["x86_hybrid_efficiency_core"])
    e_share = e_row["int8_ops_per_cycle_per_core"] / core.int8_per_cycle
    return (p + min(n_threads - p, cpu.efficiency_cores) * e_share) / n_threads


def _board(board: Board | None, cpu: Cpu | None) -> dict | None:
    text = " ".join(x for x in (board.model if board else "", (board.soc or "") if board else "", cpu.brand if cpu else "") if x).lower()
    for row in devices()["boards"]:
        names = [row["board"]] + row.get("match", [])
        if any(n.lower() in text for n in names):
            return row
    return None


def cpu_core(cpu: Cpu | None, board: Board | None) -> CoreSpec:
    """The core type of the host CPU: a board's SoC, an Arm core name, a RISC-V vector extension, or the x86 ISA level.

    The clock is the one the CPU guarantees with every core busy (its base or nominal clock: detected,
    or the "@ 2.80GHz" of an Intel name), not cpufreq's one-core turbo: llama.cpp keeps every thread
    busy, and the speed model's CPU constants were fitted on base clocks. A laptop's turbo is 1.5-2.2x
    its base, which priced its prompts that much too fast. A few decoding threads run at the single-core clock:
    cpufreq's maximum, or a cloud part's published turbo (`part_clock`) where its VM's cpufreq says less or nothing.

    A board's clock is its row's, lowered to cpufreq's maximum where that is below it: a board sold slower under
    the same name (the Raspberry Pi 4 "1.25 GHz edition" of 2026 reports "Raspberry Pi 4 Model B Rev 1.4" and a
    1,300 MHz maximum), a Jetson's power mode, an underclock. A higher maximum (an overclock, later Pi 4 firmware's
    1.8 GHz) is not taken: the Pi 4's per-cycle rates were checked on rows priced at its row's 1.5 GHz."""
    table = devices()["core_of"]
    flags = set(cpu.flags) if cpu else set()
    brand = cpu.brand if cpu else ""
    assumed: list[str] = []
    design = part = vm_turbo = None
    vendor = ""
    b = _board(board, cpu)
    if b is not None:
        core = b["cpu_cores"][0]["type"]
        key = table["arm"].get(core, "arm-cortex-a76-n1")
        clock = turbo = b["max_clock_ghz"]
        if cpu is not None and cpu.max_clock_mhz and cpu.max_clock_mhz / 1000 < clock:
            clock = turbo = cpu.max_clock_mhz / 1000  # an edition sold slower, a power mode, an underclock
        name, kind = f"{b['board']} ({b['cpu_cores'][0]['count']}x {core})", "lpddr"
    else:
        arm = cpu is not None and cpu.arch in ("arm64", "aarch64", "arm")
        isa_family = "arm" if arm else "riscv" if cpu is not None and cpu.arch.startswith("riscv") else "x86"
        if arm:
            named = next((k for c, k in table["arm"].items() if re.search(rf"\b{re.escape(c)}\b", brand, re.IGNORECASE)), None)
            key = named or ("arm-neoverse-v1" if "i8mm" in flags else "arm-cortex-a76-n1" if "dotprod" in flags else "arm-cortex-a72")
            kind = "lpddr"
        elif isa_family == "riscv":  # by its vector extension: llama.cpp has RVV 1.0 kernels, else plain C
            named = next((k for pattern, k in table["riscv_names"] if re.search(pattern, brand)), None)
            key = named or next((k for f, k in table["riscv"] if f in flags), "riscv-scalar")
            kind = "lpddr"
            assumed.append(f"RISC-V kernel rate from one published board ({key}: hardware/data/devices.json), rough for "
                           "other cores; run `qwenctl bench` to measure this one")
        else:
            named = next((k for pattern, k in table["x86_names"] if re.search(pattern, brand)), None)
            key = named or next((k for f, k in table["x86"] if f in flags), "x86-sse")
            kind = "ddr"
            design, vendor = x86_design(cpu), x86_vendor(cpu)
            if design and key == "x86-avx512-1fma":  # the AVX-512 flags' row, at the width the design runs it
                half = design.get("half_width")  # the design's parts that split it into 256-bit halves, by name
                key = half["core"] if half and re.search(half["names"], brand) else design.get("core", key)
            if cpu is not None and cpu.arch not in X86_ARCHES:
                assumed.append(f"no core rates for {cpu.arch} CPUs here: priced as an x86 core with SSE, which "
                               "may be far from what llama.cpp's kernels run there (run `qwenctl bench` to measure)")
            elif cpu is not None and not named and not flags and cpu.flags_source is None:
                assumed.append("CPU instruction sets unknown (on Windows llama-cpp-python reports them: install it): "
                               "priced as SSE, the slowest x86 kernels")
        named_clock = clock_in_name(brand)
        if cpu is not None and cpu.base_clock_mhz:
            clock = cpu.base_clock_mhz / 1000  # guaranteed with every core busy: what the constants were fitted on
        elif named_clock:
            clock = named_clock  # the base clock an Intel name carries
        elif cpu is not None and cpu.max_clock_mhz:
            clock = cpu.max_clock_mhz / 1000  # cpufreq's maximum: a base P-state under acpi-cpufreq, else a turbo
        else:
            clock = table["typical_clock_ghz"][isa_family]
            assumed.append(f"CPU clock unknown: assumed {clock} GHz")
        turbo = max(clock, cpu.max_clock_mhz / 1000) if cpu is not None and cpu.max_clock_mhz else clock
        part = part_clock(brand)
        if part:  # a cloud VM's part: its hypervisor shows no cpufreq, or one whose maximum is the base clock
            turbo = max(turbo, part["turbo_ghz"])
        elif design and cpu is not None and cpu.virtual_machine and not cpu.max_clock_mhz:
            vm_turbo = cloud_design_turbo(design["design"])  # a VM naming no part ("AMD EPYC")
            turbo = max(turbo, vm_turbo or 0.0)
        name = brand or key
    row = _core_row(key)
    source = f"{row['isa_level']}: {row['fp32_flop_per_cycle_per_core']} FP32 / {row['int8_ops_per_cycle_per_core']} int8 ops per cycle per core"
    decode = devices()["x86_designs"]["decode"][design["decode"]] if design and "decode" in design else {}
    if part:
        source += f"; {part['kind']} {part['turbo_ghz']:g} GHz ({part['part']}, hardware/data/x86_part_clocks.json)"
    if design and vm_turbo:
        source += (f"; single-core {vm_turbo:g} GHz, the lowest turbo the clouds publish for {design['design']} parts "
                   "(a VM naming no part: x86_part_clocks.json)")
    if design and decode:
        source += (f"; {design['design']} ({design['how']}): a decode thread reads at most "
                   f"{decode['thread_read_bytes_per_s'] / 1e9:.2f} GB/s")
    complexes, link = die_links(cpu, design)
    return CoreSpec(
        name=name,
        family=f"cpu-{row.get('family', key)}",
        core=key,
        memory_kind=kind,
        clock_hz=clock * 1e9,
        fp32_per_cycle=row["fp32_flop_per_cycle_per_core"],
        int8_per_cycle=row["int8_ops_per_cycle_per_core"],
        int8_per_cycle_without_dot=row.get("int8_ops_per_cycle_per_core_without_dotprod"),
        source=source,
        assumed=tuple(assumed),
        decode_weights_per_cycle=decode.get("decode_weights_per_cycle", row.get("decode_weights_per_cycle")),
        single_core_clock_hz=turbo * 1e9,
        thread_read_bytes_per_s=decode.get("thread_read_bytes_per_s"),
        staging_copy_bytes_per_s=decode.get("staging_copy_bytes_per_s"),
        decode_type_weights_per_cycle=tuple({**decode.get("decode_type_weights_per_cycle", {}),
                                             **(design or {}).get("decode_type_weights_per_cycle", {})}.items()),
        complexes=complexes,
        complex_read_bytes_per_s=link,
        vendor=vendor,
    )


def clock_in_name(name: str) -> float | None:
    """The clock a processor's name carries, in GHz ("Intel(R) Xeon(R) Gold 6226 CPU @ 2.70GHz", an SMBIOS "AWS
    Graviton3 CPU @ 2.6GHz"); None where it names none, or names 0.0 (an SMBIOS table left unfilled)."""
    m = re.search(r"@\s*([0-9]+(?:\.[0-9]+)?)\s*GHz", name)
    return float(m.group(1)) if m and float(m.group(1)) > 0 else None


def x86_vendor(cpu: Cpu | None) -> str:
    """An x86 CPU's vendor as CPUID names it: read from /proc/cpuinfo, else told by its name ("" where neither says)."""
    if cpu is None:
        return ""
    if cpu.vendor_id:
        return cpu.vendor_id
    named = re.search(r"\b(AMD|Intel)\b", cpu.brand, re.IGNORECASE)
    return {"amd": "AuthenticAMD", "intel": "GenuineIntel"}[named.group(1).lower()] if named else ""


def die_links(cpu: Cpu | None, design: dict | None) -> tuple[int, float]:
    """(core complexes, bytes/s each one's fabric link reads at most) of an AMD Ryzen whose links, not its DRAM, can
    bound what its cores read (devices.json x86_designs `die_links`); (0, 0.0) for any other CPU.

    Its complexes are its CCDs (8 cores each) or, for the APUs that split their cores over two CCXs, the count its name
    says: the cores counted here, not sysfs's L3 domains, because published rows and profiles name a part and give no
    sysfs."""
    rule = devices()["x86_designs"]["die_links"]
    if (cpu is None or design is None or design["design"] not in rule["designs"]
            or not re.search(rule["names"], cpu.brand) or re.search(rule["not_names"], cpu.brand)):
        return 0, 0.0
    named = next((n for pattern, n in rule["complexes_by_name"] if re.search(pattern, cpu.brand)), None)
    complexes = named or -(-max(cpu.physical_cores, 1) // rule["cores_per_complex"])
    return complexes, rule["read_bytes_per_cycle"] * rule["fabric_clock_ghz"] * 1e9


def part_clock(brand: str) -> dict | None:
    """The turbo clock of an x86 part a cloud VM names (hardware/data/x86_part_clocks.json); None for a name not listed.

    A VM's cpufreq cannot say it: most have no driver (cpuinfo's "cpu MHz" is then the TSC rate, the base clock), and
    Azure's Dsv6 VMs report a maximum of 2,300 MHz, the 8573C's base, while lscpu shows them running at 155 % of it
    (SpareCores' capture). Names match case-blind: Azure's VMs say "INTEL(R) XEON(R) PLATINUM"."""
    return next((r for r in data("x86_part_clocks.json")["parts"] if re.search(r["match"], brand, re.IGNORECASE)), None)


def cloud_design_turbo(design: str) -> float | None:
    """The single-core clock of a cloud VM whose CPU names no part ("AMD EPYC", QEMU's "AMD EPYC-Genoa Processor"): the
    lowest turbo x86_part_clocks.json lists for the parts of its core design ("AMD Zen 4": Genoa's 9B14, 9R14 and 9V74
    all 3.7 GHz; "Intel Emerald Rapids": the 8573C's all-core 3.0 and the 8581C's 4.0), where the hypervisor shows only
    the TSC rate, the base clock. The development VM's unnamed Zen 4 and Zen 5 ran 3.57-3.66 and 3.89-4.01 GHz (3.7 and
    4.1 here); None for a design no listed part has."""
    return min((r["turbo_ghz"] for r in data("x86_part_clocks.json")["parts"] if r["design"] == design), default=None)


def x86_design(cpu: Cpu | None) -> dict | None:
    """The core design of an x86 CPU where devices.json's `x86_designs` has one (whose decode differs from its ISA row's,
    or whose VMs' hidden clock its parts' published turbos tell), with how it was told (``how``): by the CPUID vendor,
    family and model (/proc/cpuinfo), which a cloud VM's bare "AMD EPYC" still carries, else by a brand name that only
    that design's parts have. None: none of those."""
    if cpu is None or cpu.arch not in X86_ARCHES:
        return None
    rows = devices()["x86_designs"]["rows"]
    if cpu.vendor_id is not None and cpu.cpu_family is not None and cpu.cpu_model is not None:
        model = cpu.cpu_model
        found = next((r for r in rows if (r["vendor_id"], r["family"]) == (cpu.vendor_id, cpu.cpu_family)
                      and any(lo <= model <= hi for lo, hi in r["models"])), None)
        how = f"CPUID family {cpu.cpu_family} model {model}"
    else:
        found = next((r for r in rows if re.search(r["names"], cpu.brand)), None)
        how = "by its name"
    return {**found, "how": how} if found else None
