"""Terminal drawing for the chat and for `qwenctl run`'s progress lines.

The chat loop (qwenctl.chat) and the pipeline (qwenctl.pipeline) call these objects and
never rich directly. Styles have semantic names; colour is off with NO_COLOR or when the
output is not a terminal, and then the text is exactly what a script would expect.
"""

from __future__ import annotations

import dataclasses
import os
import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, TextIO

from rich.console import Console
from rich.markup import escape
from rich.theme import Theme

from qwenctl.render import plural

if TYPE_CHECKING:
    from qwenctl.backends import SamplingOptions
    from qwenctl.backends.reply import Reply
    from qwenctl.chat import ChatStats

THEME = Theme(
    {
        "chat.reply": "default",
        "chat.meta": "grey50",
        "chat.info": "cyan",
        "chat.warn": "yellow",
        "chat.error": "bold red",
        "chat.strong": "bold",
    }
)

PROMPT = ">>> "
CONTINUATION = "... "


def make_console(file: TextIO | None = None) -> Console:
    return Console(
        file=file,
        theme=THEME,
        no_color=bool(os.environ.get("NO_COLOR")),
        highlight=False,
        soft_wrap=True,
    )


class ChatUI:
    """Reads the user's lines and draws replies, notices and tables.

    `read` defaults to input(); line editing (arrows, history) comes from readline when
    stdin is a terminal. Replies stream to stdout as the tokens arrive; notices go there
    too, between turns, so a transcript reads in order.
    """

    def __init__(self, console: Console | None = None, read: Callable[[str], str] | None = None):
        self.console = console or make_console()
        if read is None:
            if sys.stdin.isatty():
                try:
                    import readline  # noqa: F401  (gives input() line editing and history)
                except ImportError:
                    pass
            read = input
        self._read = read
        self._at_line_start = True

    def welcome(self, model: str, n_ctx: int) -> None:
        self.console.print(
            f"[chat.meta]chatting with {escape(model)} ({n_ctx:,}-token context). "
            f'/help for commands, """ for multi-line messages, /bye or Ctrl-D to leave.[/]'
        )

    def read_line(self, continuation: bool = False) -> str:
        self.console.file.flush()
        return self._read(CONTINUATION if continuation else PROMPT)

    def reply_text(self, text: str) -> None:
        self.console.print(text, style="chat.reply", end="", markup=False)
        self.console.file.flush()
        self._at_line_start = text.endswith("\n")

    def reply_done(self, reply: Reply) -> None:
        if not self._at_line_start:
            self.console.print()
        self._at_line_start = True
        if reply.finish_reason == "interrupted":
            self.console.print(escape("[reply stopped]"), style="chat.warn")
        elif reply.finish_reason == "length":
            self.console.print(escape("[reply cut at max_tokens; /set max_tokens N to allow more]"), style="chat.warn")

    def info(self, message: str) -> None:
        self.console.print(f"[chat.info]{escape(message)}[/]")

    def warn(self, message: str) -> None:
        self.console.print(f"[chat.warn]note: {escape(message)}[/]")

    def error(self, message: str) -> None:
        self.console.print(f"[chat.error]error:[/] {escape(message)}")

    def help(self, commands: Sequence[tuple[str, str]], settings: Sequence[tuple[str, str]]) -> None:
        width = max(len(c) for c, _ in commands)
        for command, meaning in commands:
            self.console.print(f"  [chat.strong]{escape(command.ljust(width))}[/]  {escape(meaning)}")
        block = '""" ... """'
        self.console.print(f"  [chat.strong]{escape(block.ljust(width))}[/]  a message of several lines")
        self.console.print("settings for /set:")
        width = max(len(s) for s, _ in settings)
        for name, meaning in settings:
            self.console.print(f"  [chat.strong]{name.ljust(width)}[/]  {escape(meaning)}")

    def settings(self, sampling: SamplingOptions) -> None:
        values = "  ".join(f"{k}={v}" for k, v in dataclasses.asdict(sampling).items())
        self.console.print(f"[chat.info]{escape(values)}[/]")

    def stats(self, stats: ChatStats) -> None:
        r = stats.last_reply
        if r is None:
            self.console.print("[chat.info]no reply yet[/]")
        else:
            self.console.print(
                f"[chat.info]last reply: {plural(r.generated_tokens, 'token')}, {r.generation_tps:.1f} tok/s "
                f"(prompt {plural(r.prompt_tokens, 'token')}, {r.prompt_tps:.1f} tok/s), {r.finish_reason}[/]"
            )
        pct = 100 * stats.context_tokens / stats.n_ctx if stats.n_ctx else 0.0
        dropped = f", {stats.dropped_messages} dropped" if stats.dropped_messages else ""
        self.console.print(
            f"[chat.info]context: {stats.context_tokens:,} of {stats.n_ctx:,} tokens ({pct:.0f}%), "
            f"{plural(stats.messages, 'message')}{dropped}[/]"
        )
