"""`qwenctl worker`: what this machine offers, and how to use it from the main machine."""

from __future__ import annotations

from rich.markup import escape

from qwenctl.render import console, human_bytes
from qwenctl.worker import WorkerStart


def ready(start: WorkerStart) -> None:
    out = console()
    out.print(f"offering {len(start.devices)} device{'s' if len(start.devices) != 1 else ''} at {start.endpoint} "
              f"(llama.cpp RPC protocol {start.protocol}, {start.threads} CPU threads):")
    for d in start.devices:
        out.print(f"  {escape(d.name)} · {escape(d.description)} · {human_bytes(d.free_bytes)} free of {human_bytes(d.total_bytes)}")
    if start.info_url:
        out.print(f"machine info for planners at {start.info_url}")
    out.print(f"use it from the main machine with --workers {start.endpoint}; Ctrl-C stops it")
    if start.warning:
        console(stderr=True).print(f"[bold yellow]warning:[/] {escape(start.warning)}", soft_wrap=True)


def stopped() -> None:
    console().print("worker stopped")
