# SPDX-License-Identifier: AGPL-3.0-or-later
"""Upgrading a database from before the search index indexes every public post (review finding #28:
0008 created the index and left the history out)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from alembic import command
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from xmppblog.core.search import parse_query
from xmppblog.storage import migrate
from xmppblog.storage.engine import create_engine, prepare_sqlite_path
from xmppblog.storage.search import SearchReader

ENTRY = ("<entry xmlns='http://www.w3.org/2005/Atom'><title>{t}</title>"
         "<author><uri>xmpp:alice@example.org</uri></author></entry>")


async def test_posts_from_before_the_index_are_searchable_after_upgrade(db_url):
    prepare_sqlite_path(db_url)
    await asyncio.to_thread(command.upgrade, migrate.alembic_config(db_url), "0007")
    engine = create_async_engine(db_url, poolclass=NullPool)
    now = datetime.now(UTC)
    async with engine.begin() as conn:
        for service, access, remote in (("alice@blog.example.org", "open", False),
                                        ("bob@blog.example.org", "whitelist", False),
                                        ("carol@blog.other.org", "open", True)):
            node_id = (await conn.execute(text(
                "INSERT INTO nodes (service, node, owner, access_model, max_items, notify_retract, title, "
                "created_at, remote) VALUES (:s, 'urn:xmpp:microblog:0', :o, :a, 10, true, '', :t, :r) "
                "RETURNING id"), {"s": service, "o": service.replace("blog.", ""), "a": access, "t": now,
                                  "r": remote})).scalar_one()
            await conn.execute(text(
                "INSERT INTO items (node_id, item_id, publisher, payload, published, updated) "
                "VALUES (:n, 'old1', :p, :payload, :t, :t)"),
                {"n": node_id, "p": service.replace("blog.", ""), "t": now,
                 "payload": ENTRY.format(t=f"history from {service.split('@')[0]} #archive")})
    await engine.dispose()
    await migrate.upgrade(db_url)
    engine = create_engine(db_url)
    reader = SearchReader(engine, db_url)
    try:
        hits, total = await reader.search(parse_query("history"), 10, 0, 1000)
        assert sorted(r.service for r, _ in hits) == ["alice@blog.example.org", "carol@blog.other.org"]
        assert total == 2, "the protected blog's post stays out of the index"
        hits, _ = await reader.search(parse_query("#archive from:alice@example.org"), 10, 0, 1000)
        assert [(r.service, i) for r, i in hits] == [("alice@blog.example.org", "old1")]
    finally:
        reader.close()
        await engine.dispose()
