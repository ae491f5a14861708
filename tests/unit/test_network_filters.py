"""GET /networks filters."""
from __future__ import annotations

import pytest

from pydockerd.errors import InvalidParameter
from pydockerd.network.filters import apply
from pydockerd.network.model import Network

NETS = [Network("a" * 64, "bridge", "bridge", "t"), Network("b" * 64, "host", "host", "t"),
        Network("c" * 64, "none", "null", "t"),
        Network("d" * 64, "mynet", "bridge", "t", labels={"env": "prod", "x": ""})]


def names(filters: dict[str, list[str]]) -> list[str]:
    return [n.name for n in apply(NETS, filters, lambda n: False)]


def test_filters() -> None:
    assert names({}) == ["bridge", "host", "none", "mynet"]
    assert names({"name": ["bri"]}) == ["bridge"]
    assert names({"name": ["^host$", "none"]}) == ["host", "none"]
    assert names({"id": ["bbb"]}) == ["host"]
    assert names({"driver": ["bridge"]}) == ["bridge", "mynet"]
    assert names({"type": ["builtin"]}) == ["bridge", "host", "none"]
    assert names({"type": ["custom"]}) == ["mynet"]
    assert names({"label": ["env"]}) == ["mynet"]
    assert names({"label": ["env=prod", "x"]}) == ["mynet"]
    assert names({"label": ["env=dev"]}) == []
    assert names({"scope": ["local"]}) == ["bridge", "host", "none", "mynet"]
    assert names({"scope": ["swarm"]}) == []
    assert names({"dangling": ["true"]}) == ["mynet"]
    assert names({"dangling": ["false"]}) == ["bridge", "host", "none"]


@pytest.mark.parametrize("bad", [{"foo": ["x"]}, {"type": ["weird"]}, {"dangling": ["maybe"]}])
def test_invalid_filters(bad: dict[str, list[str]]) -> None:
    with pytest.raises(InvalidParameter):
        names(bad)
