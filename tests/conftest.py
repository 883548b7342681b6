"""Fixtures shared by every test package."""

# pg_schema_url: a fresh PostgreSQL schema per test, as a --database-url for servers.
pytest_plugins = ["tests.support.postgres"]
