# SPDX-License-Identifier: AGPL-3.0-or-later
"""Full-text search over public posts (storage layer): the one place where the
SQLite (FTS5) and PostgreSQL (tsvector + GIN) implementations differ.

Words and phrases go to the full-text index; hashtags, mentions and the
author are exact filters on stored columns. All values are bound parameters;
the FTS5 expression is built only from \\w+ words, each quoted (T12).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from ..core.model import NodeRef
from ..core.search import SearchDoc, SearchQuery


def _like(value: str) -> str:
    return "% " + value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + " %"


def _filters(q: SearchQuery, params: dict[str, Any]) -> list[str]:
    where = []
    for i, tag in enumerate(q.tags):
        params[f"tag{i}"] = _like(tag)
        where.append(f"(' ' || tags || ' ') LIKE :tag{i} ESCAPE '\\'")
    for i, jid in enumerate(q.mentions):
        params[f"men{i}"] = _like(jid)
        where.append(f"(' ' || mentions || ' ') LIKE :men{i} ESCAPE '\\'")
    if q.author:
        params["author"] = q.author
        where.append("author = :author")
    return where


class _Search:
    table = ""

    def __init__(self, s: AsyncSession) -> None:
        self.s = s

    async def remove(self, ref: NodeRef, item_id: str | None = None, author: str | None = None) -> None:
        sql = f"DELETE FROM {self.table} WHERE service = :service AND node = :node"
        params: dict[str, Any] = {"service": ref.service, "node": ref.node}
        if item_id is not None:
            sql += " AND item_id = :item_id"
            params["item_id"] = item_id
        if author is not None:
            sql += " AND author = :author"
            params["author"] = author
        await self.s.execute(text(sql), params)


# Parsed once (one index write per post).
_SQLITE_INDEX = text(
    "INSERT INTO search_fts (text, tags, mentions, author, service, node, item_id, published) "
    "VALUES (:text, :tags, :mentions, :author, :service, :node, :item_id, :published)")
_POSTGRES_INDEX = text(
    "INSERT INTO search_docs (service, node, item_id, author, published, text, tags, mentions) "
    "VALUES (:service, :node, :item_id, :author, :published, :text, :tags, :mentions) "
    "ON CONFLICT (service, node, item_id) DO UPDATE SET author = EXCLUDED.author, "
    "published = EXCLUDED.published, text = EXCLUDED.text, tags = EXCLUDED.tags, "
    "mentions = EXCLUDED.mentions")


class SqliteSearch(_Search):
    table = "search_fts"

    async def index(self, doc: SearchDoc, new: bool = False) -> None:
        if not new:  # an edit replaces its older version
            await self.remove(doc.ref, doc.item_id)
        await self.s.execute(_SQLITE_INDEX, {
            "text": doc.text, "tags": " ".join(doc.tags), "mentions": " ".join(doc.mentions),
            "author": doc.author, "service": doc.ref.service, "node": doc.ref.node, "item_id": doc.item_id,
            "published": doc.published.isoformat()})

    async def search(self, q: SearchQuery, limit: int, offset: int) -> tuple[list[tuple[NodeRef, str]], int]:
        params: dict[str, Any] = {"limit": limit, "offset": offset}
        where = _filters(q, params)
        terms = [f'"{w}"' for w in q.words] + ['"' + " ".join(p) + '"' for p in q.phrases]
        if terms:
            params["match"] = "text : (" + " AND ".join(terms) + ")"
            where.append("search_fts MATCH :match")
        cond = " AND ".join(where) or "1"
        order = "rank" if q.by_relevance and terms else "published DESC"
        rows = (await self.s.execute(text(
            f"SELECT service, node, item_id FROM search_fts WHERE {cond} ORDER BY {order} "
            "LIMIT :limit OFFSET :offset"), params)).all()
        total = (await self.s.execute(text(f"SELECT count(*) FROM search_fts WHERE {cond}"), params)).scalar_one()
        return [(NodeRef(sv, n), i) for sv, n, i in rows], int(total)


class PostgresSearch(_Search):
    table = "search_docs"

    async def index(self, doc: SearchDoc, new: bool = False) -> None:
        await self.s.execute(_POSTGRES_INDEX, {
            "text": doc.text, "tags": " ".join(doc.tags), "mentions": " ".join(doc.mentions),
            "author": doc.author, "service": doc.ref.service, "node": doc.ref.node, "item_id": doc.item_id,
            "published": doc.published})

    async def search(self, q: SearchQuery, limit: int, offset: int) -> tuple[list[tuple[NodeRef, str]], int]:
        params: dict[str, Any] = {"limit": limit, "offset": offset}
        where = _filters(q, params)
        tsq = []
        if q.words:
            params["words"] = " ".join(q.words)
            tsq.append("plainto_tsquery('simple', :words)")
        for i, phrase in enumerate(q.phrases):
            params[f"ph{i}"] = " ".join(phrase)
            tsq.append(f"phraseto_tsquery('simple', :ph{i})")
        query = " && ".join(tsq)
        if query:
            where.append(f"tsv @@ ({query})")
        cond = " AND ".join(where) or "TRUE"
        order = f"ts_rank(tsv, {query}) DESC, published DESC" if q.by_relevance and query else "published DESC"
        rows = (await self.s.execute(text(
            f"SELECT service, node, item_id FROM search_docs WHERE {cond} ORDER BY {order} "
            "LIMIT :limit OFFSET :offset"), params)).all()
        total = (await self.s.execute(text(f"SELECT count(*) FROM search_docs WHERE {cond}"), params)).scalar_one()
        return [(NodeRef(sv, n), i) for sv, n, i in rows], int(total)


def for_session(s: AsyncSession) -> SqliteSearch | PostgresSearch:
    return SqliteSearch(s) if s.bind.dialect.name == "sqlite" else PostgresSearch(s)

