"""The node tests' fixtures: a throw-away PostgreSQL server (tests/postgres_support.py) and a throw-away S3
server (tests/s3_support.py)."""

from tests.postgres_support import postgres_server, postgres_url  # noqa: F401
from tests.s3_support import s3_server  # noqa: F401
