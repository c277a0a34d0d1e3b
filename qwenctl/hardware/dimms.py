"""Host memory bandwidth from the DIMMs, where the OS shows them without root tools.

Method 1, SMBIOS type 17 ("Memory Device") entries: /sys/firmware/dmi/entries/17-N/raw
(readable by root only on most distributions). Per populated device: the configured speed
(offset 0x20, MT/s; 0x15 "Speed" on tables older than SMBIOS 2.7) and the data width
(offset 0x0A, bits). Field offsets from the DMTF SMBIOS Reference Specification 3.x, 7.18.
Method 2, EDAC (/sys/devices/system/edac/mc/mcN/dimmM/): the memory type and, from
`dimm_location` ("channel 1 slot 0"), the channel layout; EDAC has no speed, so it only
settles how many channels SMBIOS's devices share.
Method 3 (Windows): the same SMBIOS type 17 entries as Win32_PhysicalMemory shows them, through
`wmic memorychip`, else PowerShell's Get-CimInstance (ConfiguredClockSpeed in MT/s, DataWidth,
SMBIOSMemoryType).
Peak = configured speed x bytes per transfer x channels: with EDAC, its channel count x 8 B
(one 64-bit channel per DIMM channel); without, each populated SMBIOS device counts as its
own channel of its data width (true for soldered LPDDR and one-DIMM-per-channel boards; two
DIMMs on one channel would be counted twice, so the source says which rule was used).
"""

from __future__ import annotations

import struct

from qwenctl.hardware._parse import win32_argvs, win32_blocks, win32_listing
from qwenctl.hardware.snapshot import NotCaptured, Source

MAX_ENTRIES = 64  # sysfs numbers entries 17-0, 17-1, ... without gaps
MEMORY_TYPES = {0x12: "DDR", 0x13: "DDR2", 0x18: "DDR3", 0x1A: "DDR4", 0x1B: "LPDDR", 0x1C: "LPDDR2",
                0x1D: "LPDDR3", 0x1E: "LPDDR4", 0x20: "HBM", 0x21: "HBM2", 0x22: "DDR5", 0x23: "LPDDR5"}


WMIC_MEMORY_ARGV, CIM_MEMORY_ARGV = win32_argvs("memorychip", "Win32_PhysicalMemory",
                                                "Capacity,ConfiguredClockSpeed,Speed,DataWidth,SMBIOSMemoryType")


def bandwidth(source: Source) -> tuple[int | None, str]:
    """(bytes/s, how it was derived) or (None, why not)."""
    if source.system == "Windows":
        listing = win32_listing(source, (WMIC_MEMORY_ARGV, CIM_MEMORY_ARGV))
        if not listing:
            return None, "neither wmic nor PowerShell's Get-CimInstance answered for Win32_PhysicalMemory"
        return peak(win32_memory_devices(listing), 0, "")
    devices, smbios_why = smbios_devices(source)
    channels, kind = edac_channels(source)
    if not devices:
        edac = f"; EDAC shows {channels} channel(s) of {kind} but no speed" if channels else ""
        return None, f"{smbios_why}{edac}"
    return peak(devices, channels, kind)


def peak(devices: list[tuple[int, int, str]], channels: int, kind: str) -> tuple[int | None, str]:
    """The memory's peak from its populated devices [(MT/s, data width bits, type)] and, where EDAC said, its channels."""
    if not devices:
        return None, "no populated memory device with a speed and a data width"
    speed = min(d[0] for d in devices)
    kinds = sorted({d[2] for d in devices})
    if channels:
        return speed * 1_000_000 * 8 * channels, (
            f"SMBIOS {'/'.join(kinds)} at {speed} MT/s x {channels} channels (EDAC) x 8 B")
    width = sum(d[1] for d in devices) // 8
    return speed * 1_000_000 * width, (
        f"SMBIOS {'/'.join(kinds)} at {speed} MT/s x {len(devices)} devices x their data width ({width} B), "
        "each device counted as its own channel")


def smbios_devices(source: Source) -> tuple[list[tuple[int, int, str]], str]:
    """[(configured MT/s, data width bits, type)] of populated devices, or ([], why not)."""
    found = []
    for n in range(MAX_ENTRIES):
        path = f"/sys/firmware/dmi/entries/17-{n}/raw"
        try:
            raw = source.read_bytes(path)
        except NotCaptured:
            if n == 0:
                return [], "SMBIOS memory entries not captured in the snapshot"
            break
        except FileNotFoundError:
            if n == 0:
                return [], "no SMBIOS memory entries (/sys/firmware/dmi/entries/17-*: a VM or container?)"
            break
        except OSError as e:
            return [], f"SMBIOS memory entries not readable ({e.strerror or e}; root only)"
        device = parse_type17(raw)
        if device is not None:
            found.append(device)
    if not found:
        return [], "no populated SMBIOS memory device with a speed (/sys/firmware/dmi/entries/17-*)"
    return found, ""


def win32_memory_devices(listing: str) -> list[tuple[int, int, str]]:
    """[(configured MT/s, data width bits, type)] of Win32_PhysicalMemory as wmic ("Key=value") or Format-List
    ("Key : value") prints it, a block per device: SMBIOS type 17's own fields (SMBIOSMemoryType its type byte;
    the rated Speed where the configured one is not given, as for SMBIOS tables older than 2.7)."""
    found = []
    for fields in win32_blocks(listing):
        speed, width, kind = (fields.get(k, "") for k in ("ConfiguredClockSpeed", "DataWidth", "SMBIOSMemoryType"))
        speed = speed if speed.isdigit() and int(speed) else fields.get("Speed", "")
        if speed.isdigit() and width.isdigit() and int(speed) and int(width):
            found.append((int(speed), int(width), MEMORY_TYPES.get(int(kind), f"type {kind}") if kind.isdigit() else "?"))
    return found


def parse_type17(raw: bytes) -> tuple[int, int, str] | None:
    """(configured MT/s, data width bits, type) of one type 17 entry; None if empty or unknown."""
    if len(raw) < 0x17 or raw[0] != 17:
        return None
    length = raw[1]
    size = struct.unpack_from("<H", raw, 0x0C)[0]
    if size in (0, 0xFFFF):  # 0: no device installed in the socket; 0xFFFF: size unknown
        return None
    data_width = struct.unpack_from("<H", raw, 0x0A)[0]
    speed = struct.unpack_from("<H", raw, 0x15)[0]
    if length >= 0x22:
        configured = struct.unpack_from("<H", raw, 0x20)[0]
        speed = configured if configured not in (0, 0xFFFF) else speed
    if speed in (0, 0xFFFF) or data_width in (0, 0xFFFF):
        return None
    return speed, data_width, MEMORY_TYPES.get(raw[0x12], f"type 0x{raw[0x12]:02x}")


def edac_channels(source: Source) -> tuple[int, str]:
    """(distinct populated (controller, channel) pairs, memory type) from EDAC; (0, "") if none."""
    channels: set[tuple[int, str]] = set()
    kinds: set[str] = set()
    for mc in range(16):
        base = f"/sys/devices/system/edac/mc/mc{mc}"
        for d in range(MAX_ENTRIES):
            folder = f"{base}/dimm{d}"
            try:
                size = int(source.read_text(f"{folder}/size").strip() or 0)
            except (OSError, ValueError):
                break
            if size <= 0:
                continue
            location = _optional(source, f"{folder}/dimm_location")
            channels.add((mc, _channel(location) or f"dimm{d}"))
            kinds.add((_optional(source, f"{folder}/dimm_mem_type") or "?").strip())
        if d == 0:
            break
    return len(channels), "/".join(sorted(kinds))


def _channel(location: str | None) -> str | None:
    """'channel 1 slot 0' (or 'csrow 0 channel 1') -> '1'."""
    words = (location or "").split()
    return words[words.index("channel") + 1] if "channel" in words[:-1] else None


def _optional(source: Source, path: str) -> str | None:
    try:
        return source.read_text(path)
    except OSError:
        return None
