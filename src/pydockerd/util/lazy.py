"""Import a heavy module, or build a service, on first use (keeps daemon start-up
and idle memory small)."""
from __future__ import annotations

import importlib
import importlib.util
import sys
import threading
from types import ModuleType
from typing import Any, Callable, Generic, TypeVar

T = TypeVar("T")


class _Deferred(ModuleType):
    """Stands for a module not imported yet: the first attribute read imports it
    (importlib's per-module lock makes that safe from worker threads, which the
    stdlib LazyLoader of Python 3.11 is not) and copies its names here, so that
    later reads (tar members in a loop, say) are plain attribute reads."""

    def __getattr__(self, attr: str) -> Any:
        module = importlib.import_module(self.__name__)
        self.__dict__.update(module.__dict__)
        return getattr(module, attr)


def lazy_import(name: str) -> ModuleType:
    """The module `name`, loaded only when one of its attributes is first read."""
    if name in sys.modules:
        return sys.modules[name]
    if importlib.util.find_spec(name) is None:
        raise ImportError(f"no module named {name!r}")
    return _Deferred(name)


class BuiltOnce(Generic[T]):
    """A service built by the first call (which imports its modules), from the event
    loop or a worker thread: built once, under a lock, then returned as is."""

    def __init__(self, build: Callable[[], T]) -> None:
        self._build = build
        self._value: T | None = None
        self._lock = threading.Lock()

    def __call__(self) -> T:
        value = self._value
        if value is None:
            with self._lock:
                if self._value is None:
                    self._value = self._build()
                value = self._value
        return value
