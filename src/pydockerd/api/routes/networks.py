"""/networks routes: list, inspect, create, remove, prune, connect and disconnect."""
from __future__ import annotations

from ...containers.service import ContainerService
from ...errors import InvalidParameter, NotFound
from ...models import NetworkConnect, NetworkCreateRequest, NetworkDisconnect
from ...network import NetworkService
from ..decode import decode_body
from ..http import AnyResponse, Request, empty, json_response
from ..router import Route
from ..wire_networks import created, network, prune_report


def routes(networks: NetworkService, containers: ContainerService) -> list[Route]:
    async def list_networks(req: Request) -> AnyResponse:
        nets = networks.list(req.filters())
        return json_response([network(n) for n in nets])

    async def inspect_network(req: Request) -> AnyResponse:
        scope = req.q("scope")
        net = networks.get(req.params["id"])
        if scope and scope != net.scope:
            raise NotFound(f"network {req.params['id']} not found")
        return json_response(network(net, networks.members(net.id)))

    async def create_network(req: Request) -> AnyResponse:
        body = decode_body(await req.body.read(), NetworkCreateRequest)
        net = await networks.create_network(body)
        return json_response(created(net), 201)

    async def delete_network(req: Request) -> AnyResponse:
        await networks.remove_network(req.params["id"])
        return empty(204)

    async def connect_network(req: Request) -> AnyResponse:
        body = decode_body(await req.body.read(), NetworkConnect)
        if not body.Container:
            raise InvalidParameter("container is required")
        await containers.connect_network(req.params["id"], body)
        return empty(200)

    async def disconnect_network(req: Request) -> AnyResponse:
        body = decode_body(await req.body.read(), NetworkDisconnect)
        if not body.Container:
            raise InvalidParameter("container is required")
        await containers.disconnect_network(req.params["id"], body)
        return empty(200)

    async def prune_networks(req: Request) -> AnyResponse:
        return json_response(prune_report(await networks.prune(req.filters())))

    return [
        Route("GET", "/networks", list_networks),
        Route("POST", "/networks/create", create_network),
        Route("POST", "/networks/prune", prune_networks),
        Route("GET", "/networks/{id}", inspect_network),
        Route("DELETE", "/networks/{id}", delete_network),
        Route("POST", "/networks/{id}/connect", connect_network),
        Route("POST", "/networks/{id}/disconnect", disconnect_network),
    ]
