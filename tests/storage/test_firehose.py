# SPDX-License-Identifier: AGPL-3.0-or-later
"""Consent and the firehose (issue #17; core/discovery.py, core/firehose.py), on both
databases: a post carries its author's consent under the signature only when they gave it
and the post is public; the firehose holds exactly those, and loses them (with retractions
to its subscribers) when they are retracted, the blog is protected or consent withdrawn."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from xmppblog.core import errors
from xmppblog.core.discovery import Discovery
from xmppblog.core.model import NS_MICROBLOG, Actor, EventKind, NodeRef
from xmppblog.core.pubsub import Limits
from xmppblog.pubsub.signing import Signer, verify
from xmppblog.pubsub.xep_0277 import DISCOVERABLE, AtomCodec
from xmppblog.storage import migrate
from xmppblog.storage.engine import create_engine, sessionmaker
from xmppblog.storage.repos import uow_factory

from ..support.core import FakeClock, test_core
from .test_service_storage import ALICE, BOB, draft

REF = NodeRef("alice@blog.example.org", NS_MICROBLOG)
AGGREGATOR = "blog.example.net"


async def _core(db_url, discovery=Discovery()):
    await migrate.upgrade(db_url)
    engine = create_engine(db_url)
    clock = FakeClock()
    counter = iter(range(1, 10**9))
    uow = uow_factory(sessionmaker(engine), clock)
    signer = Signer(uow, clock)
    await signer.load()
    core = test_core(uow, engine, db_url, clock, Limits(max_payload_bytes=8192), new_id=lambda: f"id{next(counter)}",
                     codec=AtomCodec(signer), discovery=discovery)
    return core, uow, clock, signer, engine


@pytest.fixture
async def stack(db_url):
    core, uow, clock, signer, engine = await _core(db_url)
    yield core, uow, clock, signer
    core.search.close()
    await engine.dispose()


def entry(payload: str) -> ET.Element:
    return ET.fromstring(payload)


async def firehose(core) -> list[str]:
    page = await core.pubsub.get_items(BOB, core.pubsub.nodes.firehose_ref)
    return sorted(i.item_id for i in page.items)


async def retractions(uow, clock) -> list[str]:
    async with uow() as u:
        due = await u.outbox.due(clock.now(), 1000)
    return sorted(d.event.item_id or "" for d in due
                  if d.recipient == AGGREGATOR and d.event.kind is EventKind.ITEM_RETRACTED)


async def test_consent_rides_under_the_signature_and_fills_the_firehose(stack):
    core, uow, clock, signer = stack
    before = await core.pubsub.publish(ALICE, REF, None, draft("before consent"))
    assert await core.social.discoverable(ALICE) is False, "the admin's default: off"
    assert await core.social.discoverable(ALICE, True) is True
    after = await core.pubsub.publish(ALICE, REF, None, draft("after consent"))
    items = {i.item_id: i for i in (await core.pubsub.get_items(ALICE, REF)).items}
    assert entry(items[before].payload).find(DISCOVERABLE) is None, "consent applies from then on"
    flagged = entry(items[after].payload)
    assert flagged.find(DISCOVERABLE) is not None
    assert verify(flagged, signer.public) is None
    flagged.remove(flagged.find(DISCOVERABLE))
    assert verify(flagged, signer.public) == "bad-signature", "the flag is covered by the signature"
    assert await firehose(core) == [f"alice/{after}"]
    # an edit keeps what the post had: the earlier post stays out, the later one stays in
    await core.pubsub.publish(ALICE, REF, before, draft("before consent, edited"))
    await core.pubsub.publish(ALICE, REF, after, draft("after consent, edited"))
    items = {i.item_id: i for i in (await core.pubsub.get_items(ALICE, REF)).items}
    assert entry(items[before].payload).find(DISCOVERABLE) is None
    assert entry(items[after].payload).find(DISCOVERABLE) is not None
    assert await firehose(core) == [f"alice/{after}"]


async def test_a_client_cannot_claim_consent(stack):
    core, *_ = stack
    claimed = ET.fromstring("<item><entry xmlns='http://www.w3.org/2005/Atom'><title>claimed</title>"
                            "<discoverable xmlns='urn:xmppblog:0'/></entry></item>")
    from xmppblog.pubsub.xep_0277 import parse_entry
    item_id = await core.pubsub.publish(ALICE, REF, None, parse_entry(claimed, 65536))
    item = (await core.pubsub.get_items(ALICE, REF, [item_id])).items[0]
    assert entry(item.payload).find(DISCOVERABLE) is None
    assert await firehose(core) == []


async def test_retraction_withdrawal_and_protection_take_posts_off_the_firehose(stack):
    core, uow, clock, _ = stack
    await core.pubsub.subscribe(Actor(AGGREGATOR), core.pubsub.nodes.firehose_ref, AGGREGATOR)
    await core.social.discoverable(ALICE, True)
    ids = [await core.pubsub.publish(ALICE, REF, None, draft(f"post {n}")) for n in range(4)]
    async with uow() as u:
        due = await u.outbox.due(clock.now(), 1000)
    assert sorted(d.event.item_id for d in due if d.recipient == AGGREGATOR) == sorted(f"alice/{i}" for i in ids), \
        "one notification per post to the consumer server"
    await core.pubsub.retract(ALICE, REF, [ids[0]], notify=True)
    assert await firehose(core) == sorted(f"alice/{i}" for i in ids[1:])
    assert await retractions(uow, clock) == [f"alice/{ids[0]}"]
    # withdrawing consent retracts every earlier post; consenting again brings none back
    await core.social.discoverable(ALICE, False)
    assert await firehose(core) == []
    assert await retractions(uow, clock) == sorted(f"alice/{i}" for i in ids)
    await core.social.discoverable(ALICE, True)
    assert await firehose(core) == []
    again = await core.pubsub.publish(ALICE, REF, None, draft("after consenting again"))
    assert await firehose(core) == [f"alice/{again}"]
    # protecting the blog withdraws too, and so do its later posts; re-opening restores nothing
    await core.social.protect(ALICE, True)
    assert await firehose(core) == []
    protected = await core.pubsub.publish(ALICE, REF, None, draft("protected post"))
    item = (await core.pubsub.get_items(ALICE, REF, [protected])).items[0]
    assert entry(item.payload).find(DISCOVERABLE) is None, "protected posts never carry it"
    await core.social.protect(ALICE, False)
    assert await firehose(core) == []


async def test_comments_never_carry_consent_and_the_firehose_is_read_only(stack):
    core, *_ = stack
    await core.social.discoverable(ALICE, True)
    post = await core.pubsub.publish(ALICE, REF, None, draft("post"))
    comments = REF.comments(post)
    comment = await core.pubsub.publish(ALICE, comments, None, draft("comment"))
    item = (await core.pubsub.get_items(ALICE, comments, [comment])).items[0]
    assert entry(item.payload).find(DISCOVERABLE) is None
    assert await firehose(core) == [f"alice/{post}"]
    with pytest.raises(errors.Forbidden):
        await core.pubsub.publish(ALICE, core.pubsub.nodes.firehose_ref, None, draft("spam"))
    with pytest.raises(errors.Forbidden):
        await core.pubsub.configure(ALICE, core.pubsub.nodes.firehose_ref, {"max_items": 1})


async def test_the_admins_default_applies_to_users_who_never_chose(db_url):
    core, uow, clock, signer, engine = await _core(db_url, Discovery(default=True))
    try:
        assert await core.social.discoverable(ALICE) is True
        post = await core.pubsub.publish(ALICE, REF, None, draft("default on"))
        assert await firehose(core) == [f"alice/{post}"]
        assert await core.social.discoverable(ALICE, False) is False
        assert await firehose(core) == []
    finally:
        core.search.close()
        await engine.dispose()


async def test_a_publisher_affiliates_posts_need_their_own_consent_too(stack):
    core, *_ = stack
    await core.pubsub.publish(ALICE, REF, None, draft("alice's first"))
    await core.pubsub.set_affiliations(ALICE, REF, [(BOB.jid, "publisher")])
    await core.social.discoverable(ALICE, True)
    await core.social.discoverable(BOB, False)
    by_bob = await core.pubsub.publish(BOB, REF, None, draft("bob writes on alice's blog"))
    assert await firehose(core) == [], "bob did not consent"
    await core.social.discoverable(BOB, True)
    again = await core.pubsub.publish(BOB, REF, None, draft("bob again, consenting now"))
    assert await firehose(core) == [f"alice/{again}"]
    await core.social.discoverable(BOB, False)
    assert await firehose(core) == [], "bob's withdrawal covers what he wrote on other blogs"
    assert by_bob


async def test_a_repost_goes_no_further_than_the_post_it_quotes(stack):
    from xmppblog.im.text import draft_from_text, short_id
    core, *_ = stack
    carol = Actor("carol@example.org")
    kept = await core.pubsub.publish(carol, NodeRef("carol@blog.example.org", NS_MICROBLOG), None,
                                     draft("carol's words, not for network indexes"))
    await core.social.discoverable(ALICE, True)
    await core.posting.repost(ALICE, short_id(kept), lambda text, **kw: draft_from_text(text, 4096, **kw))
    assert await firehose(core) == [], "carol never consented: alice's repost of her post is not discoverable"


async def test_an_old_post_edited_after_consent_came_back_stays_out(stack):
    core, *_ = stack
    await core.social.discoverable(ALICE, True)
    old = await core.pubsub.publish(ALICE, REF, None, draft("old"))
    await core.social.discoverable(ALICE, False)
    await core.social.discoverable(ALICE, True)
    await core.pubsub.publish(ALICE, REF, old, draft("old, edited"))
    assert await firehose(core) == [], "withdrawn once: never again, edited or not"
    await core.social.protect(ALICE, True)
    await core.social.protect(ALICE, False)
    newer = await core.pubsub.publish(ALICE, REF, None, draft("after re-opening"))
    assert await firehose(core) == [f"alice/{newer}"]
    await core.social.protect(ALICE, True)
    await core.social.protect(ALICE, False)
    await core.pubsub.publish(ALICE, REF, newer, draft("after re-opening, edited after protect and open"))
    assert await firehose(core) == [], "protecting withdraws the same way"


async def test_the_stream_forgets_a_withdrawn_post_at_once(stack):
    core, *_ = stack
    await core.social.discoverable(ALICE, True)
    await core.pubsub.publish(ALICE, REF, None, draft("streamed while consented"))
    assert len((await core.stream.after(0, 100)).posts) == 1
    await core.social.discoverable(ALICE, False)
    assert (await core.stream.after(0, 100)).posts == (), "its signed flag stays in the entry; consent does not"


async def test_an_edit_no_longer_admitted_takes_the_old_copy_away(db_url):
    core, uow, clock, signer, engine = await _core(db_url, Discovery(default=True))
    try:
        post = await core.pubsub.publish(ALICE, REF, None, draft("default on"))
        assert await firehose(core) == [f"alice/{post}"]
        core.pubsub.discovery = Discovery(default=False)  # the admin changed the default (a restart)
        await core.pubsub.publish(ALICE, REF, post, draft("default on, edited after the default went off"))
        assert await firehose(core) == []
    finally:
        core.search.close()
        await engine.dispose()


async def test_users_cannot_follow_a_firehose_and_the_sources_limit_follows_the_config(stack):
    core, *_ = stack
    ref = NodeRef("blog.elsewhere.example", "urn:xmppblog:firehose:0")
    with pytest.raises(errors.Forbidden):
        await core.remote.follow(ALICE, "blog.elsewhere.example", ref)
    await core.remote.follow_source(ref, 1000)
    await core.remote.follow_source(ref, 3)  # the admin lowered [aggregator] max_items
    async with core.transactions() as tx:
        assert (await tx.nodes.get(ref)).config.max_items == 3


async def test_a_deleted_account_leaves_nothing_on_the_firehose(stack):
    core, *_ = stack
    await core.pubsub.publish(ALICE, REF, None, draft("alice's own"))
    await core.pubsub.set_affiliations(ALICE, REF, [(BOB.jid, "publisher")])
    for user in (ALICE, BOB):
        await core.social.discoverable(user, True)
    await core.pubsub.publish(BOB, NodeRef("bob@blog.example.org", NS_MICROBLOG), None, draft("bob's own"))
    on_alice = await core.pubsub.publish(BOB, REF, None, draft("bob on alice's blog"))
    assert f"alice/{on_alice}" in await firehose(core)
    await core.accounts.delete_user(Actor("admin@example.org"), BOB.jid)
    assert [i for i in await firehose(core) if i.startswith("bob/") or i == f"alice/{on_alice}"] == []


async def test_a_consumer_resumes_the_firehose_from_its_archive_cursor_without_gaps(stack):
    """XEP-0313 on the firehose node: a consumer pages from the last archive id it saw (or a
    day back by time) and gets exactly what came since, the full-text filter included."""
    from datetime import timedelta

    from xmppblog.core.archive import ArchiveQuery
    core, uow, clock, _ = stack
    await core.social.discoverable(ALICE, True)
    ref = core.pubsub.nodes.firehose_ref
    reader = Actor("blog.example.net")
    for n in range(3):
        await core.pubsub.publish(ALICE, REF, f"a{n}", draft(f"before the outage {n}"))
    seen = await core.archive.query(reader, ref, ArchiveQuery())
    assert [e.item.item_id for e in seen.entries] == ["alice/a0", "alice/a1", "alice/a2"]
    clock.advance(60)
    for n in range(5):
        await core.pubsub.publish(ALICE, REF, f"b{n}", draft(f"during the outage {n} #missed"))
    got, cursor = [], seen.last
    while True:
        page = await core.archive.query(reader, ref, ArchiveQuery(after=cursor, max=2))
        got += [e.item.item_id for e in page.entries]
        cursor = page.last
        if page.complete:
            break
    assert got == [f"alice/b{n}" for n in range(5)], "everything since the cursor, once, in order"
    by_time = await core.archive.query(reader, ref, ArchiveQuery(start=clock.now() - timedelta(seconds=30)))
    assert [e.item.item_id for e in by_time.entries] == got
    tagged = await core.archive.query(reader, ref, ArchiveQuery(text="#missed"))
    assert len(tagged.entries) == 5
