# SPDX-License-Identifier: AGPL-3.0-or-later
"""Profile one post's whole server-side path in process: publish (plan, store) and drain.

    .venv/bin/python -m bench.profile_publish [--subscribers 1000] [--posts 50] [--db URL] [--top 25]
                                              [--cluster SHARDS]

Uses the real core (built by the composition root), repositories and OutboxSender over a fresh SQLite
file (or --db), with a `send` that only counts bytes: what is left is
xmppblog's own CPU per post, without XMPP. Prints statements and CPU per post
and per notification, then the cProfile top functions by cumulative time.

With --cluster SHARDS (PostgreSQL --db only), the drain runs as a cluster's worker
holding SHARDS of the 64 outbox shards (the one that holds alice's), with presence
shared through the database (cluster/presence.SharedOnline): what clustering adds
to one post's path, beside a run without it.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import pstats
import tempfile
import time
import xml.etree.ElementTree as ET

from sqlalchemy import event

from tests.support.core import test_core
from xmppblog.core.model import NS_MICROBLOG, Actor, Delivery, NodeRef
from xmppblog.core.pubsub import Limits
from xmppblog.im.online import OnlineTracker
from xmppblog.im.text import im_body
from xmppblog.pubsub.notify import OutboxSender
from xmppblog.pubsub.signing import Signer
from xmppblog.pubsub.xep_0277 import AtomCodec, parse_entry
from xmppblog.storage import migrate
from xmppblog.storage.engine import create_engine, sessionmaker
from xmppblog.storage.repos import uow_factory

ENTRY = ("<item><entry xmlns='http://www.w3.org/2005/Atom'><title>post {n} " + "x" * 400 + "</title></entry></item>")


def draft(n: int) -> object:
    return parse_entry(ET.fromstring(ENTRY.format(n=n)), 65536)


class Clock:
    def now(self):  # type: ignore[no-untyped-def]
        from datetime import UTC, datetime
        return datetime.now(UTC)


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--subscribers", type=int, default=1000)
    ap.add_argument("--posts", type=int, default=50)
    ap.add_argument("--db", default="")
    ap.add_argument("--top", type=int, default=25)
    ap.add_argument("--sql", action="store_true", help="print the statements of one post")
    ap.add_argument("--cluster", type=int, default=0, metavar="SHARDS",
                    help="drain as a cluster worker holding SHARDS outbox shards (PostgreSQL only)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        url = args.db or f"sqlite+aiosqlite:///{tmp}/p.db"
        await migrate.upgrade(url)
        engine = create_engine(url)
        statements = 0

        shown: list[str] = []
        capture = False  # the statements of one steady-state post (the last plain one)

        def count(_conn: object, _cursor: object, statement: str, *_a: object) -> None:
            nonlocal statements
            statements += 1
            if capture:
                shown.append(" ".join(statement.split())[:150])

        event.listen(engine.sync_engine, "before_cursor_execute", count)
        clock = Clock()
        uow = uow_factory(sessionmaker(engine), clock,
                          local=lambda j: j.split("/")[0].endswith(("@example.org", "blog.example.org")))
        signer = Signer(uow, clock)
        await signer.load()
        ref = NodeRef("alice@blog.example.org", NS_MICROBLOG)
        online: OnlineTracker = OnlineTracker()
        cluster: dict = {}
        if args.cluster:
            from xmppblog.cluster.presence import SharedOnline
            from xmppblog.core.shards import SHARDS, shard_of
            from xmppblog.storage.cluster import ClusterStore, cluster_engine
            store = ClusterStore(cluster_engine(url), "profiler", 60.0)
            await store.setup()
            await store.heartbeat(True)
            online = SharedOnline(store)
            mine = shard_of(ref.service)
            held = frozenset([mine, *[s for s in range(SHARDS) if s != mine][:args.cluster - 1]])
            cluster = {"shards": lambda: held, "batch_lock": asyncio.Lock(), "idle_poll": 0.25}
        core = test_core(uow, engine, url, clock, Limits(max_payload_bytes=60000),  # type: ignore[arg-type]
                         online=online, codec=AtomCodec(signer))
        service = core.pubsub
        alice = Actor("alice@example.org")
        await service.publish(alice, ref, None, draft(-1))
        for i in range(args.subscribers):
            await service.subscribe(Actor(f"s{i}@example.org"), ref, f"s{i}@example.org/r", Delivery.EVENT)
        sent = [0, 0]

        def send(data: str, largest: int | None = None) -> bool:
            sent[0] += 1
            sent[1] += len(data)
            return True

        up = asyncio.Event()
        up.set()
        sender = OutboxSender(uow, send, up, clock, im_body=im_body, **cluster)
        core.transactions.on_commit(sender.wake)
        while await sender.drain_once():
            pass
        notes = args.posts * max(1, args.subscribers)  # per notification; per post with no subscribers
        prof = cProfile.Profile()
        for label, profiler in (("plain", None), ("profiled", prof)):
            sent[:] = [0, 0]
            statements = 0
            cpu0 = time.process_time()  # all threads: includes aiosqlite's
            if profiler:
                profiler.enable()
            for n in range(args.posts):
                capture = args.sql and profiler is None and n == args.posts - 1
                await service.publish(alice, ref, None, draft(n))
                while await sender.drain_once():
                    pass
                capture = False
            if profiler:
                profiler.disable()
            cpu = time.process_time() - cpu0
            print(f"{label}: {args.posts} posts x {args.subscribers} subscribers: {statements / args.posts:.1f} "
                  f"SQL statements per post, {cpu / args.posts * 1000:.2f} ms CPU per post, "
                  f"{cpu / notes * 1e6:.2f} µs per notification; {sent[0]} writes, {sent[1] // notes} bytes/notif")
        if args.sql:
            print("\n".join(shown))
        pstats.Stats(prof).sort_stats("tottime").print_stats(args.top)
        core.search.close()
        await engine.dispose()


if __name__ == "__main__":
    asyncio.run(main())
