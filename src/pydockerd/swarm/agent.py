"""The worker agent: joins a swarm (root CA checked against the token, node
certificate issued for our CSR) and keeps a session with a manager
(Dispatcher.Session + Heartbeat over mutual TLS), following the manager list
each session sends. Loaded only when the node joins or is in a swarm."""
from __future__ import annotations

import asyncio
import logging
import random
import socket
from dataclasses import dataclass, field, replace
from typing import AsyncIterator, Callable

import grpc
import grpc.aio

from ..errors import InvalidParameter, Unavailable
from .addrs import split_addr
from .bootstrap import BootstrapError, get_root_ca
from .description import describe
from .certs import CertificateError, check_pair, new_csr, new_key, trust_bundle, validity
from .identity import Identity
from .jointoken import ca_matches, parse_token
from .proto import swarmkit_pb2 as pb
from .renewal import Renewer
from .rpc import Dispatcher, LogBroker, ManagerChannel, NodeCA, as_docker_error, channel
from .state import RemoteManager
from .worker import Worker

log = logging.getLogger("pydockerd.swarm")

AVAILABILITY = {"active": pb.NodeSpec.ACTIVE, "pause": pb.NodeSpec.PAUSE,
                "drain": pb.NodeSpec.DRAIN}
FIRST_MESSAGE_TIMEOUT = 5.0     # SwarmKit's agent gives up on a session after 5 s
RETRY_MAX = 8.0
PROMOTED = ("This node was promoted to a swarm manager, but pydockerd can only be a "
            "worker: it keeps working as a worker. The managers refuse to demote a node "
            "that never joined their raft; to clear this, leave the swarm, remove the "
            "node on a manager (docker node rm {}) and join again")


def local_addr_towards(host: str, port: int) -> str:
    """The local address this host uses to reach host:port (dockerd's NodeAddr)."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET,
                       socket.SOCK_DGRAM) as s:
        s.connect((host, port))
        return str(s.getsockname()[0])


@dataclass
class JoinRequest:
    remote: str
    token: str
    availability: str = "active"
    advertise_addr: str = ""
    listen_addr: str = ""
    data_path_addr: str = ""


async def fetch_trusted_root(host: str, port: int, token: str) -> bytes:
    """The manager's root CA, retried while it does not answer; refused when it
    does not hash to the token's digest."""
    parsed = parse_token(token)
    delay = 0.5
    while True:
        try:
            root = await get_root_ca(host, port)
            break
        except BootstrapError as e:
            cause = e.__cause__
            if isinstance(cause, (OSError, ValueError)) \
                    and not isinstance(cause, TimeoutError):
                # refused, unreachable, unresolvable: dockerd fails at once
                reason = ("connection refused" if isinstance(cause, ConnectionRefusedError)
                          else cause.strerror if isinstance(cause, OSError) and cause.strerror
                          else str(cause))
                raise Unavailable(f"rpc error: code = Unavailable desc = connection error: "
                                  f"desc = \"transport: Error while dialing dial tcp "
                                  f"{host}:{port}: connect: {reason}\"") from e
            log.info("swarm join: %s; retrying", e)
            await asyncio.sleep(delay)
            delay = min(delay * 2, RETRY_MAX)
    if not ca_matches(parsed, root):
        raise InvalidParameter(f"remote CA does not match fingerprint. Expected: "
                               f"{parsed.digest}")
    return root


async def request_identity(req: JoinRequest) -> Identity:
    """Join: check the root CA, have our CSR signed with the token, wait for it."""
    host, port = split_addr(req.remote)
    root = await fetch_trusted_root(host, port, req.token)
    key = new_key()
    ch = channel(f"{host}:{port}", root, "swarm-ca")
    try:
        node_id, cert = await NodeCA(ch).issue_and_wait(pb.IssueNodeCertificateRequest(
            csr=new_csr(key), token=req.token,
            availability=AVAILABILITY[req.availability]))
    except grpc.aio.AioRpcError as e:
        raise as_docker_error(e) from e
    finally:
        await ch.close()
    addr = req.advertise_addr.rpartition(":")[0] if ":" in req.advertise_addr \
        else req.advertise_addr
    return Identity(node_id, key, cert, root, [f"{host}:{port}"], req.availability,
                    addr or local_addr_towards(host, port), req.listen_addr,
                    req.data_path_addr)


@dataclass
class Session:
    """What the current session told us."""
    session_id: str = ""
    managers: list[RemoteManager] = field(default_factory=list)
    error: str = ""


class Agent:
    """Keeps one session with a manager at a time, for as long as it runs."""

    def __init__(self, ident: Identity, labels: list[str],
                 on_change: Callable[[Identity], None], worker: Worker | None = None) -> None:
        self.ident = ident
        self.worker = worker
        self.labels = labels
        self.on_change = on_change
        self.session = Session()
        self.ready = asyncio.get_running_loop().create_future()
        self.error = ""         # why the agent stopped for good (the node was removed)
        self.warning = ""       # what the node cannot do but keeps working (a promotion)
        self.addr = ""          # the manager of the current session
        self.renewer = Renewer(lambda: validity(self.ident.cert), self.renew_certificate)
        self._new_session = asyncio.Event()
        self._channel: ManagerChannel | None = None     # the current session's

    def _managers(self) -> list[str]:
        return list(self.ident.managers)

    async def run(self) -> None:
        """Sessions until cancelled; a failed one is retried with backoff on the
        next manager of the list. A node the managers refuse (removed with `docker
        node rm --force`: PermissionDenied) stops with `error` set, until it leaves."""
        renewals = asyncio.get_running_loop().create_task(self.renewer.run())
        try:
            await self._sessions()
        finally:
            renewals.cancel()
            await asyncio.gather(renewals, return_exceptions=True)

    async def _sessions(self) -> None:
        delay = 0.5
        attempt = 0
        while True:
            addrs = self._managers()
            addr = addrs[attempt % len(addrs)]
            attempt += 1
            try:
                self.addr = addr
                if await self._session(addr):
                    attempt -= 1            # the same manager, with new credentials
                    await asyncio.sleep(0.1)
                    continue
                delay = 0.5
            except grpc.aio.AioRpcError as e:
                self.session = Session(managers=self.session.managers,
                                       error=f"{e.code().name}: {e.details()}")
                log.warning("swarm session with %s: %s", addr, self.session.error)
                if e.code() == grpc.StatusCode.PERMISSION_DENIED:
                    self.error = as_docker_error(e).message
                    self._fail(self.error)
                    return
            except (asyncio.TimeoutError, StopAsyncIteration) as e:
                log.warning("swarm session with %s: %r", addr, e)
            await asyncio.sleep(delay * random.uniform(0.8, 1.2))
            delay = min(delay * 2, RETRY_MAX)

    def _fail(self, message: str) -> None:
        if not self.ready.done():
            self.ready.set_exception(Unavailable(message))

    async def _session(self, addr: str) -> bool:
        """One session: ends (raising) when its stream or its heartbeats fail, or
        (True) when the identity changed (a new certificate or root: the channel's
        credentials and the description's TLS info must follow)."""
        self._new_session.clear()
        ch = self._channel_to(addr, "swarm-manager")
        loop = asyncio.get_running_loop()
        tasks: list[asyncio.Task[object]] = []
        renew = loop.create_task(self._new_session.wait())
        try:
            dispatcher = Dispatcher(ch)
            stream = dispatcher.session(pb.SessionRequest(
                description=describe(self.ident, self.labels)))
            it = stream.__aiter__()
            first = await asyncio.wait_for(it.__anext__(), FIRST_MESSAGE_TIMEOUT)
            self._channel = ch
            self._apply(first)
            if not self.ready.done():
                self.ready.set_result(None)
            tasks = [loop.create_task(self._heartbeats(dispatcher, first.session_id)),
                     loop.create_task(self._messages(it))]
            if self.worker is not None:
                tasks += [loop.create_task(self.worker.assignments(dispatcher,
                                                                   first.session_id)),
                          loop.create_task(self.worker.reporter(dispatcher,
                                                                first.session_id)),
                          loop.create_task(self.worker.logs(LogBroker(ch)))]
            done, _ = await asyncio.wait([*tasks, renew], return_when=asyncio.FIRST_COMPLETED)
            for t in done:
                t.result()
            return renew in done
        finally:
            self._channel = None
            renew.cancel()
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await ch.close()

    def _channel_to(self, addr: str, server_name: str) -> ManagerChannel:
        ident = self.ident
        return channel(addr, trust_bundle(ident.cert, ident.root_ca), server_name, ident.key,
                       ident.cert)

    async def _messages(self, it: AsyncIterator[pb.SessionMessage]) -> None:
        async for msg in it:
            self._apply(msg)

    async def _heartbeats(self, dispatcher: Dispatcher, session_id: str) -> None:
        while True:
            period = await dispatcher.heartbeat(session_id, timeout=10)
            await asyncio.sleep(max(period, 0.5) * random.uniform(0.9, 1.0))

    def _apply(self, msg: pb.SessionMessage) -> None:
        managers = [RemoteManager(w.peer.node_id, w.peer.addr) for w in msg.managers]
        self.session = Session(msg.session_id, managers or self.session.managers)
        changed = False
        addrs = [m.addr for m in managers]
        if addrs and addrs != self.ident.managers:
            self.ident.managers = addrs
            changed = True
        if msg.HasField("node"):
            promoted = msg.node.spec.desired_role == pb.MANAGER
            self.warning = PROMOTED.format(self.ident.node_id) if promoted else ""
            if msg.node.certificate.status.state == pb.IssuanceStatus.ROTATE:
                self.renewer.request()      # a root rotation: a certificate of the new CA
        if msg.RootCA and bytes(msg.RootCA) != self.ident.root_ca:
            changed |= self._trust_root(bytes(msg.RootCA))
        if changed:
            self.on_change(self.ident)

    def _trust_root(self, root: bytes) -> bool:
        """A root rotation ended: the new root is trusted (and reported in the
        next session's TLS info) when our certificate chains to it; else it is
        refused, as SwarmKit does, until a renewal brings a certificate that does."""
        try:
            check_pair(self.ident.key, self.ident.cert, root)
        except (CertificateError, ValueError) as e:
            log.warning("swarm: the manager's new root CA is not trusted yet: %s", e)
            return False
        log.info("swarm: trusting the swarm's new root CA")
        self.ident.root_ca = root
        self._new_session.set()
        return True

    async def renew_certificate(self) -> None:
        """A new key and certificate over mutual TLS with the current ones (no
        token: the CA keeps the node ID), stored atomically, then a new session."""
        ident = self.ident
        key = new_key()
        # over the session's connection when there is one: in a root rotation the
        # manager may already present a certificate of the new CA, which a new
        # connection could not verify before we hold one of that CA too
        ch = self._channel or self._channel_to(self.addr or ident.managers[0], "swarm-ca")
        try:
            _, cert = await NodeCA(ch).issue_and_wait(
                pb.IssueNodeCertificateRequest(csr=new_csr(key)))
        finally:
            if ch is not self._channel:
                await ch.close()
        check_pair(key, cert, ident.root_ca)
        self.ident = replace(ident, key=key, cert=cert)
        self.on_change(self.ident)
        log.info("swarm: node certificate renewed, valid until %s",
                 validity(cert)[1].isoformat())
        self._new_session.set()
