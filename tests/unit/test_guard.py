# SPDX-License-Identifier: AGPL-3.0-or-later
"""Spamguard decisions on a fake clock: lists, rates, consent, counting."""

from __future__ import annotations

import pytest

from xmppblog.spamguard.guard import Guard, Limits, RemotePush
from xmppblog.spamguard.verdict import Kind


class Clock:
    t = 0.0

    def __call__(self) -> float:
        return self.t


def guard(consented=(), **limits):
    async def consent(origin, node):
        return (origin, node) in consented
    return Guard(consent, {"example.org", "blog.example.org"}, Limits(**limits), Clock())


def test_block_and_allow_lists():
    g = guard(blocked_domains=frozenset({"spam.example"}))
    assert g.gate("iq", "x@spam.example/r", "subscribe").condition == "forbidden"
    assert g.gate("message", "x@spam.example", "event").condition == "forbidden"
    assert g.gate("iq", "x@fine.example/r", "subscribe").accepted
    g = guard(allowed_domains=frozenset({"friend.example"}))
    assert g.gate("message", "a@friend.example", "event").accepted
    assert not g.gate("message", "a@stranger.example", "event").accepted
    assert g.gate("message", "alice@example.org/pc", "chat").accepted, "local users are never blocked"
    assert g.drops[("blocked-domain", "stranger.example")] == 1


def test_rates_per_jid_and_domain():
    g = guard(remote_events_per_minute=2, remote_domain_events_per_minute=3)
    assert [g.gate("message", "a@peer.example", "event").kind for _ in range(3)] == [Kind.ACCEPT] * 2 + [Kind.DROP]
    assert g.gate("message", "b@peer.example", "event").accepted, "a's flood did not use the domain's share"
    assert g.gate("message", "c@peer.example", "event").kind is Kind.DROP, "the domain's bucket is empty"
    assert g.drops[("rate-jid-events", "peer.example")] == 1
    assert g.drops[("rate-domain-events", "peer.example")] == 1


@pytest.mark.parametrize("action,limit,reason", [
    ("subscribe", "subscribes_per_minute", "rate-subscribes"),
    ("publish", "local_publishes_per_minute", "rate-publishes"),
    ("chat", "im_commands_per_minute", "rate-commands"),
    ("owner", "owner_changes_per_minute", "rate-owner-changes"),
    ("report", "reports_per_minute", "rate-reports"),
    ("search", "searches_per_minute", "rate-searches"),
])
def test_rates_answered_with_policy_violation_or_dropped(action, limit, reason):
    g = guard(**{limit: 1})
    assert g.gate("iq", "alice@example.org/pc", action).accepted
    assert g.gate("iq", "alice@example.org/pc", action).condition == "policy-violation"
    g = guard(**{limit: 1}, over_limit="drop")
    g.gate("iq", "alice@example.org/pc", action)
    refused = g.gate("iq", "alice@example.org/pc", action)
    assert refused.kind is Kind.DROP and refused.condition is None
    assert g.take_unflushed()[(reason, "example.org")] == 1
    assert g.take_unflushed() == {}


async def test_pushes_need_consent_from_the_exact_bare_origin():
    g = guard(consented={("bob@blog.peer.example", "urn:xmpp:microblog:0")}, max_items_per_event=5)
    ok = RemotePush("bob@blog.peer.example", "urn:xmpp:microblog:0", 1, "items")
    assert (await g.check(ok)).accepted
    for push, reason in [
        (RemotePush("bob@blog.peer.example", "other", 1, "items"), "no-subscription"),
        (RemotePush("eve@blog.peer.example", "urn:xmpp:microblog:0", 1, "items"), "no-subscription"),
        (RemotePush("bob@blog.peer.example/x", "urn:xmpp:microblog:0", 1, "items"), "from-full-jid"),
        (RemotePush("bob@blog.peer.example", "urn:xmpp:microblog:0", 20000, "items"), "too-many-items"),
    ]:
        v = await g.check(push)
        assert v.kind is Kind.DROP and v.reason == reason


def test_a_remote_domain_cannot_subscribe_without_bound():
    g = guard(subscribes_per_minute=1)
    refused = sum(not g.gate("iq", f"u{i}@s{i % 7}.farm.example/x", "subscribe").accepted for i in range(30))
    assert refused == 20, "each JID gets 1, the registrable domain (subdomains included) 10"
    assert sum(n for (reason, _), n in g.drops.items() if reason == "rate-domain-subscribes") == 20


def test_bounces_of_our_own_notifications_are_not_rate_limited_as_pushes():
    """An error echoing our <event/> is a bounce (xmpp/component.py), not a remote push."""
    import xml.etree.ElementTree as ET

    from xmppblog.xmpp.component import message_kind
    bounce = ET.fromstring("<message type='error' id='ob1'><event xmlns='http://jabber.org/protocol/pubsub#event'/>"
                           "<error type='cancel'/></message>")
    push = ET.fromstring("<message><event xmlns='http://jabber.org/protocol/pubsub#event'/></message>")
    body_first = ET.fromstring("<message><body>x</body><event xmlns='http://jabber.org/protocol/pubsub#event'/>"
                               "</message>")
    assert message_kind(bounce) == "bounce" and message_kind(push) == "event"
    assert message_kind(body_first) == "event", "an event is an event whatever comes before it"
    g = guard(remote_events_per_minute=1, remote_domain_events_per_minute=1,
              blocked_domains=frozenset({"spam.example"}))
    assert all(g.gate("message", f"u{i}@down.example", "bounce").accepted for i in range(50))
    assert not g.gate("message", "x@spam.example", "bounce").accepted, "block lists still apply"
    assert g.gate("message", "a@down.example", "event").accepted
    assert not g.gate("message", "b@down.example", "event").accepted, "pushes still are"


PS = "http://jabber.org/protocol/pubsub"


@pytest.mark.parametrize("children, charged", [
    ("<publish node='n'/>", "publish"),
    ("<publish node='n'/><publish-options/>", "publish"),
    ("<retract node='n'/>", "publish"),
    ("<subscribe node='n' jid='a@b'/><options/>", "subscribe"),
    ("<unsubscribe node='n' jid='a@b'/>", "subscribe"),
    ("<create node='n'/><configure/>", "owner"),
    ("<x xmlns='urn:decoy'/><publish node='n'/>", "publish"),    # a foreign element is not an action
    ("<retract xmlns='urn:decoy'/><subscribe node='n' jid='a@b'/>", "subscribe"),
    ("<publish node='n'/><subscribe node='n' jid='a@b'/>", "iq"),  # refused by the dispatcher anyway
    ("", "iq"),
])
def test_a_pubsub_set_is_charged_for_the_action_its_handler_runs(children, charged):
    from xml.etree import ElementTree as ET

    from xmppblog.xmpp.component import iq_action, pubsub_action

    payload = ET.fromstring(f"<pubsub xmlns='{PS}'>{children}</pubsub>")
    assert iq_action(PS, payload, "set") == charged
    action = pubsub_action(payload)
    if charged == "iq":
        assert action is None
    else:
        assert action is not None and action.tag.startswith(f"{{{PS}}}")
