"""qwenctl's own defaults, from one TOML file: flags win over the file, the file over the built-in defaults.

The file is ``config.toml`` in the user config directory (platformdirs: ~/.config/qwenctl on Linux,
~/Library/Application Support/qwenctl on macOS, %LOCALAPPDATA%\\qwenctl on Windows); ``QWENCTL_CONFIG``
names another one. No file means the built-in defaults. Every key is optional::

    model = "7b"              # what run, bench, serve and pull use when no model is named
    ctx = 16384               # context window, as --ctx
    system = "Answer briefly."  # system prompt, as --system
    quiet = true              # as -q on every run: stderr for errors only
    log = false               # keep no transcript (qwenctl logs); as --no-log
    history = false           # do not remember what was typed at >>> (the Up arrow)

    [sampling]                # the chat's and one-shots' defaults, as /set names them
    temperature = 0.2
    top_p = 0.8
    top_k = 20
    repeat_penalty = 1.05
    max_tokens = 1024         # absent: a reply may fill the context
    seed = 42

A malformed file, an unknown key or a value out of range is one line naming the file and the key
(exit 3), so a typo never passes silently.
"""

from __future__ import annotations

import dataclasses
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from qwenctl.errors import ExitCode, QwenctlError

if TYPE_CHECKING:
    from qwenctl.backends import SamplingOptions

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

CONFIG_ENV = "QWENCTL_CONFIG"

# key -> (type, what it means); "sampling" is a table of chat.SETTINGS.
KEYS: dict[str, tuple[type, str]] = {
    "model": (str, "what run, bench, serve and pull use when no model is named (7b, 7b:q8_0, REPO[:FILE], a path)"),
    "ctx": (int, "context window in tokens, as --ctx"),
    "system": (str, "system prompt, as --system"),
    "quiet": (bool, "as -q: stderr for errors only"),
    "log": (bool, "keep a transcript of every reply (qwenctl logs)"),
    "history": (bool, "remember what was typed at >>> between chats"),
}


@dataclass(frozen=True)
class Config:
    """The file's values; None where the file says nothing (the built-in default applies)."""

    path: str  # the file that was (or would be) read
    exists: bool
    model: str | None = None
    ctx: int | None = None
    system: str | None = None
    quiet: bool | None = None
    log: bool | None = None
    history: bool | None = None
    sampling: dict[str, Any] = dataclasses.field(default_factory=dict)  # name -> value, validated

    def sampling_options(self, base: SamplingOptions) -> SamplingOptions:
        """`base` with the file's [sampling] values applied."""
        return dataclasses.replace(base, **self.sampling)


def config_path() -> Path:
    """Where the config file is: QWENCTL_CONFIG, else config.toml in the user config directory."""
    named = os.environ.get(CONFIG_ENV)
    if named:
        return Path(named).expanduser()
    import platformdirs

    return platformdirs.user_config_path("qwenctl") / "config.toml"


def load_config(path: Path | None = None) -> Config:
    """The config file parsed and checked; an empty Config when there is no file."""
    from qwenctl.files import read_text

    path = path or config_path()
    if not path.exists() and not os.environ.get(CONFIG_ENV):
        return Config(str(path), False)
    text = read_text(path, "config file")
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise QwenctlError(f"config file {path} is not valid TOML: {e}", hint="fix or remove it", code=ExitCode.BAD_INPUT) from None
    return _check(doc, path)


def _bad(path: Path, message: str, hint: str | None = None) -> QwenctlError:
    return QwenctlError(f"config file {path}: {message}", hint=hint or "fix or remove it", code=ExitCode.BAD_INPUT)


def _check(doc: dict, path: Path) -> Config:
    from qwenctl.backends import SamplingOptions
    from qwenctl.conversation import SETTINGS, apply_setting, suggest

    values: dict[str, Any] = {}
    for key, value in doc.items():
        if key == "sampling":
            continue
        if key not in KEYS:
            close = suggest(key, [*KEYS, *SETTINGS])
            if key in SETTINGS or close in SETTINGS:
                hint = f"did you mean {close} under [sampling]?" if key not in SETTINGS else "sampling settings go under [sampling]"
            else:
                hint = f"did you mean {close}?" if close else f"known keys: {', '.join([*KEYS, 'sampling'])}"
            raise _bad(path, f"unknown key {key!r}", hint)
        kind, _ = KEYS[key]
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            raise _bad(path, f"{key} must be {_kind_name(kind)}, not {value!r}")
        if key == "ctx" and value < 256:
            raise _bad(path, f"ctx {value} is too small", "use at least 256 tokens")
        values[key] = value
    table = doc.get("sampling", {})
    if not isinstance(table, dict):
        raise _bad(path, "sampling must be a table: [sampling]")
    sampling: dict[str, Any] = {}
    options = SamplingOptions()
    for name, value in table.items():
        if name not in SETTINGS:
            close = suggest(name, list(SETTINGS))
            raise _bad(path, f"unknown sampling setting {name!r}",
                       f"did you mean {close}?" if close else f"known: {', '.join(SETTINGS)}")
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise _bad(path, f"sampling.{name} must be a number, not {value!r}")
        try:
            options = apply_setting(options, name, str(value))
        except QwenctlError as e:
            raise _bad(path, f"sampling.{e.message}") from None
        sampling[name] = getattr(options, name)
    return Config(str(path), True, sampling=sampling, **values)


def _kind_name(kind: type) -> str:
    return {str: "a string", int: "a whole number", bool: "true or false"}[kind]

