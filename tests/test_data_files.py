"""The shipped data files: figures and their sources, each given once."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DATA_FILES = sorted([*ROOT.glob("qwenctl/data/*.json"), *ROOT.glob("qwenctl/hardware/data/*.json"),
                     *ROOT.glob("benchmarks/published_*.json")])


def _once(pairs: list[tuple[str, object]]) -> dict:
    keys = [k for k, _ in pairs]
    twice = sorted({k for k in keys if keys.count(k) > 1})
    if twice:
        raise ValueError(f"keys given twice: {twice}")
    return dict(pairs)


@pytest.mark.parametrize("path", DATA_FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_no_key_is_given_twice(path):
    """json keeps the last of two equal keys without a word: a figure or its source written twice in one table would
    silently lose the first."""
    json.loads(path.read_text("utf-8"), object_pairs_hook=_once)


def test_a_key_given_twice_is_named_and_the_files_are_found():
    """The check above sees a table's second "a", not a nested one's, and runs over every shipped data file."""
    assert len(DATA_FILES) > 20 and any(p.name == "speed_model.json" for p in DATA_FILES)
    with pytest.raises(ValueError, match=r"keys given twice: \['a'\]"):
        json.loads('{"a": 1, "b": {"a": 2}, "a": 3}', object_pairs_hook=_once)
    assert json.loads('{"a": 1, "b": {"a": 2}}', object_pairs_hook=_once) == {"a": 1, "b": {"a": 2}}
