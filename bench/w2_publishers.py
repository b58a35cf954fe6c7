# SPDX-License-Identifier: AGPL-3.0-or-later
"""W2 many publishers (issue #7): N users each publishing P posts, all at once.

Each user publishes, waits for the IQ result, publishes again. Against, each on a
fresh Prosody, in one run:

* xmppblog    — the real `xmppblog run` process (every post is stamped, signed, indexed
                for search, copied to the public timeline and planned for fan-out);
* naive_store — a slixmpp component that stores each item (one INSERT + COMMIT) and
                answers (bench/baselines.py), on the same kind of database.

Reports publishes/s, publish IQ latency p50/p99, and CPU per publish (component,
Prosody, PostgreSQL).

    .venv/bin/python -m bench.w2_publishers [--users 50] [--posts 20] [--db sqlite|postgres]
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


async def drive(server: Prosody, users: int, posts: int, service: str, comp_pid: int,
                pg: PostgresServer | None) -> dict[str, object]:
    clients = [Mini(server.ip, server.domain, f"w{i}") for i in range(users)]
    for i in range(0, users, 50):
        await asyncio.gather(*(c.connect() for c in clients[i:i + 50]))
    lat: list[float] = []

    async def user(c: Mini) -> None:
        blog = f"{c.user}@{service}"
        for n in range(posts):
            t = time.monotonic()
            reply = await c.request(
                f"<iq type='set' id='p{n}' to='{blog}'><pubsub xmlns='{PS}'><publish node='urn:xmpp:microblog:0'>"
                f"<item><entry xmlns='http://www.w3.org/2005/Atom'><title>bench-{n}-{'x' * 400}</title></entry>"
                "</item></publish></pubsub></iq>")
            assert b"type='result'" in reply or b'type="result"' in reply, reply[:300]
            lat.append((time.monotonic() - t) * 1000)

    await asyncio.sleep(0.5)
    prosody = server.proc.pid  # type: ignore[union-attr]
    c0, p0, d0 = cpu_seconds(comp_pid), cpu_seconds(prosody), tree_cpu(pg.pid if pg else None)
    t0 = time.monotonic()
    await asyncio.gather(*(user(c) for c in clients))
    wall = time.monotonic() - t0
    await asyncio.sleep(0.5)  # fan-out planned by the last posts (none: nobody follows) and logging settle
    c1, p1, d1 = cpu_seconds(comp_pid), cpu_seconds(prosody), tree_cpu(pg.pid if pg else None)
    for c in clients:
        await c.close()
    total = users * posts
    return {"users": users, "posts_each": posts, "publishes": len(lat), "publishes_per_s": len(lat) / wall,
            "ack_ms_p50": pct(lat, 50), "ack_ms_p99": pct(lat, 99),
            "component_cpu_us_per_publish": (c1 - c0) * 1e6 / total,
            "prosody_cpu_us_per_publish": (p1 - p0) * 1e6 / total,
            "db_cpu_us_per_publish": (d1 - d0) * 1e6 / total, "gc": GC}


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--users", type=int, default=50)
    ap.add_argument("--posts", type=int, default=20)
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
                            row = await drive(server, args.users, args.posts, server.component,
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
                            row = await drive(server, args.users, args.posts, f"rogue.{server.domain}", proc.pid, pg)
                        finally:
                            proc.terminate()
                            proc.wait(10)
                finally:
                    net.stop()
                row = {"impl": impl, "db": args.db, **row}
                rows.append(row)
                print(json.dumps(row), flush=True)
    print(f"\nW2 many publishers: {args.users} users x {args.posts} posts, concurrently, on {args.db}; {GC}")
    print(f"{'impl':<12} {'pub/s':>7} {'ack p50':>8} {'ack p99':>8} {'own µs/pub':>11} {'prosody':>8} {'db':>7}")
    for r in rows:
        print(f"{r['impl']:<12} {r['publishes_per_s']:>7.0f} {r['ack_ms_p50']:>8.1f} {r['ack_ms_p99']:>8.1f} "
              f"{r['component_cpu_us_per_publish']:>11.0f} {r['prosody_cpu_us_per_publish']:>8.0f} "
              f"{r['db_cpu_us_per_publish']:>7.0f}")
    x, n = rows[0], rows[1]
    own = (x["component_cpu_us_per_publish"] + x["db_cpu_us_per_publish"]) / max(  # type: ignore[operator]
        1e-9, n["component_cpu_us_per_publish"] + n["db_cpu_us_per_publish"])  # type: ignore[operator]
    print(f"xmppblog (component + database) CPU per publish / naive_store's = {own:.2f} (target ≤ 0.33)")
    Path(args.json or f"bench/w2_{args.db}.json").write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    asyncio.run(main())
