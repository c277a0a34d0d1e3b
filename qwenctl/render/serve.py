"""What `qwenctl serve` prints once it is listening: a few lines for people, one JSON line for scripts."""

from __future__ import annotations

import json
import sys

from qwenctl.render import console
from qwenctl.result import envelope
from qwenctl.serve import ServerInfo


def ready(info: ServerInfo, as_json: bool) -> None:
    """Announce the server. Flushed at once: a script waiting on a pipe reads this line to know it is up."""
    err = console(stderr=True)
    for warning in info.warnings:
        err.print(f"[bold yellow]warning:[/] {warning}", soft_wrap=True)
    if as_json:
        sys.stdout.write(json.dumps(envelope("serve", info)) + "\n")
        sys.stdout.flush()
        return
    out = console()
    for line in info.plan:
        out.print(line, soft_wrap=True)
    out.print(f"[bold]{info.model_id}[/] ({info.backend}) from {info.model_path}", soft_wrap=True)
    out.print("  " + " · ".join(_load_facts(info)), soft_wrap=True)
    s = info.sampling_defaults
    out.print(
        f"  defaults when a request leaves them out: temperature {s.temperature}, top_p {s.top_p}, "
        f"top_k {s.top_k}, repeat penalty {s.repeat_penalty}",
        soft_wrap=True,
    )
    out.print(f"Serving the OpenAI API at [bold]{info.url}[/] as model [bold]{info.model_id}[/]", soft_wrap=True)
    if info.api_key_required:
        out.print("  requests need the header Authorization: Bearer <your key>")
    out.print(f"  try: {info.curl}", soft_wrap=True, markup=False)
    out.print("Ctrl-C stops the server (requests in flight are finished first).")
    sys.stdout.flush()


def _load_facts(info: ServerInfo) -> list[str]:
    facts = [f"context {info.n_ctx} tokens"]
    if info.n_gpu_layers is not None:
        facts.append("GPU layers: all" if info.n_gpu_layers < 0 else f"GPU layers: {info.n_gpu_layers}")
    if info.n_threads:
        facts.append(f"{info.n_threads} threads")
    if info.flash_attn is not None:
        facts.append(f"flash attention {'on' if info.flash_attn else 'off'}")
    if info.split:
        facts.append(info.split)
    facts.append(f"{info.parallel} request{'s' if info.parallel != 1 else ''} at a time")
    return facts
