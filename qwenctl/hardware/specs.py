"""Peak figures of a device that no probe reports: ALU and matrix throughput, family, memory kind.

Read from hardware/data/devices.json (published specifications, each with its source), or
derived from what was detected (CUDA cores x SM clock x the architecture's per-SM rates from
the same file), or, as a last resort, assumed — and then said so in ``assumed`` so the plan
can name it.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from qwenctl.hardware._parse import data
from qwenctl.hardware.facts import AppleSilicon, Board, Cpu, NvidiaGpu


@dataclass(frozen=True)
class GpuPeaks:
    family: str  # "nvidia-ada", "nvidia-hopper", ...
    memory_kind: str  # "hbm" | "gddr" | "gpu_lpddr" (_memory_kind)
    fp32_flops: float
    int8_ops: float  # dense int8 matrix peak (tensor cores; dp4a where there are none)
    fp16_flops: float  # dense fp16 matrix peak (tensor cores; the FP32 rate where FP16 is slower)
    bandwidth_bytes_per_s: float | None  # the specification's, for when NVML has none
    source: str
    assumed: tuple[str, ...] = ()
    sm_count: int = 0
    clock_hz: float = 0.0  # the rated boost: the specification's, else what NVML says of it (`nvml_rated_clock`)
    above_rated_clock: bool = False  # a desktop GeForce card: GPU Boost holds it above its rated boost under load
    # (fp32-accumulate, fp16-accumulate) rates of the fp16 mma.sync that llama.cpp's flash attention issues; 0: none
    attention_mma_flops: tuple[float, float] = (0.0, 0.0)


def geforce_desktop(spec: dict) -> bool:
    """Whether a specification is a desktop GeForce (or TITAN) card. Their GPU Boost runs well above the rated boost
    clock under load wherever power and temperature allow (an RTX 4090 Founders Edition at 2,810-2,850 MHz in a
    game against its rated 2,520; an RTX 3090 Ti at 2,000-2,050 against 1,860: TweakTown, 2022-09-22), where
    workstation and data-centre boards hold theirs, and laptops are held by their power limit."""
    return spec.get("segment") == "desktop" and _geforce_card(spec)


def _geforce_card(spec: dict) -> bool:
    """Whether a specification is a GeForce (or TITAN) card, desktop or laptop, by the names NVML gives it."""
    return any(_geforce(n) for n in spec.get("nvml_names") or [])


def _geforce(name: str) -> bool:
    return "GeForce" in name or "TITAN" in name


# NVML names of GeForce and workstation boards, whose max clock sits above their rated boost (`nvml_rated_clock`)
_BOARD_BRANDS = re.compile(r"GeForce|TITAN|Quadro|NVIDIA RTX")


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


def _devices() -> dict:
    return data("devices.json")


def _bare(name: str) -> str:
    """NVML names lost the 'NVIDIA ' prefix on older drivers: compare without it."""
    return name.lower().removeprefix("nvidia ").strip()


def gpu_spec(name: str, board: str | None = None, memory_bytes: int | None = None,
             power_limit_w: float | None = None) -> dict | None:
    """The specification of the GPU NVML calls `name`: an exact name first, else the longest contained one.

    Where several modules share an NVML name (every Jetson Orin is "Orin (nvgpu)"), the board it sits on
    (`board`, the device-tree model) picks the module by its `board_models` words, and the memory (the host's
    RAM on an integrated GPU) the variant: without them an Orin Nano was priced as the first row, an AGX Orin.
    Where a desktop card and its laptop part share one (Turing's "GeForce RTX 2070": 175 W and 36 SMs at 1,620 MHz
    on the desktop, 115 W at 1,440 in a laptop), NVML's power limit picks the row rated nearest it; a limit NVML does
    not report (many laptops answer N/A) leaves the first row, the desktop card's."""
    bare = _bare(name)
    exact = [row for row in _devices()["gpus"] if any(_bare(n) == bare for n in row.get("nvml_names", []))]
    if exact:
        return _module(exact, board, memory_bytes, power_limit_w)
    # else the longest row name the name contains, as whole words (A30 is not A3000), its memory size aside: NVIDIA
    # names some laptop parts by it ("RTX 3050 6GB Laptop GPU" is the RTX 3050 Laptop GPU's chip with 6 GB). A name
    # that goes on with Ti or SUPER is another chip or more SMs ("GTX 1650 Ti" is a laptop TU117 with 1,024 cores, the
    # GTX 1650 a 75 W desktop card with 896), so it is no match: NVML's own cores and clock price it instead
    texts = (bare, re.sub(r"\s\d+\s?gb\b", "", bare))
    laptop = _mobile(bare)
    best, best_len = None, 0
    for row in _devices()["gpus"]:
        if laptop and not _mobile(row["key"]) and not any(_mobile(n) for n in row.get("nvml_names", [])):
            continue  # a laptop's GPU is never a desktop card: fewer SMs, lower clocks (NVML's own figures price it instead)
        for n in row.get("nvml_names", []):
            b = _bare(n)
            if len(b) > best_len and any(re.search(rf"(?<!\w){re.escape(b)}(?!\w)(?!\s+(ti|super)\b)", t) for t in texts):
                best, best_len = row, len(b)
    return best


def _mobile(name: str) -> bool:
    """A laptop's GPU, by the words NVIDIA names one with ("Laptop GPU", Turing's "with Max-Q Design"), or a GeForce MX
    (MX110 to MX570: laptop parts only)."""
    lower = name.lower()
    return any(word in lower for word in ("laptop", "max-q", "mobile")) or re.search(r"\bmx\d{3}\b", lower) is not None


def board_gpu_spec(board: str, memory_bytes: int | None) -> dict | None:
    """The integrated GPU a board's device-tree model names (a Jetson module by its `board_models` words), or None:
    what stands in for NVML where a board has none (JetPack before 6)."""
    rows = [r for r in _devices()["gpus"] if _board_words(r, board)]
    return _module(rows, board, memory_bytes) if rows else None


def _board_words(row: dict, board: str | None) -> int:
    """How many of a module's `board_models` words the board's model has: all of them, else 0."""
    names = row.get("board_models", [])
    return len(names) if board and names and all(w.lower() in board.lower() for w in names) else 0


def _module(rows: list[dict], board: str | None, memory_bytes: int | None, power_limit_w: float | None = None) -> dict:
    def memory_gap(row: dict) -> tuple[bool, float]:  # a module the memory fits in first, then the nearest size
        if not memory_bytes or not row.get("memory_gib"):
            return False, 0.0
        gib = memory_bytes / 2**30
        return row["memory_gib"] < gib, abs(row["memory_gib"] - gib)

    def power_gap(row: dict) -> float:  # then the board power nearest NVML's limit (a rated range: 0 inside it)
        rated = row.get("power_w")
        if not power_limit_w or not rated:
            return 0.0
        low, high = (min(rated), max(rated)) if isinstance(rated, list) else (rated, rated)
        return abs(math.log(min(max(power_limit_w, low), high) / power_limit_w))

    most = max(_board_words(r, board) for r in rows)
    return min((r for r in rows if _board_words(r, board) == most), key=lambda r: (*memory_gap(r), power_gap(r)))


def gpu_spec_of(gpu: NvidiaGpu) -> dict | None:
    """`gpu_spec` for a detected GPU: its NVML name (a MIG instance's parent's), its board, and its memory (an
    integrated GPU's is the host's RAM) to tell apart cards and modules NVML names alike (RTX 3080 10/12 GB)."""
    return gpu_spec(gpu.parent_name or gpu.name, gpu.board, None if gpu.mig_profile else gpu.memory_total_bytes,
                    gpu.power_limit_w)


def gpu_spec_by_key(key: str) -> dict | None:
    """A GPU's specification row by its key ("rtx-4090"), for replaying published measurements."""
    return next((r for r in _devices()["gpus"] if r.get("key") == key), None)


def apple_spec_by_key(key: str) -> dict | None:
    """An Apple chip configuration by its key ("apple-m2-max-38c")."""
    return next((r for r in _devices()["apple"] if r.get("key") == key), None)


def _arch(cc: tuple[int, int] | None) -> dict | None:
    """The per-SM figures of a compute capability; one that NVIDIA renumbered (Thor's 10.1, 11.0 since CUDA 13)
    names the entry it is `same_as`."""
    table = _devices()["nvidia_arch"]
    arch = table.get(f"{cc[0]}.{cc[1]}") if cc else None
    return table[arch["same_as"]] if arch and "same_as" in arch else arch


def _listed_below(cc: tuple[int, int], embedded: bool) -> tuple[int, int] | None:
    """For a compute capability the table does not list, the listed one of its major just below it among GPUs of its
    kind (an integrated one's among the embedded rows, else among the others): the SM a new chip of a known
    architecture most likely keeps (Ada's 8.9 came after Ampere's 8.6 with its 128 FP32 lanes and tensor-core rates
    per SM). None where its major has no such GPU (a new architecture)."""
    listed = {major_minor(r["compute_capability"]) for r in _devices()["gpus"] if (r["segment"] == "embedded") == embedded}
    below = [c for c in listed if c and c[0] == cc[0] and c[1] < cc[1]]
    return max(below) if below else None


def fp32_lanes_per_sm(cc: tuple[int, int] | None) -> int | None:
    arch = _arch(cc)
    return int(arch["fp32_lanes_per_sm"]) if arch and arch.get("fp32_lanes_per_sm") else None


def major_minor(text: object) -> tuple[int, int] | None:
    """(major, minor) of a "5.3"-style version: a compute capability, a CUDA toolkit; None where it is not one."""
    major, _, minor = str(text or "").partition(".")
    return (int(major), int(minor)) if major.isdigit() and minor.isdigit() else None


def spec_compute_capability(spec: dict) -> tuple[int, int] | None:
    return major_minor(spec.get("compute_capability"))


def _tensor(value, fp16_accumulate: bool = True) -> float | None:
    """A dense tensor rate that may be a number or {fp16_accumulate, fp32_accumulate, ...}."""
    if isinstance(value, dict):
        keys = ("fp16_accumulate", "fp32_accumulate", "fp32_accumulate_pro_datacenter") if fp16_accumulate else ("fp32_accumulate",)
        return next((float(value[k]) for k in keys if isinstance(value.get(k), (int, float))), None)
    return float(value) if isinstance(value, (int, float)) else None


def _mig_share(gpu: NvidiaGpu, spec: dict | None) -> float:
    """A MIG instance's share of its GPU's SMs: NVML's SM count over the whole GPU's, else the
    profile's compute slices ('3g.40gb' is 3 of 7)."""
    if not gpu.mig_profile:
        return 1.0
    if gpu.sm_count and spec and spec.get("sm_count"):
        return min(gpu.sm_count / spec["sm_count"], 1.0)
    m = re.match(r"(\d+)g\.", gpu.mig_profile)
    return int(m.group(1)) / 7 if m else 1.0


def _memory_kind(memory_type: str | None, family: str) -> str:
    """Which share of its peak a GPU's decode streams its DRAM at (speed_model.json memory_efficiency): HBM's, GDDR's,
    or a GPU's LPDDR (Jetson, DGX Spark's GB10, Thor), which is not the CPUs' LPDDR share (GB10's GPU reads its
    LPDDR5X at 0.80 of peak, docs/planning.md). A GPU of unknown memory type streams as GDDR unless its family is an
    HBM one."""
    t = (memory_type or "").upper()
    if t.startswith("HBM"):
        return "hbm"
    if t.startswith("LPDDR"):
        return "gpu_lpddr"
    if t:
        return "gddr"
    return _devices()["family_memory_kind"].get(family, "gddr")


def _chip_variant(arch: dict | None, spec: dict | None, name: str) -> dict | None:
    """A compute capability's figures for this GPU's chip: Turing's TU116/TU117 have no tensor cores
    (nvidia_arch `without_tensor_cores`, known by the specification's chip, else by llama.cpp's list of names)."""
    without = (arch or {}).get("without_tensor_cores")
    if not arch or not without:
        return arch
    chip = str((spec or {}).get("chip") or "")
    if chip.startswith(tuple(without["chips"])) or (not spec and name.startswith(tuple(without["nvml_name_prefixes"]))):
        return {**arch, **{k: v for k, v in without.items() if k not in ("chips", "nvml_name_prefixes", "_about", "sources")}}
    return arch


def nvidia_peaks(gpu: NvidiaGpu) -> GpuPeaks:
    spec = gpu_spec_of(gpu)
    cc = gpu.compute_capability or (spec_compute_capability(spec) if spec else None)
    stand_in = _listed_below(cc, gpu.unified_memory) if cc and not spec and _arch(cc) is None else None
    arch = _chip_variant(_arch(stand_in or cc), spec, gpu.parent_name or gpu.name)
    family = (arch or {}).get("family", "nvidia-unknown")
    share = _mig_share(gpu, spec)
    if spec:
        fp32 = float(spec["fp32_tflops"]) * 1e12
        int8 = _tensor(spec.get("int8_tensor_tops_dense")) or spec.get("int8_dp4a_tops")
        int8 = float(int8) * 1e12 * _mma_sync_share(arch) if int8 else (4 * fp32 if (arch or {}).get("has_dp4a") else fp32)
        fp16 = _tensor(spec.get("fp16_tensor_tflops_dense"))
        fp16 = fp16 * 1e12 if fp16 else max(fp32, float(spec.get("fp16_nontensor_tflops") or 0) * 1e12)
        rated_sms = spec.get("sm_count") or (spec.get("cuda_cores") or 0) / ((arch or {}).get("fp32_lanes_per_sm") or 128)
        cut = _nvml_cut(gpu, rated_sms)
        held, per_sm_why = held_clock(gpu, spec)
        powered, allowed, mode_why = power_mode_share(gpu, spec, arch, rated_sms)
        units, pace = share * cut * powered, held * allowed  # the SMs at work, and their clock, as shares of the row's
        mma = _attention_mma(spec.get("fp16_tensor_tflops_dense"), arch, 1e12, _geforce_card(spec))
        return GpuPeaks(
            family=family,
            memory_kind=_memory_kind(spec.get("memory_type"), family),
            fp32_flops=fp32 * units * pace,
            int8_ops=int8 * units * pace,
            fp16_flops=fp16 * units * pace,
            bandwidth_bytes_per_s=float(spec["bandwidth_gbs"]) * 1e9 * share if spec.get("bandwidth_gbs") else None,
            source=f"{spec['key']} specification ({spec['sources'][0][:80]}...)"
                   + (f", with the {gpu.sm_count} SMs NVML counts where it lists {rated_sms:g}" if cut != 1 else "")
                   + ("" if held == 1 else f", its SM clock held to {held:.2f} of its rating "
                      + (f"as {per_sm_why}" if per_sm_why else
                         f"by a {gpu.power_limit_w:.0f} W power limit where the board is rated {spec['power_w']} W")
                      + " (devices.json power_limited_clock)")
                   + (f", {mode_why}" if mode_why else ""),
            sm_count=round(rated_sms * units),
            clock_hz=(_cut_clock_hz(gpu, spec) if cut != 1 else spec_clock_hz(spec)) * pace,
            above_rated_clock=geforce_desktop(spec),
            attention_mma_flops=(mma[0] * units * pace, mma[1] * units * pace),
        )
    cores, (clock, clock_source) = gpu.cuda_cores, nvml_rated_clock(gpu) or (None, "")
    if arch and cores and clock:
        sms, hz = gpu.sm_count or cores / arch["fp32_lanes_per_sm"], clock * 1e6
        int8_clk = arch.get("int8_tensor_ops_per_clock_per_sm_dense") or arch.get("int8_dp4a_ops_per_clock_per_sm")
        fp16_clk = _tensor(arch.get("fp16_tensor_flops_per_clock_per_sm_dense"))
        fp32 = cores * 2 * hz
        return GpuPeaks(
            family=family,
            memory_kind=_memory_kind(None, family),
            fp32_flops=fp32,
            int8_ops=sms * int8_clk * hz * _mma_sync_share(arch) if int8_clk else fp32,
            fp16_flops=sms * fp16_clk * hz if fp16_clk else fp32,
            bandwidth_bytes_per_s=None,
            source=f"{cores} CUDA cores (NVML) at {clock:.0f} MHz ({clock_source}) x the {arch['name']} per-SM rates "
                   "(hardware/data/devices.json)",
            sm_count=round(sms),
            clock_hz=hz,
            above_rated_clock=_geforce(gpu.name) and not _mobile(gpu.name),
            attention_mma_flops=_attention_mma(arch.get("fp16_tensor_flops_per_clock_per_sm_dense"), arch, sms * hz,
                                               _geforce(gpu.name)),
            assumed=(f"{gpu.name}: compute capability {cc[0]}.{cc[1]} is not in this release's table; its SMs priced as "
                     f"{stand_in[0]}.{stand_in[1]}'s ({arch['name']})",) if cc and stand_in else (),
        )
    fb = _devices()["unknown_gpu"]
    bw = gpu.bandwidth_bytes_per_s or fb["bandwidth_bytes_per_s"]
    return GpuPeaks(
        family=family,
        memory_kind=_memory_kind(None, family),
        fp32_flops=fb["fp32_flops_per_byte_s"] * bw,
        int8_ops=fb["int8_ops_per_byte_s"] * bw,
        fp16_flops=fb["fp16_flops_per_byte_s"] * bw,
        bandwidth_bytes_per_s=None,
        source="no specification for this GPU",
        assumed=(f"{gpu.name}: compute peaks unknown, assumed in proportion to its bandwidth ({fb['source']})",),
        sm_count=round(fb["sms_per_byte_s"] * bw),
        clock_hz=clock * 1e6 if clock else fb["clock_hz"],
    )


def power_held_clock(gpu: NvidiaGpu, spec: dict) -> float:
    """The share of its rated SM clock a board runs at under a power limit below its specification's board power
    (NVML's limit: a user's `nvidia-smi -pl` cap, or a laptop's TGP under a desktop card's name): (limit / rated) **
    1/3, as dynamic power grows about as the clock's cube along the boost curve (devices.json `power_limited_clock`,
    checked on an RTX 3090 capped at 180 W: 1,425 MHz held against 1,815 at 340 W, 0.785, where the rule says 0.80).
    Its memory clock does not move, so a decode, bound by memory, slows far less than a prompt. 1 where the limit is
    unknown, within a few per cent of the row's power or above it, and for laptop, embedded and MIG rows."""
    rule = _devices()["power_limited_clock"]
    rated = spec.get("power_w")
    if (gpu.mig_profile or not gpu.power_limit_w or not isinstance(rated, (int, float)) or not rated
            or spec.get("segment") in ("laptop", "embedded") or gpu.power_limit_w >= rated * float(rule["below_share"])):
        return 1.0
    return float((gpu.power_limit_w / rated) ** float(rule["exponent"]))


def held_clock(gpu: NvidiaGpu, spec: dict) -> tuple[float, str | None]:
    """(share of its rated SM clock the board holds, why where its power per SM binds): the lower of the two power
    rules, a user's cap (`power_held_clock`, reason None) and the board's power per SM (`power_per_sm_clock`)."""
    capped, (per_sm, why) = power_held_clock(gpu, spec), power_per_sm_clock(gpu, spec)
    return (capped, None) if capped <= per_sm else (per_sm, why)


def power_mode_share(gpu: NvidiaGpu, spec: dict, arch: dict | None, rated_sms: float) -> tuple[float, float, str]:
    """(share of its row's SMs powered, share of its row's clock allowed, what says so) under a Jetson's power mode.

    A specification row is the module at MAXN. nvpmodel's other modes power TPCs off (`tpc_pg_mask`: bit i gates TPC i
    of the chip's `power_gated_tpcs.slots`, two SMs each) and cap the GPU's devfreq clock (`max_freq`); both are read
    from the board (hardware.jetson_power). A module sold with fewer TPCs than the chip has keeps its row's SMs: the
    mask counts gated slots, not the module's, and an Orin Nano's TPC_PG_MASK of 240 gates the four it does not have
    (devices.json `power_gated_tpcs`). (1, 1, "") where nothing was read."""
    allowed = min(1.0, gpu.power_mode_clock_mhz * 1e6 / spec_clock_hz(spec)) if gpu.power_mode_clock_mhz else 1.0
    gating = (arch or {}).get("power_gated_tpcs")
    powered = 1.0
    if gating and gpu.power_mode_tpc_mask is not None and rated_sms:
        slots = int(gating["slots"])
        on = slots - bin(gpu.power_mode_tpc_mask & ((1 << slots) - 1)).count("1")
        powered = min(1.0, on * int(gating["sms_per_tpc"]) / rated_sms)
    if powered == 1.0 and allowed == 1.0:
        return 1.0, 1.0, ""
    return powered, allowed, (f"its power mode's {round(rated_sms * powered)} of {rated_sms:g} SMs at "
                              f"{spec_clock_hz(spec) * allowed / 1e6:,.0f} MHz (tpc_pg_mask, devfreq max_freq)")


def power_per_sm_clock(gpu: NvidiaGpu, spec: dict) -> tuple[float, str]:
    """(share of its rated SM clock, why) for a board that feeds its SMs far less power than the desktop GeForce card
    of the same chip: a Tesla T4 gives TU104's 40 SMs 70 W, an RTX 2070 SUPER 215 W, so the T4's rated 1,590 MHz boost
    is a peak it leaves under load. The clock it holds is the GeForce card's rated boost x (power per SM / the
    GeForce card's) ** 1/3, by the cube law of `power_held_clock` (devices.json `power_limited_clock`), at most its
    own rating. The power is NVML's limit where known (an A10G's 300 W, not the 150 W of the A10 it is named like),
    else the row's. Applied only below `per_sm_below_share` of the GeForce card's power per SM: a workstation or
    data-centre board near its chip's budget (an L40S, an RTX A6000) has a rated boost set for its own power and
    holds it. (1.0, "") where the rule does not apply: GeForce, laptop, embedded and MIG rows, chips without a
    desktop GeForce card."""
    rule = _devices()["power_limited_clock"]
    ref = _geforce_sibling(spec.get("chip"))
    power = gpu.power_limit_w or spec.get("power_w")
    sms, boost = spec.get("sm_count"), spec.get("boost_clock_mhz")
    if (ref is None or gpu.mig_profile or geforce_desktop(spec) or spec.get("segment") in ("laptop", "embedded")
            or not isinstance(power, (int, float)) or not power or not sms or not boost):
        return 1.0, ""
    share = (power / sms) / (ref["power_w"] / ref["sm_count"])
    if share > float(rule["per_sm_below_share"]):
        return 1.0, ""
    held = min(1.0, ref["boost_clock_mhz"] * share ** float(rule["exponent"]) / boost)
    return held, (f"{power:.0f} W for {sms} SMs is {share:.2f} of the power an SM gets on the {ref['key']} "
                  f"({ref['power_w']} W, {ref['sm_count']} SMs at {ref['boost_clock_mhz']:.0f} MHz), same {spec['chip']} chip")


def _geforce_sibling(chip: str | None) -> dict | None:
    """The desktop GeForce card of a chip with the most power per SM: the chip at the top of its clock curve."""
    rows = [r for r in _devices()["gpus"] if chip and r.get("chip") == chip and geforce_desktop(r)
            and isinstance(r.get("power_w"), (int, float)) and r.get("sm_count") and r.get("boost_clock_mhz")]
    return max(rows, key=lambda r: r["power_w"] / r["sm_count"], default=None)


def _nvml_cut(gpu: NvidiaGpu, rated_sms: float) -> float:
    """The share of its specification's SMs a GPU has by NVML's own core count: 1 unless NVML counts fewer (down to half).

    NVIDIA sells some names in several cuts that NVML names alike or only by their memory (the desktop "RTX 3050 6GB",
    GA107 with 18 SMs and a 96-bit bus, where the RTX 3050 row is GA106's 20 SMs); the bus NVML reads already prices its
    bandwidth, and its core count prices the SMs. A MIG instance's SMs are its share of the card (`_mig_share`)."""
    if gpu.mig_profile or not gpu.sm_count or not rated_sms or not rated_sms / 2 <= gpu.sm_count < rated_sms:
        return 1.0
    return gpu.sm_count / rated_sms


def _cut_clock_hz(gpu: NvidiaGpu, spec: dict) -> float:
    """A cut's clock: its own rated boost by NVML where it can be read (the RTX 3050 6GB is rated 1,470 MHz, the row's
    RTX 3050 1,777), else its row's."""
    rated = nvml_rated_clock(gpu)
    return rated[0] * 1e6 if rated else spec_clock_hz(spec)


def nvml_rated_clock(gpu: NvidiaGpu) -> tuple[float, str] | None:
    """(MHz, where it came from) of the boost clock a GPU without a specification row is rated at, from NVML alone.

    NVML's max SM clock is the top of a board's clock range: a data-centre board's rated boost (which it also
    reports as its max customer boost clock, taken where given), but on a GeForce or workstation board, which
    reports no customer boost, 1.17-1.37x the rated boost (devices.json `unknown_gpu.max_clock_over_rated`, seven
    captures: an RTX 4090's 3,105-3,165 MHz against its 2,520). Priced at its max, such a card's clock-bound costs
    (prompt compute, per-layer cost, bytes its SMs keep in flight) ran 12-23 % faster than a card with a row would be
    priced. An integrated GPU (Jetson, GB10) keeps its max clock.
    """
    if gpu.rated_sm_clock_mhz:
        return float(gpu.rated_sm_clock_mhz), "NVML's rated boost"
    if not gpu.max_sm_clock_mhz:
        return None
    if not gpu.unified_memory and _BOARD_BRANDS.search(gpu.parent_name or gpu.name):
        ratio = float(_devices()["unknown_gpu"]["max_clock_over_rated"]["ratio"])
        return gpu.max_sm_clock_mhz / ratio, f"NVML's max clock {gpu.max_sm_clock_mhz} MHz over {ratio:g}"
    return float(gpu.max_sm_clock_mhz), "NVML's max clock"


def threads_per_sm(gpu: NvidiaGpu) -> int | None:
    """Threads one SM of the GPU holds at once, by its compute capability (devices.json `nvidia_arch`); None where
    the capability is not known."""
    spec = gpu_spec_of(gpu)
    arch = _arch(gpu.compute_capability or (spec_compute_capability(spec) if spec else None))
    return int(arch["max_threads_per_sm"]) if arch else None


def resident_threads(gpu: NvidiaGpu) -> int | None:
    """Threads the GPU (a MIG instance: its SMs) holds at once: SMs x `threads_per_sm`, which sets the stacks its
    CUDA context reserves (`estimate.cuda_stack_bytes`). None where the SMs or the capability are not known, only
    guessed."""
    per_sm = threads_per_sm(gpu)
    peaks = nvidia_peaks(gpu)
    if not per_sm or peaks.assumed or not peaks.sm_count:
        return None
    return peaks.sm_count * per_sm


def spec_clock_hz(spec: dict) -> float:
    """A specification's boost clock; where NVIDIA publishes none (GH200, B200), the one its FP32 peak implies
    (cores x 2 FLOP x clock), so the per-layer cycles of a decoded token are not priced at a guessed clock."""
    if spec.get("boost_clock_mhz"):
        return float(spec["boost_clock_mhz"]) * 1e6
    if spec.get("fp32_tflops") and spec.get("cuda_cores"):
        return float(spec["fp32_tflops"]) * 1e12 / (2 * spec["cuda_cores"])
    return float(_devices()["unknown_gpu"]["clock_hz"])


def _attention_mma(dense, arch: dict | None, scale: float, geforce: bool) -> tuple[float, float]:
    """(fp32-accumulate, fp16-accumulate) fp16 rates of the mma.sync that llama.cpp's flash attention issues
    (ggml-cuda/fattn-mma-f16.cuh: K x Q accumulates in float, the scores x V in half2): a specification's or an
    architecture's per-SM dense rates (``dense``, x ``scale``), on Hopper at mma.sync's share of them
    (`fp16_mma_sync_share`, measured). (0, 0) where there are no fp16 tensor cores."""
    half = _tensor(dense)
    if not half:
        return (0.0, 0.0)
    full = _tensor(dense, fp16_accumulate=False) or half * _fp32_accumulate_ratio(arch, geforce)
    share = float((arch or {}).get("fp16_mma_sync_share", 1.0)) * scale
    return (full * share, half * share)


def _fp32_accumulate_ratio(arch: dict | None, geforce: bool) -> float:
    """An architecture's fp32- over fp16-accumulate tensor rate, for a GPU whose figures give only the latter: a
    GeForce's half (and GB10's, which the table prices as one), a workstation or data-centre card's whole."""
    rates = (arch or {}).get("fp16_tensor_flops_per_clock_per_sm_dense")
    if not isinstance(rates, dict) or not isinstance(rates.get("fp16_accumulate"), (int, float)):
        return 1.0
    half = float(rates["fp16_accumulate"])
    pro = rates.get("fp32_accumulate") or (None if geforce else rates.get("fp32_accumulate_pro_datacenter"))
    if isinstance(pro, (int, float)):
        return float(pro) / half
    consumer = rates.get("fp32_accumulate_geforce")
    return float(consumer) / half if isinstance(consumer, (int, float)) else 1.0


def _mma_sync_share(arch: dict | None) -> float:
    """The share of the published dense int8 peak that llama.cpp's int8 kernels can issue: they use mma.sync,
    and on Hopper only wgmma reaches the published figure (devices.json nvidia_arch, int8_mma_sync_source)."""
    return float((arch or {}).get("int8_mma_sync_share", 1.0))


@dataclass(frozen=True)
class ApplePeaks:
    family: str
    gpu_cores: int
    clock_hz: float
    fp32_flops: float
    bandwidth_bytes_per_s: float | None
    source: str
    assumed: tuple[str, ...] = ()
    dies: int = 1  # an Ultra is two Max dies joined by UltraFusion: one GPU to software, two to synchronise
    matrix_flops: float = 0.0  # fp16 matrix peak: the GPU cores' Neural Accelerators where they have them (M5), else fp32_flops


APPLE_ALU_FLOP_PER_CYCLE = 256  # an Apple GPU core: 128 FP32 lanes x 2 (FMA), half precision alike


def apple_spec(chip: str, gpu_cores: int | None) -> dict | None:
    """The specification of one Apple chip configuration ("Apple M3 Max" with 40 GPU cores), None if not in the table."""
    return next((r for r in _devices()["apple"] if r["chip"] == chip and r["gpu_cores"] == gpu_cores), None)


def apple_generation(chip: str) -> int | None:
    """The M generation of an Apple chip's GPU: an M chip's own number; an iPhone chip in a Mac (the MacBook Neo's
    A18 Pro) that of the M series in its Metal GPU family and year (devices.json `apple_a_series_generation`)."""
    m = re.search(r"\bM(\d+)", chip)
    if m:
        return int(m.group(1))
    a = re.search(r"\bA(\d+)", chip)
    return _devices()["apple_a_series_generation"].get(a.group(0)) if a else None


def apple_peaks(apple: AppleSilicon) -> ApplePeaks:
    gen = apple_generation(apple.chip)
    rows = [r for r in _devices()["apple"] if r["chip"] == apple.chip]
    by_cpu = None if apple.gpu_cores else _gpu_cores_of_cpu(apple)
    exact = apple_spec(apple.chip, apple.gpu_cores or by_cpu)
    assumed = []
    stand_in = None if rows or gen is None else _unlisted_apple(apple.chip, gen)
    if stand_in:  # a chip newer than this table: priced as the listed configurations that bound it
        rows, stand_gen, bandwidth_gbs, why = stand_in
        assumed.append(why)
        # the GPU's generation its own where the table has it (an A19 Pro's is the M5's), else the stand-in's
        gen = gen if any(apple_generation(r["chip"]) == gen for r in _devices()["apple"]) else stand_gen
    family = f"apple-m{gen}" if gen else "apple-unknown"
    dies = 2 if stand_in and _apple_tier(apple.chip) == "M Ultra" else int(rows[0].get("dies", 1)) if rows else 1
    same_gen = [r for r in _devices()["apple"] if gen and apple_generation(r["chip"]) == gen]
    # matrix work per core a cycle: a generation's Neural Accelerators (M5: 4x the ALUs), else the ALUs
    per_core = float(next((r["gpu_matrix_flop_per_cycle_per_core"] for r in same_gen if r.get("gpu_matrix_flop_per_cycle_per_core")),
                          APPLE_ALU_FLOP_PER_CYCLE))
    if exact:
        clock = _apple_clock(exact)
        fp32 = (exact.get("gpu_fp32_tflops") or exact["gpu_cores"] * APPLE_ALU_FLOP_PER_CYCLE * clock / 1e3) * 1e12
        settled = (f", its GPU cores told by its {apple.performance_cores}P + {apple.efficiency_cores}E CPU" if by_cpu else "")
        return ApplePeaks(family, exact["gpu_cores"], clock * 1e9, fp32, exact["bandwidth_gbs"] * 1e9,
                          f"{exact['key']} specification ({exact['sources'][0][:80]}...){settled}", dies=dies,
                          matrix_flops=fp32 * per_core / APPLE_ALU_FLOP_PER_CYCLE)
    clock = _apple_clock(same_gen[0]) if same_gen else _devices()["apple_default_gpu_clock_ghz"]
    cores = apple.gpu_cores or (dies * min(r["gpu_cores"] for r in rows) if rows else 8)
    if not apple.gpu_cores:
        assumed.append(f"{apple.chip}: GPU core count unknown, assumed the smallest configuration's {cores}")
    if not same_gen:
        assumed.append(f"{apple.chip}: GPU clock unknown, assumed {clock} GHz")
    bw = (bandwidth_gbs * 1e9 if stand_in else
          rows[0]["bandwidth_gbs"] * 1e9 if len({r["bandwidth_gbs"] for r in rows}) == 1 else None)
    return ApplePeaks(family, cores, clock * 1e9, cores * APPLE_ALU_FLOP_PER_CYCLE * clock * 1e9, bw,
                      f"{cores} GPU cores x 128 FP32 lanes x 2 x {clock} GHz (hardware/data/devices.json)", tuple(assumed), dies,
                      matrix_flops=cores * per_core * clock * 1e9)


def _apple_tier(chip: str) -> str | None:
    """The line and tier of an Apple chip's name: "M Max", "M" (a base M chip), "A Pro" (an iPhone chip in a Mac, the
    MacBook Neo's A18 Pro); None for any other name."""
    m = re.fullmatch(r"Apple ([MA])\d+(?: (Pro|Max|Ultra))?", chip)
    return " ".join(filter(None, m.groups())) if m else None


def _unlisted_apple(chip: str, gen: int) -> tuple[list[dict], int, float, str] | None:
    """(the listed configurations standing in, their generation, GB/s, why) for an Apple chip newer than devices.json.

    An Ultra is two Max dies joined by UltraFusion, each with its own memory (M1, M2 and M3 Ultra: twice their Max's
    400 GB/s, 819 for the M3's faster memory): twice the newest listed Max of its generation or before. Any other
    tier takes the newest listed generation's same tier at its lowest bin, an assumption it names: bandwidth has
    mostly grown from one generation to the next (M1 68 -> M2 100 -> M3 100 -> M4 120 -> M5 153 GB/s), not always
    (the M3 Pro's 150 after the M2 Pro's 200); an iPhone chip in a Mac, as the newest listed one of its tier (an A19
    Pro as the A18 Pro). Without this an M5 Ultra was planned at the 100 GB/s fallback, a 14B at 10 tok/s on a chip
    of ~1.2 TB/s.
    """
    tier = _apple_tier(chip)
    if tier is None:
        return None
    listed = [r for r in _devices()["apple"] if _apple_tier(r["chip"]) is not None]
    if tier == "M Ultra":
        maxes = [r for r in listed if _apple_tier(r["chip"]) == "M Max" and (apple_generation(r["chip"]) or 0) <= gen]
        if not maxes:
            return None
        g = max(apple_generation(r["chip"]) or 0 for r in maxes)
        rows = [r for r in maxes if apple_generation(r["chip"]) == g]
        gbs = 2 * max(r["bandwidth_gbs"] for r in rows)
        return rows, g, gbs, (f"{chip}: not in this release's table; priced as two {rows[0]['chip']} dies (every Ultra is two "
                              f"Max dies joined by UltraFusion): {gbs:g} GB/s")
    same = [r for r in listed if _apple_tier(r["chip"]) == tier and (apple_generation(r["chip"]) or 0) < gen]
    if not same:
        return None
    g = max(apple_generation(r["chip"]) or 0 for r in same)
    rows = [r for r in same if apple_generation(r["chip"]) == g]
    gbs = min(r["bandwidth_gbs"] for r in rows)
    return rows, g, gbs, (f"{chip}: not in this release's table; priced as the {rows[0]['chip']}, the newest of its tier listed "
                          f"({gbs:g} GB/s, its lowest bin)")


def _gpu_cores_of_cpu(apple: AppleSilicon) -> int | None:
    """The GPU core count the CPU core count settles where ioreg gave none: Apple sells each GPU bin of an M3 Max or
    M4 Max only with its own CPU bin (apple_silicon.json `configurations`: 14 cores with 30 or 32 GPU cores, 16 with
    40). None where the CPU is not known or no such pairing is listed."""
    if apple.performance_cores is None or apple.efficiency_cores is None:
        return None
    cpu_cores = apple.performance_cores + apple.efficiency_cores
    rows = data("apple_silicon.json")["bandwidth"]["configurations"].get(apple.chip, [])
    found = [r["gpu_cores"] for r in rows if r["cpu_cores"] == cpu_cores]
    return int(found[0]) if len(found) == 1 else None


def _apple_clock(row: dict) -> float:
    """GHz of an Apple GPU configuration; the M5s have none published: the newest earlier generation's."""
    if row.get("gpu_clock_ghz"):
        return float(row["gpu_clock_ghz"])
    return max(float(r["gpu_clock_ghz"]) for r in _devices()["apple"] if r.get("gpu_clock_ghz"))


def _core_row(key: str) -> dict:
    return next(r for r in _devices()["cpu_core_throughput"] if r["key"] == key)


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
    e_row = _core_row(_devices()["core_of"]["x86_hybrid_efficiency_core"])
    e_share = e_row["int8_ops_per_cycle_per_core"] / core.int8_per_cycle
    return (p + min(n_threads - p, cpu.efficiency_cores) * e_share) / n_threads


def _board(board: Board | None, cpu: Cpu | None) -> dict | None:
    text = " ".join(x for x in (board.model if board else "", (board.soc or "") if board else "", cpu.brand if cpu else "") if x).lower()
    for row in _devices()["boards"]:
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
    table = _devices()["core_of"]
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
    decode = _devices()["x86_designs"]["decode"][design["decode"]] if design and "decode" in design else {}
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
    rule = _devices()["x86_designs"]["die_links"]
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
    rows = _devices()["x86_designs"]["rows"]
    if cpu.vendor_id is not None and cpu.cpu_family is not None and cpu.cpu_model is not None:
        model = cpu.cpu_model
        found = next((r for r in rows if (r["vendor_id"], r["family"]) == (cpu.vendor_id, cpu.cpu_family)
                      and any(lo <= model <= hi for lo, hi in r["models"])), None)
        how = f"CPUID family {cpu.cpu_family} model {model}"
    else:
        found = next((r for r in rows if re.search(r["names"], cpu.brand)), None)
        how = "by its name"
    return {**found, "how": how} if found else None
