# SPDX-License-Identifier: AGPL-3.0-or-later
"""XEP-0470 attachments nodes (issue #15): a post's reactions and "noticed", one item per reader
whose id is their bare JID, under the post's blog's access rules; no post themselves."""

from __future__ import annotations

import pytest

from xmppblog.core import errors as E
from xmppblog.core.archive import ArchiveQuery
from xmppblog.core.model import NS_MICROBLOG, AccessModel, Actor, Affiliation, EventKind, NodeRef, PageRequest

from .test_search import texts
from .test_service_storage import ALICE, BOB, CAROL, draft, outbox

REF = NodeRef("alice@blog.example.org", NS_MICROBLOG)
NS = "urn:xmpp:pubsub-attachments:1"


def reaction(emoji: str) -> str:
    return f"<attachments xmlns='{NS}'><reactions><reaction>{emoji}</reaction></reactions></attachments>"


def test_the_node_name_is_the_one_libervia_builds():
    ref = REF.attachments("a b/c;d=é")
    # sat.tools.common.uri.buildXMPPUri("pubsub", path=…, node=…, item=…), prefixed
    assert ref.node == (f"{NS}/xmpp:alice@blog.example.org?;node=urn%3Axmpp%3Amicroblog%3A0"
                        ";item=a+b%2Fc%3Bd%3D%C3%A9")
    assert ref.is_attachments and ref.of_post and ref.attached_item == ref.post_item == "a b/c;d=é"
    assert ref.parent() == REF
    # another blog's post, another node, or another spelling of the same URI: not a node of ours
    assert NodeRef("bob@blog.example.org", ref.node).attached_item is None
    assert NodeRef(REF.service, f"{NS}/xmpp:alice@blog.example.org?;node=urn:xmpp:microblog:0;item=x"
                   ).attached_item is None
    assert NodeRef(REF.service, ref.node.replace("microblog%3A0", "microblog%3A0%3Acomments%2Fx")
                   ).attached_item is None


async def test_create_is_a_conflict_for_the_owner_and_forbidden_to_others(stack):
    core, uow, clock = stack
    post = await core.pubsub.publish(ALICE, REF, None, draft("react to me"))
    # Libervia creates the node with createIfNewNode (conflict tolerated), before and after the post
    with pytest.raises(E.Conflict):
        await core.pubsub.create(ALICE, REF.attachments(post), {"access_model": AccessModel.OPEN})
    with pytest.raises(E.Conflict):
        await core.pubsub.create(ALICE, REF.attachments("not-yet-published"), {})
    with pytest.raises(E.Forbidden):
        await core.pubsub.create(BOB, REF.attachments(post), {})
    with pytest.raises(E.NodeNotFound):  # a name that names no post of this blog
        await core.pubsub.create(ALICE, NodeRef(REF.service, f"{NS}/nonsense"), {})
    assert (await core.pubsub.get_items(BOB, REF.attachments(post))).items == (), "exists, empty"
    assert (await core.pubsub.get_config(ALICE, REF.attachments(post))).access_model is AccessModel.OPEN


async def test_a_reader_publishes_under_their_own_jid_and_everyone_reads_it_back(stack):
    core, uow, clock = stack
    post = await core.pubsub.publish(ALICE, REF, None, draft("react to me"))
    node = REF.attachments(post)
    await core.pubsub.subscribe(ALICE, node, "alice@example.org/laptop")
    await core.pubsub.subscribe(CAROL, REF, "carol@example.org")
    assert await core.pubsub.attach(BOB, node, "bob@example.org", reaction("👍")) == "bob@example.org"
    assert await core.pubsub.attach(CAROL, node, None, reaction("🎉")) == "carol@example.org", "no id: theirs"
    clock.advance(1)
    await core.pubsub.attach(BOB, node, "bob@example.org", reaction("❤"))  # replaces their item
    page = await core.pubsub.get_items(CAROL, node)
    assert sorted(i.item_id for i in page.items) == ["bob@example.org", "carol@example.org"]
    mine = (await core.pubsub.get_items(ALICE, node, ["bob@example.org"])).items
    assert len(mine) == 1 and "❤" in mine[0].payload and mine[0].publisher == "bob@example.org"
    # the attachments node's subscribers hear of each; the blog's subscribers of none
    due = [d for d in await outbox(uow, clock) if d.event.kind is EventKind.ITEM_PUBLISHED]
    assert {d.recipient for d in due} == {"alice@example.org/laptop"} and len(due) == 3
    assert all(d.event.node == node.node for d in due)
    # an item id that is not the publisher's own JID is refused, whoever it names
    for wrong in ("carol@example.org", "alice@example.org", "anything"):
        with pytest.raises(E.BadRequest):
            await core.pubsub.attach(BOB, node, wrong, reaction("👎"))
    # its publisher retracts it
    await core.pubsub.retract(BOB, node, ["bob@example.org"], notify=True)
    assert [i.item_id for i in (await core.pubsub.get_items(ALICE, node)).items] == ["carol@example.org"]
    with pytest.raises(E.Forbidden):
        await core.pubsub.retract(BOB, node, ["carol@example.org"], notify=True)


async def test_entries_and_missing_posts_are_refused(stack):
    core, uow, clock = stack
    post = await core.pubsub.publish(ALICE, REF, None, draft("react to me"))
    with pytest.raises(E.InvalidPayload):
        await core.pubsub.publish(BOB, REF.attachments(post), "bob@example.org", draft("not an attachment"))
    with pytest.raises(E.NodeNotFound):
        await core.pubsub.attach(BOB, REF.attachments("no-such-post"), None, reaction("👍"))
    with pytest.raises(E.PayloadTooBig):  # the stack's max_payload_bytes is 4096
        await core.pubsub.attach(BOB, REF.attachments(post), None, reaction("x" * 5000))


async def test_only_readers_of_a_protected_blog_attach_or_read(stack):
    core, uow, clock = stack
    post = await core.pubsub.publish(ALICE, REF, None, draft("members only"))
    await core.pubsub.configure(ALICE, REF, {"access_model": AccessModel.WHITELIST})
    await core.pubsub.set_affiliations(ALICE, REF, [("bob@example.org", Affiliation.MEMBER.value)])
    node = REF.attachments(post)
    await core.pubsub.attach(BOB, node, None, reaction("👍"))
    await core.pubsub.attach(ALICE, node, None, reaction("🙂"))
    with pytest.raises(E.ClosedNode):
        await core.pubsub.attach(CAROL, node, None, reaction("👀"))
    with pytest.raises(E.ClosedNode):
        await core.pubsub.get_items(CAROL, node)
    with pytest.raises(E.ClosedNode):
        await core.pubsub.get_items(Actor.ANONYMOUS, node)
    assert len((await core.pubsub.get_items(BOB, node)).items) == 2


async def test_attachments_go_with_their_post_and_are_no_posts(stack):
    core, uow, clock = stack
    post = await core.pubsub.publish(ALICE, REF, "p1", draft("findable words"))
    node = REF.attachments(post)
    await core.pubsub.attach(BOB, node, None, f"<attachments xmlns='{NS}'><noticed/>findable</attachments>")
    # not on the public timeline, not in search
    timeline = await core.pubsub.get_items(BOB, core.pubsub.timeline_ref, page=PageRequest(max=10))
    assert [i.item_id for i in timeline.items] == ["alice/p1"]
    assert await texts(core.search, "findable") == (["p1"], 1)
    # gone with the post
    await core.pubsub.retract(ALICE, REF, [post], notify=True)
    with pytest.raises(E.NodeNotFound):
        await core.pubsub.get_items(BOB, node)
    async with uow() as u:
        assert await u.nodes.get(node) is None
    # and with the blog
    post = await core.pubsub.publish(ALICE, REF, "p2", draft("again"))
    await core.pubsub.attach(BOB, REF.attachments(post), None, reaction("👍"))
    await core.pubsub.delete_node(ALICE, REF)
    async with uow() as u:
        assert await u.nodes.get(REF.attachments(post)) is None


async def test_the_archive_holds_attachments_and_scans_them_for_full_text(stack):
    core, uow, clock = stack
    post = await core.pubsub.publish(ALICE, REF, None, draft("react to me"))
    await core.pubsub.attach(BOB, REF.attachments(post), None, reaction("👍"))
    mam = core.archive
    page = await mam.query(CAROL, REF.attachments(post), ArchiveQuery())
    assert [e.item.item_id for e in page.entries] == ["bob@example.org"]
    # never indexed: full text scans the node, and a reaction has no words to find
    found = await mam.query(CAROL, REF.attachments(post), ArchiveQuery(text="reaction"))
    assert found.entries == () and found.complete


async def test_a_deleted_accounts_attachments_go_with_it(stack):
    core, uow, clock = stack
    post = await core.pubsub.publish(ALICE, REF, None, draft("react to me"))
    await core.pubsub.publish(BOB, NodeRef("bob@blog.example.org", NS_MICROBLOG), None, draft("bob's own"))
    await core.pubsub.attach(BOB, REF.attachments(post), None, reaction("👍"))
    await core.pubsub.attach(CAROL, REF.attachments(post), None, reaction("🎉"))
    await core.accounts.delete_user(Actor.SYSTEM, "bob")
    left = (await core.pubsub.get_items(ALICE, REF.attachments(post))).items
    assert [i.item_id for i in left] == ["carol@example.org"]
