"""SQLite metadata store (WAL): one table of JSON documents per kind of object.

Every service keeps its models here (containers, images, tags, networks,
IPAM leases, volumes, exec instances). A document is written in one
statement, so each change is atomic; `transaction()` groups several.

A full disk (see docs/ARCHITECTURE.md, "Full disk"):
- the database is opened in exclusive locking mode, so WAL needs no `-shm`
  file and opening and reading never need free space (the daemon starts and
  answers reads on a full disk); one process owns the database;
- `pydockerd.db.reserve`, a preallocated file of RESERVE_BYTES beside the
  database, is given back to the filesystem a chunk (1 MiB) at a time when a
  write fails with SQLITE_FULL, and the write is retried while chunks last.
  Updates and deletions may draw on it; a document that does not exist yet is
  a creation and fails at once (the reserve is for recording removals and
  state changes), and so does a transaction that writes one. A transaction is
  rolled back whole by SQLite on SQLITE_FULL, so it cannot be retried: before
  its COMMIT a chunk is given back if the disk is nearly full. The reserve is
  made whole again when the disk has room;
- rewriting a document unchanged writes nothing;
- what cannot be written raises `NoSpace` (errors.py), never a bare sqlite3
  error, and leaves the database as it was.
"""
from __future__ import annotations

import contextlib
import json
import logging
import os
import sqlite3
import threading
import time
from typing import Any, Callable, Iterator, TypeVar

from .errors import NoSpace, no_space
from .util.reserve import MIB, SpaceReserve, free_bytes

log = logging.getLogger("pydockerd.store")

SCHEMA_VERSION = 1
RESERVE_BYTES = 8 * MIB
CACHE_KIB = 256               # sqlite's page cache (its default: 2000 KiB)
_RESTORE_EVERY = 2.0          # seconds between attempts to make the reserve again
_LOW_WATER = 256 * 1024       # free bytes under which a transaction first draws on the reserve

_MIGRATIONS = {
    1: """
    CREATE TABLE IF NOT EXISTS objects (
        kind TEXT NOT NULL,
        id   TEXT NOT NULL,
        data TEXT NOT NULL,
        PRIMARY KEY (kind, id)
    );
    """,
}

T = TypeVar("T")


class Store:
    def __init__(self, path: str, reserve_bytes: int = RESERVE_BYTES) -> None:
        self._lock = threading.RLock()
        self._depth = 0
        self._tx_creates = False      # the open transaction writes a new document
        self._dir = os.path.dirname(os.path.abspath(path))
        self._reserve = SpaceReserve(path + ".reserve", reserve_bytes)
        self._next_restore = 0.0
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        # exclusive before the first access: the WAL index lives in memory, not in a
        # -shm file that a full disk could not hold. One process owns the database.
        self._db.execute("PRAGMA locking_mode=EXCLUSIVE")
        self._write("open the metadata store",
                    lambda: self._db.execute("PRAGMA journal_mode=WAL"))
        self._db.execute("PRAGMA synchronous=NORMAL")
        # sqlite's page cache (2 MB by default) only grew with the pages work touched,
        # never shrinking (issue 10: memory after work); the kernel caches the file too
        self._db.execute(f"PRAGMA cache_size={-CACHE_KIB}")
        self._migrate()
        self._restore_reserve(force=True)

    def _migrate(self) -> None:
        current = self._db.execute("PRAGMA user_version").fetchone()[0]
        for version in range(current + 1, SCHEMA_VERSION + 1):
            with self.transaction():
                for stmt in _MIGRATIONS[version].split(";"):
                    if stmt.strip():
                        self._db.execute(stmt)
                self._db.execute(f"PRAGMA user_version={version}")

    # ---- full disk ----------------------------------------------------------------

    def _write(self, what: str, run: Callable[[], T], use_reserve: bool = True) -> T:
        """Run a write; on a full disk give back reserved space a chunk at a time and
        retry, while the reserve lasts; then NoSpace."""
        with self._lock:
            while True:
                try:
                    result = run()
                    break
                except sqlite3.OperationalError as e:
                    if no_space(e) is None:
                        raise
                    # a failed statement may have rolled back the whole transaction
                    retry = use_reserve and (self._depth == 0 or self._db.in_transaction)
                    if not (retry and self._reserve.release()):
                        raise NoSpace(what) from e
            self._restore_reserve()
            return result

    def _make_room(self) -> None:
        """Before committing (a transaction cannot be retried once SQLite rolled it back
        on SQLITE_FULL): on a disk that is nearly full, give back a chunk first."""
        try:
            if free_bytes(self._dir) < _LOW_WATER:
                self._reserve.release()
        except OSError:
            pass

    def _restore_reserve(self, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now < self._next_restore:
            return
        self._next_restore = now + _RESTORE_EVERY
        if not self._reserve.whole and self._reserve.restore():
            log.info("keeping %d MiB in reserve for a full disk: %s", self._reserve.size // MIB,
                     self._reserve.path)

    def require_space(self, what: str) -> None:
        """For a caller about to create something on the data root: NoSpace while the
        disk is full, i.e. while the reserve is spent and cannot be made whole again."""
        with self._lock:
            self._restore_reserve(force=True)
            try:
                free = free_bytes(self._dir)
            except OSError:
                return
            if not self._reserve.whole or free < self._reserve.headroom:
                raise NoSpace(what)

    # ---- documents ------------------------------------------------------------------

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        with self._lock:
            outer = self._depth == 0
            if outer:
                self._db.execute("BEGIN IMMEDIATE")
                self._tx_creates = False
            self._depth += 1
            try:
                yield
            except BaseException:
                self._depth -= 1
                if outer and self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                raise
            self._depth -= 1
            if outer:
                if not self._tx_creates:      # creations do not draw on the reserve
                    self._make_room()
                try:
                    self._db.execute("COMMIT")
                except sqlite3.OperationalError as e:
                    if self._db.in_transaction:
                        self._db.execute("ROLLBACK")
                    if no_space(e) is None:
                        raise
                    raise NoSpace("commit metadata") from e
                self._restore_reserve()

    def put(self, kind: str, id: str, data: dict[str, Any]) -> None:
        """Write a document. Rewriting it unchanged writes nothing (no space needed);
        an update may draw on the reserve (it records a state change that must not be
        lost), a new document is a creation and fails with NoSpace on a full disk."""
        self.put_json(kind, id, json.dumps(data, separators=(",", ":")))

    def put_json(self, kind: str, id: str, doc: str) -> None:
        """put() of a document already serialised as JSON (by a caller with a faster
        encoder than json.dumps of a dict, e.g. msgspec for dataclasses)."""
        with self._lock:
            row = self._db.execute("SELECT data FROM objects WHERE kind=? AND id=?",
                                   (kind, id)).fetchone()
            if row is not None and row[0] == doc:
                return
            if row is None and self._depth:
                self._tx_creates = True
            self._write(f"write {kind} {id}", lambda: self._db.execute(
                "INSERT OR REPLACE INTO objects(kind, id, data) VALUES (?,?,?)",
                (kind, id, doc)), use_reserve=row is not None)

    def get(self, kind: str, id: str) -> dict[str, Any] | None:
        with self._lock:
            row = self._db.execute("SELECT data FROM objects WHERE kind=? AND id=?",
                                   (kind, id)).fetchone()
        return json.loads(row[0]) if row else None

    def delete(self, kind: str, id: str) -> None:
        self._write(f"delete {kind} {id}", lambda: self._db.execute(
            "DELETE FROM objects WHERE kind=? AND id=?", (kind, id)))

    def all(self, kind: str) -> dict[str, dict[str, Any]]:
        with self._lock:
            rows = self._db.execute("SELECT id, data FROM objects WHERE kind=?", (kind,)).fetchall()
        return {id_: json.loads(data) for id_, data in rows}

    def close(self) -> None:
        with self._lock:
            self._db.close()
