# SPDX-License-Identifier: AGPL-3.0-or-later
"""The keys node (urn:xmppblog:keys:0 on the service JID) is read from the database: it lists a
key another process made (`rotate-key`, another worker) once its short cache has run out (#16)."""

from __future__ import annotations

from datetime import UTC, datetime

from xmppblog.pubsub.signing import KEYS_CACHE_SECONDS, Signer

from ..support.core import FakeClock
from ..support.world import World

PS = "http://jabber.org/protocol/pubsub"


async def published(world: World) -> dict[str, str]:
    """key id -> its `active` flag, as a peer reads the keys node."""
    reply = await world.iq("peer.example", world.service_jid, "get",
                           f"<pubsub xmlns='{PS}'><items node='urn:xmppblog:keys:0'/></pubsub>")
    assert reply.get("type") == "result"
    return {item.get("id"): item[0].get("active") for item in reply.iter(f"{{{PS}}}item")}


async def test_the_keys_node_lists_a_key_another_process_made(tmp_path):
    world = await World.start(tmp_path)
    try:
        clock = FakeClock()
        clock.t = datetime.now(UTC)
        world.app.signer._clock = clock  # time moves only when told (the keys node's cache)
        first = world.app.signer.key_id
        assert await published(world) == {first: "true"}
        new = await Signer(world.app._uow, clock).rotate()  # xmppblog rotate-key
        clock.advance(KEYS_CACHE_SECONDS)
        assert await published(world) == {first: "true", new: "false"}, "published before it signs"
    finally:
        await world.close()
