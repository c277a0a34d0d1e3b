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

from qwenctl.errors import ExitCode, QwenctlError, from_os_error


def write_text(path: str | os.PathLike[str], text: str) -> None:
    path = Path(path)
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as e:  # no such folder, no permission there: name the file asked for, not the temp file's name
        e.filename = str(path)
        raise
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


# A profile, snapshot or saved chat is a few kB to a few MB; a path to something far larger is a mistake.
MAX_TEXT_BYTES = 64 * 1024 * 1024


def read_text(path: str | os.PathLike[str], what: str = "file") -> str:
    """A small text file qwenctl reads (profile, snapshot, saved chat): its bytes decoded as UTF-8, a
    byte-order mark dropped. A folder, a binary file, text in another encoding or a huge file is one
    QwenctlError naming `what` and the path."""
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_TEXT_BYTES + 1)
    except FileNotFoundError:
        raise QwenctlError(f"no such {what}: {path}", code=ExitCode.NOT_FOUND) from None
    except IsADirectoryError:
        raise QwenctlError(f"{what} {path} is a folder, not a file", code=ExitCode.BAD_INPUT) from None
    except OSError as e:
        raise from_os_error(e, path, f"read the {what}") from None
    if len(data) > MAX_TEXT_BYTES:
        raise QwenctlError(f"{what} {path} is larger than {MAX_TEXT_BYTES // 2**20} MiB; is it the right file?",
                           code=ExitCode.BAD_INPUT)
    if b"\0" in data:
        raise QwenctlError(f"{what} {path} is a binary file, not text", hint="is it the right file?", code=ExitCode.BAD_INPUT)
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise QwenctlError(f"{what} {path} is not UTF-8 text (byte 0x{data[e.start]:02x} at offset {e.start})",
                           hint="save it as UTF-8", code=ExitCode.BAD_INPUT) from None


def read_json(path: str | os.PathLike[str], what: str = "file") -> Any:
    """The parsed document, or QwenctlError (NOT_FOUND / BAD_INPUT) naming `what` and the path."""
    import json

    text = read_text(path, what)
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise QwenctlError(f"{what} {path} is not valid JSON (line {e.lineno}: {e.msg} at column {e.colno})",
                           hint="is it truncated?", code=ExitCode.BAD_INPUT) from None


def append_line(path: str | os.PathLike[str], line: str, durable: bool = True) -> None:
    """Append one line of a JSON-lines log with a single O_APPEND write, so concurrent writers never
    interleave within a line; a torn last line (a crash mid-write) stays alone, not glued to this one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        size = os.fstat(fd).st_size
        if size and os.pread(fd, 1, size - 1) != b"\n":
            line = "\n" + line
        os.write(fd, (line if line.endswith("\n") else line + "\n").encode("utf-8"))
        if durable:
            os.fsync(fd)
    finally:
        os.close(fd)
