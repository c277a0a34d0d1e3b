"""The one error type users see.

Anything a user can cause (a bad flag value, no space, no network, a corrupt file,
a gated repo) is raised as ``QwenctlError`` somewhere below the CLI; ``cli`` prints it
as one line on stderr, followed by the fix when there is one, and exits with the
error's code. Every other exception is a bug and is allowed to propagate.
"""

from __future__ import annotations

import enum


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
