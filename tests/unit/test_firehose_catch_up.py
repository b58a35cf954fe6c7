# SPDX-License-Identifier: AGPL-3.0-or-later
"""An aggregator catching up a source's firehose (federation/remote.py catch_up, issue #17)
fetches pages until one holds only posts it has: an old post edited at the source comes
back on top, above the posts it missed, and must not stop the catch-up there."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from xmppblog.core.model import NodeRef
from xmppblog.federation.remote import RemoteBlogs
from xmppblog.protocol import NS_FIREHOSE

P = "{http://jabber.org/protocol/pubsub}"
RSM = "{http://jabber.org/protocol/rsm}"


class Source:
    """Serves a firehose newest first, `size` items a page, XEP-0059 `after` paging."""

    def __init__(self, ids: list[str], published: dict[str, str] | None = None) -> None:
        self.ids = ids  # newest first
        self.published = published or {}
        self.pages = 0

    async def get(self, to, payload):
        self.pages += 1
        size = int(payload.find(f"{RSM}set/{RSM}max").text)
        after = payload.find(f"{RSM}set/{RSM}after")
        start = self.ids.index(after.text) + 1 if after is not None else 0
        chunk = self.ids[start:start + min(size, 5)]  # the source pages by 5 whatever is asked
        reply = ET.Element("iq")
        items = ET.SubElement(ET.SubElement(reply, P + "pubsub"), P + "items")
        for i in chunk:
            item = ET.SubElement(items, P + "item", {"id": i})
            if i in self.published:
                entry = ET.SubElement(item, "{http://www.w3.org/2005/Atom}entry")
                ET.SubElement(entry, "{http://www.w3.org/2005/Atom}published").text = self.published[i]
        if chunk:
            rsm = ET.SubElement(reply.find(P + "pubsub"), RSM + "set")
            ET.SubElement(rsm, RSM + "last").text = chunk[-1]
        return reply


class Held:
    def __init__(self, held: set[str]) -> None:
        self.held = held

    async def last_item_id(self, ref):
        return "old-9"

    async def holds(self, ref, ids):
        return {i for i in ids if i in self.held}


class Pipeline:
    def __init__(self) -> None:
        self.received: list[str] = []

    async def receive(self, origin, node, items, retracts, notify=True):
        from xmppblog.core.remote_feeds import Ingested
        self.received = [i.get("id") for i in items]
        return Ingested(len(items))


async def test_an_edited_old_post_on_top_does_not_stop_the_catch_up_above_what_was_missed():
    held = {f"old-{n}" for n in range(10)}
    missed = [f"new-{n}" for n in range(12, 0, -1)]
    # newest first: old-9 was edited during the outage, then the 12 posts we missed, then what we hold
    source = Source(["old-9", *missed, *[f"old-{n}" for n in range(8, -1, -1)]])
    pipeline = Pipeline()
    blogs = RemoteBlogs.__new__(RemoteBlogs)
    blogs.requests, blogs.remote, blogs.pipeline = source, Held(held), pipeline  # type: ignore[assignment]
    await blogs.catch_up(NodeRef("blog.source.example", NS_FIREHOSE))
    assert set(missed) <= set(pipeline.received), "every missed post fetched"
    assert source.pages <= 5, "and it stopped once a page held only posts it has"
    assert pipeline.received[-1] == "old-9", "stored oldest first: the edit last"


async def test_a_new_consumer_backfills_a_day():
    from datetime import UTC, datetime, timedelta
    now = datetime.now(UTC)
    ids = [f"p{n}" for n in range(40)]  # newest first: the first 7 within a day, then older
    published = {i: (now - timedelta(hours=n if n < 7 else 30 + n)).isoformat() for n, i in enumerate(ids)}
    source = Source(ids, published)
    pipeline = Pipeline()
    blogs = RemoteBlogs.__new__(RemoteBlogs)
    blogs.requests, blogs.remote, blogs.pipeline = source, Held(set()), pipeline  # type: ignore[assignment]
    await blogs.catch_up(NodeRef("blog.source.example", NS_FIREHOSE))
    assert source.pages == 2, "stopped at the page that reached a day back"
    assert set(ids[:7]) <= set(pipeline.received)
