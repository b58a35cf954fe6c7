# SPDX-License-Identifier: AGPL-3.0-or-later
"""W2 many publishers (issue #7): N users each publishing P posts, all at once.

Each user publishes, waits for the IQ result, publishes again. With `--followers S`,
S online subscribers (separate accounts) follow every one of the N users over
XEP-0060 first, so each post fans out to S. Against, each on a fresh Prosody, in
one run:

* xmppblog    — the real `xmppblog run` process (every post is stamped, signed, indexed
                for search, copied to the public timeline and planned for fan-out from
                the durable outbox);
* naive_store — a slixmpp component that stores each item (one INSERT + COMMIT), answers,
                and with followers reads the node's subscribers (stored by its subscribe
                handler) and sends one Message object to each (bench/baselines.py), on the
                same kind of database. It keeps no outbox: a crash loses its fan-out.

Reports publishes/s, publish IQ latency p50/p99, notifications delivered, and CPU per
publish (component, Prosody, PostgreSQL) from the first publish until every
notification arrived.

    .venv/bin/python -m bench.w2_publishers [--users 50] [--posts 20] [--followers 0]
                                            [--db sqlite|postgres]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tests.support.mini import Mini
from bench.common import GC, PS, ROOT, cpu_seconds, maybe_postgres, pct, tree_cpu
from tests.support.component import Component
from tests.support.postgres import PostgresServer, fresh_database
from tests.support.prosody import SECRET, Prosody, ProsodyNet

IP = "127.0.20.4"


def publish_xml(blog: str, n: int) -> str:
    return (f"<iq type='set' id='p{n}' to='{blog}'><pubsub xmlns='{PS}'><publish node='urn:xmpp:microblog:0'>"
            f"<item><entry xmlns='http://www.w3.org/2005/Atom'><title>bench-{n}-{'x' * 400}</title></entry>"
            "</item></publish></pubsub></iq>")


async def follow(server: Prosody, clients: list[Mini], service: str, followers: int) -> list[Mini]:
    """Every user posts once (their node exists), then S subscribers follow every user."""
    for c in clients:
        assert b"type='result'" in (reply := await c.request(publish_xml(f"{c.user}@{service}", 99999))) \
            or b'type="result"' in reply, reply[:300]
    subs = [Mini(server.ip, server.domain, f"f{i}") for i in range(followers)]
    for i in range(0, followers, 50):
        await asyncio.gather(*(m.connect() for m in subs[i:i + 50]))

    async def subscribe_all(m: Mini) -> None:
        for c in clients:
            reply = await m.request(f"<iq type='set' id='s{c.user}' to='{c.user}@{service}'><pubsub xmlns='{PS}'>"
                                    f"<subscribe node='urn:xmpp:microblog:0' jid='{m.jid}'/></pubsub></iq>")
            assert b"subscription" in reply, reply[:300]
    for i in range(0, followers, 50):
        await asyncio.gather(*(subscribe_all(m) for m in subs[i:i + 50]))
    await asyncio.sleep(1.0)  # warm-up notifications arrive before counting starts
    for m in subs:
        m.start_counting()
    return subs


async def drive(server: Prosody, users: int, posts: int, followers: int, service: str, comp_pid: int,
                pg: PostgresServer | None) -> dict[str, object]:
    clients = [Mini(server.ip, server.domain, f"w{i}") for i in range(users)]
    for i in range(0, users, 50):
        await asyncio.gather(*(c.connect() for c in clients[i:i + 50]))
    subs = await follow(server, clients, service, followers) if followers else []
    lat: list[float] = []

    async def user(c: Mini) -> None:
        blog = f"{c.user}@{service}"
        for n in range(posts):
            t = time.monotonic()
            reply = await c.request(publish_xml(blog, n))
            assert b"type='result'" in reply or b'type="result"' in reply, reply[:300]
            lat.append((time.monotonic() - t) * 1000)

    await asyncio.sleep(0.5)
    prosody = server.proc.pid  # type: ignore[union-attr]
    c0, p0, d0 = cpu_seconds(comp_pid), cpu_seconds(prosody), tree_cpu(pg.pid if pg else None)
    t0 = time.monotonic()
    await asyncio.gather(*(user(c) for c in clients))
    wall = time.monotonic() - t0
    expected = users * posts * followers
    deadline = time.monotonic() + 120

    def delivered() -> int:  # the warm-up post (99999) may arrive as the last item on subscribe
        return sum(v for m in subs for n, v in m.seen.items() if n < posts)
    while delivered() < expected and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    await asyncio.sleep(0.5)  # the last fan-out and logging settle
    c1, p1, d1 = cpu_seconds(comp_pid), cpu_seconds(prosody), tree_cpu(pg.pid if pg else None)
    got = delivered()
    for c in clients + subs:
        await c.close()
    total = users * posts
    return {"users": users, "posts_each": posts, "followers": followers, "delivered": got,
            "expected": expected, "publishes": len(lat), "publishes_per_s": len(lat) / wall,
            "ack_ms_p50": pct(lat, 50), "ack_ms_p99": pct(lat, 99),
            "component_cpu_us_per_publish": (c1 - c0) * 1e6 / total,
            "prosody_cpu_us_per_publish": (p1 - p0) * 1e6 / total,
            "db_cpu_us_per_publish": (d1 - d0) * 1e6 / total, "gc": GC}


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--users", type=int, default=50)
    ap.add_argument("--posts", type=int, default=20)
    ap.add_argument("--followers", type=int, default=0, help="online subscribers following every user")
    ap.add_argument("--db", choices=("sqlite", "postgres"), default="sqlite")
    ap.add_argument("--json", default="")
    args = ap.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        with maybe_postgres(args.db, base) as pg:
            for impl in ("xmppblog", "naive_store"):
                d = base / f"prosody-{impl}"
                net = ProsodyNet(d, [Prosody("alpha", "alpha.test", IP, d, [])])
                net.start()
                server = net["alpha"]
                db = fresh_database(pg.url) if pg else None
                try:
                    if impl == "xmppblog":
                        comp = Component(server, base / "xmppblog", db_url=db).for_load()
                        comp.start()
                        try:
                            row = await drive(server, args.users, args.posts, args.followers, server.component,
                                              comp.proc.pid, pg)  # type: ignore[union-attr]
                        finally:
                            comp.stop()
                    else:
                        url = db or str(base / "naive.db")
                        proc = subprocess.Popen([sys.executable, "-m", "bench.baselines", "naive_store", server.ip,
                                                 str(server.component_port), f"rogue.{server.domain}", SECRET, url],
                                                cwd=ROOT, stdout=subprocess.PIPE, text=True)
                        try:
                            assert proc.stdout is not None
                            await asyncio.to_thread(proc.stdout.readline)
                            row = await drive(server, args.users, args.posts, args.followers,
                                              f"rogue.{server.domain}", proc.pid, pg)
                        finally:
                            proc.terminate()
                            proc.wait(10)
                finally:
                    net.stop()
                row = {"impl": impl, "db": args.db, **row}
                rows.append(row)
                print(json.dumps(row), flush=True)
    print(f"\nW2 many publishers: {args.users} users x {args.posts} posts, concurrently, "
          f"{args.followers} followers each, on {args.db}; {GC}")
    print(f"{'impl':<12} {'delivered':>15} {'pub/s':>7} {'ack p50':>8} {'ack p99':>8} {'own µs/pub':>11} "
          f"{'prosody':>8} {'db':>7}")
    for r in rows:
        print(f"{r['impl']:<12} {str(r['delivered']) + '/' + str(r['expected']):>15} "
              f"{r['publishes_per_s']:>7.0f} {r['ack_ms_p50']:>8.1f} {r['ack_ms_p99']:>8.1f} "
              f"{r['component_cpu_us_per_publish']:>11.0f} {r['prosody_cpu_us_per_publish']:>8.0f} "
              f"{r['db_cpu_us_per_publish']:>7.0f}")
    x, n = rows[0], rows[1]
    own = (x["component_cpu_us_per_publish"] + x["db_cpu_us_per_publish"]) / max(  # type: ignore[operator]
        1e-9, n["component_cpu_us_per_publish"] + n["db_cpu_us_per_publish"])  # type: ignore[operator]
    print(f"xmppblog (component + database) CPU per publish / naive_store's = {own:.2f} (target ≤ 0.33)")
    suffix = f"_f{args.followers}" if args.followers else ""
    Path(args.json or f"bench/w2_{args.db}{suffix}.json").write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    asyncio.run(main())
