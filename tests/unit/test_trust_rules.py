# SPDX-License-Identifier: AGPL-3.0-or-later
"""The trust rules of the core, alone: attribution, consent, visibility (no storage, no XML)."""

from __future__ import annotations

import pytest

from xmppblog.core import errors
from xmppblog.core.addressing import Addressing
from xmppblog.core.attribution import Claim, attribute, claimed_author, sender_of
from xmppblog.core.consent import owner_may_set
from xmppblog.core.model import AccessModel, Affiliation, Node, NodeConfig, NodeRef, SubState
from xmppblog.core.policy import NOBODY, Viewer, roster_request_state
from xmppblog.core.visibility import is_public, may_read

ADDR = Addressing("blog.example.org", "example.org")
MB = "urn:xmpp:microblog:0"


def remote(service: str, owner: str, node: str = MB) -> Node:
    return Node(NodeRef(service, node), owner, NodeConfig(), remote=True)


@pytest.mark.parametrize("claimed", ["alice@example.org", "xmpp:Alice@Example.org", "alice@blog.example.org",
                                     "example.org", "blog.example.org", "x\\40y@blog.example.org"])
def test_no_remote_entry_is_attributed_to_us(claimed):
    for node in (remote("pubsub.evil.example", "pubsub.evil.example"), remote("bob@evil.example", "bob@evil.example"),
                 remote("blog.peer.example", "blog.peer.example")):
        with pytest.raises(errors.DroppedEntry) as exc:
            attribute(ADDR, node, Claim("i", claimed, signed=True), "peer.example")
        assert exc.value.reason == "author-local"


def test_a_persons_node_carries_their_posts_whatever_the_entry_claims():
    node = remote("bob@evil.example", "bob@evil.example")
    for claim in ("carol@elsewhere.example", "", "not a jid @@", "bob@evil.example"):
        assert attribute(ADDR, node, Claim("i", claim, signed=True), None) == "bob@evil.example"


def test_a_relay_names_its_own_users_only_with_a_signature():
    relay = remote("blog.peer.example", "blog.peer.example")
    assert attribute(ADDR, relay, Claim("i", "zed@peer.example", True), "peer.example") == "zed@peer.example"
    assert attribute(ADDR, relay, Claim("i", "zed@blog.peer.example", True), "peer.example") == "zed@blog.peer.example"
    assert attribute(ADDR, relay, Claim("i", "zed@peer.example", False), "peer.example") == "blog.peer.example"
    assert attribute(ADDR, relay, Claim("i", "eve@other.example", True), "peer.example") == "blog.peer.example"
    news = remote("pubsub.news.example", "pubsub.news.example")
    assert attribute(ADDR, news, Claim("i", "editor@news.example", False), None) == "pubsub.news.example"


def test_remote_content_is_sent_from_proxy_addresses_only():
    node = remote("bob@evil.example", "bob@evil.example")
    assert sender_of(ADDR, node, "bob@evil.example") == "bob\\40evil.example@blog.example.org"
    # even if a remote node's attribution were somehow local, it never leaves from a blog JID
    assert sender_of(ADDR, node, "alice@example.org") == "alice\\40example.org@blog.example.org"
    local = Node(NodeRef("alice@blog.example.org", MB), "alice@example.org", NodeConfig())
    assert sender_of(ADDR, local, "alice@example.org") == "alice@blog.example.org"
    assert sender_of(ADDR, local.__class__(NodeRef("alice@blog.example.org", MB + ":comments/x"),
                                           "alice@example.org", NodeConfig()), "zed@other.org") \
        == "zed\\40other.org@blog.example.org"


def test_claimed_authors_are_normalised_or_nothing():
    assert claimed_author(" xmpp:Bob@Example.NET ") == "bob@example.net"
    assert claimed_author("xmpp:bob@example.net?message") == "bob@example.net"
    assert claimed_author("") == "" and claimed_author("<script>") == ""


@pytest.mark.parametrize("current,wanted,ok", [
    (SubState.NONE, SubState.SUBSCRIBED, False), (SubState.NONE, SubState.PENDING, False),
    (SubState.PENDING, SubState.SUBSCRIBED, True), (SubState.SUBSCRIBED, SubState.SUBSCRIBED, True),
    (SubState.SUBSCRIBED, SubState.PENDING, False), (SubState.NONE, SubState.NONE, True),
    (SubState.SUBSCRIBED, SubState.NONE, True),
])
def test_owners_approve_or_remove_never_impose(current, wanted, ok):
    assert owner_may_set(current, wanted) is ok


def test_visibility_rule():
    def node(model: AccessModel, is_remote: bool = False) -> Node:
        return Node(NodeRef("a@blog.example.org", MB), "a@example.org", NodeConfig(access_model=model),
                    remote=is_remote)
    outcast = Viewer(Affiliation.OUTCAST)
    assert is_public(node(AccessModel.OPEN)) and may_read(node(AccessModel.OPEN), NOBODY)
    assert not may_read(node(AccessModel.OPEN), outcast), "a ban holds on an open blog too"
    for model in (AccessModel.PRESENCE, AccessModel.WHITELIST, AccessModel.AUTHORIZE):
        assert not is_public(node(model))
        assert may_read(node(model), Viewer(Affiliation.MEMBER))
    assert may_read(node(AccessModel.PRESENCE), Viewer(has_presence=True))
    assert may_read(node(AccessModel.AUTHORIZE), Viewer(subscription=SubState.SUBSCRIBED))
    assert not may_read(node(AccessModel.AUTHORIZE), Viewer(subscription=SubState.PENDING))
    assert is_public(node(AccessModel.WHITELIST, is_remote=True)), "servers cache open nodes only"


def test_a_roster_request_to_a_presence_blog_waits_for_the_owner():
    assert roster_request_state(AccessModel.PRESENCE, NOBODY) is SubState.PENDING
    assert roster_request_state(AccessModel.PRESENCE, Viewer(has_presence=True)) is SubState.SUBSCRIBED
    assert roster_request_state(AccessModel.PRESENCE, Viewer(Affiliation.MEMBER)) is SubState.SUBSCRIBED
    assert roster_request_state(AccessModel.OPEN, NOBODY) is SubState.SUBSCRIBED
    assert roster_request_state(AccessModel.AUTHORIZE, NOBODY) is SubState.PENDING
    with pytest.raises(errors.Forbidden):
        roster_request_state(AccessModel.PRESENCE, Viewer(Affiliation.OUTCAST))
    with pytest.raises(errors.ClosedNode):
        roster_request_state(AccessModel.WHITELIST, NOBODY)
