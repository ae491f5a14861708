"""Image routes: list, inspect, history, tag, remove, load, save, prune, commit.

Pull and import (POST /images/create), push and build belong to other modules
(distribution, build); import is ImageService.import_image, called from there.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from ...images.service import ImageService
from ...models import ContainerConfig
from ..decode import decode_body
from ..http import AnyResponse, Request, StreamResponse, empty, json_response
from ..router import Route
from ..wire_images import (delete_records, history_to_wire, image_summary, image_to_wire,
                          prune_report)
from ..wire_progress import lines

if TYPE_CHECKING:
    from ...images.create import CommitContainers


def routes(images: ImageService, containers: CommitContainers) -> list[Route]:

    async def list_images(req: Request) -> AnyResponse:
        filters = req.filters()
        if req.q("filter"):                      # API < 1.41: ?filter=<reference>
            filters.setdefault("reference", []).append(req.q("filter") or "")
        imgs = images.list_images(all=req.q_bool("all"), filters=filters,
                                  digests=req.q_bool("digests"))
        if req.q_bool("shared-size"):
            usage = {u.image.id: u for u in images.usage().images}
            out = [image_summary(i, req.api_version,
                                 usage[i.id].shared_size if i.id in usage else -1,
                                 usage[i.id].containers if i.id in usage else -1)
                   for i in imgs]
        else:
            out = [image_summary(i, req.api_version) for i in imgs]
        return json_response(out)

    async def inspect(req: Request) -> AnyResponse:
        img = images.resolve(req.params["name"])
        return json_response(image_to_wire(img, images.image_graph_driver(img),
                                           req.api_version))

    async def history(req: Request) -> AnyResponse:
        return json_response(history_to_wire(images.history(req.params["name"])))

    async def tag(req: Request) -> AnyResponse:
        repo = req.q("repo") or ""
        images.tag(req.params["name"], repo, req.q("tag") or None)
        return empty(201)

    async def remove(req: Request) -> AnyResponse:
        return json_response(delete_records(await images.remove_async(
            req.params["name"], force=req.q_bool("force"), noprune=req.q_bool("noprune"))))

    async def load(req: Request) -> AnyResponse:
        quiet = req.q_bool("quiet", default=True)
        return StreamResponse(lines(images.load(req.body.chunks(), quiet)),
                              content_type="application/json")

    async def save(req: Request) -> AnyResponse:
        names = req.q_list("names") if "name" not in req.params else [req.params["name"]]
        return StreamResponse(images.save(names), content_type="application/x-tar")

    async def prune(req: Request) -> AnyResponse:
        deleted, reclaimed = await images.prune(req.filters())
        return json_response(prune_report(deleted, reclaimed))

    async def commit(req: Request) -> AnyResponse:
        from ...images.changes import split_changes     # a commit's only (idle memory)
        body = decode_body(await req.body.read(), ContainerConfig)
        img = await images.commit(
            containers, req.q("container") or "", repo=req.q("repo") or "",
            tag=req.q("tag") or "", comment=req.q("comment") or "",
            author=req.q("author") or "", pause=req.q_bool("pause", default=True),
            changes=split_changes(req.q_list("changes")), config=body)
        return json_response({"Id": img.id}, 201)

    return [
        Route("GET", "/images/json", list_images),
        Route("GET", "/images/get", save),
        Route("GET", "/images/{name:path}/get", save),
        Route("POST", "/images/prune", prune),
        Route("POST", "/commit", commit),
        Route("POST", "/images/load", load),
        Route("GET", "/images/{name:path}/json", inspect),
        Route("GET", "/images/{name:path}/history", history),
        Route("POST", "/images/{name:path}/tag", tag),
        Route("DELETE", "/images/{name:path}", remove),
    ]
