"""The error classes every service raises; api/server.py maps them to HTTP status, once.

`no_space()` is the one place where a full disk (ENOSPC, EDQUOT, SQLite's
SQLITE_FULL) becomes a typed error, whichever layer it surfaced in.
"""
from __future__ import annotations

import errno
import sqlite3


class DockerError(Exception):
    """Base class: an error with an HTTP status and a message for the client."""

    status: int = 500

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidParameter(DockerError):
    status = 400


class Unauthorized(DockerError):
    status = 401


class Forbidden(DockerError):
    status = 403


class NotFound(DockerError):
    status = 404


class Conflict(DockerError):
    status = 409


class NotModified(DockerError):
    status = 304


class SystemError_(DockerError):
    """An internal failure with a message worth showing (runc failed, disk full...)."""

    status = 500


class NoSpace(SystemError_):
    """The data root's filesystem is full: the fault is the server's (a 5xx), and the
    message names "no space left on device" as dockerd's do."""

    def __init__(self, what: str = "") -> None:
        super().__init__(f"{what}: no space left on device" if what else
                         "no space left on device")


_NO_SPACE_ERRNOS = (errno.ENOSPC, errno.EDQUOT)
_SQLITE_FULL = 13          # primary result code; extended codes keep it in the low byte


def no_space(exc: BaseException) -> NoSpace | None:
    """The typed error for a full-disk failure, or None when `exc` is something else."""
    if isinstance(exc, NoSpace):
        return exc
    if isinstance(exc, OSError) and exc.errno in _NO_SPACE_ERRNOS:
        return NoSpace(str(exc.filename) if exc.filename else "")
    if isinstance(exc, sqlite3.OperationalError) and \
            (getattr(exc, "sqlite_errorcode", 0) or 0) & 0xFF == _SQLITE_FULL:
        return NoSpace("write metadata")
    return None


class NotImplementedErr(DockerError):
    """A feature pydockerd deliberately does not support (yet): a clear 501."""

    status = 501


class Unavailable(DockerError):
    status = 503


class CommandFailed(SystemError_):
    """An external tool (runc, conmon, iptables, ip) exited non-zero."""

    def __init__(self, argv: list[str], returncode: int, stderr: str) -> None:
        tool = argv[0].rsplit("/", 1)[-1] if argv else "command"
        detail = stderr.strip() or f"exit status {returncode}"
        super().__init__(f"{tool}: {detail}")
        self.argv = argv
        self.returncode = returncode
        self.stderr = stderr
