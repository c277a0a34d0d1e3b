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
