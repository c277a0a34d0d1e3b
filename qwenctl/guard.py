"""The CLI's edge: every way a command can end becomes one line on stderr and a distinct exit code.

- ``QwenctlError``: its one line, its code (errors.py).
- ``OSError`` that no layer below converted (a file qwenctl reads or writes): one line naming the
  path and the fix, through ``errors.from_os_error``.
- Ctrl-C: "interrupted", 130.
- ``ModuleNotFoundError`` for a package outside qwenctl: a broken install, not a bug (a dependency missing from the
  environment, as the GPU machine's Python once lacked platformdirs): one line naming the package and the fix, 1.
- Anything else is a bug. As pipx does, the user sees one line ("qwenctl hit an internal error: …")
  and the path of a log file in the state directory (platformdirs' ``user_state_path``) holding the
  full traceback, and the process exits 70 (``ExitCode.INTERNAL``). ``QWENCTL_TRACEBACK=1`` lets the
  exception through instead, for developers and the test suite (so the guard never hides a bug there).

click's own exceptions (usage errors, ``--help``'s exit, an aborted confirmation) pass through to click.
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import NoReturn, TypeVar

from qwenctl.errors import ExitCode, QwenctlError, from_os_error

T = TypeVar("T")
TRACEBACK_ENV = "QWENCTL_TRACEBACK"


def guarded(command: Callable[[], T]) -> T:
    import click

    try:
        return command()
    except QwenctlError as e:
        _fail(e.one_line(), e.code)
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        sys.exit(int(ExitCode.INTERRUPTED))
    except (click.exceptions.ClickException, click.exceptions.Exit, click.exceptions.Abort):
        raise
    except BrokenPipeError:  # `qwenctl models --json | head`: the reader left; say nothing more
        with contextlib.suppress(OSError, ValueError):  # so the flush at exit does not complain either
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(1)
    except OSError as e:
        converted = from_os_error(e)
        _fail(converted.one_line(), converted.code)
    except ModuleNotFoundError as e:
        missing = (e.name or "").partition(".")[0]
        if not missing or missing == "qwenctl":
            _internal_error(e)
        _fail(f"qwenctl cannot import {missing}, which it needs: this Python environment's install is incomplete "
              "(reinstall qwenctl into it; `python -m pip check` names what is missing)", ExitCode.ERROR)
    except Exception as e:  # noqa: BLE001 - the last guard: a bug, reported once with its log
        _internal_error(e)


def _internal_error(e: Exception) -> NoReturn:
    if os.environ.get(TRACEBACK_ENV, "") not in ("", "0"):
        raise e
    log = write_crash_log(e)
    where = f"the traceback is in {log}" if isinstance(log, Path) else f"could not write the traceback: {log}"
    _fail(f"qwenctl hit an internal error: {type(e).__name__}: {_first_line(e)} "
          f"({where}; please attach it to a bug report)", ExitCode.INTERNAL)


def _fail(line: str, code: ExitCode) -> NoReturn:
    try:
        from qwenctl import render

        render.error(line)
    except ImportError:  # rich itself missing: the line still reaches the user, uncoloured
        print(f"error: {line}", file=sys.stderr)
    sys.exit(int(code))


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    return text.splitlines()[0][:300] if text else "(no message)"


def crash_log_dir() -> Path:
    """The state directory's log folder; the system's temporary folder where platformdirs cannot be imported (a broken
    install must not turn the report of its own bug into a second traceback)."""
    try:
        import platformdirs
    except ImportError:
        return Path(tempfile.gettempdir()) / "qwenctl-log"
    return platformdirs.user_state_path("qwenctl") / "log"


def write_crash_log(e: BaseException) -> Path | str:
    """The traceback, the command line and the versions in a new file; its path, or why it could not be written."""
    from qwenctl import __version__

    text = (f"qwenctl {__version__}, Python {sys.version.split()[0]} on {sys.platform}\n"
            f"command: {' '.join(sys.argv)}\n\n" + "".join(traceback.format_exception(type(e), e, e.__traceback__)))
    folder = crash_log_dir()
    try:
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"crash-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}.log"
        path.write_text(text, encoding="utf-8")
    except OSError as err:
        return from_os_error(err, folder, "write to").one_line()
    return path
