"""Blob uploads to a registry (distribution spec, "Pushing blobs"): does the repository
have the blob (HEAD), start an upload session (POST), finish it with the digest (PUT).
docker push (push.py) and docker plugin push (plugins/managed/transfer.py) share them."""
from __future__ import annotations

from urllib.parse import urlencode, urljoin

from ..errors import SystemError_
from .client import RegistrySession, registry_error


async def blob_exists(sess: RegistrySession, repo: str, digest: str) -> bool:
    resp = await sess.request("HEAD", f"/v2/{repo}/blobs/{digest}")
    async with resp:
        if resp.status == 200:
            return True
        if resp.status == 404:
            return False
        raise await registry_error(resp)


def absolute(sess: RegistrySession, location: str) -> str:
    """A Location header (often relative) as an absolute URL."""
    return urljoin(sess.endpoint.base + "/", location)


async def start_upload(sess: RegistrySession, repo: str) -> tuple[str, int]:
    """An upload session: its absolute URL and the registry's OCI-Chunk-Min-Length."""
    resp = await sess.request("POST", f"/v2/{repo}/blobs/uploads/", data=b"")
    async with resp:
        if resp.status != 202:
            raise await registry_error(resp)
        loc = resp.headers.get("Location")
        if not loc:
            raise SystemError_("registry started an upload without a Location")
        chunk_min = int(resp.headers.get("OCI-Chunk-Min-Length", "0") or 0)
        return absolute(sess, loc), chunk_min


async def finish_upload(sess: RegistrySession, loc: str, digest: str,
                        data: bytes = b"") -> None:
    """PUT the last bytes (or none) of the upload at loc, naming the blob's digest."""
    sep = "&" if "?" in loc else "?"
    resp = await sess.request("PUT", f"{loc}{sep}{urlencode({'digest': digest})}",
                              data=data, headers={"Content-Type": "application/octet-stream"})
    async with resp:
        if resp.status not in (201, 204):
            raise await registry_error(resp)


async def upload_bytes(sess: RegistrySession, repo: str, digest: str, data: bytes) -> None:
    """A small blob in one monolithic upload."""
    loc, _ = await start_upload(sess, repo)
    await finish_upload(sess, loc, digest, data)
