"""The one place where an exception becomes an HTTP status and a message."""
from __future__ import annotations

import json
import logging
import os

from ..errors import DockerError, no_space
from .http import Response

log = logging.getLogger("pydockerd.api")


def error_status(e: BaseException, what: str) -> tuple[int, str]:
    """The one place where an exception becomes a status and a message.

    A DockerError carries its status and a message meant for the client; anything
    else is a bug: logged with its traceback under a short request id, and the
    client gets only that id. A full disk is a NoSpace wherever it surfaced.
    """
    e = no_space(e) or e
    if isinstance(e, DockerError):
        if e.status >= 500:
            log.error("%s: %s", what, e.message)
        else:
            log.debug("%s -> %d: %s", what, e.status, e.message)
        status, message = e.status, e.message
    else:
        rid = os.urandom(4).hex()
        log.error("%s failed (request %s)", what, rid, exc_info=e)
        status, message = 500, f"internal server error (request {rid})"
    return status, message


def error_response(e: BaseException, what: str) -> Response:
    status, message = error_status(e, what)
    return Response(status, (json.dumps({"message": message}) + "\n").encode())
