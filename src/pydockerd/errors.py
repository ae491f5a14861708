"""The error classes every service raises; api/server.py maps them to HTTP status, once."""
from __future__ import annotations


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
