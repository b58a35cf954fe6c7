# SPDX-License-Identifier: AGPL-3.0-or-later
"""The cost of a full-text archive page (XEP-0313) on a node the search index does not
hold (issue #15): a comments node of N items (default 1,000, what one scan may read),
each a realistic Atom entry, asked for a word no item has, so the scan reads all of
them, beside two baselines in the same run on the same database: an unfiltered page of
the same node, and a full-text page through the index on a public blog of N items.

Times are per query on the event loop (the cost a scan adds to the server's loop).

    .venv/bin/python -m bench.archive_scan [--items 1000] [--queries 30] [--db sqlite|postgres]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
import xml.etree.ElementTree as ET
from pathlib import Path

from bench.common import maybe_postgres, pct
from tests.support.core import FakeClock, test_core
from tests.support.postgres import fresh_database
from xmppblog.core.archive import SCAN_ROWS, ArchiveQuery
from xmppblog.core.model import NS_MICROBLOG, Actor, NodeRef
from xmppblog.core.pubsub import Limits
from xmppblog.pubsub.xep_0277 import parse_entry
from xmppblog.storage import migrate
from xmppblog.storage.engine import create_engine, sessionmaker
from xmppblog.storage.repos import uow_factory

ALICE = Actor("alice@example.org")
BOB = Actor("bob@example.org")
BLOG = NodeRef("alice@blog.example.org", NS_MICROBLOG)
TEXT = ("Federated microblogging over XMPP: each post is an Atom entry on a PubSub node, "
        "followed from any IM client. #xmpp #federation post number {n} with a few more words to read")


def entry(n: int):
    xml = (f"<item><entry xmlns='http://www.w3.org/2005/Atom'><title>{TEXT.format(n=n)}</title>"
           f"<content type='xhtml'><div xmlns='http://www.w3.org/1999/xhtml'><p>{TEXT.format(n=n)}</p>"
           "<p>A second paragraph, as clients send.</p></div></content></entry></item>")
    return parse_entry(ET.fromstring(xml), 65536)


async def timed(core, actor, ref, query, n):
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        await core.archive.query(actor, ref, query)
        out.append((time.perf_counter() - t0) * 1000)
    return out


async def main(args) -> dict:
    with tempfile.TemporaryDirectory() as d, maybe_postgres(args.db, Path(d)) as pg:
        url = fresh_database(pg.url) if pg else f"sqlite+aiosqlite:///{d}/bench.db"
        await migrate.upgrade(url)
        engine = create_engine(url)
        clock = FakeClock()
        core = test_core(uow_factory(sessionmaker(engine), clock), engine, url, clock,
                         Limits(max_items_per_node=args.items + 10, max_page_items=50))
        await core.pubsub.publish(ALICE, BLOG, "p", entry(0))
        comments = BLOG.comments("p")
        for n in range(args.items):
            await core.pubsub.publish(BOB, comments, f"c{n}", entry(n))
        for n in range(1, args.items):
            await core.pubsub.publish(ALICE, BLOG, f"p{n}", entry(n))
        cases = {
            "unfiltered page of the comments node (baseline)": (comments, ArchiveQuery(max=20)),
            "indexed full text on the blog, no hit (baseline)": (BLOG, ArchiveQuery(text="zzzabsent", max=20)),
            f"scanned full text on the comments node, no hit ({min(args.items, SCAN_ROWS)} items read)":
                (comments, ArchiveQuery(text="zzzabsent", max=20)),
            "scanned full text, a hit on every item (page of 20)": (comments, ArchiveQuery(text="federation", max=20)),
        }
        results = {}
        for name, (ref, q) in cases.items():
            await timed(core, BOB, ref, q, 3)  # warm
            ms = await timed(core, BOB, ref, q, args.queries)
            results[name] = {"p50_ms": round(pct(ms, 50), 2), "p99_ms": round(pct(ms, 99), 2)}
        core.search.close()
        await engine.dispose()
    return {"db": args.db, "items": args.items, "queries": args.queries, "results": results}


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--items", type=int, default=1000)
    ap.add_argument("--queries", type=int, default=30)
    ap.add_argument("--db", choices=("sqlite", "postgres"), default="sqlite")
    out = asyncio.run(main(ap.parse_args()))
    print(json.dumps(out, indent=2))
