"""PostgreSQL backend (psycopg 3) for a store shared by several replicas.

Each transaction borrows a connection from a small pool. Writers serialise per run with
``SELECT ... FOR UPDATE`` on the run's row (``Transaction.lock_run`` / ``ensure_run``), so two
replicas never finish one step twice or count one sample twice; READ COMMITTED then shows the
locker everything the previous holder committed. The schema is created on start with
``CREATE TABLE IF NOT EXISTS`` under an advisory lock (concurrent CREATEs of one table race).
``schema`` puts the tables in their own schema (test isolation, several services per database).
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Any

import psycopg
from psycopg import sql

from sigreward.store.base import StoreUnavailable
from sigreward.store.sql import SCHEMA, SqlTransaction

_SCHEMA_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")
_SCHEMA_LOCK_KEY = 0x5167_5245  # any constant: serialises CREATE TABLE across replicas
# Seconds to wait for a new connection: an unreachable database answers 503 after this.
CONNECT_TIMEOUT_S = 5
# A pooled connection idle for longer is checked with SELECT 1 before it is used.
VALIDATE_AFTER_IDLE_S = 1.0


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


class PostgresTransaction(SqlTransaction):
    placeholder = "%s"
    lock_clause = " FOR UPDATE"


class PostgresStore:
    def __init__(self, url: str, schema: str | None = None, pool_size: int = 8) -> None:
        if schema is not None and not _SCHEMA_NAME.match(schema):
            raise ValueError(f"schema: {schema!r} is not a plain SQL identifier")
        self.url = url
        self.schema = schema
        self._pool_size = pool_size
        self._idle: list[tuple[psycopg.Connection[Any], float]] = []  # (connection, idle since)
        self._lock = threading.Lock()
        self._closed = False
        with self._connection() as connection, connection.transaction():
            connection.execute("SELECT pg_advisory_xact_lock(%s)", (_SCHEMA_LOCK_KEY,))
            if schema is not None:
                connection.execute(
                    sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(schema))
                )
            for statement in SCHEMA:
                connection.execute(statement)  # type: ignore[arg-type]

    def _connect(self) -> psycopg.Connection[Any]:
        try:
            connection = psycopg.connect(
                self.url, autocommit=True, connect_timeout=CONNECT_TIMEOUT_S
            )
            if self.schema is not None:
                connection.execute(
                    sql.SQL("SET search_path TO {}").format(sql.Identifier(self.schema))
                )
        except psycopg.OperationalError as exc:
            raise StoreUnavailable(f"cannot connect to PostgreSQL: {_first_line(exc)}") from exc
        return connection

    def _borrow(self, validate: bool = False) -> psycopg.Connection[Any]:
        """A pooled connection that answers, else a new one.

        A connection that sat idle may have died with the server (a restart): after
        VALIDATE_AFTER_IDLE_S it runs a trivial query first and is dropped when that fails,
        so a dead connection never fails a request."""
        while True:
            with self._lock:
                if self._closed:
                    raise RuntimeError("store is closed")
                entry = self._idle.pop() if self._idle else None
            if entry is None:
                return self._connect()
            connection, idle_since = entry
            if connection.closed or connection.broken:
                connection.close()
                continue
            if validate or time.monotonic() - idle_since > VALIDATE_AFTER_IDLE_S:
                try:
                    connection.execute("SELECT 1")
                except psycopg.Error:
                    connection.close()
                    continue
            return connection

    @contextmanager
    def _connection(self, validate: bool = False) -> Iterator[psycopg.Connection[Any]]:
        connection = self._borrow(validate)
        try:
            yield connection
        except (psycopg.OperationalError, psycopg.InterfaceError) as exc:
            # Lost connection, server shutting down or restarting, failover: retryable.
            # A broken connection must not go back to the pool.
            if connection.broken or connection.closed:
                connection.close()
            else:
                self._give_back(connection)
            raise StoreUnavailable(f"PostgreSQL is unavailable: {_first_line(exc)}") from exc
        except BaseException:
            if connection.broken or connection.closed:
                connection.close()
                raise
            self._give_back(connection)
            raise
        self._give_back(connection)

    def _give_back(self, connection: psycopg.Connection[Any]) -> None:
        with self._lock:
            if not self._closed and len(self._idle) < self._pool_size and not connection.closed:
                self._idle.append((connection, time.monotonic()))
                return
        connection.close()

    def ping(self) -> None:
        # A new connection proves the server answers; a pooled one is checked with SELECT 1.
        with self._connection(validate=True):
            pass

    @contextmanager
    def _transaction(self) -> Iterator[PostgresTransaction]:
        with self._connection() as connection, connection.transaction():
            yield PostgresTransaction(connection)

    def write(self) -> AbstractContextManager[PostgresTransaction]:
        return self._transaction()

    def read(self) -> AbstractContextManager[PostgresTransaction]:
        return self._transaction()

    def close(self) -> None:
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, []
        for connection, _ in idle:
            connection.close()

    def __repr__(self) -> str:
        return f"PostgresStore(schema={self.schema!r})"
