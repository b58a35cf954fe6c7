# SPDX-License-Identifier: AGPL-3.0-or-later
"""Interop with ejabberd (Debian's package): as xmppblog's host server, and as a PEP peer."""

from __future__ import annotations

import asyncio

from slixmpp.xmlstream import ET

from ..support.clients import raw_iq
from .test_im import greeted

NODE = "urn:xmpp:microblog:0"


async def test_xmppblog_on_ejabberd_and_federation_with_prosody(clients, component_delta):
    pia, quentin = await clients("pia@delta.test"), await clients("quentin@delta.test")
    # XEP-0060 subscriber on ejabberd gets the event of a post made by chat
    r = await quentin.pubsub.subscribe("pia@blog.delta.test", NODE)
    assert r["pubsub"]["subscription"]["subscription"] == "subscribed"
    answer = await pia.say("hello from ejabberd")
    assert answer.startswith("Posted #")
    ev = await quentin.inbox.wait(lambda m: m.xml.find(".//{http://jabber.org/protocol/pubsub#event}item") is not None)
    assert ev is not None and "hello from ejabberd" in ET.tostring(ev.xml, encoding="unicode")
    # a Prosody user (alpha) follows the ejabberd user over s2s
    oscar = await clients("oscar")
    await greeted(oscar)
    assert await oscar.say("follow pia@delta.test") == "Now following pia@delta.test"
    await pia.say("across two server brands")
    proxy = "pia\\40delta.test@blog.alpha.test"
    m = await oscar.inbox.wait(lambda m: m["from"].bare == proxy and "across two server brands" in (m["body"] or ""))
    assert m is not None and m["body"].startswith("pia@delta.test: across two server brands")
    assert await oscar.say("unfollow pia@delta.test") == "You no longer follow pia@delta.test"


async def test_local_fan_out_goes_through_ejabberds_multicast_service(clients, component_delta):
    """XEP-0033 on a host that offers it (mod_multicast): found with its limit, used for a
    post's local followers, and each follower still gets exactly one notification."""
    await asyncio.to_thread(component_delta.wait_log, "multicast: local fan-out goes through", 20, False)
    assert "goes through multicast.delta.test, 50 addresses per stanza" in component_delta.log_text()
    pia, quentin = await clients("pia@delta.test"), await clients("quentin@delta.test")
    r = await quentin.pubsub.subscribe("pia@blog.delta.test", NODE)
    assert r["pubsub"]["subscription"]["subscription"] == "subscribed"
    sent = component_delta.log_text().count("multicast stanza")

    def about(text):
        return lambda m: text in ET.tostring(m.xml, encoding="unicode")
    await pia.say("one stanza for all of you")
    ev = await quentin.inbox.wait(about("one stanza for all of you"))
    assert ev is not None and ev["from"] == "pia@blog.delta.test" and ev["type"] == "headline"
    assert ev.xml.find("{http://jabber.org/protocol/address}addresses") is None, "bcc: no address list shown"
    await pia.say("and one more")
    assert await quentin.inbox.wait(about("and one more")) is not None
    assert quentin.inbox.count(about("one stanza for all of you")) == 0, "exactly one copy"
    assert component_delta.log_text().count("multicast stanza") > sent, "it went through the service"
    await quentin.pubsub.unsubscribe("pia@blog.delta.test", NODE)


async def test_a_refused_multicast_stanza_is_delivered_one_by_one(clients, component_delta):
    """mod_multicast refuses rex's blog JID (an access rule): the bounce names our stanza, its
    followers get the post one stanza each, and multicast stays off until the next connect."""
    rex, quentin = await clients("rex@delta.test"), await clients("quentin@delta.test")
    assert (await rex.say("first post, node made")).startswith("Posted #")
    r = await quentin.pubsub.subscribe("rex@blog.delta.test", NODE)
    assert r["pubsub"]["subscription"]["subscription"] == "subscribed"
    await rex.say("refused, yet delivered")
    ev = await quentin.inbox.wait(lambda m: "refused, yet delivered" in ET.tostring(m.xml, encoding="unicode"))
    assert ev is not None and ev["from"] == "rex@blog.delta.test"
    await asyncio.to_thread(component_delta.wait_log, "refused a multicast stanza (forbidden)", 10, False)
    assert "sending its 1 notification(s) one by one" in component_delta.log_text()
    await quentin.pubsub.unsubscribe("rex@blog.delta.test", NODE)
    component_delta.stop()  # the next connect finds the service again, for the tests after this one
    component_delta.start()
    await asyncio.to_thread(component_delta.wait_log, "multicast: local fan-out goes through", 20)


async def test_follow_an_ejabberd_pep_microblog_by_uri(clients, component_delta):
    """ejabberd's mod_pep as a plain XEP-0060 peer: followed by its xmpp: URI."""
    from slixmpp.plugins.xep_0004 import Form
    quentin, peggy = await clients("quentin@delta.test"), await clients("peggy")
    opts = Form()
    opts["type"] = "submit"
    opts.add_field("FORM_TYPE", value="http://jabber.org/protocol/pubsub#publish-options", ftype="hidden")
    opts.add_field("pubsub#access_model", value="open")

    def entry(text):
        e = ET.fromstring("<entry xmlns='http://www.w3.org/2005/Atom'><title/></entry>")
        e.find("{http://www.w3.org/2005/Atom}title").text = text
        return e

    await quentin.pubsub.publish("quentin@delta.test", NODE, payload=entry("pep on ejabberd"), options=opts)
    # ejabberd's PEP notifies only available contacts unless the owner turns that off
    await raw_iq(quentin, "quentin@delta.test", "set",
                 "<pubsub xmlns='http://jabber.org/protocol/pubsub#owner'><configure node='urn:xmpp:microblog:0'>"
                 "<x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE' type='hidden'>"
                 "<value>http://jabber.org/protocol/pubsub#node_config</value></field>"
                 "<field var='pubsub#presence_based_delivery'><value>0</value></field></x></configure></pubsub>")
    await greeted(peggy)
    uri = "xmpp:quentin@delta.test?;node=urn%3Axmpp%3Amicroblog%3A0"
    assert await peggy.say(f"follow {uri}") == "Now following quentin@delta.test"
    assert "quentin@delta.test: pep on ejabberd" in await peggy.say("timeline 5")
    await quentin.pubsub.publish("quentin@delta.test", NODE, payload=entry("live from ejabberd pep"),
                                 options=opts)
    proxy = "quentin\\40delta.test@blog.alpha.test"
    m = await peggy.inbox.wait(lambda m: m["from"].bare == proxy and "live from ejabberd pep" in (m["body"] or ""))
    assert m is not None
    assert await peggy.say(f"unfollow {uri}") == "You no longer follow quentin@delta.test"
