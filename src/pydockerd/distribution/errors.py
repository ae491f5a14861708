"""Registry failures turned into pydockerd errors with dockerd's messages."""
from __future__ import annotations

from ..errors import DockerError, NotFound, SystemError_
from ..images.references import Reference
from .client import RegistryError, TransportError


def pull_error(e: BaseException, ref: Reference) -> DockerError:
    """moby's translatePullError / notFoundError."""
    if isinstance(e, DockerError):
        return e
    if isinstance(e, RegistryError):
        if e.code == "MANIFEST_UNKNOWN" or (e.status == 404 and e.code == "NOT_FOUND"):
            return NotFound(f"manifest for {ref.familiar()} not found: {e}")
        if e.code == "NAME_UNKNOWN":
            return NotFound(f"repository {ref.familiar_name()} not found: {e}")
        if e.code == "DENIED":
            return NotFound(f"pull access denied for {ref.familiar_name()}, repository does "
                            f"not exist or may require 'docker login': {e}")
        return SystemError_(str(e))
    if isinstance(e, TransportError):
        return SystemError_(str(e))
    return SystemError_(str(e) or type(e).__name__)


def push_error(e: BaseException) -> DockerError:
    if isinstance(e, DockerError):
        return e
    return SystemError_(str(e) or type(e).__name__)
