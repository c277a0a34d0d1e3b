"""Peak figures of an NVIDIA GPU that no probe reports: its specification row, ALU and matrix throughput, family,
memory kind, the clock it holds under load.

Read from hardware/data/devices.json (published specifications, each with its source), or derived from what NVML
said (CUDA cores x SM clock x the architecture's per-SM rates from the same file), or, as a last resort, assumed —
and then said so in ``assumed`` so the plan can name it.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from qwenctl.hardware._parse import devices
from qwenctl.hardware.facts import NvidiaGpu


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
    exact = [row for row in devices()["gpus"] if any(_bare(n) == bare for n in row.get("nvml_names", []))]
    if exact:
        return _module(exact, board, memory_bytes, power_limit_w)
    # else the longest row name the name contains, as whole words (A30 is not A3000), its memory size aside: NVIDIA
    # names some laptop parts by it ("RTX 3050 6GB Laptop GPU" is the RTX 3050 Laptop GPU's chip with 6 GB). A name
    # that goes on with Ti or SUPER is another chip or more SMs ("GTX 1650 Ti" is a laptop TU117 with 1,024 cores, the
    # GTX 1650 a 75 W desktop card with 896), so it is no match: NVML's own cores and clock price it instead
    texts = (bare, re.sub(r"\s\d+\s?gb\b", "", bare))
    laptop = _mobile(bare)
    best, best_len = None, 0
    for row in devices()["gpus"]:
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
    rows = [r for r in devices()["gpus"] if _board_words(r, board)]
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
    return next((r for r in devices()["gpus"] if r.get("key") == key), None)


def _arch(cc: tuple[int, int] | None) -> dict | None:
    """The per-SM figures of a compute capability; one that NVIDIA renumbered (Thor's 10.1, 11.0 since CUDA 13)
    names the entry it is `same_as`."""
    table = devices()["nvidia_arch"]
    arch = table.get(f"{cc[0]}.{cc[1]}") if cc else None
    return table[arch["same_as"]] if arch and "same_as" in arch else arch


def _listed_below(cc: tuple[int, int], embedded: bool) -> tuple[int, int] | None:
    """For a compute capability the table does not list, the listed one of its major just below it among GPUs of its
    kind (an integrated one's among the embedded rows, else among the others): the SM a new chip of a known
    architecture most likely keeps (Ada's 8.9 came after Ampere's 8.6 with its 128 FP32 lanes and tensor-core rates
    per SM). None where its major has no such GPU (a new architecture)."""
    listed = {major_minor(r["compute_capability"]) for r in devices()["gpus"] if (r["segment"] == "embedded") == embedded}
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
    return devices()["family_memory_kind"].get(family, "gddr")


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
    fb = devices()["unknown_gpu"]
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
    rule = devices()["power_limited_clock"]
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
    rule = devices()["power_limited_clock"]
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
    rows = [r for r in devices()["gpus"] if chip and r.get("chip") == chip and geforce_desktop(r)
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
        ratio = float(devices()["unknown_gpu"]["max_clock_over_rated"]["ratio"])
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
    return float(devices()["unknown_gpu"]["clock_hz"])


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
