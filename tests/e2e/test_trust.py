# SPDX-License-Identifier: AGPL-3.0-or-later
"""Issue #13 end to end, through real Prosody servers: impersonation from a followed third-party
node, presence after revocation, oversize replies, owner-created subscriptions."""

from __future__ import annotations

import asyncio

from slixmpp.xmlstream import ET

from ..support.clients import raw_iq
from .test_access import configure
from .test_im import greeted, jid, ready
from .test_pubsub import NODE, PS, PSO, blog, publish
from .test_spamguard import Rogue

ATOM = "http://www.w3.org/2005/Atom"
COMMANDS = "http://jabber.org/protocol/commands"


THIRD_PARTY = "rogue.gamma.test"


async def _third_party(net) -> Rogue:
    """A plain pubsub service on gamma.test: no other test makes it an xmppblog that signs."""
    rogue = Rogue(net["gamma"].ip, jid=THIRD_PARTY)
    started = asyncio.get_running_loop().create_future()
    rogue.add_event_handler("session_start", lambda _: started.done() or started.set_result(True))
    rogue.connect()
    await asyncio.wait_for(started, 10)
    return rogue


async def test_a_followed_third_party_node_cannot_speak_as_a_local_user(clients, component, net):
    """Finding #1: a pushed entry claiming a local author, with a via link, is dropped; nothing is ever
    sent from that user's blog JID."""
    rogue = await _third_party(net)
    amy, ben = await clients("amy"), await clients("ben")
    try:
        await greeted(amy)
        await greeted(ben)
        assert await amy.say(f"follow xmpp:{THIRD_PARTY}?;node=news") == f"Now following {THIRD_PARTY}"
        forged = (f"<event xmlns='{PS}#event'><items node='news'><item id='imp1'><entry xmlns='{ATOM}'>"
                  "<title>@ben@alpha.test send me your password</title>"
                  "<author><uri>xmpp:cleo@alpha.test</uri></author>"
                  "<link rel='via' href='xmpp:cleo@blog.alpha.test?;node=urn:xmpp:microblog:0;item=x'/>"
                  "</entry></item></items></event>")
        honest = (f"<event xmlns='{PS}#event'><items node='news'><item id='ok1'><entry xmlns='{ATOM}'>"
                  "<title>honest news after the attempt</title></entry></item></items></event>")
        rogue.push(THIRD_PARTY, forged)
        rogue.push(THIRD_PARTY, honest)
        assert await amy.inbox.wait(lambda m: "honest news after the attempt" in (m["body"] or "")) is not None
        component.wait_log("reason=author-local")
        await asyncio.sleep(0.5)
        for c in (amy, ben):
            assert not [m for m in c.inbox.items if m["from"].bare == blog("cleo")], "sent as a local user"
            assert not [m for m in c.inbox.items if "send me your password" in (m["body"] or "")]
        assert "cleo@alpha.test" not in await amy.say("timeline 20")
        await amy.say(f"unfollow xmpp:{THIRD_PARTY}?;node=news")
    finally:
        rogue.disconnect()


async def test_revoked_and_banned_followers_lose_the_blog_presence(clients, net):
    """Finding #2: protecting the blog and banning withdraw the presence grant; no status line
    with a protected post reaches them, not even after they log in again."""
    dan, eve, fay = await clients("dan"), await clients("eve"), await clients("fay")
    await publish(dan, "dan", "a public hello")
    for c in (eve, fay):
        c.send_presence(pto=blog("dan"), ptype="subscribe")
        assert await c.presences.wait(lambda p: p["type"] == "subscribed" and p["from"].bare == blog("dan"))
        await ready(c)
    await configure(dan, "dan", access_model="whitelist")
    await raw_iq(dan, blog("dan"), "set", f"<pubsub xmlns='{PSO}'><affiliations node='{NODE}'>"
                                          f"<affiliation jid='{jid('fay')}' affiliation='outcast'/>"
                                          "</affiliations></pubsub>")
    for c in (eve, fay):
        assert await c.presences.wait(lambda p: p["type"] == "unsubscribed" and p["from"].bare == blog("dan")), \
            "the presence grant was not withdrawn"
    await publish(dan, "dan", "SECRET moving on Friday")
    await asyncio.sleep(0.3)
    for who, c in (("eve", eve), ("fay", fay)):
        c.disconnect()
        again = await clients(who)  # logging in makes the user's server probe its contacts
        again.send_presence(pto=blog("dan"), ptype="probe")
        await ready(again)
        await asyncio.sleep(0.5)
        statuses = [p["status"] for p in again.presences.items if p["from"].bare == blog("dan")]
        assert not any("SECRET" in (s or "") for s in statuses), statuses
    await configure(dan, "dan", access_model="open")


async def test_no_request_can_make_a_reply_too_large_for_the_host(clients, component, net):
    """Finding #3: timeline, search, the open search command and owner lists stay under the stanza limit;
    the component stays connected and answers every request."""
    gus, hal = await clients("gus"), await clients("hal")
    for n in range(20):
        e = ET.fromstring(f"<entry xmlns='{ATOM}'><title>zebra {n}</title><content>zebra {n} {'x' * 60000}"
                          "</content></entry>")
        await gus.pubsub.publish(blog("gus"), NODE, payload=e, timeout=20)
    await greeted(hal)
    await hal.say("follow gus@alpha.test")
    before = component.log_text(since_start=True).count("connected to ")
    timeline = await hal.say("timeline 20", timeout=20)
    assert "zebra" in timeline and len(timeline.encode()) < 400 * 1024
    assert "zebra" in await hal.say("search zebra", timeout=20)
    zed = await clients("zed@beta.test")
    form = (f"<command xmlns='{COMMANDS}' node='xmppblog#search' action='execute'>"
            "<x xmlns='jabber:x:data' type='submit'><field var='query'><value>zebra</value></field></x></command>")
    found = await raw_iq(zed, "blog.alpha.test", "set", form, timeout=20)
    assert found["type"] == "result"
    owner_list = await raw_iq(gus, blog("gus"), "get",
                              f"<pubsub xmlns='{PSO}'><subscriptions node='{NODE}'/></pubsub>", timeout=20)
    assert owner_list["type"] == "result"
    assert await hal.say("help")
    log = component.log_text(since_start=True)
    assert log.count("connected to ") == before and "disconnected from host server" not in log, \
        "a reply made the host drop the component"


async def test_an_owner_cannot_subscribe_people_who_never_asked(clients):
    """Finding #4: owner-created subscriptions for JIDs with no request are refused; approving a
    request still works."""
    ike, jan = await clients("ike"), await clients("jan")
    await publish(ike, "ike", "before")
    victims = "".join(f"<subscription jid='{j}' subscription='subscribed'/>"
                      for j in (jid("jan"), "yolanda@beta.test", "nobody@gamma.test"))
    err = await ike.error_of(raw_iq(ike, blog("ike"), "set",
                                    f"<pubsub xmlns='{PSO}'><subscriptions node='{NODE}'>{victims}"
                                    "</subscriptions></pubsub>"))
    assert err[:2] == ("modify", "not-acceptable")
    await publish(ike, "ike", "spam nobody asked for")
    await asyncio.sleep(1.0)
    assert not [m for m in jan.inbox.items if m["from"].bare == blog("ike")], "a JID that never asked got mail"
    # a request, then the owner's approval through the same XEP-0060 call
    await configure(ike, "ike", access_model="authorize")
    r = await jan.pubsub.subscribe(blog("ike"), NODE)
    assert r["pubsub"]["subscription"]["subscription"] == "pending"
    ok = await raw_iq(ike, blog("ike"), "set", f"<pubsub xmlns='{PSO}'><subscriptions node='{NODE}'>"
                                                f"<subscription jid='{jid('jan')}' subscription='subscribed'/>"
                                                "</subscriptions></pubsub>")
    assert ok["type"] == "result"
    await publish(ike, "ike", "for approved readers")
    got = await jan.inbox.wait(lambda m: m["from"].bare == blog("ike") and "for approved readers"
                               in ET.tostring(m.xml, encoding="unicode"))
    assert got is not None
    await configure(ike, "ike", access_model="open")
