# SPDX-License-Identifier: AGPL-3.0-or-later
"""Spamguard's per-key limits shared by the workers of a cluster (spamguard/shared.py, issue #16):
several Guards on one fake store, each flushed as the cluster's heartbeat would, on a fake clock."""

from __future__ import annotations

import math
import random

import pytest

from xmppblog.spamguard.buckets import TokenBuckets
from xmppblog.spamguard.guard import Guard, Limits
from xmppblog.spamguard.shared import SharedBuckets, SharedLimits
from xmppblog.spamguard.verdict import Kind

LOCAL = {"example.org", "blog.example.org"}


class Clock:
    t = 0.0

    def __call__(self) -> float:
        return self.t


class FakeLevels:
    """storage/cluster.SpamUsage in memory: a key's level is `drained_at - now`, on the fake clock."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.drained_at: dict[str, float] = {}
        self.failing = False
        self.calls = 0

    async def charge(self, seconds, watched):
        self.calls += 1
        if self.failing:
            raise OSError("the database is away")
        now = self.clock.t
        for key, s in seconds.items():
            self.drained_at[key] = max(self.drained_at.get(key, now), now) + s
        return {key: max(0.0, self.drained_at.get(key, now) - now) for key in (*seconds, *watched)}


def workers(n, clock, store, **limits):
    """`n` workers' guards; with a store, sharing it, each knowing (as after joining) that there are `n`."""
    async def consent(origin, node):
        return False
    guards = [Guard(consent, LOCAL, Limits(**limits), clock, shared=SharedLimits(store, clock) if store else None)
              for _ in range(n)]
    for g in guards:
        if g.shared is not None:
            g.shared.workers = n
    return guards


def bound(per_minute, seconds, n, h):
    """What spamguard/shared.py promises the cluster admits for one key over `seconds`."""
    return per_minute * (seconds + h) / 60 + 2 * per_minute + n


async def hammer(guards, clock, senders, action, seconds, h=2.0, seed=0, kind="iq", every=0.05):
    """Every worker gets a stanza from each sender `every` seconds (the sender spreads them over
    blogs that land on every worker); each worker flushes at its own phase, every h/2 to h
    seconds. Returns how many the cluster admitted."""
    rng = random.Random(seed)
    n = len(guards)
    next_flush = [rng.uniform(0, h) for _ in guards]
    admitted = 0
    for step in range(int(seconds / every)):
        clock.t = step * every
        for i, g in enumerate(guards):
            if g.shared is not None and clock.t >= next_flush[i]:
                await g.shared.flush(n)
                next_flush[i] = clock.t + rng.uniform(h / 2, h)
            for sender in senders:
                admitted += g.gate(kind, sender, action).accepted
    return admitted


@pytest.mark.parametrize("n", [2, 4])
async def test_workers_together_admit_one_limit_not_n_times_it(n):
    """A remote JID subscribing to blogs on every worker, as fast as it can, for ten minutes.

    Bound (spamguard/shared.py): over T seconds at most A·(T + h)/60 + 2A + N for a limit of
    A a minute, N workers and a flush every h seconds, where one process admits A·T/60 + A: an
    overshoot of A + N + A·h/60 at most, once. Without the shared levels each worker kept its
    own bucket and N workers admitted N× what one process does."""
    a, seconds, h = 20, 600, 2.0
    clock = Clock()
    shared = await hammer(workers(n, clock, FakeLevels(clock), subscribes_per_minute=a), clock,
                          ["eve@spam.example/x"], "subscribe", seconds, h)
    assert shared <= bound(a, seconds, n, h)
    assert shared >= a * seconds / 60, "the configured rate itself still gets through"
    clock = Clock()
    unshared = await hammer(workers(n, clock, None, subscribes_per_minute=a), clock,
                            ["eve@spam.example/x"], "subscribe", seconds, h)
    assert unshared >= n * (a * seconds / 60 + a) - n, "each worker on its own: N× the limit"
    assert unshared > bound(a, seconds, n, h)


@pytest.mark.parametrize("seed", range(4))
async def test_a_domain_spread_over_jids_and_workers_is_held_to_its_domain_limit(seed):
    """Many JIDs of one registrable domain, each under its own limit: the domain's bucket
    (ten times a JID's) is the one that holds, across workers too."""
    n, a, seconds, h = 3, 3, 300, 2.0
    clock = Clock()
    senders = [f"u{i}@s{i % 5}.farm.example/x" for i in range(16)]
    admitted = await hammer(workers(n, clock, FakeLevels(clock), subscribes_per_minute=a), clock,
                            senders, "subscribe", seconds, h, seed, every=0.25)
    assert admitted <= bound(10 * a, seconds, n, h)


async def test_the_first_burst_on_a_worker_is_its_share_then_the_cluster_refuses():
    """Over its share a worker refuses as over its own bucket (same reason, same condition or
    drop), and a stanza refused so costs no local token; once the flushes have shown the
    shared bucket full, every worker refuses until it drains."""
    clock = Clock()
    store = FakeLevels(clock)
    w1, w2 = workers(2, clock, store, subscribes_per_minute=4)
    w2.limits = Limits(subscribes_per_minute=4, over_limit="drop")
    for g in (w1, w2):
        await g.shared.flush(2)
    eve = "eve@spam.example/x"
    assert [w1.gate("iq", eve, "subscribe").accepted for _ in range(2)] == [True, True], "ceil(4/2)"
    refused = w1.gate("iq", eve, "subscribe")
    assert refused.kind is Kind.REJECT and refused.condition == "policy-violation"
    assert refused.reason == "rate-jid-subscribes" and w1.drops[("rate-jid-subscribes", "spam.example")] == 1
    assert w1._rates["subscribe"].jid.local.take("eve@spam.example"), "the local bucket was not charged"
    assert [w2.gate("iq", eve, "subscribe").accepted for _ in range(2)] == [True, True]
    dropped = w2.gate("iq", eve, "subscribe")
    assert dropped.kind is Kind.DROP and dropped.reason == "rate-jid-subscribes", "[spamguard] over_limit"
    for g in (w1, w2, w1):  # w1 read its own 2 before w2's: it learns of them at its next heartbeat
        await g.shared.flush(2)
    assert store.drained_at["subscribes:jid:eve@spam.example"] == pytest.approx(60.0), "4 admitted, 15 s each"
    clock.t = 14.0
    assert not w1.gate("iq", eve, "subscribe").accepted and not w2.gate("iq", eve, "subscribe").accepted
    clock.t = 16.0  # one admission (15 s) has drained: each worker's share of it is ceil(1/2)
    assert w1.gate("iq", eve, "subscribe").accepted and w2.gate("iq", eve, "subscribe").accepted
    assert not w1.gate("iq", eve, "subscribe").accepted


async def test_local_publishes_through_the_blog_and_the_service_jid_share_one_limit():
    """A user's publishes reach their blog JID's worker and the service JID's worker."""
    a = 30
    clock = Clock()
    admitted = await hammer(workers(2, clock, FakeLevels(clock), local_publishes_per_minute=a), clock,
                            ["alice@example.org/pc"], "publish", 300)
    assert admitted <= bound(a, 300, 2, 2.0)
    clock = Clock()
    blog, service = workers(2, clock, FakeLevels(clock), local_publishes_per_minute=2)
    assert blog.gate("iq", "alice@example.org/pc", "publish").accepted, "its share: ceil(2/2)"
    assert not blog.gate("iq", "alice@example.org/pc", "publish").accepted
    await blog.shared.flush(2)
    assert service.gate("iq", "alice@example.org/pc", "publish").accepted, "the other half"
    await service.shared.flush(2)
    await blog.shared.flush(2)
    for g in (blog, service):
        refused = g.gate("iq", "alice@example.org/pc", "publish")
        assert refused.reason == "rate-publishes" and refused.condition == "policy-violation"


async def test_a_user_at_the_configured_rate_is_never_refused_on_any_worker():
    """Legitimate traffic: a chat user sending a command every 2 s (the limit: 30 a minute),
    round-robin over 3 workers, and a burst of their share on one worker after a quiet minute."""
    clock = Clock()
    guards = workers(3, clock, FakeLevels(clock), im_commands_per_minute=30)
    next_flush = [0.0, 0.7, 1.4]
    for step in range(300 * 20):
        clock.t = step * 0.05
        for i, g in enumerate(guards):
            if clock.t >= next_flush[i]:
                await g.shared.flush(3)
                next_flush[i] += 2.0
        if step % 40 == 0:
            assert guards[(step // 40) % 3].gate("message", "bob@example.org/m", "chat").accepted, clock.t
    clock.t += 60
    for g in guards:
        await g.shared.flush(3)
    assert all(guards[0].gate("message", "bob@example.org/m", "chat").accepted for _ in range(math.ceil(30 / 3)))


async def test_while_the_store_is_away_a_worker_keeps_to_its_share_and_charges_later():
    clock = Clock()
    store = FakeLevels(clock)
    (g,) = workers(1, clock, store, searches_per_minute=6)
    shared = g.shared
    await shared.flush(3)
    assert sum(g.gate("iq", "x@peer.example/r", "search").accepted for _ in range(5)) == 2, "ceil(6/3)"
    store.failing = True
    await shared.flush(3)
    assert not g.gate("iq", "x@peer.example/r", "search").accepted, "as if each of 3 workers took 2 of 6"
    clock.t = 25.0  # 2.5 admissions (10 s each) have drained: ceil(2.5 / 3) = 1 more here
    assert sum(g.gate("iq", "x@peer.example/r", "search").accepted for _ in range(5)) == 1
    store.failing = False
    await shared.flush(3)
    assert store.drained_at["searches:jid:x@peer.example"] == pytest.approx(25.0 + 30.0), "all 3 charged"


async def test_keys_are_forgotten_once_drained_and_events_are_not_shared():
    clock = Clock()
    store = FakeLevels(clock)
    (g,) = workers(1, clock, store, subscribes_per_minute=20, remote_events_per_minute=5)
    for i in range(50):
        g.gate("message", f"pubsub.peer{i}.example", "event")
    assert len(g.shared) == 0, "pubsub events come to the service JID only: one worker, nothing shared"
    g.gate("iq", "eve@spam.example/x", "subscribe")
    assert len(g.shared) == 2, "the JID's key and its domain's"
    await g.shared.flush(1)
    clock.t = 10.0
    await g.shared.flush(1)
    assert len(g.shared) == 0 and store.calls == 2
    await g.shared.flush(1)
    assert store.calls == 2, "nothing known, nothing sent"


def test_one_process_keeps_its_plain_buckets():
    """Without a cluster (SQLite, or [cluster] off) the guard is what it always was."""
    (g,) = workers(1, Clock(), None)
    assert g.shared is None
    buckets = [b for r in g._rates.values() for b in (r.jid, r.domain)] + [g._local_publishes]
    assert all(type(b) is TokenBuckets for b in buckets)
    (c,) = workers(1, Clock(), FakeLevels(Clock()))
    assert isinstance(c._local_publishes, SharedBuckets) and type(c._rates["event"].jid) is TokenBuckets


async def test_a_flood_of_senders_never_makes_a_flush_unbounded(monkeypatch):
    """Past MAX_KEYS keys, new senders are limited by this worker's buckets only: one flush
    (and the heartbeat it runs after) stays bounded however many senders flood."""
    from xmppblog.spamguard import shared
    monkeypatch.setattr(shared, "MAX_KEYS", 3)
    clock = Clock()
    store = FakeLevels(clock)
    limits = SharedLimits(store, clock)
    for i in range(10):
        limits.spent(f"subscribes:jid:u{i}@flood.example", 20)
    assert len(limits) == 3 and limits.unshared == 7
    charged = []
    real = store.charge

    async def charge(seconds, watched):
        charged.append(len(seconds) + len(watched))
        return await real(seconds, watched)

    store.charge = charge  # type: ignore[method-assign]
    await limits.flush(2)
    assert charged == [3]
