"""What `qwenctl run` shows before the chat opens: steps, the plan in a few lines, the
download question, the smoke test. All on stderr, so stdout carries only the replies
(`qwenctl run -p ... > answer.txt` works).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable

from rich.console import Console
from rich.markup import escape

from qwenctl.render import human_bytes
from qwenctl.render.chat import make_console

if TYPE_CHECKING:
    from qwenctl.pipeline import SmokeTest


class RunReporter:
    """Draws the pipeline's progress; `ask` is None when no one can answer a question."""

    def __init__(self, console: Console | None = None, ask: Callable[[str], bool] | None = None, quiet: bool = False):
        import sys

        self.console = console or make_console(sys.stderr)
        self.ask = ask
        self.quiet = quiet

    def step(self, message: str) -> None:
        if not self.quiet:
            self.console.print(f"[chat.meta]{escape(message)}[/]")

    def plan(self, plan: object) -> None:
        if self.quiet:
            return
        for line in plan_lines(plan):
            self.console.print(escape(line))

    def confirm_download(self, repo: str, files: tuple[str, ...], size_bytes: int) -> bool:
        if self.ask is None:
            return False
        what = files[0] if len(files) == 1 else f"{len(files)} files"
        return self.ask(f"download {what} from {repo} ({human_bytes(size_bytes)})?")

    def smoke(self, result: SmokeTest) -> None:
        if result.warning:
            self.warn(result.warning)
        if self.quiet:
            return
        predicted = f" (predicted {result.predicted_tps:.1f})" if result.predicted_tps else ""
        self.console.print(
            f"[chat.meta]smoke test: {result.generated_tokens} tokens in {result.seconds:.1f} s, "
            f"{result.decode_tps:.1f} tok/s{predicted}[/]"
        )

    def warn(self, message: str) -> None:
        self.console.print(f"[chat.warn]warning: {escape(message)}[/]")


def plan_lines(plan: object) -> list[str]:
    """The plan in a few lines: what, why, predicted memory and speed, download size."""
    return [str(plan)]

