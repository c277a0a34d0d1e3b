"""The chat: context-window management, one-shot answers, slash commands, the REPL loop.

Written against the backend ``Session`` protocol only, so llama.cpp and mlx chat the same
way. The model's own chat template does the formatting: we keep a list of messages and
the session renders it (the conversation's state, /set, /save and /load are conversation.py;
streaming one reply is backends/reply.py). All terminal drawing goes through a small UI object
(``qwenctl.render.chat.ChatUI``); this module never prints.

Input conventions (documented in docs/guide.md):
- a line starting with ``/`` is a command (``/help`` lists them);
- a message spanning several lines is wrapped in triple quotes: a line starting with
  ``\"\"\"`` opens a block that ends at a line ending with ``\"\"\"`` (as in Ollama);
- an empty line is ignored; Ctrl-C during a reply stops that reply, Ctrl-C at the prompt
  clears the line; Ctrl-D or ``/bye`` ends the chat.
"""

from __future__ import annotations

import dataclasses
import difflib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from qwenctl.backends import SamplingOptions
from qwenctl.backends.reply import Reply, generate
from qwenctl.conversation import (
    SETTINGS,
    Conversation,
    apply_setting,
    default_system_prompt,
    load_conversation,
    save_conversation,
    setting_name,
    suggest,
    well_formed,
)
from qwenctl.errors import ExitCode, QwenctlError

if TYPE_CHECKING:
    from qwenctl.backends import Session



MULTILINE_QUOTE = '"""'

# A reply bounded by the context only (max_tokens None, conversation.UNBOUNDED) keeps this much room
# when the conversation is fitted to the window.
UNBOUNDED_RESERVE = 512


# --------------------------------------------------------------------------- results


@dataclass(frozen=True)
class Fitted:
    """The messages to send after making them fit the context window, and what it cost."""

    messages: tuple[dict, ...]
    dropped_messages: int  # oldest history messages removed (the system prompt never is)
    truncated_chars: int  # characters cut from the end of the new user message
    prompt_tokens: int


@dataclass(frozen=True)
class ChatStats:
    """What /stats shows."""

    last_reply: Reply | None
    context_tokens: int  # the conversation as the template renders it now
    n_ctx: int
    messages: int  # user + assistant messages in history
    dropped_messages: int  # dropped so far to stay within the context window
    sampling: SamplingOptions


# --------------------------------------------------------------------------- context window


def reply_reserve(n_ctx: int, max_tokens: int | None) -> int:
    """Tokens kept free for the reply: max_tokens (UNBOUNDED_RESERVE for a reply bounded by the
    context only), but never more than half the window, so a large max_tokens cannot squeeze every
    earlier turn out of a small context."""
    return max(1, min(UNBOUNDED_RESERVE if max_tokens is None else max_tokens, n_ctx // 2))


def fit_to_context(
    system: dict,
    history: Sequence[dict],
    user: dict,
    count_tokens: Callable[[Sequence[dict]], int],
    budget: int,
) -> Fitted:
    """Make system + history + the new user message fit in `budget` prompt tokens.

    First drop the oldest history, a user message together with the replies that follow
    it, so the model never sees a reply without its question; the system prompt stays. If
    the new message alone is still too long (a huge paste), keep its beginning and cut the
    rest. Raises QwenctlError when even the system prompt with an empty message does not fit. Every content is made
    well-formed text first (`conversation.well_formed`): what the user typed, piped or loaded reaches the tokenizer.
    """
    system, user = _well_formed(system), _well_formed(user)
    history = [_well_formed(m) for m in history]
    dropped = 0
    total = count_tokens([system, *history, user])
    while total > budget and history:
        cut = 1
        while cut < len(history) and history[cut]["role"] != "user":
            cut += 1
        history = history[cut:]
        dropped += cut
        total = count_tokens([system, *history, user])
    if total <= budget:
        return Fitted((system, *history, user), dropped, 0, total)

    text = user["content"]

    def with_prefix(n: int) -> int:
        return count_tokens([system, {**user, "content": text[:n]}])

    if with_prefix(0) > budget:
        raise QwenctlError(
            f"the system prompt alone takes more than the {budget} tokens this context leaves for the prompt",
            hint="shorten it with /system TEXT, lower max_tokens with /set, or run with a larger --ctx",
            code=ExitCode.BAD_INPUT,
        )
    # Largest prefix that fits: start from the proportional guess, then bisect.
    lo, hi = 0, len(text)
    guess = int(len(text) * budget / total)
    if with_prefix(guess) <= budget:
        lo = guess
    else:
        hi = guess
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if with_prefix(mid) <= budget:
            lo = mid
        else:
            hi = mid
    kept = {**user, "content": text[:lo]}
    return Fitted((system, kept), dropped, len(text) - lo, with_prefix(lo))


def _well_formed(message: dict) -> dict:
    content = message.get("content")
    return {**message, "content": well_formed(content)} if isinstance(content, str) else message


@dataclass(frozen=True)
class OneShot:
    """A one-shot answer (`run -p`, piped stdin): the reply and how the prompt was fitted."""

    reply: Reply
    truncated_chars: int


def ask(
    session: Session,
    prompt: str,
    system: str | None = None,  # None: the default system prompt
    sampling: SamplingOptions | None = None,
    on_text: Callable[[str], None] | None = None,
    warn: Callable[[str], None] | None = None,
) -> OneShot:
    """Answer one prompt without history: what `qwenctl run -p` and piped stdin use."""
    sampling = sampling or SamplingOptions()
    system = default_system_prompt() if system is None else system
    budget = session.n_ctx - reply_reserve(session.n_ctx, sampling.max_tokens)
    fitted = fit_to_context(
        {"role": "system", "content": system}, [], {"role": "user", "content": prompt}, session.count_chat_tokens, budget
    )
    if fitted.truncated_chars and warn:
        warn(_truncation_notice(len(prompt), fitted.truncated_chars, session.n_ctx))
    reply = generate(session, fitted.messages, _clamped(sampling, session.n_ctx, fitted.prompt_tokens), on_text)
    return OneShot(reply, fitted.truncated_chars)


def _messages(n: int) -> str:
    return f"{n} message" if n == 1 else f"{n} messages"


def _truncation_notice(length: int, cut: int, n_ctx: int) -> str:
    return f"the message is too long for the {n_ctx:,}-token context: kept its first {length - cut:,} of {length:,} characters"


def _clamped(sampling: SamplingOptions, n_ctx: int, prompt_tokens: int) -> SamplingOptions:
    """Never ask for more tokens than the window has left after the prompt; an unbounded reply gets all of it."""
    room = max(1, n_ctx - prompt_tokens)
    if sampling.max_tokens is not None and sampling.max_tokens <= room:
        return sampling
    return dataclasses.replace(sampling, max_tokens=room)


# --------------------------------------------------------------------------- the REPL


class UI(Protocol):
    """What the chat loop needs from the terminal (qwenctl.render.chat.ChatUI draws it)."""

    def read_line(self, continuation: bool = False) -> str: ...  # EOFError on Ctrl-D

    def confirm(self, question: str) -> bool: ...  # a y/N question; no answer is no

    def reply_text(self, text: str) -> None: ...

    def reply_done(self, reply: Reply) -> None: ...

    def info(self, message: str) -> None: ...

    def warn(self, message: str) -> None: ...

    def error(self, message: str) -> None: ...

    def help(self, commands: Sequence[tuple[str, str]], settings: Sequence[tuple[str, str]]) -> None: ...

    def settings(self, sampling: SamplingOptions) -> None: ...

    def stats(self, stats: ChatStats) -> None: ...

    def facts(self, title: str, rows: Sequence[tuple[str, str]]) -> None: ...  # /show: "name  value" lines


class Transcript(Protocol):
    """Where every finished reply is recorded (qwenctl.logs keeps them in SQLite for `qwenctl logs`)."""

    def start(self) -> None: ...  # a new conversation begins (the chat opened, /clear, /load)

    def record(self, system: str, prompt: str, reply: Reply, sampling: SamplingOptions) -> None: ...


COMMANDS: dict[str, str] = {
    "/help": "show this help",
    "/show": "the model, its plan, the settings and the context in use (/show info|system|parameters)",
    "/set NAME VALUE": "change a sampling setting (no NAME: show them); /set parameter NAME VALUE too",
    "/set system TEXT": "replace the system prompt",
    "/set verbose": "show the speed after every reply (/set quiet: don't)",
    "/clear": "forget the conversation (keeps the system prompt and settings); also /reset",
    "/system TEXT": "replace the system prompt (no TEXT: show it)",
    "/stats": "speed of the last reply and how much of the context is used",
    "/save FILE": "save the conversation as JSON (asks before replacing a file)",
    "/load FILE": "continue a saved conversation",
    "/bye": "leave (also Ctrl-D)",
}
_ALIASES = {"/exit": "/bye", "/quit": "/bye", "/?": "/help", "/reset": "/clear"}
_SHOW = ("info", "system", "parameters")
# words /set takes besides the sampling settings
_SET_WORDS = ("parameter", "system", "verbose", "quiet")


class Chat:
    """One interactive conversation with a loaded session.

    `about` is what /show tells of the model (name, file, engine, plan: label and value pairs);
    `transcript`, when given, records every reply; `verbose` shows the speed after each one.
    """

    def __init__(self, session: Session, ui: UI, conversation: Conversation | None = None, *,
                 about: Sequence[tuple[str, str]] = (), transcript: Transcript | None = None, verbose: bool = False):
        self.session = session
        self.ui = ui
        self.conv = conversation or Conversation()
        self.last_reply: Reply | None = None
        self.dropped_total = 0
        self.about = tuple(about)
        self.transcript = transcript
        self.verbose = verbose
        if transcript is not None:
            transcript.start()

    # -- the loop

    def run(self) -> None:
        """Read and answer until /bye or Ctrl-D."""
        while True:
            try:
                text = self.read_message()
            except EOFError:
                return
            except KeyboardInterrupt:
                self.ui.info("(Ctrl-C clears the line; /bye or Ctrl-D leaves)")
                continue
            if text is None:
                continue
            if not self.handle(text):
                return

    def read_message(self) -> str | None:
        """One message from the UI: a line, or a triple-quoted block of lines. None = nothing to do."""
        line = self.ui.read_line()
        if not line.lstrip().startswith(MULTILINE_QUOTE):
            return line if line.strip() else None
        body = line.lstrip()[len(MULTILINE_QUOTE) :]
        lines = []
        while True:
            if body.rstrip().endswith(MULTILINE_QUOTE):
                lines.append(body.rstrip()[: -len(MULTILINE_QUOTE)])
                break
            lines.append(body)
            body = self.ui.read_line(continuation=True)
        text = "\n".join(lines).strip("\n")
        return text if text.strip() else None

    def handle(self, text: str) -> bool:
        """Answer one message or run one command; False when the chat should end."""
        if not text.strip():
            return True
        if text.startswith("/"):
            return self.command(text)
        self.say(text)
        return True

    # -- a turn

    def say(self, text: str) -> Reply | None:
        n_ctx = self.session.n_ctx
        sampling = self.conv.sampling
        budget = n_ctx - reply_reserve(n_ctx, sampling.max_tokens)
        try:
            fitted = fit_to_context(
                {"role": "system", "content": self.conv.system},
                self.conv.history,
                {"role": "user", "content": text},
                self.session.count_chat_tokens,
                budget,
            )
        except QwenctlError as e:
            self.ui.error(e.one_line())
            return None
        if fitted.dropped_messages:
            self.dropped_total += fitted.dropped_messages
            self.ui.warn(
                f"the conversation is near the {n_ctx}-token context limit: "
                f"dropped the oldest {_messages(fitted.dropped_messages)}; the system prompt is kept"
            )
        if fitted.truncated_chars:
            self.ui.warn(_truncation_notice(len(text), fitted.truncated_chars, n_ctx))
        try:
            reply = generate(
                self.session, fitted.messages, _clamped(sampling, n_ctx, fitted.prompt_tokens), self.ui.reply_text
            )
        except QwenctlError as e:  # the engine refused this turn; the conversation stays as it was
            self.ui.error(e.one_line())
            return None
        self.conv.history = [dict(m) for m in fitted.messages[1:]]
        # An interrupted reply stays in history as it stands, so the next turn sees what the user saw.
        self.conv.history.append({"role": "assistant", "content": reply.text})
        self.last_reply = reply
        self.ui.reply_done(reply)
        if self.transcript is not None:
            self.transcript.record(self.conv.system, fitted.messages[-1]["content"], reply, sampling)
        if self.verbose:
            self.ui.stats(self.stats())
        return reply

    # -- commands

    def command(self, text: str) -> bool:
        name, _, arg = text.strip().partition(" ")
        name = _ALIASES.get(name.lower(), name.lower())
        arg = arg.strip()
        try:
            if name == "/bye":
                return False
            elif name == "/help":
                self.ui.help(list(COMMANDS.items()), [(k, meaning) for k, (_, meaning) in SETTINGS.items()])
            elif name == "/clear":
                self.conv.history = []
                self.last_reply = None
                if self.transcript is not None:
                    self.transcript.start()
                self.ui.info("conversation cleared")
            elif name == "/system":
                self._system(arg)
            elif name == "/set":
                self._set(arg)
            elif name == "/show":
                self._show(arg)
            elif name == "/stats":
                self.ui.stats(self.stats())
            elif name == "/save":
                self._save(self._path_arg(arg, "/save"))
            elif name == "/load":
                path = self._path_arg(arg, "/load")
                self.conv = load_conversation(path)
                self.last_reply = None
                if self.transcript is not None:
                    self.transcript.start()
                self.ui.info(f"loaded {_messages(len(self.conv.history))} from {path}")
            else:
                self.ui.error(self._unknown(name))
        except QwenctlError as e:
            self.ui.error(e.one_line())
        return True

    def _system(self, arg: str) -> None:
        if arg:
            self.conv.system = arg
            self.ui.info("system prompt set")
        else:
            self.ui.info(f"system prompt: {self.conv.system}")

    def _set(self, arg: str) -> None:
        """/set; /set NAME VALUE; /set parameter NAME VALUE (Ollama); /set system TEXT; /set verbose|quiet."""
        word, _, rest = arg.partition(" ")
        word, rest = word.lower(), rest.strip()
        if word == "parameter":
            word, _, rest = rest.partition(" ")
            word, rest = word.lower(), rest.strip()
        elif word == "system":
            return self._system(rest)
        elif word in ("verbose", "quiet") and not rest:
            self.verbose = word == "verbose"
            return self.ui.info("the speed is shown after every reply" if self.verbose else "no speed after replies")
        if not word:
            return self.ui.settings(self.conv.sampling)
        key = setting_name(word, _SET_WORDS)
        if not rest or len(rest.split()) != 1:
            raise QwenctlError(f"usage: /set {key} VALUE", hint=SETTINGS[key][1], code=ExitCode.USAGE)
        self.conv.sampling = apply_setting(self.conv.sampling, key, rest)
        value = getattr(self.conv.sampling, key)
        self.ui.info(f"{key} = {'none' if value is None else value}")

    def _show(self, arg: str) -> None:
        what = arg.lower()
        if what and what not in _SHOW:
            close = suggest(what, _SHOW)
            raise QwenctlError(f"/show {arg}: nothing by that name",
                               hint=f"did you mean /show {close}?" if close else f"/show {'|'.join(_SHOW)}, or /show alone",
                               code=ExitCode.USAGE)
        if what in ("", "info"):
            stats = self.stats()
            pct = 100 * stats.context_tokens / stats.n_ctx if stats.n_ctx else 0.0
            context = f"{stats.context_tokens:,} of {stats.n_ctx:,} tokens in use ({pct:.0f}%), {_messages(stats.messages)}"
            self.ui.facts("model", [*self.about, ("context", context)])
        if what in ("", "system"):
            self.ui.facts("system prompt", [("", self.conv.system)])
        if what in ("", "parameters"):
            self.ui.facts("parameters", [(k, "none" if v is None else str(v))
                                         for k, v in dataclasses.asdict(self.conv.sampling).items()]
                          + [("verbose", "on" if self.verbose else "off")])

    def _save(self, path: Path) -> None:
        if path.exists() and not self.ui.confirm(f"{path} exists; replace it?"):
            self.ui.info(f"not saved; {path} is as it was")
            return
        save_conversation(self.conv, path)
        self.ui.info(f"saved {_messages(len(self.conv.history))} to {path}")

    @staticmethod
    def _path_arg(arg: str, command: str) -> Path:
        if not arg:
            raise QwenctlError(f"usage: {command} FILE", code=ExitCode.USAGE)
        return Path(arg).expanduser()

    @staticmethod
    def _unknown(name: str) -> str:
        known = [c.split()[0] for c in COMMANDS] + list(_ALIASES)
        close = difflib.get_close_matches(name, known, n=1)
        suggestion = f"did you mean {close[0]}? " if close else ""
        return f"unknown command {name} ({suggestion}type /help for the list)"

    def stats(self) -> ChatStats:
        return ChatStats(
            last_reply=self.last_reply,
            context_tokens=self.session.count_chat_tokens(self.conv.messages()),
            n_ctx=self.session.n_ctx,
            messages=len(self.conv.history),
            dropped_messages=self.dropped_total,
            sampling=self.conv.sampling,
        )
