"""Talking to the hub without tracebacks: its errors, its odd answers, its log lines, and the cache's disk.

- ``errors(asked)``: huggingface_hub's exceptions become one line each through a table (gated,
  not found, HTTP status, transport), with the exit code; anything not in the table propagates.
- ``odd_answers(asked)``: around a call into huggingface_hub that parses the hub's answer
  (``model_info``, ``list_repo_tree``). An answer of an unexpected shape (a mirror or proxy that
  is not quite the hub) makes huggingface_hub raise TypeError/KeyError/ValueError/AttributeError
  from deep inside; that is the hub's answer, not a qwenctl bug, so it is one NETWORK line.
- ``quiet_logs()``: huggingface_hub logs each retry of a dropped download through its own stderr
  handler *and* the root logger qwenctl configures, so the same warning showed twice per retry;
  while qwenctl downloads, those records are swallowed and qwenctl says once per file that it resumes.
- ``cache_errors(cache_dir)``: an OSError on the cache or qwenctl's own files becomes one line naming
  the path (errors.from_os_error), with "point HF_HUB_CACHE at another disk" as the fix for the cache.
"""

from __future__ import annotations

import contextlib
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from qwenctl.errors import ExitCode, QwenctlError, from_os_error

log = logging.getLogger("qwenctl.fetch")

TOKEN_HINT = "needs a token: set HF_TOKEN or run `hf auth login`"
CACHE_FIX = "point HF_HUB_CACHE at another disk"

@dataclass(frozen=True)
class Asked:
    repo: str
    revision: str
    filename: str | None
    endpoint: str


def _hub_error_table():
    """(exception type, exit code, message, hint) in match order; subclasses before their bases."""
    import httpx2
    from huggingface_hub import errors as e

    def http(x) -> str:
        return str(getattr(getattr(x, "response", None), "status_code", "an error"))

    return [
        (e.GatedRepoError, ExitCode.AUTH, lambda a, x: f"{a.repo} is gated and {TOKEN_HINT}", lambda a, x: "accept the model's terms on its page first"),
        (e.RepositoryNotFoundError, ExitCode.NOT_FOUND, lambda a, x: f"no repo {a.repo} on {a.endpoint}", lambda a, x: f"check the name; a private repo {TOKEN_HINT}"),
        (e.RevisionNotFoundError, ExitCode.NOT_FOUND, lambda a, x: f"{a.repo} has no revision {a.revision!r}", None),
        (e.RemoteEntryNotFoundError, ExitCode.NOT_FOUND, lambda a, x: f"{a.repo} has no file {a.filename} at {a.revision}", None),
        (e.OfflineModeIsEnabled, ExitCode.NOT_FOUND, lambda a, x: f"{a.repo} is not in the cache and offline mode is on", lambda a, x: "pull it once while online"),
        (e.HfHubHTTPError, None, lambda a, x: f"{a.endpoint} answered {http(x)} for {a.repo}" + (f":{a.filename}" if a.filename else ""), None),
        (httpx2.TransportError, ExitCode.NETWORK, lambda a, x: f"could not download from {a.endpoint}: {type(x).__name__}{': ' + str(x).splitlines()[0] if str(x) else ''}", lambda a, x: "check the connection or HF_ENDPOINT (a mirror); `--offline` uses what is cached"),
    ]


def convert(exc: BaseException, asked: Asked) -> QwenctlError | None:
    """The one-line QwenctlError for a hub exception, or None if it is not one (a bug)."""
    for etype, code, message, hint in _hub_error_table():
        if isinstance(exc, etype):
            if code is None:  # a bare HTTP error: decide by status
                status = getattr(getattr(exc, "response", None), "status_code", 0) or 0
                if status in (401, 403):
                    return QwenctlError(f"{asked.endpoint} refused access to {asked.repo} ({status})", hint=TOKEN_HINT, code=ExitCode.AUTH)
                hint = (lambda a, x: "the hub had a problem; try again later or set HF_ENDPOINT to a mirror") if status >= 500 else None
                code = ExitCode.NETWORK
            return QwenctlError(message(asked, exc), hint=hint(asked, exc) if hint else None, code=code)
    return None


@contextlib.contextmanager
def errors(asked: Asked) -> Iterator[Asked]:
    try:
        yield asked
    except QwenctlError:
        raise
    except Exception as exc:
        converted = convert(exc, asked)
        if converted is None:
            raise
        log.debug("hub error", exc_info=True)
        raise converted from None


@contextlib.contextmanager
def odd_answers(asked: Asked) -> Iterator[None]:
    """Around one huggingface_hub call that parses the hub's answer: a parse failure is the answer's fault."""
    try:
        yield
    except (TypeError, KeyError, ValueError, AttributeError) as exc:
        log.debug("unexpected hub answer", exc_info=True)
        detail = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else '(no message)'}"
        raise QwenctlError(
            f"{asked.endpoint} answered in an unexpected shape for {asked.repo} ({detail[:200]})",
            hint="is HF_ENDPOINT a Hugging Face hub or a full mirror of one? try again later, or `--offline` for what is cached",
            code=ExitCode.NETWORK,
        ) from None


class _OnceFilter(logging.Filter):
    """Drops huggingface_hub's download warnings; the first "Trying to resume" becomes one qwenctl line."""

    def __init__(self) -> None:
        super().__init__()
        self.said = False

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno >= logging.WARNING and not self.said and "resume" in record.getMessage():
            self.said = True
            first = record.getMessage().splitlines()[0].removeprefix("Error while downloading from ")
            log.warning("the connection dropped (%s); resuming the download", first)
        return False


@contextlib.contextmanager
def quiet_logs() -> Iterator[None]:
    """While qwenctl downloads: no warning from huggingface_hub's downloader, at most one of qwenctl's own."""
    hub_log = logging.getLogger("huggingface_hub.file_download")
    once = _OnceFilter()
    hub_log.addFilter(once)
    try:
        yield
    finally:
        hub_log.removeFilter(once)


@contextlib.contextmanager
def cache_errors(cache_dir: Path, doing: str = "write") -> Iterator[None]:
    """OSError -> one line naming the path (errors.from_os_error); in the cache, the fix names HF_HUB_CACHE."""
    try:
        yield
    except OSError as e:
        where = os.fsdecode(e.filename) if e.filename is not None else None
        in_cache = where is not None and (os.path.abspath(where) + os.sep).startswith(os.path.abspath(cache_dir) + os.sep)
        raise from_os_error(e, None, doing, CACHE_FIX if in_cache else None) from None


@contextlib.contextmanager
def naming(path: Path) -> Iterator[None]:
    """An OSError of a call on an open file (write, flush, close) carries no path: give it `path`."""
    try:
        yield
    except OSError as e:
        if e.errno is not None and e.filename is None:
            e.filename = str(path)
        raise
