# SPDX-License-Identifier: AGPL-3.0-or-later
"""Alembic: upgrade head on an empty database; tables.py and the migrations agree."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from xmppblog.storage import migrate
from xmppblog.storage.tables import Base


async def test_upgrade_head_matches_tables(db_url):
    await migrate.upgrade(db_url)
    assert await migrate.current_revision(db_url) == migrate.head_revision(db_url)
    await migrate.upgrade(db_url)  # idempotent
    engine = create_async_engine(db_url, poolclass=NullPool)
    try:
        async with engine.connect() as conn:
            diff = await conn.run_sync(
                lambda c: compare_metadata(MigrationContext.configure(c, opts={
                    "compare_type": True,
                    # dialect-specific full-text tables live in storage/search.py, not tables.py
                    "include_name": lambda name, kind, parent: not (name or "").startswith(("search_", "ix_search"))}),
                    Base.metadata))
    finally:
        await engine.dispose()
    assert diff == [], diff
