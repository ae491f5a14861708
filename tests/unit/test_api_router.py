"""Router, version negotiation, query parsing and JSON limits: tables, no daemon."""
from __future__ import annotations

import pytest

from pydockerd.api.http import AnyResponse, Body, Request, atoi, bool_value, json_response, \
    parse_filters
from pydockerd.api.jsonin import MAX_DEPTH, parse_json
from pydockerd.api.router import Route, Router
from pydockerd.api.version import API_VERSION, MIN_API_VERSION, negotiate, split_version
from pydockerd.errors import InvalidParameter, NotFound


def _handler(name: str):
    async def h(req: Request) -> AnyResponse:
        return json_response(name)
    h.__name__ = name
    return h


H = {n: _handler(n) for n in ("ping", "ping_head", "list", "inspect", "img", "img_push",
                              "create", "archive_head", "archive_get")}
ROUTER = Router()
ROUTER.add([
    Route("GET", "/_ping", H["ping"]), Route("HEAD", "/_ping", H["ping_head"]),
    Route("GET", "/containers/json", H["list"]), Route("POST", "/containers/create", H["create"]),
    Route("GET", "/containers/{id}/json", H["inspect"]),
    Route("HEAD", "/containers/{id}/archive", H["archive_head"]),
    Route("GET", "/containers/{id}/archive", H["archive_get"]),
    Route("GET", "/images/{name:path}/json", H["img"]),
    Route("POST", "/images/{name:path}/push", H["img_push"]),
])


@pytest.mark.parametrize("method,path,handler,params", [
    ("GET", "/_ping", "ping", {}),
    ("HEAD", "/_ping", "ping_head", {}),
    ("HEAD", "/containers/json", "list", {}),                 # HEAD falls back to GET
    ("GET", "/containers/abc/json", "inspect", {"id": "abc"}),
    ("HEAD", "/containers/abc/json", "inspect", {"id": "abc"}),
    ("HEAD", "/containers/abc/archive", "archive_head", {"id": "abc"}),
    ("GET", "/containers/abc/archive", "archive_get", {"id": "abc"}),
    ("GET", "/images/reg:5000/a/b:tag/json", "img", {"name": "reg:5000/a/b:tag"}),
    ("POST", "/images/a/b/push", "img_push", {"name": "a/b"}),
    ("GET", "/containers/create/json", "inspect", {"id": "create"}),
])
def test_resolve(method: str, path: str, handler: str, params: dict[str, str]) -> None:
    h, got = ROUTER.resolve(method, path)
    assert h is H[handler] and got == params


@pytest.mark.parametrize("method,path", [
    ("GET", "/nope"), ("POST", "/_ping"), ("DELETE", "/containers/json"),
    ("GET", "/containers/a/b/json"), ("GET", "/containers//json"), ("GET", "/containers/json/"),
    ("PUT", "/containers/create"), ("GET", ""),
])
def test_unknown_routes_are_page_not_found(method: str, path: str) -> None:
    with pytest.raises(NotFound, match="^page not found$"):
        ROUTER.resolve(method, path)


@pytest.mark.parametrize("path,text,rest", [
    ("/v1.41/containers/json", "1.41", "/containers/json"),
    ("/v1.50/_ping", "1.50", "/_ping"),
    ("/v1/_ping", "1", "/_ping"),
    ("/_ping", None, "/_ping"),
    ("/v1.41", None, "/v1.41"),
    ("/vx.1/_ping", None, "/vx.1/_ping"),
])
def test_split_version(path: str, text: str | None, rest: str) -> None:
    assert split_version(path) == (text, rest)


@pytest.mark.parametrize("text,result", [
    (None, API_VERSION), ("1.24", MIN_API_VERSION), ("1.41", (1, 41)), ("1.50", (1, 50)),
    ("1.50.0", (1, 50)),
    ("1.51", "client version 1.51 is too new. Maximum supported API version is 1.50"),
    ("2.0", "client version 2.0 is too new. Maximum supported API version is 1.50"),
    ("1.50.1", "client version 1.50.1 is too new"),
    ("1.23", "client version 1.23 is too old. Minimum supported API version is 1.24, "
             "please upgrade your client to a newer version"),
    ("1", "client version 1 is too old"),
])
def test_negotiate(text: str | None, result: object) -> None:
    if isinstance(result, str):
        with pytest.raises(InvalidParameter) as e:
            negotiate(text)
        assert e.value.message.startswith(result)
    else:
        assert negotiate(text) == result


def _req(qs: str) -> Request:
    async def nothing() -> bytes:
        return b""
    return Request("GET", "/", Request.parse_query(qs), {}, Body(nothing), API_VERSION)


@pytest.mark.parametrize("value,expected", [
    ("", False), ("0", False), ("no", False), ("false", False), ("none", False),
    ("FALSE", False), (" no ", False), ("None", False),
    ("1", True), ("true", True), ("yes", True), ("abc", True), ("2", True), ("-1", True),
])
def test_bool_value(value: str, expected: bool) -> None:
    assert bool_value(value) is expected


@pytest.mark.parametrize("qs,default,expected", [
    ("", False, False), ("", True, True), ("stream=", True, False), ("stream=0", True, False),
    ("stream=1", False, True), ("stream=abc", False, True), ("stream", True, False),
    ("stream=1&stream=0", False, True),                     # the first value, as Go
])
def test_q_bool_or_default(qs: str, default: bool, expected: bool) -> None:
    assert _req(qs).q_bool("stream", default) is expected


@pytest.mark.parametrize("value,expected", [
    ("0", 0), ("10", 10), ("-1", -1), ("+7", 7), ("007", 7),
    ("9223372036854775807", 9223372036854775807),
    ("-9223372036854775808", -9223372036854775808),
    ("1.5", "invalid syntax"), ("abc", "invalid syntax"), (" 1", "invalid syntax"),
    ("1_000", "invalid syntax"), ("٣", "invalid syntax"), ("", "invalid syntax"),
    ("0x10", "invalid syntax"), ("9223372036854775808", "value out of range"),
    ("9" * 5000, "value out of range"),
])
def test_atoi(value: str, expected: object) -> None:
    if isinstance(expected, str):
        with pytest.raises(InvalidParameter) as e:
            atoi("t", value)
        assert e.value.message.startswith("invalid value for t: strconv.Atoi: parsing ")
        assert e.value.message.endswith(expected)
    else:
        assert atoi("t", value) == expected


@pytest.mark.parametrize("qs,expected", [
    ("", None), ("t=", None), ("t=5", 5), ("t=5&t=x", 5), ("t=x", InvalidParameter),
    ("t=1.5", InvalidParameter),
])
def test_q_int(qs: str, expected: object) -> None:
    if expected is InvalidParameter:
        with pytest.raises(InvalidParameter):
            _req(qs).q_int("t")
    else:
        assert _req(qs).q_int("t") == expected


@pytest.mark.parametrize("qs,expected", [
    ("h=10&w=20", (10, 20)), ("h=10", "invalid value for w"), ("w=1", "invalid value for h"),
    ("h=a&w=1", "invalid value for h"), ("h=1&w=2.5", "invalid value for w"),
])
def test_tty_size(qs: str, expected: object) -> None:
    if isinstance(expected, str):
        with pytest.raises(InvalidParameter, match=expected):
            _req(qs).tty_size()
    else:
        assert _req(qs).tty_size() == expected


def test_nul_bytes_in_queries_are_refused() -> None:
    with pytest.raises(InvalidParameter, match="NUL"):
        Request.parse_query("path=%2Fa%00b")
    with pytest.raises(InvalidParameter, match="NUL"):
        Request.parse_query("a%00=1")


@pytest.mark.parametrize("raw,ok", [
    ('{"a": [1, {"b": null}]}', True), ("[]", True), ("12345678901234567890123", True),
    ("[" * MAX_DEPTH + "]" * MAX_DEPTH, True),
    ("[" * (MAX_DEPTH + 1) + "]" * (MAX_DEPTH + 1), False),
    ('{"a":' * 5000 + "1" + "}" * 5000, False), ("[" * 100000, False),
    ("", False), ("{", False), ("{} {}", False), ("NaN", False), ("Infinity", False),
    ('"\\ud800"', False), (b'"\xff"', False), ("{'a': 1}", False), ("1e999", False),
])
def test_parse_json(raw: str | bytes, ok: bool) -> None:
    if ok:
        parse_json(raw)
    else:
        with pytest.raises(InvalidParameter, match="^invalid JSON in filters: "):
            parse_json(raw, "filters")


@pytest.mark.parametrize("raw,expected", [
    (None, {}), ({}, {}), ({"a": ["x", "y"]}, {"a": ["x", "y"]}), ({"a": "x"}, {"a": ["x"]}),
    ({"a": {"x": True, "y": False}}, {"a": ["x"]}),
    ([], InvalidParameter), ("x", InvalidParameter), ({"a": [1]}, InvalidParameter),
    ({"a": {"x": "yes"}}, InvalidParameter), ({"a": 5}, InvalidParameter),
    ({"a": [["x"]]}, InvalidParameter), ({"a": None}, InvalidParameter),
])
def test_parse_filters(raw: object, expected: object) -> None:
    if expected is InvalidParameter:
        with pytest.raises(InvalidParameter):
            parse_filters(raw)
    else:
        assert parse_filters(raw) == expected


@pytest.mark.parametrize("qs", [
    "all=1", "all=1&size=0&all=2", "a", "a=", "=x", "&&a=1&", "a=b=c", "filters={\"a\":[\"b\"]}",
    "a=1;b=2", "x=%41", "x=a+b", "k+1=v", "%zz=1", "a&b&a",
])
def test_query_parsing_is_parse_qs(qs: str) -> None:
    """The fast path for queries with nothing to decode gives parse_qs's answer."""
    from urllib.parse import parse_qs
    assert Request.parse_query(qs) == parse_qs(qs, keep_blank_values=True)
