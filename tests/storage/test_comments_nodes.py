# SPDX-License-Identifier: AGPL-3.0-or-later
"""A post's comments node exists, empty, as soon as the post does (issue #15: XEP-0277 clients
create or configure it before the first comment, and read it when it has none)."""

from __future__ import annotations

import pytest

from xmppblog.core import errors as E
from xmppblog.core.model import NS_MICROBLOG, AccessModel, Actor, NodeRef

from .test_service_storage import ALICE, BOB, draft

REF = NodeRef("alice@blog.example.org", NS_MICROBLOG)


async def test_a_fresh_posts_comments_node_answers_as_an_empty_leaf(stack):
    core, uow, clock = stack
    post = await core.pubsub.publish(ALICE, REF, None, draft("comment on me"))
    comments = REF.comments(post)
    assert (await core.pubsub.get_items(BOB, comments)).items == ()
    assert (await core.pubsub.get_items(Actor.ANONYMOUS, comments)).items == ()
    assert (await core.pubsub.visible_node(BOB, comments)).ref == comments
    config = await core.pubsub.get_config(ALICE, comments)
    assert config.access_model is AccessModel.OPEN, "a comments node follows its blog's settings"
    with pytest.raises(E.Forbidden):
        await core.pubsub.get_config(BOB, comments)
    # what a client sends that the node already has is accepted; anything else is refused clearly
    assert await core.pubsub.configure(ALICE, comments, {"access_model": AccessModel.OPEN}) == config
    with pytest.raises(E.Unsupported):
        await core.pubsub.configure(ALICE, comments, {"access_model": AccessModel.WHITELIST})
    with pytest.raises(E.Forbidden):
        await core.pubsub.configure(BOB, comments, {"access_model": AccessModel.OPEN})


async def test_creating_a_comments_node_is_a_conflict_for_its_owner_and_forbidden_to_others(stack):
    core, uow, clock = stack
    post = await core.pubsub.publish(ALICE, REF, None, draft("first"))
    with pytest.raises(E.Conflict):
        await core.pubsub.create(ALICE, REF.comments(post), {})
    with pytest.raises(E.Conflict):  # before the post it belongs to (Libervia creates it first)
        await core.pubsub.create(ALICE, REF.comments("not-yet-published"), {})
    with pytest.raises(E.Forbidden):
        await core.pubsub.create(BOB, REF.comments(post), {})
    # the first comment then goes through, and the node reads back with it
    await core.pubsub.publish(BOB, REF.comments(post), None, draft("first comment"))
    assert len((await core.pubsub.get_items(ALICE, REF.comments(post))).items) == 1


async def test_a_comments_node_goes_with_its_post(stack):
    core, uow, clock = stack
    post = await core.pubsub.publish(ALICE, REF, None, draft("short-lived"))
    await core.pubsub.publish(BOB, REF.comments(post), None, draft("a comment"))
    await core.pubsub.retract(ALICE, REF, [post], notify=True)
    with pytest.raises(E.NodeNotFound):
        await core.pubsub.get_items(BOB, REF.comments(post))
    with pytest.raises(E.NodeNotFound):
        await core.pubsub.visible_node(BOB, REF.comments(post))
