# SPDX-License-Identifier: AGPL-3.0-or-later
"""Engines and dialect differences (storage layer).

Everything that differs between SQLite and PostgreSQL lives here, named:
SQLite gets WAL, foreign keys and a busy timeout on every connection.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine

log = logging.getLogger(__name__)


def is_sqlite(url: str) -> bool:
    return make_url(url).get_backend_name() == "sqlite"


def prepare_sqlite_path(url: str) -> None:
    """Create the directory of an SQLite database file, so first start just works."""
    u = make_url(url)
    if is_sqlite(url) and u.database and u.database != ":memory:":
        Path(os.path.dirname(os.path.abspath(u.database))).mkdir(parents=True, exist_ok=True)


def create_engine(url: str, synchronous: str = "NORMAL") -> AsyncEngine:
    """An async engine for `url`.

    Args:
        url: `sqlite+aiosqlite:///path` or `postgresql+asyncpg://...`.
        synchronous: SQLite `synchronous` pragma; NORMAL survives a process
            crash in WAL mode, FULL also a power loss (THREATS.md fact 9).
    """
    if is_sqlite(url):
        prepare_sqlite_path(url)
        engine = create_async_engine(url, connect_args={"timeout": 30})

        @event.listens_for(engine.sync_engine, "connect")
        def _pragmas(dbapi_conn, _record):  # type: ignore[no-untyped-def]
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute(f"PRAGMA synchronous={synchronous}")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.close()

        return engine
    return create_async_engine(url, pool_pre_ping=True)


def sessionmaker(engine: AsyncEngine) -> async_sessionmaker:
    return async_sessionmaker(engine, expire_on_commit=False)
