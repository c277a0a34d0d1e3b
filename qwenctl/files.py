"""The small files qwenctl itself reads and writes (saved chats, snapshots, records, refs).

Writes are atomic — a temp file in the same directory, fsync, os.replace, then fsync of the
directory — so a crash or a full disk leaves the old file (or none), never a half-written one
taken for complete. Reads of JSON documents fail with one line that says what is wrong.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

from qwenctl.errors import ExitCode, QwenctlError


def write_text(path: str | os.PathLike[str], text: str) -> None:
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as e:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(e, OSError) and e.errno is not None and e.filename is None:
            e.filename = str(path)  # a write to the open temp file names no path: name the file being written
        raise
    try:  # make the rename itself durable; not possible on every platform
        dir_fd = os.open(path.parent, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(dir_fd)
    except OSError:
        pass
    finally:
        os.close(dir_fd)


def read_json(path: str | os.PathLike[str], what: str = "file") -> Any:
    """The parsed document, or QwenctlError (NOT_FOUND / BAD_INPUT) naming `what` and the path."""
    import json

    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise QwenctlError(f"no such {what}: {path}", code=ExitCode.NOT_FOUND) from None
    except (OSError, UnicodeDecodeError) as e:
        raise QwenctlError(f"could not read {what} {path}: {getattr(e, 'strerror', None) or e}",
                           code=ExitCode.BAD_INPUT) from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise QwenctlError(f"{what} {path} is not valid JSON (line {e.lineno}: {e.msg} at column {e.colno})",
                           hint="is it truncated?", code=ExitCode.BAD_INPUT) from None
