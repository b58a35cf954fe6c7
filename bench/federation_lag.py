# SPDX-License-Identifier: AGPL-3.0-or-later
"""No lag (issue #16): end-to-end federation latency from a cluster to 1,000 followers on 3
other servers, and how fast a receiving server's backlog drains after an outage.

The sender: an ejabberd 23.01 (lag.test, 127.0.20.11, domain_balancing destination,
2 slots) with 2 xmppblog workers and PostgreSQL. The receivers: three Prosody 0.12
servers (r1, r2, r3.test on 127.0.20.12-14), each with its own xmppblog (SQLite)
and F/3 followers who follow poster@lag.test by chat (their server's xmppblog
follows once per server) and receive chat messages.

* live: the poster publishes P posts, one every `interval` seconds; latency is from
  the publish result to each follower's client receiving the post.
* outage: r3's Prosody is stopped for `outage` seconds (default 600) while the
  poster goes on at the same pace; then it is started again and its followers
  log in again. The backlog is what was published meanwhile. The server's
  backlog has drained when r3's xmppblog holds every post of it (pushed, or
  fetched by its catch-up when it reconnected); the drain rate (backlog / time
  from r3 being back to that) is compared with the live rate (1 / interval).
  Chat deliveries to r3's followers are counted too: posts its catch-up fetched
  are stored without a chat message by design (followers who were offline read
  them with `timeline`), so not every follower gets every post of an outage.

    .venv/bin/python -m bench.federation_lag [--followers 1000] [--posts 30] [--interval 1.0]
                                             [--outage 600] [--json out.json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import time
from pathlib import Path

from bench.cluster import Cluster, balanced_host, post
from bench.common import pct
from tests.support.component import Component
from tests.support.mini import Mini
from tests.support.postgres import fresh_database
from tests.support.prosody import Prosody, ProsodyNet

SENDER_IP = "127.0.20.11"
RECEIVERS = [("r1", "r1.test", "127.0.20.12"), ("r2", "r2.test", "127.0.20.13"), ("r3", "r3.test", "127.0.20.14")]
SUBSCRIBE = re.compile(rb"<presence[^>]*type=['\"]subscribe['\"]")


async def follow(f: Mini, service: str, who: str) -> None:
    """Follow `who` by chat through the follower's own xmppblog, and accept its presence request."""
    f.send(f"<message to='{service}' type='chat'><body>follow {who}</body></message>")
    seen = b""
    while f"Now following {who}".encode() not in seen or not SUBSCRIBE.search(seen):
        seen += await f.wait_for(rb".+", 30)
    f.send(f"<presence to='{service}' type='subscribed'/>")


async def main(args) -> dict:
    hosts = "".join(f"{ip} {dom} blog.{dom}\n" for _, dom, ip in RECEIVERS)
    with balanced_host("lag.test", SENDER_IP, 2, hosts) as (sender, pg, base):
        servers = [Prosody(n, dom, ip, base, []) for n, dom, ip in RECEIVERS]
        net = ProsodyNet(base, servers, extra_hosts=f"{SENDER_IP} lag.test blog.lag.test\n")
        net.start()
        comps = [Component(s, base / f"x{s.name}").for_load() for s in servers]
        cluster = Cluster(sender, base / "cluster", fresh_database(pg.url), 1)
        minis: list[Mini] = []
        try:
            for c in comps:
                c.start()
            for _ in range(2):
                cluster.start()
            await cluster.settled(2)
            poster = Mini(SENDER_IP, "lag.test", "poster")
            await poster.connect()
            minis.append(poster)
            blog = f"poster@{sender.component}"
            assert b"result" in await poster.request(post(blog, 0, "first"), timeout=30)
            followers: dict[str, list[Mini]] = {}
            for s in servers:
                group = [Mini(s.ip, s.domain, f"f{i}") for i in range(args.followers // len(servers))]
                for i in range(0, len(group), 50):
                    await asyncio.gather(*(m.connect() for m in group[i:i + 50]))
                for i in range(0, len(group), 25):
                    await asyncio.gather(*(follow(m, s.component, "poster@lag.test") for m in group[i:i + 25]))
                followers[s.name] = group
                minis += group
            for m in minis:
                m.start_counting()
            await asyncio.sleep(2)

            async def publish(first: int, count: int) -> dict[int, float]:
                acked: dict[int, float] = {}
                t0 = time.monotonic()
                for n in range(first, first + count):
                    await asyncio.sleep(max(0.0, t0 + (n - first) * args.interval - time.monotonic()))
                    if await poster.ask(post(blog, n, f"p{n}"), timeout=10) == b"result":
                        acked[n] = time.monotonic()
                return acked

            # live
            live = await publish(1, args.posts)
            everyone = [m for g in followers.values() for m in g]
            end = time.monotonic() + 60
            while time.monotonic() < end and not all(set(live) <= set(m.first_seen) for m in everyone):
                await asyncio.sleep(0.1)
            lat = [(m.first_seen[n] - t) * 1000 for m in everyone for n, t in live.items() if n in m.first_seen]
            missing = sum(len(set(live) - set(m.first_seen)) for m in everyone)
            result: dict = {"followers": len(everyone), "servers": len(servers), "posts": len(live),
                            "live_latency_ms_p50": round(pct(lat, 50), 1),
                            "live_latency_ms_p99": round(pct(lat, 99), 1), "live_missing": missing}
            print(json.dumps(result), flush=True)

            # outage of r3
            r3 = servers[2]
            down = followers["r3"]
            for m in down:
                await m.close()
            await asyncio.to_thread(r3.stop)
            outage = asyncio.ensure_future(publish(10_000, max(1, int(args.outage / args.interval))))
            await asyncio.sleep(args.outage)
            backlog = await outage
            await asyncio.to_thread(r3.start)
            back = time.monotonic()
            fresh = [Mini(r3.ip, r3.domain, m.user) for m in down]
            for i in range(0, len(fresh), 50):
                await asyncio.gather(*(m.connect(register=False) for m in fresh[i:i + 50]))
            for m in fresh:
                m.start_counting()
            # the server's backlog: every post of the outage stored by r3's xmppblog (pushed, or
            # fetched by its catch-up when it reconnected)
            end = time.monotonic() + args.drain_timeout
            stored_at = None
            while time.monotonic() < end:
                if stored_at is None and set(backlog) <= await comps[2].stored_markers():
                    stored_at = time.monotonic()
                if stored_at is not None and all(set(backlog) <= set(m.first_seen) for m in fresh):
                    break
                if stored_at is not None and time.monotonic() - stored_at > 30:
                    break  # what the followers have not got 30 s later, they do not get by chat
                await asyncio.sleep(0.5)
            firsts = [min((m.first_seen[n] for n in backlog if n in m.first_seen), default=None) for m in fresh]
            lasts = [max((m.first_seen[n] for n in backlog if n in m.first_seen), default=None) for m in fresh]
            drained_at = max((t for t in lasts if t is not None), default=None)
            got = sum(len(set(backlog) & set(m.first_seen)) for m in fresh)
            first_post = min((t for t in firsts if t is not None), default=float("nan"))
            result.update({
                "outage_s": args.outage, "backlog_posts": len(backlog),
                "r3_back_to_backlog_stored_s": round(stored_at - back, 1) if stored_at else None,
                "server_drain_vs_live": (round(len(backlog) / (stored_at - back) * args.interval, 1)
                                         if stored_at else None),
                "live_rate_posts_per_s": round(1 / args.interval, 2),
                "r3_back_to_first_post_s": round(first_post - back, 1),
                "backlog_delivered": got, "backlog_expected": len(backlog) * len(fresh),
                # drained: every r3 follower has every post of the backlog (else no rate is given)
                "r3_back_to_drained_s": round(drained_at - back, 1) if drained_at and got == len(backlog) * len(
                    fresh) else None,
                "r3_log_sent_now": "answers again" in "".join(c.log_text() for c in cluster.workers.values()),
            })
            if result["r3_back_to_drained_s"]:
                result["drain_rate_posts_per_s"] = round(len(backlog) / result["r3_back_to_drained_s"], 2)
                result["drain_vs_live"] = round(result["drain_rate_posts_per_s"] * args.interval, 1)
            print(json.dumps(result), flush=True)
            minis += fresh
            return result
        finally:
            await asyncio.gather(*(m.close() for m in minis), return_exceptions=True)
            cluster.stop()
            for c in comps:
                c.stop()
            net.stop()


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--followers", type=int, default=1000)
    ap.add_argument("--posts", type=int, default=30)
    ap.add_argument("--interval", type=float, default=1.0)
    ap.add_argument("--outage", type=float, default=600.0)
    ap.add_argument("--drain-timeout", type=float, default=600.0)
    ap.add_argument("--json")
    a = ap.parse_args()
    out = asyncio.run(main(a))
    if a.json:
        Path(a.json).write_text(json.dumps(out, indent=2))
