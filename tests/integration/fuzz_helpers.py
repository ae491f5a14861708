"""Helpers of the API fuzz test (tests/integration/test_fuzz.py): raw HTTP over
a unix socket, the Route tables read from api/routes, and JSON mutations."""
from __future__ import annotations

import copy
import importlib
import inspect
import io
import json
import pkgutil
import re
import socket
import tarfile
import time
import urllib.parse
from typing import Any, Callable

REQUEST_TIMEOUT = 15.0


# --- raw HTTP ---------------------------------------------------------------------------
class Answer:
    def __init__(self, status: int, headers: dict[str, str], body: bytes) -> None:
        self.status, self.headers, self.body = status, headers, body

    def json(self) -> Any:
        return json.loads(self.body)


def send(sock_path: str, raw: bytes, timeout: float = REQUEST_TIMEOUT) -> Answer:
    """One request on its own connection (the head says Connection: close); the
    whole answer is read until EOF. Raises AssertionError on a hang or a drop."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(timeout)
    deadline = time.monotonic() + timeout
    try:
        s.connect(sock_path)
        try:
            s.sendall(raw)
            s.shutdown(socket.SHUT_WR)
        except (BrokenPipeError, ConnectionResetError):
            pass              # the server answered early (a refused head): read it
        data = b""
        while True:
            if time.monotonic() > deadline:
                raise AssertionError("no complete answer in time (hang)")
            try:
                more = s.recv(1 << 20)
            except ConnectionResetError:
                break
            except socket.timeout:
                raise AssertionError("no complete answer in time (hang)") from None
            if not more:
                break
            data += more
    finally:
        s.close()
    if not data:
        raise AssertionError("connection dropped without an answer")
    head, _, rest = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {k.lower(): v.strip() for k, _, v in (ln.partition(":") for ln in lines[1:])}
    if headers.get("transfer-encoding") == "chunked":
        body = b""
        while rest:
            size_line, _, rest = rest.partition(b"\r\n")
            try:
                size = int(size_line, 16)
            except ValueError:
                raise AssertionError(f"broken chunked body at {size_line[:40]!r}") from None
            if size == 0:
                break
            body, rest = body + rest[:size], rest[size + 2:]
    else:
        body = rest[:int(headers.get("content-length", len(rest)))]
    return Answer(int(lines[0].split()[1]), headers, body)


def request(method: str, target: str, body: bytes | None = None,
            content_length: int | None = None) -> bytes:
    head = f"{method} {target} HTTP/1.1\r\nHost: docker\r\nConnection: close\r\n"
    if body is not None:
        n = len(body) if content_length is None else content_length
        head += f"Content-Type: application/json\r\nContent-Length: {n}\r\n"
    return head.encode("utf-8", "surrogateescape") + b"\r\n" + (body or b"")


# --- what the Route tables say ----------------------------------------------------------
def route_table() -> list[tuple[str, str, Callable[..., Any]]]:
    """(method, pattern, handler) of every route module, built with empty backends."""
    import pydockerd.api.routes as pkg
    out = []
    for info in pkgutil.iter_modules(pkg.__path__):
        mod = importlib.import_module(f"{pkg.__name__}.{info.name}")
        make = getattr(mod, "routes", None)
        if make is None:
            continue
        n = sum(1 for p in inspect.signature(make).parameters.values()
                if p.default is inspect.Parameter.empty)
        out += [(r.method, r.pattern, r.handler) for r in make(*([None] * n))]
    return out


def query_params(handler: Callable[..., Any]) -> dict[str, str]:
    """Query parameters a handler reads, by kind (int, json, bool, str)."""
    src = inspect.getsource(handler)
    kinds: dict[str, str] = {}
    for m in re.finditer(r"""\bq(_bool|_int|_json|_list)?\(\s*["']([^"']+)["']""", src):
        kind = {"_bool": "bool", "_int": "int", "_json": "json"}.get(m.group(1) or "", "str")
        kinds.setdefault(m.group(2), kind)
    if "filters()" in src:
        kinds["filters"] = "json"
    if "tty_size()" in src:
        kinds.update(h="int", w="int")
    for name in re.findall(r"""_json_map\(req,\s*["']([^"']+)["']""", src) + \
            re.findall(r"""_check_json_list\(req,\s*["']([^"']+)["']""", src):
        kinds[name] = "json"
    return kinds


def reads_json_body(handler: Callable[..., Any]) -> bool:
    src = inspect.getsource(handler)
    return "req.json(" in src or "decode_body(" in src


def reads_raw_body(handler: Callable[..., Any]) -> bool:
    return "body.chunks()" in inspect.getsource(handler)


# --- mutations ----------------------------------------------------------------------------
def fill(pattern: str, value: str) -> str:
    quoted = urllib.parse.quote(value, safe="/:@%")
    return re.sub(r"\{[^}]+\}", lambda m: quoted, pattern)


def with_deep_field(body: dict[str, Any], key: str, n: int = 5000) -> bytes:
    """body with body[key] replaced by an n-deep array (written as text: json.dumps
    itself could not nest that deep)."""
    text = json.dumps({**body, key: "__DEEP__"})
    return text.replace('"__DEEP__"', "[" * n + "]" * n).encode()


def field_paths(v: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix] if prefix else []
    if isinstance(v, dict):
        for k, x in v.items():
            out += field_paths(x, prefix + (k,))
    elif isinstance(v, list):
        for i, x in enumerate(v):
            out += field_paths(x, prefix + (i,))
    return out


def replaced(body: Any, path: tuple[Any, ...], value: Any) -> Any:
    out = copy.deepcopy(body)
    cur = out
    for k in path[:-1]:
        cur = cur[k]
    cur[path[-1]] = value
    return out


def wrong_types(v: Any) -> list[Any]:
    """Values of another JSON type than v (what dockerd's decoder refuses)."""
    if isinstance(v, dict):
        return ["x", [], 5]
    if isinstance(v, list):
        return ["x", {"a": 1}, 5] + ([[7]] if v and isinstance(v[0], str) else [])
    if isinstance(v, str):
        return [5, {"a": "b"}, ["x"]]
    if isinstance(v, bool):
        return ["x", [1], {"a": 1}]
    return ["x", [1], {"a": 1}]


def truncated_tar() -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        data = b"z" * 5000
        info = tarfile.TarInfo("Dockerfile")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()[:1500]
