"""Display GPUs the kernel's DRM lists that qwenctl does not plan on: an AMD or Intel GPU, or an NVIDIA GPU whose
driver NVML cannot reach (nouveau, or no NVIDIA driver at all). Reported so a plan on the CPU says what it left
unused and why, instead of acting as if the machine had no GPU.

Method (Linux): /sys/class/drm/cardN/device/uevent, the PCI device's uevent (`DRIVER=amdgpu`, `PCI_CLASS=30000`,
`PCI_ID=1002:744C`, as the kernel's pci_uevent writes them), for N up to MAX_CARDS (card numbers can skip: a
simple framebuffer may hold card0), and amdgpu's `mem_info_vram_total` (bytes) beside it. Elsewhere nothing.
"""

from __future__ import annotations

from qwenctl.hardware._parse import ParseError, to_int
from qwenctl.hardware.facts import DisplayGpu
from qwenctl.hardware.snapshot import Source

MAX_CARDS = 8
VENDORS = {"1002": "AMD", "8086": "Intel", "10DE": "NVIDIA", "1A03": "ASPEED", "15AD": "VMware", "1234": "QEMU"}
COMPUTE_VENDORS = ("AMD", "Intel", "NVIDIA")  # not a server's BMC display (ASPEED) or a VM's (VMware, QEMU)
DISPLAY_CLASS = "3"  # PCI base class 03 (VGA, XGA, 3D controller), printed without its leading zero


def probe(source: Source) -> tuple[DisplayGpu, ...]:
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


def _vram(source: Source, path: str) -> int | None:
    try:
        value = to_int(source.read_text(path).strip(), path)
    except (OSError, ParseError):
        return None
    return value if value > 0 else None
