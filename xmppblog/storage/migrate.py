# SPDX-License-Identifier: AGPL-3.0-or-later
"""Run Alembic migrations programmatically (storage layer)."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from .engine import prepare_sqlite_path

log = logging.getLogger(__name__)


def script_location() -> str:
    try:
        import xmppblog.migrations as pkg
        return str(Path(pkg.__file__).parent)
    except ImportError:  # a source checkout that was not pip-installed
        return str(Path(__file__).resolve().parents[2] / "migrations")


def alembic_config(url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", script_location())
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def _upgrade(url: str) -> None:
    prepare_sqlite_path(url)
    command.upgrade(alembic_config(url), "head")


async def current_revision(url: str) -> str | None:
    engine = create_async_engine(url, poolclass=NullPool)
    try:
        async with engine.connect() as conn:
            return await conn.run_sync(lambda c: MigrationContext.configure(c).get_current_revision())
    finally:
        await engine.dispose()


def head_revision(url: str) -> str | None:
    return ScriptDirectory.from_config(alembic_config(url)).get_current_head()


def known_revisions(url: str) -> set[str]:
    """Every revision this version's migrations know (a database at another one is from a newer xmppblog)."""
    return {s.revision for s in ScriptDirectory.from_config(alembic_config(url)).walk_revisions()}


#: the PostgreSQL advisory lock held while migrating: workers of a cluster starting together
#: migrate one at a time (the first applies the revisions, the others find nothing to do)
MIGRATION_LOCK = 0x786D7070626C6F67 & 0x7FFFFFFFFFFFFFFF  # "xmppblog"


async def upgrade(url: str) -> None:
    """Apply pending migrations to `url` (run in a thread: Alembic's env starts its own loop).
    On PostgreSQL, under an advisory lock: one process migrates, the others wait for it."""
    if not url.startswith("postgresql"):
        await _upgrade_logged(url)
        return
    engine = create_async_engine(url, poolclass=NullPool)
    try:
        async with engine.connect() as conn:
            waited = not (await conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": MIGRATION_LOCK})).scalar()
            if waited:
                log.info("database: another process is migrating; waiting for it")
                await conn.execute(text("SELECT pg_advisory_lock(:k)"), {"k": MIGRATION_LOCK})
            try:
                await _upgrade_logged(url)
            finally:
                await conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": MIGRATION_LOCK})
    finally:
        await engine.dispose()


async def _upgrade_logged(url: str) -> None:
    before = await current_revision(url) if not _is_new_sqlite(url) else None
    await asyncio.to_thread(_upgrade, url)
    after = await current_revision(url)
    if before != after:
        log.info("database migrated: %s -> %s", before or "empty", after)


def _is_new_sqlite(url: str) -> bool:
    from sqlalchemy.engine import make_url
    u = make_url(url)
    return u.get_backend_name() == "sqlite" and bool(u.database) and not Path(u.database or "").exists()
