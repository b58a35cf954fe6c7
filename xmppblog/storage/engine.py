# SPDX-License-Identifier: AGPL-3.0-or-later
"""Engines and dialect differences (storage layer).

Everything that differs between SQLite and PostgreSQL lives here, named:
SQLite gets WAL, foreign keys and a busy timeout on every connection.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sqlite3
import weakref
from pathlib import Path
from typing import Any

import aiosqlite
from sqlalchemy import Table, event
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


class InlineConnection(aiosqlite.Connection):
    """aiosqlite, minus the thread hop per call: SQLite runs on the event loop's thread.

    aiosqlite hands every cursor call to a worker thread and back (~80 round trips
    per post, most of a post's CPU; bench/RESULTS.md). A local SQLite statement
    takes microseconds, so running it inline is cheaper than the hop. The price:
    a statement that waits for SQLite's write lock would block the loop, so every
    unit of work on SQLite holds `SqlUnitOfWork`'s in-process lock (one writer at a
    time, as SQLite allows anyway) and other processes (the CLI) hold it briefly.
    """

    def __await__(self):  # type: ignore[no-untyped-def]
        # Connect inline too: no worker thread is ever started, so none can keep the
        # process alive at exit when a crash skipped `engine.dispose()`.
        return self._connect_inline().__await__()

    async def _connect_inline(self) -> InlineConnection:
        if self._connection is None:
            self._connection = self._connector()
        return self

    async def _execute(self, fn, *args, **kwargs):  # type: ignore[no-untyped-def]
        if not self._running or not self._connection:
            raise ValueError("Connection closed")
        return fn(*args, **kwargs)

    def stop(self) -> None:
        self._running = False
        if self._connection is not None:
            self._connection.close()
            self._connection = None

    async def close(self) -> None:
        self.stop()


def _inline_connector(path: str) -> object:
    async def connect() -> aiosqlite.Connection:
        return await InlineConnection(
            lambda: sqlite3.connect(path, timeout=30, check_same_thread=False),
            iter_chunk_size=64)
    return connect


class TaskLock:
    """An asyncio lock its holding task may take again (a unit of work opened inside another)."""

    def __init__(self) -> None:
        self._lock = asyncio.Lock()
        self._owner: asyncio.Task[object] | None = None
        self._depth = 0

    async def acquire(self) -> None:
        task = asyncio.current_task()
        if task is not None and task is self._owner:
            self._depth += 1
            return
        await self._lock.acquire()
        self._owner, self._depth = task, 1

    def release(self) -> None:
        self._depth -= 1
        if self._depth == 0:
            self._owner = None
            self._lock.release()


_LOCKS: weakref.WeakKeyDictionary[object, TaskLock] = weakref.WeakKeyDictionary()


def serial_lock(engine: AsyncEngine) -> TaskLock | None:
    """The in-process lock every unit of work on this SQLite engine holds (InlineConnection)."""
    if engine.dialect.name != "sqlite":
        return None
    lock = _LOCKS.get(engine.sync_engine)
    if lock is None:
        lock = _LOCKS[engine.sync_engine] = TaskLock()
    return lock


def create_engine(url: str, synchronous: str = "NORMAL") -> AsyncEngine:
    """An async engine for `url`.

    Args:
        url: `sqlite+aiosqlite:///path` or `postgresql+asyncpg://...`.
        synchronous: SQLite `synchronous` pragma; NORMAL survives a process
            crash in WAL mode, FULL also a power loss (THREATS.md fact 9).
    """
    if is_sqlite(url):
        prepare_sqlite_path(url)
        engine = create_async_engine(url, async_creator=_inline_connector(make_url(url).database or ":memory:"))

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


def upsert(dialect: str, table: Table) -> Any:
    """`INSERT … ON CONFLICT` on `table`: the same construct in SQLite's (3.24+) and PostgreSQL's
    dialect, each imported from its own module."""
    from sqlalchemy.dialects import postgresql, sqlite
    return (sqlite.insert if dialect == "sqlite" else postgresql.insert)(table)


def sessionmaker(engine: AsyncEngine) -> async_sessionmaker:
    return async_sessionmaker(engine, expire_on_commit=False)
