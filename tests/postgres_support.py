"""The tests' throw-away PostgreSQL server (tests/postgres_server.py, Debian's PostgreSQL); tests that need
one are skipped only where no server binaries exist.

`postgres_url` gives each test a fresh database; `postgres_server` (one per module) gives a server on which
`fresh_database()` makes as many databases as the module's tests want, for the multi-node tests that start
real processes and do not want to pay for initdb each time.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from tests.postgres_server import PostgresServer, pg_bin
from tests.postgres_server import running_postgres as _running

__all__ = ["PostgresServer", "pg_bin", "postgres_server", "postgres_url", "running_postgres"]


@contextmanager
def running_postgres() -> Iterator[PostgresServer]:
    if pg_bin() is None:
        pytest.skip("PostgreSQL server binaries are not installed")
    with _running() as server:
        yield server


@pytest.fixture
def postgres_url() -> Iterator[str]:
    with running_postgres() as server:
        yield server.fresh_database()


@pytest.fixture(scope="module")
def postgres_server() -> Iterator[PostgresServer]:
    with running_postgres() as server:
        yield server
