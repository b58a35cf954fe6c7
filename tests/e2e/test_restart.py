# SPDX-License-Identifier: AGPL-3.0-or-later
"""Issue #2 end to end: durability across component restarts, kill -9, and host restarts."""

from __future__ import annotations

import asyncio
import signal
import time

from slixmpp.exceptions import IqError, IqTimeout

from ..support.clients import connect
from .test_pubsub import NODE, blog, is_publish, item_ids, publish


async def test_component_restart_keeps_everything(clients, component):
    walter, bob = await clients("walter"), await clients("bob")
    await bob.pubsub.subscribe(blog("walter"), NODE)
    ids = [await publish(walter, "walter", f"before restart {i}") for i in range(3)]
    component.stop()
    component.start()
    assert await item_ids(bob, "walter") == ids[::-1]
    r = await bob.pubsub.get_subscriptions(blog("walter"))
    assert [(s["node"], s["subscription"]) for s in r["pubsub"]["subscriptions"]] == [(NODE, "subscribed")]
    after = await publish(walter, "walter", "after restart")
    assert await bob.inbox.wait(is_publish(after))


async def test_kill_9_right_after_ack_loses_nothing(clients, component):
    walter = await clients("walter")
    acked = [await publish(walter, "walter", f"durable {i}") for i in range(20)]
    component.stop(signal.SIGKILL)
    component.start()
    stored = await item_ids(walter, "walter", max_items=50)
    assert set(acked) <= set(stored)


async def test_reconnects_after_prosody_restart(net, alpha, component):
    alpha.restart()
    t0 = time.monotonic()
    # one "connected" line from the last start, a second one after the reconnect
    component.wait_log("connected to ", timeout=30, count=2)
    assert "disconnected from host server" in component.log_text(since_start=True)
    # a fresh client after the restart can use the service again
    c = await connect("trent@alpha.test", alpha.ip)
    try:
        for _ in range(100):
            try:
                item = await publish(c, "trent", "after prosody restart")
                break
            except (IqError, IqTimeout):  # the component may still be reconnecting
                await asyncio.sleep(0.1)
        assert item in await item_ids(c, "trent")
    finally:
        c.disconnect()
    assert time.monotonic() - t0 < 30
