# SPDX-License-Identifier: AGPL-3.0-or-later
"""Notification stanza ids are never reused, on both backends, across restarts (issue #15).

Clients and archives de-duplicate on (sender, id): a post, its edit and its
retraction must not share an id once the outbox emptied between them, nor
after the server restarts on the same database.
"""

from __future__ import annotations

import asyncio
import xml.etree.ElementTree as ET

from xmppblog.core.model import NS_MICROBLOG, Actor, EventKind, NodeRef, OutboxEvent
from xmppblog.federation.bounces import _ID as BOUNCE_ID
from xmppblog.pubsub.notify import OutboxSender
from xmppblog.pubsub.xep_0277 import parse_entry
from xmppblog.storage.engine import create_engine, sessionmaker
from xmppblog.storage.repos import uow_factory

ALICE, BOB = Actor("alice@example.org"), Actor("bob@example.org")
REF = NodeRef("alice@blog.example.org", NS_MICROBLOG)


def draft(title: str):
    item = ET.fromstring(f"<item><entry xmlns='http://www.w3.org/2005/Atom'><title>{title}</title></entry></item>")
    return parse_entry(item, 65536)


def _local(jid: str) -> bool:
    return jid.split("/", 1)[0].rpartition("@")[2] == "example.org"


async def drain(uow, clock) -> list[str]:
    """Everything due, handed over by the real sender: the stanza ids it used."""
    sent: list[str] = []

    def send(data: str, largest: int | None = None) -> bool:
        sent.extend(stanza.get("id") for stanza in ET.fromstring(f"<stream>{data}</stream>"))
        return True

    sender = OutboxSender(uow, send, asyncio.Event(), clock)
    await sender.drain_once()
    async with uow() as u:
        assert await u.outbox.pending_count() == 0, "the outbox is empty again"
    return sent


async def test_post_edit_retraction_and_a_restart_get_distinct_ids(backend, db_url):
    service, uow, clock = backend  # this factory tracks every recipient: ids `ob<row>`
    await service.subscribe(BOB, REF, "bob@example.org")
    ids = []
    await service.publish(ALICE, REF, "a", draft("post"))
    ids += await drain(uow, clock)
    await service.publish(ALICE, REF, "a", draft("post, edited"))
    ids += await drain(uow, clock)
    await service.retract(ALICE, REF, ["a"], True)
    ids += await drain(uow, clock)
    assert len(ids) == 3 and len(set(ids)) == 3, ids
    assert all(BOUNCE_ID.match(i) for i in ids), "a bounce of each still names its row"

    # A restart: a new engine on the same database, whose outbox is empty.
    engine = create_engine(db_url)
    try:
        again = uow_factory(sessionmaker(engine), clock)
        async with again() as u:
            await u.outbox.add(OutboxEvent(EventKind.ITEM_RETRACTED, REF.service, REF.node,
                                           ("bob@example.org",), item_id="a"))
            await u.commit()
        after = await drain(again, clock)
    finally:
        await engine.dispose()
    assert len(after) == 1 and after[0] not in ids, (ids, after)


async def test_bulk_ids_differ_after_the_outbox_empties_and_after_a_restart(backend, db_url):
    _, _, clock = backend
    ids: list[str] = []
    for _restart in range(2):
        engine = create_engine(db_url)
        try:
            uow = uow_factory(sessionmaker(engine), clock, local=_local)  # local recipients: ids `n<event>`
            for n in range(2):
                async with uow() as u:
                    await u.outbox.add(OutboxEvent(EventKind.ITEM_PUBLISHED, REF.service, REF.node,
                                                   ("bob@example.org",), item_id=f"i{n}", payload="<x xmlns='y'/>"))
                    await u.commit()
                ids += await drain(uow, clock)
        finally:
            await engine.dispose()
    assert len(ids) == 4 and len(set(ids)) == 4 and all(i.startswith("n") for i in ids), ids
