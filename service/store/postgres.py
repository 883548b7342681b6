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
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Any

import psycopg
from psycopg import sql

from service.store.sql import SCHEMA, SqlTransaction

_SCHEMA_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")
_SCHEMA_LOCK_KEY = 0x5167_5245  # any constant: serialises CREATE TABLE across replicas


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
        self._idle: list[psycopg.Connection[Any]] = []
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
        connection = psycopg.connect(self.url, autocommit=True)
        if self.schema is not None:
            connection.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(self.schema)))
        return connection

    @contextmanager
    def _connection(self) -> Iterator[psycopg.Connection[Any]]:
        with self._lock:
            if self._closed:
                raise RuntimeError("store is closed")
            connection = self._idle.pop() if self._idle else None
        if connection is None or connection.closed:
            connection = self._connect()
        try:
            yield connection
        except BaseException:
            # A broken connection (server restart) must not go back to the pool.
            if connection.broken or connection.closed:
                connection.close()
                raise
            self._give_back(connection)
            raise
        self._give_back(connection)

    def _give_back(self, connection: psycopg.Connection[Any]) -> None:
        with self._lock:
            if not self._closed and len(self._idle) < self._pool_size and not connection.closed:
                self._idle.append(connection)
                return
        connection.close()

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
        for connection in idle:
            connection.close()

    def __repr__(self) -> str:
        return f"PostgresStore(schema={self.schema!r})"
