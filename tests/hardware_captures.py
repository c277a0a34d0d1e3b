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
