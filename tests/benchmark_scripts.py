"""The benchmark scripts under benchmarks/ are scripts, not a package: tests load one by its path."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"


def load(relative: str) -> ModuleType:
    """benchmarks/``relative`` ("speed_model_fit.py", "gpu/alloc_program.py") as a module, executed fresh."""
    path = BENCHMARKS / relative
    spec = importlib.util.spec_from_file_location(path.stem, path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
