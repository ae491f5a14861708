"""Test helpers: Debian's docker-registry on 127.0.0.1, TLS material, htpasswd,
a Bearer token server, a fault-injecting proxy, and image seeding over the
registry API (so a registry holds an image before any push)."""
from __future__ import annotations

import base64
import warnings

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    import crypt  # bcrypt hashes through libcrypt: no extra package needed
import gzip
import hashlib
import http.server

import json
import os
import socket
import socketserver
import subprocess
import tarfile
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

REGISTRY = "/usr/bin/docker-registry"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def sha256(b: bytes) -> str:
    return "sha256:" + hashlib.sha256(b).hexdigest()


@dataclass
class Registry:
    proc: subprocess.Popen
    port: int
    scheme: str
    root: Path

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"{self.scheme}://{self.host}"

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def start_registry(base: Path, name: str, *, htpasswd: Path | None = None,
                   tls: dict[str, str] | None = None, token: dict[str, str] | None = None
                   ) -> Registry:
    root = base / name
    (root / "data").mkdir(parents=True, exist_ok=True)
    port = free_port()
    lines = ["version: 0.1", "log:", "  level: error", "  accesslog:", "    disabled: true",
             "storage:", "  filesystem:", f"    rootdirectory: {root / 'data'}",
             "  delete:", "    enabled: true", "http:", f"  addr: 127.0.0.1:{port}",
             f"  secret: test-{name}"]
    if tls:
        lines += ["  tls:", f"    certificate: {tls['cert']}", f"    key: {tls['key']}"]
        if tls.get("clientca"):
            lines += ["    clientcas:", f"      - {tls['clientca']}"]
    if htpasswd:
        lines += ["auth:", "  htpasswd:", "    realm: pydockerd-test", f"    path: {htpasswd}"]
    if token:
        lines += ["auth:", "  token:", f"    realm: {token['realm']}",
                  f"    service: {token['service']}", f"    issuer: {token['issuer']}",
                  f"    rootcertbundle: {token['rootcertbundle']}"]
    cfg = root / "config.yml"
    cfg.write_text("\n".join(lines) + "\n")
    log = open(root / "registry.log", "ab")
    proc = subprocess.Popen([REGISTRY, "serve", str(cfg)], stdout=log, stderr=log,
                            start_new_session=True)
    reg = Registry(proc, port, "https" if tls else "http", root)
    deadline = time.time() + 15
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"registry exited: {(root / 'registry.log').read_text()}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return reg
        except OSError:
            time.sleep(0.05)
    reg.stop()
    raise RuntimeError("registry did not come up")


def make_htpasswd(path: Path, user: str, password: str) -> None:
    """bcrypt ($2b$) through libcrypt: the registry accepts only bcrypt entries."""
    h = crypt.crypt(password, crypt.mksalt(crypt.METHOD_BLOWFISH, rounds=1 << 5))
    assert h and h.startswith("$2"), "libcrypt without bcrypt support"
    path.write_text(f"{user}:{h}\n")


def _openssl(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True)


def make_tls(d: Path) -> dict[str, str]:
    """A test CA, a server certificate for 127.0.0.1, and a client certificate."""
    d.mkdir(parents=True, exist_ok=True)
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
             "-subj", "/CN=pydockerd test CA", "-keyout", str(d / "ca.key"),
             "-out", str(d / "ca.crt"))
    ext = d / "ext.cnf"
    ext.write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    for name, extra in (("server", ["-extfile", str(ext)]), ("client", [])):
        _openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={name}",
                 "-keyout", str(d / f"{name}.key"), "-out", str(d / f"{name}.csr"))
        _openssl("x509", "-req", "-in", str(d / f"{name}.csr"), "-CA", str(d / "ca.crt"),
                 "-CAkey", str(d / "ca.key"), "-CAcreateserial", "-days", "2",
                 "-out", str(d / f"{name}.crt"), *extra)
    return {"ca": str(d / "ca.crt"), "cert": str(d / "server.crt"),
            "key": str(d / "server.key"), "client_cert": str(d / "client.crt"),
            "client_key": str(d / "client.key")}


# --- seeding a registry through its API ---------------------------------------------------
def _req(method: str, url: str, data: bytes | None = None,
         headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    r = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(r, timeout=30) as resp:
            return resp.status, dict(resp.headers), resp.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


def upload_blob(base: str, repo: str, data: bytes) -> str:
    digest = sha256(data)
    st, _, _ = _req("HEAD", f"{base}/v2/{repo}/blobs/{digest}")
    if st == 200:
        return digest
    st, h, body = _req("POST", f"{base}/v2/{repo}/blobs/uploads/", b"")
    assert st == 202, body
    loc = h["Location"]
    loc = loc if loc.startswith("http") else base + loc
    sep = "&" if "?" in loc else "?"
    st, _, body = _req("PUT", f"{loc}{sep}digest={digest}", data,
                       {"Content-Type": "application/octet-stream"})
    assert st == 201, body
    return digest


def put_manifest(base: str, repo: str, ref: str, doc: dict) -> str:
    body = json.dumps(doc).encode()
    st, _, out = _req("PUT", f"{base}/v2/{repo}/manifests/{ref}", body,
                      {"Content-Type": doc["mediaType"]})
    assert st == 201, out
    return sha256(body)


def read_archive(path: Path) -> tuple[bytes, list[bytes]]:
    """(config, layer tars) of a one-image docker-save archive (pydockerd.testing.images)."""
    with tarfile.open(path) as tar:
        man = json.load(tar.extractfile("manifest.json"))[0]  # type: ignore[arg-type]
        config = tar.extractfile(man["Config"]).read()  # type: ignore[union-attr]
        layers = [tar.extractfile(p).read() for p in man["Layers"]]  # type: ignore[union-attr]
    return config, layers


def seed_image(base: str, repo: str, tag: str, archive: Path, *, gzip_layers: bool = True,
               oci: bool = False, index: bool = False, zstd: bool = False) -> dict[str, str]:
    """Upload an image from a docker-save archive; returns digests of what was made."""
    config, layers = read_archive(archive)
    if zstd:
        import zstandard
        layers = [zstandard.ZstdCompressor().compress(b) for b in layers]
        descs = [{"mediaType": "application/vnd.oci.image.layer.v1.tar+zstd",
                  "digest": upload_blob(base, repo, b), "size": len(b)} for b in layers]
        cfg_digest = upload_blob(base, repo, config)
        doc = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
               "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                          "digest": cfg_digest, "size": len(config)}, "layers": descs}
        return {"config": cfg_digest, "manifest": put_manifest(base, repo, tag, doc)}
    if gzip_layers:
        layers = [gzip.compress(b, mtime=0) for b in layers]
    cfg_digest = upload_blob(base, repo, config)
    descs = []
    for b in layers:
        descs.append({"mediaType": ("application/vnd.oci.image.layer.v1.tar" + (
            "+gzip" if gzip_layers else "")) if oci else
            "application/vnd.docker.image.rootfs.diff.tar.gzip",
            "digest": upload_blob(base, repo, b), "size": len(b)})
    mt = "application/vnd.oci.image.manifest.v1+json" if oci else \
        "application/vnd.docker.distribution.manifest.v2+json"
    doc = {"schemaVersion": 2, "mediaType": mt,
           "config": {"mediaType": "application/vnd.oci.image.config.v1+json" if oci else
                      "application/vnd.docker.container.image.v1+json",
                      "digest": cfg_digest, "size": len(config)},
           "layers": descs}
    out = {"config": cfg_digest, "layers": ",".join(d["digest"] for d in descs)}
    if not index:
        out["manifest"] = put_manifest(base, repo, tag, doc)
        return out
    man_digest = put_manifest(base, repo, sha256(json.dumps(doc).encode()), doc)
    size = len(json.dumps(doc).encode())
    # an arm64 entry pointing at the same image: only the platform selection differs
    idx = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
           "manifests": [
               {"mediaType": mt, "digest": man_digest, "size": size,
                "platform": {"architecture": "arm64", "os": "linux", "variant": "v8"}},
               {"mediaType": mt, "digest": man_digest, "size": size,
                "platform": {"architecture": "amd64", "os": "linux"}}]}
    out["manifest"] = man_digest
    out["index"] = put_manifest(base, repo, tag, idx)
    return out


# --- a fault-injecting proxy ------------------------------------------------------------
class FaultProxy:
    """HTTP proxy in front of a registry; `mode` spoils blob downloads:
    "truncate" (half the body, then close), "corrupt" (one byte flipped),
    "reset" (close before any byte), "reset-mid" (half the body, then a TCP
    reset), "stall" (half the body, then silence until the proxy closes),
    "500" (an internal server error), None.
    `times`: spoil only that many responses (None: all). `delay`: seconds each
    blob GET takes. `ignore_range`: Range headers are not passed on (a registry
    without range support answers 200 with the whole blob). It records every request (method, path, Range header) and the
    most blob GETs it had in flight at once."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream
        self.mode: str | None = None
        self.spoil: set[str] = set()          # blob digests to spoil (all blobs if empty)
        self.times: int | None = None
        self.delay = 0.0
        self.ignore_range = False
        self.requests: list[tuple[str, str, str]] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self._lock = threading.Lock()
        self._closing = threading.Event()
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a: object) -> None:
                pass

            def do_GET(self) -> None:
                proxy.handle(self, "GET")

            def do_HEAD(self) -> None:
                proxy.handle(self, "HEAD")

        class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
            daemon_threads = True
            allow_reuse_address = True

        self.server = Server(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    def blob_gets(self, digest: str) -> list[str]:
        """The Range header of each GET of one blob, in order ("" for none)."""
        return [r for m, p, r in self.requests if m == "GET" and p.endswith("/" + digest)]

    def handle(self, h: http.server.BaseHTTPRequestHandler, method: str) -> None:
        blob_get = "/blobs/sha256:" in h.path and method == "GET"
        with self._lock:
            self.requests.append((method, h.path, h.headers.get("Range", "")))
            if blob_get:
                self.in_flight += 1
                self.max_in_flight = max(self.max_in_flight, self.in_flight)
        # in flight: while the answer is held back, which is surely within the time the
        # client holds its download slot (once the body is sent, the client may start
        # its next download before this thread gets to count this one done)
        try:
            if blob_get and self.delay:
                time.sleep(self.delay)
        finally:
            if blob_get:
                with self._lock:
                    self.in_flight -= 1
        self._answer(h, method)

    def _answer(self, h: http.server.BaseHTTPRequestHandler, method: str) -> None:
        passed = ("accept", "authorization") if self.ignore_range else \
            ("accept", "authorization", "range")
        headers = {k: v for k, v in h.headers.items() if k.lower() in passed}
        st, rh, body = _req(method, self.upstream + h.path, None, headers)
        digest = h.path.rsplit("/", 1)[-1]
        is_blob = "/blobs/sha256:" in h.path and method == "GET" and st in (200, 206) \
            and len(body) > 600 and (not self.spoil or digest in self.spoil)
        with self._lock:
            if is_blob and self.times is not None:
                is_blob = self.times > 0
                self.times -= int(is_blob)
        mode = self.mode if is_blob else None
        if mode == "500":
            h.send_response(500)
            h.send_header("Content-Type", "application/json")
            err = b'{"errors":[{"code":"UNKNOWN","message":"unknown error"}]}'
            h.send_header("Content-Length", str(len(err)))
            h.end_headers()
            h.wfile.write(err)
            return
        if mode == "reset":
            self._reset(h)
            return
        h.send_response(st)
        for k, v in rh.items():
            if k.lower() not in ("content-length", "transfer-encoding", "connection", "date"):
                h.send_header(k, v)
        h.send_header("Content-Length", str(len(body)))
        if mode == "truncate":
            h.send_header("Connection", "close")
        h.end_headers()
        if method == "HEAD":
            return
        if mode in ("truncate", "reset-mid", "stall"):
            h.wfile.write(body[:len(body) // 2])
            h.wfile.flush()
            if mode == "reset-mid":
                time.sleep(0.3)               # let the half arrive before the reset
            if mode == "stall":
                self._closing.wait(120)
            if mode == "reset-mid":
                self._reset(h)
            h.close_connection = True
            return
        if mode == "corrupt":
            body = body[:500] + bytes([body[500] ^ 0xFF]) + body[501:]
        h.wfile.write(body)

    @staticmethod
    def _reset(h: http.server.BaseHTTPRequestHandler) -> None:
        h.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                b"\x01\x00\x00\x00\x00\x00\x00\x00")
        h.close_connection = True
        h.connection.close()

    def close(self) -> None:
        self._closing.set()
        self.server.shutdown()
        self.server.server_close()


class SilentServer:
    """Accepts TCP connections and never sends a byte (a stalled registry)."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.conns: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.conns.append(conn)

    def close(self) -> None:
        self.sock.close()
        for c in self.conns:
            c.close()


def seed_random_image(base: str, repo: str, tag: str, sizes: list[int]) -> dict[str, str]:
    """An image of gzip layers, each one file of random bytes (sizes in bytes), so
    every layer blob is about that size. Returns the config, layers (comma-joined)
    and manifest digests, and the blob sizes (comma-joined)."""
    import io
    tars, blobs = [], []
    for i, n in enumerate(sizes):
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
            info = tarfile.TarInfo(f"blob{i}.bin")
            info.size, info.mtime = n, 0
            tar.addfile(info, io.BytesIO(os.urandom(n)))
        tars.append(buf.getvalue())
        blobs.append(gzip.compress(buf.getvalue(), mtime=0, compresslevel=1))
    config = json.dumps({"architecture": "amd64", "os": "linux",
                         "config": {"Cmd": ["/bin/sh"]},
                         "rootfs": {"type": "layers", "diff_ids": [sha256(t) for t in tars]},
                         "history": [{"created_by": f"layer {i}"} for i in range(len(tars))]
                         }).encode()
    cfg_digest = upload_blob(base, repo, config)
    descs = [{"mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip",
              "digest": upload_blob(base, repo, b), "size": len(b)} for b in blobs]
    doc = {"schemaVersion": 2,
           "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
           "config": {"mediaType": "application/vnd.docker.container.image.v1+json",
                      "digest": cfg_digest, "size": len(config)}, "layers": descs}
    return {"config": cfg_digest, "layers": ",".join(d["digest"] for d in descs),
            "sizes": ",".join(str(d["size"]) for d in descs),
            "manifest": put_manifest(base, repo, tag, doc)}


# --- a Bearer token server ----------------------------------------------------------------
def _b64(b: bytes) -> str:
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


class TokenServer:
    """Issues registry JWTs (RS256, x5c) to user/password; grants what is asked."""

    def __init__(self, key_pem: Path, cert_pem: Path, issuer: str, service: str,
                 user: str, password: str) -> None:
        cert_der = subprocess.run(["openssl", "x509", "-in", str(cert_pem), "-outform", "DER"],
                                  check=True, capture_output=True).stdout
        self.requests: list[str] = []
        srv = self

        def sign(claims: dict) -> str:
            header = {"alg": "RS256", "typ": "JWT",
                      "x5c": [base64.b64encode(cert_der).decode()]}
            signing = f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(claims).encode())}"
            sig = subprocess.run(["openssl", "dgst", "-sha256", "-sign", str(key_pem)],
                                 input=signing.encode(), check=True, capture_output=True).stdout
            return f"{signing}.{_b64(sig)}"

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *a: object) -> None:
                pass

            def do_GET(self) -> None:
                from urllib.parse import parse_qs, urlsplit
                q = parse_qs(urlsplit(self.path).query)
                srv.requests.append(self.path)
                auth = self.headers.get("Authorization", "")
                ok = auth == "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
                if auth and not ok:
                    self.send_response(401)
                    body = b'{"details":"incorrect username or password"}'
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                    return
                access = []
                for scope in q.get("scope", []):
                    typ, _, rest = scope.partition(":")
                    name, _, actions = rest.rpartition(":")
                    if ok:
                        access.append({"type": typ, "name": name,
                                       "actions": actions.split(",")})
                now = int(time.time())
                claims = {"iss": issuer, "sub": user if ok else "", "aud": service,
                          "exp": now + 300, "nbf": now - 10, "iat": now,
                          "jti": os.urandom(8).hex(), "access": access}
                body = json.dumps({"token": sign(claims)}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
            daemon_threads = True

        self.server = Server(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def realm(self) -> str:
        return f"http://127.0.0.1:{self.port}/token"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def tree_snapshot(root: str) -> set[str]:
    out = set()
    for sub in ("layers", "tmp", "distribution/tmp"):
        d = os.path.join(root, sub)
        if os.path.isdir(d):
            out |= {f"{sub}/{n}" for n in os.listdir(d)}
    return out


