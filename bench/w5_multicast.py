# SPDX-License-Identifier: AGPL-3.0-or-later
"""Issue #7's stretch goal: local fan-out handed to the host in one stanza (XEP-0033), on
ejabberd (Debian's 23.01) with mod_multicast, against ejabberd's own mod_pubsub.

One publisher, P posts, S online XEP-0060 subscribers on the same ejabberd, each
implementation on a freshly started ejabberd:

* multicast  — the real `xmppblog run` process; it finds multicast.<domain> and sends one
               stanza per chunk of followers (the test config allows 50 addresses each);
* unicast    — the same with `[component] multicast = false`: one stanza per follower;
* mod_pubsub — ejabberd's in-process pubsub service (a node on pubsub.<domain>).

Reports notifications delivered, publish→notification latency, and CPU (ejabberd's BEAM
and the component, from /proc) per delivered notification.

    .venv/bin/python -m bench.w5_multicast [--subscribers 500] [--posts 20] [--interval 0.3]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
from pathlib import Path

from bench.common import PS, cpu_seconds, pct
from tests.support.component import Component
from tests.support.ejabberd import Ejabberd, unavailable
from tests.support.mini import Mini

IP = "127.0.20.8"
NODE = "urn:xmpp:microblog:0"
EJABBERD = "ejabberd 23.01 (Debian), mod_multicast limit 50 for components, default BEAM settings"


def post(to: str, node: str, n: int) -> str:
    return (f"<iq type='set' id='p{n}' to='{to}'><pubsub xmlns='{PS}'><publish node='{node}'><item>"
            f"<entry xmlns='http://www.w3.org/2005/Atom'><title>bench-{n}-{'x' * 400}</title></entry>"
            "</item></publish></pubsub></iq>")


async def run(impl: str, server: Ejabberd, base: Path, args: argparse.Namespace) -> dict[str, object]:
    beam = int((server.base / "ejabberd.pid").read_text().strip())
    comp = None
    if impl != "mod_pubsub":
        comp = Component(server, base / impl).for_load()  # type: ignore[arg-type]
        if impl == "unicast":
            comp.config.write_text(comp.config.read_text().replace("reconnect_max_delay = 2.0\n",
                                                                   "reconnect_max_delay = 2.0\nmulticast = false\n"))
    try:
        if comp:
            comp.start()
            await asyncio.to_thread(comp.wait_log, "multicast: ", 20)
        alice = Mini(server.ip, server.domain, "alice")
        await alice.connect(register=False)
        to, node = (f"alice@{server.component}", NODE) if comp else (f"pubsub.{server.domain}", "bench")
        if comp:
            reply = await alice.request(post(to, node, 999_999))
        else:
            reply = await alice.request(f"<iq type='set' id='c' to='{to}'><pubsub xmlns='{PS}'>"
                                        f"<create node='{node}'/></pubsub></iq>")
        assert b"type='result'" in reply or b'type="result"' in reply, reply[:300]
        subs = [Mini(server.ip, server.domain, f"s{impl[0]}{i}") for i in range(args.subscribers)]
        for i in range(0, len(subs), 50):
            await asyncio.gather(*(m.connect() for m in subs[i:i + 50]))
        for m in subs:
            reply = await m.request(f"<iq type='set' id='s' to='{to}'><pubsub xmlns='{PS}'>"
                                    f"<subscribe node='{node}' jid='{m.jid}'/></pubsub></iq>", 20)
            assert b"subscribed" in reply, reply[:300]
        await asyncio.sleep(1.0)
        for m in subs:
            m.start_counting()
        await asyncio.sleep(0.5)
        pids = {"ejabberd": beam, **({"xmppblog": comp.proc.pid} if comp and comp.proc else {})}
        c0 = {k: cpu_seconds(p) for k, p in pids.items()}
        sent: dict[int, float] = {}
        t0 = time.monotonic()
        for n in range(args.posts):
            await asyncio.sleep(max(0.0, t0 + n * args.interval - time.monotonic()))
            sent[n] = time.monotonic()
            reply = await alice.request(post(to, node, n))
            assert b"result" in reply, reply[:300]
        expected = args.posts * len(subs)

        def got() -> int:
            return sum(v for m in subs for n, v in m.seen.items() if n in sent)
        end = time.monotonic() + 60
        while got() < expected and time.monotonic() < end:
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.5)
        c1 = {k: cpu_seconds(p) for k, p in pids.items()}
        delivered = got()
        per = {k: (c1[k] - c0[k]) * 1e6 / max(1, delivered) for k in pids}
        lat = [(t - sent[n]) * 1000 for m in subs for n, t in m.first_seen.items() if n in sent]
        problems = [line for line in comp.log_text(True).splitlines()
                    if " WARNING " in line or " ERROR " in line] if comp else []
        for line in problems[:5]:
            print(f"{impl}: {line}", flush=True)
        for m in [alice, *subs]:
            await m.close()
        return {"impl": impl, "subscribers": len(subs), "posts": args.posts, "delivered": delivered,
                "expected": expected, "warnings_logged": len(problems),
                "latency_ms_p50": pct(lat, 50), "latency_ms_p99": pct(lat, 99),
                "cpu_us_per_notification_by_process": per, "total_cpu_us_per_notification": sum(per.values()),
                "host": EJABBERD}
    finally:
        if comp:
            comp.stop()


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--subscribers", type=int, default=500)
    ap.add_argument("--posts", type=int, default=20)
    ap.add_argument("--interval", type=float, default=0.3)
    ap.add_argument("--json", default="bench/w5_multicast.json")
    args = ap.parse_args()
    if why := unavailable():
        raise SystemExit(f"w5_multicast: {why}")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for impl in ("multicast", "unicast", "mod_pubsub"):
            base = Path(tmp) / impl
            server = Ejabberd("delta.test", IP, base / "ejabberd", ["alice"])
            server.start()  # fresh for every implementation
            try:
                rows.append(await run(impl, server, base, args))
            finally:
                server.stop()
            print(json.dumps(rows[-1]), flush=True)
    print(f"\nXEP-0033 stretch: {args.subscribers} local subscribers, {args.posts} posts; {EJABBERD}")
    print(f"{'impl':<11} {'delivered':>13} {'lat p50':>8} {'lat p99':>8} {'ejabberd µs/n':>14} "
          f"{'xmppblog µs/n':>14} {'total µs/n':>11}")
    for r in rows:
        per = r["cpu_us_per_notification_by_process"]
        print(f"{r['impl']:<11} {str(r['delivered']) + '/' + str(r['expected']):>13} {r['latency_ms_p50']:>8.1f} "
              f"{r['latency_ms_p99']:>8.1f} {per['ejabberd']:>14.1f} {per.get('xmppblog', 0.0):>14.1f} "  # type: ignore[index,union-attr]
              f"{r['total_cpu_us_per_notification']:>11.1f}")
    m, u, p = (r["total_cpu_us_per_notification"] for r in rows)
    print(f"total CPU per local notification: multicast / unicast = {m / max(1e-9, u):.2f}, "  # type: ignore[operator]
          f"multicast / ejabberd mod_pubsub = {m / max(1e-9, p):.2f}")  # type: ignore[operator]
    Path(args.json).write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    asyncio.run(main())
