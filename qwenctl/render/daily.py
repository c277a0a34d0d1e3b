"""Drawing for `qwenctl logs` and `qwenctl config`: plain text that reads well in a pager or a file."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.markup import escape

from qwenctl.render import console, plural

if TYPE_CHECKING:
    from qwenctl.config import Config
    from qwenctl.logs import LogList


def show_logs(result: LogList) -> None:
    """Each reply as llm logs prints it: a heading line, then the prompt and the response under their own."""
    con = console()
    if not result.entries:
        con.print(f"no replies logged in {result.path}" if result.total else f"no transcript yet ({result.path})",
                  soft_wrap=True, markup=False)
        return
    for e in result.entries:
        tokens = f", {plural(e.generated_tokens, 'token')}" if e.generated_tokens is not None else ""
        con.print(f"[bold]# {e.datetime_utc}[/]  conversation {e.conversation_id}  "
                  f"[dim]{escape(e.model)}{tokens}, {e.finish_reason or '?'}[/]", soft_wrap=True)
        con.print()
        con.print("## Prompt", style="bold")
        con.print()
        con.print(e.prompt, markup=False, soft_wrap=True)
        con.print()
        con.print("## Response", style="bold")
        con.print()
        con.print(e.response, markup=False, soft_wrap=True)
        con.print()
    shown = len(result.entries)
    if shown < result.total:
        con.print(f"[dim]{shown} of {plural(result.total, 'reply', 'replies')} shown (-n 0 shows all)[/]")


def show_config(cfg: Config, defaults: dict[str, str]) -> None:
    """Every setting, its value and where it comes from (the file, or the built-in default)."""
    con = console()
    state = "" if cfg.exists else " (no such file: built-in defaults)"
    con.print(f"config file: {cfg.path}{state}", soft_wrap=True, markup=False)
    rows = []
    for key, default in defaults.items():
        if key.startswith("sampling."):
            value = cfg.sampling.get(key.split(".", 1)[1])
        else:
            value = getattr(cfg, key)
        shown = default if value is None else str(value).lower() if isinstance(value, bool) else str(value)
        rows.append((key, shown, "file" if value is not None else "default"))
    width = max(len(k) for k, _, _ in rows)
    for key, value, source in rows:
        con.print(f"  {key.ljust(width)}  {escape(value)}  [dim]({source})[/]", soft_wrap=True)


def show_servers(result) -> None:
    """`qwenctl ps`: one line per running server, the model last and whole."""
    from qwenctl.render import human_bytes

    con = console()
    if not result.servers:
        con.print("no qwenctl server is running (`qwenctl serve` starts one)")
        return
    rows = [("pid", "url", "memory", "context", "up", "model")]
    for s in result.servers:
        r = s.server
        memory = human_bytes(s.host_rss_bytes) if s.host_rss_bytes is not None else "?"
        if r.gpu_bytes:
            memory += f" + {human_bytes(r.gpu_bytes)} GPU"
        rows.append((str(r.pid), r.url, memory, f"{r.n_ctx:,}", _uptime(s.uptime_seconds), f"{r.model_id} ({r.model_path})"))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    for i, row in enumerate(rows):
        cells = [c.ljust(w) for c, w in zip(row, widths)]
        con.print("  ".join([*cells, row[-1]]), soft_wrap=True, markup=False, style="bold" if i == 0 else None)


def _uptime(seconds: float) -> str:
    minutes, _ = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    days, hours = divmod(hours, 24)
    if days:
        return f"{days}d {hours}h"
    return f"{hours}h {minutes:02d}m" if hours else f"{minutes}m" if minutes else f"{int(seconds)}s"
