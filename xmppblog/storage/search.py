# SPDX-License-Identifier: AGPL-3.0-or-later
"""Full-text search over public posts (storage layer): the one place where the
SQLite (FTS5) and PostgreSQL (tsvector + GIN) implementations differ.

Documents are rows of `search_docs` (one per post, keyed by its node and item
id, with its text); words go to the full-text index (`search_text`, an FTS5
index over that text, on SQLite; the `tsv` column on PostgreSQL); hashtags,
mentions and the author are rows of `search_terms`, read through a B-tree index. Queries are bounded: results
newest first walk the index in id order and stop at the page, relevance is
ranked among the newest RELEVANCE_WINDOW matches, counts stop at a cap, and
on SQLite they run on a connection of their own in a worker thread, so a
search never holds the event loop (the writers' connection stays on it).
All values are bound parameters; the FTS5 expression is built only from
\\w+ words, each quoted (T12).
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from typing import Any

from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from ..core.model import NS_MICROBLOG, NodeRef
from ..core.search import SearchDoc, SearchQuery

#: relevance is ranked among this many newest matches: bounded work for very common words
RELEVANCE_WINDOW = 5000

def _listed_terms(doc: SearchDoc) -> list[dict[str, str]]:
    """The hashtag and mention rows of a document (its author row is written with the document)."""
    return [{"kind": "t", "value": t} for t in doc.tags] + [{"kind": "m", "value": m} for m in doc.mentions]


def _filters(q: SearchQuery, doc: str, params: dict[str, Any], start: int = 0) -> list[str]:
    """One condition per exact filter (from the `start`-th): an index probe of search_terms per
    candidate document (EXISTS), which keeps a common tag beside a common word cheap."""
    where = []
    for i, (kind, value) in enumerate(_wanted(q)):
        params[f"k{i}"], params[f"v{i}"] = kind, value
        if i >= start:
            where.append(f"EXISTS (SELECT 1 FROM search_terms t{i + 1} WHERE t{i + 1}.kind = :k{i} "
                         f"AND t{i + 1}.value = :v{i} AND t{i + 1}.doc = {doc})")
    return where


def _wanted(q: SearchQuery) -> list[tuple[str, str]]:
    return [("t", t) for t in q.tags] + [("m", m) for m in q.mentions] + ([("a", q.author)] if q.author else [])


# ---------------------------------------------------------------- writes (in the unit of work)

_SQLITE_DOC = text("INSERT INTO search_docs (service, node, item_id, author, published, text) "
                   "VALUES (:service, :node, :item_id, :author, :published, :text) RETURNING id")
_TERMS = text("INSERT INTO search_terms (doc, kind, value) VALUES (:doc, :kind, :value)")
#: a document and what hangs off it go with it (SQLite: triggers; PostgreSQL: ON DELETE CASCADE)
_REMOVE = {with_id: text("DELETE FROM search_docs WHERE service = :service AND node = :node"
                         + (" AND item_id = :item_id" if with_id else "")) for with_id in (True, False)}


async def _remove(s: AsyncSession, ref: NodeRef, item_id: str | None) -> None:
    params = {"service": ref.service, "node": ref.node}
    if item_id is not None:
        params["item_id"] = item_id
    await s.execute(_REMOVE[item_id is not None], params)


class SqliteSearch:
    """Writes one statement per post (two with hashtags or mentions): the triggers of migration
    0010 keep `search_text` (an external-content FTS5 index of `search_docs.text`) and the
    author row of `search_terms` in step with `search_docs`."""

    def __init__(self, s: AsyncSession) -> None:
        self.s = s

    async def index(self, doc: SearchDoc, new: bool = False) -> None:
        if not new:  # an edit replaces its older version
            await self.remove(doc.ref, doc.item_id)
        doc_id = (await self.s.execute(_SQLITE_DOC, {
            "service": doc.ref.service, "node": doc.ref.node, "item_id": doc.item_id, "author": doc.author,
            "published": doc.published.isoformat(), "text": doc.text})).scalar_one()
        terms = _listed_terms(doc)
        if terms:
            await self.s.execute(_TERMS, [{"doc": doc_id, **t} for t in terms])

    async def remove(self, ref: NodeRef, item_id: str | None = None) -> None:
        await _remove(self.s, ref, item_id)


#: a document and its term rows in one statement; an edit's (False) also drops its old term rows
_POSTGRES_DOC = {new: text(
    "WITH d AS (INSERT INTO search_docs (service, node, item_id, author, published, text, tags, mentions) "
    "VALUES (:service, :node, :item_id, :author, :published, :text, :tags, :mentions) "
    "ON CONFLICT (service, node, item_id) DO UPDATE SET author = EXCLUDED.author, "
    "published = EXCLUDED.published, text = EXCLUDED.text, tags = EXCLUDED.tags, "
    "mentions = EXCLUDED.mentions RETURNING id)"
    + ("" if new else ", gone AS (DELETE FROM search_terms WHERE doc IN (SELECT id FROM d))")
    + " INSERT INTO search_terms (doc, kind, value) SELECT d.id, t.kind, t.value FROM d, "
    "unnest(CAST(:kinds AS text[]), CAST(:values AS text[])) AS t (kind, value)") for new in (True, False)}


class PostgresSearch:
    """Writes one statement per post: the document and its term rows together (a data-modifying
    WITH; an edit's old term rows go in the same statement)."""

    def __init__(self, s: AsyncSession) -> None:
        self.s = s

    async def index(self, doc: SearchDoc, new: bool = False) -> None:
        terms = _listed_terms(doc) + [{"kind": "a", "value": doc.author}]
        await self.s.execute(_POSTGRES_DOC[new], {
            "text": doc.text, "tags": " ".join(doc.tags), "mentions": " ".join(doc.mentions), "author": doc.author,
            "service": doc.ref.service, "node": doc.ref.node, "item_id": doc.item_id, "published": doc.published,
            "kinds": [t["kind"] for t in terms], "values": [t["value"] for t in terms]})

    async def remove(self, ref: NodeRef, item_id: str | None = None) -> None:
        await _remove(self.s, ref, item_id)


def for_session(s: AsyncSession) -> SqliteSearch | PostgresSearch:
    return SqliteSearch(s) if s.bind.dialect.name == "sqlite" else PostgresSearch(s)


# ---------------------------------------------------------------- reads (core.ports.SearchIndex)

def _fts5_match(q: SearchQuery) -> str:
    """The FTS5 expression of the words and phrases ('' if none): each quoted \\w+ word (T12)."""
    return " AND ".join([f'"{w}"' for w in q.words] + ['"' + " ".join(p) + '"' for p in q.phrases])


def _tsquery(q: SearchQuery, params: dict[str, Any]) -> str:
    """The PostgreSQL tsquery of the words and phrases ('' if none), its values in `params`."""
    tsq = []
    if q.words:
        params["words"] = " ".join(q.words)
        tsq.append("plainto_tsquery('simple', :words)")
    for i, phrase in enumerate(q.phrases):
        params[f"ph{i}"] = " ".join(phrase)
        tsq.append(f"phraseto_tsquery('simple', :ph{i})")
    return " && ".join(tsq)


def _sqlite_sql(q: SearchQuery, limit: int, offset: int, cap: int) -> tuple[str, str, dict[str, Any]]:
    """(page query, capped count query, parameters) for SQLite."""
    params: dict[str, Any] = {"limit": limit, "offset": offset, "cap": cap + 1, "window": RELEVANCE_WINDOW}
    match = _fts5_match(q)
    if match:
        params["match"] = match
        where = ["search_text MATCH :match"] + _filters(q, "search_text.rowid", params)
        cond = " AND ".join(where)
        if q.by_relevance:
            page = (f"SELECT d.service, d.node, d.item_id FROM (SELECT rowid AS id, bm25(search_text) AS score "
                    f"FROM search_text WHERE {cond} ORDER BY rowid DESC LIMIT :window) AS m "
                    "JOIN search_docs d ON d.id = m.id ORDER BY m.score, m.id DESC LIMIT :limit OFFSET :offset")
        else:
            page = (f"SELECT d.service, d.node, d.item_id FROM search_text JOIN search_docs d "
                    f"ON d.id = search_text.rowid WHERE {cond} ORDER BY search_text.rowid DESC "
                    "LIMIT :limit OFFSET :offset")
        count = f"SELECT count(*) FROM (SELECT 1 FROM search_text WHERE {cond} LIMIT :cap)"
        return page, count, params
    # filters only: the first one is an index range read newest first, the others narrow it
    cond = " AND ".join(["t0.kind = :k0 AND t0.value = :v0"] + _filters(q, "t0.doc", params, start=1))
    page = (f"SELECT d.service, d.node, d.item_id FROM search_terms t0 JOIN search_docs d ON d.id = t0.doc "
            f"WHERE {cond} ORDER BY t0.doc DESC LIMIT :limit OFFSET :offset")
    count = f"SELECT count(*) FROM (SELECT 1 FROM search_terms t0 WHERE {cond} LIMIT :cap)"
    return page, count, params


def _postgres_sql(q: SearchQuery, limit: int, offset: int, cap: int) -> tuple[str, str, dict[str, Any]]:
    params: dict[str, Any] = {"limit": limit, "offset": offset, "cap": cap + 1, "window": RELEVANCE_WINDOW}
    query = _tsquery(q, params)
    where = _filters(q, "id", params) + ([f"tsv @@ ({query})"] if query else [])
    cond = " AND ".join(where)
    if q.by_relevance and query:
        page = (f"SELECT service, node, item_id FROM (SELECT service, node, item_id, id, ts_rank(tsv, {query}) "
                f"AS score FROM search_docs WHERE {cond} ORDER BY id DESC LIMIT :window) AS m "
                "ORDER BY score DESC, id DESC LIMIT :limit OFFSET :offset")
    else:
        page = (f"SELECT service, node, item_id FROM search_docs WHERE {cond} ORDER BY id DESC "
                "LIMIT :limit OFFSET :offset")
    count = f"SELECT count(*) FROM (SELECT 1 FROM search_docs WHERE {cond} LIMIT :cap) AS c"
    return page, count, params


def archive_text_filter(dialect: str, q: SearchQuery, item_id: str, params: dict[str, Any],
                         ref: NodeRef | None = None, copies_of: str | None = None) -> str:
    """A condition that the item whose id is the column `item_id` has an index entry matching
    `q` (as a search finds it: words and phrases through the full-text index, then the exact
    filters), for queries over another table (a node's archive, storage/repos.py). The entry
    is the item's own on node `ref`, or, for public-timeline copies named `user/id`, the
    original's on `user@copies_of`'s microblog node. Its values go to `params`."""
    if dialect == "sqlite":
        match = _fts5_match(q)
        if match:
            params["match"] = match
        where = ["d.id IN (SELECT rowid FROM search_text WHERE search_text MATCH :match)"] if match else []
        slash = f"instr({item_id}, '/')"
        local = f"substr({item_id}, 1, {slash} - 1)"
    else:
        query = _tsquery(q, params)
        where = [f"d.tsv @@ ({query})"] if query else []
        slash = f"strpos({item_id}, '/')"
        local = f"split_part({item_id}, '/', 1)"
    if copies_of is not None:
        params["doc_node"], params["doc_suffix"] = NS_MICROBLOG, "@" + copies_of
        key = (f"d.node = :doc_node AND d.service = {local} || :doc_suffix "
               f"AND d.item_id = substr({item_id}, {slash} + 1)")
    else:
        assert ref is not None
        params["doc_service"], params["doc_node"] = ref.service, ref.node
        key = f"d.service = :doc_service AND d.node = :doc_node AND d.item_id = {item_id}"
    return f"EXISTS (SELECT 1 FROM search_docs d WHERE {' AND '.join([key] + where + _filters(q, 'd.id', params))})"


#: for this transaction only: plan every search for its own terms
_CUSTOM_PLANS = text("SET LOCAL plan_cache_mode = force_custom_plan")


class SearchReader:
    """core.ports.SearchIndex: searches off the event loop.

    SQLite: a read connection of its own, used by one worker thread at a time (WAL
    lets it read while the writers' connection writes). PostgreSQL: its own session
    on the shared engine (asyncpg never blocks the loop).
    """

    def __init__(self, engine: AsyncEngine, url: str) -> None:
        self._engine = engine
        self._sqlite_path = make_url(url).database if engine.dialect.name == "sqlite" else None
        self._conn: sqlite3.Connection | None = None
        self._lock = threading.Lock()

    async def search(self, q: SearchQuery, limit: int, offset: int,
                     count_cap: int) -> tuple[list[tuple[NodeRef, str]], int]:
        if self._sqlite_path is not None:
            page, count, params = _sqlite_sql(q, limit, offset, count_cap)
            rows, total = await asyncio.to_thread(self._sqlite_query, page, count, params)
        else:
            page, count, params = _postgres_sql(q, limit, offset, count_cap)
            async with AsyncSession(self._engine) as s:
                # asyncpg prepares statements, and after five runs PostgreSQL may keep a generic
                # plan: one planned for no tag in particular walked 87,000 rows for the most
                # common tag (540 ms against 1.5 ms, bench/network_search.py at 1M posts)
                await s.execute(_CUSTOM_PLANS)
                rows = (await s.execute(text(page), params)).all()
                total = (await s.execute(text(count), params)).scalar_one()
        return [(NodeRef(sv, n), i) for sv, n, i in rows], int(total)

    def _sqlite_query(self, page: str, count: str, params: dict[str, Any]) -> tuple[list[Any], int]:
        with self._lock:
            if self._conn is None:
                self._conn = sqlite3.connect(self._sqlite_path or ":memory:", timeout=30,
                                             check_same_thread=False)
                self._conn.execute("PRAGMA query_only = ON")
            rows = self._conn.execute(page, params).fetchall()
            total = self._conn.execute(count, params).fetchone()[0]
            return rows, total

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None
