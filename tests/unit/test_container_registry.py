"""The registry persists first and changes memory only after, the restart policy
decision, and the task owner that cancels background tasks."""
from __future__ import annotations

import asyncio
import contextlib
import json
from typing import Any, Iterator

import pytest

from pydockerd.containers.model import Container
from pydockerd.containers.registry import ContainerRegistry
from pydockerd.containers.restart import Backoff, restart_at_daemon_start, wants_restart
from pydockerd.errors import Conflict, NotFound
from pydockerd.events import EventBus
from pydockerd.store import Store
from pydockerd.util.tasks import TaskOwner


class FlakyStore:
    """A store whose writes fail on demand (a full disk)."""

    def __init__(self) -> None:
        self.docs: dict[tuple[str, str], dict[str, Any]] = {}
        self.fail = False

    def put(self, kind: str, id: str, data: dict[str, Any]) -> None:
        if self.fail:
            raise OSError(28, "No space left on device")
        self.docs[(kind, id)] = data

    def put_json(self, kind: str, id: str, doc: str) -> None:
        self.put(kind, id, json.loads(doc))

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        yield

    def delete(self, kind: str, id: str) -> None:
        if self.fail:
            raise OSError(28, "No space left on device")
        self.docs.pop((kind, id), None)


def container(cid: str = "a" * 64, name: str = "web") -> Container:
    return Container(id=cid, name=name, created="2024-01-01T00:00:00Z", image="busybox",
                     image_id="sha256:" + "b" * 64, config={}, host_config={})


def registry(store: Any = None) -> ContainerRegistry:
    return ContainerRegistry(store or FlakyStore(), EventBus())


def test_add_and_lookup_by_id_name_and_prefix() -> None:
    r = registry()
    c = container()
    r.add(c)
    assert r.get(c.id) is c and r.get("web") is c and r.get("/web") is c and r.get("aaaa") is c
    with pytest.raises(NotFound):
        r.get("nope")
    with pytest.raises(Conflict, match='name "/web" is already in use'):
        r.add(container("c" * 64, "web"))


def test_a_failed_write_changes_nothing_in_memory() -> None:
    store = FlakyStore()
    r = registry(store)
    c = container()
    r.add(c)
    store.fail = True
    running = c.state.started(10, 11)
    with pytest.raises(OSError):
        r.commit(c, state=running, restart_count=3)
    assert c.state.status == "created" and c.restart_count == 0
    with pytest.raises(OSError):
        r.rename(c, "other")
    assert c.name == "web" and r.get("web") is c and r.owner_of_name("other") is None
    with pytest.raises(OSError):
        r.remove(c)
    assert r.find(c.id) is c
    with pytest.raises(OSError):
        r.add(container("d" * 64, "new"))
    assert r.owner_of_name("new") is None


def test_commit_writes_then_applies() -> None:
    store = FlakyStore()
    r = registry(store)
    c = container()
    r.add(c)
    r.commit(c, state=c.state.started(10, 11))
    assert c.state.status == "running"
    assert store.docs[("container", c.id)]["state"]["status"] == "running"


def test_remove_takes_the_exec_records(tmp_path: Any) -> None:
    store = Store(str(tmp_path / "db"))
    try:
        r = registry(store)
        c = container()
        r.add(c)
        store.put("exec", "e1", {"id": "e1", "container_id": c.id})
        r.commit(c, exec_ids=["e1"])
        r.remove(c)
        assert store.all("exec") == {} and store.all("container") == {}
        assert r.find(c.id) is None and r.owner_of_name("web") is None
    finally:
        store.close()


@pytest.mark.parametrize("policy,code,count,manual,expect", [
    ({"Name": "no"}, 1, 0, False, False),
    ({"Name": "always"}, 0, 9, False, True),
    ({"Name": "always"}, 0, 0, True, False),
    ({"Name": "unless-stopped"}, 0, 0, False, True),
    ({"Name": "unless-stopped"}, 0, 0, True, False),
    ({"Name": "on-failure"}, 0, 0, False, False),
    ({"Name": "on-failure"}, 1, 50, False, True),
    ({"Name": "on-failure", "MaximumRetryCount": 2}, 1, 1, False, True),
    ({"Name": "on-failure", "MaximumRetryCount": 2}, 1, 2, False, False),
    ({"Name": "on-failure", "MaximumRetryCount": 2}, 1, 0, True, False),
])
def test_restart_after_exit(policy: dict[str, Any], code: int, count: int, manual: bool,
                            expect: bool) -> None:
    assert wants_restart(policy, code, count, manual) is expect


@pytest.mark.parametrize("policy,code,count,manual,started,expect", [
    ({"Name": "always"}, 0, 0, True, True, True),        # always: even after docker stop
    ({"Name": "always"}, 0, 0, False, False, False),     # never started: stays created
    ({"Name": "unless-stopped"}, 137, 0, True, True, False),
    ({"Name": "unless-stopped"}, 137, 0, False, True, True),
    ({"Name": "on-failure", "MaximumRetryCount": 2}, 137, 1, False, True, True),
    ({"Name": "on-failure", "MaximumRetryCount": 2}, 1, 2, False, True, False),
    ({"Name": "on-failure"}, 0, 0, False, True, False),
    ({"Name": "no"}, 1, 0, False, True, False),
])
def test_restart_at_daemon_start(policy: dict[str, Any], code: int, count: int, manual: bool,
                                 started: bool, expect: bool) -> None:
    assert restart_at_daemon_start(policy, code, count, manual, started) is expect


def test_backoff_doubles_and_resets() -> None:
    b = Backoff()
    assert [b.next(0.5) for _ in range(4)] == [0.1, 0.2, 0.4, 0.8]
    assert b.next(30.0) == 0.1


def test_task_owner_cancels_and_awaits() -> None:
    async def main() -> None:
        owner = TaskOwner("test")
        cancelled = asyncio.Event()

        async def forever() -> None:
            try:
                await asyncio.sleep(3600)
            finally:
                cancelled.set()
        owner.spawn(forever())
        owner.spawn(asyncio.sleep(0))
        await asyncio.sleep(0.01)
        assert len(owner) == 1
        await owner.close()
        assert cancelled.is_set() and len(owner) == 0
        with pytest.raises(RuntimeError):
            owner.spawn(asyncio.sleep(0))
    asyncio.run(main())


def test_to_json_is_to_dict_and_round_trips() -> None:
    """The registry writes to_json() (msgspec): the same document as to_dict(), one that
    from_dict() reads back whole, nested records and non-ASCII text included."""
    from pydockerd.containers.model import BindMount, Endpoint, Link, VolumeMount
    from pydockerd.containers.state import Health, State
    from pydockerd.network.portmap import PortMapping
    c = Container(id="a" * 64, name="wéb", created="2024-01-01T00:00:00Z", image="busybox",
                  image_id="sha256:" + "b" * 64,
                  config={"Cmd": ["sh", "-c", "echo ☃"], "Labels": {"k": "v"}, "Tty": True},
                  host_config={"Binds": None, "Memory": 1 << 20, "NanoCpus": 0.5},
                  state=State(status="running", pid=42, health=Health(
                      "healthy", 0, ({"ExitCode": 0, "Output": "ok"},))),
                  endpoints=[Endpoint("bridge", "n" * 64, "e" * 64, "10.0.0.2", 24,
                                      "10.0.0.1", "02:42:0a:00:00:02")],
                  volumes=[VolumeMount("v", "/data", "/var/lib/v/_data")],
                  ports=[PortMapping("tcp", 80, "0.0.0.0", 8080, "10.0.0.2")],
                  links=[Link("db", "d" * 64, "db")],
                  inherited_binds=[BindMount("/src", "/dst")], exec_ids=["x"])
    assert json.loads(c.to_json()) == json.loads(json.dumps(c.to_dict()))
    assert Container.from_dict(json.loads(c.to_json())) == c


def test_a_generated_name_taken_meanwhile_is_generated_again() -> None:
    """Two creates without --name may draw the same random name while their rw layers
    are made: the second gets another name instead of a Conflict (dockerd retries)."""
    r = registry()
    r.add(container("a" * 64, "epic_archimedes"))
    names = iter(["epic_archimedes", "bold_turing"])
    late = container("c" * 64, "epic_archimedes")
    r.add(late, rename=lambda: next(names))
    assert late.name == "bold_turing" and r.get("bold_turing") is late
    with pytest.raises(Conflict):              # a name the client asked for is not changed
        r.add(container("d" * 64, "epic_archimedes"))


def test_the_running_count_follows_every_state_change_and_a_reload() -> None:
    """runtime/mountns.py asks it on each create and runc verb: kept, not counted."""
    store = FlakyStore()
    r = registry(store)
    a, b = container("a" * 64, "a"), container("b" * 64, "b")
    r.add(a)
    r.add(b)
    assert r.running_count() == 0
    r.commit_fact(a, state=a.state.started(10, 11))                       # start
    r.commit_fact(b, state=b.state.started(20, 21))
    assert r.running_count() == 2
    r.commit(a, state=a.state.paused(a.id))                               # paused: runs
    assert r.running_count() == 2
    r.commit(a, state=a.state.unpaused(a.id))
    r.commit_fact(b, state=b.state.exited(137))                           # stop / die
    assert r.running_count() == 1
    r.commit(b, state=b.state.restarting())                               # restart policy
    assert r.running_count() == 1
    with pytest.raises(OSError):                # a failed write changes nothing
        store.fail = True
        r.commit(b, state=b.state.started(30, 31))
    store.fail = False
    assert r.running_count() == 1
    r.commit_fact(b, state=b.state.started(30, 31))
    assert r.running_count() == 2
    # a daemon restart: the records reloaded, the running ones counted once
    reloaded = registry(store)
    for (kind, _), doc in store.docs.items():
        reloaded.adopt(Container.from_dict(doc))
        reloaded.adopt(Container.from_dict(doc))                          # idempotent
    assert reloaded.running_count() == 2
    r.commit_fact(a, state=a.state.exited(0))
    r.commit_fact(a, state=a.state.removing(a.name))
    r.remove(a)                                                           # rm
    assert r.running_count() == 1
    r.forget(b)                                                           # rm -f (forgotten)
    assert r.running_count() == 0
    assert sum(c.state.running for c in r.all()) == r.running_count()


def test_a_fact_not_written_on_a_full_disk_still_counts() -> None:
    from pydockerd.errors import NoSpace

    class FullStore(FlakyStore):
        def put(self, kind: str, id: str, data: dict[str, Any]) -> None:
            if self.fail:
                raise NoSpace("no space left on device")
            super().put(kind, id, data)
    store = FullStore()
    r = registry(store)
    c = container()
    r.add(c)
    store.fail = True
    r.commit_fact(c, state=c.state.started(10, 11))
    assert c.state.running and r.running_count() == 1
    r.commit_fact(c, state=c.state.exited(1))
    assert r.running_count() == 0


def _walk(r: ContainerRegistry) -> dict[str, int]:
    """The counts by status the slow way: a walk over every record."""
    from pydockerd.containers.state import STATUSES
    counts = dict.fromkeys(STATUSES, 0)
    for c in r.all():
        counts[c.state.status] += 1
    return counts


def test_the_counts_by_status_equal_a_walk_after_random_transitions() -> None:
    """docker info and the metrics read the kept counts: after thousands of random
    transitions (failed writes, facts on a full disk, reloads, removals, stale
    copies included) they equal a walk over the records."""
    import random
    from pydockerd.errors import NoSpace

    class FullStore(FlakyStore):
        def __init__(self) -> None:
            super().__init__()
            self.full = False

        def put(self, kind: str, id: str, data: dict[str, Any]) -> None:
            if self.full:
                raise NoSpace("no space left on device")
            super().put(kind, id, data)

    rng = random.Random(10)
    store = FullStore()
    r = registry(store)
    made = 0

    def step(c: Container) -> None:
        s = c.state
        moves: dict[str, list[Any]] = {
            "created": [lambda: s.started(made, made + 1),
                        lambda: s.start_failed("OCI runtime create failed", 127),
                        lambda: s.removing(c.name)],
            "running": [lambda: s.paused(c.id), lambda: s.exited(rng.choice([0, 1, 137]))],
            "paused": [lambda: s.unpaused(c.id), lambda: s.exited(137)],
            "exited": [lambda: s.started(made, made + 1), s.restarting,
                       lambda: s.removing(c.name)],
            "restarting": [lambda: s.started(made, made + 1), s.restart_cancelled,
                           lambda: s.exited(1)],
            "removing": [lambda: s.dead("device busy")],
            "dead": [lambda: s.removing(c.name)],
        }
        new = rng.choice(moves[s.status])()
        how = rng.random()
        if how < 0.1:                           # a write that fails: nothing changes
            store.fail = True
            with pytest.raises(OSError):
                r.commit(c, state=new)
            store.fail = False
        elif how < 0.2:                         # a fact on a full disk: memory follows
            store.full = True
            r.commit_fact(c, state=new)
            store.full = False
        else:
            r.commit(c, state=new)

    for _ in range(4000):
        live = r.all()
        roll = rng.random()
        if roll < 0.1 or not live:
            made += 1
            r.add(container(f"{made:064x}", f"c{made}"))
        elif roll < 0.13:                       # rm: only a stopped one goes
            c = rng.choice(live)
            if c.state.status in ("removing", "dead"):
                r.remove(c)
        elif roll < 0.15:                       # a create that failed before it was stored
            r.forget(rng.choice(live))
        elif roll < 0.17:                       # a stale copy (not the registered record)
            c = rng.choice(live)
            stale = Container.from_dict(c.to_dict())
            if stale.state.status == "running":
                r.commit_fact(stale, state=stale.state.exited(0))
        elif roll < 0.18:                       # a daemon restart: every record reloaded
            r = registry(store)
            for (kind, _), doc in list(store.docs.items()):
                if kind == "container":
                    r.adopt(Container.from_dict(doc))
        elif roll < 0.19:
            c = rng.choice(live)
            r.rename(c, c.name + "x")
        else:
            step(rng.choice(live))
        walk = _walk(r)
        assert r.state_counts() == walk
        assert r.running_count() == walk["running"] + walk["paused"]
    assert sum(r.state_counts().values()) == len(r.all()) > 10
    assert all(n > 0 for n in r.state_counts().values())     # every status was reached
