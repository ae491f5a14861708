"""util/gcpause.gc_paused: the collector is off inside, back on after (also after
an exception), and left off when it was off before."""
from __future__ import annotations

import gc

import pytest

from pydockerd.util.gcpause import gc_paused


def test_paused_inside_and_enabled_after_even_on_error() -> None:
    assert gc.isenabled()
    with gc_paused():
        assert not gc.isenabled()
    assert gc.isenabled()
    with pytest.raises(RuntimeError):
        with gc_paused():
            raise RuntimeError("boom")
    assert gc.isenabled()


def test_a_collector_that_was_off_stays_off() -> None:
    gc.disable()
    try:
        with gc_paused():
            assert not gc.isenabled()
        assert not gc.isenabled()
    finally:
        gc.enable()
