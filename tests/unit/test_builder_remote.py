"""Remote contexts and build options: URL kinds, git URL fragments, Content-Type rules
(builder/remote.py, moby's remotecontext), the HostConfig of RUN containers
(models/build.py), and the clear error when git is missing."""
from __future__ import annotations

import asyncio

import pytest

from pydockerd.builder import remote
from pydockerd.builder.remote import context_kind, is_git_url, is_url, parse_git_url
from pydockerd.errors import InvalidParameter
from pydockerd.models.build import BuildResources
from pydockerd.models.host_config import Ulimit


def test_url_kinds_as_moby_urlutil():
    assert is_url("http://h/x") and is_url("https://h/x") and not is_url("ftp://h/x")
    for u in ("http://h/r.git", "https://h/r.git#main:sub", "git://h/r", "git@h:r.git",
              "github.com/a/b"):
        assert is_git_url(u), u
    for u in ("http://h/r.tar", "http://h/r.git/x", "ftp://h/r.git"):
        assert not is_git_url(u), u


def test_git_fragment_ref_and_subdir():
    assert parse_git_url("http://h/r.git") == remote.GitRemote("http://h/r.git", "master", "")
    assert parse_git_url("http://h/r.git#v1:a/b") == remote.GitRemote("http://h/r.git", "v1",
                                                                       "a/b")
    assert parse_git_url("github.com/a/b#:d").remote == "https://github.com/a/b"
    assert parse_git_url("git@h:r.git#dev").ref == "dev"
    with pytest.raises(InvalidParameter, match="invalid refspec"):
        parse_git_url("http://h/r.git#--upload-pack=x")


def test_content_type_rules(tmp_path):
    text, gz = tmp_path / "t", tmp_path / "g"
    text.write_text("FROM busybox\n")
    gz.write_bytes(b"\x1f\x8b\x08\x00" + b"\0" * 20)
    assert context_kind("text/plain; charset=utf-8", str(text)) == "text"
    assert context_kind("application/x-tar", str(text)) == "archive"
    assert context_kind("", str(text)) == "text"                  # sniffed
    assert context_kind("application/octet-stream", str(gz)) == "archive"
    with pytest.raises(InvalidParameter, match="unsupported Content-Type"):
        context_kind("text/html", str(text))


def test_missing_git_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setattr(remote.shutil, "which", lambda name: None)
    with pytest.raises(InvalidParameter, match="git is not installed"):
        asyncio.run(remote.git_clone("http://127.0.0.1:1/r.git", str(tmp_path)))


def test_run_host_config_from_build_options():
    assert BuildResources().host_config() == {
        "NetworkMode": "default", "LogConfig": {"Type": "json-file", "Config": {}}}
    hc = BuildResources(networkmode="host", extrahosts=["a:1.2.3.4"], shmsize=1 << 20,
                        ulimits=[Ulimit(Name="nofile", Soft=10, Hard=20)],
                        cpusetcpus="0", memory=64 << 20, memswap=-1).host_config()
    assert hc["NetworkMode"] == "host" and hc["ExtraHosts"] == ["a:1.2.3.4"]
    assert hc["ShmSize"] == 1 << 20 and hc["CpusetCpus"] == "0"
    assert hc["Memory"] == 64 << 20 and hc["MemorySwap"] == -1
    assert hc["Ulimits"] == [{"Name": "nofile", "Soft": 10, "Hard": 20}]
