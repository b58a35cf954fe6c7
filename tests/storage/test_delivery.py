# SPDX-License-Identifier: AGPL-3.0-or-later
"""Bounces of notifications to other servers: retry with backoff, give up, end subscriptions."""

from __future__ import annotations

from datetime import timedelta

from xmppblog.core.delivery import Deliveries, DeliveryPolicy, backoff, is_temporary
from xmppblog.core.model import NS_MICROBLOG, Actor, NodeRef

from .test_service_storage import ALICE, draft

REF = NodeRef("alice@blog.example.org", NS_MICROBLOG)
PEER = "blog.other.org"


async def _sent_row(service, uow, clock):
    await service.subscribe(Actor(PEER), REF, PEER)
    await service.publish(ALICE, REF, None, draft("to a peer"))
    async with uow() as u:
        due = await u.outbox.due(clock.now(), 10)
        row = next(d for d in due if d.recipient == PEER)
        await u.outbox.mark_sent([row.row_id], clock.now())
        await u.commit()
        assert not [d for d in await u.outbox.due(clock.now(), 10) if d.row_id == row.row_id]
    return row.row_id


def test_conditions_and_backoff():
    assert is_temporary("remote-server-timeout") and is_temporary("recipient-unavailable")
    assert not is_temporary("item-not-found") and not is_temporary("remote-server-not-found")
    assert [backoff(n).total_seconds() for n in (1, 2, 3, 20)] == [30, 60, 120, 3600]


async def test_temporary_bounce_retries_then_gives_up(stack):
    core, uow, clock = stack
    service = core.pubsub
    d = Deliveries(core.transactions, clock, DeliveryPolicy(retry_for=timedelta(hours=1)))
    row = await _sent_row(service, uow, clock)
    assert await d.bounced(row, "mallory.example", "remote-server-timeout") == "unknown"
    assert await d.bounced(row, PEER, "remote-server-timeout") == "retry"
    async with uow() as u:
        assert await u.outbox.due(clock.now(), 10) == []
    clock.advance(31)
    async with uow() as u:
        assert [x.row_id for x in await u.outbox.due(clock.now(), 10)] == [row]
        await u.outbox.mark_sent([row], clock.now())
        await u.commit()
    clock.advance(3700)
    assert await d.bounced(row, PEER, "recipient-unavailable") == "gave-up"
    async with uow() as u:
        assert await u.outbox.get(row) is None


async def test_repeated_permanent_errors_end_the_subscription(stack):
    core, uow, clock = stack
    service = core.pubsub
    d = Deliveries(core.transactions, clock, DeliveryPolicy(max_failures=2))
    assert await d.bounced(await _sent_row(service, uow, clock), PEER, "item-not-found") == "failed"
    assert [s.jid for s in await service.get_subscriptions(ALICE, REF)] == [PEER]
    assert await d.bounced(await _sent_row(service, uow, clock), PEER, "item-not-found") == "ended"
    assert await service.get_subscriptions(ALICE, REF) == []


async def test_unbounced_rows_expire(stack):
    core, uow, clock = stack
    service = core.pubsub
    d = Deliveries(core.transactions, clock, DeliveryPolicy(keep_sent_for=timedelta(minutes=10)))
    row = await _sent_row(service, uow, clock)
    assert await d.expire_sent() == 0
    clock.advance(601)
    assert await d.expire_sent() == 1
    async with uow() as u:
        assert await u.outbox.get(row) is None


async def test_unconfirmed_rows_are_sent_again_after_a_restart(stack):
    core, uow, clock = stack
    service = core.pubsub
    row = await _sent_row(service, uow, clock)
    assert await core.deliveries.requeue_after_restart() == 1
    async with uow() as u:
        assert [d.row_id for d in await u.outbox.due(clock.now(), 10)] == [row]


async def test_a_retried_notification_is_counted_sent_once(stack):
    """xmppblog_notifications_sent_total counts notifications, not attempts (http/metrics.py)."""
    import asyncio

    from xmppblog.pubsub.notify import OutboxSender

    core, uow, clock = stack
    counted: list[tuple[str, int]] = []
    sender = OutboxSender(uow, lambda data, largest=None: True, asyncio.Event(), clock,
                          is_remote=lambda jid: jid == PEER,
                          delivered=lambda kind, n, planned, now: counted.append((kind, n)))
    d = Deliveries(core.transactions, clock, DeliveryPolicy(retry_for=timedelta(hours=1)))
    await core.pubsub.subscribe(Actor(PEER), REF, PEER)
    counted.clear()
    await core.pubsub.publish(ALICE, REF, "p1", draft("to a peer"))
    async with uow() as u:
        row = next(x.row_id for x in await u.outbox.due(clock.now(), 10) if x.recipient == PEER)
    await sender.drain_once()
    assert counted == [("item_published", 1)]
    assert await d.bounced(row, PEER, "remote-server-timeout") == "retry"
    clock.advance(31)
    assert await sender.drain_once() == 1, "the retry went out"
    assert counted == [("item_published", 1)], "and was not counted as another notification"


async def test_a_server_that_answers_again_gets_its_waiting_notifications_at_once(stack):
    """After a long outage the backoff has grown: a server that answers a ping again has what
    waits for it sent now (federation/recovery.py), not when each row's backoff runs out."""
    from xmppblog.core import errors
    from xmppblog.federation.recovery import ServerRecovery

    core, uow, clock = stack
    d = Deliveries(core.transactions, clock, DeliveryPolicy(retry_for=timedelta(hours=1)))
    delivered = await _sent_row(core.pubsub, uow, clock)  # before the outage: it arrived, never bounces
    clock.advance(5)
    row = await _sent_row(core.pubsub, uow, clock)
    for _ in range(5):  # the backoff grows to 8 minutes
        assert await d.bounced(row, PEER, "remote-server-timeout") == "retry"
    assert await d.retrying_servers() == [PEER]

    class Pings:
        up: set[str] = set()
        asked: list[str] = []

        async def get(self, to, payload):
            self.asked.append(to)
            if to not in self.up:
                raise errors.RemoteUnavailable(f"{to} did not answer")
            return payload

    pings = Pings()
    recovery = ServerRecovery(pings, d)  # type: ignore[arg-type]
    assert await recovery.check() == 0 and pings.asked == [PEER], "still down: nothing changes"
    async with uow() as u:
        assert await u.outbox.due(clock.now(), 10) == []
    # while it was down, another notification went out and its bounce never came back
    clock.advance(60)
    await core.pubsub.publish(ALICE, REF, None, draft("sent into the void"))
    async with uow() as u:
        silent = next(x.row_id for x in await u.outbox.due(clock.now(), 10) if x.recipient == PEER)
        await u.outbox.mark_sent([silent], clock.now())
        await u.commit()
    pings.up.add(PEER)
    assert await recovery.check() == 2
    async with uow() as u:
        due = sorted(x.row_id for x in await u.outbox.due(clock.now(), 10))
    assert due == sorted([row, silent]), "due now, not in 8 minutes; and what was sent into the outage too"
    assert delivered not in due, "what arrived before the outage is not sent again"
    assert await d.server_back("other.org") == 0, "another server's rows are left alone"
