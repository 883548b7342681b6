"""SQLite backend: one file in the data directory, WAL, synchronous=FULL.

Write transactions start with ``BEGIN IMMEDIATE``, which takes the database's write lock up
front: two writers (threads here, or other processes on the same file) never interleave, so a
step is finished exactly once. One connection is shared by this object's threads behind a lock;
other processes wait on the file lock (``busy_timeout``).
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path

from sigreward.store.base import StoreUnavailable
from sigreward.store.sql import SCHEMA, SqlTransaction

BUSY_TIMEOUT_MS = 30_000


class SqliteStore:
    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.RLock()
        # isolation_level=None: the module opens no transactions; we issue BEGIN ourselves.
        self._connection = sqlite3.connect(
            str(self.path), isolation_level=None, check_same_thread=False
        )
        self._connection.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        self._connection.execute("PRAGMA journal_mode = WAL")
        self._connection.execute("PRAGMA synchronous = FULL")
        with self.write() as tx:
            for statement in SCHEMA:
                tx._exec(statement)

    @contextmanager
    def _transaction(self, begin: str) -> Iterator[SqlTransaction]:
        with self._lock:
            if self._connection is None:
                raise RuntimeError("store is closed")
            self._connection.execute(begin)
            try:
                yield SqlTransaction(self._connection)
            except BaseException:
                self._connection.execute("ROLLBACK")
                raise
            self._connection.execute("COMMIT")

    def write(self) -> AbstractContextManager[SqlTransaction]:
        return self._transaction("BEGIN IMMEDIATE")

    def read(self) -> AbstractContextManager[SqlTransaction]:
        return self._transaction("BEGIN DEFERRED")

    def ping(self) -> None:
        with self._lock:
            if self._connection is None:
                raise StoreUnavailable("the SQLite store is closed")
            try:
                self._connection.execute("SELECT 1").fetchone()
            except sqlite3.Error as exc:
                raise StoreUnavailable(f"the SQLite store does not answer: {exc}") from exc

    def close(self) -> None:
        with self._lock:
            if self._connection is not None:
                self._connection.close()
                self._connection = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"SqliteStore({str(self.path)!r})"
