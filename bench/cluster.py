# SPDX-License-Identifier: AGPL-3.0-or-later
"""Scale-out (issue #16): exactly once, and work conservation, with 1, 2 and 4 workers.

One ejabberd 23.01 (127.0.20.9) with `domain_balancing` (type destination, K fixed
slots, K = 4 by default, mod_multicast on) and one PostgreSQL. For each worker count
W, a fresh database and W `xmppblog run` workers with K / W connections each, so the
K slots never change between runs; W = 0 is the baseline in the same run: one process
with all K connections and cluster mode off (what clustering itself costs). P posters each own a blog; S subscribers
subscribe (XEP-0060) to every blog. Each poster publishes N posts at a fixed pace;
every post carries a per-blog sequence number (`bench-<blog*100000+seq>-`) and
every subscriber records what it got and when.

Reported per W:
* lost (acknowledged posts a subscriber never got), duplicated, and per-blog order
  (a subscriber got seq k+1 before seq k) in steady state;
* CPU (user+system from /proc) of all workers, ejabberd's beam and PostgreSQL
  (postmaster and backends) per delivered notification and per publish; the ratio
  of W to 1 worker is the work-conservation figure;
* the idle cost of coordination per worker: the workers' CPU over an idle period
  (heartbeats, lease renewals, outbox polls).

With --kills K (W = 4 only): under a steady load, SIGKILL a worker that holds
shards, start a new one in its place, K times; then count acknowledged posts lost
and duplicates (at most the killed worker's in-flight batch is expected). Then the
same with SIGTERM (none lost, none duplicated is expected).

    .venv/bin/python -m bench.cluster [--workers 1,2,4] [--slots 4] [--posters 8]
                                      [--subscribers 100] [--posts 20] [--interval 0.2]
                                      [--kills 0] [--heartbeat 1.0] [--lease 4.0] [--json out.json]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import random
import signal
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import asyncpg

from bench.common import PS, cpu_seconds, pct, tree_cpu
from tests.support.component import Component
from tests.support.ejabberd import Ejabberd, unavailable
from tests.support.mini import Mini
from tests.support.postgres import PostgresServer, fresh_database

IP = "127.0.20.9"
NODE = "urn:xmpp:microblog:0"
BLOG = 100_000  # marker = blog index * BLOG + sequence number


def post(to: str, marker: int, iq_id: str) -> str:
    return (f"<iq type='set' id='{iq_id}' to='{to}'><pubsub xmlns='{PS}'><publish node='{NODE}'><item>"
            f"<entry xmlns='http://www.w3.org/2005/Atom'><title>bench-{marker}-{'x' * 300}</title></entry>"
            "</item></publish></pubsub></iq>")


class Cluster:
    def __init__(self, server: Ejabberd, base: Path, db: str, connections: int, clustered: bool = True,
                 heartbeat: float = 1.0, lease: float = 4.0) -> None:
        self.server, self.base, self.db, self.connections = server, base, db, connections
        self.clustered, self.heartbeat, self.lease = clustered, heartbeat, lease
        self.workers: dict[str, Component] = {}
        self.made = 0

    def start(self) -> str:
        self.made += 1
        name = f"w{self.made}"
        cluster = (f'[cluster]\nenabled = true\nworker_id = "{name}"\nheartbeat_seconds = {self.heartbeat}\n'
                   f'lease_seconds = {self.lease}\n') if self.clustered else ""
        comp = Component(self.server, self.base / name, db_url=self.db, extra=cluster)  # type: ignore[arg-type]
        comp.for_load()
        comp.config.write_text(comp.config.read_text().replace(
            "reconnect_max_delay = 2.0\n", f"reconnect_max_delay = 2.0\nconnections = {self.connections}\n"))
        comp.start(wait=False)
        self.workers[name] = comp
        return name

    def pids(self) -> list[int]:
        return [c.proc.pid for c in self.workers.values() if c.proc is not None and c.proc.poll() is None]

    async def leases(self) -> dict[str, int]:
        conn = await asyncpg.connect(self.db.replace("postgresql+asyncpg://", "postgresql://"))
        try:
            rows = await conn.fetch("SELECT owner, count(*) AS n FROM cluster_leases WHERE owner IS NOT NULL "
                                    "AND until > now() GROUP BY owner")
        except asyncpg.UndefinedTableError:
            return {}
        finally:
            await conn.close()
        return {r["owner"]: r["n"] for r in rows}

    async def settled(self, want: int, timeout: float = 90.0) -> dict[str, int]:
        """Wait until `want` workers send, sharing the 64 shards evenly."""
        end = time.monotonic() + timeout
        leases: dict[str, int] = {}
        while time.monotonic() < end:
            leases = await self.leases()
            if len(leases) == want and sum(leases.values()) == 64 and max(leases.values()) <= -(-64 // want):
                return leases
            await asyncio.sleep(0.5)
        raise RuntimeError(f"the cluster did not settle on {want} sending workers: {leases}")

    def stop(self) -> None:
        for comp in self.workers.values():
            comp.stop()


class Load:
    """Posters and subscribers, and what each subscriber got."""

    def __init__(self, server: Ejabberd, run: str, posters: int, subscribers: int) -> None:
        self.posters = [Mini(server.ip, server.domain, f"{run}p{i}") for i in range(posters)]
        self.subs = [Mini(server.ip, server.domain, f"{run}s{i}") for i in range(subscribers)]
        self.component = server.component
        self.acked: list[int] = []
        self.publish_ms: list[float] = []

    async def setup(self) -> None:
        for i in range(0, len(self.posters + self.subs), 50):
            await asyncio.gather(*(m.connect() for m in (self.posters + self.subs)[i:i + 50]))
        for b, p in enumerate(self.posters):  # each blog exists before anyone subscribes
            reply = await p.request(post(f"{p.user}@{self.component}", b * BLOG, "first"), timeout=30)
            assert b"type='result'" in reply or b'type="result"' in reply, reply
        for s in self.subs:
            for p in self.posters:
                await s.request(f"<iq type='set' id='sub' to='{p.user}@{self.component}'><pubsub xmlns='{PS}'>"
                                f"<subscribe node='{NODE}' jid='{s.jid}'/></pubsub></iq>", timeout=30)
        for m in self.posters + self.subs:
            m.start_counting()

    async def publish(self, posts: int, interval: float, first: int = 1) -> None:
        async def one(b: int, p: Mini) -> None:
            for seq in range(first, first + posts):
                marker = b * BLOG + seq
                t0 = time.monotonic()
                if await p.ask(post(f"{p.user}@{self.component}", marker, f"p{seq}"), timeout=10) == b"result":
                    self.acked.append(marker)
                    self.publish_ms.append((time.monotonic() - t0) * 1000)
                await asyncio.sleep(interval)
        await asyncio.gather(*(one(b, p) for b, p in enumerate(self.posters)))

    def delivered(self) -> int:
        return sum(sum(s.seen.values()) for s in self.subs)

    async def drained(self, timeout: float = 60.0) -> None:
        end = time.monotonic() + timeout
        want = set(self.acked)
        while time.monotonic() < end and not all(want <= set(s.seen) for s in self.subs):
            await asyncio.sleep(0.2)

    def tally(self) -> dict[str, int]:
        want = set(self.acked)
        lost = sum(len(want - set(s.seen)) for s in self.subs)
        dup = sum(n - 1 for s in self.subs for m, n in s.seen.items() if m in want and n > 1)
        disorder = 0
        for s in self.subs:
            by_blog: dict[int, list[tuple[float, int]]] = {}
            for m in want & set(s.first_seen):
                by_blog.setdefault(m // BLOG, []).append((s.first_seen[m], m % BLOG))
            for got in by_blog.values():
                seqs = [seq for _, seq in sorted(got)]
                disorder += sum(1 for a, b in zip(seqs, seqs[1:], strict=False) if b < a)
        return {"acked": len(want), "lost": lost, "duplicated": dup, "out_of_order": disorder}

    async def close(self) -> None:
        await asyncio.gather(*(m.close() for m in self.posters + self.subs))


async def one_run(server: Ejabberd, pg: PostgresServer, base: Path, workers: int, args) -> dict:
    """W workers (W = 0: the baseline, one process with cluster mode off and all K connections)."""
    beam = int((server.base / "ejabberd.pid").read_text().strip())
    clustered = workers > 0
    workers = max(workers, 1)
    run = f"n{workers}" if clustered else "base"
    cluster = Cluster(server, base / run, fresh_database(pg.url), args.slots // workers, clustered,
                      args.heartbeat, args.lease)
    load = Load(server, run, args.posters, args.subscribers)
    try:
        for _ in range(workers):
            cluster.start()
        if clustered:
            await cluster.settled(workers)
        else:
            await asyncio.to_thread(next(iter(cluster.workers.values())).wait_log, "multicast: ", 60)
        await load.setup()
        await asyncio.sleep(2)
        # idle: what coordination costs (heartbeats, lease renewals, outbox polls)
        pids = cluster.pids()
        before = [cpu_seconds(p) for p in pids]
        await asyncio.sleep(args.idle)
        idle = sum(cpu_seconds(p) - b for p, b in zip(pids, before, strict=True)) / args.idle / workers
        delivered_before = load.delivered()
        cpu0 = (sum(cpu_seconds(p) for p in pids), tree_cpu(beam), tree_cpu(pg.pid))
        await load.publish(args.posts, args.interval)
        await load.drained()
        cpu1 = (sum(cpu_seconds(p) for p in pids), tree_cpu(beam), tree_cpu(pg.pid))
        delivered = load.delivered() - delivered_before
        spent = [b - a for a, b in zip(cpu0, cpu1, strict=True)]
        publishes = len(load.acked)
        result = {
            "workers": workers if clustered else "1, cluster off (baseline)",
            "connections_each": args.slots // workers, "slots": args.slots,
            **load.tally(), "delivered": delivered,
            "publish_ack_ms_p50": round(pct(load.publish_ms, 50), 1),
            "publish_ack_ms_p99": round(pct(load.publish_ms, 99), 1),
            "cpu_us_per_notification": {k: round(v / max(1, delivered) * 1e6, 2)
                                        for k, v in zip(("workers", "ejabberd", "postgres"), spent, strict=True)},
            "cpu_us_per_notification_total": round(sum(spent) / max(1, delivered) * 1e6, 2),
            "cpu_ms_per_publish_total": round(sum(spent) / max(1, publishes) * 1e3, 3),
            "idle_cpu_percent_per_worker": round(idle * 100, 2),
        }
        if args.kills and clustered and workers == 4:
            result["kills"] = await kills(cluster, load, args)
            result["sigterms"] = await kills(cluster, load, args, signal.SIGTERM, first=50_000)
        return result
    finally:
        await load.close()
        cluster.stop()


async def kills(cluster: Cluster, load: Load, args, sig: signal.Signals = signal.SIGKILL, first: int = 1000) -> dict:
    """Stop a sending worker with `sig` under load and start another in its place (a worker
    removed, one added), `args.kills` times; then what the subscribers got."""
    load.acked.clear()
    for s in load.subs:
        s.seen.clear()
        s.first_seen.clear()
    publishing = asyncio.ensure_future(load.publish(args.kills * 40, 0.25, first=first))
    stopped = []
    for _ in range(args.kills):
        await asyncio.sleep(4)
        leases = await cluster.leases()
        victim = random.choice(sorted(leases))
        await asyncio.to_thread(cluster.workers[victim].stop, sig)
        stopped.append(victim)
        cluster.start()
        await cluster.settled(4)
    await publishing
    await load.drained(90)
    return {"signal": sig.name, "stopped": stopped, **load.tally()}


@contextlib.contextmanager
def balanced_host(domain: str, ip: str, slots: int,
                  extra_hosts: str = "") -> Iterator[tuple[Ejabberd, PostgresServer, Path]]:
    """A fresh PostgreSQL and an ejabberd with `domain_balancing` (destination, `slots` fixed
    slots; `extra_hosts`: the hosts-file lines of the servers it federates with), both stopped
    afterwards, and a scratch directory; exits when either cannot run."""
    if why := unavailable():
        raise SystemExit(why)
    with tempfile.TemporaryDirectory() as d:
        base = Path(d)
        pg = PostgresServer(base / "pg")
        if why := pg.unavailable():
            raise SystemExit(why)
        pg.start()
        # the clients register themselves in band
        server = Ejabberd(domain, ip, base / "ejabberd", [], balancing=("destination", slots),
                          extra_hosts=extra_hosts)
        try:
            server.start()
            yield server, pg, base
        finally:
            server.stop()
            pg.stop()


async def main(args) -> list[dict]:
    out = []
    with balanced_host("bench.test", IP, args.slots) as (server, pg, base):
        for w in args.workers:
            r = await one_run(server, pg, base, w, args)
            print(json.dumps(r), flush=True)
            out.append(r)
    return out


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workers", type=lambda s: [int(x) for x in s.split(",")], default=[0, 1, 2, 4],
                    help="worker counts to run; 0 is the baseline: one process, cluster mode off")
    ap.add_argument("--slots", type=int, default=4)
    ap.add_argument("--posters", type=int, default=8)
    ap.add_argument("--subscribers", type=int, default=100)
    ap.add_argument("--posts", type=int, default=20)
    ap.add_argument("--interval", type=float, default=0.2)
    ap.add_argument("--idle", type=float, default=20.0)
    ap.add_argument("--kills", type=int, default=0)
    ap.add_argument("--heartbeat", type=float, default=1.0, help="[cluster] heartbeat_seconds (default 1.0)")
    ap.add_argument("--lease", type=float, default=4.0, help="[cluster] lease_seconds (default 4.0: kills are "
                    "taken over fast; the product's defaults are 2.0 and 10.0)")
    ap.add_argument("--json")
    a = ap.parse_args()
    if any(a.slots % max(w, 1) for w in a.workers):
        raise SystemExit("--slots must be a multiple of every worker count (the slots never change)")
    results = asyncio.run(main(a))
    if a.json:
        Path(a.json).write_text(json.dumps(results, indent=2))
