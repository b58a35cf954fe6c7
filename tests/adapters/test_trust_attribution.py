# SPDX-License-Identifier: AGPL-3.0-or-later
"""Remote content is attributed to its origin, never to a local user (security review, Dec 2026).

Findings #1, #11, #18, #20, #23 and #25 of the review of bcf2175, driven from
outside: stanzas in as the host server delivers them, stanzas out as the
server writes them, remote services scripted (tests/support/stanzas.py).
"""

from __future__ import annotations

import pytest

from ..support.stanzas import (
    MB,
    PS,
    PubsubPeer,
    bodies,
    entry,
    event,
    new_key,
    pushed,
    responder,
)
from ..support.world import World

MALLORY, VICTIM, CAROL, ALICE = ("mallory@example.org", "victim@example.org", "carol@example.org",
                                 "alice@example.org")


@pytest.fixture
async def world(tmp_path):
    peers: list[PubsubPeer] = []
    w = await World.start(tmp_path, responder=lambda iq: responder(*peers)(iq),
                          extra="[limits]\nmax_items_per_node = 5\n")
    w.peers = peers  # type: ignore[attr-defined]
    yield w
    await w.close()


async def follow(world: World, who: str, target: str) -> str:
    return await world.chat(f"{who}/pc", f"follow {target}")


def senders(out) -> set[str]:  # type: ignore[no-untyped-def]
    return {el.get("from", "") for el in out}


async def test_a_third_party_node_cannot_speak_as_a_local_user(world):
    """#1: an entry claiming a local author (with a via link) is never sent from that user's blog JID."""
    world.peers.append(PubsubPeer("pubsub.evil.example"))
    assert (await follow(world, MALLORY, "xmpp:pubsub.evil.example?;node=news")).startswith("Now following")
    await world.online(f"{VICTIM}/pc")
    await world.online(f"{MALLORY}/pc")
    forged = entry("@victim@example.org please send me the wifi password", author="bob@example.org",
                   extra="<link rel='via' href='xmpp:bob@blog.example.org?;node=urn:xmpp:microblog:0;item=zz'/>")
    await world.receive(event("pubsub.evil.example", "news", pushed("news", ("x1", forged))))
    out = await world.drain()
    assert "bob@blog.example.org" not in senders(out), [b for b in bodies(out)]
    for frm, body in bodies(out):
        assert not body.startswith("bob@example.org") and "[mention] bob@example.org" not in body, (frm, body)


async def test_a_signing_peer_cannot_attribute_its_relay_to_a_local_user(world):
    """#1: a peer xmppblog signs whatever it relays; a relayed entry naming our user is dropped."""
    peer = PubsubPeer("blog.peer.example", signing_key=new_key(), users_domain="peer.example")
    world.peers.append(peer)
    assert (await follow(world, MALLORY, "xmpp:blog.peer.example?;node=urn:xmpp:microblog:0")).startswith("Now")
    await world.online(f"{VICTIM}/pc")
    await world.online(f"{MALLORY}/pc")
    forged = peer.sign(entry("@victim@example.org I resign", author=ALICE))
    honest = peer.sign(entry("honest relayed post", author="zed@peer.example"))
    await world.receive(event("blog.peer.example", MB, pushed(MB, ("alice/f1", forged), ("zed/h1", honest))))
    out = await world.drain()
    assert "alice@blog.example.org" not in senders(out)
    assert not any("I resign" in b for _, b in bodies(out)), bodies(out)
    relayed = [(f, b) for f, b in bodies(out, MALLORY) if "honest relayed post" in b]
    assert relayed and relayed[0][0] == "zed\\40peer.example@blog.example.org", relayed
    assert relayed[0][1].startswith("zed@peer.example:")


async def test_catch_up_pages_pass_the_same_author_check(world):
    """#11: entries fetched at subscribe/resync are checked like pushed ones."""
    peer = PubsubPeer("remote.example")
    peer.items[MB] = [("forged1", entry("I resign, effective today. uniqueword", author=ALICE))]
    world.peers.append(peer)
    assert (await follow(world, CAROL, "dave@remote.example")).startswith("Now following dave@remote.example")
    timeline = await world.chat(f"{CAROL}/pc", "timeline")
    assert "alice@example.org: I resign" not in timeline
    http = await world.http()
    found = (await (await http.get("/api/search?q=uniqueword")).json())["posts"]
    assert not any(p["author"] == ALICE for p in found), found
    assert not any((p.get("url") or "").startswith("http://blog.example.org/u/alice") for p in found), found


async def test_a_via_link_does_not_change_who_a_post_is_shown_from(world):
    """#11: a repost marker is a display hint; chat copies name the node's owner."""
    world.peers.append(PubsubPeer("remote.example"))
    assert (await follow(world, CAROL, "dave@remote.example")).startswith("Now following")
    await world.online(f"{CAROL}/pc")
    e = entry("borrowed words", author="someone@elsewhere.example",
              extra="<link rel='via' href='xmpp:someone@elsewhere.example'/>")
    await world.receive(event("dave@remote.example", MB, pushed(MB, ("v1", e))))
    got = [b for _, b in bodies(await world.drain(), CAROL) if "borrowed words" in b]
    assert got and got[0].startswith("dave@remote.example:"), got


async def test_signature_checks_do_not_fail_open_and_keys_are_pinned(world):
    """#18: no answer to disco is 'unverifiable', never 'not an xmppblog'; a seen xmppblog stays one."""
    peer = PubsubPeer("blog.peer2.example", signing_key=new_key(), users_domain="peer2.example")
    world.peers.append(peer)
    assert (await follow(world, CAROL, "zed@peer2.example")).startswith("Now")
    await world.online(f"{CAROL}/pc")
    peer.disco = "timeout"

    async def push(item_id: str, xml: str) -> list[str]:
        await world.receive(event("zed@blog.peer2.example", MB, pushed(MB, (item_id, xml))))
        return [b for _, b in bodies(await world.drain(), CAROL)]

    assert not any("unsigned one" in b for b in await push("u1", entry("unsigned one", author="zed@peer2.example")))
    peer.disco = "xmppblog"
    assert not any("unsigned two" in b for b in await push("u2", entry("unsigned two", author="zed@peer2.example")))
    assert any("signed three" in b
               for b in await push("s3", peer.sign(entry("signed three", author="zed@peer2.example"))))
    peer.disco = "plain"  # an impersonator simply stops advertising urn:xmppblog:0
    assert not any("unsigned four" in b for b in await push("u4", entry("unsigned four",
                                                                          author="zed@peer2.example")))
    peer.disco, peer.key = "xmppblog", new_key()  # ... or publishes a key of its own under the pinned id
    world.app.remote.verifier._keys.clear()  # as an hour later, when the cached key set expires
    assert not any("swapped five" in b for b in await push("s5", peer.sign(entry("swapped five",
                                                                                  author="zed@peer2.example"))))


async def test_a_reply_goes_to_the_origin_and_never_where_the_post_points(world):
    """#20: the replies link of a remote post cannot redirect a local user's reply."""
    world.peers.append(PubsubPeer("evil.example"))
    world.peers.append(PubsubPeer("pubsub.third-party.example"))
    assert (await follow(world, ALICE, "bob@evil.example")).startswith("Now following")
    away = entry("vote here", author="bob@evil.example",
                 extra="<link rel='replies' href='xmpp:pubsub.third-party.example?;node=elections-official'/>")
    home = entry("and here", author="bob@evil.example",
                 extra="<link rel='replies' href='xmpp:alice@blog.example.org?;node=urn%3Axmpp%3Amicroblog%3A0'/>")
    await world.receive(event("bob@evil.example", MB, pushed(MB, ("redir1", away), ("redir2", home))))
    world.wire.out.clear()
    await world.chat(f"{ALICE}/pc", "reply redir1 hi")
    await world.chat(f"{ALICE}/pc", "reply redir2 hi")
    third = [iq for p in world.peers for iq in p.asked if iq.get("to") == "pubsub.third-party.example"]
    assert not third, "a reply was published on a node the remote post chose"
    mine = await world.iq(f"{ALICE}/pc", "alice@blog.example.org", "get",
                          f"<pubsub xmlns='{PS}'><items node='{MB}'/></pubsub>")
    assert mine.get("type") == "error" or not mine.findall(f".//{{{PS}}}item"), "a reply became a post of her own"


async def test_remote_item_ids_are_validated_one_by_one_and_trims_leave_no_index(world):
    """#23: a bad remote id is dropped alone; trimmed remote items leave the search index."""
    world.peers.append(PubsubPeer("remote.example"))
    assert (await follow(world, CAROL, "dave@remote.example")).startswith("Now following")
    bad_id = "x" * 5000 + "\tb"
    await world.receive(event("dave@remote.example", MB, pushed(
        MB, ("good1", entry("goodzebra one")), (bad_id, entry("badzebra")))))
    http = await world.http()
    found = (await (await http.get("/api/search?q=badzebra")).json())
    assert found["total"] == 0 and not found["posts"], found
    assert (await (await http.get("/api/search?q=goodzebra")).json())["total"] == 1
    for n in range(8):
        await world.receive(event("dave@remote.example", MB, pushed(MB, (f"t{n}", entry(f"trimzebra {n}")))))
    res = await (await http.get("/api/search?q=trimzebra&limit=50")).json()
    assert res["total"] == len(res["posts"]) <= 5, res


async def test_unknown_keys_refresh_once_per_push_and_a_failed_refresh_keeps_the_rest(world):
    """#25: 50 entries signed by unknown keys cost at most one key refresh; a refresh that
    fails does not lose the valid entries of the same push."""
    peer = PubsubPeer("blog.peer3.example", signing_key=new_key(), users_domain="peer3.example")
    world.peers.append(peer)
    assert (await follow(world, CAROL, "zed@peer3.example")).startswith("Now")
    await world.online(f"{CAROL}/pc")
    before = len(peer.asked)
    rotated = [(f"k{n}", peer.sign(entry(f"rotated {n}", author="zed@peer3.example"), key_id="nope"))
               for n in range(50)]
    await world.receive(event("zed@blog.peer3.example", MB, pushed(MB, *rotated)))
    assert len(peer.asked) - before <= 2, [p.get("to") for p in peer.asked[before:]]
    peer.keys_answer = "timeout"
    world.peers.append(PubsubPeer("unused.example"))
    mixed = [("m1", peer.sign(entry("unknown key", author="zed@peer3.example"), key_id="other")),
             ("m2", peer.sign(entry("valid and kept", author="zed@peer3.example")))]
    await world.receive(event("zed@blog.peer3.example", MB, pushed(MB, *mixed)))
    assert any("valid and kept" in b for _, b in bodies(await world.drain(), CAROL))


async def test_an_author_without_a_local_part_never_becomes_a_local_blog(world):
    """A relay naming a bare word ('alice') as its author, with 'alice' as its users domain,
    must not make the chat copy come from alice@blog.example.org: proxy addresses of
    domain-only JIDs are escaped like every other (\\40), and authors need a local part."""
    evil = PubsubPeer("blog.evil.example", signing_key=new_key(), users_domain="alice")
    world.peers.append(evil)
    assert (await follow(world, MALLORY, "xmpp:blog.evil.example?;node=news")).startswith("Now following")
    await world.online(f"{VICTIM}/pc")
    await world.online(f"{MALLORY}/pc")
    forged = evil.sign(entry("@victim@example.org payroll moved, send me your login", author="alice"))
    await world.receive(event("blog.evil.example", "news", pushed("news", ("g1", forged))))
    out = await world.drain()
    assert "alice@blog.example.org" not in senders(out), bodies(out)
    shown = [(f, b) for f, b in bodies(out, MALLORY) if "payroll moved" in b]
    assert shown and shown[0][0] == "\\40blog.evil.example@blog.example.org", shown
    assert shown[0][1].startswith("blog.evil.example:"), shown


async def test_a_users_domain_counts_only_when_that_domain_lists_the_service(world):
    """An xmppblog server may speak for the users of the domain it advertises only if that
    domain's disco#items list it: otherwise anyone could sign posts 'by' ceo@bigcorp.example."""
    evil = PubsubPeer("blog.evil.example", signing_key=new_key(), users_domain="bigcorp.example")
    evil.confirmed = False
    world.peers.append(evil)
    await follow(world, MALLORY, "xmpp:blog.evil.example?;node=news")
    await world.online(f"{MALLORY}/pc")
    forged = evil.sign(entry("payroll change: new IBAN attached", author="cfo@bigcorp.example"))
    await world.receive(event("blog.evil.example", "news", pushed("news", ("g2", forged))))
    out = await world.drain()
    assert not any("bigcorp" in f for f in senders(out)), senders(out)
    shown = [b for _, b in bodies(out, MALLORY) if "new IBAN" in b]
    assert shown and shown[0].startswith("blog.evil.example:"), shown
    http = await world.http()
    found = (await (await http.get("/api/search?q=IBAN")).json())["posts"]
    assert found and all(p["author"] != "cfo@bigcorp.example" for p in found), found
