"""Pull, push, login, search and manifest inspect against Debian's docker-registry
on 127.0.0.1: plain, htpasswd basic auth, TLS with a test CA and client
certificates (certs.d), and Bearer token auth; a fault proxy that truncates,
corrupts, resets or fails blob downloads."""
from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import time
from pathlib import Path

import pytest

from conftest import cleanup_daemon, make_daemon
from registry_helpers import (FaultProxy, TokenServer, make_htpasswd, make_tls, read_archive,
                               seed_image,
                               start_registry, tree_snapshot)

USER, PASSWORD = "tester", "s3cret-pw"


@pytest.fixture(scope="module")
def env(images_dir):
    """Registries, certs and one daemon (with PYDOCKERD_CERTS_DIR) for the module."""
    base = Path(tempfile.mkdtemp(prefix="pdreg-", dir="/tmp"))
    started: list = []
    d = None
    try:
        tls = make_tls(base / "tls")
        htpasswd = base / "htpasswd"
        make_htpasswd(htpasswd, USER, PASSWORD)
        plain = start_registry(base, "plain")
        started.append(plain)
        basic = start_registry(base, "basic", htpasswd=htpasswd)
        started.append(basic)
        secure = start_registry(base, "tls", tls={"cert": tls["cert"], "key": tls["key"],
                                                  "clientca": tls["ca"]})
        started.append(secure)
        tokens = TokenServer(base / "tls" / "ca.key", base / "tls" / "ca.crt",
                             "pydockerd-test-issuer", "pydockerd-test-registry", USER, PASSWORD)
        token = start_registry(base, "token", token={
            "realm": tokens.realm, "service": "pydockerd-test-registry",
            "issuer": "pydockerd-test-issuer", "rootcertbundle": tls["ca"]})
        started.append(token)
        certs = base / "certs.d" / secure.host
        certs.mkdir(parents=True)
        shutil.copy(tls["ca"], certs / "ca.crt")
        shutil.copy(tls["client_cert"], certs / "client.cert")
        shutil.copy(tls["client_key"], certs / "client.key")
        # one download attempt: a spoiled blob fails at once (the retries and their
        # 5 s back-off are test_pull_retry.py's)
        d = make_daemon(base / "daemon", ["--max-download-attempts", "1"])
        old = os.environ.get("PYDOCKERD_CERTS_DIR")
        os.environ["PYDOCKERD_CERTS_DIR"] = str(base / "certs.d")
        try:
            d.start()
        finally:
            if old is None:
                os.environ.pop("PYDOCKERD_CERTS_DIR", None)
            else:
                os.environ["PYDOCKERD_CERTS_DIR"] = old
        # nothing loaded: pulled layers are downloaded, so their blobs can be pushed on
        busybox_id = "sha256:" + hashlib.sha256(read_archive(images_dir / "busybox.tar")[0]
                                                ).hexdigest()
        seeded = seed_image(plain.url, "x/seed", "1", images_dir / "busybox.tar")
        yield dict(d=d, plain=plain, basic=basic, secure=secure, token=token, tokens=tokens,
                   seeded=seeded, busybox_id=busybox_id, base=base, images_dir=images_dir)
    finally:
        if d is not None:
            cleanup_daemon(d)
        for r in started:
            r.stop()
        if os.environ.get("KEEP_TEST_DIRS") != "1":
            shutil.rmtree(base, ignore_errors=True)


def lines(out: str) -> str:
    return out.replace("\r", "\n")


def assert_clean(d, before: set[str]) -> None:
    after = tree_snapshot(d.data_root)
    leftovers = {p for p in after - before if not p.endswith("/l")}
    assert not {p for p in leftovers if p.startswith(("tmp/", "distribution/tmp/"))}, leftovers
    assert not {p for p in leftovers if p.startswith("layers/")}, leftovers


def test_pull_push_rmi_pull_roundtrip(env):
    d, plain = env["d"], env["plain"]
    seed = f"{plain.host}/x/seed:1"
    t0 = time.monotonic()
    out = lines(d.out("pull", seed))
    pull_s = time.monotonic() - t0
    assert f"1: Pulling from {plain.host}/x/seed" in out
    assert "Pull complete" in out
    assert f"Digest: {env['seeded']['manifest']}" in out
    assert f"Status: Downloaded newer image for {seed}" in out
    info = d.inspect(seed)
    # the registry copy of the fixture busybox: the config is the same, so the id is too
    assert info["Id"] == env["busybox_id"]
    assert f"{plain.host}/x/seed@{env['seeded']['manifest']}" in info["RepoDigests"]
    # pulling again: up to date; -a pulls every tag
    assert f"Status: Image is up to date for {seed}" in d.out("pull", "-a", f"{plain.host}/x/seed")
    assert f"Status: Image is up to date for {seed}" in d.out("pull", seed)

    target = f"{plain.host}/x/busybox:1"
    d.cli("tag", seed, target)
    t0 = time.monotonic()
    out = lines(d.out("push", target))
    push_s = time.monotonic() - t0
    assert f"The push refers to repository [{plain.host}/x/busybox]" in out
    assert "Mounted from x/seed" in out, out
    pushed = [ln for ln in out.splitlines() if ln.startswith("1: digest: sha256:")]
    assert pushed, out
    digest = pushed[0].split()[2]
    # a second push finds everything there
    assert "Layer already exists" in d.out("push", target)

    d.cli("rmi", seed, target)
    assert d.cli("image", "inspect", target, check=False).returncode != 0
    out = lines(d.out("pull", target))
    assert "Pull complete" in out and f"Digest: {digest}" in out
    info = d.inspect(target)
    assert info["Id"] == env["busybox_id"]
    assert f"{plain.host}/x/busybox@{digest}" in info["RepoDigests"]
    assert d.out("run", "--rm", target, "echo", "pulled-ok").strip() == "pulled-ok"
    print(f"\nbusybox from the local registry: pull {pull_s:.2f}s, push {push_s:.2f}s")


def test_push_loaded_image(env):
    """A layer that came from `docker load` has no registry blob: its tar must be
    re-made with the exact bytes of its diff id (ImageService.layer_tar)."""
    from pydockerd.images.layers import LayerStore
    from pydockerd.images.service import ImageService
    d, plain = env["d"], env["plain"]
    d.cli("load", "-i", str(env["images_dir"] / "layered.tar"))
    target = f"{plain.host}/x/layered-loaded:1"
    d.cli("tag", "layered:latest", target)
    try:
        r = d.cli("push", target, check=False)
        if not hasattr(ImageService, "layer_tar") and not hasattr(LayerStore, "replay"):
            assert "cannot push layer" in r.stderr_text + r.stdout_text, r.stdout_text
            pytest.xfail("needs ImageService.layer_tar (the original tar of a loaded layer)")
        assert r.returncode == 0 and "1: digest: sha256:" in r.stdout_text, r.stderr_text
        layered_id = d.inspect("layered:latest")["Id"]
        d.cli("rmi", target, "layered:latest")
        d.cli("pull", target)
        assert d.inspect(target)["Id"] == layered_id
    finally:
        d.cli("rmi", "-f", target, "layered:latest", check=False)


def test_pull_errors(env):
    d, plain = env["d"], env["plain"]
    r = d.cli("pull", f"{plain.host}/x/seed:nope", check=False)
    assert r.returncode != 0
    assert f"manifest for {plain.host}/x/seed:nope not found: manifest unknown" in r.stderr_text
    r = d.cli("pull", f"{plain.host}/x/nothing-here:1", check=False)
    assert r.returncode != 0
    assert "not found" in r.stderr_text and "unknown" in r.stderr_text, r.stderr_text
    r = d.cli("pull", "127.0.0.1:1/x/y:1", check=False)
    assert r.returncode != 0 and "connect" in r.stderr_text.lower(), r.stderr_text
    r = d.cli("pull", f"{plain.host}/x/seed:1", "--platform", "linux/s390x", check=False)
    assert r.returncode != 0 and "platform" in r.stderr_text, r.stderr_text


def test_oci_index_uncompressed_platform_and_inspect(env):
    import docker
    d, plain = env["d"], env["plain"]
    seeded = seed_image(plain.url, "x/oci", "multi", env["images_dir"] / "busybox.tar",
                        gzip_layers=False, oci=True, index=True)
    ref = f"{plain.host}/x/oci:multi"
    out = lines(d.out("pull", ref))
    assert f"Digest: {seeded['index']}" in out
    assert d.inspect(ref)["Id"] == env["busybox_id"]
    r = d.cli("pull", "--platform", "linux/riscv64", ref, check=False)
    assert r.returncode != 0
    assert "no matching manifest for linux/riscv64 in the manifest list entries" in \
        r.stderr_text
    d.cli("pull", "--platform", "linux/arm64", ref)
    d.cli("pull", f"{plain.host}/x/oci@{seeded['index']}")
    client = docker.DockerClient(base_url=d.host, timeout=60)
    try:
        data = client.images.get_registry_data(ref)
        assert data.id == seeded["index"]
        assert {(p["os"], p["architecture"]) for p in data.attrs["Platforms"]} == \
            {("linux", "arm64"), ("linux", "amd64")}
        assert data.attrs["Descriptor"]["mediaType"] == \
            "application/vnd.oci.image.index.v1+json"
        found = client.images.search(f"{plain.host}/x/")
        assert {f"{plain.host}/x/oci", f"{plain.host}/x/seed"} <= {e["name"] for e in found}
        assert all(e["star_count"] == 0 and e["is_official"] is False for e in found)
    finally:
        client.close()


def test_basic_auth_login_push_pull(env):
    d, basic = env["d"], env["basic"]
    d.cli("pull", f"{env['plain'].host}/x/seed:1")
    target = f"{basic.host}/team/busybox:v1"
    d.cli("tag", f"{env['plain'].host}/x/seed:1", target)
    r = d.cli("push", target, check=False)
    assert r.returncode != 0
    r = d.cli("login", "-u", USER, "--password-stdin", basic.host, input="wrong", check=False)
    assert r.returncode != 0 and "401 Unauthorized" in r.stderr_text, r.stderr_text
    out = d.out("login", "-u", USER, "--password-stdin", basic.host, input=PASSWORD)
    assert "Login Succeeded" in out
    out = lines(d.out("push", target))
    assert "Pushed" in out and "v1: digest: sha256:" in out, out
    d.cli("rmi", target)
    d.cli("pull", target)
    assert d.inspect(target)["Id"] == env["busybox_id"]
    assert PASSWORD not in d.log_path.read_text(errors="replace")
    d.cli("logout", basic.host)
    d.cli("rmi", target)
    r = d.cli("pull", target, check=False)
    assert r.returncode != 0


def test_tls_registry_with_ca_and_client_cert(env):
    d, secure = env["d"], env["secure"]
    d.cli("pull", f"{env['plain'].host}/x/seed:1")
    target = f"{secure.host}/tls/busybox:1"
    d.cli("tag", f"{env['plain'].host}/x/seed:1", target)
    assert "1: digest: sha256:" in d.out("push", target)
    d.cli("rmi", target)
    d.cli("pull", target)
    assert d.inspect(target)["Id"] == env["busybox_id"]


def test_token_auth(env):
    import docker
    d, token = env["d"], env["token"]
    d.cli("pull", f"{env['plain'].host}/x/seed:1")
    target = f"{token.host}/tok/busybox:1"
    d.cli("tag", f"{env['plain'].host}/x/seed:1", target)
    r = d.cli("login", "-u", USER, "--password-stdin", token.host, input="bad", check=False)
    assert r.returncode != 0 and "401" in r.stderr_text, r.stderr_text
    assert "Login Succeeded" in d.out("login", "-u", USER, "--password-stdin", token.host,
                                      input=PASSWORD)
    client = docker.DockerClient(base_url=d.host, timeout=60)
    try:
        creds = {"username": USER, "password": PASSWORD}
        events = list(client.api.push(f"{token.host}/tok/busybox", tag="1", stream=True,
                                      decode=True, auth_config=creds))
        assert not [e for e in events if "error" in e], events
        aux = [e["aux"] for e in events if "aux" in e]
        assert aux and aux[0]["Tag"] == "1" and aux[0]["Digest"].startswith("sha256:")
        client.images.remove(target)
        img = client.images.pull(f"{token.host}/tok/busybox", tag="1", auth_config=creds)
        assert img.id == env["busybox_id"]
    finally:
        client.close()
    assert any("scope=repository" in p for p in env["tokens"].requests)


@pytest.mark.parametrize("mode", ["truncate", "corrupt", "reset", "500"])
def test_faulty_registry_leaves_nothing(env, mode):
    d, plain = env["d"], env["plain"]
    seeded = env.get("layered") or seed_image(plain.url, "x/layered", "1",
                                              env["images_dir"] / "layered.tar",
                                              gzip_layers=False)
    env["layered"] = seeded
    proxy = FaultProxy(plain.url)
    try:
        # the busybox layer is already here; the two small layers are not
        target = seeded["layers"].split(",")[-1]
        proxy.mode = mode
        proxy.spoil = {target}  # type: ignore[attr-defined]
        ref = f"{proxy.host}/x/layered:1"
        before = tree_snapshot(d.data_root)
        r = d.cli("pull", ref, check=False, timeout=90)
        assert r.returncode != 0, r.stdout_text
        msg = r.stderr_text.lower()
        assert any(w in msg for w in ("unexpected eof", "verification failed", "reset",
                                      "disconnected", "unexpected http status: 500")), \
            r.stderr_text
        assert d.cli("image", "inspect", ref, check=False).returncode != 0
        assert_clean(d, before)
        proxy.mode = None
        out = lines(d.out("pull", ref))
        assert "Status: Downloaded newer image" in out
        assert "dir/c.txt" in d.out("run", "--rm", ref)
        d.cli("rmi", ref)
        assert_clean(d, before)
    finally:
        proxy.close()


def test_registry_mirror_serves_docker_hub_names(env):
    """A docker.io name is pulled from --registry-mirror first (here it has the image,
    so Docker Hub is never contacted)."""
    plain = env["plain"]
    seed_image(plain.url, "library/mirrored", "1", env["images_dir"] / "busybox.tar")
    base = Path(tempfile.mkdtemp(prefix="pdmir-", dir="/tmp"))
    d = make_daemon(base, ["--registry-mirror", f"http://{plain.host}"])
    try:
        d.start()
        out = lines(d.out("pull", "mirrored:1"))
        assert "Status: Downloaded newer image for mirrored:1" in out, out
        assert d.inspect("mirrored:1")["Id"] == env["busybox_id"]
        mirrors = d.out("info", "--format", "{{json .RegistryConfig.Mirrors}}")
        assert f"http://{plain.host}/" in mirrors
    finally:
        cleanup_daemon(d)
        shutil.rmtree(base, ignore_errors=True)


def test_zstd_layers(env):
    pytest.importorskip("zstandard")
    plain, d = env["plain"], env["d"]
    seed_image(plain.url, "x/zstd", "1", env["images_dir"] / "layered.tar", zstd=True)
    ref = f"{plain.host}/x/zstd:1"
    out = lines(d.out("pull", ref))
    assert f"Status: Downloaded newer image for {ref}" in out
    assert d.out("run", "--rm", ref) == "/data/dir/c.txt\n/data/keep.txt\n"
    d.cli("rmi", ref)
