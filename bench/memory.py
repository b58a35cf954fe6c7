# SPDX-License-Identifier: AGPL-3.0-or-later
"""Memory vs stored subscriptions (issue #7): the component's RSS with 10,000 and with
100,000 stored subscriptions must be the same ± 10 %.

For each size: a fresh Prosody (127.0.20.7) and database; 100 blogs each get
SIZE/100 stored subscriptions (subscribers who are offline), written straight into
the database; the real `xmppblog run` starts, every blog owner posts twice (so
every subscription is read and fanned out to), and VmRSS of the component is read
from /proc after start and after the posts.

    .venv/bin/python -m bench.memory [--sizes 10000,100000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import insert, select

from bench.common import GC, PS
from tests.support.component import Component
from tests.support.mini import Mini
from tests.support.prosody import Prosody, ProsodyNet
from xmppblog.storage import migrate
from xmppblog.storage.engine import create_engine
from xmppblog.storage.tables import NodeRow, SubscriptionRow

BLOGS = 100
NODE = "urn:xmpp:microblog:0"


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")


async def fill(url: str, service: str, domain: str, size: int) -> None:
    await migrate.upgrade(url)
    engine = create_engine(url)
    now = datetime.now(UTC)
    async with engine.begin() as conn:
        await conn.execute(insert(NodeRow), [
            {"service": f"u{b}@{service}", "node": NODE, "owner": f"u{b}@{domain}", "access_model": "open",
             "max_items": 10000, "notify_retract": True, "title": "", "created_at": now, "remote": False}
            for b in range(BLOGS)])
        ids = dict((await conn.execute(select(NodeRow.service, NodeRow.id))).all())
        per = size // BLOGS
        for b in range(BLOGS):
            await conn.execute(insert(SubscriptionRow), [
                {"node_id": ids[f"u{b}@{service}"], "jid": f"r{b}x{i}@{domain}", "bare": f"r{b}x{i}@{domain}",
                 "state": "subscribed", "delivery": "event", "failures": 0, "created_at": now}
                for i in range(per)])
    await engine.dispose()


async def one(size: int, base: Path) -> dict[str, object]:
    net = ProsodyNet(base, [Prosody("alpha", "alpha.test", "127.0.20.7", base, [])])
    net.start()
    server = net["alpha"]
    comp = Component(server, base / "xmppblog").for_load()
    try:
        t = time.monotonic()
        await fill(comp.db_url, server.component, server.domain, size)
        print(f"{size} subscriptions stored in {time.monotonic() - t:.1f}s", flush=True)
        comp.start()
        await asyncio.sleep(3)
        pid = comp.proc.pid  # type: ignore[union-attr]
        at_start = rss_kib(pid)
        owners = [Mini(server.ip, server.domain, f"u{b}") for b in range(BLOGS)]
        for i in range(0, BLOGS, 50):
            await asyncio.gather(*(m.connect() for m in owners[i:i + 50]))
        for round_ in range(2):
            for b, m in enumerate(owners):
                reply = await m.request(f"<iq type='set' id='p{round_}' to='u{b}@{server.component}'>"
                                        f"<pubsub xmlns='{PS}'><publish node='{NODE}'><item><entry "
                                        f"xmlns='http://www.w3.org/2005/Atom'><title>post {round_}</title></entry>"
                                        "</item></publish></pubsub></iq>", 30)
                assert b"result" in reply, reply[:300]
        await asyncio.sleep(5)  # fan-out drained
        after = rss_kib(pid)
        for m in owners:
            await m.close()
        return {"subscriptions": size, "rss_kib_after_start": at_start, "rss_kib_after_posts": after,
                "posts": 2 * BLOGS, "notifications": 2 * size, "gc": GC}
    finally:
        comp.stop()
        net.stop()


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="10000,100000")
    ap.add_argument("--json", default="bench/memory.json")
    args = ap.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for size in [int(x) for x in args.sizes.split(",")]:
            rows.append(await one(size, Path(tmp) / str(size)))
            print(json.dumps(rows[-1]), flush=True)
    print("\nComponent memory vs stored subscriptions (VmRSS, KiB)")
    print(f"{'subscriptions':>14} {'after start':>12} {'after posts':>12}")
    for r in rows:
        print(f"{r['subscriptions']:>14} {r['rss_kib_after_start']:>12} {r['rss_kib_after_posts']:>12}")
    if len(rows) == 2:
        a, b = rows
        print(f"RSS after posts, {b['subscriptions']} vs {a['subscriptions']} subscriptions: "
              f"{b['rss_kib_after_posts'] / a['rss_kib_after_posts']:.2f} (target 0.90–1.10)")  # type: ignore[operator]
    Path(args.json).write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    asyncio.run(main())
