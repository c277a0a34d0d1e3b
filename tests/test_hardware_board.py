from hardware_captures import document, replay

from qwenctl.hardware import raspberry_pi
from qwenctl.hardware.facts import Absent

GIB = 1 << 30


def test_pi_5_8gb():
    got = raspberry_pi.probe(replay("raspberry-pi-5-8gb.json"))
    assert got.model == "Raspberry Pi 5 Model B Rev 1.0"
    assert (got.revision, got.soc, got.ram_bytes) == ("d04170", "BCM2712", 8 * GIB)
    assert got.throttled is None and got.temperature_c is None  # not in the capture


def test_pi_4_8gb_with_throttling_and_temperature():
    got = raspberry_pi.probe(replay("raspberry-pi-4-8gb.json"))
    assert (got.model, got.soc, got.ram_bytes) == ("Raspberry Pi 4 Model B Rev 1.5", "BCM2711", 8 * GIB)
    assert got.throttled == ("under-voltage now", "throttled now", "under-voltage has occurred",
                             "throttling has occurred")
    assert got.temperature_c == 52.078


def test_revision_codes_decode_per_the_documented_bit_layout():
    assert raspberry_pi.decode_revision("c03112") == ("BCM2711", 4 * GIB)  # Pi 4B 4 GB (hrw/arm-socs-table#31)
    assert raspberry_pi.decode_revision("a02082") == ("BCM2837", 1 * GIB)  # Pi 3B
    assert raspberry_pi.decode_revision("0002") == (None, None)  # old-style code: not decoded


def test_healthy_throttle_word():
    assert raspberry_pi.decode_throttled("throttled=0x0\n") == ()


def test_other_arm_boards_use_the_device_tree():
    doc = document("raspberry-pi-5-8gb.json")
    doc["files"]["/proc/device-tree/model"] = "Radxa ROCK 5B\x00"
    doc["files"]["/proc/device-tree/compatible"] = "radxa,rock-5b\x00rockchip,rk3588\x00"
    got = raspberry_pi.probe(replay(doc))
    assert (got.model, got.soc, got.ram_bytes) == ("Radxa ROCK 5B", "RK3588", None)


def test_not_a_board():
    assert raspberry_pi.probe(replay("linux-x86-no-gpu.json")) == Absent(
        "no /proc/device-tree/model and no Raspberry Pi Model/Revision in /proc/cpuinfo (not a single-board computer)")
