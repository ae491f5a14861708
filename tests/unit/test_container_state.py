"""The container state machine: every (state, verb) pair, table-driven."""
from __future__ import annotations

from typing import Any, Callable

import pytest

from pydockerd.containers.state import STATUSES, Health, State
from pydockerd.errors import Conflict, NotModified

CID = "c" * 64
NAME = "web"

OK = "ok"
NOT_RUNNING = (Conflict, f"Container {CID} is not running")
MARKED = (Conflict, "container is marked for removal and cannot be started")
RESTARTING = (Conflict, f"Container {CID} is restarting, wait until the container is running")
IN_PROGRESS = (Conflict, f"removal of container {NAME} is already in progress")


def rm_running(status: str) -> tuple[type, str]:
    return (Conflict, f'cannot remove container "/{NAME}": container is {status}: stop the '
                      "container before removing or force remove")


def bad(verb: str, status: str) -> tuple[type, str]:
    return (Conflict, f"cannot {verb} a container that is {status}")


# verb -> (call, {status: expected}); expected is OK, a new status (transitions),
# a value (checks that answer), or (exception type, exact message)
VERBS: dict[str, tuple[Callable[[State], Any], dict[str, Any]]] = {
    "check_start": (lambda s: s.check_start(), {
        "created": None, "running": (NotModified, "container already started"),
        "paused": (Conflict, "cannot start a paused container, try unpause instead"),
        "restarting": None, "removing": MARKED, "exited": None, "dead": MARKED}),
    "check_kill": (lambda s: s.check_kill(CID), {
        "created": NOT_RUNNING, "running": None, "paused": None, "restarting": NOT_RUNNING,
        "removing": NOT_RUNNING, "exited": NOT_RUNNING, "dead": NOT_RUNNING}),
    "check_pause": (lambda s: s.check_pause(CID), {
        "created": NOT_RUNNING, "running": None,
        "paused": (Conflict, f"Container {CID} is already paused"),
        "restarting": RESTARTING, "removing": NOT_RUNNING, "exited": NOT_RUNNING,
        "dead": NOT_RUNNING}),
    "check_unpause": (lambda s: s.check_unpause(CID), {
        st: None if st == "paused" else (Conflict, f"Container {CID} is not paused")
        for st in STATUSES}),
    "check_exec": (lambda s: s.check_exec(CID), {
        "created": NOT_RUNNING, "running": None,
        "paused": (Conflict, f"Container {CID} is paused, unpause the container before exec"),
        "restarting": RESTARTING, "removing": NOT_RUNNING, "exited": NOT_RUNNING,
        "dead": NOT_RUNNING}),
    "check_remove": (lambda s: s.check_remove(NAME, force=False), {
        "created": None, "running": rm_running("running"), "paused": rm_running("paused"),
        "restarting": rm_running("restarting"), "removing": IN_PROGRESS, "exited": None,
        "dead": None}),
    "check_remove_force": (lambda s: s.check_remove(NAME, force=True), {
        st: IN_PROGRESS if st == "removing" else None for st in STATUSES}),
    "check_update": (lambda s: s.check_update(CID), {
        st: (Conflict, f"Cannot update container {CID}: container is marked for removal and "
                       'cannot be "update"') if st in ("removing", "dead") else None
        for st in STATUSES}),
    "check_attach": (lambda s: s.check_attach(NAME), {
        "created": False, "running": True,
        "paused": (Conflict, f"container {NAME} is paused, unpause the container before "
                             "attach"),
        "restarting": (Conflict, f"container {NAME} is restarting, wait until the "
                                 "container is running"),
        "removing": (Conflict, "You cannot attach to a stopped container, start it first"),
        "exited": False, "dead": (Conflict, "You cannot attach to a stopped container, "
                                            "start it first")}),
    "check_runnable": (lambda s: s.check_runnable(), {
        "created": None, "running": (NotModified, "container already started"),
        "paused": (Conflict, "cannot start a paused container, try unpause instead"),
        "restarting": None, "removing": MARKED, "exited": None, "dead": MARKED}),
    # transitions: the expected value is the new status
    "started": (lambda s: s.started(10, 11).status, {
        "created": "running", "running": (NotModified, "container already started"),
        "paused": (Conflict, "cannot start a paused container, try unpause instead"),
        "restarting": "running", "removing": MARKED, "exited": "running", "dead": MARKED}),
    "start_failed": (lambda s: s.start_failed("boom", 127).status, {
        "created": "created", "running": bad("fail the start of", "running"),
        "paused": bad("fail the start of", "paused"), "restarting": "exited",
        "removing": bad("fail the start of", "removing"), "exited": "exited",
        "dead": bad("fail the start of", "dead")}),
    "exited": (lambda s: s.exited(3).status, {
        st: "exited" if st in ("running", "paused", "restarting")
        else bad("record the exit of", st) for st in STATUSES}),
    "paused": (lambda s: s.paused(CID).status, {
        "created": NOT_RUNNING, "running": "paused",
        "paused": (Conflict, f"Container {CID} is already paused"), "restarting": RESTARTING,
        "removing": NOT_RUNNING, "exited": NOT_RUNNING, "dead": NOT_RUNNING}),
    "unpaused": (lambda s: s.unpaused(CID).status, {
        st: "running" if st == "paused" else (Conflict, f"Container {CID} is not paused")
        for st in STATUSES}),
    "restarting": (lambda s: s.restarting().status, {
        st: "restarting" if st == "exited" else bad("schedule a restart of", st)
        for st in STATUSES}),
    "restart_cancelled": (lambda s: s.restart_cancelled().status, {
        st: "exited" if st == "restarting" else bad("cancel the restart of", st)
        for st in STATUSES}),
    "removing": (lambda s: s.removing(NAME).status, {
        "created": "removing", "running": rm_running("running"),
        "paused": rm_running("paused"), "restarting": rm_running("restarting"),
        "removing": IN_PROGRESS, "exited": "removing", "dead": "removing"}),
    "dead": (lambda s: s.dead("rm failed").status, {
        st: "dead" if st == "removing" else bad("mark dead", st) for st in STATUSES}),
}

CASES = [(verb, status) for verb in VERBS for status in STATUSES]


def test_every_verb_covers_every_status() -> None:
    for verb, (_, table) in VERBS.items():
        assert set(table) == set(STATUSES), verb


@pytest.mark.parametrize("verb,status", CASES, ids=[f"{v}-{s}" for v, s in CASES])
def test_state_verb(verb: str, status: str) -> None:
    call, table = VERBS[verb]
    expected = table[status]
    state = State(status=status, pid=5 if status in ("running", "paused") else 0)
    if isinstance(expected, tuple):
        kind, message = expected
        with pytest.raises(kind) as info:
            call(state)
        assert type(info.value) is kind and info.value.message == message
    else:
        assert call(state) == expected
    assert state.status == status          # State is immutable: transitions return a new one


def test_running_means_a_process_exists() -> None:
    assert {s for s in STATUSES if State(status=s).running} == {"running", "paused"}


def test_started_resets_the_last_exit() -> None:
    s = State(status="exited", exit_code=3, error="x", oom_killed=True).started(10, 11)
    assert (s.pid, s.conmon_pid, s.exit_code, s.error, s.oom_killed) == (10, 11, 0, "", False)
    assert s.started_at != "0001-01-01T00:00:00Z"


def test_exited_clears_the_process() -> None:
    s = State(status="running", pid=10, conmon_pid=11).exited(137, oom=True)
    assert (s.status, s.pid, s.conmon_pid, s.exit_code, s.oom_killed) == \
        ("exited", 0, 0, 137, True)


def test_start_failed_keeps_created_and_records_the_error() -> None:
    s = State().start_failed("exec: not found", 127)
    assert (s.status, s.exit_code, s.error) == ("created", 127, "exec: not found")


def test_state_round_trips_through_its_stored_form() -> None:
    import dataclasses
    s = State(status="running", pid=4, conmon_pid=5,
              health=Health("healthy", 0, ({"ExitCode": 0},)))
    assert State.from_dict(dataclasses.asdict(s)) == s


@pytest.mark.parametrize("start,results,retries,in_start,expect", [
    ("starting", [0], 3, False, ("healthy", 0)),
    ("starting", [1], 3, True, ("starting", 0)),        # failures in the start period
    ("healthy", [1, 1], 3, False, ("healthy", 2)),
    ("healthy", [1, 1, 1], 3, False, ("unhealthy", 3)),
    ("unhealthy", [1, 0], 3, False, ("healthy", 0)),
])
def test_health_rules(start: str, results: list[int], retries: int, in_start: bool,
                      expect: tuple[str, int]) -> None:
    h = Health(start)
    for code in results:
        h = h.probed({"ExitCode": code}, retries, in_start)
    assert (h.status, h.failing_streak) == expect


def test_health_keeps_the_last_five_results() -> None:
    h = Health()
    for i in range(7):
        h = h.probed({"ExitCode": 0, "n": i}, 3, False)
    assert [r["n"] for r in h.log] == [2, 3, 4, 5, 6]
