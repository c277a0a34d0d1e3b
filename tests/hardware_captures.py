"""Helpers for the detect tests: the captured machines under fixtures/captures/, as documents
to tweak and as replay sources. No conftest magic: tests import what they use."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

from qwenctl.hardware.replay import ReplaySource, _validate

CAPTURES = Path(__file__).parent / "fixtures" / "captures"
ALL = sorted(p.name for p in CAPTURES.glob("*.json"))


def document(name: str) -> dict[str, Any]:
    return copy.deepcopy(json.loads((CAPTURES / name).read_text(encoding="utf-8")))


def replay(doc: dict[str, Any] | str) -> ReplaySource:
    """A source from a capture name or an edited document, validated as load_snapshot does."""
    doc = document(doc) if isinstance(doc, str) else doc
    problem = _validate(doc)
    assert problem is None, problem
    return ReplaySource(doc, "test")


def jetson_on_pi5(model: str, total_kb: int, available_kb: int) -> dict[str, Any]:
    """A Jetson board as detection meets it, built on the Raspberry Pi 5 capture (an arm64 board without NVML: its
    cpuinfo stands in for the module's Arm cores): the board's device-tree model and its RAM as Linux reports it."""
    doc = document("raspberry-pi-5-8gb.json")
    doc["files"]["/proc/device-tree/model"] = model + "\x00"
    doc["files"]["/proc/meminfo"] = (doc["files"]["/proc/meminfo"]
                                     .replace("MemTotal:       8255488 kB", f"MemTotal:       {total_kb} kB")
                                     .replace("MemAvailable:   6159360 kB", f"MemAvailable:   {available_kb} kB"))
    return doc


def rk3588_board(model: str, compatible: str) -> dict[str, Any]:
    """An RK3588 board: the Radxa ROCK 5B's /proc/cpuinfo (four Cortex-A55 and four Cortex-A76, captured verbatim),
    the Raspberry Pi 5 capture's 8 GB meminfo, and a device tree naming ``model`` and ``compatible`` (its SoC last)."""
    doc = document("radxa-rock-5b-rk3588-cpuinfo.json")
    doc["files"]["/proc/meminfo"] = document("raspberry-pi-5-8gb.json")["files"]["/proc/meminfo"]
    doc["files"]["/proc/device-tree/model"] = model + "\x00"
    doc["files"]["/proc/device-tree/compatible"] = compatible.replace(" ", "\x00") + "\x00"
    return doc


def board_capture(capture: str, max_mhz: int | None = None) -> dict[str, Any]:
    """A board whose capture has /proc/cpuinfo and no meminfo or cpufreq (the RISC-V boards' sbc-bench cpuinfo, the
    Pi 4 8GB's): the Raspberry Pi 5 capture's 8 GB meminfo and, where given, each CPU's cpufreq maximum."""
    doc = document(capture)
    doc["files"]["/proc/meminfo"] = document("raspberry-pi-5-8gb.json")["files"]["/proc/meminfo"]
    if max_mhz:
        for n in range(doc["files"]["/proc/cpuinfo"].count("processor")):
            doc["files"][f"/sys/devices/system/cpu/cpu{n}/cpufreq/cpuinfo_max_freq"] = f"{max_mhz * 1000}\n"
    return doc


def jetpack5_agx_orin() -> dict[str, Any]:
    """A JetPack 5 Jetson AGX Orin 64GB: no NVML (JetPack before 6 ships no libnvidia-ml: ollama/ollama#3098), the
    dev kit's device-tree model as JetPack prints it, and 61.4 GiB of RAM."""
    return jetson_on_pi5("NVIDIA Jetson AGX Orin Developer Kit", 64335836, 60000000)


def jetpack4_nano() -> dict[str, Any]:
    """A Jetson Nano developer kit (4 GB) under JetPack 4: no NVML (ollama/ollama#3098), the kit's device-tree model
    ("NVIDIA Jetson Nano Developer Kit", read from /proc/device-tree/model in public code: find_string id
    41738576202) and 3.8 GiB of its 4 GB RAM to Linux."""
    return jetson_on_pi5("NVIDIA Jetson Nano Developer Kit", 3964588, 3100000)


def jetpack7_agx_thor() -> dict[str, Any]:
    """A Jetson AGX Thor developer kit under JetPack 7: NVML answers (driver 580, CUDA 13) with the name "NVIDIA Thor",
    compute capability 11.0 and memory NotSupported, as public nvidia-smi output on Thor shows ("Memory-Usage: Not
    Supported"); the devkit's device-tree model (rbonghi/jetson_stats#711); 122 GiB of its 128 GB RAM free to Linux."""
    doc = jetson_on_pi5("NVIDIA Jetson AGX Thor Developer Kit", 128000000, 120000000)
    doc["nvml"] = {"init_error": None,
                   "system": {"nvmlDeviceGetCount": 1, "nvmlSystemGetDriverVersion": "580.00",
                              "nvmlSystemGetCudaDriverVersion": 13000},
                   "devices": [{"nvmlDeviceGetName": "NVIDIA Thor",
                                "nvmlDeviceGetUUID": "GPU-00000000-0000-0000-0000-00000000a7f0",
                                "nvmlDeviceGetMemoryInfo": {"error": "NVML_ERROR_NOT_SUPPORTED"},
                                "nvmlDeviceGetCudaComputeCapability": [11, 0]}]}
    return doc
