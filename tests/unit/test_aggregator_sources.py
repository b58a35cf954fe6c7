# SPDX-License-Identifier: AGPL-3.0-or-later
"""An aggregator's sources (federation/aggregator.py, issue #17): a source that is down at
start is retried with a growing delay while the others are followed; one that stops
answering is marked unreachable, kept, and followed again (caught up) when it is back;
blocked sources are never followed."""

from __future__ import annotations

import asyncio

from xmppblog.core.model import SubState
from xmppblog.federation import aggregator
from xmppblog.federation.aggregator import Sources


class Component:
    def __init__(self) -> None:
        self.online = asyncio.Event()
        self.online.set()


class Addr:
    service_jid = "blog.here.example"


class World:
    """Which sources answer; what was subscribed."""

    addr = Addr()

    def __init__(self) -> None:
        self.up = {"blog.a.example": True, "blog.b.example": False}
        self.subscribed: list[str] = []

    async def users_domain(self, source):
        return source.split(".", 1)[1] if self.up.get(source) else None

    async def follow_source(self, ref, max_items):
        pass

    async def subscribe(self, ref):
        if not self.up.get(ref.service):
            return SubState.PENDING
        self.subscribed.append(ref.service)
        return SubState.SUBSCRIBED

    async def answers(self, source):
        return self.up.get(source, False)

    async def consented(self, service, node):
        return service not in self.ended

    ended: set[str] = set()


async def until(check, timeout=3.0):
    end = asyncio.get_running_loop().time() + timeout
    while not check():
        assert asyncio.get_running_loop().time() < end, "never happened"
        await asyncio.sleep(0.01)


async def test_sources_are_followed_retried_watched_and_followed_again(monkeypatch):
    monkeypatch.setattr(aggregator, "FIRST_RETRY_SECONDS", 0.05)
    world = World()
    sources = Sources(Component(), world, world, world,  # type: ignore[arg-type]
                      ("blog.a.example", "blog.b.example", "blog.evil.example"), ("evil.example",), 1000)
    sources.check_seconds = 0.05
    assert sources.sources == ("blog.a.example", "blog.b.example"), "a blocked source is never followed"
    task = asyncio.ensure_future(sources.run())
    try:
        await until(lambda: sources.states()["blog.a.example"] == "following")
        assert sources.states()["blog.b.example"] == "unreachable", "down at start; the other is followed"
        world.up["blog.b.example"] = True
        await until(lambda: sources.states()["blog.b.example"] == "following")
        world.up["blog.a.example"] = False  # stops answering: marked, kept
        await until(lambda: sources.states()["blog.a.example"] == "unreachable")
        world.up["blog.a.example"] = True
        await until(lambda: world.subscribed.count("blog.a.example") == 2)
        await until(lambda: sources.states()["blog.a.example"] == "following")
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_an_aggregator_finds_more_sources_among_the_servers_whose_blogs_are_followed(monkeypatch):
    from xmppblog.core.model import RemoteSub

    class Addr:
        service_jid = "blog.here.example"

    class Met(World):
        addr = Addr()

        def __init__(self) -> None:
            super().__init__()
            self.up.update({"blog.c.example": True, "blog.evil.example": True})

        async def held(self):
            return [RemoteSub("carl@blog.c.example", "urn:xmpp:microblog:0", "blog.here.example", SubState.SUBSCRIBED),
                    RemoteSub("pat@pep.example", "urn:xmpp:microblog:0", "blog.here.example", SubState.SUBSCRIBED),
                    RemoteSub("eve@blog.evil.example", "urn:xmpp:microblog:0", "blog.here.example",
                              SubState.SUBSCRIBED),
                    RemoteSub("blog.a.example", "urn:xmppblog:firehose:0", "blog.here.example", SubState.SUBSCRIBED)]

    monkeypatch.setattr(aggregator, "FIRST_RETRY_SECONDS", 0.05)
    world = Met()
    sources = Sources(Component(), world, world, world,  # type: ignore[arg-type]
                      ("blog.a.example",), ("evil.example",), 1000)
    sources.discover_seconds = 0.05
    task = asyncio.ensure_future(sources.run())
    try:
        await until(lambda: sources.states().get("blog.c.example") == "following")
        assert set(sources.states()) == {"blog.a.example", "blog.c.example"}, \
            "a PEP blog's server (not xmppblog) and a blocked one are not sources"
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_a_source_that_ended_our_subscription_is_followed_again(monkeypatch):
    monkeypatch.setattr(aggregator, "FIRST_RETRY_SECONDS", 0.05)
    world = World()
    world.ended = set()
    sources = Sources(Component(), world, world, world,  # type: ignore[arg-type]
                      ("blog.a.example", "blog.here.example"), (), 1000)
    assert sources.sources == ("blog.a.example",), "never our own service"
    sources.check_seconds = 0.05
    task = asyncio.ensure_future(sources.run())
    try:
        await until(lambda: world.subscribed.count("blog.a.example") == 1)
        world.ended.add("blog.a.example")  # it pushed <delete/> or subscription='none'
        await until(lambda: world.subscribed.count("blog.a.example") >= 2)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
