"""The one error type users see.

Anything a user can cause (a bad flag value, no space, no network, a corrupt file,
a gated repo) is raised as ``QwenctlError`` somewhere below the CLI; ``cli`` prints it
as one line on stderr, followed by the fix when there is one, and exits with the
error's code. An ``OSError`` on a file qwenctl reads or writes becomes one through
``from_os_error`` (the path, what went wrong, the fix). Every other exception is a bug: it
propagates to the CLI's last guard (qwenctl/guard.py), which logs its traceback and exits 70.
"""

from __future__ import annotations

import enum
import errno
import os


class ExitCode(enum.IntEnum):
    """Distinct exit codes so scripts can tell failures apart (2 is click's usage error)."""

    OK = 0
    ERROR = 1
    USAGE = 2
    BAD_INPUT = 3  # a malformed file, snapshot, profile or model
    NOT_FOUND = 4  # no such profile, model, repo or file
    NO_FIT = 5  # nothing fits this machine or the requested constraints
    NETWORK = 6  # the hub could not be reached, or answered with an error
    AUTH = 7  # a token is needed or was refused
    DISK = 8  # not enough free disk
    INTEGRITY = 9  # a download did not match its recorded checksum
    BACKEND = 10  # the inference engine failed to load or run the model
    FILE_ACCESS = 11  # a file or folder could not be read or written (permissions, read-only, I/O error)
    ABANDONED = 12  # serve stopped with requests still running when its drain ended
    INTERNAL = 70  # a bug: qwenctl hit an unexpected error (sysexits.h EX_SOFTWARE); traceback in a log file
    INTERRUPTED = 130


class QwenctlError(Exception):
    """An expected failure: a message for the user, the fix if known, and an exit code."""

    def __init__(self, message: str, *, hint: str | None = None, code: ExitCode = ExitCode.ERROR):
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.code = code

    def one_line(self) -> str:
        return f"{self.message} ({self.hint})" if self.hint else self.message


# errno -> (exit code, what it means for a path, the default fix). Names missing on a platform are skipped.
_OS_ERRORS = {
    "ENOSPC": (ExitCode.DISK, "no space left on the device", "free some space"),
    "EDQUOT": (ExitCode.DISK, "the disk quota is used up", "free some space or ask for a larger quota"),
    "EFBIG": (ExitCode.DISK, "the file is larger than this filesystem or the file-size limit allows",
              "raise `ulimit -f`, or use a filesystem that holds large files"),
    "EROFS": (ExitCode.FILE_ACCESS, "the filesystem is read-only", "remount it read-write"),
    "EACCES": (ExitCode.FILE_ACCESS, "permission denied", "check its owner and permissions"),
    "EPERM": (ExitCode.FILE_ACCESS, "operation not permitted", "check its owner and permissions"),
    "EIO": (ExitCode.FILE_ACCESS, "an I/O error (the disk or the network filesystem failed)", "check the disk (`dmesg`) and try again"),
    "EMFILE": (ExitCode.FILE_ACCESS, "too many open files in this process", "raise the limit (`ulimit -n`) and try again"),
    "ENFILE": (ExitCode.FILE_ACCESS, "too many open files on the system", "close other programs and try again"),
    "ECONNRESET": (ExitCode.NETWORK, "the connection was reset", "check the connection and try again"),
    "ECONNREFUSED": (ExitCode.NETWORK, "the connection was refused", "check the address and try again"),
    "ETIMEDOUT": (ExitCode.NETWORK, "the connection timed out", "check the connection and try again"),
    "ENOENT": (ExitCode.NOT_FOUND, "no such file or folder", None),
    "EISDIR": (ExitCode.BAD_INPUT, "it is a folder, not a file", "give a file"),
    "ENOTDIR": (ExitCode.BAD_INPUT, "a part of the path is not a folder", None),
}


def from_os_error(e: OSError, path: str | os.PathLike[str] | None = None, doing: str = "use",
                  fix: str | None = None) -> QwenctlError:
    """The one-line error for an OSError on a file: "cannot DOING PATH: WHAT (FIX)", with the errno's exit code.

    `path` is used when the error names none (a write to an open file); `fix`, when given, is added to
    the fix for the space and permission errors as the other way out ("point HF_HUB_CACHE at another disk").
    """
    name = errno.errorcode.get(e.errno or 0, "")
    code, what, default_fix = _OS_ERRORS.get(name, (ExitCode.FILE_ACCESS, e.strerror or str(e) or type(e).__name__, None))
    where = e.filename if e.filename is not None else path
    target = f" {os.fsdecode(where)}" if where is not None else ""
    if name in ("ENOSPC", "EDQUOT", "EROFS", "EACCES", "EPERM") and fix:
        default_fix = f"{default_fix}, or {fix}"
    return QwenctlError(f"cannot {doing}{target}: {what}", hint=default_fix, code=code)
