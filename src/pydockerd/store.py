"""SQLite metadata store (WAL): one table of JSON documents per kind of object.

Every service keeps its models here (containers, images, tags, networks,
IPAM leases, volumes, exec instances). A document is written in one
statement, so each change is atomic; `transaction()` groups several.
"""
from __future__ import annotations

import contextlib
import json
import sqlite3
import threading
from typing import Any, Iterator

SCHEMA_VERSION = 1

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


class Store:
    def __init__(self, path: str) -> None:
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._lock = threading.RLock()
        self._depth = 0
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._migrate()

    def _migrate(self) -> None:
        current = self._db.execute("PRAGMA user_version").fetchone()[0]
        for version in range(current + 1, SCHEMA_VERSION + 1):
            with self.transaction():
                for stmt in _MIGRATIONS[version].split(";"):
                    if stmt.strip():
                        self._db.execute(stmt)
                self._db.execute(f"PRAGMA user_version={version}")

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        with self._lock:
            outer = self._depth == 0
            if outer:
                self._db.execute("BEGIN IMMEDIATE")
            self._depth += 1
            try:
                yield
            except BaseException:
                self._depth -= 1
                if outer:
                    self._db.execute("ROLLBACK")
                raise
            self._depth -= 1
            if outer:
                self._db.execute("COMMIT")

    def put(self, kind: str, id: str, data: dict[str, Any]) -> None:
        with self._lock:
            self._db.execute("INSERT OR REPLACE INTO objects(kind, id, data) VALUES (?,?,?)",
                             (kind, id, json.dumps(data, separators=(",", ":"))))

    def get(self, kind: str, id: str) -> dict[str, Any] | None:
        with self._lock:
            row = self._db.execute("SELECT data FROM objects WHERE kind=? AND id=?",
                                   (kind, id)).fetchone()
        return json.loads(row[0]) if row else None

    def delete(self, kind: str, id: str) -> None:
        with self._lock:
            self._db.execute("DELETE FROM objects WHERE kind=? AND id=?", (kind, id))

    def all(self, kind: str) -> dict[str, dict[str, Any]]:
        with self._lock:
            rows = self._db.execute("SELECT id, data FROM objects WHERE kind=?", (kind,)).fetchall()
        return {id_: json.loads(data) for id_, data in rows}

    def close(self) -> None:
        with self._lock:
            self._db.close()
