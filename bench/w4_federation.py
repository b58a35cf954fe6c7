# SPDX-License-Identifier: AGPL-3.0-or-later
"""W4 federation (issue #7): F followers on another server; s2s stanzas and CPU per post.

Two fresh Prosody servers federating on loopback (alpha.test 127.0.20.5, beta.test
127.0.20.6). alice@alpha.test posts; F users of beta.test follow her:

* xmppblog   — an xmppblog on each server; beta's users follow by chat
               (`follow alice@alpha.test` to blog.beta.test) and receive chat messages.
               alpha's component sends each post once, to blog.beta.test (one
               server-level subscription), and beta's fans it out locally;
* mod_pubsub — Prosody's own pubsub on alpha; beta's users subscribe to the node
               directly, so alpha sends one notification per follower over s2s.

s2s stanzas per post are read from the publishing side: for xmppblog, the
"recipients=N" alpha's component logs for every post (each recipient is one
stanza; all recipients are on beta); for mod_pubsub, one per subscriber by
protocol (XEP-0060 §7.1.2), checked against what arrived. CPU is user+system of
both Prosody processes and both components, per delivered notification.

    .venv/bin/python -m bench.w4_federation [--followers 100] [--posts 20] [--interval 0.3]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import tempfile
import time
from pathlib import Path

from bench.common import GC, PS, cpu_seconds, pct
from tests.support.component import Component
from tests.support.mini import Mini
from tests.support.prosody import Prosody, ProsodyNet

SUBSCRIBE = re.compile(rb"<presence[^>]*type=['\"]subscribe['\"]")


def post_iq(to: str, node: str, n: int) -> str:
    return (f"<iq type='set' id='p{n}' to='{to}'><pubsub xmlns='{PS}'><publish node='{node}'><item>"
            f"<entry xmlns='http://www.w3.org/2005/Atom'><title>bench-{n}-{'x' * 400}</title></entry>"
            "</item></publish></pubsub></iq>")


async def measure(name: str, pids: dict[str, int], alice: Mini, followers: list[Mini], args: argparse.Namespace,
                  to: str, node: str) -> dict[str, object]:
    for f in followers:
        f.start_counting()
    await asyncio.sleep(0.5)
    c0 = {k: cpu_seconds(p) for k, p in pids.items()}
    t0 = time.monotonic()
    sent: dict[int, float] = {}
    for n in range(args.posts):
        await asyncio.sleep(max(0.0, t0 + n * args.interval - time.monotonic()))
        sent[n] = time.monotonic()
        reply = await alice.request(post_iq(to, node, n))
        assert b"result" in reply, reply[:300]
    expected = args.posts * len(followers)
    end = time.monotonic() + 60
    while sum(len(set(f.seen) & set(sent)) for f in followers) < expected and time.monotonic() < end:
        await asyncio.sleep(0.05)
    await asyncio.sleep(0.5)
    c1 = {k: cpu_seconds(p) for k, p in pids.items()}
    got = sum(len(set(f.seen) & set(sent)) for f in followers)
    per = {k: (c1[k] - c0[k]) * 1e6 / max(1, got) for k in pids}
    lat = [(t - sent[n]) * 1000 for f in followers for n, t in f.first_seen.items() if n in sent]
    return {"impl": name, "followers": len(followers), "posts": args.posts, "delivered": got, "expected": expected,
            "latency_ms_p50": pct(lat, 50), "latency_ms_p99": pct(lat, 99),
            "total_cpu_us_per_notification": sum(per.values()), "cpu_us_per_notification_by_process": per,
            "gc": GC}


async def followers_of(server: Prosody, count: int) -> list[Mini]:
    minis = [Mini(server.ip, server.domain, f"f{i}") for i in range(count)]
    for i in range(0, count, 50):
        await asyncio.gather(*(m.connect() for m in minis[i:i + 50]))
    return minis


async def run_xmppblog(net: ProsodyNet, base: Path, args: argparse.Namespace) -> dict[str, object]:
    alpha, beta = net["alpha"], net["beta"]
    ca = Component(alpha, base / "xa").for_load()
    cb = Component(beta, base / "xb").for_load()
    ca.start()
    cb.start()
    try:
        alice = Mini(alpha.ip, alpha.domain, "alice")
        await alice.connect(register=False)
        blog = f"alice@{alpha.component}"
        assert b"result" in await alice.request(post_iq(blog, "urn:xmpp:microblog:0", 999_999))
        followers = await followers_of(beta, args.followers)
        for f in followers:
            f.send(f"<message to='{beta.component}' type='chat'><body>follow alice@alpha.test</body></message>")
            # the answer, and the service asking for the follower's presence (chat arrives only
            # while online), in either order
            seen = b""
            while b"Now following alice@alpha.test" not in seen or not SUBSCRIBE.search(seen):
                seen += await f.wait_for(rb".+", 20)
            f.send(f"<presence to='{beta.component}' type='subscribed'/>")
        await asyncio.sleep(1.0)
        pids = {"alpha Prosody": alpha.proc.pid, "beta Prosody": beta.proc.pid,  # type: ignore[union-attr]
                "alpha xmppblog": ca.proc.pid, "beta xmppblog": cb.proc.pid}  # type: ignore[union-attr]
        result = await measure("xmppblog", pids, alice, followers, args, blog, "urn:xmpp:microblog:0")
        counts = [int(n) for n in re.findall(r"published: service=alice@blog\.alpha\.test .*recipients=(\d+)",
                                             ca.log_text())[1:]]
        result["s2s_stanzas_per_post"] = sum(counts) / max(1, len(counts))
        result["remote_servers_with_followers"] = 1
        for m in [alice, *followers]:
            await m.close()
        return result
    finally:
        ca.stop()
        cb.stop()


async def run_mod_pubsub(net: ProsodyNet, args: argparse.Namespace) -> dict[str, object]:
    alpha, beta = net["alpha"], net["beta"]
    service = f"pubsub.{alpha.domain}"
    alice = Mini(alpha.ip, alpha.domain, "alice")
    await alice.connect(register=False)
    assert b"result" in await alice.request(f"<iq type='set' id='c' to='{service}'><pubsub xmlns='{PS}'>"
                                            "<create node='bench'/></pubsub></iq>")
    followers = await followers_of(beta, args.followers)
    for f in followers:
        reply = await f.request(f"<iq type='set' id='s' to='{service}'><pubsub xmlns='{PS}'>"
                                f"<subscribe node='bench' jid='{f.jid}'/></pubsub></iq>", 20)
        assert b"subscribed" in reply, reply
    pids = {"alpha Prosody": alpha.proc.pid, "beta Prosody": beta.proc.pid}  # type: ignore[union-attr]
    result = await measure("mod_pubsub", pids, alice, followers, args, service, "bench")
    result["s2s_stanzas_per_post"] = result["delivered"] / args.posts  # type: ignore[operator]
    result["remote_servers_with_followers"] = 1
    for m in [alice, *followers]:
        await m.close()
    return result


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--followers", type=int, default=100)
    ap.add_argument("--posts", type=int, default=20)
    ap.add_argument("--interval", type=float, default=0.3)
    ap.add_argument("--json", default="bench/w4.json")
    args = ap.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for impl in ("xmppblog", "mod_pubsub"):
            base = Path(tmp) / impl
            net = ProsodyNet(base, [Prosody("alpha", "alpha.test", "127.0.20.5", base, ["alice"]),
                                    Prosody("beta", "beta.test", "127.0.20.6", base, [])])
            net.start()
            try:
                row = await (run_xmppblog(net, base, args) if impl == "xmppblog" else run_mod_pubsub(net, args))
            finally:
                net.stop()
            rows.append(row)
            print(json.dumps(row), flush=True)
    print(f"\nW4 federation: {args.followers} followers on beta.test, {args.posts} posts by alice@alpha.test; {GC}")
    print(f"{'impl':<11} {'delivered':>11} {'s2s/post':>9} {'lat p50':>8} {'lat p99':>8} {'total µs/notif':>15}")
    for r in rows:
        print(f"{r['impl']:<11} {r['delivered']:>5}/{r['expected']:<5} {r['s2s_stanzas_per_post']:>9.1f} "
              f"{r['latency_ms_p50']:>8.1f} {r['latency_ms_p99']:>8.1f} {r['total_cpu_us_per_notification']:>15.1f}")
    print("CPU µs per remote follower, by process:")
    for r in rows:
        print(f"  {r['impl']:<11} " + ", ".join(f"{k} {v:.1f}" for k, v in
                                              r["cpu_us_per_notification_by_process"].items()))  # type: ignore[union-attr]
    x, m = rows
    print(f"xmppblog total CPU per remote follower / mod_pubsub's = "
          f"{x['total_cpu_us_per_notification'] / max(1e-9, m['total_cpu_us_per_notification']):.2f} "  # type: ignore[operator]
          "(target ≤ 0.20)")
    Path(args.json).write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    asyncio.run(main())
