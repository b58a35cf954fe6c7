# SPDX-License-Identifier: AGPL-3.0-or-later
"""Workers of a cluster writing the same rows at the same moment (issue #16; PostgreSQL, where
two transactions really interleave: on SQLite one process's transactions take turns)."""

from __future__ import annotations

import asyncio
import contextlib
from datetime import timedelta

import pytest

from xmppblog.core.following import FollowService
from xmppblog.core.model import NS_MICROBLOG, Actor, NodeRef, SubState
from xmppblog.storage import migrate
from xmppblog.storage.engine import create_engine, sessionmaker
from xmppblog.storage.repos import NodeRepo, RemoteRepo, uow_factory

from ..support.core import ADDR, FakeClock


@pytest.fixture
async def pg_uows(pg_server):
    """A unit-of-work factory over a fresh, migrated PostgreSQL database."""
    from ..support.postgres import fresh_database
    url = fresh_database(pg_server)
    await migrate.upgrade(url)
    engine = create_engine(url)
    yield uow_factory(sessionmaker(engine), FakeClock())
    await engine.dispose()


@pytest.mark.postgres
async def test_two_workers_flush_the_same_first_drop_counter(pg_uows):
    """Both flushes count (#15 of docs/scale-out.md's review): the second waits for the first
    and adds to its row instead of failing on the unique (reason, domain) and losing its counts."""
    clock = FakeClock()
    key = ("no-subscription", "spam.example")
    async with pg_uows() as first:
        await first.stats.add_drops({key: 3}, clock.now())

        async def second_worker() -> None:
            async with pg_uows() as second:
                await second.stats.add_drops({key: 4, ("rate", "spam.example"): 1}, clock.now())
                await second.commit()

        other = asyncio.create_task(second_worker())
        await asyncio.sleep(0.3)  # the second worker's flush is under way, waiting for this one
        await first.commit()
    await other
    async with pg_uows() as uow:
        counts = {(reason, domain): n for reason, domain, n, _ in await uow.stats.drops()}
    assert counts == {key: 7, ("rate", "spam.example"): 1}


async def test_drop_counters_add_up(stack):
    """Both backends: a flush adds to the counters already stored and moves `last_at`."""
    _, uows, clock = stack
    for n in (2, 5):
        async with uows() as uow:
            await uow.stats.add_drops({("rate", "a.example"): n, ("blocked", "b.example"): 1}, clock.now())
            await uow.commit()
        clock.advance(60)
    async with uows() as uow:
        drops = await uow.stats.drops()
    assert [(r, d, n) for r, d, n, _ in drops] == [("rate", "a.example", 7), ("blocked", "b.example", 2)]
    assert {at for *_, at in drops} == {clock.now() - timedelta(seconds=60)}, "the second flush's time"


# ------------------------------------------------------------ following a remote node (#19)

BOB = "bob@other.example"
BOBS = NodeRef("bob@blog.other.example", NS_MICROBLOG)
ALICE, CAROL = Actor("alice@example.org"), Actor("carol@example.org")


def pause(monkeypatch, repo: type, method: str, task: str, until: asyncio.Event, seconds: float = 1.0) -> None:
    """Make `repo.method`, when the task named `task` calls it, wait (at most `seconds`) for `until`
    once it has done its work: the other worker's transaction runs in between, or waits for this one."""
    original = getattr(repo, method)

    async def paused(self, *args):  # type: ignore[no-untyped-def]
        found = await original(self, *args)
        current = asyncio.current_task()
        if current is not None and current.get_name() == task:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(until.wait(), seconds)
        return found
    monkeypatch.setattr(repo, method, paused)


async def held(uows) -> list[SubState]:  # type: ignore[no-untyped-def]
    async with uows() as uow:
        return [s.state for s in await uow.remote.all() if (s.service, s.node) == (BOBS.service, BOBS.node)]


async def test_a_follow_while_the_last_follower_leaves_keeps_the_remote_subscription(stack, monkeypatch):
    """Worker A: alice follows bob's remote blog (carol already does: not the first). Worker B:
    carol, the last follower, leaves, between A's look at the held subscription and A's commit.
    Follows and unfollows of one remote node take turns, so B sees alice and keeps the
    subscription; before, B dropped it and alice followed a node nobody subscribed to."""
    core, uows, _ = stack
    assert (await core.remote.follow(CAROL, BOB, BOBS)).first
    await core.remote.confirmed(BOBS, SubState.SUBSCRIBED)
    left = asyncio.Event()
    pause(monkeypatch, RemoteRepo, "get", "alice follows", left)

    follow = asyncio.create_task(core.remote.follow(ALICE, BOB, BOBS), name="alice follows")
    await asyncio.sleep(0.2)  # alice's follow has looked at the held subscription
    try:
        last = await core.remote.unfollow(CAROL, BOBS)
    finally:
        left.set()
    followed = await follow

    assert [n.ref for n in await core.remote.followed_by(ALICE)] == [BOBS]
    assert not (last and not followed.first), "nobody subscribes again for alice"
    assert await held(uows) == [SubState.SUBSCRIBED], "the subscription is kept while alice follows"
    assert not last and not followed.first


async def test_two_first_followers_at_once_both_follow(stack, monkeypatch):
    """Two workers: alice and carol follow bob's remote blog at the same moment, both the first.
    Both follows succeed (the loser of the race on the cached node runs again), and exactly
    one of them subscribes at bob's server."""
    core, uows, _ = stack
    both = asyncio.Event()
    pause(monkeypatch, NodeRepo, "create", "alice follows", both)

    alice = asyncio.create_task(core.remote.follow(ALICE, BOB, BOBS), name="alice follows")
    await asyncio.sleep(0.2)  # alice's follow has created the cached node, not committed yet
    carol = asyncio.create_task(core.remote.follow(CAROL, BOB, BOBS), name="carol follows")
    await asyncio.sleep(0.2)
    both.set()
    results = await asyncio.gather(alice, carol)

    assert sorted(r.first for r in results) == [False, True]
    for actor in (ALICE, CAROL):
        assert [n.ref for n in await core.remote.followed_by(actor)] == [BOBS]
    assert await held(uows) == [SubState.PENDING]


async def test_a_subscribe_answered_after_the_last_follower_left_is_not_held_again(stack):
    """Alice follows first (the subscribe goes out), then leaves, the last follower (the
    subscription ends), and only then does bob's server answer the subscribe: nobody here
    follows bob any more, so the answer does not bring back a subscription nobody reads."""
    core, uows, _ = stack
    assert (await core.remote.follow(ALICE, BOB, BOBS)).first
    assert await core.remote.unfollow(ALICE, BOBS), "alice was the last follower"
    await core.remote.confirmed(BOBS, SubState.SUBSCRIBED)
    assert await held(uows) == []
    assert not await core.remote.consented(BOBS.service, BOBS.node)


class CrossingDirectory:
    """Bob's server, as reached from two workers: while alice's unsubscribe is on its way,
    carol follows (on another worker) and her subscribe arrives first."""

    def __init__(self) -> None:
        self.arrived: list[str] = []
        self.carol: FollowService | None = None

    async def resolve(self, target: str) -> tuple[str, NodeRef]:
        return BOB, BOBS

    async def subscribe(self, ref: NodeRef) -> SubState:
        self.arrived.append("subscribe")
        return SubState.SUBSCRIBED

    async def unsubscribe(self, ref: NodeRef) -> None:
        if self.carol is not None:
            carol, self.carol = self.carol, None
            await carol.follow(CAROL, BOB)
        self.arrived.append("unsubscribe")

    async def publish(self, actor: Actor, ref: NodeRef, draft: object) -> str:
        raise AssertionError("not in this test")


async def test_a_subscribe_that_crossed_the_last_unsubscribe_is_sent_again(stack):
    """What bob's server last hears is a subscribe while someone here follows bob."""
    core, uows, _ = stack
    bobs_server = CrossingDirectory()
    follows = FollowService(ADDR, core.transactions, core.pubsub, core.remote, bobs_server)
    await follows.follow(ALICE, BOB)
    bobs_server.carol = FollowService(ADDR, core.transactions, core.pubsub, core.remote, bobs_server)
    await follows.unfollow(ALICE, BOB)
    assert [n.ref for n in await core.remote.followed_by(CAROL)] == [BOBS]
    assert bobs_server.arrived[-1] == "subscribe", bobs_server.arrived
    assert await held(uows) == [SubState.PENDING], "held for carol (this directory never confirms)"
