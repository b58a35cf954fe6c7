# SPDX-License-Identifier: AGPL-3.0-or-later
"""Upgrading a database from before the search index indexes every public post (review finding #28:
0008 created the index and left the history out)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from alembic import command
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine
from sqlalchemy.pool import NullPool

from xmppblog.core.model import NodeRef
from xmppblog.core.search import SearchDoc, parse_query
from xmppblog.storage import migrate
from xmppblog.storage.engine import create_engine, prepare_sqlite_path
from xmppblog.storage.search import SearchReader, for_session

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


async def test_an_index_from_0009_is_carried_over_and_kept_in_step_after_upgrade(db_url):
    """0010 copies 0009's documents (SQLite: out of search_fts), then posts are added and removed
    by the storage layer's one-statement writes (triggers on SQLite, one WITH on PostgreSQL)."""
    prepare_sqlite_path(db_url)
    await asyncio.to_thread(command.upgrade, migrate.alembic_config(db_url), "0009")
    engine = create_async_engine(db_url, poolclass=NullPool)
    now = datetime.now(UTC)
    async with engine.begin() as conn:
        if engine.dialect.name == "sqlite":
            await conn.execute(text(
                "INSERT INTO search_fts (text, tags, mentions, author, service, node, item_id, published) "
                "VALUES ('carried over #kept', 'kept', 'carol@example.org', 'alice@example.org', "
                "'alice@blog.example.org', 'urn:xmpp:microblog:0', 'old9', :t)"), {"t": now.isoformat()})
        else:
            await conn.execute(text(
                "INSERT INTO search_docs (service, node, item_id, author, published, text, tags, mentions) "
                "VALUES ('alice@blog.example.org', 'urn:xmpp:microblog:0', 'old9', 'alice@example.org', :t, "
                "'carried over #kept', 'kept', 'carol@example.org')"), {"t": now})
    await engine.dispose()
    await migrate.upgrade(db_url)
    engine = create_engine(db_url)
    reader = SearchReader(engine, db_url)
    blog = NodeRef("alice@blog.example.org", "urn:xmpp:microblog:0")

    async def found(query: str) -> list[str]:
        hits, total = await reader.search(parse_query(query), 10, 0, 1000)
        assert total == len(hits)
        return sorted(i for _, i in hits)

    try:
        for query in ("carried", "#kept", "@carol@example.org", "from:alice@example.org"):
            assert await found(query) == ["old9"], query
        async with engine.begin() as conn:
            async with AsyncSession(bind=conn) as s:
                writes = for_session(s)
                await writes.index(SearchDoc(blog, "new10", "alice@example.org", now, "fresh words #kept",
                                             ("kept",), ()), new=True)
                await writes.remove(blog, "old9")
                await s.commit()
        assert await found("carried") == []
        assert await found("#kept") == ["new10"]
        assert await found("from:alice@example.org") == ["new10"]
        assert await found("@carol@example.org") == []
        async with engine.begin() as conn:
            async with AsyncSession(bind=conn) as s:
                await for_session(s).index(SearchDoc(blog, "new10", "alice@example.org", now, "edited",
                                                     (), ()), new=False)
                await s.commit()
        assert await found("fresh") == [] and await found("edited") == ["new10"]
        assert await found("#kept") == [] and await found("from:alice@example.org") == ["new10"]
    finally:
        reader.close()
        await engine.dispose()
