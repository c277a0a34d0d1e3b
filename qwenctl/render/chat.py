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
from pathlib import Path
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


class InputHistory:
    """What was typed at the prompt, kept in a file between chats (the Up arrow brings it back), as
    Ollama and Python's own REPL do. A file that cannot be read or written costs the history, never
    the chat."""

    LENGTH = 1000  # lines kept

    def __init__(self, readline, path: Path):
        self.readline = readline
        self.path: Path | None = path
        readline.set_history_length(self.LENGTH)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            if path.exists():
                readline.read_history_file(str(path))
                readline.write_history_file(str(path))  # trimmed to LENGTH
            else:
                path.touch()  # append_history_file appends only to a file that exists
        except OSError:
            self.path = None

    def append(self, line: str) -> None:
        if self.path is None or not line.strip():  # readline keeps no empty line: nothing to append
            return
        try:
            if hasattr(self.readline, "append_history_file"):
                self.readline.append_history_file(1, str(self.path))
            else:  # some libedit builds
                self.readline.write_history_file(str(self.path))
        except OSError:
            self.path = None


class ChatUI:
    """Reads the user's lines and draws replies, notices and tables.

    `read` defaults to input(); line editing (arrows, history) comes from readline when
    stdin is a terminal, and with `history` (a file) what was typed is kept between chats.
    Replies stream to stdout as the tokens arrive; notices go there too, between turns, so a
    transcript reads in order.
    """

    def __init__(self, console: Console | None = None, read: Callable[[str], str] | None = None,
                 history: Path | None = None):
        self.console = console or make_console()
        self.notes: Console | None = self.console  # where notes about a reply go (one_shot moves them)
        self._one_shot = False
        self._history: InputHistory | None = None
        if read is None:
            if sys.stdin.isatty():
                try:
                    import readline  # (gives input() line editing and history)
                except ImportError:
                    pass
                else:
                    self._history = InputHistory(readline, history) if history is not None else None
            read = input
        self._read = read
        self._at_line_start = True

    def welcome(self, model: str, n_ctx: int) -> None:
        self.console.print(
            f"[chat.meta]chatting with {escape(model)} ({n_ctx:,}-token context). "
            f'/help for commands, """ for multi-line messages, /bye or Ctrl-D to leave.[/]'
        )

    def read_line(self, continuation: bool = False, prompt: str | None = None) -> str:
        self.console.file.flush()
        line = self._read(prompt or (CONTINUATION if continuation else PROMPT))
        if self._history is not None and prompt is None:
            self._history.append(line)
        return line

    def reply_text(self, text: str) -> None:
        self.console.print(text, style="chat.reply", end="", markup=False)
        self.console.file.flush()
        self._at_line_start = text.endswith("\n")

    @classmethod
    def one_shot(cls, quiet: bool = False) -> ChatUI:
        """For `run -p` and piped prompts: the reply alone on stdout, every note on stderr (none when quiet)."""
        ui = cls(read=lambda prompt: "")
        ui.notes = None if quiet else make_console(sys.stderr)
        ui._one_shot = True
        return ui

    def reply_done(self, reply: Reply) -> None:
        if not self._at_line_start:
            self.console.print()
        self._at_line_start = True
        if self.notes is None:
            return
        if reply.finish_reason == "interrupted":
            self.notes.print(escape("[reply stopped]"), style="chat.warn")
        elif reply.finish_reason == "length" and self._one_shot:
            self.notes.print(f"[chat.warn]note: the reply was cut at {plural(reply.generated_tokens, 'token')}: "
                             "-n/--max-tokens or a larger --ctx allows more[/]")
        elif reply.finish_reason == "length":
            self.notes.print(escape("[reply cut at the token limit; /set max_tokens N or a larger --ctx allows more]"),
                             style="chat.warn")

    def confirm(self, question: str) -> bool:
        """A y/N question on the chat's own input (Ctrl-D or Ctrl-C answers no)."""
        try:
            answer = self.read_line(prompt=f"{question} [y/N] ")
        except (EOFError, KeyboardInterrupt):
            self.console.print()
            return False
        return answer.strip().lower() in ("y", "yes")

    def facts(self, title: str, rows: Sequence[tuple[str, str]]) -> None:
        self.console.print(f"[chat.strong]{escape(title)}[/]")
        width = max((len(k) for k, _ in rows), default=0)
        for key, value in rows:
            label = f"{key.ljust(width)}  " if width else ""
            self.console.print(f"  [chat.meta]{escape(label)}[/]{escape(value)}")

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
        values = "  ".join(f"{k}={'none' if v is None else v}" for k, v in dataclasses.asdict(sampling).items())
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
