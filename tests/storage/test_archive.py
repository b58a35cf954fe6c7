# SPDX-License-Identifier: AGPL-3.0-or-later
"""Node archives (XEP-0313, core/archive.py) on SQLite and PostgreSQL: paging both ways,
time and full-text filters, the visibility rule, edits and retractions."""

from __future__ import annotations

from datetime import timedelta, timezone

import pytest

from xmppblog.core import errors
from xmppblog.core.archive import ArchivePage, ArchiveQuery
from xmppblog.core.model import NS_MICROBLOG, AccessModel, Actor, NodeRef

from .test_service_storage import ALICE, BOB, CAROL, REF, draft

TIMELINE = NodeRef("blog.example.org", NS_MICROBLOG)
CAROL_REF = NodeRef("carol@blog.example.org", NS_MICROBLOG)
STRANGER = Actor("eve@elsewhere.example")


def ids(page: ArchivePage) -> list[str]:
    return [e.item.item_id for e in page.entries]


@pytest.fixture
def archive(stack):
    core, uow, clock = stack  # max_items_per_node = 5, max_page_items = 3
    return core.archive, core.pubsub, clock


async def publish_five(service, clock, ref=REF, actor=ALICE):
    for n, item_id in enumerate("abcde"):
        await service.publish(actor, ref, item_id, draft(f"post {item_id} number {n}"))
        clock.advance(60)


async def test_pages_forwards_and_backwards_in_order(archive):
    mam, service, clock = archive
    await publish_five(service, clock)
    first = await mam.query(BOB, REF, ArchiveQuery(max=2))
    assert ids(first) == ["a", "b"], "without RSM: the oldest first, in chronological order"
    assert not first.complete and first.count == 5 and first.first_index == 0
    assert (first.first, first.last) == (first.entries[0].archive_id, first.entries[-1].archive_id)
    second = await mam.query(BOB, REF, ArchiveQuery(max=2, after=first.last))
    assert ids(second) == ["c", "d"] and not second.complete and second.first_index == 2
    third = await mam.query(BOB, REF, ArchiveQuery(max=2, after=second.last))
    assert ids(third) == ["e"] and third.complete, "the last page forwards is complete"
    assert (await mam.query(BOB, REF, ArchiveQuery(max=2, after=third.last))).entries == ()

    newest = await mam.query(BOB, REF, ArchiveQuery(max=2, before=""))
    assert ids(newest) == ["d", "e"] and not newest.complete, "before='': the last page, still oldest first"
    older = await mam.query(BOB, REF, ArchiveQuery(max=2, before=newest.first))
    assert ids(older) == ["b", "c"] and not older.complete
    oldest = await mam.query(BOB, REF, ArchiveQuery(max=2, before=older.first))
    assert ids(oldest) == ["a"] and oldest.complete, "the last page backwards is complete too"

    capped = await mam.query(BOB, REF, ArchiveQuery(max=50))
    assert ids(capped) == ["a", "b", "c"] and not capped.complete, "max_page_items bounds a page"
    assert ids(await mam.query(BOB, REF, ArchiveQuery())) == ["a", "b", "c"]
    counted = await mam.query(BOB, REF, ArchiveQuery(max=0))
    assert counted.entries == () and counted.count == 5 and not counted.complete
    whole = await mam.query(BOB, REF, ArchiveQuery(max=3, after=first.last))
    assert ids(whole) == ["c", "d", "e"] and whole.complete, "exactly the rest: complete"


async def test_unknown_ids_and_stale_cursors(archive):
    mam, service, clock = archive
    await publish_five(service, clock)
    page = await mam.query(BOB, REF, ArchiveQuery(max=2))
    for bad in ("b", "-1", "1e3", "١٢", "9" * 40):
        with pytest.raises(errors.ItemNotFound):
            await mam.query(BOB, REF, ArchiveQuery(after=bad))
        with pytest.raises(errors.ItemNotFound):
            await mam.query(BOB, REF, ArchiveQuery(before=bad))
    # the item a cursor named was retracted: the next page still starts where it stood
    await service.retract(ALICE, REF, ["b"], None)
    assert ids(await mam.query(BOB, REF, ArchiveQuery(max=2, after=page.last))) == ["c", "d"]


async def test_edits_replace_and_retractions_remove(archive):
    mam, service, clock = archive
    await publish_five(service, clock)
    await service.publish(ALICE, REF, "b", draft("b edited"))
    await service.retract(ALICE, REF, ["d"], None)
    page = await mam.query(BOB, REF, ArchiveQuery(max=3, before=""))
    assert ids(page) == ["c", "e", "b"], "an edit takes a new, later position; a retraction leaves"
    assert "b edited" in page.entries[-1].item.payload and page.count == 4
    assert len({e.archive_id for e in page.entries}) == 3
    everything = [e.item.item_id for p in [await mam.query(BOB, REF, ArchiveQuery(max=2)),
                                          await mam.query(BOB, REF, ArchiveQuery(max=2, before=""))]
                  for e in p.entries]
    assert everything == ["a", "c", "e", "b"] and everything.count("b") == 1


async def test_time_filters(archive):
    mam, service, clock = archive
    t0 = clock.now()
    await publish_five(service, clock)  # a at t0, b at t0+60s, … e at t0+240s
    minute = timedelta(seconds=60)
    assert ids(await mam.query(BOB, REF, ArchiveQuery(start=t0 + minute))) == ["b", "c", "d"]
    assert ids(await mam.query(BOB, REF, ArchiveQuery(end=t0 + minute))) == ["a", "b"], "inclusive"
    both = await mam.query(BOB, REF, ArchiveQuery(start=t0 + minute, end=t0 + 3 * minute, max=2))
    assert ids(both) == ["b", "c"] and both.count == 3 and not both.complete
    rest = await mam.query(BOB, REF, ArchiveQuery(start=t0 + minute, end=t0 + 3 * minute, after=both.last))
    assert ids(rest) == ["d"] and rest.complete
    assert (await mam.query(BOB, REF, ArchiveQuery(start=t0 + 9 * minute))).entries == ()
    assert (await mam.query(BOB, REF, ArchiveQuery(start=t0 + minute, end=t0))).complete
    # an edit is archived when it was made
    await service.publish(ALICE, REF, "a", draft("a again"))
    assert ids(await mam.query(BOB, REF, ArchiveQuery(start=clock.now()))) == ["a"]
    # other time zones are the same instant
    plus2 = (t0 + minute).astimezone(timezone(timedelta(hours=2)))
    assert ids(await mam.query(BOB, REF, ArchiveQuery(start=plus2, end=plus2))) == ["b"]


async def test_full_text_on_blogs_and_the_public_timeline(archive):
    mam, service, clock = archive
    await service.publish(ALICE, REF, "a1", draft("Open standards win #XMPP"))
    clock.advance(1)
    await service.publish(ALICE, REF, "a2", draft("lunch with friends"))
    clock.advance(1)
    await service.publish(CAROL, CAROL_REF, "c1", draft("open source and open standards"))
    clock.advance(1)
    await service.publish(ALICE, REF, "a3", draft("more standards talk"))
    assert ids(await mam.query(BOB, REF, ArchiveQuery(text="standards"))) == ["a1", "a3"], "this blog only"
    assert ids(await mam.query(BOB, REF, ArchiveQuery(text="#xmpp"))) == ["a1"]
    assert ids(await mam.query(BOB, REF, ArchiveQuery(text='"open standards"'))) == ["a1"]
    assert ids(await mam.query(BOB, REF, ArchiveQuery(text="x'; DROP TABLE items; --"))) == []
    paged = await mam.query(BOB, REF, ArchiveQuery(text="standards", max=1))
    assert ids(paged) == ["a1"] and paged.count == 2 and not paged.complete
    after = await mam.query(BOB, REF, ArchiveQuery(text="standards", max=1, after=paged.last))
    assert ids(after) == ["a3"] and after.complete
    timeline = await mam.query(STRANGER, TIMELINE, ArchiveQuery(text="standards"))
    assert ids(timeline) == ["alice/a1", "carol/c1", "alice/a3"], "the timeline's copies, by their originals"
    assert ids(await mam.query(BOB, TIMELINE, ArchiveQuery(text="open from:carol@example.org"))) == ["carol/c1"]
    # an edit is searched as it is now
    await service.publish(ALICE, REF, "a1", draft("changed my mind"))
    assert ids(await mam.query(BOB, REF, ArchiveQuery(text="standards"))) == ["a3"]
    assert ids(await mam.query(BOB, REF, ArchiveQuery(text="mind"))) == ["a1"]
    with pytest.raises(errors.BadRequest):
        await mam.query(BOB, REF, ArchiveQuery(text="x" * 300))
    # comments are not in the index: the node itself is scanned, with the same query language
    await service.publish(BOB, REF.comments("a3"), "k1", draft("standards here too"))
    await service.publish(CAROL, REF.comments("a3"), "k2", draft("#standards are a tag here"))
    assert ids(await mam.query(BOB, REF.comments("a3"), ArchiveQuery())) == ["k1", "k2"]
    assert ids(await mam.query(BOB, REF.comments("a3"), ArchiveQuery(text="standards"))) == ["k1", "k2"]
    assert ids(await mam.query(BOB, REF.comments("a3"), ArchiveQuery(text="#standards"))) == ["k2"]
    assert ids(await mam.query(BOB, REF.comments("a3"), ArchiveQuery(text='"here too"'))) == ["k1"]
    assert ids(await mam.query(BOB, REF.comments("a3"), ArchiveQuery(text='"too here"'))) == []
    scanned = await mam.query(BOB, REF.comments("a3"), ArchiveQuery(text="standards from:carol@example.org"))
    assert ids(scanned) == ["k2"] and scanned.complete and scanned.count is None


async def test_comments_nodes_and_the_public_timeline(archive):
    mam, service, clock = archive
    await service.publish(ALICE, REF, "p", draft("a post"))
    for n in range(3):
        clock.advance(1)
        await service.publish(BOB if n % 2 else CAROL, REF.comments("p"), f"k{n}", draft(f"comment {n}"))
    page = await mam.query(STRANGER, REF.comments("p"), ArchiveQuery(max=2))
    assert ids(page) == ["k0", "k1"] and not page.complete
    assert ids(await mam.query(STRANGER, REF.comments("p"), ArchiveQuery(after=page.last))) == ["k2"]
    empty = await mam.query(BOB, REF.comments("p"), ArchiveQuery(start=clock.now() + timedelta(days=1)))
    assert empty.entries == () and empty.complete
    await service.publish(CAROL, CAROL_REF, "c", draft("carol's"))
    timeline = await mam.query(STRANGER, TIMELINE, ArchiveQuery(before=""))
    assert ids(timeline) == ["alice/p", "carol/c"] and timeline.complete


async def test_visibility_as_items_requests(archive):
    mam, service, clock = archive
    await publish_five(service, clock)
    await service.publish(CAROL, CAROL_REF, "c", draft("carol's standards"))
    await service.publish(BOB, REF.comments("a"), "k", draft("a comment"))
    await service.configure(ALICE, REF, {"access_model": AccessModel.WHITELIST})
    for ref in (REF, REF.comments("a"), REF.comments("nope")):
        with pytest.raises(errors.BlogError) as items_refusal:
            await service.get_items(BOB, ref)
        with pytest.raises(type(items_refusal.value)):
            await mam.query(BOB, ref, ArchiveQuery())
        with pytest.raises(type(items_refusal.value)):
            await mam.query(BOB, ref, ArchiveQuery(text="post", after="1"))
    for ref in (NodeRef("nobody@blog.example.org", NS_MICROBLOG), NodeRef(REF.service, "other"),
                NodeRef("blog.example.org", "other"), NodeRef("alice@blog.example.org", NS_MICROBLOG + ":x")):
        with pytest.raises(errors.NodeNotFound):
            await mam.query(BOB, ref, ArchiveQuery())
    # the owner reads her protected blog; the index does not hold it, so full text scans it
    assert ids(await mam.query(ALICE, REF, ArchiveQuery(before=""))) == list("cde")
    assert ids(await mam.query(ALICE, REF, ArchiveQuery(text="post", before=""))) == list("cde")
    assert ids(await mam.query(ALICE, REF, ArchiveQuery(text="number 3"))) == ["d"]
    assert ids(await mam.query(ALICE, TIMELINE, ArchiveQuery(text="number"))) == [], "and it never leaks"
    # a protected blog's posts never appear on the public timeline, filtered or not
    assert ids(await mam.query(STRANGER, TIMELINE, ArchiveQuery(before=""))) == ["carol/c"]
    assert ids(await mam.query(STRANGER, TIMELINE, ArchiveQuery(text="post"))) == []
    assert ids(await mam.query(ALICE, TIMELINE, ArchiveQuery(text="standards"))) == ["carol/c"]
    # a member reads it again
    await service.set_affiliations(ALICE, REF, [("bob@example.org", "member")])
    assert ids(await mam.query(BOB, REF, ArchiveQuery(before="", max=2))) == ["d", "e"]


async def test_a_full_text_scan_is_bounded_and_pages_on_from_where_it_stopped(archive, monkeypatch):
    """On a node the index does not hold, a page reads at most SCAN_ROWS items: one that stops
    there is partial, and its bound is where the next page starts, both ways."""
    from xmppblog.core import archive as module
    monkeypatch.setattr(module, "SCAN_ROWS", 2)
    monkeypatch.setattr(module, "SCAN_CHUNK", 1)
    mam, service, clock = archive
    await service.publish(ALICE, REF, "p", draft("a post"))
    for n in range(5):
        await service.publish(BOB, REF.comments("p"), f"k{n}", draft("needle" if n in (0, 4) else "hay"))
    comments = REF.comments("p")
    every = [e.archive_id for e in (await mam.query(BOB, comments, ArchiveQuery(max=5))).entries]
    assert len(every) == 3, "max_page_items is 3 here"
    rest = (await mam.query(BOB, comments, ArchiveQuery(max=3, after=every[-1]))).entries
    every += [e.archive_id for e in rest]

    forwards, pages = [], []
    page = await mam.query(BOB, comments, ArchiveQuery(text="needle"))
    while True:
        pages.append(page)
        forwards += ids(page)
        if page.complete:
            break
        page = await mam.query(BOB, comments, ArchiveQuery(text="needle", after=page.last))
    assert forwards == ["k0", "k4"] and len(pages) == 3
    assert ids(pages[0]) == ["k0"] and pages[0].last == every[1], "stopped after two items: k0 and k1"
    assert pages[1].entries == () and pages[1].last == every[3] and not pages[1].complete

    backwards = []
    page = await mam.query(BOB, comments, ArchiveQuery(text="needle", before=""))
    while True:
        backwards = ids(page) + backwards
        if page.complete:
            break
        page = await mam.query(BOB, comments, ArchiveQuery(text="needle", before=page.first))
    assert backwards == ["k0", "k4"]
