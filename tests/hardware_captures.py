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


def jetpack5_agx_orin() -> dict[str, Any]:
    """A JetPack 5 Jetson AGX Orin 64GB as detection meets it: no NVML (JetPack before 6 ships no libnvidia-ml:
    ollama/ollama#3098), the dev kit's device-tree model as JetPack prints it, and 61.4 GiB of RAM. Built on the
    Raspberry Pi 5 capture (an arm64 board without NVML: its cpuinfo stands in for the Orin's Cortex-A78AE)."""
    doc = document("raspberry-pi-5-8gb.json")
    doc["files"]["/proc/device-tree/model"] = "NVIDIA Jetson AGX Orin Developer Kit\x00"
    doc["files"]["/proc/meminfo"] = (doc["files"]["/proc/meminfo"]
                                     .replace("MemTotal:       8255488 kB", "MemTotal:       64335836 kB")
                                     .replace("MemAvailable:   6159360 kB", "MemAvailable:   60000000 kB"))
    return doc
