"""The socket under a remote log driver: one connection to its endpoint (tcp,
tcp+tls, udp, unix, unixgram), made on demand and made again after an error.

Sends block (that is blocking mode's back-pressure, on the calling thread only);
`close()` may be called from any thread and interrupts a blocked send or a
retry wait: the sender then gets DriverClosed, so the message it held is not
counted as delivered."""
from __future__ import annotations

import socket
import threading
from typing import TYPE_CHECKING

from .golike import split_host_port

if TYPE_CHECKING:
    import ssl      # a tcp+tls driver's context (syslog.tls_context) loads it

CONNECT_TIMEOUT = 10.0


class DriverClosed(Exception):
    """The driver was closed while a message was on its way (it was not delivered)."""


class Conn:
    def __init__(self, network: str, address: str, tls: ssl.SSLContext | None = None,
                 connect_timeout: float = CONNECT_TIMEOUT) -> None:
        self.network = network            # tcp | tcp+tls | udp | unix | unixgram
        self.address = address            # host:port or a socket path
        self.tls = tls
        self.connect_timeout = connect_timeout
        self._sock: socket.socket | None = None
        self._lock = threading.Lock()
        self._closed = threading.Event()

    @property
    def closed(self) -> bool:
        return self._closed.is_set()

    @property
    def connected(self) -> bool:
        return self._sock is not None

    def connect(self) -> None:
        """(Re)connect now; OSError (or ssl.SSLError) as the dial gives it."""
        with self._lock:
            self._connect_locked()

    def _connect_locked(self) -> None:
        if self._closed.is_set():
            raise DriverClosed()
        self._drop_locked()
        net = self.network
        if net in ("unix", "unixgram"):
            kind = socket.SOCK_STREAM if net == "unix" else socket.SOCK_DGRAM
            sock = socket.socket(socket.AF_UNIX, kind)
            try:
                sock.settimeout(self.connect_timeout)
                sock.connect(self.address)
            except BaseException:
                sock.close()
                raise
        else:
            host, port = split_host_port(self.address)
            if net == "udp":
                fam, kind, proto, _, addr = socket.getaddrinfo(host or None, int(port), 0,
                                                               socket.SOCK_DGRAM)[0]
                sock = socket.socket(fam, kind, proto)
                try:
                    sock.connect(addr)
                except BaseException:
                    sock.close()
                    raise
            else:
                sock = socket.create_connection((host, int(port)), self.connect_timeout)
                if self.tls is not None:
                    try:
                        sock = self.tls.wrap_socket(sock, server_hostname=host or None)
                    except BaseException:
                        sock.close()
                        raise
        sock.settimeout(None)
        self._sock = sock
        if self._closed.is_set():        # closed while connecting
            self._drop_locked()
            raise DriverClosed()

    def send(self, data: bytes) -> None:
        """Send all of `data` (one datagram on udp/unixgram), connecting first if needed.
        OSError on failure (the connection is dropped: the next send reconnects)."""
        with self._lock:
            if self._closed.is_set():
                raise DriverClosed()
            if self._sock is None:
                self._connect_locked()
            sock = self._sock
            assert sock is not None
            try:
                if self.network in ("udp", "unixgram"):
                    sock.send(data)
                else:
                    sock.sendall(data)
            except OSError:
                self._drop_locked()
                if self._closed.is_set():
                    raise DriverClosed() from None
                raise

    def recv(self, n: int) -> bytes:
        """Read up to n bytes (fluentd's acks); b"" at EOF."""
        sock = self._sock
        if sock is None:
            raise OSError("not connected")
        try:
            return sock.recv(n)
        except OSError:
            if self._closed.is_set():
                raise DriverClosed() from None
            raise

    def drop(self) -> None:
        with self._lock:
            self._drop_locked()

    def _drop_locked(self) -> None:
        sock, self._sock = self._sock, None
        if sock is not None:
            try:
                sock.close()
            except OSError:
                pass

    def wait(self, seconds: float) -> None:
        """A retry pause that close() cuts short (DriverClosed)."""
        if self._closed.wait(seconds):
            raise DriverClosed()

    def close(self) -> None:
        """From any thread: no more sends; a send blocked in the kernel returns. When no
        send is under way a TLS connection is ended with its close_notify, as Go does."""
        self._closed.set()
        if self._lock.acquire(blocking=False):
            try:
                sock, self._sock = self._sock, None
                if self.tls is not None:    # then ssl is loaded and sock one of its
                    import ssl
                    if isinstance(sock, ssl.SSLSocket):
                        try:
                            sock.settimeout(0.2)
                            sock = sock.unwrap()
                        except (OSError, ValueError):
                            pass
                if sock is not None:
                    sock.close()
            finally:
                self._lock.release()
            return
        sock = self._sock              # a sender holds the lock: interrupt it, it drops
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


def dial_error(network: str, address: str, e: BaseException) -> str:
    """Go's net.Dial error text: `dial tcp 127.0.0.1:1: connect: connection refused`."""
    if isinstance(e, OSError) and e.strerror:
        why = "connect: " + e.strerror[:1].lower() + e.strerror[1:]
    else:
        why = str(e) or type(e).__name__
    return f"dial {'tcp' if network == 'tcp+tls' else network} {address}: {why}"
