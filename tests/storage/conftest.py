# SPDX-License-Identifier: AGPL-3.0-or-later
"""A BlogService over real repositories, migrated with Alembic, for each backend."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from xmppblog.core.addressing import Addressing
from xmppblog.core.service import BlogService, Limits
from xmppblog.pubsub.xep_0277 import AtomCodec
from xmppblog.storage import migrate
from xmppblog.storage.engine import create_engine, sessionmaker
from xmppblog.storage.repos import uow_factory


class FakeClock:
    """Moves only by `advance`."""

    def __init__(self) -> None:
        self.t = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)

    def now(self) -> datetime:
        return self.t

    def advance(self, seconds: float) -> None:
        self.t += timedelta(seconds=seconds)


@pytest.fixture
async def backend(db_url):
    await migrate.upgrade(db_url)
    engine = create_engine(db_url)
    clock = FakeClock()
    counter = iter(range(1, 10**9))
    uow = uow_factory(sessionmaker(engine), clock)
    service = BlogService(Addressing("blog.example.org", "example.org"), uow, AtomCodec(), clock,
                          Limits(max_payload_bytes=4096, max_items_per_node=5, max_page_items=3),
                          new_id=lambda: f"id{next(counter)}")
    yield service, uow, clock
    await engine.dispose()
