# SPDX-License-Identifier: AGPL-3.0-or-later
"""Full-text search on SQLite (FTS5) and PostgreSQL (tsvector): same tests, both backends."""

from __future__ import annotations

import pytest

from xmppblog.core import errors
from xmppblog.core.model import NS_MICROBLOG, AccessModel, Actor, NodeRef, PageRequest

from .test_service_storage import ALICE, BOB, draft

CAROL = Actor("carol@example.org")


def ref(actor):
    return NodeRef(actor.jid.split("@")[0] + "@blog.example.org", NS_MICROBLOG)


async def texts(search, q, **kw):
    found = await search.search(BOB, q, **kw)
    return [p.item.item_id for p in found.posts], found.total


async def test_search_syntax_privacy_and_removal(stack):
    core, uow, clock = stack
    service, social = core.pubsub, core.search
    await service.publish(ALICE, ref(ALICE), "a1", draft("Open standards win #XMPP"))
    clock.advance(1)
    await service.publish(ALICE, ref(ALICE), "a2", draft("lunch with @carol@example.org"))
    clock.advance(1)
    await service.publish(CAROL, ref(CAROL), "c1", draft("open source and open standards"))
    assert await texts(social, "standards") == (["c1", "a1"], 2), "newest first"
    assert (await texts(social, '"open standards"'))[0] == ["c1", "a1"]
    assert (await texts(social, '"standards open"'))[0] == []
    assert await texts(social, "#xmpp") == (["a1"], 1)
    assert await texts(social, "@carol@example.org") == (["a2"], 1)
    assert await texts(social, "from:carol@example.org") == (["c1"], 1)
    assert await texts(social, "open from:Alice@Example.org") == (["a1"], 1)
    assert (await texts(social, "open", by_relevance=True))[0][0] == "c1", "two 'open's rank first"
    assert await texts(social, "standards", limit=1, offset=1) == (["a1"], 2)
    assert await texts(social, "x'; DROP TABLE items; --") == ([], 0)
    # an edit is re-indexed; a retraction, a purge and going protected remove posts
    await service.publish(ALICE, ref(ALICE), "a1", draft("changed my mind"))
    assert (await texts(social, "standards"))[0] == ["c1"]
    assert await texts(social, "#xmpp") == ([], 0), "an edit's old hashtags go"
    found, total = await texts(social, "from:alice@example.org")
    assert sorted(found) == ["a1", "a2"] and total == 2, "one author row per post"
    assert await texts(social, "mind from:alice@example.org") == (["a1"], 1)
    await service.retract(CAROL, ref(CAROL), ["c1"], None)
    assert await texts(social, "standards") == ([], 0)
    await service.configure(ALICE, ref(ALICE), {"access_model": AccessModel.AUTHORIZE})
    assert await texts(social, "lunch") == ([], 0), "protected posts never appear in search"
    with pytest.raises(errors.BadRequest):
        await social.search(BOB, "   ")


async def test_trimmed_posts_leave_search_and_the_public_timeline(stack):
    core, uow, clock = stack  # max_items_per_node = 5
    service, social = core.pubsub, core.search
    for i in range(7):
        await service.publish(ALICE, ref(ALICE), f"t{i}", draft(f"trimmable post {i}"))
    ids, total = await texts(social, "trimmable", limit=10)
    assert total == 5 and sorted(ids) == [f"t{i}" for i in range(2, 7)]
    page = await service.get_items(BOB, service.timeline_ref, page=PageRequest(max=3))
    assert page.count == 5 and [i.item_id for i in page.items] == ["alice/t6", "alice/t5", "alice/t4"]
    # an id reused after its item was trimmed publishes cleanly again
    await service.publish(ALICE, ref(ALICE), "t0", draft("trimmable again"))
    assert "t0" in (await texts(social, "again"))[0]
