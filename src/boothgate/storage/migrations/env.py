"""Alembic environment. The app passes its own connection (see Database.migrate); the `alembic`
command line works too, with the URL from BOOTHGATE_DATABASE_URL or the default SQLite file."""

from __future__ import annotations

import asyncio

from alembic import context
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine

from boothgate.storage.models import Base

config = context.config
target_metadata = Base.metadata


def run_with(connection: Connection) -> None:
    context.configure(connection=connection, target_metadata=target_metadata, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()


async def run_standalone() -> None:
    url = config.get_main_option("sqlalchemy.url")
    if not url:
        from boothgate.settings import get_settings

        url = get_settings().sqlalchemy_url
    engine = create_async_engine(url)
    async with engine.begin() as conn:
        await conn.run_sync(run_with)
    await engine.dispose()


connection = config.attributes.get("connection")
if connection is not None:
    run_with(connection)
else:
    asyncio.run(run_standalone())
