"""qwenctl: run the best Qwen 2.5 model your hardware can.

The package is a library first: ``detect``, ``plan``, ``pull``, ``load_backend`` and
``bench`` do the work; ``qwenctl.cli`` only parses flags, calls one of them and renders.

    import qwenctl
    from qwenctl.plan import plan

    chosen = plan(qwenctl.detect()).chosen
    files = qwenctl.pull(chosen.repo, list(chosen.files) or None)

``detect``, ``pull`` and ``load_backend`` are exported here and imported on first use (``import
qwenctl`` loads none of them), as simonw/llm exports its API. ``plan`` and ``bench`` are not: their
modules have the same names, and Python binds ``qwenctl.plan`` to the module as soon as any code
imports it, so an export would turn from a function into a module under a caller's feet. They are
``qwenctl.plan.plan`` and ``qwenctl.bench.bench``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:
    from qwenctl.backends import load_backend
    from qwenctl.fetch import pull
    from qwenctl.hardware import detect

__all__ = ["__version__", "detect", "load_backend", "pull"]

# name -> the module that defines it
_API = {"detect": "qwenctl.hardware", "pull": "qwenctl.fetch", "load_backend": "qwenctl.backends"}


def __getattr__(name: str) -> Any:
    if name in _API:
        import importlib

        return getattr(importlib.import_module(_API[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
