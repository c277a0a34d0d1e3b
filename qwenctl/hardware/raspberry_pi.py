"""Single-board computers (Raspberry Pi and other ARM boards): model, SoC, RAM, health.

Method 1: /proc/device-tree/model names the board (any device-tree board, Jetson included).
Method 2, where the device tree is not visible (Docker masks /sys/firmware, which
/proc/device-tree links into): the `Model` line Raspberry Pi kernels add to /proc/cpuinfo.
Method 3: a new-style Raspberry Pi `Revision` code alone names the board type. On a Raspberry Pi the `Revision` code in /proc/cpuinfo is decoded for the SoC and the
fitted RAM (the `Hardware` line says BCM2835 on every Pi since kernel 4.9, so it is used
only when nothing better exists). `vcgencmd get_throttled` is decoded bit by bit and
/sys/class/thermal/thermal_zone0/temp (millidegrees C) gives the SoC temperature; both are
optional. Tables and bit meanings are in data/raspberry_pi.json with their source.
"""

from __future__ import annotations

from qwenctl.hardware._parse import ParseError, colon_fields, data, to_int
from qwenctl.hardware.facts import Absent, Board
from qwenctl.hardware.snapshot import Source

NEW_STYLE = 1 << 23


def probe(source: Source) -> Board | Absent:
    if source.system != "Linux":
        return Absent(f"no device tree on {source.system}")
    cpuinfo = _cpuinfo(source)
    revision = cpuinfo.get("Revision")
    model: str | None
    model_source: str | None
    try:
        model, model_source = source.read_text("/proc/device-tree/model").strip("\x00\n "), "/proc/device-tree/model"
        if not model:
            raise ParseError("/proc/device-tree/model is empty")
    except FileNotFoundError:
        model, model_source = _model_from_cpuinfo(cpuinfo)
        if model is None:
            return Absent("no /proc/device-tree/model and no Raspberry Pi Model/Revision in /proc/cpuinfo "
                          "(not a single-board computer)")
    soc, ram = decode_revision(revision) if revision and "Raspberry Pi" in model else (None, None)
    return Board(
        model=model,
        revision=revision,
        soc=soc or _soc_from_compatible(source) or cpuinfo.get("Hardware"),
        ram_bytes=ram,
        throttled=_throttled(source),
        temperature_c=_temperature(source),
        model_source=model_source,
    )


def _model_from_cpuinfo(cpuinfo: dict[str, str]) -> tuple[str | None, str | None]:
    if cpuinfo.get("Model"):
        return cpuinfo["Model"], "/proc/cpuinfo Model"
    board = board_type(cpuinfo.get("Revision"))
    return (f"Raspberry Pi {board}", "/proc/cpuinfo Revision") if board else (None, None)


def board_type(code: str | None) -> str | None:
    """The board type ("4B", "5") of a new-style revision code, else None."""
    if not code:
        return None
    try:
        value = int(code, 16)
    except ValueError:
        return None
    if not value & NEW_STYLE:
        return None
    return data("raspberry_pi.json")["type"].get(f"0x{(value >> 4) & 0xFF:02x}")


def decode_revision(code: str) -> tuple[str | None, int | None]:
    """(SoC, RAM bytes) from a new-style revision code such as d04170 (Pi 5, 8 GB)."""
    value = to_int(code, "Revision") if code.lower().startswith("0x") else to_int(f"0x{code}", "Revision")
    if not value & NEW_STYLE:
        return None, None  # old-style codes (Pi 1 era) are a lookup table; not worth carrying
    table = data("raspberry_pi.json")
    soc = table["processor"].get(str((value >> 12) & 0xF))
    ram = table["memory_bytes"].get(str((value >> 20) & 0x7))
    return soc, ram


def decode_throttled(text: str) -> tuple[str, ...]:
    """`throttled=0x50005` -> the conditions whose bits are set (() = healthy)."""
    _, _, hex_value = text.strip().partition("=")
    value = to_int(hex_value, "vcgencmd get_throttled")
    bits = data("raspberry_pi.json")["throttled_bits"]
    return tuple(meaning for bit, meaning in bits.items() if value & (1 << int(bit)))


def _cpuinfo(source: Source) -> dict[str, str]:
    try:
        return colon_fields(source.read_text("/proc/cpuinfo"))
    except OSError:  # optional here: the model alone is still worth reporting
        return {}


def _soc_from_compatible(source: Source) -> str | None:
    """The last entry of /proc/device-tree/compatible is the SoC ("brcm,bcm2712" -> "BCM2712")."""
    try:
        entries = [e for e in source.read_text("/proc/device-tree/compatible").split("\x00") if e]
    except OSError:
        return None
    return entries[-1].split(",")[-1].upper() if entries else None


def _throttled(source: Source) -> tuple[str, ...] | None:
    out = source.run(("vcgencmd", "get_throttled"))
    return decode_throttled(out) if out else None


def _temperature(source: Source) -> float | None:
    try:
        text = source.read_text("/sys/class/thermal/thermal_zone0/temp")
    except OSError:
        return None
    return to_int(text, "thermal_zone0/temp") / 1000
