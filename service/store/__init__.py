"""Run storage behind one narrow interface: SQLite (one file) or PostgreSQL (shared)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sigreward.store.base import RunRecord, StepRecord, Store, StoreUnavailable, Transaction
from sigreward.store.postgres import PostgresStore
from sigreward.store.sqlite import SqliteStore

SQLITE_FILENAME = "sigreward.sqlite3"


def make_store(source: Any, database_url: str | None = None) -> Store:
    """The configured store: PostgreSQL when a database URL is set, else SQLite in data_dir.

    ``source`` is either a ``Settings`` (its ``data_dir`` and ``database_url`` are used) or a
    data directory, with ``database_url`` given separately.
    """
    if hasattr(source, "data_dir"):
        data_dir, database_url = Path(source.data_dir), database_url or source.database_url
    else:
        data_dir = Path(source)
    if database_url:
        return PostgresStore(database_url)
    return SqliteStore(data_dir / SQLITE_FILENAME)


__all__ = [
    "PostgresStore",
    "RunRecord",
    "SQLITE_FILENAME",
    "SqliteStore",
    "StepRecord",
    "Store",
    "StoreUnavailable",
    "Transaction",
    "make_store",
]
