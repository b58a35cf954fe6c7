# SPDX-License-Identifier: AGPL-3.0-or-later
"""Issue #8 soak test: 50 users on two federated servers, a random mix for 5 minutes.

25 users on alpha.test and 25 on beta.test, each with an xmppblog, publish, follow
and unfollow blogs on both servers (XEP-0060 subscriptions, across s2s for the other
server's blogs), read pages of items and ask disco, at random, for
XMPPBLOG_SOAK_SECONDS (default 300). At the end: every acknowledged post is stored
on its author's node; every subscriber that followed a blog before a post was
acknowledged and did not unfollow before it arrived received it; the components'
memory growth is reported; and nothing was logged at ERROR (what a user never expects).
"""

from __future__ import annotations

import asyncio
import os
import random
import time
from collections import defaultdict
from pathlib import Path

from ..conftest import FIGURES
from ..support.mini import Mini

PS = "http://jabber.org/protocol/pubsub"
NODE = "urn:xmpp:microblog:0"
SECONDS = float(os.environ.get("XMPPBLOG_SOAK_SECONDS", "300"))
USERS_PER_SERVER = 25


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


class Soak:
    def __init__(self, servers) -> None:  # type: ignore[no-untyped-def]
        self.users = [Mini(s.ip, s.domain, f"soak{s.name[0]}{i}") for s in servers for i in range(USERS_PER_SERVER)]
        self.blogs = {u.jid: f"{u.user}@blog.{u.domain}" for u in self.users}
        self.counter = 0
        self.acked: dict[int, tuple[str, float]] = {}      # marker -> (author, acked at)
        self.follows: dict[tuple[str, str], list[list[float]]] = defaultdict(list)  # (user, author) -> [start, end]
        self.requests = 0
        self.failed: list[str] = []

    async def act(self, u: Mini, rng: random.Random, until: float) -> None:
        following: set[str] = set()
        n = 0
        while time.monotonic() < until:
            n += 1
            roll = rng.random()
            author = rng.choice(self.users).jid
            blog = self.blogs[author]
            self.requests += 1
            if roll < 0.45:
                self.counter += 1
                marker = self.counter
                reply = await u.ask(f"<iq type='set' id='a{n}' to='{self.blogs[u.jid]}'><pubsub xmlns='{PS}'>"
                                    f"<publish node='{NODE}'><item><entry xmlns='http://www.w3.org/2005/Atom'>"
                                    f"<title>bench-{marker}-soak</title></entry></item></publish></pubsub></iq>")
                if reply == b"result":
                    self.acked[marker] = (u.jid, time.monotonic())
                else:
                    self.failed.append(f"publish by {u.jid}: {reply!r}")
            elif roll < 0.65 and author != u.jid and author not in following:
                reply = await u.ask(f"<iq type='set' id='a{n}' to='{blog}'><pubsub xmlns='{PS}'>"
                                    f"<subscribe node='{NODE}' jid='{u.jid}'/></pubsub></iq>")
                if reply == b"result":
                    following.add(author)
                    self.follows[(u.jid, author)].append([time.monotonic(), float("inf")])
                else:
                    self.failed.append(f"subscribe {u.jid} -> {blog}: {reply!r}")
            elif roll < 0.72 and following:
                author = rng.choice(sorted(following))
                started = time.monotonic()
                reply = await u.ask(f"<iq type='set' id='a{n}' to='{self.blogs[author]}'><pubsub xmlns='{PS}'>"
                                    f"<unsubscribe node='{NODE}' jid='{u.jid}'/></pubsub></iq>")
                following.discard(author)
                self.follows[(u.jid, author)][-1][1] = started  # notifications may stop from here on
                if reply != b"result":
                    self.failed.append(f"unsubscribe {u.jid} -> {author}: {reply!r}")
            elif roll < 0.9:
                reply = await u.ask(f"<iq type='get' id='a{n}' to='{blog}'><pubsub xmlns='{PS}'><items node='{NODE}'/>"
                                    "<set xmlns='http://jabber.org/protocol/rsm'><max>10</max></set></pubsub></iq>")
                if reply not in (b"result", b"error"):  # error: that user has not posted yet
                    self.failed.append(f"items {blog}: {reply!r}")
            else:
                reply = await u.ask(f"<iq type='get' id='a{n}' to='{blog}'>"
                                    "<query xmlns='http://jabber.org/protocol/disco#info'/></iq>")
                if reply is None:
                    self.failed.append(f"disco {blog}: no answer")
            await asyncio.sleep(rng.uniform(0.5, 2.0))

    def missing(self, settle_end: float) -> list[str]:
        out = []
        for u in self.users:
            for marker, (author, acked_at) in self.acked.items():
                spans = self.follows.get((u.jid, author), [])
                # followed before the post was acknowledged, still following when it was
                if any(start < acked_at - 1.0 and end > acked_at + 30 for start, end in spans) \
                        and marker not in u.seen:
                    out.append(f"{u.jid} missed post {marker} by {author}")
        return out


async def test_soak_two_servers_fifty_users(net, component, component_beta):
    servers = [net["alpha"], net["beta"]]
    soak = Soak(servers)
    comps = [component, component_beta]
    for c in soak.users:
        await c.connect()
        c.start_counting()
    for c in soak.users:  # every blog exists before anyone follows it
        assert await c.ask(f"<iq type='set' id='first' to='{soak.blogs[c.jid]}'><pubsub xmlns='{PS}'><publish "
                           f"node='{NODE}'><item><entry xmlns='http://www.w3.org/2005/Atom'><title>hi</title>"
                           "</entry></item></publish></pubsub></iq>") == b"result"
    rss0 = [rss_kib(c.proc.pid) for c in comps]  # type: ignore[union-attr]
    offsets = [len(c.log_text()) for c in comps]
    until = time.monotonic() + SECONDS
    await asyncio.gather(*(soak.act(u, random.Random(i), until) for i, u in enumerate(soak.users)))
    settle = time.monotonic() + 30
    while time.monotonic() < settle and soak.missing(settle):
        await asyncio.sleep(0.5)
    rss1 = [rss_kib(c.proc.pid) for c in comps]  # type: ignore[union-attr]
    stored = await component.stored_markers() | await component_beta.stored_markers()
    missing = soak.missing(settle)
    not_stored = sorted(set(soak.acked) - stored)
    errors = [line for c, off in zip(comps, offsets, strict=True) for line in c.log_text()[off:].splitlines()
              if " ERROR " in line or "Traceback" in line]
    delivered = sum(len(set(u.seen) & set(soak.acked)) for u in soak.users)
    FIGURES.append((f"soak {SECONDS:.0f}s, 50 users on 2 servers", {
        "requests": soak.requests, "posts_acked": len(soak.acked), "posts_stored": len(set(soak.acked) & stored),
        "notifications": delivered, "missed": len(missing), "failed_requests": len(soak.failed),
        "errors_logged": len(errors), "rss_growth_kib_alpha": rss1[0] - rss0[0],
        "rss_growth_kib_beta": rss1[1] - rss0[1]}))
    for c in soak.users:
        await c.close()
    assert not not_stored, not_stored[:10]
    assert not missing, missing[:10]
    assert not soak.failed, soak.failed[:10]
    assert not errors, errors[:10]
