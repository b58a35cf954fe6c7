# SPDX-License-Identifier: AGPL-3.0-or-later
"""Firehose to aggregator (issue #17): latency from a post's publish result at its source to
a `track` user's client on an aggregator, and how fast an aggregator that was down catches up.

Two Prosody 0.12 servers, each with its own xmppblog (SQLite): the source src.test
(127.0.20.21) and the aggregator agg.test (127.0.20.22, `[aggregator] sources =
["blog.src.test"]`). On the source, the poster turned `discoverable on`; on the
aggregator, T users `track quokka`. Baselines in the same run, for the same posts: a
follower on the source server itself (local chat delivery), and a follower on the
aggregator's server who follows the poster by chat (ordinary federation: the
aggregator's xmppblog holds one subscription to the poster's blog).

* live: P posts (XEP-0060 publish, each carrying `quokka` and a marker), one every
  `interval` s; latency from the publish result to each client's receipt, p50/p99.
* outage: the aggregator's xmppblog is stopped for `outage` s while the poster goes
  on at the same pace, then started again; the backlog has drained when the
  aggregator's database holds every post of it (fetched from the firehose from where
  it stopped, as XEP-0059 pages); the catch-up rate (backlog / time from its start to
  drained) against the live rate (1 / interval).

    .venv/bin/python -m bench.firehose_lag [--trackers 50] [--posts 40] [--interval 0.5]
                                           [--outage 60] [--json out.json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from pathlib import Path

from bench.common import pct
from bench.federation_lag import SUBSCRIBE, follow
from tests.support.component import Component
from tests.support.mini import Mini
from tests.support.prosody import Prosody, ProsodyNet

SOURCE = ("src", "src.test", "127.0.20.21")
AGGREGATOR = ("agg", "agg.test", "127.0.20.22")
NODE = "urn:xmpp:microblog:0"


def post(blog: str, marker: int) -> str:
    return (f"<iq type='set' id='p{marker}' to='{blog}'><pubsub xmlns='http://jabber.org/protocol/pubsub'>"
            f"<publish node='{NODE}'><item><entry xmlns='http://www.w3.org/2005/Atom'>"
            f"<title>quokka bench-{marker}- {'x' * 200}</title></entry></item></publish></pubsub></iq>")


async def say(m: Mini, to: str, text: str, expect: bytes) -> None:
    m.send(f"<message to='{to}' type='chat'><body>{text}</body></message>")
    await m.wait_for(expect, 30)


async def track(m: Mini, service: str, word: str) -> None:
    """Track `word`, and let the service see our presence (chat goes to users it sees online)."""
    m.send(f"<message to='{service}' type='chat'><body>track {word}</body></message>")
    seen = b""
    while b"Tracking" not in seen or not SUBSCRIBE.search(seen):
        seen += await m.wait_for(rb".+", 30)
    m.send(f"<presence to='{service}' type='subscribed'/>")


async def main(args) -> dict:
    import tempfile
    with tempfile.TemporaryDirectory() as d:
        base = Path(d)
        servers = [Prosody(n, dom, ip, base, []) for n, dom, ip in (SOURCE, AGGREGATOR)]
        net = ProsodyNet(base, servers)
        net.start()
        src, agg = servers
        source = Component(src, base / "xsrc").for_load()
        aggregator = Component(agg, base / "xagg", extra='[aggregator]\nsources = ["blog.src.test"]\n').for_load()
        minis: list[Mini] = []
        try:
            source.start()
            aggregator.start()
            await asyncio.to_thread(aggregator.wait_log, "aggregator: following the firehose of blog.src.test", 60)
            poster = Mini(src.ip, src.domain, "poster")
            await poster.connect()
            minis.append(poster)
            await say(poster, src.component, "discoverable on", b"discoverable")
            blog = f"poster@{src.component}"
            assert b"result" in await poster.request(post(blog, 0), timeout=30)
            local = Mini(src.ip, src.domain, "neighbour")
            await local.connect()
            await follow(local, src.component, "poster@src.test")
            federated = Mini(agg.ip, agg.domain, "follower")
            await federated.connect()
            await follow(federated, agg.component, "poster@src.test")
            trackers = [Mini(agg.ip, agg.domain, f"t{i}") for i in range(args.trackers)]
            for i in range(0, len(trackers), 25):
                await asyncio.gather(*(m.connect() for m in trackers[i:i + 25]))
            for i in range(0, len(trackers), 25):
                await asyncio.gather(*(track(m, agg.component, "quokka") for m in trackers[i:i + 25]))
            minis += [local, federated, *trackers]
            for m in minis:
                m.start_counting()
            await asyncio.sleep(2)

            async def publish(first: int, count: int) -> dict[int, float]:
                acked: dict[int, float] = {}
                t0 = time.monotonic()
                for n in range(first, first + count):
                    await asyncio.sleep(max(0.0, t0 + (n - first) * args.interval - time.monotonic()))
                    if await poster.ask(post(blog, n), timeout=10) == b"result":
                        acked[n] = time.monotonic()
                return acked

            live = await publish(1, args.posts)
            end = time.monotonic() + 30
            while time.monotonic() < end and not all(set(live) <= set(m.first_seen) for m in minis[1:]):
                await asyncio.sleep(0.1)

            def latency(group: list[Mini]) -> dict:
                lat = [(m.first_seen[n] - t) * 1000 for m in group for n, t in live.items() if n in m.first_seen]
                return {"p50_ms": round(pct(lat, 50), 1), "p99_ms": round(pct(lat, 99), 1),
                        "missing": sum(len(set(live) - set(m.first_seen)) for m in group)}

            result: dict = {"posts": len(live), "interval_s": args.interval, "trackers": len(trackers),
                            "aggregator_track": latency(trackers),
                            "baseline_local_follower": latency([local]),
                            "baseline_federated_follower": latency([federated])}
            print(json.dumps(result), flush=True)

            # the aggregator is down while the source goes on; then it catches up from its cursor
            aggregator.stop()
            outage = asyncio.ensure_future(publish(10_000, max(1, int(args.outage / args.interval))))
            await asyncio.sleep(args.outage)
            backlog = await outage
            aggregator.start(wait=False)
            back = time.monotonic()
            drained = None
            while time.monotonic() < back + args.drain_timeout:
                if set(backlog) <= await aggregator.stored_markers():
                    drained = time.monotonic() - back
                    break
                await asyncio.sleep(0.2)
            before = set(live) | {0}
            result.update({
                "outage_s": args.outage, "backlog_posts": len(backlog),
                "restart_to_backlog_stored_s": round(drained, 2) if drained else None,
                "catch_up_vs_live": round(len(backlog) / drained * args.interval, 1) if drained else None,
                "live_posts_still_held": before <= await aggregator.stored_markers(),
            })
            print(json.dumps(result), flush=True)
            return result
        finally:
            await asyncio.gather(*(m.close() for m in minis), return_exceptions=True)
            aggregator.stop()
            source.stop()
            net.stop()


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--trackers", type=int, default=50)
    ap.add_argument("--posts", type=int, default=40)
    ap.add_argument("--interval", type=float, default=0.5)
    ap.add_argument("--outage", type=float, default=60.0)
    ap.add_argument("--drain-timeout", type=float, default=120.0)
    ap.add_argument("--json")
    a = ap.parse_args()
    out = asyncio.run(main(a))
    if a.json:
        Path(a.json).write_text(json.dumps(out, indent=2))
