# SPDX-License-Identifier: AGPL-3.0-or-later
"""Who may see a post is decided at serve time, by every exit (security review, Dec 2026).

Findings #2, #5, #6, #12, #17, #21, #22 and #28 (re-opened blogs, whois) of the
review of bcf2175, from outside: stanzas in, stanzas and HTTP responses out.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

import pytest

from ..support.stanzas import (
    MB,
    PubsubPeer,
    affiliations,
    configure,
    entry,
    error_of,
    event,
    items,
    publish,
    published_id,
    pushed,
    responder,
)
from ..support.world import NS, World

ALICE, BOB, CAROL, ERIN = "alice@example.org", "bob@example.org", "carol@example.org", "erin@other.example"
BLOG = "alice@blog.example.org"


@pytest.fixture
async def world(tmp_path):
    peers: list[PubsubPeer] = []
    w = await World.start(tmp_path, responder=lambda iq: responder(*peers)(iq))
    w.peers = peers  # type: ignore[attr-defined]
    yield w
    await w.close()


async def post(world: World, text: str, frm: str = ALICE, to: str = BLOG, item_id: str | None = None) -> str:
    return published_id(await world.iq(f"{frm}/pc", to, "set", publish(text=text, item_id=item_id)))


def statuses(out: list[ET.Element], to: str | None = None) -> list[str]:
    found = []
    for el in out:
        status = el.find(f"{{{NS}}}status")
        if el.tag == f"{{{NS}}}presence" and status is not None and (to is None or el.get("to", "").startswith(to)):
            found.append(status.text or "")
    return found


def presences(out: list[ET.Element], to: str, ptype: str) -> list[ET.Element]:
    return [el for el in out if el.tag == f"{{{NS}}}presence" and el.get("to", "").startswith(to)
            and el.get("type", "available") == ptype]


async def roster_follow(world: World, who: str, blog: str = BLOG) -> None:
    await world.receive(f"<presence type='subscribe' from='{who}' to='{blog}'/>")
    await world.drain()


async def test_revoked_and_banned_followers_lose_the_presence_status(world):
    """#2: protecting the blog or banning withdraws the presence grant; the status is per viewer."""
    await post(world, "hello world")
    await roster_follow(world, BOB)
    await roster_follow(world, CAROL)
    assert (await world.iq(f"{ALICE}/pc", BLOG, "set", configure(access_model="whitelist"))).get("type") == "result"
    assert (await world.iq(f"{ALICE}/pc", BLOG, "set", affiliations([(CAROL, "outcast")]))).get("type") == "result"
    revoked = await world.drain()
    await post(world, "SECRET moving to 12 Elm Street on Friday")
    revoked += await world.drain()
    for who in (BOB, CAROL):
        answer = await world.receive(f"<presence type='probe' from='{who}/pc' to='{BLOG}'/>")
        assert not any("SECRET" in s for s in statuses(answer)), (who, statuses(answer))
    again = await world.reconnected()
    assert not any("SECRET" in s for s in statuses(again)), statuses(again)
    for who in (BOB, CAROL):
        assert presences(revoked, who, "unsubscribed"), f"{who} keeps the blog's presence"


async def test_an_outcast_gets_no_presence_on_a_presence_blog(world):
    """#2: on a `presence` blog an outcast's subscribe grants nothing before it is refused."""
    await post(world, "hello")
    await world.iq(f"{ALICE}/pc", BLOG, "set", configure(access_model="presence"))
    await world.iq(f"{ALICE}/pc", BLOG, "set", affiliations([(CAROL, "outcast")]))
    await post(world, "SECRET for contacts")
    await roster_follow(world, CAROL)
    answer = await world.receive(f"<presence type='probe' from='{CAROL}/pc' to='{BLOG}'/>")
    assert not any("SECRET" in s for s in statuses(answer)), statuses(answer)


async def test_a_banned_reader_hears_nothing_of_the_blog_through_the_timeline_or_tracking(world):
    """#2, #6: an outcast of a public blog gets neither the public timeline's event for its
    next post nor a tracked-word copy of it; someone who blocked the author gets no timeline event."""
    await post(world, "first post")
    await world.online(f"{CAROL}/pc")
    assert "Tracking" in await world.chat(f"{CAROL}/pc", "track zebra")
    for who in (CAROL, BOB):
        reply = await world.iq(f"{who}/pc", "blog.example.org", "set",
                               f"<pubsub xmlns='http://jabber.org/protocol/pubsub'><subscribe node='{MB}' "
                               f"jid='{who}/pc'/></pubsub>")
        assert reply.get("type") == "result", ET.tostring(reply)
    assert (await world.iq(f"{ALICE}/pc", BLOG, "set", affiliations([(CAROL, "outcast")]))).get("type") == "result"
    assert (await world.chat(f"{BOB}/pc", "block alice@example.org")).startswith("Blocked")
    await world.drain()
    await post(world, "carol must not read this zebra secret")
    out = await world.drain()
    leaked = [ET.tostring(el, encoding="unicode") for el in out if el.get("to", "").startswith((CAROL, BOB))]
    assert not any("zebra secret" in x for x in leaked), leaked
    await world.chat(f"{BOB}/pc", "unblock alice@example.org")
    await post(world, "bob hears this zebra one")
    heard = [el for el in await world.drain() if el.get("to", "").startswith(BOB)]
    assert any("bob hears this" in ET.tostring(el, encoding="unicode") for el in heard)


async def test_a_publisher_affiliates_posts_leave_the_public_timeline_when_the_blog_is_protected(world):
    """#5: timeline copies are the blog's, whoever published them."""
    await post(world, "hello")
    await world.iq(f"{ALICE}/pc", BLOG, "set", affiliations([(BOB, "publisher")]))
    await post(world, "SECRET-by-publisher on alice's blog", frm=BOB)
    await world.iq(f"{ALICE}/pc", BLOG, "set", configure(access_model="whitelist"))
    http = await world.http()
    for path in ("/api/timeline", "/feeds/timeline.atom", "/"):
        assert "SECRET-by-publisher" not in await (await http.get(path)).text(), path
    tl = await world.iq(f"{ERIN}/pc", "blog.example.org", "get", items())
    assert "SECRET-by-publisher" not in ET.tostring(tl, encoding="unicode")


async def test_a_protected_post_cannot_be_reposted(world):
    """#6: repost copies only what is public."""
    assert "protected" in await world.chat(f"{ALICE}/pc", "protect on")
    await world.chat(f"{BOB}/pc", "follow alice@example.org")
    assert (await world.chat(f"{ALICE}/pc", "approve bob@example.org")).startswith("Approved")
    short = re.search(r"#(\S+)", await world.chat(f"{ALICE}/pc", "my diagnosis is XYZPRIVATE")).group(1)
    answer = await world.chat(f"{BOB}/pc", f"repost {short}")
    assert "Reposted" not in answer, answer
    http = await world.http()
    for path in ("/api/timeline", "/api/search?q=XYZPRIVATE", "/api/users/bob/posts"):
        assert "XYZPRIVATE" not in await (await http.get(path)).text(), path


async def test_the_presence_model_means_contacts_the_owner_approved(world):
    """#12: a presence subscription request does not grant itself read access."""
    await post(world, "for my contacts only")
    await world.iq(f"{ALICE}/pc", BLOG, "set", configure(access_model="presence"))
    await roster_follow(world, ERIN)
    reply = await world.iq(f"{ERIN}/pc", BLOG, "get", items())
    assert reply.get("type") == "error", "a stranger's roster request granted itself access"
    assert error_of(reply)[1:3] == ("not-authorized", "presence-subscription-required")
    assert ERIN in await world.chat(f"{ALICE}/pc", "requests")
    await world.chat(f"{ALICE}/pc", f"approve {ERIN}")
    assert (await world.iq(f"{ERIN}/pc", BLOG, "get", items())).get("type") == "result"


XHTML = ("<content type='xhtml'><div xmlns='http://www.w3.org/1999/xhtml'><p>kept text</p>"
         "<script>alert(document.domain)</script><img src='x' onerror='alert(1)'/>"
         "<a href='javascript:alert(2)'>click</a><a href='https://example.net/ok'>fine</a></div></content>")


async def test_published_xhtml_is_sanitised_and_feeds_are_sandboxed(world):
    """#21: no script, event handler or javascript: link survives into feeds or notifications."""
    raw = entry("xhtml post", content=XHTML, extra="<link rel='related' href='javascript:alert(3)'/>")
    reply = await world.iq(f"{ALICE}/pc", BLOG, "set", publish(raw_entry=raw))
    assert reply.get("type") == "result"
    got = ET.tostring(await world.iq(f"{ERIN}/pc", BLOG, "get", items()), encoding="unicode")
    assert "kept text" in got and "https://example.net/ok" in got
    http = await world.http()
    r = await http.get("/feeds/users/alice.atom")
    feed = await r.text()
    for bad in ("script", "onerror", "javascript:"):
        assert bad not in got and bad not in feed, bad
    assert r.headers.get("X-Content-Type-Options") == "nosniff"
    assert "sandbox" in r.headers.get("Content-Security-Policy", "")


async def test_protected_blogs_give_no_existence_oracle(world):
    """#22: absent and unreadable posts and comments nodes answer alike."""
    await post(world, "the doctor said", item_id="2026-11-24-doctor")
    await world.iq(f"{ALICE}/pc", BLOG, "set", publish(node=f"{MB}:comments/2026-11-24-doctor", text="get well"))
    await world.iq(f"{ALICE}/pc", BLOG, "set", configure(access_model="whitelist"))

    async def ask(payload: str, kind: str = "get") -> tuple:  # type: ignore[type-arg]
        return error_of(await world.iq(f"{ERIN}/pc", BLOG, kind, payload))

    assert await ask(items(f"{MB}:comments/2026-11-24-doctor")) == await ask(items(f"{MB}:comments/2026-11-23-nothing"))
    assert await ask(items(MB, ("2026-11-24-doctor",))) == await ask(items(MB, ("2026-11-23-nothing",)))
    subscribe = ("<pubsub xmlns='http://jabber.org/protocol/pubsub'><subscribe node='" + MB
                 + ":comments/{}' jid='" + ERIN + "'/></pubsub>")
    assert (await ask(subscribe.format("2026-11-24-doctor"), "set")
            == await ask(subscribe.format("2026-11-23-nothing"), "set"))
    comment = publish(node=f"{MB}:comments/{{}}", text="hi")
    assert await ask(comment.format("2026-11-24-doctor"), "set") == await ask(comment.format("2026-11-23-nothing"),
                                                                              "set")


@pytest.mark.parametrize("ending", ["<subscription node='urn:xmpp:microblog:0' jid='blog.example.org' "
                                    "subscription='none'/>", "<delete node='urn:xmpp:microblog:0'/>"])
async def test_cached_remote_posts_go_when_the_origin_ends_our_subscription(world, ending):
    """#17: a remote node's cache is served only while we hold its consent."""
    world.peers.append(PubsubPeer("remote.example"))
    assert (await world.chat(f"{CAROL}/pc", "follow dave@remote.example")).startswith("Now following")
    await world.receive(event("dave@remote.example", MB, pushed(MB, ("r1", entry("regrettable zebra post")))))
    http = await world.http()
    assert (await (await http.get("/api/search?q=zebra")).json())["total"] == 1
    await world.receive(event("dave@remote.example", MB, ending))
    assert (await (await http.get("/api/search?q=zebra")).json())["total"] == 0
    assert "regrettable" not in await world.chat(f"{CAROL}/pc", "search zebra")


async def test_a_reopened_blog_is_public_again_everywhere(world):
    """#28: protected -> open restores the timeline copies and the search index."""
    await world.chat(f"{ALICE}/pc", "reopenword before protecting")
    await world.chat(f"{ALICE}/pc", "protect on")
    await world.chat(f"{ALICE}/pc", "protect off")
    http = await world.http()
    assert (await (await http.get("/api/search?q=reopenword")).json())["total"] == 1
    assert "reopenword" in await (await http.get("/api/timeline")).text()


async def test_whois_keeps_a_protected_blogs_counts_private(world):
    """#28: a stranger learns no follower count of a protected blog."""
    await world.chat(f"{ALICE}/pc", "protect on")
    await world.chat(f"{BOB}/pc", "follow alice@example.org")
    await world.chat(f"{ALICE}/pc", "approve bob@example.org")
    answer = await world.chat("frank@example.org/pc", "whois alice@example.org")
    assert "follower" not in answer, answer
    assert "follower" in await world.chat(f"{ALICE}/pc", "whois alice@example.org")
