# SPDX-License-Identifier: AGPL-3.0-or-later
"""W1 fan-out (issue #7): one publisher, P posts, S online subscribers, three implementations
on the same freshly started Prosody, in one run:

* xmppblog  — the real `xmppblog run` process, subscribers subscribed over XEP-0060;
* floor     — a component writing pre-serialised notifications (bench/baselines.py);
* naive     — a slixmpp component building one Message object per subscriber.

Reports per implementation: notifications delivered, publish→notification latency
p50/p99, notifications/s, and server-side CPU (user+system from /proc/PID/stat)
of the component and of Prosody per delivered notification.

    .venv/bin/python -m bench.w1_fanout [--subscribers 10,100] [--posts 20] [--json out.json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.mini import Mini
from tests.support.component import Component
from tests.support.prosody import SECRET, Prosody, ProsodyNet

TICK = os.sysconf("SC_CLK_TCK")
ROOT = Path(__file__).resolve().parents[1]


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK  # utime + stime


def pct(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))]


async def subscribers(server: Prosody, count: int, run: str) -> list[Mini]:
    minis = [Mini(server.ip, server.domain, f"s{run}{i}") for i in range(count)]
    for i in range(0, count, 50):
        await asyncio.gather(*(m.connect() for m in minis[i:i + 50]))
    return minis


async def measure(name: str, server: Prosody, comp_pid: int, minis: list[Mini], posts: int,
                  fire) -> dict[str, object]:  # type: ignore[no-untyped-def]
    for m in minis:
        m.start_counting()
    await asyncio.sleep(0.5)
    prosody_pid = server.proc.pid  # type: ignore[union-attr]
    c0, p0, t0 = cpu_seconds(comp_pid), cpu_seconds(prosody_pid), time.monotonic()
    sent_at: dict[int, float] = {}
    ack: list[float] = []
    for n in range(posts):
        sent_at[n] = time.monotonic()
        ack.append(await fire(n))
    expected = posts * len(minis)
    deadline = time.monotonic() + 60
    while sum(len(m.first_seen) for m in minis) < expected and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    t1 = time.monotonic()
    await asyncio.sleep(0.3)
    c1, p1 = cpu_seconds(comp_pid), cpu_seconds(prosody_pid)
    got = sum(len(m.first_seen) for m in minis)
    lat = [(t - sent_at[n]) * 1000 for m in minis for n, t in m.first_seen.items() if n in sent_at]
    last = max((t for m in minis for t in m.first_seen.values()), default=t1)
    return {
        "impl": name, "subscribers": len(minis), "posts": posts, "delivered": got, "expected": expected,
        "latency_ms_p50": pct(lat, 50), "latency_ms_p99": pct(lat, 99),
        "publish_ack_ms_p50": pct(ack, 50), "publish_ack_ms_p99": pct(ack, 99),
        "notifications_per_s": got / max(1e-6, last - t0),
        "component_cpu_us_per_notification": (c1 - c0) * 1e6 / max(1, got),
        "prosody_cpu_us_per_notification": (p1 - p0) * 1e6 / max(1, got),
    }


async def run_xmppblog(server: Prosody, base: Path, s: int, posts: int) -> dict[str, object]:
    comp = Component(server, base / f"xmppblog-{s}")
    text = "\n".join(line for line in comp.config.read_text().splitlines() if not line.startswith("rtbl_services"))
    comp.config.write_text(text.replace('level = "debug"', 'level = "info"')
                           .replace(f'listen = "{server.ip}:5281"', 'listen = ""')
                           .replace("im_commands_per_minute = 600", "im_commands_per_minute = 0")
                           .replace("local_publishes_per_minute = 600", "local_publishes_per_minute = 0"))
    comp.start(wait=False)
    try:
        await asyncio.to_thread(comp.wait_log, "connected to ", 30)
        minis = await subscribers(server, s, f"x{s}")
        for m in minis:
            await m.request(f"<iq type='set' id='sub' to='alice@{server.component}'>"
                            "<pubsub xmlns='http://jabber.org/protocol/pubsub'>"
                            f"<subscribe node='urn:xmpp:microblog:0' jid='{m.jid}'/></pubsub></iq>")
        pub = Mini(server.ip, server.domain, "alice")
        await pub.connect(register=False)

        async def fire(n: int) -> float:
            t = time.monotonic()
            await pub.request(f"<iq type='set' id='p{n}' to='alice@{server.component}'>"
                              "<pubsub xmlns='http://jabber.org/protocol/pubsub'><publish node='urn:xmpp:microblog:0'>"
                              f"<item><entry xmlns='http://www.w3.org/2005/Atom'><title>bench-{n}-{'x' * 400}"
                              "</title></entry></item></publish></pubsub></iq>")
            return (time.monotonic() - t) * 1000

        result = await measure("xmppblog", server, comp.proc.pid, minis, posts, fire)  # type: ignore[union-attr]
        for m in [*minis, pub]:
            await m.close()
        return result
    finally:
        comp.stop()


async def run_baseline(kind: str, server: Prosody, base: Path, s: int, posts: int) -> dict[str, object]:
    minis = await subscribers(server, s, f"{kind[0]}{s}")
    subs = base / f"{kind}-{s}.txt"
    subs.write_text("\n".join(m.jid for m in minis))
    proc = subprocess.Popen([sys.executable, "-m", "bench.baselines", kind, server.ip, str(server.component_port),
                             f"rogue.{server.domain}", SECRET, str(subs)], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        assert proc.stdout is not None
        await asyncio.to_thread(proc.stdout.readline)  # "ready"
        pub = Mini(server.ip, server.domain, "alice")
        await pub.connect(register=False)

        async def fire(n: int) -> float:
            pub.send(f"<message to='go@rogue.{server.domain}' type='chat'><body>go {n}</body></message>")
            return 0.0

        result = await measure(kind, server, proc.pid, minis, posts, fire)
        for m in [*minis, pub]:
            await m.close()
        return result
    finally:
        proc.terminate()
        proc.wait(10)


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--subscribers", default="10,100")
    ap.add_argument("--posts", type=int, default=20)
    ap.add_argument("--json", default="bench/w1_fanout.json")
    args = ap.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        for s in [int(x) for x in args.subscribers.split(",")]:
            for impl in ("xmppblog", "floor", "naive"):
                # a fresh Prosody for every run: its cost drifts upward over a long-lived process
                net = ProsodyNet(base / f"prosody-{impl}-{s}", [Prosody("alpha", "alpha.test", "127.0.20.2",
                                                                        base / f"prosody-{impl}-{s}", ["alice"])])
                net.start()
                try:
                    server = net["alpha"]
                    if impl == "xmppblog":
                        rows.append(await run_xmppblog(server, base, s, args.posts))
                    else:
                        rows.append(await run_baseline(impl, server, base, s, args.posts))
                finally:
                    net.stop()
                print(json.dumps(rows[-1]), flush=True)
    print(f"\nW1 fan-out, {args.posts} posts (Prosody 0.12, default Lua GC), CPU from /proc/PID/stat")
    print(f"{'impl':<9} {'S':>5} {'delivered':>11} {'lat p50':>8} {'lat p99':>8} {'ack p99':>8} "
          f"{'notif/s':>8} {'comp µs/n':>10} {'prosody µs/n':>13}")
    for r in rows:
        print(f"{r['impl']:<9} {r['subscribers']:>5} {r['delivered']:>5}/{r['expected']:<5} "
              f"{r['latency_ms_p50']:>8.1f} {r['latency_ms_p99']:>8.1f} {r['publish_ack_ms_p99']:>8.1f} "
              f"{r['notifications_per_s']:>8.0f} {r['component_cpu_us_per_notification']:>10.1f} "
              f"{r['prosody_cpu_us_per_notification']:>13.1f}")
    for s in sorted({r["subscribers"] for r in rows}):
        by = {r["impl"]: r for r in rows if r["subscribers"] == s}
        if {"xmppblog", "naive", "floor"} <= by.keys():
            x, n, f = (by[k]["component_cpu_us_per_notification"] for k in ("xmppblog", "naive", "floor"))
            vs_floor = f"{x / f:.1f}" if f else "n/a (floor below the 10 ms clock tick)"
            print(f"S={s}: xmppblog component CPU / naive = {x / n:.2f}, / floor = {vs_floor}" if n else
                  f"S={s}: naive below the clock tick")
    Path(args.json).write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    asyncio.run(main())
