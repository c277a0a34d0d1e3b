"""GPUs the kernel lists that qwenctl does not plan on: named in `detect`, and a CPU plan says what it left unused.

The uevent files are written as the kernel's pci_uevent writes a PCI device's (drivers/pci/pci-driver.c: DRIVER,
PCI_CLASS, PCI_ID, PCI_SUBSYS_ID, PCI_SLOT_NAME, MODALIAS); the AMD card's IDs and VRAM total (1002:744C, an RX 7900
XT, 21,458,059,264 bytes) are those a public test of another tool reads from a real card's sysfs (find_string id
68600096926)."""

from hardware_captures import document, replay

from qwenctl.backend_choice import choose_backend
from qwenctl.hardware import detect, drm
from qwenctl.hardware.facts import DisplayGpu
from qwenctl.plan import plan
from qwenctl.render.detect import rows

AMD = ("DRIVER=amdgpu\nPCI_CLASS=30000\nPCI_ID=1002:744C\nPCI_SUBSYS_ID=1002:0E3B\nPCI_SLOT_NAME=0000:03:00.0\n"
       "MODALIAS=pci:v00001002d0000744Csv00001002sd00000E3Bbc03sc00i00\n")


def with_cards(capture: str, **cards: str) -> dict:
    doc = document(capture)
    for card, uevent in cards.items():
        doc["files"][f"/sys/class/drm/{card}/device/uevent"] = uevent
    return doc


def test_an_amd_gpu_is_named_and_a_cpu_plan_says_it_left_it_unused():
    doc = with_cards("linux-x86-no-gpu.json", card1=AMD)
    doc["files"]["/sys/class/drm/card1/device/mem_info_vram_total"] = "21458059264\n"
    hw = detect(replay(doc))
    assert hw.display_gpus == (DisplayGpu("card1", "AMD", "1002:744C", "amdgpu", 21458059264),)
    assert ("Display card1", "AMD GPU 1002:744C (amdgpu, 20.0 GiB VRAM): not planned on (CUDA, Metal and MLX only)",
            False) in rows(hw)
    (note,) = [w for w in plan(hw).warnings if "AMD GPU" in w]
    assert note.startswith("the AMD GPU 1002:744C (amdgpu, 20.0 GiB VRAM) is not used") and "Vulkan or ROCm" in note


def test_an_nvidia_gpu_on_nouveau_is_told_to_install_nvidias_driver():
    nouveau = AMD.replace("amdgpu", "nouveau").replace("1002:744C", "10DE:2684")
    hw = detect(replay(with_cards("linux-x86-no-gpu.json", card0=nouveau)))
    (note,) = [w for w in choose_backend(hw).warnings if "NVIDIA GPU" in w]
    assert note == ("the NVIDIA GPU 10DE:2684 (nouveau) does not run NVIDIA's driver: install it (CUDA needs it) and "
                    "qwenctl plans on the GPU")


def test_gpus_nvml_lists_a_bmc_display_and_an_socs_display_engine_add_nothing():
    nvidia = AMD.replace("amdgpu", "nvidia").replace("1002:744C", "10DE:2882")
    aspeed = "DRIVER=ast\nPCI_CLASS=30000\nPCI_ID=1A03:2000\nPCI_SUBSYS_ID=1A03:2000\nPCI_SLOT_NAME=0000:02:00.0\n"
    hw = detect(replay(with_cards("nvidia-rtx-4060.json", card0=aspeed, card1=nvidia)))
    assert [g.vendor for g in hw.display_gpus] == ["ASPEED", "NVIDIA"]
    assert not any(label.startswith("Display") for label, _, _ in rows(hw))
    assert not any("not used" in w or "NVIDIA's driver" in w for w in choose_backend(hw).warnings)
    # a Raspberry Pi's VideoCore is a platform device, with no PCI ID
    vc4 = "DRIVER=vc4-drm\nOF_NAME=gpu\nOF_FULLNAME=/gpu\nOF_COMPATIBLE_0=brcm,bcm2711-vc5\n"
    assert drm.probe(replay(with_cards("raspberry-pi-4-8gb.json", card0=vc4))) == ()


def test_windows_names_its_video_controllers_by_pci_id():
    """Win32_VideoController as wmic lists it (CR CR LF line ends, a block per controller): the Radeon by its name and
    PCI ID, Windows's Basic Display Adapter (no PCI ID: ROOT\\BasicDisplay) left out, and a CPU plan on the laptop
    says what it left unused."""
    listing = ("\r\r\nName=AMD Radeon RX 7900 XT\r\r\nPNPDeviceID=PCI\\VEN_1002&DEV_744C&SUBSYS_0E3B1002&REV_CC\\6&1A2B3C4D&0&00000019"
               "\r\r\n\r\r\n\r\r\nName=Microsoft Basic Display Adapter\r\r\nPNPDeviceID=ROOT\\BASICDISPLAY\\0000\r\r\n\r\r\n")
    assert drm.parse_video_controllers(listing) == (
        DisplayGpu("video0", "AMD", "1002:744C", None, None, name="AMD Radeon RX 7900 XT"),)
    doc = document("windows-i7-4710mq.json")
    doc["commands"]["wmic path Win32_VideoController get Name,PNPDeviceID /format:list"] = listing
    hw = detect(replay(doc))
    (note,) = [w for w in plan(hw).warnings if "Radeon" in w]
    assert note.startswith("the AMD Radeon RX 7900 XT (1002:744C) is not used")


def test_an_nvidia_gpu_windows_lists_but_nvml_does_not_is_explained():
    listing = ("\r\r\nName=NVIDIA GeForce RTX 4070\r\r\nPNPDeviceID=PCI\\VEN_10DE&DEV_2786&SUBSYS_40C11458&REV_A1\\4&1"
               "\r\r\n\r\r\n")
    doc = document("windows-i7-4710mq.json")
    doc["commands"]["wmic path Win32_VideoController get Name,PNPDeviceID /format:list"] = listing
    hw = detect(replay(doc))
    assert not hw.gpus
    (note,) = [w for w in choose_backend(hw).warnings if "RTX 4070" in w]
    assert note.startswith("the NVIDIA GeForce RTX 4070 (10DE:2786) is not seen by NVML (")
    assert note.endswith("qwenctl plans on an NVIDIA GPU through NVML, which NVIDIA's driver installs")
