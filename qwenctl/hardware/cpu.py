"""CPU: brand, cores and the ISA features llama.cpp's kernels care about.

Method 1 (Linux): /proc/cpuinfo — x86 `flags`, ARM `Features` or a RISC-V hart's `isa` string. x86 physical cores are
counted as psutil and lscpu do: step 1, `cpu cores` of each socket (distinct `physical id`)
summed; step 2, distinct (physical id, core id) pairs; step 3, one core per processor. Method 2 (macOS): sysctl hw.* / machdep.cpu.*. Method 3
(Windows): Win32_Processor through wmic, else PowerShell's Get-CimInstance (name, cores and logical processors per
socket, the nominal clock), with the ISA features llama.cpp's own CPU backend reports (llama_print_system_info),
since Windows has no cpuinfo, and Win32_ComputerSystem's SMBIOS maker and model, which name a virtual machine's
hypervisor (as /sys/class/dmi/id does on Linux, for an Arm guest with no `hypervisor` flag). Anything else is
reported absent rather than guessed.
"""

from __future__ import annotations

import dataclasses
import math
from collections import Counter
from typing import Any

from qwenctl.hardware import apple, cgroup
from qwenctl.hardware._parse import (
    ParseError,
    colon_fields,
    cpulist,
    data,
    sysctl,
    to_int,
    win32_argvs,
    win32_blocks,
    win32_listing,
)
from qwenctl.hardware.facts import Absent, Cpu
from qwenctl.hardware.snapshot import THIRTY_TWO_BIT_MACHINES, Source

# /proc/cpuinfo flag -> the name qwenctl reports (x86 flags keep their kernel names).
X86_FLAGS = ("avx", "avx2", "avx512f", "avx512bw", "avx512_vnni", "avx_vnni", "fma", "f16c", "amx_int8")
ARM_FEATURES = {"asimd": "neon", "neon": "neon", "asimdhp": "fp16", "asimddp": "dotprod", "i8mm": "i8mm",
                "sve": "sve", "sve2": "sve2"}
# macOS sysctl hw.optional.* -> reported flag (Apple's feature names, hw.optional.arm.FEAT_*).
MAC_FLAGS = {
    "hw.optional.neon": "neon", "hw.optional.arm.AdvSIMD": "neon", "hw.optional.arm.FEAT_FP16": "fp16",
    "hw.optional.arm.FEAT_DotProd": "dotprod", "hw.optional.arm.FEAT_I8MM": "i8mm",
    "hw.optional.arm.FEAT_SME": "sme", "hw.optional.avx1_0": "avx", "hw.optional.avx2_0": "avx2",
    "hw.optional.avx512f": "avx512f", "hw.optional.avx512bw": "avx512bw", "hw.optional.fma": "fma",
}
CPUFREQ_MAX = "/sys/devices/system/cpu/cpu{}/cpufreq/cpuinfo_max_freq"
CPU_BASE = "/sys/devices/system/cpu/cpu{}/cpufreq/base_frequency"  # intel_pstate with HWP, kHz
CPPC_NOMINAL = "/sys/devices/system/cpu/cpu{}/acpi_cppc/nominal_freq"  # ACPI CPPC (AMD, Arm servers), MHz
PMU_P_CORES = "/sys/devices/cpu_core/cpus"  # Intel hybrid: a perf PMU per core type, each with its CPUs
PMU_E_CORES = "/sys/devices/cpu_atom/cpus"
ARCH_NAMES = {"aarch64": "arm64", "arm64": "arm64", "amd64": "x86_64", "x86_64": "x86_64",
              # 32-bit kernels: "arm" (armv6l ... armv8l), "x86" (i386 ... i686)
              **{m: "arm" if m.startswith("arm") else "x86" for m in THIRTY_TWO_BIT_MACHINES if not m.startswith("riscv")}}
WMIC_ARGV, CIM_ARGV = win32_argvs("cpu", "Win32_Processor", "Name,NumberOfCores,NumberOfLogicalProcessors,MaxClockSpeed")
SYSTEM_ARGVS = win32_argvs("computersystem", "Win32_ComputerSystem", "Manufacturer,Model")
DMI_NAMES = ("sys_vendor", "product_name", "board_vendor", "bios_vendor")  # /sys/class/dmi/id: mode 0444
# SMBIOS names (system maker and product; on Linux the board's and firmware's makers too) that begin with these are
# hypervisors' (systemd's detect_vm_dmi_vendor table, src/basic/virt.c, less "Oracle Corporation", which it reads from
# the board and which also makes bare-metal servers)
VM_SMBIOS_PREFIXES = ("KVM", "OpenStack", "KubeVirt", "Amazon EC2", "QEMU", "VMware", "VMW", "innotek GmbH", "VirtualBox",
                      "Xen", "Bochs", "Parallels", "BHYVE", "Hyper-V", "Apple Virtualization", "Google Compute Engine")
# llama_print_system_info's CPU features -> the names the other probes report
LLAMA_CPU_FEATURES = {"AVX": "avx", "AVX2": "avx2", "AVX512": "avx512f", "AVX512_VNNI": "avx512_vnni",
                      "AVX_VNNI": "avx_vnni", "FMA": "fma", "F16C": "f16c", "AMX_INT8": "amx_int8", "NEON": "neon",
                      "FP16_VA": "fp16", "DOTPROD": "dotprod", "MATMUL_INT8": "i8mm", "SVE": "sve"}


def probe(source: Source) -> Cpu | Absent:
    arch = ARCH_NAMES.get(source.machine.lower(), source.machine)
    if source.system == "Darwin":
        values = sysctl(source)
        if values is None:
            return Absent("sysctl gave no answer")
        return _from_sysctl(values, arch)
    if source.system == "Linux":
        text = source.read_text("/proc/cpuinfo")
        cpu = parse_cpuinfo(text, arch)
        if cpu.arch == "x86_64":
            kinds, first = hybrid_cores(source, text), 0  # a hybrid numbers its P-cores first
        else:
            kinds, first = arm_core_kinds(text)
        if not cpu.virtual_machine:  # an Arm guest has no `hypervisor` flag to show: its firmware's names tell
            cpu = dataclasses.replace(cpu, virtual_machine=smbios_virtual_machine(*dmi_names(source)))
        top = max_clock_mhz(source, first)
        base = base_clock_mhz(source, first) or (vm_nominal_clock_mhz(text) if cpu.virtual_machine and not top else None)
        usable = usable_cpus(source, cpu.logical_cores)
        return dataclasses.replace(cpu, max_clock_mhz=top, base_clock_mhz=base,
                                   performance_cores=kinds[0] if kinds else None,
                                   efficiency_cores=kinds[1] if kinds else None,
                                   usable_cpus=usable[0] if usable else None, usable_cpus_source=usable[1] if usable else None)
    if source.system == "Windows":
        listing = win32_listing(source, (WMIC_ARGV, CIM_ARGV))
        if not listing:
            return Absent("neither wmic nor PowerShell's Get-CimInstance answered for Win32_Processor")
        cpu = parse_win32_processor(listing, arch)
        info = source.llama_system_info() or ""
        cpu = dataclasses.replace(cpu, flags=llama_cpu_flags(info),
                                  flags_source="llama.cpp's system info" if "CPU :" in info else None,
                                  virtual_machine=win32_virtual_machine(win32_listing(source, SYSTEM_ARGVS) or ""))
        return _with_core_classes(cpu, source.processor_cores())
    return Absent(f"no CPU probe for {source.system} yet")


def usable_cpus(source: Source, logical_cores: int) -> tuple[float, str] | None:
    """(CPUs, why) this process may keep busy at once, where fewer than the machine's: its affinity mask
    (/proc/self/status `Cpus_allowed_list`: `taskset`, `docker --cpuset-cpus`, a board whose kernel keeps some
    cores from ordinary processes) and its cgroup's CPU quota (`docker --cpus`, a Kubernetes limit), the smaller.
    llama.cpp's threads beyond it queue for the same CPUs, and each waits for the slowest at every step."""
    found = []
    try:  # a fact that cannot be read limits nothing: the machine's cores stand
        status = colon_fields(source.read_text("/proc/self/status"))
        if "Cpus_allowed_list" in status:
            allowed = status["Cpus_allowed_list"].strip()
            found.append((float(len(cpulist(allowed))), f"affinity: CPUs {allowed} (/proc/self/status)"))
    except (OSError, ParseError):
        pass
    try:
        quota = cgroup.cpu_quota(source)
    except (OSError, ParseError):
        quota = None
    if quota is not None:
        found.append((quota.cpus, f"CPU quota {quota.cpus:g} CPUs ({quota.source})"))
    fewest = min(found, default=None)
    return fewest if fewest is not None and fewest[0] < logical_cores else None


def thread_limit(logical_cores: int, usable: float | None) -> int:
    """The most threads worth giving llama.cpp: one per logical CPU this process may use (`usable_cpus`), and under a
    quota one per CPU or part of one."""
    return min(logical_cores, max(1, math.ceil(usable))) if usable else logical_cores


def _with_core_classes(cpu: Cpu, buffer: bytes | None) -> Cpu:
    """A Windows CPU's performance and efficiency cores from the kernel's EfficiencyClass per core (win32_cores.py),
    which, unlike Win32_Processor's counts, also splits a hybrid without Hyper-Threading (Lunar Lake, Arrow Lake):
    the cores of the highest class are the performance cores. Kept as counted where every core is alike or the
    records do not add up to Win32_Processor's cores."""
    from qwenctl.hardware import win32_cores

    classes = win32_cores.efficiency_classes(buffer or b"")
    if len(set(classes)) < 2 or len(classes) != cpu.physical_cores:
        return cpu
    performance = classes.count(max(classes))
    return dataclasses.replace(cpu, performance_cores=performance, efficiency_cores=len(classes) - performance)


def parse_win32_processor(text: str, arch: str) -> Cpu:
    """Win32_Processor as wmic ("Name=...") or Format-List ("Name : ...") prints it: one block per socket, whose
    cores and logical processors add up. MaxClockSpeed is the nominal clock (an i7-4710MQ's 2,500 MHz), the one the
    CPU guarantees with every core busy: what the speed model's CPU constants were fitted on.

    Win32_Processor does not split a hybrid's cores, but its counts do: an Intel hybrid of the 12th to 14th generation
    runs two threads on each performance core and one on each efficiency core, so where a socket has more logical
    processors than cores and fewer than twice as many, P = logical - cores and E = 2 x cores - logical (an i5-12600KF's
    10 cores and 16 threads: 6 + 4). A hybrid without Hyper-Threading (Lunar Lake, Arrow Lake) is split by the
    kernel's efficiency class per core instead (`_with_core_classes`)."""
    sockets = [fields for fields in win32_blocks(text) if fields.get("Name")]
    if not sockets:
        raise ParseError("Win32_Processor lists no processor")
    try:
        cores = sum(int(b["NumberOfCores"]) for b in sockets)
        logical = sum(int(b["NumberOfLogicalProcessors"]) for b in sockets)
    except (KeyError, ValueError) as e:
        raise ParseError(f"Win32_Processor core counts unreadable: {e}") from None
    if not 0 < cores <= logical:
        raise ParseError(f"Win32_Processor counts {cores} cores and {logical} logical processors")
    clock = sockets[0].get("MaxClockSpeed", "")
    hybrid = cores < logical < 2 * cores
    return Cpu(brand=sockets[0]["Name"], arch=arch, physical_cores=cores, logical_cores=logical,
               cores_source="NumberOfCores x sockets (Win32_Processor)", sockets=len(sockets),
               base_clock_mhz=int(clock) if clock.isdigit() and int(clock) > 0 else None,
               performance_cores=logical - cores if hybrid else None, efficiency_cores=2 * cores - logical if hybrid else None)


def win32_virtual_machine(listing: str) -> bool:
    """Whether Win32_ComputerSystem's maker and model are a hypervisor's (`smbios_virtual_machine`). Windows has no
    cpuinfo `hypervisor` flag to read, and its HypervisorPresent is true on bare metal too wherever virtualization-based
    security runs Hyper-V under the host."""
    fields = next(iter(win32_blocks(listing)), {})
    return smbios_virtual_machine(fields.get("Manufacturer", ""), fields.get("Model", ""))


def dmi_names(source: Source) -> tuple[str, ...]:
    """Linux's SMBIOS names that any user may read (/sys/class/dmi/id: the system's maker and product, the board's and
    the firmware's makers), "" for each that is missing: a board without SMBIOS (a Raspberry Pi) has none."""
    names = []
    for field in DMI_NAMES:
        try:
            names.append(source.read_text(f"/sys/class/dmi/id/{field}").strip())
        except OSError:
            names.append("")
    return tuple(names)


def smbios_virtual_machine(maker: str, model: str, *others: str) -> bool:
    """Whether SMBIOS names a hypervisor: the system's maker and product (SMBIOS type 1: Win32_ComputerSystem's
    Manufacturer and Model, Linux's sys_vendor and product_name) and any others read beside them (Linux: the board's
    and the firmware's makers, which systemd's detect_vm_dmi_vendor reads too: a Hetzner Cloud server is
    "Hetzner" / "vServer" on a "KVM" board). Hyper-V and Azure guests are "Microsoft Corporation" / "Virtual Machine"
    (Microsoft's own Surface devices share the maker only). An EC2 bare-metal instance keeps Amazon's maker with a
    product ending ".metal" (systemd's fallback test)."""
    if maker.startswith("Amazon EC2") and (model.endswith(".metal") or ".metal-" in model):
        return False
    if maker == "Microsoft Corporation" and model == "Virtual Machine":
        return True
    return any(name.startswith(VM_SMBIOS_PREFIXES) for name in (model, maker, *others) if name)


def llama_cpu_flags(system_info: str | None) -> tuple[str, ...]:
    """The ISA features in the CPU part of ``llama_print_system_info`` ("CPU : SSE3 = 1 | AVX = 1 | ..."), in the
    names the other probes give; () where libllama did not answer."""
    if not system_info or "CPU :" not in system_info:
        return ()
    part = system_info.split("CPU :", 1)[1]
    on = {name.strip() for name, _, value in (f.partition("=") for f in part.split("|")) if value.strip() == "1"}
    return tuple(dict.fromkeys(flag for name, flag in LLAMA_CPU_FEATURES.items() if name in on))


def max_clock_mhz(source: Source, cpu: int = 0) -> int | None:
    """The kernel's cpufreq maximum of one CPU (kHz in sysfs; a performance core's, the clock llama.cpp's
    threads run near); None where there is no cpufreq driver (most VMs), and the speed model then says it
    assumed one."""
    path = CPUFREQ_MAX.format(cpu)
    try:
        khz = to_int(source.read_text(path).strip(), path)
    except (OSError, ParseError):
        return None
    return khz // 1000 if khz > 0 else None


def base_clock_mhz(source: Source, cpu: int = 0) -> int | None:
    """The clock the CPU guarantees with every core busy, as llama.cpp's threads keep them: intel_pstate's
    `base_frequency` ("any frequency above this is in the turbo range", kernel docs), else ACPI CPPC's
    `nominal_freq` ("the maximum sustained performance level"; amd-pstate exposes it). cpufreq's maximum
    is the one-core turbo, which an all-core load does not hold. None where neither file says (a broken
    BIOS writes 0 to nominal_freq)."""
    for path, per_mhz in ((CPU_BASE.format(cpu), 1000), (CPPC_NOMINAL.format(cpu), 1)):
        try:
            value = to_int(source.read_text(path).strip(), path) // per_mhz
        except (OSError, ParseError):
            continue
        if value > 0:
            return value
    return None


def vm_nominal_clock_mhz(cpuinfo: str) -> int | None:
    """A virtual machine's CPU clock: cpuinfo's "cpu MHz", read where the kernel runs under a hypervisor
    (`Cpu.virtual_machine`) with no cpufreq driver, as most cloud VMs do. There it is the TSC rate the host
    exposes, which on Intel and AMD is the nominal (base) clock, the clock the CPU constants were fitted
    on; a typical 3.5 GHz stood in before (the development VM reports 2,600 MHz). On bare metal the line
    is the current clock of an idle core, so it is not read there."""
    blocks = _processor_blocks(cpuinfo)
    if not blocks:
        return None
    try:
        mhz = round(float(blocks[0].get("cpu MHz", "")))
    except ValueError:
        return None
    return mhz if mhz > 0 else None


def hybrid_cores(source: Source, cpuinfo: str) -> tuple[int, int] | None:
    """(performance, efficiency) physical cores of a hybrid x86 CPU; None where its cores are all alike.

    llama.cpp runs its threads on the performance cores of such a CPU (common's cpu_get_num_math), and
    `machine.threads` does the same, so it must know them. The kernel publishes one perf PMU per core type
    (tools/perf/Documentation/intel-hybrid.txt: /sys/devices/cpu_core/cpus "0-15", cpu_atom/cpus "16-23");
    where those are not readable, each CPU's intel_pstate base_frequency tells the kinds apart (a Raptor Lake
    i7-1370P: 1,900,000 kHz on its P-cores' 12 CPUs, 1,400,000 on its E-cores' 8; hwloc's capture of one).
    E-cores are numbered last, so a CPU that is not hybrid costs one read of its last CPU's base."""
    blocks = _processor_blocks(cpuinfo)
    try:
        ids = [int(b["processor"]) for b in blocks]
    except ValueError:
        return None
    kinds = _pmu_kinds(source) or _base_clock_kinds(source, ids)
    if kinds is None:
        return None
    core = {int(b["processor"]): (b.get("physical id"), b.get("core id", b["processor"])) for b in blocks}
    performance, efficiency = ({core.get(c, ("cpu", c)) for c in cpus} for cpus in kinds)
    return len(performance), len(efficiency)


def _pmu_kinds(source: Source) -> tuple[set[int], set[int]] | None:
    try:
        p, e = (cpulist(source.read_text(path)) for path in (PMU_P_CORES, PMU_E_CORES))
    except (OSError, ParseError):
        return None
    return (p, e) if p and e else None


def _base_clock_kinds(source: Source, cpus: list[int]) -> tuple[set[int], set[int]] | None:
    def base(cpu: int) -> int | None:
        try:
            return to_int(source.read_text(CPU_BASE.format(cpu)).strip(), "base_frequency")
        except (OSError, ParseError):
            return None

    if len(cpus) < 2 or base(cpus[0]) in (None, base(cpus[-1])):
        return None
    clocks = {c: base(c) for c in cpus}
    if None in clocks.values():
        return None
    top = max(v for v in clocks.values() if v is not None)
    return {c for c, v in clocks.items() if v == top}, {c for c, v in clocks.items() if v != top}


def _processor_blocks(cpuinfo: str) -> list[dict[str, str]]:
    """/proc/cpuinfo's blocks that describe a processor, each with the fields the kernel printed once for all of them.

    An Arm kernel adds a trailing block without a `processor` line (Hardware, Revision). An older 32-bit Arm kernel
    printed the core's description there too (Features, CPU implementer, CPU part: an ODROID-U2's four Cortex-A9s),
    after blocks holding only `processor` and BogoMIPS, and a uniprocessor one printed no `processor` line at all: its
    one block, headed `Processor : ARMv6-compatible processor`, is the CPU (a Raspberry Pi 1 on an older kernel)."""
    blocks = [colon_fields(x) for x in cpuinfo.split("\n\n")]
    cpus = [b for b in blocks if "processor" in b] or [b for b in blocks if "Processor" in b][:1]
    shared = {k: v for b in blocks if b not in cpus for k, v in b.items()}
    return [{**shared, **b} for b in cpus]


def parse_cpuinfo(text: str, arch: str) -> Cpu:
    blocks = _processor_blocks(text)
    if not blocks:
        raise ParseError("/proc/cpuinfo lists no processor")
    first = blocks[0]
    if "flags" in first:  # x86
        present = set(first["flags"].split())
        flags = tuple(f for f in X86_FLAGS if f in present)
        physical, sockets, how = _x86_cores(blocks)
        brand = first.get("model name") or first.get("vendor_id") or "unknown x86 CPU"
    elif "isa" in first:  # RISC-V: one hart per core on the boards this targets
        flags = riscv_flags(first)
        physical, sockets, how = len(blocks), None, "one core per hart (RISC-V)"
        brand = first.get("model name") or riscv_core_name(first) or "unknown RISC-V CPU"
    elif arch.startswith(("arm", "aarch")) or "CPU implementer" in first:  # one logical CPU per core (no SMT)
        present = set(first.get("Features", "").split())
        flags = tuple(dict.fromkeys(ARM_FEATURES[f] for f in ARM_FEATURES if f in present))
        physical, sockets, how = len(blocks), None, "one core per processor (ARM: no SMT)"
        brand = _arm_cores_name(blocks) or first.get("model name") or first.get("Processor") or "unknown ARM CPU"
    else:  # POWER, LoongArch, s390x...: named as their cpuinfo does, no flags the speed model knows
        flags, physical, sockets, how = (), len(blocks), None, f"one core per processor ({arch}: topology not read)"
        brand = first.get("model name") or first.get("Model Name") or first.get("cpu") or f"unknown {arch} CPU"
    return Cpu(brand=brand, arch=arch, physical_cores=physical, logical_cores=len(blocks), flags=flags,
               cores_source=how, sockets=sockets, flags_source="/proc/cpuinfo",
               virtual_machine="hypervisor" in first.get("flags", "").split(), **_x86_id(first))


def _x86_id(block: dict[str, str]) -> dict[str, Any]:
    """An x86 processor's CPUID vendor, family and model (decimal in /proc/cpuinfo); {} where a line is missing or odd."""
    try:
        return {"vendor_id": block["vendor_id"], "cpu_family": int(block["cpu family"]), "cpu_model": int(block["model"])}
    except (KeyError, ValueError):
        return {}


T_HEAD_VENDOR_ID = "0x5b7"  # mvendorid of T-Head (C906, C910, C920), whose vector units implement RVV 0.7.1


def riscv_flags(hart: dict[str, str]) -> tuple[str, ...]:
    """The vector extension of a RISC-V hart from its /proc/cpuinfo block: "rvv" where the single-letter extensions
    of its ISA string ("rv64imafdcv_zicbom_...") include V, the ratified RVV 1.0 that llama.cpp's RISC-V kernels use;
    "xtheadvector" for T-Head's pre-ratification RVV 0.7.1, which a standard build cannot use (GGML_XTHEADVECTOR
    builds for it). Older T-Head kernels print a bare V for 0.7.1 (a TH1520's "rv64imafdcvsu" with "cpu-vector :
    0.7.1", an SG2042's "rv64imafdcv"): their vendor ID tells."""
    base, *extensions = hart.get("isa", "").strip().lower().split("_")
    vector = base.startswith(("rv64", "rv32")) and "v" in base[4:]
    if "xtheadvector" in extensions or (vector and (hart.get("mvendorid") == T_HEAD_VENDOR_ID
                                                    or hart.get("cpu-vector", "").startswith("0."))):
        return ("xtheadvector",)
    return ("rvv",) if vector else ()


RISCV_VENDORS = {"sifive": "SiFive", "thead": "T-Head", "spacemit": "SpacemiT", "starfive": "StarFive",
                 "sophgo": "Sophgo", "eswin": "ESWIN"}
RISCV_VENDOR_IDS = {"0x489": "SiFive", T_HEAD_VENDOR_ID: "T-Head", "0x710": "SpacemiT"}


def riscv_core_name(hart: dict[str, str]) -> str | None:
    """A hart's brand: its `uarch` line ("sifive,u74-mc", vendor and core as the device tree names them) as
    "SiFive U74-MC", else the vendor its `mvendorid` (a JEDEC ID) names; None where neither is there."""
    uarch = hart.get("uarch", "").strip()
    if "," in uarch:
        vendor, _, core = uarch.partition(",")
        return f"{RISCV_VENDORS.get(vendor, vendor.capitalize())} {core.upper()}"
    named = RISCV_VENDOR_IDS.get(hart.get("mvendorid", ""))
    return uarch or (f"{named} RISC-V CPU" if named else None)


def _x86_cores(blocks: list[dict[str, str]]) -> tuple[int, int | None, str]:
    """(physical cores, sockets, which step counted them)."""
    per_socket: dict[str, str | None] = {}
    for b in blocks:
        if "physical id" in b:
            per_socket.setdefault(b["physical id"], b.get("cpu cores"))
    if per_socket and all(per_socket.values()):
        cores = sum(to_int(n, "/proc/cpuinfo cpu cores") for n in per_socket.values())
        return cores, len(per_socket), "cpu cores x sockets (/proc/cpuinfo)"
    pairs = {(b.get("physical id"), b.get("core id")) for b in blocks if "core id" in b}
    if pairs:
        return len(pairs), len(per_socket) or None, "distinct (physical id, core id) pairs"
    return len(blocks), len(per_socket) or None, "one core per processor (no topology in /proc/cpuinfo)"


def _arm_cores_name(blocks: list[dict[str, str]]) -> str | None:
    """The core most of the performance CPUs are ("ARM Cortex-A720" for 8 A720s and 4 A520s; "ARM Cortex-A76"
    for an RK3588's 4 A76s and 4 A55s), which sets the speed model's per-core rates; on a tie the one listed
    last (big cores come after little ones in /proc/cpuinfo). CPU 0 alone would name the little core of most
    big.LITTLE chips."""
    names = [n for n in map(arm_core_name, blocks) if n]
    big = [n for n in names if not _little(n)]
    names = big or names
    if not names:
        return None
    counts = Counter(names)
    return max(reversed(names), key=lambda n: counts[n])


def arm_core_kinds(cpuinfo: str) -> tuple[tuple[int, int] | None, int]:
    """((performance, efficiency) cores, the first performance CPU) of an Arm CPU; (None, 0) where all its
    cores are alike or unnamed.

    The efficiency cores are Arm's in-order LITTLE ones (arm_cpu_parts.json `_little_cores`: an RK3588's
    four Cortex-A55 beside four A76, a Cix P1's four A520 beside eight A720). llama.cpp splits every op
    evenly over its threads and waits for the last, so a little core sets the pace of the big ones;
    `machine.threads` runs on the big cores, and their cpufreq (not CPU 0's, often a little core) is the
    clock the speed model prices them at."""
    blocks = _processor_blocks(cpuinfo)
    little = [_little(n) if n else None for n in map(arm_core_name, blocks)]
    if None in little or all(little) or not any(little):
        return None, 0
    first = next(b for b, is_little in zip(blocks, little) if not is_little)
    try:
        cpu = int(first["processor"])
    except ValueError:
        cpu = 0
    return (little.count(False), little.count(True)), cpu


def _little(core_name: str) -> bool:
    return core_name.split(" ", 1)[-1] in data("arm_cpu_parts.json")["_little_cores"]


def arm_core_name(block: dict[str, str]) -> str | None:
    """"ARM Cortex-A76", "Qualcomm Kryo 4XX Gold": a cpuinfo block's core by its implementer and part number."""
    implementer, part = block.get("CPU implementer"), block.get("CPU part")
    if not implementer or not part:
        return None
    vendor = data("arm_cpu_parts.json").get(implementer.lower())
    if vendor is None or part.lower() not in vendor:
        return None
    return f"{vendor['_vendor']} {vendor[part.lower()]}"


def _from_sysctl(values: dict[str, str], arch: str) -> Cpu:
    def count(name: str) -> int | None:
        return to_int(values[name], name) if name in values else None

    logical = count("hw.logicalcpu") or count("hw.ncpu")
    physical = count("hw.physicalcpu") or logical
    if not logical or not physical:
        raise ParseError("sysctl reported no CPU count")
    flags = tuple(dict.fromkeys(flag for key, flag in MAC_FLAGS.items() if values.get(key) == "1"))
    two_levels = count("hw.nperflevels") == 2 or "hw.perflevel1.physicalcpu" in values
    return Cpu(
        cores_source="sysctl hw.physicalcpu" if "hw.physicalcpu" in values else "sysctl hw.logicalcpu",
        sockets=count("hw.packages"),
        brand=values.get("machdep.cpu.brand_string", "unknown"),
        arch=arch,
        physical_cores=physical,
        logical_cores=logical,
        performance_cores=count("hw.perflevel0.physicalcpu") if two_levels else None,
        efficiency_cores=count("hw.perflevel1.physicalcpu") if two_levels else None,
        flags=flags,
        flags_source="sysctl hw.optional",
        virtual_machine=apple.virtual_machine(values.get("machdep.cpu.brand_string", "")),
    )
