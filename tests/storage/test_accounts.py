# SPDX-License-Identifier: AGPL-3.0-or-later
"""Issue #14 over real storage (SQLite and PostgreSQL): what became of a post's notifications
(`status ID`, admins' per-server figures), exports, and account deletion."""

from __future__ import annotations

import asyncio
import re
from datetime import timedelta

import pytest

from xmppblog.core import errors as E
from xmppblog.core.delivery import Deliveries, DeliveryPolicy
from xmppblog.core.model import NS_MICROBLOG, Actor, DeliveryTally, EventKind, NodeRef
from xmppblog.core.status import ServerState
from xmppblog.pubsub.notify import OutboxSender

from ..support.core import ADDR, FakeClock, test_core
from .test_service_storage import ALICE, BOB, CAROL, draft

REF = NodeRef("alice@blog.example.org", NS_MICROBLOG)
BOB_REF = NodeRef("bob@blog.example.org", NS_MICROBLOG)
ADMIN = Actor("admin@example.org")
PEER = "blog.other.org"           # another xmppblog server, subscribed for its users
FAR = "dan@far.example"           # a user of another server, subscribed with a XEP-0060 client


@pytest.fixture
async def served(db_url):
    """(Core, unit-of-work factory, FakeClock) with this server's domains on the bulk path, as `run` has it."""
    from xmppblog.storage import migrate
    from xmppblog.storage.engine import create_engine, sessionmaker
    from xmppblog.storage.repos import uow_factory

    await migrate.upgrade(db_url)
    engine = create_engine(db_url)
    clock = FakeClock()
    counter = iter(range(1, 10**9))
    uow = uow_factory(sessionmaker(engine), clock, local=ADDR.serves)
    core = test_core(uow, engine, db_url, clock, new_id=lambda: f"id{next(counter)}")
    yield core, uow, clock
    core.search.close()
    await engine.dispose()


class Wire:
    """The outbox sender's stream: every write accepted, tracked rows' ids remembered by recipient."""

    def __init__(self, uow, clock):
        self.rows: dict[str, int] = {}
        self.online = asyncio.Event()
        self.online.set()
        self.sender = OutboxSender(uow, self.send, self.online, clock, is_remote=lambda j: not ADDR.serves(j))

    def send(self, data: str, largest: int | None = None) -> bool:
        for to, row in re.findall(r"to=\"([^\"]+)\" id=\"ob(\d+)\"", data):
            self.rows[to] = int(row)
        return True

    async def drain(self) -> None:
        while await self.sender.drain_once():
            pass


async def test_status_follows_a_post_from_plan_to_delivery_bounce_and_expiry(served):
    core, uow, clock = served
    for who in (BOB, CAROL):
        await core.pubsub.subscribe(who, REF, who.jid)
    await core.pubsub.subscribe(Actor(PEER), REF, PEER)
    await core.pubsub.subscribe(Actor(FAR), REF, FAR)
    item_id = await core.posting.post(ALICE, draft("how far did I get"))
    planned = await core.status.of_post(ALICE, item_id)
    assert planned.here == DeliveryTally("", pending=2)
    assert [(s.server, s.state) for s in planned.servers] == [(PEER, ServerState.PENDING),
                                                              ("far.example", ServerState.PENDING)]
    wire = Wire(uow, clock)
    await wire.drain()
    sent = await core.status.of_post(ALICE, item_id)
    assert sent.here == DeliveryTally("", delivered=2)
    assert sent.count(ServerState.REACHED) == 2, "handed to the other servers, not bounced (yet)"

    # one server bounces for now, the other for good
    deliveries = Deliveries(core.transactions, clock, DeliveryPolicy(keep_sent_for=timedelta(minutes=10)))
    assert await deliveries.bounced(wire.rows[FAR], FAR, "remote-server-timeout") == "retry"
    assert await deliveries.bounced(wire.rows[PEER], PEER, "item-not-found") == "failed"
    bounced = await core.status.of_post(ALICE, item_id)
    far = next(s for s in bounced.servers if s.server == "far.example")
    assert far.state is ServerState.RETRYING and far.tally.next_try == clock.now() + timedelta(seconds=30)
    assert next(s for s in bounced.servers if s.server == PEER).state is ServerState.FAILED
    clock.advance(31)
    await wire.drain()
    clock.advance(601)
    assert await deliveries.expire_sent() == 1
    settled = await core.status.of_post(ALICE, item_id)
    assert [(s.server, s.tally.delivered, s.tally.failed, s.state) for s in settled.servers] == [
        (PEER, 0, 1, ServerState.FAILED), ("far.example", 1, 0, ServerState.REACHED)]
    assert settled.here == DeliveryTally("", delivered=2)

    # admins see the same per server, across posts
    views = {v.server: v for v in await core.status.servers(ADMIN)}
    assert views[PEER].tally.failed == 1 and views["far.example"].tally.delivered == 1
    assert "example.org" not in views and "" not in views, "local users are not a remote server"
    with pytest.raises(E.Forbidden):
        await core.status.servers(BOB)

    # the counts are kept a week, then forgotten
    clock.advance(7 * 86400 + 1)
    await deliveries.expire_sent()
    assert (await core.status.of_post(ALICE, item_id)).nothing_sent


async def test_only_the_author_or_an_admin_learns_anything(served):
    core, uow, clock = served
    item_id = await core.posting.post(ALICE, draft("mine"))
    comment = await core.pubsub.publish(BOB, REF.comments(item_id), None, draft("bob's comment"))
    absent = await _refusal(core.status.of_post(BOB, "zzzzzz"))
    assert absent == "No such post: zzzzzz"
    assert await _refusal(core.status.of_post(BOB, item_id)) == f"No such post: {item_id}", \
        "someone else's post answers like a post that does not exist"
    await core.posting.post(ALICE, draft("another, with a look-alike id"))
    for qualified in (f"alice/{item_id}", f"alice@example.org/{item_id[:3]}", "alice/zzzzzz"):
        assert await _refusal(core.status.of_post(BOB, qualified)) == f"No such post: {qualified}"
    assert (await core.status.of_post(ALICE, f"alice/{item_id}")).item_id == item_id
    assert await _refusal(core.status.of_post(ALICE, comment)) == f"No such post: {comment}", \
        "a comment on the author's blog is its writer's, not the blog owner's"
    assert (await core.status.of_post(BOB, comment)).item_id == comment, "its writer may ask"
    assert (await core.status.of_post(ADMIN, f"alice/{item_id}")).item_id == item_id
    assert await _refusal(core.status.of_post(ADMIN, "nobody/zzzzzz")) == "No such post: nobody/zzzzzz"


async def _refusal(coro) -> str:
    with pytest.raises(E.ItemNotFound) as info:
        await coro
    return info.value.text


async def test_export_has_the_posts_and_the_comments_the_user_wrote(served):
    core, uow, clock = served
    first = await core.posting.post(ALICE, draft("first"))
    clock.advance(1)
    await core.posting.post(ALICE, draft("second"))
    bobs = await core.posting.post(BOB, draft("bob's post"))
    await core.pubsub.publish(ALICE, BOB_REF.comments(bobs), None, draft("alice on bob's post"))
    await core.pubsub.publish(BOB, REF.comments(first), None, draft("bob on alice's post"))
    for target in ("alice", "alice@example.org", "alice@blog.example.org", "xmpp:alice@example.org"):
        export = await core.accounts.export(Actor.SYSTEM, target)
        assert export.user == "alice@example.org" and export.blog == "alice@blog.example.org"
    assert ["second" in p.item.payload for p in export.posts] == [True, False], "newest first"
    assert [c.ref for c in export.comments] == [BOB_REF.comments(bobs)]
    assert "bob on alice's post" not in str(export), "others' comments are theirs"
    assert (await core.accounts.export(ALICE, "alice")).posts == export.posts
    assert (await core.accounts.export(ADMIN, "alice")).posts == export.posts
    with pytest.raises(E.Forbidden):
        await core.accounts.export(BOB, "alice")
    with pytest.raises(E.NoMicroblog, match="not a user of this server"):
        await core.accounts.export(Actor.SYSTEM, "alice@elsewhere.example")
    with pytest.raises(E.NoMicroblog, match="has no blog"):
        await core.accounts.export(Actor.SYSTEM, "nobody")
    token, facts = await core.accounts.export_link(ALICE)
    assert (facts.posts, facts.comments) == (2, 1)
    with pytest.raises(E.NoMicroblog):
        await core.accounts.export_link(CAROL)
    assert (await core.accounts.export_by_link(token.code)).posts == export.posts
    clock.advance(3601)
    with pytest.raises(E.ItemNotFound, match="expired"):
        await core.accounts.export_by_link(token.code)


async def test_deleting_an_account_retracts_everywhere_and_leaves_nothing(served):
    core, uow, clock = served
    await core.pubsub.subscribe(Actor(PEER), REF, PEER)              # another server follows alice
    await core.follows.follow(CAROL, "alice@example.org")            # carol follows by chat (IM)
    await core.roster.contact_subscribed(REF.service, CAROL.jid, True)  # and lets the blog JID see her
    await core.roster.contact_subscribe(REF.service, "dave@example.org")  # dave follows by roster
    first = await core.posting.post(ALICE, draft("searchable unicorn #farewell"))
    await core.posting.post(ALICE, draft("second post"))
    bobs = await core.posting.post(BOB, draft("bob's post"))
    await core.pubsub.publish(ALICE, BOB_REF.comments(bobs), None, draft("alice comments on bob"))
    await core.pubsub.publish(BOB, REF.comments(first), None, draft("bob comments on alice"))
    await core.follows.follow(ALICE, "bob@example.org")
    await core.social.track(ALICE, "unicorn")
    remote = NodeRef("zed@blog.other.org", NS_MICROBLOG)
    await core.remote.follow(ALICE, "zed@other.org", remote)         # alice is zed's only follower here
    await Wire(uow, clock).drain()

    code, facts = await core.accounts.ask_delete(ALICE)
    assert (facts.posts, facts.comments, facts.followers, facts.servers, facts.following) == (2, 1, 3, 1, 2)
    with pytest.raises(E.Forbidden, match="wrong"):
        await core.accounts.delete(ALICE, "AAAA-AAAA")
    with pytest.raises(E.Forbidden, match="no confirmation code"):
        await core.accounts.delete(BOB, code.code)                   # alice's code is no code for bob
    deleted = await core.accounts.delete(ALICE, code.code.lower())
    assert deleted.unsubscribe == (remote,)

    async with uow() as u:
        assert await u.nodes.get(REF) is None
        assert await u.feed.comments_by("alice@example.org") == []
        assert await u.subs.following("alice@example.org") == []
        assert await u.contacts.of_blog(REF.service) == [] and await u.contacts.of_contact(ALICE.jid) == []
        assert await u.im.tracked(ALICE.jid) == []
        assert not await u.remote.consented(remote.service, remote.node)
        events = [e.event for e in await u.outbox.due_bulk(clock.now(), 100)]
        rows = await u.outbox.due(clock.now(), 100)
    to_peer = [(d.event.kind, d.event.item_id) for d in rows if d.recipient == PEER]
    assert (EventKind.ITEM_RETRACTED, first) in to_peer and (EventKind.NODE_DELETED, None) in to_peer, \
        "the other server hears of each retraction, then of the node's deletion"
    goodbyes = [(e.sender, e.recipients, e.state) for e in events if e.kind is EventKind.PRESENCE]
    assert (REF.service, (CAROL.jid,), "unsubscribe") in goodbyes, "carol's roster loses alice's blog JID"
    assert (REF.service, ("dave@example.org",), "unsubscribed") in goodbyes
    assert ("bob@blog.example.org", (ALICE.jid,), "unsubscribe") in goodbyes, "the blog alice followed asked her"
    assert (await core.search.search(Actor.ANONYMOUS, "unicorn")).posts == []
    assert not [p for p in (await core.pubsub.get_items(Actor.ANONYMOUS, core.pubsub.timeline_ref)).items
                if p.item_id.startswith("alice/")]
    assert [p.item.publisher for p in await core.social.timeline(BOB, 10)] == ["bob@example.org"]
    with pytest.raises(E.NoMicroblog):
        await core.accounts.export(Actor.SYSTEM, "alice")
    with pytest.raises(E.NoMicroblog):
        await core.accounts.delete_user(Actor.SYSTEM, "alice")
    with pytest.raises(E.Forbidden, match="no confirmation code"):
        await core.accounts.delete(ALICE, code.code), "a code is used once"


async def test_admins_delete_users_of_this_server_only(served):
    core, uow, clock = served
    await core.posting.post(BOB, draft("bob was here"))
    with pytest.raises(E.Forbidden):
        await core.accounts.delete_user(CAROL, "bob")
    with pytest.raises(E.NoMicroblog, match="not a user of this server"):
        await core.accounts.delete_user(ADMIN, "bob@elsewhere.example")
    done = await core.accounts.delete_user(ADMIN, "bob@blog.example.org")
    assert done.facts.user == "bob@example.org" and done.facts.posts == 1
    assert await core.social.timeline(BOB, 5) == []


async def test_a_deleted_account_loses_what_other_blogs_granted_it_but_not_their_bans(served):
    """Whoever registers the JID again later must not inherit a protected blog's membership; a
    ban stays, or deleting an account would be a way out of it."""
    from xmppblog.core.model import AccessModel, Affiliation

    core, uow, clock = served
    await core.posting.post(BOB, draft("for members only"))
    await core.pubsub.configure(BOB, BOB_REF, {"access_model": AccessModel.WHITELIST})
    await core.pubsub.set_affiliations(BOB, BOB_REF, [(ALICE.jid, "member"), (CAROL.jid, "outcast")])
    assert (await core.pubsub.get_items(ALICE, BOB_REF)).items
    await core.posting.post(ALICE, draft("alice was here"))
    await core.posting.post(CAROL, draft("carol was here"))
    await core.accounts.delete_user(ADMIN, "alice")
    await core.accounts.delete_user(ADMIN, "carol")
    affs = await core.pubsub.get_affiliations(BOB, BOB_REF)
    assert affs.get(ALICE.jid, Affiliation.NONE) is Affiliation.NONE
    assert affs[CAROL.jid] is Affiliation.OUTCAST
    with pytest.raises(E.BlogError):  # whatever the whitelist answers a stranger
        await core.pubsub.get_items(ALICE, BOB_REF)


async def test_reposts_of_a_deleted_users_posts_go_with_them(served):
    """A repost carries the post's text credited to its author: nothing of it may stay."""
    from xmppblog.im.text import draft_from_text, short_id

    core, uow, clock = served
    first = await core.posting.post(ALICE, draft("narwhals are real"))
    await core.posting.repost(BOB, short_id(first), lambda text, **kw: draft_from_text(text, 4096, **kw))
    own = await core.posting.post(BOB, draft("narwhals of my own"))
    assert (await core.search.search(Actor.ANONYMOUS, "narwhals")).total == 3
    await core.accounts.delete_user(ADMIN, "alice")
    found = await core.search.search(Actor.ANONYMOUS, "narwhals")
    assert [p.item.item_id for p in found.posts] == [own], "bob's own post stays, his repost of alice's goes"
    assert [i.item_id for i in (await core.pubsub.get_items(Actor.ANONYMOUS, BOB_REF)).items] == [own]
