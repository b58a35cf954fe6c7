# SPDX-License-Identifier: AGPL-3.0-or-later
"""Issue #8 end to end: crashes, shutdowns and a database outage under load lose nothing.

A Prosody of its own (epsilon.test, 127.0.10.6), so killing components here never
disturbs the other end-to-end tests. Publishers pipeline XEP-0060 publishes as fast as
the server answers; subscribers stay online throughout and count every notification by
the post marker it carries (tests/support/mini.py). Figures go to the run's report.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
from collections.abc import Awaitable, Callable

import pytest

from ..conftest import FIGURES
from ..support.component import Component
from ..support.mini import Mini
from ..support.postgres import PostgresServer, fresh_database
from ..support.prosody import Prosody

PS = "http://jabber.org/protocol/pubsub"
NODE = "urn:xmpp:microblog:0"
PUBLISHERS, PER_PUBLISHER, WINDOW, SUBSCRIBERS = 4, 260, 16, 3
LOST_AFTER = 5.0  # seconds without an answer: the request died with the component


@pytest.fixture(scope="module")
def postgres(tmp_path_factory):
    pg = PostgresServer(tmp_path_factory.mktemp("pg-robust"))
    if why := pg.unavailable():
        pytest.skip(why)
    pg.start()
    yield pg
    pg.stop()


def component(server: Prosody, workdir, db_url: str | None) -> Component:  # type: ignore[no-untyped-def]
    return Component(server, workdir, db_url=db_url).for_load()


def publish_iq(blog: str, iq_id: str, n: int) -> str:
    return (f"<iq type='set' id='{iq_id}' to='{blog}'><pubsub xmlns='{PS}'><publish node='{NODE}'><item>"
            f"<entry xmlns='http://www.w3.org/2005/Atom'><title>bench-{n}-load</title></entry>"
            "</item></publish></pubsub></iq>")


class Load:
    """Publishers pipelining publishes and subscribers following all of them."""

    def __init__(self, server: Prosody, comp: Component, tag: str) -> None:
        self.server, self.comp, self.tag = server, comp, tag
        self.pubs = [Mini(server.ip, server.domain, f"{tag}p{i}") for i in range(PUBLISHERS)]
        self.subs = [Mini(server.ip, server.domain, f"{tag}s{i}") for i in range(SUBSCRIBERS)]
        self.acked: set[int] = set()
        self.sent = 0

    def blog(self, pub: Mini) -> str:
        return f"{pub.user}@{self.server.component}"

    async def setup(self) -> None:
        await asyncio.gather(*(c.connect() for c in [*self.pubs, *self.subs]))
        for k, p in enumerate(self.pubs):  # the first post creates the node to follow
            reply = await p.request(publish_iq(self.blog(p), "first", k * 100_000 + 99_999))
            assert b"result" in reply, reply  # before anyone follows: not counted
        for s in self.subs:
            for p in self.pubs:
                reply = await s.request(f"<iq type='set' id='sub' to='{self.blog(p)}'><pubsub xmlns='{PS}'>"
                                        f"<subscribe node='{NODE}' jid='{s.jid}'/></pubsub></iq>")
                assert b"subscribed" in reply, reply
        for c in [*self.pubs, *self.subs]:
            c.start_counting()

    async def publish_all(self, during: Callable[[], Awaitable[None]] | None = None) -> None:
        async def one(k: int, p: Mini) -> None:
            sent_at: dict[str, float] = {}

            def waiting() -> int:
                """Unanswered publishes; one sent to a component that died is never answered."""
                now = time.monotonic()
                return sum(1 for x, t in sent_at.items() if x not in p.replies and now - t < LOST_AFTER)

            errors = 0
            for i in range(PER_PUBLISHER):
                while waiting() >= WINDOW:
                    p.reply_seen.clear()
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(p.reply_seen.wait(), 0.2)
                now_errors = sum(1 for t in p.replies.values() if t == b"error")
                if now_errors > errors:  # the service is away: a client tries again a little later
                    errors = now_errors
                    await asyncio.sleep(0.2)
                p.send(publish_iq(self.blog(p), f"p{i}", k * 100_000 + i))
                sent_at[f"p{i}"] = time.monotonic()
                self.sent += 1
            while waiting():
                await asyncio.sleep(0.05)

        tasks = [asyncio.ensure_future(one(k, p)) for k, p in enumerate(self.pubs)]
        if during is not None:
            await during()
        await asyncio.gather(*tasks)
        for k, p in enumerate(self.pubs):
            self.acked |= {k * 100_000 + int(i[1:]) for i, t in p.replies.items()
                           if i.startswith("p") and t == b"result"}

    def acks(self) -> int:
        return sum(sum(1 for i, t in p.replies.items() if i.startswith("p") and t == b"result") for p in self.pubs)

    async def settle(self, timeout: float = 40.0) -> None:
        end = time.monotonic() + timeout
        while time.monotonic() < end and not all(self.acked <= set(s.seen) for s in self.subs):
            await asyncio.sleep(0.1)

    async def report(self, name: str) -> dict[str, int]:
        present = await self.comp.stored_markers()
        delivered = sum(len(self.acked & set(s.seen)) for s in self.subs)
        dups = sum(c - 1 for s in self.subs for c in s.seen.values() if c > 1)
        figures = {"sent": self.sent, "acknowledged": len(self.acked),
                   "present": len(self.acked & present), "delivered": delivered,
                   "expected": len(self.acked) * SUBSCRIBERS, "duplicated": dups}
        FIGURES.append((name, figures))
        self.missing = sorted({n for s in self.subs for n in self.acked - set(s.seen)})[:20]
        return figures

    async def close(self) -> None:
        for c in [*self.pubs, *self.subs]:
            await c.close()


@pytest.mark.parametrize("db", ["sqlite", "postgresql"])
async def test_kill_9_under_load_loses_no_acknowledged_post_or_notification(epsilon, tmp_path, request, db):
    url = fresh_database(request.getfixturevalue("postgres").url) if db == "postgresql" else None
    comp = component(epsilon, tmp_path / "xmppblog", url)
    comp.start()
    load = Load(epsilon, comp, f"k{db[0]}")
    try:
        await load.setup()

        async def kill_midway() -> None:
            while load.acks() < PUBLISHERS * PER_PUBLISHER * 0.4:
                await asyncio.sleep(0.01)
            comp.stop(signal.SIGKILL)
            await asyncio.to_thread(comp.start)

        await load.publish_all(during=kill_midway)
        await load.settle()
        r = await load.report(f"kill -9 under load ({db})")
        assert r["sent"] >= 1000
        assert r["acknowledged"] > PUBLISHERS * PER_PUBLISHER * 0.45, f"the load did not go on after the restart: {r}"
        assert r["present"] == r["acknowledged"], r
        assert r["delivered"] == r["expected"], (r, "never delivered:", load.missing, comp.log)
    finally:
        await load.close()
        comp.stop()


async def test_sigterm_under_load_finishes_in_flight_work(epsilon, tmp_path):
    comp = component(epsilon, tmp_path / "xmppblog", None)
    comp.start()
    load = Load(epsilon, comp, "t")
    try:
        await load.setup()

        async def stop_midway() -> None:
            while load.acks() < PUBLISHERS * PER_PUBLISHER * 0.4:
                await asyncio.sleep(0.01)
            rc = await asyncio.to_thread(comp.stop)  # SIGTERM
            assert rc == 0
            assert "Traceback" not in comp.log_text()
            await asyncio.to_thread(comp.start)

        await load.publish_all(during=stop_midway)
        await load.settle()
        r = await load.report("SIGTERM under load (sqlite)")
        assert r["present"] == r["acknowledged"] and r["delivered"] == r["expected"], r
        assert r["duplicated"] == 0, "a graceful stop hands over everything once"
    finally:
        await load.close()
        comp.stop()


async def test_database_outage_fails_fast_and_recovers(epsilon, postgres, tmp_path):
    comp = component(epsilon, tmp_path / "xmppblog", fresh_database(postgres.url))
    comp.start()
    load = Load(epsilon, comp, "d")
    try:
        await load.setup()
        p = load.pubs[0]
        await asyncio.to_thread(postgres.stop)
        t = time.monotonic()
        p.send(publish_iq(load.blog(p), "down", 7))
        while "down" not in p.replies and time.monotonic() - t < 10:
            await asyncio.sleep(0.02)
        took = time.monotonic() - t
        assert p.replies.get("down") == b"error", "a publish while the database is down must get an error"
        assert took < 5, f"the error took {took:.1f}s"
        assert "the database is unavailable" in comp.log_text(since_start=True)
        await asyncio.to_thread(postgres.start_again)
        t = time.monotonic()
        for i in range(200):
            p.send(publish_iq(load.blog(p), f"up{i}", 8 + i))
            while f"up{i}" not in p.replies and time.monotonic() - t < 30:
                await asyncio.sleep(0.02)
            if p.replies.get(f"up{i}") == b"result":
                load.acked.add(8 + i)
                break
            await asyncio.sleep(0.2)
        recovery = time.monotonic() - t
        assert load.acked & set(range(8, 208)), "publishing did not resume after the database returned"
        await load.settle()
        r = await load.report("PostgreSQL stopped, then started")
        assert 7 not in await comp.stored_markers(), "the refused publish left no half-written item"
        assert r["present"] == r["acknowledged"] and r["delivered"] == r["expected"], r
        FIGURES.append(("  error reply while down (ms) / recovery after restart (s)",
                        {"error_ms": round(took * 1000), "recovery_s": round(recovery, 1)}))
    finally:
        await load.close()
        comp.stop()


async def test_prosody_restart_under_load_reconnects_and_keeps_every_acknowledged_post(epsilon, tmp_path):
    comp = component(epsilon, tmp_path / "xmppblog", None)
    comp.start()
    pub = Mini(epsilon.ip, epsilon.domain, "rp")
    try:
        await pub.connect()
        blog = f"rp@{epsilon.component}"
        pub.start_counting()
        for i in range(400):  # pipelined, as fast as it goes, until the host goes away
            if i == 150:
                restarted = time.monotonic()
                await asyncio.to_thread(epsilon.restart)
                break
            pub.send(publish_iq(blog, f"p{i}", i))
            await asyncio.sleep(0.002)
        acked = {int(i[1:]) for i, t in pub.replies.items() if i.startswith("p") and t == b"result"}
        await pub.close()
        # the component reconnects by itself; a new client publishes as soon as it has
        await asyncio.to_thread(comp.wait_log, "connected to ", 30, True, 2)
        again = Mini(epsilon.ip, epsilon.domain, "rp")
        await again.connect(register=False)
        ok = b""
        while b"result" not in ok and time.monotonic() - restarted < 30:
            ok = await again.request(publish_iq(blog, "after", 9_999), 5)
            if b"result" not in ok:
                await asyncio.sleep(0.1)
        recovery = time.monotonic() - restarted
        await again.close()
        present = await comp.stored_markers()
        FIGURES.append(("Prosody restarted under load (sqlite)", {
            "acknowledged": len(acked), "present": len(acked & present), "recovery_ms": round(recovery * 1000)}))
        assert b"result" in ok, "publishing did not resume after the host restarted"
        assert acked and acked <= present, sorted(acked - present)[:10]
        assert "disconnected from host server" in comp.log_text(since_start=True)
    finally:
        comp.stop()
