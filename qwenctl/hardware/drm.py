"""Display GPUs the operating system lists, including those qwenctl does not plan on: an AMD or Intel GPU, or an
NVIDIA GPU whose driver NVML cannot reach (nouveau, or no NVIDIA driver at all). Reported so a plan on the CPU says
what it left unused and why, instead of acting as if the machine had no GPU.

Method 1 (Linux): /sys/class/drm/cardN/device/uevent, the PCI device's uevent (`DRIVER=amdgpu`, `PCI_CLASS=30000`,
`PCI_ID=1002:744C`, as the kernel's pci_uevent writes them), for N up to MAX_CARDS (card numbers can skip: a
simple framebuffer may hold card0), and amdgpu's `mem_info_vram_total` (bytes) beside it.
Method 2 (Windows): Win32_VideoController through wmic, else PowerShell's Get-CimInstance: its Name and the PCI
vendor and device in its PNPDeviceID ("PCI\\VEN_1002&DEV_744C&..."); not AdapterRAM, a 32-bit count that reads
4 GiB at most. Elsewhere nothing.
"""

from __future__ import annotations

import re

from qwenctl.hardware._parse import ParseError, to_int, win32_argvs, win32_blocks, win32_listing
from qwenctl.hardware.facts import DisplayGpu
from qwenctl.hardware.snapshot import Source

MAX_CARDS = 8
VENDORS = {"1002": "AMD", "8086": "Intel", "10DE": "NVIDIA", "1A03": "ASPEED", "15AD": "VMware", "1234": "QEMU"}
COMPUTE_VENDORS = ("AMD", "Intel", "NVIDIA")  # not a server's BMC display (ASPEED) or a VM's (VMware, QEMU)
DISPLAY_CLASS = "3"  # PCI base class 03 (VGA, XGA, 3D controller), printed without its leading zero


VIDEO_ARGVS = win32_argvs("path Win32_VideoController", "Win32_VideoController", "Name,PNPDeviceID")


def probe(source: Source) -> tuple[DisplayGpu, ...]:
    if source.system == "Windows":
        return parse_video_controllers(win32_listing(source, VIDEO_ARGVS) or "")
    if source.system != "Linux":
        return ()
    found = []
    for n in range(MAX_CARDS):
        base = f"/sys/class/drm/card{n}/device"
        try:
            fields = dict(line.split("=", 1) for line in source.read_text(f"{base}/uevent").splitlines() if "=" in line)
        except OSError:
            continue
        vendor, _, _ = fields.get("PCI_ID", "").upper().partition(":")
        if not vendor or not fields.get("PCI_CLASS", "").startswith(DISPLAY_CLASS):
            continue  # a platform device (an SoC's display engine) or not a display controller
        found.append(DisplayGpu(f"card{n}", VENDORS.get(vendor, f"PCI vendor {vendor}"), fields["PCI_ID"].upper(),
                                fields.get("DRIVER"), _vram(source, f"{base}/mem_info_vram_total")))
    return tuple(found)


def parse_video_controllers(listing: str) -> tuple[DisplayGpu, ...]:
    """Win32_VideoController's instances that are PCI devices (not the Basic Display or a remote display adapter)."""
    found = []
    for n, fields in enumerate(win32_blocks(listing)):
        m = re.match(r"PCI\\VEN_([0-9A-Fa-f]{4})&DEV_([0-9A-Fa-f]{4})", fields.get("PNPDeviceID", ""))
        if m:
            vendor, device = m.group(1).upper(), m.group(2).upper()
            found.append(DisplayGpu(f"video{n}", VENDORS.get(vendor, f"PCI vendor {vendor}"), f"{vendor}:{device}",
                                    None, None, name=fields.get("Name") or None))
    return tuple(found)


def describe(g: DisplayGpu) -> str:
    """A GPU as a line names it: by Windows's name and PCI ID ("AMD Radeon RX 7900 XT (1002:744C)"), or by vendor, PCI ID,
    driver and VRAM as Linux's DRM gives them ("AMD GPU 1002:744C (amdgpu, 20.0 GiB VRAM)")."""
    parts = [g.driver or "no driver bound"] if g.from_drm else [g.pci_id]
    if g.vram_bytes:
        parts.append(f"{g.vram_bytes / 2**30:.1f} GiB VRAM")  # as machine.gib writes every plan message's sizes
    return f"{g.name or f'{g.vendor} GPU {g.pci_id}'} ({', '.join(parts)})"


def _vram(source: Source, path: str) -> int | None:
    try:
        value = to_int(source.read_text(path).strip(), path)
    except (OSError, ParseError):
        return None
    return value if value > 0 else None
