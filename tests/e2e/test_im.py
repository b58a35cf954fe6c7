# SPDX-License-Identifier: AGPL-3.0-or-later
"""Issue #3 end to end: microblogging from a plain IM client, through a real Prosody."""

from __future__ import annotations

import asyncio
import re

from slixmpp.xmlstream import ET

from ..support.clients import raw_iq
from .test_pubsub import ATOM, NODE, PS, blog

SERVICE = "blog.alpha.test"
EVENT = f"{{{PS}#event}}event"


def jid(user: str) -> str:
    return f"{user}@alpha.test"


def chat_from(user: str, contains: str = ""):
    """A chat message from `user`'s blog JID (an IM delivery of a post)."""
    return lambda m: (m["from"].bare == blog(user) and m["type"] == "chat"
                      and contains in (m["body"] or ""))


def posted_id(answer: str) -> str:
    m = re.search(r"#(\w+)", answer)
    assert m, answer
    return m.group(1)


async def ready(c) -> None:
    """Round-trip the bot: stanzas sent before (presence) have been processed."""
    await c.say("tracking")


async def greeted(c) -> None:
    """A first chat with the service: it asks for the user's presence; accept and sync."""
    service = "blog." + c.boundjid.domain
    if c.client_roster[service]["subscription"] in ("from", "both"):
        await ready(c)  # greeted in an earlier test: the service already sees this user's presence
        return
    await c.say("help")
    assert await c.presences.wait(lambda p: p["type"] == "subscribe" and p["from"].bare == service)
    await ready(c)


async def chat_follow(follower, user: str) -> str:
    """`follow` by chat, then accept the blog JID's presence request like a person would."""
    answer = await follower.say(f"follow {jid(user)}")
    asked = await follower.presences.wait(
        lambda p: p["type"] == "subscribe" and p["from"].bare == blog(user))
    assert asked is not None, "the blog JID did not ask for presence"
    await ready(follower)
    return answer


async def test_roster_follow_and_unfollow(clients):
    kim, leo = await clients("kim"), await clients("leo")
    kim.send_presence(pto=blog("leo"), ptype="subscribe")
    assert await kim.presences.wait(lambda p: p["type"] == "subscribed" and p["from"].bare == blog("leo"))
    assert await kim.presences.wait(lambda p: p["type"] == "subscribe" and p["from"].bare == blog("leo")), \
        "the blog JID subscribes back, so it learns when the follower is online"
    avail = await kim.presences.wait(lambda p: p["type"] == "available" and p["from"].bare == blog("leo"))
    assert avail is not None, "blog JIDs look alive in rosters"
    await ready(kim)
    r = await leo.say("hello from leo #intro, cc @kim@alpha.test")
    assert r.startswith("Posted #")
    # On the node it is a proper XEP-0277 entry: hashtags as categories, mentions as links.
    stored = (await leo.pubsub.get_items(blog("leo"), NODE)).xml.find(f".//{{{ATOM}}}entry")
    assert [c.get("term") for c in stored.findall(f"{{{ATOM}}}category")] == ["intro"]
    assert ("mentioned", "xmpp:kim@alpha.test") in [(link.get("rel"), link.get("href"))
                                                   for link in stored.findall(f"{{{ATOM}}}link")]
    m = await kim.inbox.wait(chat_from("leo", "hello from leo #intro"))
    assert m is not None, "roster follower got no chat message"
    assert posted_id(r) in m["body"]
    assert m.xml.find(f".//{EVENT}") is None, "IM deliveries never carry a pubsub <event/>"
    assert m.xml.find(f"{{{ATOM}}}entry") is not None
    # The follower is a subscriber of the node (XEP-0060 view of the same follow).
    r2 = await leo.say("followers")
    assert "kim@alpha.test" in r2
    # Removing the contact unfollows.
    kim.send_presence(pto=blog("leo"), ptype="unsubscribe")
    await ready(kim)
    await leo.say("second post, nobody should get it")
    assert await kim.inbox.wait(chat_from("leo", "second post"), timeout=1.5) is None
    assert "kim@alpha.test" not in await leo.say("followers")


async def test_status_and_vcard(clients):
    wendy = await clients("wendy")
    await wendy.say("my status line post")
    xavier = await clients("xavier")
    xavier.send_presence(pto=blog("wendy"), ptype="subscribe")
    avail = await xavier.presences.wait(lambda p: p["type"] == "available" and p["from"].bare == blog("wendy"))
    assert avail["status"] == "my status line post"
    card = await raw_iq(xavier, blog("wendy"), "get", "<vCard xmlns='vcard-temp'/>")
    assert card.xml.find("{vcard-temp}vCard/{vcard-temp}NICKNAME").text == "wendy"
    assert card.xml.find("{vcard-temp}vCard/{vcard-temp}JABBERID").text == "wendy@alpha.test"
    nick = await xavier.pubsub.get_items(blog("wendy"), "http://jabber.org/protocol/nick")
    assert nick.xml.find(".//{http://jabber.org/protocol/nick}nick").text == "wendy"


async def test_chat_follow_unfollow_and_lists(clients):
    maxc, nina = await clients("max"), await clients("nina")
    assert await chat_follow(maxc, "nina") == "Now following nina@alpha.test"
    assert await maxc.say("follow nina@blog.alpha.test") == "You already follow nina@alpha.test."
    assert await maxc.say("following") == "You follow: nina@alpha.test"
    assert await nina.say("followers") == "Your followers: max@alpha.test"
    await nina.say("a post for max")
    assert await maxc.inbox.wait(chat_from("nina", "a post for max"))
    assert await maxc.say("unfollow nina@alpha.test") == "You no longer follow nina@alpha.test"
    assert await maxc.say("unfollow nina@alpha.test") == "You are not following nina@alpha.test."
    await nina.say("after unfollow")
    assert await maxc.inbox.wait(chat_from("nina", "after unfollow"), timeout=1.5) is None
    assert await maxc.say("following") == "You follow nobody yet. Try: follow alice@example.org"


async def test_post_reply_repost_delete(clients):
    olga, pete = await clients("olga"), await clients("pete")
    await greeted(olga)
    await chat_follow(pete, "olga")
    first = posted_id(await olga.say("post the first post, with a link & <b>markup</b>"))
    m = await pete.inbox.wait(chat_from("olga", "the first post"))
    assert "<b>markup</b>" in m["body"], "plain text is delivered as plain text"
    answer = await pete.say(f"reply {first} nice one")
    assert answer.startswith(f"Replied to olga@alpha.test's post #{first}")
    note = await olga.inbox.wait(lambda msg: "[reply]" in (msg["body"] or ""))
    assert note is not None and "pete@alpha.test: nice one" in note["body"]
    # the reply is a comment on the post's comments node, threaded to the post
    items = await pete.pubsub.get_items(blog("olga"), f"{NODE}:comments/" + await _full_id(olga, first))
    entry = items.xml.find(f".//{{{ATOM}}}entry")
    thr = entry.find("{http://purl.org/syndication/thread/1.0}in-reply-to")
    assert thr is not None and first in thr.get("ref")
    answer = await pete.say(f"repost {first}")
    assert answer.startswith(f"Reposted olga@alpha.test's #{first} as #")
    items = await pete.pubsub.get_items(blog("pete"), NODE)
    repost = items.xml.find(f".//{{{ATOM}}}entry")
    assert [link.get("rel") for link in repost.findall(f"{{{ATOM}}}link") if link.get("rel") == "via"] == ["via"]
    assert "olga@alpha.test" in repost.find(f"{{{ATOM}}}title").text
    assert await pete.say(f"delete {first}") == "You can only delete your own posts."
    assert await olga.say(f"delete {first}") == f"Deleted #{first}"
    assert await olga.say("delete zzzzzz") == "No such post: zzzzzz."
    assert await olga.say("reply 12") == "Usage: reply ID TEXT — ID is the #id under the post."


async def _full_id(c, short: str) -> str:
    items = await c.pubsub.get_items(blog(c.boundjid.user), NODE)
    return next(i["id"] for i in items["pubsub"]["items"] if i["id"].startswith(short))


async def test_timeline_and_whois(clients):
    quinn, rosa = await clients("quinn"), await clients("rosa")
    await chat_follow(quinn, "rosa")
    for i in range(3):
        await rosa.say(f"rosa says {i}")
    await quinn.say("quinn's own post")
    tl = (await quinn.say("timeline 3")).splitlines()
    assert tl == [l for l in tl if l]  # no blank lines
    assert len(tl) == 3
    assert tl[-1].startswith("quinn@alpha.test: quinn's own post (#")
    assert tl[0].startswith("rosa@alpha.test: rosa says 1")
    who = await quinn.say("whois rosa@alpha.test")
    assert who.startswith("rosa@alpha.test: blog rosa@blog.alpha.test · 3 post(s) · 1 follower(s) · latest: rosa says 2")


async def test_track_and_mentions(clients):
    sam, tina = await clients("sam"), await clients("tina")
    await greeted(sam)
    assert await sam.say("track XMPP") == "Tracking 'xmpp': public posts containing it or #xmpp will reach you."
    assert await sam.say("tracking") == "You track: xmpp"
    await tina.say("I really like #XMPP today")
    m = await sam.inbox.wait(lambda msg: "[tracking xmpp]" in (msg["body"] or ""))
    assert m is not None and "tina@alpha.test: I really like #XMPP today" in m["body"]
    assert m["from"].bare == blog("tina")
    await tina.say("hey @sam@alpha.test look at this")
    m = await sam.inbox.wait(lambda msg: "[mention]" in (msg["body"] or ""))
    assert m is not None and "look at this" in m["body"]
    assert await sam.say("untrack xmpp") == "No longer tracking 'xmpp'."
    await tina.say("more xmpp talk")
    assert await sam.inbox.wait(lambda msg: "more xmpp talk" in (msg["body"] or ""), timeout=1.5) is None


async def test_on_off_and_online_only(clients, net):
    uma, vince = await clients("uma"), await clients("vince")
    await chat_follow(vince, "uma")
    assert (await vince.say("off")).startswith("Chat delivery is off")
    await uma.say("while paused")
    assert await vince.inbox.wait(chat_from("uma", "while paused"), timeout=1.5) is None
    assert (await vince.say("on")).startswith("Chat delivery is on")
    await uma.say("after resume")
    assert await vince.inbox.wait(chat_from("uma", "after resume"))
    # offline: nothing is sent (nothing floods offline storage); timeline catches up
    vince.disconnect()
    await asyncio.sleep(0.5)
    await uma.say("while vince is offline")
    await asyncio.sleep(0.5)
    vince2 = await clients("vince")
    assert await vince2.inbox.wait(chat_from("uma", "while vince is offline"), timeout=1.5) is None
    assert "while vince is offline" in await vince2.say("timeline 5")


async def test_protected_blog_needs_approval(clients):
    yara, zoe, abe = await clients("yara"), await clients("zoe"), await clients("abe")
    assert (await yara.say("protect on")).startswith("Your blog is now protected")
    assert await zoe.say("follow yara@alpha.test") == \
        "yara@alpha.test's blog is protected: your request is waiting for their approval."
    req = await yara.inbox.wait(lambda m: "asks to follow your blog" in (m["body"] or ""))
    assert req is not None and "approve zoe@alpha.test" in req["body"]
    # a roster follow of a protected blog stays pending too
    abe.send_presence(pto=blog("yara"), ptype="subscribe")
    assert await abe.presences.wait(lambda p: p["type"] == "subscribed" and p["from"].bare == blog("yara"),
                                    timeout=1.5) is None
    assert await yara.say("requests") == \
        "Waiting for your approval: abe@alpha.test, zoe@alpha.test (approve JID / deny JID)"
    await yara.say("secret before approval")
    assert await zoe.inbox.wait(chat_from("yara", "secret before approval"), timeout=1) is None
    assert await yara.say("approve zoe@alpha.test") == "Approved: zoe@alpha.test now follows you."
    assert await zoe.presences.wait(lambda p: p["type"] == "subscribe" and p["from"].bare == blog("yara"))
    await ready(zoe)
    await yara.say("for approved followers")
    assert await zoe.inbox.wait(chat_from("yara", "for approved followers"))
    assert await yara.say("approve abe@alpha.test") == "Approved: abe@alpha.test now follows you."
    assert await abe.presences.wait(lambda p: p["type"] == "subscribed" and p["from"].bare == blog("yara"))
    assert await yara.say("deny nobody@alpha.test") == \
        "There is no pending request from nobody@alpha.test. See 'requests'."
    assert (await yara.say("protect off")).startswith("Your blog is public again")


async def test_block(clients):
    bea, kim = await clients("bea"), await clients("kim")
    await greeted(bea)
    await chat_follow(bea, "kim")
    await bea.say("track blocktest")
    assert await bea.say("block kim@alpha.test") == "Blocked kim@alpha.test: you will see nothing from them."
    assert await bea.say("blocked") == "You block: kim@alpha.test"
    await kim.say("blocktest @bea@alpha.test can you see this")
    assert await bea.inbox.wait(lambda m: "can you see this" in (m["body"] or ""), timeout=1.5) is None
    assert "kim@alpha.test" not in await bea.say("following")
    assert await bea.say("unblock kim@blog.alpha.test") == "Unblocked kim@alpha.test."


async def test_one_copy_per_channel_asked_for(clients):
    """Followed by chat and subscribed with XEP-0060: one chat message an IM client shows (a body)
    and one pubsub event for the XEP-0277 client (no body), whatever else would also reach them
    (a tracked word); ending either channel leaves the other (issue #15)."""
    leo, max_ = await clients("leo"), await clients("max")
    await chat_follow(max_, "leo")
    await max_.pubsub.subscribe(blog("leo"), NODE)  # also a XEP-0060 subscription
    await max_.say("track dedup")
    max_.inbox.clear()
    item = posted_id(await leo.say("dedup test post"))
    await asyncio.sleep(1.0)
    got = [m for m in max_.inbox.items if item in ET.tostring(m.xml, encoding="unicode")]
    chats = [m for m in got if m["type"] == "chat" and m["body"]]
    events = [m for m in got if m.xml.find(EVENT) is not None]
    assert len(chats) == 1 and len(events) == 1 and len(got) == 2, [ET.tostring(m.xml) for m in got]
    assert not events[0]["body"], "the event is for the XEP-0277 client: IM clients show no copy of it"

    await max_.pubsub.unsubscribe(blog("leo"), NODE)  # the XEP-0060 channel ends, the chat follow stays
    max_.inbox.clear()
    item = posted_id(await leo.say("after the xep-0060 unsubscribe"))
    await asyncio.sleep(1.0)
    got = [m for m in max_.inbox.items if item in ET.tostring(m.xml, encoding="unicode")]
    assert [m["type"] for m in got] == ["chat"], [ET.tostring(m.xml) for m in got]
    assert await max_.say("untrack dedup")
    assert await max_.say("unfollow leo@alpha.test") == "You no longer follow leo@alpha.test"


async def test_errors_and_help(clients):
    abe, zed = await clients("abe"), await clients("zed@beta.test")
    assert (await abe.say("help")).startswith("xmppblog — anything you send that is not a command is posted")
    assert await abe.say("follow") == "Usage: follow JID (e.g. follow alice@example.org). To post this text: post follow …"
    assert await abe.say("follow the white rabbit") == \
        "Usage: follow JID (e.g. follow alice@example.org). To post this text: post follow …"
    assert (await abe.say("follow not a jid@@")).startswith("Usage: follow JID")
    assert await abe.say("follow abe@alpha.test") == \
        "You can't follow yourself; your own posts are in `timeline` anyway."
    assert (await abe.say("x" * 9000)).startswith("Too long: posts are limited to")
    assert await abe.say("   ") == "Nothing to post: send some text (or 'help')."
    assert await abe.say("track #no spaces allowed") == \
        "Track one word (letters, digits, - or '), up to 64 characters."
    assert await abe.say("timeline") is not None
    assert (await abe.say("on my way home")).startswith("Posted #"), "a sentence starting with a command word"
    assert (await zed.say("hello", to=SERVICE)).startswith("This service is for users of alpha.test.")
    other = await abe.say("hi", to=blog("leo"))
    assert other.startswith("This is leo@alpha.test's microblog.")
