"""Where the hub and its cache are, and talking to the hub without tracebacks: its errors, its odd
answers, its log lines, and the cache's disk.

- ``HubSettings.from_env()``: the endpoint, cache folder and offline switch, from the same variables
  huggingface_hub reads, read at call time (not at import, as ``huggingface_hub.constants`` does), so a
  library caller or a test may change them.
- ``errors(asked)``: huggingface_hub's exceptions become one line each through a table (gated,
  not found, HTTP status, transport), with the exit code; anything not in the table propagates.
- ``odd_answers(asked)``: around a call into huggingface_hub that parses the hub's answer
  (``model_info``, ``list_repo_tree``). An answer of an unexpected shape (a mirror or proxy that
  is not quite the hub) makes huggingface_hub raise TypeError/KeyError/ValueError/AttributeError
  from deep inside; that is the hub's answer, not a qwenctl bug, so it is one NETWORK line.
- ``cache_errors(cache_dir)``: an OSError on the cache or qwenctl's own files becomes one line naming
  the path (errors.from_os_error), with "point HF_HUB_CACHE at another disk" as the fix for the cache.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from qwenctl.errors import ExitCode, QwenctlError, from_os_error
from qwenctl.fetch.verify import Remote
from qwenctl.names import check_filename

if TYPE_CHECKING:
    from huggingface_hub.hf_api import HfApi, RepoFile

log = logging.getLogger("qwenctl.fetch")

TOKEN_HINT = "needs a token: set HF_TOKEN or run `hf auth login`"
CACHE_FIX = "point HF_HUB_CACHE at another disk"
DEFAULT_ENDPOINT = "https://huggingface.co"


@dataclass(frozen=True)
class HubSettings:
    endpoint: str
    cache_dir: Path
    offline: bool

    @classmethod
    def from_env(cls, offline: bool = False) -> HubSettings:
        """The same variables huggingface_hub reads, read now rather than at its import."""
        env = os.environ
        home = env.get("HF_HOME") or os.path.join(env.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "huggingface")
        cache = env.get("HF_HUB_CACHE") or env.get("HUGGINGFACE_HUB_CACHE") or os.path.join(home, "hub")
        hub_offline = (env.get("HF_HUB_OFFLINE") or env.get("TRANSFORMERS_OFFLINE") or "").upper() in {"1", "ON", "YES", "TRUE"}
        return cls(
            endpoint=(env.get("HF_ENDPOINT") or DEFAULT_ENDPOINT).rstrip("/"),
            cache_dir=Path(os.path.expandvars(os.path.expanduser(cache))),
            offline=offline or hub_offline,
        )


def repo_folder(cache_dir: Path, repo: str) -> Path:
    """The cache folder of a model repo, named as huggingface_hub names it."""
    return cache_dir / ("models--" + repo.replace("/", "--"))


def list_remote(api: HfApi, repo: str, commit: str) -> dict[str, Remote]:
    """Every file of `repo` at `commit` as the hub records it (LFS size and SHA-256, or git blob SHA-1)."""
    files: dict[str, Remote] = {}
    for entry in api.list_repo_tree(repo, revision=commit, recursive=True):
        if not hasattr(entry, "blob_id"):  # a folder
            continue
        f: RepoFile = entry  # type: ignore[assignment]
        check_filename(f.path)
        if f.lfs is not None:
            files[f.path] = Remote(f.path, f.lfs.size, f.lfs.sha256)
        else:
            files[f.path] = Remote(f.path, f.size, f.blob_id)
    return files


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
