"""All terminal drawing lives in this package: rich for people, one JSON document for scripts.

Shared helpers here; one module per command (render/detect.py, render/plan.py, ...).

Commands hand a result (a dataclass) to a renderer; nothing else imports rich.
Colour is off when NO_COLOR is set or stdout is not a terminal (rich decides the latter).
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any

from rich.console import Console

from qwenctl.result import envelope


def console(stderr: bool = False) -> Console:
    return Console(stderr=stderr, no_color=bool(os.environ.get("NO_COLOR")), highlight=False)


def print_json(result: Any, kind: str) -> None:
    """Print `result` as one versioned JSON document: {"schema": kind, "version": 1, ...fields}."""
    doc = envelope(kind, result)
    json.dump(doc, sys.stdout, indent=2, sort_keys=False)
    sys.stdout.write("\n")


def human_bytes(n: int | None) -> str:
    """Decimal units, as disk and model sizes are quoted (4.68 GB)."""
    if n is None:
        return "?"
    for unit, size in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if abs(n) >= size:
            return f"{n / size:.2f} {unit}" if unit in ("GB", "TB") else f"{n / size:.0f} {unit}"
    return f"{n} B"


def error(message: str) -> None:
    from rich.markup import escape

    # escape: messages carry user text and install hints like `qwenctl[server]`, not markup
    console(stderr=True).print(f"[bold red]error:[/] {escape(message)}", soft_wrap=True)
