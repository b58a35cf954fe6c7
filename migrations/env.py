# SPDX-License-Identifier: AGPL-3.0-or-later
"""Alembic environment for xmppblog.

The URL comes from the Alembic config (`sqlalchemy.url`), set by
`xmppblog.storage.migrate`. Autogenerate (tests only) passes the metadata in
`config.attributes["target_metadata"]`: migration history never imports tables.py.
"""

import asyncio

from alembic import context
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

config = context.config
target_metadata = config.attributes.get("target_metadata")


def _run(connection):
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


async def _online():
    engine = create_async_engine(config.get_main_option("sqlalchemy.url"), poolclass=NullPool)
    try:
        async with engine.connect() as conn:
            await conn.run_sync(_run)
    finally:
        await engine.dispose()


if context.is_offline_mode():
    context.configure(url=config.get_main_option("sqlalchemy.url"), literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()
else:
    asyncio.run(_online())
