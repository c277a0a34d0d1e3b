"""Every captured machine with one thing the OS told it taken away or garbled: detection degrades field by field and
the planner still answers, with a plan that fits or a one-line refusal, never a traceback.

A machine qwenctl has never seen differs from the captures in exactly this way: a file the kernel does not
provide, a command that prints something else, an NVML call the driver does not answer.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any

import pytest
from hardware_captures import ALL, document, replay

from qwenctl.errors import QwenctlError
from qwenctl.hardware import detect
from qwenctl.plan import plan

GARBLED = ("", "\x00", "MemTotal: lots kB\nprocessor : x\n", "9" * 40 + "\n")


def _degraded(doc: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    for table in ("files", "commands"):
        for key in list(doc.get(table) or {}):
            gone = copy.deepcopy(doc)
            del gone[table][key]
            yield f"{table} {key} missing", gone
            for text in GARBLED:
                bad = copy.deepcopy(doc)
                bad[table][key] = text
                yield f"{table} {key} = {text[:12]!r}", bad
    nvml = doc.get("nvml") or {}
    for i, device in enumerate(nvml.get("devices") or []):
        for call in list(device):
            gone = copy.deepcopy(doc)
            del gone["nvml"]["devices"][i][call]
            yield f"GPU {i} {call} not answered", gone
    for call in list(nvml.get("system") or {}):
        gone = copy.deepcopy(doc)
        del gone["nvml"]["system"][call]
        yield f"NVML {call} not answered", gone


def _answers(doc: dict[str, Any]) -> int:
    return len(doc.get("files") or {}) + len(doc.get("commands") or {}) + len((doc.get("nvml") or {}).get("devices") or [])


@pytest.mark.parametrize("name", ALL)
def test_a_capture_missing_or_garbling_any_one_answer_still_plans_or_refuses_in_one_line(name):
    original = document(name)
    try:
        plan(detect(replay(original)))
        plans_whole = True
    except QwenctlError:
        plans_whole = False  # a capture of cpuinfo alone has no memory size to plan with
    checked = 0
    for what, doc in _degraded(original):
        hw = detect(replay(doc))
        try:
            result = plan(hw)
        except QwenctlError as e:
            assert "\n" not in str(e).strip(), (what, str(e))
            continue
        for pool in result.chosen.memory:
            assert pool.used_bytes <= pool.capacity_bytes, (what, pool)
        checked += 1
    if plans_whole and _answers(original) > 1:  # one answer lost still leaves the others to plan with
        assert checked > 0
