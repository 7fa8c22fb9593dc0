"""Shared by the records tests: the throw-away PostgreSQL cluster of tests/postgres_support.py."""

from tests.postgres_support import postgres_url  # noqa: F401  (the fixture)
