# SPDX-License-Identifier: AGPL-3.0-or-later
"""Network search latency at 1,000,000 posts on an aggregator (issue #17).

An aggregator indexes the posts of its sources' firehoses: remote cached nodes
(service `blog.sourceS.example`, node `urn:xmppblog:firehose:0`, item ids
`userU/N`), in the same search index as local posts. This bench fills that index
with N posts and times searches of each kind, ~200 queries a kind, p50/p99/max:
a common word, a rare word, two words, a "phrase" (each newest first and by
relevance), a #tag, from:user@sourceS.example, and a common word beside a #tag
or a from: filter. Every query is timed on two paths, one after the other:

* `reader`: `SearchReader(engine, url).search(parse_query(q), 20, 0, COUNT_CAP)`,
  the index alone (storage/search.py: FTS5 on SQLite, tsvector + GIN on PostgreSQL);
* `service`: `core.search.search(Actor.ANONYMOUS, q, 20)`, what HTTP and IM
  serve: the index, then every hit read back from `items` and re-checked against
  its node (core/search.py), so the nodes and items rows exist too.

Baseline, in the same run: the same kinds of queries on a separate fresh
database of 10,000 posts built the same way (the first 10,000 of the same
stream); the large database is grown in stages (default 100,000 then
1,000,000) and measured at each, for the trend. Ratios are against the baseline.

The corpus (seeded, the same on every backend): 20-40 words a post drawn from a
vocabulary of 50,000 made-up words with a Zipf distribution (s = 1: the commonest
word is in ~93 % of posts, a word ranked 10,000-50,000 in ~0.01-0.005 %), 0-3
hashtags from 2,000 (Zipf), a mention in a quarter of the posts; authors are
10,000 users (`userU@sourceS.example`, U mod 20 = S) posting with a Zipf
activity of s = 0.8; published times spread over the last day.

How it is built: the 20 source nodes by `core.remote.follow_source` (what the
aggregator does); the first 1,000 posts of every database through the product
path (one transaction: `tx.items.put` + the ItemPublished event, whose
SearchIndexer projection calls `for_session(s).index(SearchDoc.of(...), new=True)`);
the rest in batches of 5,000 per transaction by executemany of the same SQL on the
same tables: on SQLite an INSERT into `search_docs` with explicit ids (migration
0010's triggers fill `search_text` and the author row) and storage/search.py's own
term INSERT; on PostgreSQL storage/search.py's own document statement
(`_POSTGRES_DOC[True]`, the WITH ... INSERT of a document and its term rows);
items by repos.py's `_ITEM_INSERT`. Index and items are written in separate
transactions so their times are reported apart ("index s/100k", "items s/100k";
the text generation is not counted). PostgreSQL then gets `VACUUM ANALYZE` of the
search tables (what autovacuum does to a live server; its time is reported),
SQLite a WAL checkpoint. Sizes: SQLite by dbstat, PostgreSQL by
pg_total_relation_size. Everything is in the OS page cache (the machine has more
memory than the databases), so these are warm-cache latencies.

Run (serialise with other heavy jobs):

    flock /tmp/xmppblog-e2e.lock .venv/bin/python -m bench.network_search \\
        [--db sqlite,postgres] [--sizes 100000,1000000] [--baseline 10000] \\
        [--queries 200] [--budget 25] [--json out.json]

`--budget`: seconds at most per kind of query and database (both paths), at
least 20 queries: a kind that is slow is reported with fewer queries (`n`).
Prints one JSON line per build and per (database, size, kind, path), then the
p99 table and the ratios against the baseline.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import tempfile
import time
from datetime import timedelta
from itertools import accumulate
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

from sqlalchemy import text

from bench.common import maybe_postgres, pct
from tests.support.core import FakeClock, test_core
from tests.support.postgres import fresh_database
from xmppblog.core.events import ItemPublished
from xmppblog.core.model import Actor, Item, NodeRef
from xmppblog.core.search import COUNT_CAP, SearchDoc, parse_query
from xmppblog.protocol import NS_FIREHOSE
from xmppblog.storage import migrate
from xmppblog.storage.engine import create_engine, sessionmaker
from xmppblog.storage.repos import _ITEM_INSERT, uow_factory
from xmppblog.storage.search import _POSTGRES_DOC, _TERMS, SearchReader

PAGE = 20                       # the HTTP API's page (http/server.py)
SOURCES = 20
USERS = 10_000
VOCAB = 50_000
TAGS = 2_000
BATCH = 5_000
PRODUCT_PATH_DOCS = 1_000
SEED = 17
CONS = "bdfgklmnprstvz"
SYLLABLES = [c + v for c in CONS for v in "aeiou"]          # 70


def made_up(k: int) -> str:
    """A distinct pronounceable word for every k (base-70 digits, two letters each, at least two)."""
    k += len(SYLLABLES)
    out = []
    while k:
        k, d = divmod(k, len(SYLLABLES))
        out.append(SYLLABLES[d])
    return "".join(reversed(out))


def zipf(n: int, s: float) -> list[float]:
    return list(accumulate(1 / (k + 1) ** s for k in range(n)))


def source_of(u: int) -> int:
    return u % SOURCES


def author(u: int) -> str:
    return f"user{u}@source{source_of(u)}.example"


def firehose(s: int) -> NodeRef:
    return NodeRef(f"blog.source{s}.example", NS_FIREHOSE)


class Corpus:
    """The posts, the same stream for every database: post n is the same wherever it is stored."""

    def __init__(self) -> None:
        self.vocab = [made_up(k) for k in range(VOCAB)]
        self.tags = [made_up(200_000 + k) for k in range(TAGS)]
        self.vocab_cw, self.tags_cw, self.users_cw = zipf(VOCAB, 1.0), zipf(TAGS, 1.0), zipf(USERS, 0.8)
        self.users = list(range(USERS))
        random.Random(SEED).shuffle(self.users)   # a user's activity rank is not its number
        self.rnd = random.Random(SEED)
        self.n = 0
        self.early: list[list[str]] = []          # the words of the first 10,000 posts (phrase queries)

    def post(self) -> tuple[int, int, str]:
        """(number, user, text) of the next post."""
        rnd = self.rnd
        words = rnd.choices(self.vocab, cum_weights=self.vocab_cw, k=rnd.randint(20, 40))
        r = rnd.random()
        tags = rnd.choices(self.tags, cum_weights=self.tags_cw, k=0 if r < .5 else 1 if r < .8 else 2 if r < .95 else 3)
        r = rnd.random()
        ments = [author(rnd.randrange(USERS)) for _ in range(0 if r < .75 else 1 if r < .95 else 2)]
        u = rnd.choices(self.users, cum_weights=self.users_cw)[0]
        if self.n < 10_000:
            self.early.append(words)
        body = "".join(f"@{m} " for m in ments) + " ".join(words).capitalize() + "." + "".join(f" #{t}" for t in tags)
        self.n += 1
        return self.n - 1, u, body

    def batch(self, count: int) -> list[tuple[int, int, str]]:
        return [self.post() for _ in range(count)]


def doc_of(n: int, u: int, body: str, size: int, now) -> tuple[SearchDoc, Item]:  # type: ignore[no-untyped-def]
    when = now - timedelta(days=1) + timedelta(seconds=n * 86_400 / size)
    ref, item_id, who = firehose(source_of(u)), f"user{u}/{n}", author(u)
    payload = (f"<entry xmlns='http://www.w3.org/2005/Atom'><title type='text'>{escape(body[:80])}</title>"
               f"<content type='text'>{escape(body)}</content><author><name>user{u}</name>"
               f"<uri>xmpp:{who}</uri></author><id>tag:source{source_of(u)}.example,2026:{item_id}</id>"
               f"<published>{when.isoformat()}</published><updated>{when.isoformat()}</updated></entry>")
    return SearchDoc.of(ref, item_id, who, when, body), Item(item_id, who, payload, when, when)


# ---------------------------------------------------------------- one database

class Db:
    def __init__(self, kind: str, url: str, path: Path | None) -> None:
        self.kind, self.url, self.path = kind, url, path
        self.engine = create_engine(url)
        self.clock = FakeClock()
        self.core = test_core(uow_factory(sessionmaker(self.engine), self.clock), self.engine, url, self.clock)
        self.reader = SearchReader(self.engine, url)
        self.nodes: dict[NodeRef, int] = {}
        self.docs = 0
        self.index_s = self.items_s = 0.0

    async def setup(self) -> None:
        for s in range(SOURCES):
            await self.core.remote.follow_source(firehose(s), 10_000_000)
        async with self.engine.connect() as c:
            rows = (await c.execute(text("SELECT id, service, node FROM nodes WHERE remote"))).all()
        self.nodes = {NodeRef(sv, n): i for i, sv, n in rows}

    async def product_path(self, posts: list[tuple[int, int, str]], size: int) -> None:
        """The first posts as ingest stores them: item and index entry in one transaction."""
        t = time.perf_counter()
        async with self.core.transactions() as tx:
            nodes = {ref: await tx.nodes.get(ref) for ref in self.nodes}
            for n, u, body in posts:
                doc, item = doc_of(n, u, body, size, self.clock.now())
                node = nodes[doc.ref]
                await tx.items.put(node, item, new=True)
                await tx.emit(ItemPublished(node, node, item, body, True, notify=False))
            await tx.commit()
        self.index_s += time.perf_counter() - t    # items and index together on this path
        self.docs += len(posts)

    async def bulk(self, posts: list[tuple[int, int, str]], size: int) -> None:
        pairs = [doc_of(n, u, body, size, self.clock.now()) for n, u, body in posts]
        t = time.perf_counter()
        async with self.engine.begin() as c:
            if self.kind == "sqlite":
                first = (await c.execute(text("SELECT coalesce(max(id), 0) + 1 FROM search_docs"))).scalar_one()
                await c.execute(text(
                    "INSERT INTO search_docs (id, service, node, item_id, author, published, text) "
                    "VALUES (:id, :service, :node, :item_id, :author, :published, :text)"),
                    [{"id": first + i, "service": d.ref.service, "node": d.ref.node, "item_id": d.item_id,
                      "author": d.author, "published": d.published.isoformat(), "text": d.text}
                     for i, (d, _) in enumerate(pairs)])
                terms = [{"doc": first + i, "kind": k, "value": v} for i, (d, _) in enumerate(pairs)
                         for k, vs in (("t", d.tags), ("m", d.mentions)) for v in vs]
                await c.execute(_TERMS, terms)
            else:
                await c.execute(_POSTGRES_DOC[True], [{
                    "text": d.text, "tags": " ".join(d.tags), "mentions": " ".join(d.mentions), "author": d.author,
                    "service": d.ref.service, "node": d.ref.node, "item_id": d.item_id, "published": d.published,
                    "kinds": ["t"] * len(d.tags) + ["m"] * len(d.mentions) + ["a"],
                    "values": [*d.tags, *d.mentions, d.author]} for d, _ in pairs])
        t2 = time.perf_counter()
        async with self.engine.begin() as c:
            await c.execute(_ITEM_INSERT, [
                {"node_id": self.nodes[d.ref], "item_id": i.item_id, "publisher": i.publisher,
                 "payload": i.payload, "published": i.published, "updated": i.updated} for d, i in pairs])
        self.index_s += t2 - t
        self.items_s += time.perf_counter() - t2
        self.docs += len(posts)

    async def settle(self) -> float:
        """What a live server gets in the background: PostgreSQL's (auto)vacuum and analyze, SQLite's checkpoint."""
        t = time.perf_counter()
        if self.kind == "sqlite":
            async with self.engine.connect() as c:
                await c.execute(text("PRAGMA wal_checkpoint(TRUNCATE)"))
        else:
            async with self.engine.connect() as c:
                c = await c.execution_options(isolation_level="AUTOCOMMIT")
                for table in ("search_docs", "search_terms", "items", "nodes"):
                    await c.execute(text(f"VACUUM ANALYZE {table}"))
        return time.perf_counter() - t

    async def sizes(self) -> dict[str, int]:
        """Bytes on disk: the whole database, the index (documents, words, terms), the items."""
        async with self.engine.connect() as c:
            if self.kind == "sqlite":
                rows = dict((await c.execute(text("SELECT name, sum(pgsize) FROM dbstat GROUP BY name"))).all())
                words = sum(v for k, v in rows.items() if k.startswith("search_text"))
                docs = rows.get("search_docs", 0) + rows.get("sqlite_autoindex_search_docs_1", 0)
                terms = sum(v for k, v in rows.items() if k.startswith(("search_terms", "ix_search_terms")))
                items = sum(v for k, v in rows.items()
                            if k == "items" or k.startswith(("ix_items", "sqlite_autoindex_items")))
                total = os.path.getsize(self.path) if self.path else 0
            else:
                q = "SELECT pg_total_relation_size(CAST(:t AS regclass))"
                docs = (await c.execute(text(q), {"t": "search_docs"})).scalar_one()
                words = (await c.execute(text("SELECT pg_relation_size('ix_search_docs_tsv')"))).scalar_one()
                docs -= words
                terms = (await c.execute(text(q), {"t": "search_terms"})).scalar_one()
                items = (await c.execute(text(q), {"t": "items"})).scalar_one()
                total = (await c.execute(text("SELECT pg_database_size(current_database())"))).scalar_one()
        return {"db_bytes": int(total), "docs_bytes": int(docs), "words_index_bytes": int(words),
                "terms_bytes": int(terms), "items_bytes": int(items)}

    async def close(self) -> None:
        self.core.search.close()
        self.reader.close()
        await self.engine.dispose()


# ---------------------------------------------------------------- the queries

KINDS = ["common word", "common word, relevance", "rare word", "rare word, relevance", "two words",
         "two words, relevance", "phrase", "phrase, relevance", "#tag", "from:user", "common word #tag",
         "common word from:user"]


def queries(corpus: Corpus, size: int, count: int) -> dict[str, list[str]]:
    rnd = random.Random(size)
    v, early = corpus.vocab, corpus.early[:size]

    def tag() -> str:
        return "#" + rnd.choices(corpus.tags, cum_weights=corpus.tags_cw)[0]

    def phrase() -> str:
        words = early[rnd.randrange(len(early))]
        at = rnd.randrange(len(words) - 1)
        return f'"{words[at]} {words[at + 1]}"'

    made = {
        "common word": [v[rnd.randrange(10)] for _ in range(count)],
        "rare word": [v[rnd.randrange(10_000, VOCAB)] for _ in range(count)],
        "two words": [f"{v[rnd.randrange(10, 300)]} {v[rnd.randrange(10, 300)]}" for _ in range(count)],
        "phrase": [phrase() for _ in range(count)],
        "#tag": [tag() for _ in range(count)],
        "from:user": [f"from:{author(rnd.randrange(USERS))}" for _ in range(count)],
        "common word #tag": [f"{v[rnd.randrange(10)]} {tag()}" for _ in range(count)],
        "common word from:user": [f"{v[rnd.randrange(10)]} from:{author(rnd.randrange(USERS))}"
                                  for _ in range(count)],
    }
    for k in ("common word", "rare word", "two words", "phrase"):
        made[f"{k}, relevance"] = made[k]
    return made


async def measure(db: Db, corpus: Corpus, label: str, args) -> list[dict[str, Any]]:  # type: ignore[no-untyped-def]
    out = []
    for kind, qs in queries(corpus, db.docs, args.queries).items():
        rel = kind.endswith("relevance")
        for q in qs[:3]:  # warm
            await db.reader.search(parse_query(q, rel), PAGE, 0, COUNT_CAP)
        times: dict[str, list[float]] = {"reader": [], "service": []}
        totals, served_short, worst = [], 0, ("", 0.0)
        end = time.monotonic() + args.budget
        for i, q in enumerate(qs):
            if i >= 20 and time.monotonic() > end:
                break
            t = time.perf_counter()
            hits, total = await db.reader.search(parse_query(q, rel), PAGE, 0, COUNT_CAP)
            t2 = time.perf_counter()
            found = await db.core.search.search(Actor.ANONYMOUS, q, PAGE, 0, rel)
            t3 = time.perf_counter()
            times["reader"].append((t2 - t) * 1000)
            times["service"].append((t3 - t2) * 1000)
            totals.append(total)
            served_short += len(found.posts) != len(hits)
            if t2 - t > worst[1]:
                worst = (q, t2 - t)
        for path, ms in times.items():
            row = {"db": db.kind, "docs": db.docs, "set": label, "kind": kind, "path": path, "n": len(ms),
                   "p50_ms": round(pct(ms, 50), 2), "p99_ms": round(pct(ms, 99), 2), "max_ms": round(max(ms), 2),
                   "matches_p50": int(pct(totals, 50)), "matches_max": max(totals)}
            if path == "reader":
                row["slowest_query"] = worst[0]
            else:
                row["hits_not_served"] = served_short
            print(json.dumps(row), flush=True)
            out.append(row)
    return out


# ---------------------------------------------------------------- the run

async def run_backend(kind: str, args, corpus_posts: list[tuple[int, int, str]], corpus: Corpus,
                      tmp: Path) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    results: dict[str, Any] = {"builds": [], "queries": []}
    with maybe_postgres(kind, tmp / kind) as pg:
        for label, stages in (("baseline", [args.baseline]), ("large", args.sizes)):
            path = tmp / f"{kind}-{label}.db"
            url = fresh_database(pg.url) if pg else f"sqlite+aiosqlite:///{path}"
            await migrate.upgrade(url)
            db = Db(kind, url, None if pg else path)
            await db.setup()
            final, at = stages[-1], 0
            try:
                for stage in stages:
                    t0, idx0, it0 = db.docs, db.index_s, db.items_s
                    while at < stage:
                        chunk = corpus_posts[at:min(stage, at + (PRODUCT_PATH_DOCS if at == 0 else BATCH))]
                        if at == 0:
                            await db.product_path(chunk, final)
                        else:
                            await db.bulk(chunk, final)
                        at += len(chunk)
                    settle = await db.settle()
                    added = (db.docs - t0) / 100_000
                    build = {"db": kind, "set": label, "docs": db.docs, "build_s": round(db.index_s + db.items_s, 1),
                             "index_s_per_100k": round((db.index_s - idx0) / added, 1),
                             "items_s_per_100k": round((db.items_s - it0) / added, 1),
                             "settle_s": round(settle, 1), **await db.sizes()}
                    print(json.dumps(build), flush=True)
                    results["builds"].append(build)
                    results["queries"] += await measure(db, corpus, label, args)
            finally:
                await db.close()
            if path.exists():
                for f in tmp.glob(f"{kind}-{label}.db*"):
                    f.unlink()
    return results


def report(all_results: dict[str, dict[str, Any]], args) -> None:  # type: ignore[no-untyped-def]
    mb = 1024 * 1024
    print("\nbuilds (index: search_docs + words + terms; s per 100k posts of that stage; sizes in MB)")
    print(f"{'db':<9}{'posts':>10}{'index s/100k':>14}{'items s/100k':>14}{'settle s':>10}{'db MB':>9}"
          f"{'docs':>8}{'words':>8}{'terms':>8}{'items':>8}")
    for kind, res in all_results.items():
        for b in res["builds"]:
            print(f"{kind:<9}{b['docs']:>10,}{b['index_s_per_100k']:>14}{b['items_s_per_100k']:>14}{b['settle_s']:>10}"
                  f"{b['db_bytes'] / mb:>9.0f}{b['docs_bytes'] / mb:>8.0f}{b['words_index_bytes'] / mb:>8.0f}"
                  f"{b['terms_bytes'] / mb:>8.0f}{b['items_bytes'] / mb:>8.0f}")
    for kind, res in all_results.items():
        sizes = sorted({r["docs"] for r in res["queries"]})
        by = {(r["docs"], r["kind"], r["path"]): r for r in res["queries"]}
        base = sizes[0]
        for path in ("reader", "service"):
            print(f"\n{kind}: p99 ms ({path}: " + ("SearchReader.search, the index alone" if path == "reader"
                  else "SearchService.search, index + items + visibility re-check") + f"); p50 and max at "
                  f"{sizes[-1]:,}; ratio p99 {sizes[-1]:,} / {base:,}")
            print(f"{'kind':<24}" + "".join(f"{s:>11,}" for s in sizes) + f"{'p50':>9}{'max':>9}{'n':>5}"
                  f"{'matches':>9}{'ratio':>8}")
            for k in KINDS:
                rows = [by.get((s, k, path)) for s in sizes]
                if None in rows:
                    continue
                last = rows[-1]
                ratio = last["p99_ms"] / rows[0]["p99_ms"] if rows[0]["p99_ms"] else float("nan")
                print(f"{k:<24}" + "".join(f"{r['p99_ms']:>11}" for r in rows)  # type: ignore[index]
                      + f"{last['p50_ms']:>9}{last['max_ms']:>9}{last['n']:>5}{last['matches_p50']:>9}{ratio:>7.1f}x")
        short = sum(r.get("hits_not_served", 0) for r in res["queries"])
        print(f"{kind}: hits the re-check did not serve: {short} (every source node is public: expected 0)")


async def main(args) -> None:  # type: ignore[no-untyped-def]
    args.sizes = sorted(int(s) for s in args.sizes.split(","))
    largest = max(args.sizes + [args.baseline])
    t = time.perf_counter()
    corpus = Corpus()
    posts = corpus.batch(largest)
    print(json.dumps({"generated": largest, "seconds": round(time.perf_counter() - t, 1)}), flush=True)
    results = {}
    with tempfile.TemporaryDirectory(prefix="network-search-") as d:
        for kind in args.db.split(","):
            t = time.perf_counter()
            results[kind] = await run_backend(kind, args, posts, corpus, Path(d))
            results[kind]["seconds"] = round(time.perf_counter() - t)
            print(json.dumps({"db": kind, "seconds": results[kind]["seconds"]}), flush=True)
    report(results, args)
    if args.json:
        Path(args.json).write_text(json.dumps({"args": {k: v for k, v in vars(args).items() if k != "json"},
                                               **results}, indent=1))


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--db", default="sqlite,postgres", help="backends, in order (sqlite, postgres)")
    ap.add_argument("--sizes", default="100000,1000000", help="stages of the large database")
    ap.add_argument("--baseline", type=int, default=10_000)
    ap.add_argument("--queries", type=int, default=200, help="queries of each kind")
    ap.add_argument("--budget", type=float, default=25, help="seconds at most per kind and size (>= 20 queries)")
    ap.add_argument("--json")
    asyncio.run(main(ap.parse_args()))
