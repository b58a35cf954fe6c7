# SPDX-License-Identifier: AGPL-3.0-or-later
"""Nobody receives anything from us unless they asked, and every kind of traffic is limited
(security review, Dec 2026).

Findings #4, #7, #8, #9, #14, #15, #16, #19 and #24 of the review of bcf2175, from outside.
"""

from __future__ import annotations

import hashlib
import xml.etree.ElementTree as ET

import pytest

from ..support.stanzas import (
    MB,
    PubsubPeer,
    bodies,
    error_of,
    event,
    publish,
    published_id,
    responder,
    subscribe,
    subscriptions,
)
from ..support.world import World

ALICE, BOB, MALLORY = "alice@example.org", "bob@example.org", "mallory@example.org"
BLOG = "alice@blog.example.org"
COMMANDS = "http://jabber.org/protocol/commands"
BLOCKING = "urn:xmpp:blocking"
REPORTING = "urn:xmpp:reporting:1"


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


@pytest.fixture
async def world(tmp_path, request):
    peers: list[PubsubPeer] = []
    extra = getattr(request, "param", "")
    w = await World.start(tmp_path, responder=lambda iq: responder(*peers)(iq), extra=extra)
    w.peers = peers  # type: ignore[attr-defined]
    yield w
    await w.close()


async def post(world: World, text: str, frm: str = ALICE) -> str:
    return published_id(await world.iq(f"{frm}/pc", f"{frm.split('@')[0]}@blog.example.org", "set",
                                       publish(text=text)))


def addressed(out: list[ET.Element], domain: str) -> list[ET.Element]:
    return [el for el in out if el.get("to", "").split("/")[0].endswith("@" + domain)]


async def test_an_owner_cannot_subscribe_strangers(world):
    """#4: owner-set subscriptions only remove, or approve a JID that asked; nothing reaches the others."""
    await post(world, "hello")
    victims = [(f"victim{i}@gmail.example", "subscribed") for i in range(100)]
    reply = await world.iq(f"{ALICE}/pc", BLOG, "set", subscriptions(victims))
    assert reply.get("type") == "error", "an owner subscribed 100 JIDs that never asked"
    await post(world, "spam for everyone")
    assert not addressed(await world.drain(), "gmail.example")
    too_many = [(f"x{i}@example.org", "none") for i in range(150)]
    assert (await world.iq(f"{ALICE}/pc", BLOG, "set", subscriptions(too_many))).get("type") == "error"
    # approving a JID that asked still works (XEP-0060 §8.8.2)
    await world.chat(f"{ALICE}/pc", "protect on")
    assert (await world.iq(f"{BOB}/pc", BLOG, "set", subscribe(BOB))).get("type") == "result"
    assert (await world.iq(f"{ALICE}/pc", BLOG, "set", subscriptions([(BOB, "subscribed")]))).get("type") == "result"


async def test_roster_requests_are_rate_limited_and_unsolicited_answers_ignored(world):
    """#7: presence subscribes pass the subscribe buckets; 'subscribed' nobody asked for stores nothing."""
    await world.chat(f"{ALICE}/pc", "protect on")
    for i in range(600):
        await world.receive(f"<presence type='subscribe' from='u{i}@evil.example' to='{BLOG}'/>")
    asks = [b for _, b in bodies(await world.drain(), ALICE) if "asks to follow" in b]
    assert len(asks) <= 250, f"{len(asks)} approval requests from one domain"
    for i in range(200):
        await world.receive(f"<presence type='subscribed' from='s{i}@other.example' to='{BLOG}'/>")
    probes = [el for el in await world.reconnected() if el.get("type") == "probe"
              and el.get("to", "").endswith("@other.example")]
    assert not probes, f"{len(probes)} strangers are probed after every reconnect"


async def test_event_limits_hold_whatever_the_child_order_and_count(world):
    """#8: body-first events are events; many <items/> in one stanza cost one; 'tell to stop' stays usable."""
    for i in range(300):
        await world.receive(event("spammer@evil.example", f"n{i}", f"<items node='n{i}'/>", before="<body>x</body>"))
    asked_evil = sum(1 for el in _sent_iqs(world) if el.get("to", "").endswith("evil.example"))
    assert asked_evil <= 20, f"{asked_evil} unsubscribe requests echoed to one spamming domain"
    many = "".join(f"<items node='m{i}'/>" for i in range(12000))
    await world.receive(event("flood@flood.example", "x", many))
    asked_flood = sum(1 for el in _sent_iqs(world) if el.get("to", "").endswith("flood.example"))
    assert asked_flood <= 1, asked_flood
    await world.receive(event("stale.example", "old", "<items node='old'/>"))
    assert sum(1 for el in _sent_iqs(world) if el.get("to") == "stale.example") == 1


def _sent_iqs(world: World) -> list[ET.Element]:
    """Every iq get/set the server sent so far."""
    return list(world.sent_iqs)


async def test_block_and_report_iqs_are_bounded_and_reports_stay_visible(world):
    """#9: reports come from local users, a few items per IQ, rate-limited; admins see every reporter."""
    flood = "".join(f"<item jid='t{i}@evil.example'><report xmlns='{REPORTING}' reason='urn:xmpp:reporting:spam'/>"
                    "</item>" for i in range(3000))
    remote = await world.iq("x@evil.example/r", "blog.example.org", "set", f"<block xmlns='{BLOCKING}'>{flood}</block>")
    assert remote.get("type") == "error"
    local = await world.iq(f"{MALLORY}/pc", "blog.example.org", "set", f"<block xmlns='{BLOCKING}'>{flood}</block>")
    assert local.get("type") == "error"
    real = (f"<block xmlns='{BLOCKING}'><item jid='spammer@spam.example'><report xmlns='{REPORTING}' "
            "reason='urn:xmpp:reporting:abuse'><text xmlns='urn:xmpp:reporting:1'>real report</text></report>"
            "</item></block>")
    assert (await world.iq("carol@example.org/pc", "blog.example.org", "set", real)).get("type") == "result"
    for n in range(30):
        chunk = "".join(f"<item jid='t{n}-{i}@evil.example'><report xmlns='{REPORTING}' "
                        "reason='urn:xmpp:reporting:spam'/></item>" for i in range(20))
        await world.iq(f"{MALLORY}/pc", "blog.example.org", "set", f"<block xmlns='{BLOCKING}'>{chunk}</block>",
                       iq_id=f"b{n}")
    shown = await world.iq("admin@example.org/pc", "blog.example.org", "set",
                           f"<command xmlns='{COMMANDS}' node='xmppblog#reports' action='execute'/>")
    assert "carol@example.org" in ET.tostring(shown, encoding="unicode")


async def test_remote_comments_are_limited_per_domain(world):
    """#14: one domain rotating local parts does not comment without limit."""
    item = await post(world, "a post")
    accepted = 0
    for i in range(200):
        reply = await world.iq(f"u{i}@evil.example/r", BLOG, "set",
                               publish(node=f"{MB}:comments/{item}", text=f"spam {i}"), iq_id=f"c{i}")
        accepted += reply.get("type") == "result"
    assert accepted <= 100, f"{accepted} comments from one domain in a minute"


async def test_strangers_presence_is_not_tracked(world):
    """#15: only contacts whose presence we asked for are tracked as online."""
    for i in range(2000):
        await world.receive(f"<presence from='s{i}@other.example/r' to='{BLOG}'/>")
    assert world.online_count() <= 16, world.online_count()


RTBL = '[spamguard]\nrtbl_services = ["rtbl.example, muc_bans"]\nblocked_domains = ["evil.example"]\n'


async def block_list(world: World) -> PubsubPeer:
    """The configured block list, listing spam.example, loaded as after a (re)connect."""
    rtbl = PubsubPeer("rtbl.example")
    rtbl.items["muc_bans"] = [(sha("spam.example"), "")]
    world.peers.append(rtbl)
    await world.reconnected()
    return rtbl


@pytest.mark.parametrize("world", [RTBL], indirect=True)
async def test_a_local_user_cannot_switch_the_block_list_off(world):
    """#16: the configured RTBL's consent is the admin's; users' follows never end it."""
    rtbl = await block_list(world)
    await world.chat(f"{MALLORY}/pc", "follow xmpp:rtbl.example?;node=muc_bans")
    await world.chat(f"{MALLORY}/pc", "unfollow xmpp:rtbl.example?;node=muc_bans")
    unsubscribes = [iq for iq in rtbl.asked if "unsubscribe" in ET.tostring(iq, encoding="unicode")]
    assert not unsubscribes, "a user's unfollow unsubscribed the server from its block list"
    await world.receive(event("rtbl.example", "muc_bans", f"<items node='muc_bans'><item id='{sha('evil2.example')}'/>"
                                                         "</items>"))
    reply = await world.iq("x@evil2.example/r", BLOG, "set", subscribe("x@evil2.example"))
    assert error_of(reply)[1] == "forbidden"


@pytest.mark.parametrize("world", [RTBL], indirect=True)
async def test_subdomains_do_not_escape_domain_policy(world):
    """#19: blocks and block-list entries cover subdomains; domain buckets cover them too."""
    await block_list(world)
    for sender in ("x@a1.evil.example/r", "x@b.spam.example/r"):
        reply = await world.iq(sender, BLOG, "set", subscribe(sender.split("/")[0]))
        assert error_of(reply)[1] == "forbidden", sender
    await post(world, "open blog")
    accepted = 0
    for i in range(1000):
        frm = f"u{i}@s{i % 50}.evil2.example"
        reply = await world.iq(f"{frm}/r", BLOG, "set", subscribe(frm), iq_id=f"s{i}")
        accepted += reply.get("type") == "result"
    assert accepted <= 400, f"{accepted} subscribes from one registrable domain"


async def test_a_block_stops_follow_requests_and_comments_by_iq(world):
    """#24: a blocked JID neither asks to follow by XEP-0060 nor comments."""
    item = await post(world, "hello")
    await world.chat(f"{ALICE}/pc", f"block {MALLORY}")
    comment = await world.iq(f"{MALLORY}/pc", BLOG, "set", publish(node=f"{MB}:comments/{item}", text="hi"))
    assert comment.get("type") == "error"
    await world.chat(f"{ALICE}/pc", "protect on")
    await world.drain()
    reply = await world.iq(f"{MALLORY}/pc", BLOG, "set", subscribe(MALLORY))
    assert reply.get("type") == "error"
    assert not [b for _, b in bodies(await world.drain(), ALICE) if MALLORY in b]


async def test_blocking_or_removing_a_follower_ends_their_access(world):
    """An owner who blocks an approved follower of a protected blog (or `remove`s a member of a
    whitelist blog) takes their subscription, membership and presence view away: nothing
    written afterwards reaches them, by chat, presence or XEP-0060."""
    from ..support.stanzas import affiliations, configure, items

    await post(world, "hello")
    assert "protected" in await world.chat(f"{ALICE}/pc", "protect on")
    await world.online(f"{BOB}/pc")
    await world.receive(f"<presence type='subscribe' from='{BOB}' to='{BLOG}'/>")  # a roster follow
    assert (await world.chat(f"{ALICE}/pc", f"approve {BOB}")).startswith("Approved")
    assert any(el.get("type") == "subscribed" and el.get("to") == BOB for el in await world.drain())
    assert (await world.chat(f"{ALICE}/pc", f"block {BOB}")).startswith("Blocked")
    out = await world.drain()
    assert any(el.get("type") == "unsubscribed" and el.get("to") == BOB for el in out), \
        [ET.tostring(el, encoding="unicode")[:200] for el in out]
    await post(world, "private after blocking bob")
    assert not [b for _, b in bodies(await world.drain(), BOB) if "private after" in b]
    assert "private after" not in await world.chat(f"{BOB}/pc", "timeline")
    assert (await world.iq(f"{BOB}/pc", BLOG, "get", items())).get("type") == "error"
    probe = await world.receive(f"<presence type='probe' from='{BOB}/pc' to='{BLOG}'/>")
    assert not any("private after" in ET.tostring(el, encoding="unicode") for el in probe)

    carol = "carol@example.org"
    await world.iq(f"{ALICE}/pc", BLOG, "set", configure(access_model="whitelist"), iq_id="w")
    await world.iq(f"{ALICE}/pc", BLOG, "set", affiliations([(carol, "member")]), iq_id="m")
    assert (await world.iq(f"{carol}/pc", BLOG, "get", items())).get("type") == "result"
    assert (await world.chat(f"{ALICE}/pc", f"remove {carol}")).startswith(f"Removed {carol}")
    assert (await world.iq(f"{carol}/pc", BLOG, "get", items(), iq_id="again")).get("type") == "error"
    assert (await world.chat(f"{ALICE}/pc", f"remove {carol}")) == \
        f"{carol} does not follow your blog. See 'followers'."
    assert (await world.chat(f"{ALICE}/pc", "remove")).startswith("Usage: remove JID")


async def test_a_strangers_early_subscription_cannot_shape_a_blog(world):
    """A stranger subscribing to a local user who never posted makes their node on the defaults;
    the owner's first create or publish-options still configures it (a client that falls back
    to a plain publish would otherwise make a private first post public), and blogs with no
    post are listed nowhere."""
    PS = "http://jabber.org/protocol/pubsub"
    for who in ("bob", "visit.pills.example", "dave"):
        reply = await world.iq("eve@evil.example/x", f"{who}@blog.example.org", "set", subscribe("eve@evil.example"),
                               iq_id=who)
        assert reply.get("type") == "result", ET.tostring(reply)
    http = await world.http()
    assert (await (await http.get("/api/users")).json())["users"] == []
    whitelist = (f"<x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE' type='hidden'><value>{PS}#{{}}"
                 "</value></field><field var='pubsub#access_model'><value>whitelist</value></field></x>")
    create = (f"<pubsub xmlns='{PS}'><create node='{MB}'/>"
              f"<configure>{whitelist.format('node_config')}</configure></pubsub>")
    assert (await world.iq(f"{BOB}/pc", "bob@blog.example.org", "set", create)).get("type") == "result"
    options = (f"<pubsub xmlns='{PS}'><publish node='{MB}'><item><entry xmlns='http://www.w3.org/2005/Atom'>"
               "<title>dave's private first thought</title></entry></item></publish>"
               f"<publish-options>{whitelist.format('publish-options')}</publish-options></pubsub>")
    assert (await world.iq("dave@example.org/pc", "dave@blog.example.org", "set", options)).get("type") == "result"
    await post(world, "bob's private first thought", frm=BOB)
    for path in ("/api/timeline", "/api/users", "/api/search?q=private"):
        text = await (await http.get(path)).text()
        assert "private first" not in text and "bob" not in text.replace("blog.example.org", ""), (path, text)
    got = await world.iq("eve@evil.example/x", "dave@blog.example.org", "get",
                         f"<pubsub xmlns='{PS}'><items node='{MB}'/></pubsub>", iq_id="peek")
    assert got.get("type") == "error", ET.tostring(got)
    # once posted, a create is a conflict again
    again = await world.iq(f"{BOB}/pc", "bob@blog.example.org", "set", create, iq_id="again")
    assert error_of(again)[1] == "conflict"


async def test_an_emptied_protected_blog_keeps_its_settings_against_publish_options(world):
    """Only a node nobody shaped (defaults, no post) takes its owner's publish-options as set-up;
    a protected blog whose posts were all deleted still answers precondition-not-met."""
    PS = "http://jabber.org/protocol/pubsub"
    item = await post(world, "soon gone")
    assert "protected" in await world.chat(f"{ALICE}/pc", "protect on")
    retract = f"<pubsub xmlns='{PS}'><retract node='{MB}'><item id='{item}'/></retract></pubsub>"
    assert (await world.iq(f"{ALICE}/pc", BLOG, "set", retract)).get("type") == "result"
    options = (f"<pubsub xmlns='{PS}'><publish node='{MB}'><item><entry xmlns='http://www.w3.org/2005/Atom'>"
               "<title>private again</title></entry></item></publish><publish-options>"
               f"<x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE' type='hidden'><value>{PS}"
               "#publish-options</value></field><field var='pubsub#access_model'><value>open</value></field>"
               "</x></publish-options></pubsub>")
    reply = await world.iq(f"{ALICE}/pc", BLOG, "set", options, iq_id="po")
    assert error_of(reply)[1:3] == ("conflict", "precondition-not-met"), ET.tostring(reply)
    http = await world.http()
    assert "private again" not in await (await http.get("/api/timeline")).text()
