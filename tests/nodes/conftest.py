"""The node tests' fixtures: a throw-away PostgreSQL server (tests/postgres_support.py)."""

from tests.postgres_support import postgres_server, postgres_url  # noqa: F401
