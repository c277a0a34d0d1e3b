"""A conversation and its settings: the system prompt, the history, the sampling options; ``/set``'s
parsers; ``/save`` and ``/load``. Pure state and files: the REPL that edits it is chat.py.
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from qwenctl import files
from qwenctl.backends import SamplingOptions
from qwenctl.errors import ExitCode, QwenctlError, from_os_error

SAVE_SCHEMA = "qwenctl.chat"
SAVE_VERSION = 1

# max_tokens = None: a reply may go on until the context is full (as Ollama's num_predict -1), the chat's
# and one-shots' default; chat.UNBOUNDED_RESERVE is the room kept for it when the conversation is fitted.
UNBOUNDED = None


_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def well_formed(text: str) -> str:
    """``text`` with each lone UTF-16 surrogate as U+FFFD, as a browser shows it. Python strings carry them where
    bytes were not UTF-8 (stdin, argv: surrogateescape) or JSON escaped half a character ("\\ud83d"), and no UTF-8
    encoder, the tokenizer's included, accepts them: such a prompt ended `run` and `serve` in an internal error."""
    return _LONE_SURROGATE.sub("\ufffd", text) if _LONE_SURROGATE.search(text) else text


def default_system_prompt() -> str:
    """What Qwen2.5's chat template inserts when the conversation has no system message (the catalog's
    ``generation.default_system_prompt``, with its source); sent explicitly so the llama.cpp and mlx
    paths agree and /system can replace it."""
    from qwenctl.catalog import load_catalog

    return load_catalog().generation.system_prompt


def __getattr__(name: str) -> str:
    """``DEFAULT_SYSTEM_PROMPT``, read from the catalog on first use (importing chat reads no data file)."""
    if name == "DEFAULT_SYSTEM_PROMPT":
        return default_system_prompt()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


@dataclass
class Conversation:
    """The system prompt, the user/assistant history and the sampling settings."""

    system: str = field(default_factory=default_system_prompt)
    history: list[dict] = field(default_factory=list)
    sampling: SamplingOptions = field(default_factory=lambda: SamplingOptions(max_tokens=UNBOUNDED))

    def messages(self, extra: Sequence[dict] = ()) -> list[dict]:
        return [{"role": "system", "content": self.system}, *self.history, *extra]


# --------------------------------------------------------------------------- /set


def _positive_float(v: str) -> float:
    x = float(v)
    if not x > 0:
        raise ValueError("must be > 0")
    return x


def _non_negative_float(v: str) -> float:
    x = float(v)
    if not x >= 0:
        raise ValueError("must be >= 0")
    return x


def _unit_interval(v: str) -> float:
    x = float(v)
    if not 0 < x <= 1:
        raise ValueError("must be in (0, 1]")
    return x


def _non_negative_int(v: str) -> int:
    x = int(v)
    if x < 0:
        raise ValueError("must be >= 0")
    return x


def _positive_int(v: str) -> int:
    x = int(v)
    if x < 1:
        raise ValueError("must be >= 1")
    return x


def _seed(v: str) -> int | None:
    return None if v.lower() in ("none", "random") else _non_negative_int(v)


def _max_tokens(v: str) -> int | None:
    return UNBOUNDED if v.lower() in ("none", "-1") else _positive_int(v)


# setting -> (parser, meaning); the names are SamplingOptions' fields.
SETTINGS: dict[str, tuple[Callable[[str], object], str]] = {
    "temperature": (_non_negative_float, "randomness; 0 = always the likeliest token"),
    "top_p": (_unit_interval, "sample from the smallest set of tokens whose probability reaches this"),
    "top_k": (_non_negative_int, "sample from the k likeliest tokens; 0 = no limit"),
    "max_tokens": (_max_tokens, "longest reply, in tokens; 'none': until the context is full"),
    "repeat_penalty": (_positive_float, "penalty for repeating recent tokens; 1 = none"),
    "seed": (_seed, "fixed seed for reproducible replies, or 'none'"),
}


# Ollama's names for the same settings (`/set parameter num_predict 200`).
SETTING_ALIASES = {"num_predict": "max_tokens", "repetition_penalty": "repeat_penalty"}


def setting_name(name: str, others: Sequence[str] = ()) -> str:
    """A setting as typed (any case, Ollama's spelling) -> its SETTINGS key, or QwenctlError with a suggestion
    (among the settings and `others`, the other words the caller takes)."""
    key = name.lower().replace("-", "_")
    key = SETTING_ALIASES.get(key, key)
    if key in SETTINGS:
        return key
    if key == "num_ctx":
        raise QwenctlError("the context window is fixed when the model loads", hint="leave and rerun with --ctx N",
                           code=ExitCode.BAD_INPUT)
    close = suggest(key, [*SETTINGS, *SETTING_ALIASES, *others], SETTING_ALIASES)
    hint = f"did you mean {close}?" if close else f"one of: {', '.join(SETTINGS)}"
    raise QwenctlError(f"unknown setting {name!r}", hint=hint, code=ExitCode.BAD_INPUT)


def suggest(word: str, known: Sequence[str], aliases: dict[str, str] | None = None) -> str | None:
    """What `word` most likely meant, in words: the known words it begins (`temp`: "temperature"; `top`:
    "top_p or top_k"), else the closest spelling; an alias is named by what it stands for."""
    import difflib

    aliases = aliases or {}
    starts = list(dict.fromkeys(aliases.get(k, k) for k in known if k.startswith(word)))
    if starts and len(starts) <= 3:
        return " or ".join(starts)
    close = difflib.get_close_matches(word, known, n=1, cutoff=0.6)
    return aliases.get(close[0], close[0]) if close else None


def apply_setting(sampling: SamplingOptions, name: str, value: str) -> SamplingOptions:
    """`/set NAME VALUE` as a pure function: the new options, or QwenctlError saying why not."""
    name = setting_name(name)
    parse, _ = SETTINGS[name]
    try:
        parsed = parse(value)
    except ValueError as e:
        reason = str(e) if str(e).startswith("must") else "not a number"
        raise QwenctlError(f"{name} {value!r}: {reason}", code=ExitCode.BAD_INPUT) from None
    change: dict[str, Any] = {name: parsed}  # the parser's type is the field's
    return dataclasses.replace(sampling, **change)


# --------------------------------------------------------------------------- /save, /load


def save_conversation(conv: Conversation, path: Path) -> None:
    doc = {
        "schema": SAVE_SCHEMA,
        "version": SAVE_VERSION,
        "system": conv.system,
        "messages": conv.history,
        "sampling": dataclasses.asdict(conv.sampling),
    }
    try:
        files.write_text(Path(path), json.dumps(doc, indent=2, ensure_ascii=False) + "\n")
    except OSError as e:
        raise from_os_error(e, path, "save the chat to") from None


def load_conversation(path: Path) -> Conversation:
    """Read a saved chat, refusing anything malformed with one line that says what is wrong."""
    doc = files.read_json(path, "file")
    return conversation_from_dict(doc, str(path))


def conversation_from_dict(doc: object, where: str = "saved chat") -> Conversation:
    def bad(what: str) -> QwenctlError:
        return QwenctlError(f"{where} is not a qwenctl chat: {what}", code=ExitCode.BAD_INPUT)

    if not isinstance(doc, dict) or doc.get("schema") != SAVE_SCHEMA:
        raise bad(f'expected a JSON object with "schema": "{SAVE_SCHEMA}"')
    if doc.get("version") != SAVE_VERSION:
        raise bad(f"unsupported version {doc.get('version')!r} (this qwenctl reads version {SAVE_VERSION})")
    system = doc.get("system")
    if not isinstance(system, str):
        raise bad('"system" must be a string')
    messages = doc.get("messages")
    if not isinstance(messages, list):
        raise bad('"messages" must be a list')
    history = []
    for i, m in enumerate(messages):
        if not isinstance(m, dict) or m.get("role") not in ("user", "assistant") or not isinstance(m.get("content"), str):
            raise bad(f'messages[{i}] must be {{"role": "user"|"assistant", "content": "..."}}')
        history.append({"role": m["role"], "content": m["content"]})
    sampling = SamplingOptions()
    saved = doc.get("sampling", {})
    if not isinstance(saved, dict):
        raise bad('"sampling" must be an object')
    for name, value in saved.items():
        if name not in SETTINGS:
            raise bad(f"unknown sampling setting {name!r}")
        if not (value is None and name in ("seed", "max_tokens")) and (isinstance(value, bool) or not isinstance(value, (int, float))):
            raise bad(f"sampling.{name} must be a number")
        try:
            sampling = apply_setting(sampling, name, "none" if value is None else str(value))
        except QwenctlError as e:
            raise bad(f"sampling.{e.message}") from None
    return Conversation(system=system, history=history, sampling=sampling)
