"""Store fixtures: every runs test runs on a real SQLite file and on real PostgreSQL.

PostgreSQL tests use a fresh schema with a random name, dropped afterwards; they are skipped
(with the reason) when nothing listens on 127.0.0.1:5432.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from sigreward.store import PostgresStore, SqliteStore, Store

DATABASE_URL = os.environ.get(
    "SIGREWARD_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test"
)

StoreFactory = Callable[[], Store]


def _postgres_reachable() -> bool:
    import psycopg

    try:
        with psycopg.connect(DATABASE_URL, connect_timeout=10):
            return True
    except psycopg.OperationalError:
        return False


@pytest.fixture(
    params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)],
)
def store_factory(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StoreFactory]:
    """Opens store objects on one shared database (a file, or a PostgreSQL schema)."""
    opened: list[Store] = []
    if request.param == "sqlite":
        path = tmp_path / "runs.sqlite3"

        def factory() -> Store:
            opened.append(SqliteStore(path))
            return opened[-1]

        yield factory
        for store in opened:
            store.close()
        return

    if not _postgres_reachable():
        pytest.skip(f"PostgreSQL is not reachable at {DATABASE_URL}")
    import psycopg

    schema = "sigreward_test_" + secrets.token_hex(6)

    def pg_factory() -> Store:
        opened.append(PostgresStore(DATABASE_URL, schema=schema))
        return opened[-1]

    try:
        yield pg_factory
    finally:
        for store in opened:
            store.close()
        with psycopg.connect(DATABASE_URL, autocommit=True) as connection:
            connection.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


@pytest.fixture
def store(store_factory: StoreFactory) -> Store:
    return store_factory()
