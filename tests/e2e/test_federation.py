# SPDX-License-Identifier: AGPL-3.0-or-later
"""Issue #4 end to end: two xmppblog servers on two Prosody servers, over s2s."""

from __future__ import annotations

import asyncio
import re

from slixmpp.xmlstream import ET

from .test_im import greeted

PROXY = "zed\\40beta.test@blog.alpha.test"


async def test_follow_remote_user_one_delivery_per_server(clients, component, component_beta):
    followers = [await clients(u) for u in ("carol", "dave", "erin")]
    zed = await clients("zed@beta.test")
    for f in followers:
        await greeted(f)
        assert await f.say("follow zed@beta.test") == "Now following zed@beta.test"
    assert "zed@beta.test" in await followers[0].say("following")
    answer = await zed.say("hello federation #fed")
    item_id = answer.split("#")[1]
    full_id = None
    for f in followers:
        m = await f.inbox.wait(lambda m: m["from"].bare == PROXY and "hello federation" in (m["body"] or ""))
        assert m is not None, f"{f.boundjid.bare} got no remote post"
        assert m["body"].startswith("zed@beta.test: hello federation #fed")
        full_id = m.xml.find("{http://www.w3.org/2005/Atom}entry/{http://www.w3.org/2005/Atom}id").text
    assert full_id and item_id in full_id
    full_item = re.search(r"item=([0-9a-f]+)", full_id).group(1)
    await asyncio.sleep(0.5)
    sent = re.findall(r'SEND: <message from="zed@blog\.beta\.test" type=\'headline\' to="blog\.alpha\.test"[^\n]*'
                      + re.escape(full_item), component_beta.log_text())
    assert len(sent) == 1, f"beta must send one notification per post to alpha, sent {len(sent)}"
    # the remote post is in the followers' timeline and in search; a remote retraction removes it
    assert "zed@beta.test: hello federation #fed" in await followers[0].say("timeline 5")
    assert "zed@beta.test: hello federation #fed" in await followers[0].say("search #fed from:zed@beta.test")
    assert (await zed.say(f"delete {item_id}")).startswith("Deleted")
    for _ in range(50):
        if "hello federation" not in await followers[0].say("timeline 5"):
            break
        await asyncio.sleep(0.1)
    assert "hello federation" not in await followers[0].say("timeline 5")
    # the last local follower leaving ends the server-level subscription
    for f in followers:
        assert await f.say("unfollow zed@beta.test") == "You no longer follow zed@beta.test"
    component_beta.wait_log("unsubscribed: service=zed@blog.beta.test node=urn:xmpp:microblog:0 jid=blog.alpha.test")


async def test_unknown_remote_user(clients, component_beta):
    carol = await clients("carol")
    assert await carol.say("follow nobody@gamma.invalid") == "nobody@gamma.invalid has no microblog we can follow."


async def test_catch_up_after_downtime(clients, component, component_beta):
    yolanda = await clients("yolanda@beta.test")
    frank = await clients("frank")
    await greeted(frank)
    assert await frank.say("follow yolanda@beta.test") == "Now following yolanda@beta.test"
    component.stop()
    for i in range(25):  # more than one RSM page
        await yolanda.say(f"backlog {i}")
    await yolanda.say("posted while alpha was down")
    # alpha's host bounces the notification while its component is away: beta will retry
    component_beta.wait_log("delivery retry: to=blog.alpha.test")
    component.start()
    component.wait_log("remote resync: checked")
    frank2 = await clients("frank")
    timeline = await frank2.say("timeline 50")
    assert "yolanda@beta.test: posted while alpha was down" in timeline
    assert all(f"yolanda@beta.test: backlog {i} " in timeline for i in range(25)), "a gap after the outage"


async def test_forged_and_unsolicited_pushes_are_dropped(clients, component, component_beta):
    xena, grace = await clients("xena@beta.test"), await clients("grace")
    await greeted(grace)
    # grace follows nobody on beta: an event for a node we never subscribed to (T1)
    xena.send_raw(
        "<message to='blog.alpha.test' type='headline' id='spam1'>"
        "<event xmlns='http://jabber.org/protocol/pubsub#event'><items node='urn:xmpp:microblog:0'>"
        "<item id='spam1'><entry xmlns='http://www.w3.org/2005/Atom'><title>BUY NOW</title></entry></item>"
        "</items></event></message>")
    component.wait_log("reason=from-full-jid")
    assert await grace.inbox.wait(lambda m: "BUY NOW" in (m["body"] or ""), timeout=1.0) is None
    assert "BUY NOW" not in await grace.say("timeline 5")


async def test_protected_remote_blog_is_followed_per_person(clients, component, component_beta):
    xena, heidi = await clients("xena@beta.test"), await clients("heidi")
    assert (await xena.say("protect on")).startswith("Your blog is now protected")
    answer = await heidi.say("follow xena@beta.test")
    assert answer == ("xena@beta.test's blog is protected: add xena@blog.beta.test to your roster "
                      "to ask xena@beta.test for access.")
    assert "xena@beta.test" not in await heidi.say("following")
    # heidi asks with her own JID; xena approves that JID; posts come straight from xena's server
    heidi.send_presence(pto="xena@blog.beta.test", ptype="subscribe")
    req = await xena.inbox.wait(lambda m: "asks to follow your blog" in (m["body"] or ""))
    assert req is not None and "heidi@alpha.test" in req["body"]
    assert await xena.say("approve heidi@alpha.test") == "Approved: heidi@alpha.test now follows you."
    assert await heidi.presences.wait(lambda p: p["type"] == "subscribed" and p["from"].bare == "xena@blog.beta.test")
    await asyncio.sleep(0.5)
    await xena.say("for approved eyes only")
    m = await heidi.inbox.wait(lambda m: "for approved eyes only" in (m["body"] or ""))
    assert m is not None and m["from"].bare == "xena@blog.beta.test"
    assert (await xena.say("protect off")).startswith("Your blog is public again")


async def test_roster_add_of_remote_author_address_follows(clients, component, component_beta):
    judy, zed = await clients("judy"), await clients("zed@beta.test")
    await greeted(judy)
    judy.send_presence(pto=PROXY, ptype="subscribe")
    assert await judy.presences.wait(lambda p: p["type"] == "subscribed" and p["from"].bare == PROXY)
    assert "zed@beta.test" in await judy.say("following")
    await zed.say("seen through the roster")
    m = await judy.inbox.wait(lambda m: m["from"].bare == PROXY and "seen through the roster" in (m["body"] or ""))
    assert m is not None and m["body"].startswith("zed@beta.test: ")
    judy.send_presence(pto=PROXY, ptype="unsubscribe")
    await judy.say("tracking")
    assert "zed@beta.test" not in await judy.say("following")


async def test_follow_a_plain_pep_microblog_on_a_server_without_xmppblog(clients, component):
    """Interop: Prosody's own PEP (XEP-0163) microblog of a user of a third server."""
    from slixmpp.plugins.xep_0004 import Form
    from slixmpp.xmlstream import ET
    pat, ivan = await clients("pat@gamma.test"), await clients("ivan")
    opts = Form()
    opts["type"] = "submit"
    opts.add_field("FORM_TYPE", value="http://jabber.org/protocol/pubsub#publish-options", ftype="hidden")
    opts.add_field("pubsub#access_model", value="open")

    def entry(text):
        e = ET.fromstring("<entry xmlns='http://www.w3.org/2005/Atom'><title/>"
                          "<author><name>Pat</name><uri>xmpp:pat@gamma.test</uri></author></entry>")
        e.find("{http://www.w3.org/2005/Atom}title").text = text
        return e

    await pat.pubsub.publish("pat@gamma.test", "urn:xmpp:microblog:0", payload=entry("first PEP post"),
                             options=opts)
    await greeted(ivan)
    assert await ivan.say("follow pat@gamma.test") == "Now following pat@gamma.test"
    assert "pat@gamma.test: first PEP post" in await ivan.say("timeline 5"), "catch-up on subscribe"
    await pat.pubsub.publish("pat@gamma.test", "urn:xmpp:microblog:0", payload=entry("second PEP post"),
                             options=opts)
    proxy = "pat\\40gamma.test@blog.alpha.test"
    m = await ivan.inbox.wait(lambda m: m["from"].bare == proxy and "second PEP post" in (m["body"] or ""))
    assert m is not None and m["body"].startswith("pat@gamma.test: second PEP post")
    assert await ivan.say("unfollow pat@gamma.test") == "You no longer follow pat@gamma.test"


async def test_reply_and_repost_across_servers(clients, component, component_beta):
    kim, zed = await clients("kim"), await clients("zed@beta.test")
    await greeted(kim)
    await greeted(zed)
    assert await kim.say("follow zed@beta.test") == "Now following zed@beta.test"
    post = (await zed.say("what do you think?")).split("#")[1]
    m = await kim.inbox.wait(lambda m: m["from"].bare == PROXY and "what do you think?" in (m["body"] or ""))
    assert m is not None
    answer = await kim.say(f"reply {post} looks great from alpha")
    assert answer.startswith(f"Replied to zed@beta.test's post #{post}")
    # zed, on beta, is told about the reply; it sits on zed's comments node, threaded to the post
    note = await zed.inbox.wait(lambda m: "[reply]" in (m["body"] or "") and "looks great from alpha" in m["body"])
    assert note is not None
    items = await zed.pubsub.get_items("zed@blog.beta.test", "urn:xmpp:microblog:0")
    full = next(i["id"] for i in items["pubsub"]["items"] if i["id"].startswith(post))
    comments = await zed.pubsub.get_items("zed@blog.beta.test", f"urn:xmpp:microblog:0:comments/{full}")
    xml = ET.tostring(comments.xml, encoding="unicode")
    assert "looks great from alpha" in xml and f"item={full}" in xml  # thr:in-reply-to
    answer = await kim.say(f"repost {post}")
    assert answer.startswith(f"Reposted zed@beta.test's #{post} as #")
    mine = await kim.pubsub.get_items("kim@blog.alpha.test", "urn:xmpp:microblog:0")
    assert "zed@beta.test: what do you think?" in ET.tostring(mine.xml, encoding="unicode")
    assert await kim.say("unfollow zed@beta.test") == "You no longer follow zed@beta.test"



async def test_another_server_follows_our_public_timeline(clients, component, component_beta):
    """An aggregator-style follow of alpha's public timeline from beta: many authors, all signed."""
    yolanda, victor = await clients("yolanda@beta.test"), await clients("victor")
    await greeted(yolanda)
    uri = "xmpp:blog.alpha.test?;node=urn%3Axmpp%3Amicroblog%3A0"
    assert await yolanda.say(f"follow {uri}") == "Now following blog.alpha.test"
    await victor.say("hello to the whole network")
    m = await yolanda.inbox.wait(lambda m: "hello to the whole network" in (m["body"] or ""))
    assert m is not None and m["from"].bare == "victor\\40alpha.test@blog.beta.test", "from the author's address"
    assert m["body"].startswith("victor@alpha.test: hello to the whole network"), "the real author is named"
    assert await yolanda.say(f"unfollow {uri}") == "You no longer follow blog.alpha.test"


async def test_outbox_survives_a_restart_of_the_sending_server(clients, component, component_beta):
    """A notification bounced while alpha's component was away is delivered from beta's durable
    outbox, even though beta's component restarted in between."""
    zed, leo = await clients("zed@beta.test"), await clients("leo")
    await greeted(leo)
    assert await leo.say("follow zed@beta.test") == "Now following zed@beta.test"
    component.stop()
    await zed.say("queued across restarts")
    component_beta.wait_log("delivery retry: to=blog.alpha.test")
    component_beta.stop()
    component.start()
    component_beta.start()
    component.wait_log("remote items stored: origin=zed@blog.beta.test", timeout=30)
    # beta's restarted process sent it again from its outbox (not only alpha's catch-up)
    component_beta.wait_log('to="blog.alpha.test" id="ob', timeout=30)
    leo2 = await clients("leo")
    assert "zed@beta.test: queued across restarts" in await leo2.say("timeline 5")
    assert await leo2.say("unfollow zed@beta.test") == "You no longer follow zed@beta.test"
