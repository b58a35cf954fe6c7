# SPDX-License-Identifier: AGPL-3.0-or-later
"""W1 fan-out and W1-IM (issue #7): one publisher, P posts, S online subscribers, every
implementation on its own freshly started Prosody, in one run:

* xmppblog   — the real `xmppblog run` process (SQLite, or PostgreSQL with --db postgres),
               subscribers subscribed over XEP-0060 (or, with --im, following by roster);
* floor      — a component writing pre-serialised notifications (bench/baselines.py);
* naive      — a slixmpp component building one Message object per subscriber;
* mod_pubsub — Prosody's own in-process pubsub service (`Component "pubsub.…" "pubsub"`).

Every implementation delivers the same bytes: the baselines replay the notification
xmppblog sent (captured by a subscriber), with the post number substituted.

Reports per implementation: notifications delivered, publish IQ latency p50/p99,
publish→notification latency p50/p99, notifications/s, and server-side CPU
(user+system from /proc/PID/stat) of the component, of Prosody and of PostgreSQL,
per delivered notification and per post.

    .venv/bin/python -m bench.w1_fanout [--subscribers 10,100,1000] [--posts 20] [--interval 0.3]
                                        [--im] [--db sqlite|postgres] [--json out.json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from bench.common import GC, PS, ROOT, cpu_seconds, maybe_postgres, pct, tree_cpu
from tests.support.mini import MARK, Mini
from tests.support.component import Component
from tests.support.postgres import PostgresServer, fresh_database
from tests.support.prosody import SECRET, Prosody, ProsodyNet

FALLBACK = ("<message type='headline'><event xmlns='http://jabber.org/protocol/pubsub#event'>"
            "<items node='urn:xmpp:microblog:0'><item id='b'><entry xmlns='http://www.w3.org/2005/Atom'>"
            "<title>bench-@@N@@-" + "x" * 400 + "</title></entry></item></items></event></message>")


async def subscribers(server: Prosody, count: int, run: str) -> list[Mini]:
    minis = [Mini(server.ip, server.domain, f"s{run}{i}") for i in range(count)]
    for i in range(0, count, 50):
        await asyncio.gather(*(m.connect() for m in minis[i:i + 50]))
    return minis


def template_of(sample: bytes | None) -> str:
    """A captured notification with its post number replaced by @@N@@ (the baselines' payload)."""
    if sample is None:
        return FALLBACK
    text = sample.decode()
    n = MARK.search(sample)
    assert n is not None, "the captured notification carries no post marker"
    text = text.replace(f"bench-{n.group(1).decode()}-", "bench-@@N@@-")
    return re.sub(r"^<message[^>]*?(type=['\"][a-z]+['\"])[^>]*>", r"<message \1>", text)


def entry_of(template: str) -> str:
    m = re.search(r"<(\w+:)?entry\b.*?</(\w+:)?entry>", template, re.S)
    assert m is not None, "no Atom entry in the captured notification"
    return m.group(0)


class Run:
    def __init__(self, args: argparse.Namespace, base: Path, pg: PostgresServer | None) -> None:
        self.args, self.base, self.pg = args, base, pg

    async def measure(self, name: str, server: Prosody, comp_pid: int | None, minis: list[Mini],
                      fire: Callable[[int], Awaitable[float]]) -> dict[str, object]:
        posts, interval = self.args.posts, self.args.interval
        for m in minis:
            m.start_counting()
        await asyncio.sleep(0.5)
        prosody_pid = server.proc.pid  # type: ignore[union-attr]
        pg_pid = self.pg.pid if self.pg and name == "xmppblog" else None
        c0, p0, d0 = cpu_seconds(comp_pid) if comp_pid else 0.0, cpu_seconds(prosody_pid), tree_cpu(pg_pid)
        t0 = time.monotonic()
        sent_at: dict[int, float] = {}
        ack: list[float] = []
        for n in range(posts):
            await asyncio.sleep(max(0.0, t0 + n * interval - time.monotonic()))
            sent_at[n] = time.monotonic()
            ack.append(await fire(n))
        expected = posts * len(minis)
        deadline = time.monotonic() + 60
        while sum(len(m.first_seen) for m in minis) < expected and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.3)
        c1, p1, d1 = cpu_seconds(comp_pid) if comp_pid else 0.0, cpu_seconds(prosody_pid), tree_cpu(pg_pid)
        got = sum(len(m.first_seen) for m in minis)
        lat = [(t - sent_at[n]) * 1000 for m in minis for n, t in m.first_seen.items() if n in sent_at]
        last = max((t for m in minis for t in m.first_seen.values()), default=time.monotonic())
        per = 1e6 / max(1, got)
        return {
            "impl": name, "subscribers": len(minis), "posts": posts, "interval_s": interval,
            "mode": "im" if self.args.im else "pubsub", "db": self.args.db if name == "xmppblog" else "",
            "delivered": got, "expected": expected,
            "latency_ms_p50": pct(lat, 50), "latency_ms_p99": pct(lat, 99),
            "publish_ack_ms_p50": pct(ack, 50), "publish_ack_ms_p99": pct(ack, 99),
            "notifications_per_s": got / max(1e-6, last - t0),
            "component_cpu_us_per_notification": (c1 - c0) * per,
            "prosody_cpu_us_per_notification": (p1 - p0) * per,
            "db_cpu_us_per_notification": (d1 - d0) * per,
            "total_cpu_us_per_notification": (c1 - c0 + p1 - p0 + d1 - d0) * per,
            "component_cpu_ms_per_post": (c1 - c0) * 1000 / posts,
            "gc": GC,
            "sample": next((m.sample for m in minis if m.sample), b"").decode(errors="replace"),
        }

    async def xmppblog(self, server: Prosody, s: int) -> dict[str, object]:
        db = fresh_database(self.pg.url) if self.pg else None
        comp = Component(server, self.base / f"xmppblog-{s}", db_url=db).for_load()
        comp.start(wait=False)
        try:
            await asyncio.to_thread(comp.wait_log, "connected to ", 30)
            minis = await subscribers(server, s, f"x{s}")
            blog = f"alice@{server.component}"
            for m in minis:
                if self.args.im:
                    await m.follow_by_roster(blog)
                else:
                    await m.request(f"<iq type='set' id='sub' to='{blog}'><pubsub xmlns='{PS}'>"
                                    f"<subscribe node='urn:xmpp:microblog:0' jid='{m.jid}'/></pubsub></iq>")
            pub = Mini(server.ip, server.domain, "alice")
            await pub.connect(register=False)
            if self.args.im:
                await asyncio.sleep(1.0)  # the followers' presence reaches the blog JIDs

            async def fire(n: int) -> float:
                t = time.monotonic()
                await pub.request(f"<iq type='set' id='p{n}' to='{blog}'><pubsub xmlns='{PS}'>"
                                  "<publish node='urn:xmpp:microblog:0'><item>"
                                  f"<entry xmlns='http://www.w3.org/2005/Atom'><title>bench-{n}-{'x' * 400}"
                                  "</title></entry></item></publish></pubsub></iq>")
                return (time.monotonic() - t) * 1000

            result = await self.measure("xmppblog", server, comp.proc.pid, minis, fire)  # type: ignore[union-attr]
            for m in [*minis, pub]:
                await m.close()
            return result
        finally:
            comp.stop()

    async def baseline(self, kind: str, server: Prosody, s: int, template: str) -> dict[str, object]:
        minis = await subscribers(server, s, f"{kind[0]}{s}")
        subs = self.base / f"{kind}-{s}.txt"
        subs.write_text("\n".join(m.jid for m in minis))
        payload = self.base / f"{kind}-{s}.xml"
        payload.write_text(template)
        proc = subprocess.Popen([sys.executable, "-m", "bench.baselines", kind, server.ip,
                                 str(server.component_port), f"rogue.{server.domain}", SECRET, str(subs),
                                 str(payload)], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        try:
            assert proc.stdout is not None
            await asyncio.to_thread(proc.stdout.readline)  # "ready"
            pub = Mini(server.ip, server.domain, "alice")
            await pub.connect(register=False)

            async def fire(n: int) -> float:
                pub.send(f"<message to='go@rogue.{server.domain}' type='chat'><body>go {n}</body></message>")
                return float("nan")  # no publish iq: the baselines fire on a chat message

            result = await self.measure(kind, server, proc.pid, minis, fire)
            for m in [*minis, pub]:
                await m.close()
            return result
        finally:
            proc.terminate()
            proc.wait(10)

    async def mod_pubsub(self, server: Prosody, s: int, template: str) -> dict[str, object]:
        service = f"pubsub.{server.domain}"
        pub = Mini(server.ip, server.domain, "alice")
        await pub.connect(register=False)
        await pub.request(f"<iq type='set' id='create' to='{service}'><pubsub xmlns='{PS}'>"
                          "<create node='bench'/></pubsub></iq>")
        minis = await subscribers(server, s, f"m{s}")
        for m in minis:
            await m.request(f"<iq type='set' id='sub' to='{service}'><pubsub xmlns='{PS}'>"
                            f"<subscribe node='bench' jid='{m.jid}'/></pubsub></iq>")
        entry = entry_of(template)

        async def fire(n: int) -> float:
            t = time.monotonic()
            await pub.request(f"<iq type='set' id='p{n}' to='{service}'><pubsub xmlns='{PS}'>"
                              f"<publish node='bench'><item>{entry.replace('@@N@@', str(n))}</item>"
                              "</publish></pubsub></iq>")
            return (time.monotonic() - t) * 1000

        result = await self.measure("mod_pubsub", server, None, minis, fire)
        for m in [*minis, pub]:
            await m.close()
        return result


def table(rows: list[dict[str, object]], args: argparse.Namespace) -> None:
    mode = "W1-IM (followers by roster, chat messages)" if args.im else "W1 (XEP-0060 event notifications)"
    print(f"\n{mode}, {args.posts} posts every {args.interval}s, xmppblog on {args.db}; {GC}; "
          "CPU from /proc/PID/stat (10 ms ticks)")
    print(f"{'impl':<10} {'S':>5} {'delivered':>11} {'ack p50':>8} {'ack p99':>8} {'lat p50':>8} {'lat p99':>8} "
          f"{'notif/s':>8} {'own µs/n':>9} {'prosody':>8} {'db':>6} {'total µs/n':>10}")
    for r in rows:
        print(f"{r['impl']:<10} {r['subscribers']:>5} {r['delivered']:>5}/{r['expected']:<5} "
              f"{r['publish_ack_ms_p50']:>8.1f} {r['publish_ack_ms_p99']:>8.1f} "
              f"{r['latency_ms_p50']:>8.1f} {r['latency_ms_p99']:>8.1f} {r['notifications_per_s']:>8.0f} "
              f"{r['component_cpu_us_per_notification']:>9.1f} {r['prosody_cpu_us_per_notification']:>8.1f} "
              f"{r['db_cpu_us_per_notification']:>6.1f} {r['total_cpu_us_per_notification']:>10.1f}")
    for s in sorted({int(r["subscribers"]) for r in rows}):  # type: ignore[call-overload]
        by = {r["impl"]: r for r in rows if r["subscribers"] == s}
        x = by.get("xmppblog")
        if x is None:
            continue
        own, total = x["component_cpu_us_per_notification"], x["total_cpu_us_per_notification"]
        parts = []
        if "naive" in by:
            naive = by["naive"]["component_cpu_us_per_notification"]
            parts.append(f"own CPU / naive's own = {own / naive:.2f}" if naive else  # type: ignore[operator]
                         "naive's own CPU below the 10 ms clock tick")
        for k in ("floor", "mod_pubsub"):
            if k in by:
                parts.append(f"total / {k} total = {total / max(1e-9, by[k]['total_cpu_us_per_notification']):.2f}")
        print(f"S={s}: xmppblog " + ", ".join(parts))


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--subscribers", default="10,100,1000")
    ap.add_argument("--posts", type=int, default=20)
    ap.add_argument("--interval", type=float, default=0.3, help="seconds between posts (0: back to back)")
    ap.add_argument("--impls", default="xmppblog,floor,naive,mod_pubsub")
    ap.add_argument("--im", action="store_true", help="W1-IM: followers by roster get chat messages")
    ap.add_argument("--db", choices=("sqlite", "postgres"), default="sqlite")
    ap.add_argument("--json", default="")
    args = ap.parse_args()
    impls = [i for i in args.impls.split(",") if not (args.im and i == "mod_pubsub")]
    rows: list[dict[str, object]] = []
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        with maybe_postgres(args.db, base) as pg:
            run = Run(args, base, pg)
            for s in [int(x) for x in args.subscribers.split(",")]:
                template = FALLBACK
                for impl in impls:
                    # a fresh Prosody for every run: its cost drifts upward over a long-lived process
                    d = base / f"prosody-{impl}-{s}"
                    net = ProsodyNet(d, [Prosody("alpha", "alpha.test", "127.0.20.2", d, ["alice"])])
                    net.start()
                    try:
                        server = net["alpha"]
                        if impl == "xmppblog":
                            row = await run.xmppblog(server, s)
                            template = template_of(str(row["sample"]).encode() or None)
                        elif impl == "mod_pubsub":
                            row = await run.mod_pubsub(server, s, template)
                        else:
                            row = await run.baseline(impl, server, s, template)
                    finally:
                        net.stop()
                    row.pop("sample", None)
                    rows.append(row)
                    print(json.dumps(row), flush=True)
    table(rows, args)
    name = args.json or f"bench/w1{'_im' if args.im else ''}_{args.db}.json"
    Path(name).write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    asyncio.run(main())
