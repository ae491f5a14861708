"""bench/run_bench.py: a failing floor server costs its samples, not the bench run."""
from __future__ import annotations

import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
import run_bench  # noqa: E402


class _DeadFloor:
    """A floor server whose socket does not answer (it died)."""

    def __init__(self, kind: str) -> None:
        self.sock = "/nonexistent/pydockerd-floor.sock"

    def close(self) -> None:
        pass


def test_a_floor_server_failure_is_recorded_as_no_floor(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(run_bench, "FloorServer", _DeadFloor)
    engines = [SimpleNamespace(name=n, api_get=lambda path: 0.001)
               for n in ("pydockerd", "dockerd")]
    bench = run_bench.Bench(engines, runs=3, containers=0, concurrency=1)  # type: ignore[arg-type]
    samples, note = bench.api_with_floor("/containers/json?all=1")
    assert samples == {"pydockerd": [0.001] * 3, "dockerd": [0.001] * 3}
    assert note == ""
