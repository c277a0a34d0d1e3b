"""Host memory bandwidth from the DIMMs, where the OS shows them without root tools.

Method 1, SMBIOS type 17 ("Memory Device") entries: /sys/firmware/dmi/entries/17-N/raw
(readable by root only on most distributions). Per populated device: the configured speed
(offset 0x20, MT/s; 0x15 "Speed" on tables older than SMBIOS 2.7), the data width
(offset 0x0A, bits) and its two location strings, Device Locator (0x10) and Bank Locator (0x11).
Field offsets from the DMTF SMBIOS Reference Specification 3.x, 7.18.
Method 2, the same entries as systemd-udevd recorded them at boot (its dmi_memory_id helper, udev
rule 70-memory.rules, systemd 248 and later): `E:MEMORY_DEVICE_<n>_<FIELD>=` lines in the udev
database, /run/udev/data/+dmi:id, which every user may read. This is how a user who is not root
gets them on most current distributions.
Method 3, EDAC (/sys/devices/system/edac/mc/mcN/dimmM/): the memory type and, from
`dimm_location` ("channel 1 slot 0"), the channel layout; EDAC has no speed, so it only
settles how many channels SMBIOS's devices share.
Method 4 (Windows): the same SMBIOS type 17 entries as Win32_PhysicalMemory shows them, through
`wmic memorychip`, else PowerShell's Get-CimInstance (ConfiguredClockSpeed in MT/s, DataWidth,
SMBIOSMemoryType, DeviceLocator, BankLabel).
Peak = configured speed x bytes per transfer x channels: with EDAC, its channel count x 8 B
(one 64-bit channel per DIMM channel). Without, the locators settle it where they name a channel
("ChannelA-DIMM0", "Controller0-ChannelB", Bank Locator "P0 CHANNEL A", ASUS's "DIMM_A1"): two
DIMMs in one channel share its bus, so a channel counts once, at its widest device's width (a
desktop with four DIMMs on two channels has two channels' bandwidth, not four). A device whose
locators name no channel counts as its own channel of its data width (true for soldered LPDDR and
one-DIMM-per-channel boards), up to the width of the CPU's memory controller where its brand names it
(data/cpu_memory_bus.json: a client Core or Ryzen drives two 64-bit channels, so Dell's four "DIMM1".."DIMM4"
are two channels' worth); the source says which rule was used.
"""

from __future__ import annotations

import re
import struct
from typing import NamedTuple

from qwenctl.hardware._parse import win32_argvs, win32_blocks, win32_listing
from qwenctl.hardware.snapshot import NotCaptured, Source

MAX_ENTRIES = 64  # sysfs numbers entries 17-0, 17-1, ... without gaps
MEMORY_TYPES = {0x12: "DDR", 0x13: "DDR2", 0x18: "DDR3", 0x1A: "DDR4", 0x1B: "LPDDR", 0x1C: "LPDDR2",
                0x1D: "LPDDR3", 0x1E: "LPDDR4", 0x20: "HBM", 0x21: "HBM2", 0x22: "DDR5", 0x23: "LPDDR5"}
UDEV_DMI = "/run/udev/data/+dmi:id"

WMIC_MEMORY_ARGV, CIM_MEMORY_ARGV = win32_argvs(
    "memorychip", "Win32_PhysicalMemory", "Capacity,ConfiguredClockSpeed,Speed,DataWidth,SMBIOSMemoryType,DeviceLocator,BankLabel")

# The channel a device's locator names: "ChannelA-DIMM0" and "Controller1-ChannelB" (Intel's reference firmware),
# "P0 CHANNEL A" (AMD's, in the Bank Locator), "DIMM_A1", "Controller0-DIMMA2", "P1-DIMMB1" (ASUS, MSI and
# Supermicro boards: the letter is the channel, the digit the slot in it). Everything before the channel's name is
# kept, so that the same letter on another controller or socket stays another channel.
CHANNEL_NAMED = re.compile(r"^(.*?channel[\s_-]*[a-z0-9]+)", re.IGNORECASE)
SLOT_IN_CHANNEL = re.compile(r"^(.*?)dimm[\s_-]*([a-h])[\s_-]*\d$", re.IGNORECASE)
UDEV_DEVICE_FIELD = re.compile(r"E:\s*MEMORY_DEVICE_(\d+)_(\w+)")  # udev database line "E:MEMORY_DEVICE_0_SIZE=..."


class Device(NamedTuple):
    """A populated memory device: configured MT/s, data width in bits, memory type, and the channel its locators
    name ("" where they name none)."""

    speed: int
    width: int
    kind: str
    channel: str = ""


def channel_of(*locators: str | None) -> str:
    """The channel a device's Device Locator or Bank Locator names, normalised ("" if neither names one)."""
    for text in locators:
        words = " ".join((text or "").split())
        if m := CHANNEL_NAMED.match(words):
            return m.group(1).upper()
        if m := SLOT_IN_CHANNEL.match(words):
            return f"{m.group(1).upper()}DIMM {m.group(2).upper()}"
    return ""


class Bus(NamedTuple):
    """The widest DRAM bus the CPU's memory controller drives (data/cpu_memory_bus.json) and what it is."""

    bits: int
    platform: str


def bandwidth(source: Source, bus: Bus | None = None) -> tuple[int | None, str]:
    """(bytes/s, how it was derived) or (None, why not); ``bus``, where the CPU is known, caps the peak."""
    if source.system == "Windows":
        listing = win32_listing(source, (WMIC_MEMORY_ARGV, CIM_MEMORY_ARGV))
        if not listing:
            return None, "neither wmic nor PowerShell's Get-CimInstance answered for Win32_PhysicalMemory"
        return peak(win32_memory_devices(listing), 0, "", bus)
    devices, why = smbios_devices(source)
    if not devices:  # root-only tables: the copy udev keeps for every user
        devices, udev_why = udev_devices(source)
        why = "; ".join(filter(None, (why, udev_why)))
    channels, kind = edac_channels(source)
    if not devices:
        edac = f"; EDAC shows {channels} channel(s) of {kind} but no speed" if channels else ""
        return None, f"{why}{edac}"
    return peak(devices, channels, kind, bus)


def peak(devices: list[Device], channels: int, kind: str, bus: Bus | None = None) -> tuple[int | None, str]:
    """The memory's peak from its populated devices and, where EDAC said, its channels; no wider than ``bus``, the
    CPU's memory controller: four DIMMs whose locators name no channel on a two-channel desktop are two channels'."""
    if not devices:
        return None, "no populated memory device with a speed and a data width"
    speed = min(d.speed for d in devices)
    kinds = "/".join(sorted({d.kind for d in devices} - {"?"})) or "memory"  # "?": a type SMBIOS did not name
    if channels:
        return speed * 1_000_000 * 8 * channels, f"SMBIOS {kinds} at {speed} MT/s x {channels} channels (EDAC) x 8 B"
    widths: dict[str, int] = {}
    for n, d in enumerate(devices):  # a device whose locators name no channel is a channel of its own
        key = d.channel or f"device {n}"
        widths[key] = max(widths.get(key, 0), d.width)
    width = sum(widths.values()) // 8
    if any(d.channel for d in devices):
        how = f"{len(devices)} devices on {len(widths)} channels (as their locators name them) x their data width ({width} B)"
    else:
        how = f"{len(devices)} devices x their data width ({width} B), each device counted as its own channel"
    if bus and width * 8 > bus.bits:
        width = bus.bits // 8
        how += f", capped at the CPU's {bus.bits}-bit memory bus ({bus.platform})"
    return speed * 1_000_000 * width, f"SMBIOS {kinds} at {speed} MT/s x {how}"


def smbios_devices(source: Source) -> tuple[list[Device], str]:
    """Populated devices of the raw SMBIOS tables, or ([], why not)."""
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


def udev_devices(source: Source) -> tuple[list[Device], str]:
    """Populated devices as systemd-udevd recorded them (`UDEV_DMI`), or ([], why not: "" where a snapshot does not
    hold the file). Fields as its dmi_memory_id writes them: SIZE in bytes (PRESENT=0 for an empty slot), DATA_WIDTH
    in bits, SPEED_MTS and CONFIGURED_SPEED_MTS, TYPE (systemd before 256 writes "<OUT OF SPEC>" for DDR5 and
    LPDDR5), LOCATOR and BANK_LOCATOR."""
    try:
        text = source.read_text(UDEV_DMI)
    except NotCaptured:  # a snapshot taken before qwenctl read it: nothing to add to why the tables gave nothing
        return [], ""
    except OSError:
        return [], f"no udev database of memory devices ({UDEV_DMI}: systemd 248 or later writes it)"
    fields: dict[int, dict[str, str]] = {}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        m = UDEV_DEVICE_FIELD.fullmatch(key.strip())
        if sep and m:
            fields.setdefault(int(m.group(1)), {})[m.group(2)] = value.strip()
    found = []
    for _, f in sorted(fields.items()):  # in the order of their numbers
        speed = f.get("CONFIGURED_SPEED_MTS") or f.get("SPEED_MTS") or ""
        width = f.get("DATA_WIDTH", "")
        if f.get("PRESENT") == "0" or not (speed.isdigit() and width.isdigit() and int(speed) and int(width)):
            continue
        kind = f.get("TYPE", "?")
        found.append(Device(int(speed), int(width), "?" if kind.startswith("<") else kind,
                            channel_of(f.get("LOCATOR"), f.get("BANK_LOCATOR"))))
    if not found:
        return [], f"no populated memory device with a speed and a data width in {UDEV_DMI}"
    return found, ""


def win32_memory_devices(listing: str) -> list[Device]:
    """Populated devices of Win32_PhysicalMemory as wmic ("Key=value") or Format-List ("Key : value") prints it, a
    block per device: SMBIOS type 17's own fields (SMBIOSMemoryType its type byte, DeviceLocator and BankLabel its
    locators; the rated Speed where the configured one is not given, as for SMBIOS tables older than 2.7)."""
    found = []
    for fields in win32_blocks(listing):
        speed, width, kind = (fields.get(k, "") for k in ("ConfiguredClockSpeed", "DataWidth", "SMBIOSMemoryType"))
        speed = speed if speed.isdigit() and int(speed) else fields.get("Speed", "")
        if speed.isdigit() and width.isdigit() and int(speed) and int(width):
            found.append(Device(int(speed), int(width), MEMORY_TYPES.get(int(kind), f"type {kind}") if kind.isdigit() else "?",
                                channel_of(fields.get("DeviceLocator"), fields.get("BankLabel"))))
    return found


def parse_type17(raw: bytes) -> Device | None:
    """One type 17 entry; None if empty or unknown."""
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
    # the strings follow the formatted area, each NUL-terminated; a field holds a string's number, 0 for none
    strings = raw[length:].split(b"\0")

    def string(number: int) -> str:
        return strings[number - 1].decode("ascii", "replace") if 0 < number <= len(strings) else ""

    return Device(speed, data_width, MEMORY_TYPES.get(raw[0x12], f"type 0x{raw[0x12]:02x}"),
                  channel_of(string(raw[0x10]), string(raw[0x11])))


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
