# SPDX-License-Identifier: AGPL-3.0-or-later
"""Outgoing results stay under the byte budget (far below the host's 512 KiB stanza limit, T16)."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from xmppblog.core.model import NS_MICROBLOG, Actor, NodeRef, PageRequest
from xmppblog.core.pubsub import Limits
from xmppblog.pubsub.xep_0277 import parse_entry

from ..support.core import test_core

ALICE = Actor("alice@example.org")
REF = NodeRef("alice@blog.example.org", NS_MICROBLOG)
BUDGET = 200_000


def big(n: int):  # type: ignore[no-untyped-def]
    text = f"post {n} " + "x" * 60_000
    return parse_entry(ET.fromstring(f"<item><entry xmlns='http://www.w3.org/2005/Atom'><title>t</title>"
                                     f"<content>{text}</content></entry></item>"), 70_000)


async def test_pages_and_item_lists_are_cut_at_the_byte_budget(backend, db_url):
    from xmppblog.storage.engine import create_engine
    _, uow, clock = backend
    service = test_core(uow, create_engine(db_url), db_url, clock,
                        Limits(max_payload_bytes=70_000, max_page_items=50, max_page_bytes=BUDGET)).pubsub
    ids = [await service.publish(ALICE, REF, None, big(n)) for n in range(10)]
    seen: list[str] = []
    after = None
    while True:
        page = await service.get_items(ALICE, REF, page=PageRequest(after=after))
        assert page.items and sum(len(i.payload.encode()) for i in page.items) <= BUDGET
        seen += [i.item_id for i in page.items]
        if len(seen) == len(ids):
            break
        assert not page.complete
        after = page.items[-1].item_id
    assert seen == ids[::-1], "RSM paging yields every item once, newest first"
    wanted = await service.get_items(ALICE, REF, item_ids=ids)
    assert 0 < sum(len(i.payload.encode()) for i in wanted.items) <= BUDGET and not wanted.complete


async def test_pages_of_very_large_nodes_carry_no_count(backend, db_url):
    """XEP-0059's <count/> is optional: past PAGE_COUNT_CAP items a page does not count them all."""
    from datetime import UTC, datetime

    from sqlalchemy import insert, select

    from xmppblog.core.model import PAGE_COUNT_CAP
    from xmppblog.storage.engine import create_engine
    from xmppblog.storage.tables import ItemRow, NodeRow

    service, _, _ = backend
    await service.publish(ALICE, REF, None, parse_entry(ET.fromstring(
        "<item><entry xmlns='http://www.w3.org/2005/Atom'><title>first</title></entry></item>"), 4096))
    page = await service.get_items(ALICE, REF, page=PageRequest(max=1))
    assert page.count == 1 and page.first_index == 0
    engine = create_engine(db_url)
    async with engine.begin() as conn:
        node_id = (await conn.execute(select(NodeRow.id).where(NodeRow.service == REF.service))).scalar_one()
        now = datetime.now(UTC)
        await conn.execute(insert(ItemRow), [{"node_id": node_id, "item_id": f"x{i}", "publisher": ALICE.jid,
                                              "payload": "<p xmlns='urn:x'/>", "published": now, "updated": now}
                                             for i in range(PAGE_COUNT_CAP)])
    await engine.dispose()
    page = await service.get_items(ALICE, REF, page=PageRequest(max=20))
    assert page.count is None and len(page.items) == 3 and not page.complete  # max_page_items of the fixture
    assert page.items[0].item_id == f"x{PAGE_COUNT_CAP - 1}"
