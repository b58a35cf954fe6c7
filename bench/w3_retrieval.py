# SPDX-License-Identifier: AGPL-3.0-or-later
"""W3 retrieval (issue #7): the latest 20 items of a node holding N items (default 100,000).

A fresh Prosody and the real `xmppblog run` process; the node is filled through one
real publish, then N items are bulk-inserted into the component's database (the
items are copies of that real entry). One client then asks, one request at a time:

* `rsm`       — `<items node=…/>` with `<set><max>20</max></set>` (XEP-0059), the latest page;
* `max_items` — `<items node=… max_items='20'/>` (XEP-0060 §6.5.7);
* `page 2`    — RSM `<after>` the first page's last id: the next-older page.

Prosody 0.12's own mod_pubsub ignores RSM and returns every item, so it is not
a useful baseline here; the target is an absolute one: p99 under 5 ms.

    .venv/bin/python -m bench.w3_retrieval [--items 100000] [--requests 300] [--db sqlite|postgres]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import insert, select, update

from tests.support.mini import Mini
from bench.common import GC, PS, cpu_seconds, maybe_postgres, pct
from tests.support.component import Component
from tests.support.postgres import fresh_database
from tests.support.prosody import Prosody, ProsodyNet
from xmppblog.storage.engine import create_engine
from xmppblog.storage.tables import ItemRow, NodeRow

RSM = "http://jabber.org/protocol/rsm"
NODE = "urn:xmpp:microblog:0"


async def fill(db_url: str, service: str, count: int) -> None:
    engine = create_engine(db_url)
    async with engine.begin() as conn:
        node_id, = (await conn.execute(select(NodeRow.id).where(NodeRow.service == service,
                                                                 NodeRow.node == NODE))).one()
        payload, = (await conn.execute(select(ItemRow.payload).where(ItemRow.node_id == node_id))).one()
        await conn.execute(update(NodeRow).where(NodeRow.id == node_id).values(max_items=count * 2))
        t = datetime(2026, 1, 1, tzinfo=UTC)
        for start in range(0, count, 5000):
            await conn.execute(insert(ItemRow), [
                {"node_id": node_id, "item_id": f"fill{i}", "publisher": "alice@alpha.test",
                 "payload": payload, "published": t + timedelta(seconds=i), "updated": t + timedelta(seconds=i)}
                for i in range(start, min(count, start + 5000))])
    if engine.dialect.name == "postgresql":
        # A real node gathers 100,000 items over months and autovacuum keeps the planner's
        # statistics current; after a bulk fill of 1.7 s they still say "a few hundred rows"
        # for a minute, and the planner reads all 100,000 index entries to count 1,001.
        async with engine.begin() as conn:
            await conn.exec_driver_sql("ANALYZE items")
    await engine.dispose()


async def run(args: argparse.Namespace, base: Path, db_url: str | None) -> list[dict[str, object]]:
    d = base / "prosody"
    net = ProsodyNet(d, [Prosody("alpha", "alpha.test", "127.0.20.3", d, ["alice", "reader"])])
    net.start()
    comp = Component(net["alpha"], base / "xmppblog", db_url=db_url,
                     extra=f"[limits]\nmax_items_per_node = {args.items * 2}\n")
    comp.for_load()
    server = net["alpha"]
    blog = f"alice@{server.component}"
    rows = []
    try:
        comp.start()
        alice = Mini(server.ip, server.domain, "alice")
        await alice.connect(register=False)
        await alice.request(f"<iq type='set' id='p0' to='{blog}'><pubsub xmlns='{PS}'><publish node='{NODE}'>"
                            "<item><entry xmlns='http://www.w3.org/2005/Atom'><title>first</title></entry></item>"
                            "</publish></pubsub></iq>")
        t = time.monotonic()
        await fill(comp.db_url, blog, args.items)
        print(f"filled {args.items} items in {time.monotonic() - t:.1f}s", flush=True)
        reader = Mini(server.ip, server.domain, "reader")
        await reader.connect(register=False)
        first = await reader.request(f"<iq type='get' id='f' to='{blog}'><pubsub xmlns='{PS}'><items node='{NODE}'/>"
                                     f"<set xmlns='{RSM}'><max>20</max></set></pubsub></iq>")
        m = re.search(rb"<last[^>]*>([^<]+)</last>", first)
        assert m, f"no RSM <last/> in the reply: {first[:300]!r}"
        older = m.group(1).decode()
        queries = {
            "rsm": f"<items node='{NODE}'/><set xmlns='{RSM}'><max>20</max></set>",
            "max_items": f"<items node='{NODE}' max_items='20'/>",
            "page 2": f"<items node='{NODE}'/><set xmlns='{RSM}'><max>20</max><after>{older}</after></set>",
        }
        for name, query in queries.items():
            for i in range(30):  # warm-up, not measured: caches, the first query plans
                await reader.request(f"<iq type='get' id='w{i}' to='{blog}'><pubsub xmlns='{PS}'>{query}</pubsub></iq>")
            lat: list[float] = []
            sizes: list[int] = []
            c0, p0 = cpu_seconds(comp.proc.pid), cpu_seconds(server.proc.pid)  # type: ignore[union-attr]
            for i in range(args.requests):
                t = time.monotonic()
                reply = await reader.request(f"<iq type='get' id='q{i}' to='{blog}'><pubsub xmlns='{PS}'>"
                                             f"{query}</pubsub></iq>")
                lat.append((time.monotonic() - t) * 1000)
                sizes.append(reply.count(b"<item "))
            c1, p1 = cpu_seconds(comp.proc.pid), cpu_seconds(server.proc.pid)  # type: ignore[union-attr]
            assert b"type='result'" in reply or b'type="result"' in reply, reply[:300]
            rows.append({"query": name, "items_in_node": args.items + 1, "requests": args.requests,
                         "items_per_reply": max(sizes), "db": "postgres" if db_url else "sqlite",
                         "latency_ms_p50": pct(lat, 50), "latency_ms_p99": pct(lat, 99),
                         "component_cpu_us_per_request": (c1 - c0) * 1e6 / args.requests,
                         "prosody_cpu_us_per_request": (p1 - p0) * 1e6 / args.requests, "gc": GC})
            print(json.dumps(rows[-1]), flush=True)
        for c in (alice, reader):
            await c.close()
    finally:
        comp.stop()
        net.stop()
    return rows


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--items", type=int, default=100_000)
    ap.add_argument("--requests", type=int, default=300)
    ap.add_argument("--db", choices=("sqlite", "postgres"), default="sqlite")
    ap.add_argument("--json", default="")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        with maybe_postgres(args.db, base) as pg:
            rows = await run(args, base, fresh_database(pg.url) if pg else None)
    print(f"\nW3 retrieval: latest 20 of {args.items + 1} items, {args.requests} requests each, one at a time, "
          f"on {args.db} (target: p99 < 5 ms)")
    print(f"{'query':<10} {'items':>6} {'p50 ms':>8} {'p99 ms':>8} {'own µs/req':>11} {'prosody µs/req':>15}")
    for r in rows:
        print(f"{r['query']:<10} {r['items_per_reply']:>6} {r['latency_ms_p50']:>8.2f} {r['latency_ms_p99']:>8.2f} "
              f"{r['component_cpu_us_per_request']:>11.0f} {r['prosody_cpu_us_per_request']:>15.0f}")
    Path(args.json or f"bench/w3_{args.db}.json").write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    asyncio.run(main())
