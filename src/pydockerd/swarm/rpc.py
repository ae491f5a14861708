"""gRPC to SwarmKit managers (grpc.aio, over tlsdial.py's TLS): channels with the swarm's TLS names
(`swarm-ca` for the CA, `swarm-manager` for the dispatcher) and the calls of
the worker protocol, typed by our own generated messages. Imported only when
the node joins or is in a swarm: grpc costs about 25 MiB once loaded."""
from __future__ import annotations

import asyncio
from typing import Any, AsyncIterator, Protocol

import grpc
import grpc.aio

from ..errors import DockerError, InvalidParameter, Unavailable
from .proto import swarmkit_pb2 as pb
from .tlsdial import TlsForwarder, client_context

PKG = "docker.swarmkit.v1"


class ManagerChannel:
    """A gRPC channel to a manager through a TlsForwarder (tlsdial.py: why)."""

    def __init__(self, addr: str, root_ca: bytes, server_name: str, key: bytes | None,
                 cert: bytes | None) -> None:
        host, _, port = addr.rpartition(":")
        self.forwarder = TlsForwarder(host.strip("[]"), int(port), server_name,
                                      client_context(root_ca, key, cert), root_ca)
        self.grpc = grpc.aio.insecure_channel(self.forwarder.target, options=[
            ("grpc.default_authority", server_name)])
        self.unary_unary = self.grpc.unary_unary
        self.unary_stream = self.grpc.unary_stream
        self.stream_unary = self.grpc.stream_unary

    async def close(self) -> None:
        await self.grpc.close()
        await self.forwarder.close()


def channel(addr: str, root_ca: bytes, server_name: str, key: bytes | None = None,
            cert: bytes | None = None) -> ManagerChannel:
    """A channel trusting only the swarm's root CA, with our certificate if given."""
    return ManagerChannel(addr, root_ca, server_name, key, cert)


def _unary(ch: ManagerChannel, service: str, method: str, resp: Any) -> Any:
    return ch.unary_unary(f"/{PKG}.{service}/{method}",
                          request_serializer=lambda m: m.SerializeToString(),
                          response_deserializer=resp.FromString)


def _go_code(code: grpc.StatusCode) -> str:
    """grpc-go's spelling of a status code, as dockerd's messages show it."""
    return "".join(p.capitalize() for p in code.name.split("_"))


def as_docker_error(e: grpc.aio.AioRpcError) -> DockerError:
    """dockerd's `rpc error: code = ... desc = ...`, a 400 for a refused argument
    (a wrong token), else 503."""
    text = f"rpc error: code = {_go_code(e.code())} desc = {e.details() or ''}"
    if e.code() == grpc.StatusCode.INVALID_ARGUMENT:
        return InvalidParameter(text)
    return Unavailable(text)


class NodeCA:
    def __init__(self, ch: ManagerChannel) -> None:
        self._issue = _unary(ch, "NodeCA", "IssueNodeCertificate",
                             pb.IssueNodeCertificateResponse)
        self._status = _unary(ch, "NodeCA", "NodeCertificateStatus",
                              pb.NodeCertificateStatusResponse)

    async def issue(self, req: pb.IssueNodeCertificateRequest,
                    timeout: float) -> pb.IssueNodeCertificateResponse:
        r: pb.IssueNodeCertificateResponse = await self._issue(req, timeout=timeout)
        return r

    async def status(self, node_id: str, timeout: float) -> pb.NodeCertificateStatusResponse:
        r: pb.NodeCertificateStatusResponse = await self._status(
            pb.NodeCertificateStatusRequest(node_id=node_id), timeout=timeout)
        return r

    async def issue_and_wait(self, req: pb.IssueNodeCertificateRequest,
                             timeout: float = 20) -> tuple[str, bytes]:
        """Have `req.csr` signed (a join with its token, or a renewal over mutual
        TLS without one) and wait until the CA issued it: the node ID and the
        certificate chain. Only a certificate for our CSR is taken."""
        issued = await self.issue(req, timeout=timeout)
        while True:
            status = await self.status(issued.node_id, timeout=timeout)
            state = status.status.state
            if state in (pb.IssuanceStatus.ISSUED, pb.IssuanceStatus.ROTATE) \
                    and status.certificate.csr == req.csr:
                return issued.node_id, bytes(status.certificate.certificate)
            if state == pb.IssuanceStatus.FAILED:
                raise Unavailable(f"the swarm CA did not issue a certificate: "
                                  f"{status.status.err}")
            await asyncio.sleep(0.2)


class AssignmentsStream(Protocol):
    """The Assignments call: its messages, and cancel() to leave it."""
    def __aiter__(self) -> AsyncIterator[pb.AssignmentsMessage]: ...
    def cancel(self) -> bool: ...


class Dispatcher:
    def __init__(self, ch: ManagerChannel) -> None:
        self._session = ch.unary_stream(f"/{PKG}.Dispatcher/Session",
                                        request_serializer=lambda m: m.SerializeToString(),
                                        response_deserializer=pb.SessionMessage.FromString)
        self._heartbeat = _unary(ch, "Dispatcher", "Heartbeat", pb.HeartbeatResponse)
        self._update = _unary(ch, "Dispatcher", "UpdateTaskStatus",
                              pb.UpdateTaskStatusResponse)
        self._assignments = ch.unary_stream(
            f"/{PKG}.Dispatcher/Assignments",
            request_serializer=lambda m: m.SerializeToString(),
            response_deserializer=pb.AssignmentsMessage.FromString)

    def session(self, req: pb.SessionRequest) -> AsyncIterator[pb.SessionMessage]:
        stream: AsyncIterator[pb.SessionMessage] = self._session(req)
        return stream

    async def heartbeat(self, session_id: str, timeout: float) -> float:
        """The period to wait before the next heartbeat, in seconds."""
        r: pb.HeartbeatResponse = await self._heartbeat(
            pb.HeartbeatRequest(session_id=session_id), timeout=timeout)
        return float(r.period.ToTimedelta().total_seconds())

    def assignments(self, session_id: str) -> AssignmentsStream:
        stream: AssignmentsStream = self._assignments(
            pb.AssignmentsRequest(session_id=session_id))
        return stream

    async def update_task_status(self, session_id: str,
                                 statuses: dict[str, pb.TaskStatus], timeout: float) -> None:
        await self._update(pb.UpdateTaskStatusRequest(session_id=session_id, updates=[
            pb.UpdateTaskStatusRequest.TaskStatusUpdate(task_id=tid, status=st)
            for tid, st in statuses.items()]), timeout=timeout)


class LogBroker:
    def __init__(self, ch: ManagerChannel) -> None:
        self._listen = ch.unary_stream(
            f"/{PKG}.LogBroker/ListenSubscriptions",
            request_serializer=lambda m: m.SerializeToString(),
            response_deserializer=pb.SubscriptionMessage.FromString)
        self._publish = ch.stream_unary(
            f"/{PKG}.LogBroker/PublishLogs",
            request_serializer=lambda m: m.SerializeToString(),
            response_deserializer=pb.PublishLogsResponse.FromString)

    def subscriptions(self) -> AsyncIterator[pb.SubscriptionMessage]:
        stream: AsyncIterator[pb.SubscriptionMessage] = self._listen(
            pb.ListenSubscriptionsRequest())
        return stream

    def publish(self) -> Any:
        """A PublishLogs call: `await call.write(msg)`, `await call.done_writing()`,
        then `await call` for the answer."""
        return self._publish()
