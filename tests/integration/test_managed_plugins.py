"""Managed plugins (/plugins, `docker plugin`) are not supported yet: none is ever
installed, lookups are dockerd's 404, installing is a clear 501 (never a 404 page)."""
from __future__ import annotations

import docker.errors
import pytest


def test_plugin_routes_answer_as_dockerd_with_no_plugin(daemon, sdk):
    assert sdk.plugins.list() == []
    assert daemon.out("plugin", "ls", "-q").split() == []
    with pytest.raises(docker.errors.NotFound, match='plugin "nope" not found'):
        sdk.plugins.get("nope")
    for args in (("plugin", "inspect", "nope"), ("plugin", "rm", "nope"),
                 ("plugin", "disable", "nope"), ("plugin", "enable", "nope")):
        r = daemon.cli(*args, check=False)
        assert r.returncode != 0 and 'plugin "nope" not found' in r.stderr_text, args
    r = daemon.cli("plugin", "ls", "--filter", "bogus=1", check=False)
    assert r.returncode != 0 and "Invalid filter 'bogus'" in r.stderr_text


def test_installing_a_plugin_is_a_clear_501(daemon, sdk):
    r = daemon.cli("plugin", "install", "--grant-all-permissions", "127.0.0.1:9/x", check=False)
    assert r.returncode != 0 and "not supported by pydockerd yet" in r.stderr_text
    with pytest.raises(docker.errors.APIError) as e:
        sdk.api.plugin_privileges("127.0.0.1:9/x")
    assert e.value.status_code == 501
