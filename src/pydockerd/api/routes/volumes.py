"""/volumes routes: list, create, inspect, remove, prune (local driver and plugins)."""
from __future__ import annotations


from ...errors import NotImplementedErr
from ...models import VolumeCreateOptions
from ...volumes import VolumeService
from ..decode import decode_body
from ..http import AnyResponse, Request, empty, json_response
from ..router import Route
from ..wire_volumes import prune_report, volume, volume_list


def routes(volumes: VolumeService) -> list[Route]:
    async def list_volumes(req: Request) -> AnyResponse:
        vols, warnings = await volumes.list(req.filters())
        return json_response(volume_list(vols, warnings))

    async def create_volume(req: Request) -> AnyResponse:
        body = decode_body(await req.body.read(), VolumeCreateOptions)
        if body.ClusterVolumeSpec:
            raise NotImplementedErr("cluster volumes are not supported by pydockerd (no swarm)")
        vol, _ = await volumes.create(body.Name or None, body.Driver or "",
                                      body.DriverOpts, body.Labels)
        return json_response(volume(vol), 201)

    async def inspect_volume(req: Request) -> AnyResponse:
        return json_response(volume(await volumes.inspect(req.params["name"])))

    async def update_volume(req: Request) -> AnyResponse:
        volumes.get(req.params["name"])
        raise NotImplementedErr("volume update applies to cluster volumes only, and "
                                "pydockerd does not support swarm")

    async def remove_volume(req: Request) -> AnyResponse:
        await volumes.remove(req.params["name"], req.q_bool("force"))
        return empty(204)

    async def prune_volumes(req: Request) -> AnyResponse:
        deleted, reclaimed = await volumes.prune(
            req.filters(), all_default=not req.version_at_least(1, 42))
        return json_response(prune_report(deleted, reclaimed))

    return [
        Route("GET", "/volumes", list_volumes),
        Route("POST", "/volumes/create", create_volume),
        Route("POST", "/volumes/prune", prune_volumes),
        Route("GET", "/volumes/{name}", inspect_volume),
        Route("PUT", "/volumes/{name}", update_volume),
        Route("DELETE", "/volumes/{name}", remove_volume),
    ]
