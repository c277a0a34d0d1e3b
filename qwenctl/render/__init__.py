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

# Piped output is never wrapped: a script reads whole lines, and a spec cut in two cannot be pasted.
PIPED_WIDTH = 10_000


def console(stderr: bool = False) -> Console:
    con = Console(stderr=stderr, no_color=bool(os.environ.get("NO_COLOR")), highlight=False)
    if not con.is_terminal:
        con.soft_wrap = True
        con.width = PIPED_WIDTH
    return con


def print_json(result: Any, kind: str) -> None:
    """Print `result` as one versioned JSON document: {"schema": kind, "version": 1, ...fields}."""
    doc = envelope(kind, result)
    json.dump(doc, sys.stdout, indent=2, sort_keys=False)
    sys.stdout.write("\n")


def human_bytes(n: int | float | None) -> str:
    """Every size in one unit system, binary (4.36 GiB), as memory is counted: a file, its memory and the
    RAM it must fit in compare at a glance. Rates are decimal (``human_rate``), as bandwidth is quoted."""
    if n is None:
        return "?"
    for unit, size in (("TiB", 2**40), ("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if abs(n) >= size:
            return f"{n / size:.2f} {unit}" if unit in ("GiB", "TiB") else f"{n / size:.0f} {unit}"
    return f"{int(n)} B"


def human_rate(bytes_per_s: float | None) -> str:
    """Bandwidth and transfer speeds in decimal units per second (25.6 GB/s), as vendors quote them."""
    if bytes_per_s is None:
        return "?"
    for unit, size in (("TB/s", 1e12), ("GB/s", 1e9), ("MB/s", 1e6), ("kB/s", 1e3)):
        if abs(bytes_per_s) >= size:
            return f"{bytes_per_s / size:.2f} {unit}" if unit == "TB/s" else f"{bytes_per_s / size:.1f} {unit}"
    return f"{bytes_per_s:.0f} B/s"


def plural(n: int, word: str, many: str | None = None) -> str:
    """"1 token", "2 tokens", "1,024 tokens"."""
    return f"{n:,} {word if n == 1 else (many or word + 's')}"


def error(message: str) -> None:
    from rich.markup import escape

    # escape: messages carry user text and install hints like `qwenctl[server]`, not markup
    console(stderr=True).print(f"[bold red]error:[/] {escape(message)}", soft_wrap=True)
