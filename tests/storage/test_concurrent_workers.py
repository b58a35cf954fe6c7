# SPDX-License-Identifier: AGPL-3.0-or-later
"""Workers of a cluster writing the same rows at the same moment (issue #16; PostgreSQL, where
two transactions really interleave: on SQLite one process's transactions take turns)."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest

from xmppblog.storage import migrate
from xmppblog.storage.engine import create_engine, sessionmaker
from xmppblog.storage.repos import uow_factory

from ..support.core import FakeClock


@pytest.fixture
async def pg_uows(pg_server):
    """A unit-of-work factory over a fresh, migrated PostgreSQL database."""
    from ..support.postgres import fresh_database
    url = fresh_database(pg_server)
    await migrate.upgrade(url)
    engine = create_engine(url)
    yield uow_factory(sessionmaker(engine), FakeClock())
    await engine.dispose()


@pytest.mark.postgres
async def test_two_workers_flush_the_same_first_drop_counter(pg_uows):
    """Both flushes count (#15 of docs/scale-out.md's review): the second waits for the first
    and adds to its row instead of failing on the unique (reason, domain) and losing its counts."""
    clock = FakeClock()
    key = ("no-subscription", "spam.example")
    async with pg_uows() as first:
        await first.stats.add_drops({key: 3}, clock.now())

        async def second_worker() -> None:
            async with pg_uows() as second:
                await second.stats.add_drops({key: 4, ("rate", "spam.example"): 1}, clock.now())
                await second.commit()

        other = asyncio.create_task(second_worker())
        await asyncio.sleep(0.3)  # the second worker's flush is under way, waiting for this one
        await first.commit()
    await other
    async with pg_uows() as uow:
        counts = {(reason, domain): n for reason, domain, n, _ in await uow.stats.drops()}
    assert counts == {key: 7, ("rate", "spam.example"): 1}


async def test_drop_counters_add_up(stack):
    """Both backends: a flush adds to the counters already stored and moves `last_at`."""
    _, uows, clock = stack
    for n in (2, 5):
        async with uows() as uow:
            await uow.stats.add_drops({("rate", "a.example"): n, ("blocked", "b.example"): 1}, clock.now())
            await uow.commit()
        clock.advance(60)
    async with uows() as uow:
        drops = await uow.stats.drops()
    assert [(r, d, n) for r, d, n, _ in drops] == [("rate", "a.example", 7), ("blocked", "b.example", 2)]
    assert {at for *_, at in drops} == {clock.now() - timedelta(seconds=60)}, "the second flush's time"
