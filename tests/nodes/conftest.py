"""The node tests' fixtures: a throw-away PostgreSQL server (tests/postgres_support.py) and a throw-away S3
server (tests/s3_support.py)."""

import socket
from collections.abc import Iterator

import pytest

from tests.postgres_support import postgres_server, postgres_url  # noqa: F401
from tests.s3_support import s3_server  # noqa: F401


@pytest.fixture
def silent_database() -> Iterator[str]:
    """A port that accepts connections and never says a word (a database that hangs)."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    try:
        yield f"postgresql+asyncpg://postgres@127.0.0.1:{listener.getsockname()[1]}/boothgate"
    finally:
        listener.close()
