# SPDX-License-Identifier: AGPL-3.0-or-later
"""Issue #2 end to end: slixmpp clients on a real Prosody talk XEP-0060 to xmppblog."""

from __future__ import annotations

import asyncio

from slixmpp.xmlstream import ET

from ..support.clients import raw_iq

NODE = "urn:xmpp:microblog:0"
ATOM = "http://www.w3.org/2005/Atom"
PS = "http://jabber.org/protocol/pubsub"
PSO = PS + "#owner"
RSM = "http://jabber.org/protocol/rsm"


def blog(user: str) -> str:
    return f"{user}@blog.alpha.test"


def entry(title: str, extra: str = "") -> ET.Element:
    e = ET.fromstring(f"<entry xmlns='{ATOM}'><title/>{extra}</entry>")
    e.find(f"{{{ATOM}}}title").text = title
    return e


def is_publish(item_id: str | None = None):
    def match(m):
        items = m.xml.find(f"{{{PS}#event}}event/{{{PS}#event}}items")
        if items is None:
            return False
        it = items.find(f"{{{PS}#event}}item")
        return it is not None and (item_id is None or it.get("id") == item_id)
    return match


def is_retract(item_id: str):
    def match(m):
        r = m.xml.find(f"{{{PS}#event}}event/{{{PS}#event}}items/{{{PS}#event}}retract")
        return r is not None and r.get("id") == item_id
    return match


async def publish(c, user, title, item_id=None):
    r = await c.pubsub.publish(blog(user), NODE, id=item_id, payload=entry(title))
    return r["pubsub"]["publish"]["item"]["id"]


async def item_ids(c, user, **kw):
    r = await c.pubsub.get_items(blog(user), NODE, **kw)
    return [i["id"] for i in r["pubsub"]["items"]]


# ------------------------------------------------------------------ disco

async def test_disco_service_and_blog_jids(clients):
    bob = await clients("bob")
    info = await bob.plugin["xep_0030"].get_info(jid="blog.alpha.test")
    ids = {(c, t) for c, t, _, _ in info["disco_info"]["identities"]}
    assert ("pubsub", "service") in ids
    assert "urn:xmppblog:0" in info["disco_info"]["features"]
    # A user who never posted still has a blog JID that answers.
    info = await bob.plugin["xep_0030"].get_info(jid=blog("walter"))
    assert {(c, t) for c, t, _, _ in info["disco_info"]["identities"]} == {("pubsub", "pep")}
    features = set(info["disco_info"]["features"])
    required = {PS, "http://jabber.org/protocol/rsm"} | {f"{PS}#{f}" for f in (
        "publish", "retrieve-items", "retract-items", "subscribe", "retrieve-subscriptions",
        "config-node", "purge-nodes", "persistent-items", "multi-items", "auto-create", "item-ids",
        "rsm", "access-open", "access-presence", "access-whitelist", "access-authorize",
        "modify-affiliations", "outcast-affiliation", "publisher-affiliation", "get-pending",
        "manage-subscriptions")}
    assert required <= features, required - features
    items = await bob.plugin["xep_0030"].get_items(jid=blog("walter"))
    assert items["disco_items"]["items"] == set()


async def test_disco_items_lists_node_after_first_post(clients):
    victor = await clients("victor")
    await publish(victor, "victor", "first")
    items = await victor.plugin["xep_0030"].get_items(jid=blog("victor"))
    assert (blog("victor"), NODE, None) in items["disco_items"]["items"]
    info = await victor.plugin["xep_0030"].get_info(jid=blog("victor"), node=NODE)
    assert ("pubsub", "leaf") in {(c, t) for c, t, _, _ in info["disco_info"]["identities"]}


# ------------------------------------------------------------------ publish

async def test_publish_fills_entry_and_notifies_subscriber(clients):
    alice, bob = await clients("alice"), await clients("bob")
    r = await bob.pubsub.subscribe(blog("alice"), NODE)
    assert r["pubsub"]["subscription"]["subscription"] == "subscribed"
    item_id = await publish(alice, "alice", "Hello <world> & all")
    assert item_id
    m = await bob.inbox.wait(is_publish(item_id))
    assert m is not None, "subscriber got no notification"
    assert m["from"].bare == blog("alice") and m["type"] == "headline"
    e = m.xml.find(f".//{{{ATOM}}}entry")
    assert e.find(f"{{{ATOM}}}title").text == "Hello <world> & all"
    assert e.find(f"{{{ATOM}}}author/{{{ATOM}}}uri").text == "xmpp:alice@alpha.test"
    assert e.find(f"{{{ATOM}}}author/{{{ATOM}}}name").text == "alice"
    assert item_id in e.find(f"{{{ATOM}}}id").text
    assert e.find(f"{{{ATOM}}}published").text and e.find(f"{{{ATOM}}}updated").text
    rels = {link.get("rel"): link.get("href") for link in e.findall(f"{{{ATOM}}}link")}
    assert rels["replies"] == f"xmpp:{blog('alice')}?;node=urn%3Axmpp%3Amicroblog%3A0%3Acomments%2F{item_id}"
    assert rels["alternate"].startswith(f"xmpp:{blog('alice')}?;node=")
    # The stored item is what the subscriber got.
    r = await bob.pubsub.get_item(blog("alice"), NODE, item_id)
    stored = r.xml.find(f".//{{{ATOM}}}entry")
    assert ET.tostring(stored) == ET.tostring(e)


async def test_republish_updates_entry_and_keeps_published(clients):
    erin = await clients("erin")
    item_id = await publish(erin, "erin", "v1", item_id="post-1")
    await publish(erin, "erin", "other")
    first = (await erin.pubsub.get_item(blog("erin"), NODE, item_id)).xml.find(f".//{{{ATOM}}}entry")
    await asyncio.sleep(1.1)
    assert await publish(erin, "erin", "v2", item_id="post-1") == "post-1"
    second = (await erin.pubsub.get_item(blog("erin"), NODE, item_id)).xml.find(f".//{{{ATOM}}}entry")
    assert second.find(f"{{{ATOM}}}title").text == "v2"
    assert second.find(f"{{{ATOM}}}published").text == first.find(f"{{{ATOM}}}published").text
    assert second.find(f"{{{ATOM}}}updated").text > first.find(f"{{{ATOM}}}updated").text
    assert (await item_ids(erin, "erin"))[0] == "post-1", "an edit moves the item to the top"


async def test_invalid_and_oversize_payloads_are_refused_and_not_stored(clients):
    frank = await clients("frank")
    await publish(frank, "frank", "keep me")
    before = await item_ids(frank, "frank")
    bad = ET.fromstring("<note xmlns='urn:example'>not atom</note>")
    err = await frank.error_of(frank.pubsub.publish(blog("frank"), NODE, payload=bad))
    assert err == ("modify", "bad-request", "invalid-payload")
    empty = ET.fromstring(f"<entry xmlns='{ATOM}'><title/></entry>")
    err = await frank.error_of(frank.pubsub.publish(blog("frank"), NODE, payload=empty))
    assert err == ("modify", "bad-request", "invalid-payload")
    big = entry("x" * 70000)
    err = await frank.error_of(frank.pubsub.publish(blog("frank"), NODE, payload=big))
    assert err == ("modify", "not-acceptable", "payload-too-big")
    deep = ET.fromstring(f"<entry xmlns='{ATOM}'><title>t</title>" + "<x>" * 30 + "</x>" * 30 + "</entry>")
    err = await frank.error_of(frank.pubsub.publish(blog("frank"), NODE, payload=deep))
    assert err[1] == "bad-request"
    assert await item_ids(frank, "frank") == before


async def test_only_the_owner_publishes(clients):
    grace, mallory, zed = await clients("grace"), await clients("mallory"), await clients("zed@beta.test")
    await publish(grace, "grace", "mine")
    err = await mallory.error_of(mallory.pubsub.publish(blog("grace"), NODE, payload=entry("spam")))
    assert err == ("auth", "forbidden", None)
    # A user of another domain, over s2s, cannot own or write a blog here.
    err = await zed.error_of(zed.pubsub.publish(blog("zed"), NODE, payload=entry("remote")))
    assert err[:2] == ("auth", "forbidden")
    err = await zed.error_of(zed.pubsub.publish(blog("grace"), NODE, payload=entry("remote")))
    assert err[:2] == ("auth", "forbidden")
    assert len(await item_ids(grace, "grace")) == 1


# ------------------------------------------------------------------ retract / purge

async def test_retract_notifies_and_checks_rights(clients):
    heidi, ivan = await clients("heidi"), await clients("ivan")
    await ivan.pubsub.subscribe(blog("heidi"), NODE)
    item_id = await publish(heidi, "heidi", "to be retracted")
    assert await ivan.inbox.wait(is_publish(item_id))
    err = await ivan.error_of(ivan.pubsub.retract(blog("heidi"), NODE, item_id))
    assert err == ("auth", "forbidden", None)
    await heidi.pubsub.retract(blog("heidi"), NODE, item_id, notify=True)
    assert await ivan.inbox.wait(is_retract(item_id)), "no retract notification"
    err = await heidi.error_of(heidi.pubsub.retract(blog("heidi"), NODE, item_id))
    assert err == ("cancel", "item-not-found", None)
    assert item_id not in await item_ids(heidi, "heidi")


async def test_post_edit_and_retraction_arrive_with_distinct_stanza_ids(clients):
    """Issue #15: clients and archives de-duplicate on (sender, id); the outbox empties in between."""
    heidi, ivan = await clients("heidi"), await clients("ivan")
    await ivan.pubsub.subscribe(blog("heidi"), NODE)
    ids = []
    for title in ("unique ids", "unique ids, edited"):
        await publish(heidi, "heidi", title, item_id="unique-ids")
        m = await ivan.inbox.wait(is_publish("unique-ids"))
        assert m is not None and m.xml.find(f".//{{{ATOM}}}title").text == title
        ids.append(m["id"])
        await asyncio.sleep(0.5)  # the outbox is drained and empty before the next change
    await heidi.pubsub.retract(blog("heidi"), NODE, "unique-ids", notify=True)
    m = await ivan.inbox.wait(is_retract("unique-ids"))
    assert m is not None, "no retract notification"
    ids.append(m["id"])
    assert all(ids) and len(set(ids)) == 3, ids


async def test_purge_by_owner_only(clients):
    judy, ivan = await clients("judy"), await clients("ivan")
    await ivan.pubsub.subscribe(blog("judy"), NODE)
    for i in range(3):
        await publish(judy, "judy", f"p{i}")
    err = await ivan.error_of(ivan.pubsub.purge(blog("judy"), NODE))
    assert err == ("auth", "forbidden", None)
    await judy.pubsub.purge(blog("judy"), NODE)
    purge = await ivan.inbox.wait(lambda m: m.xml.find(f".//{{{PS}#event}}purge") is not None)
    assert purge is not None
    assert await item_ids(judy, "judy") == []


# ------------------------------------------------------------------ retrieval / RSM

def _rsm(reply):
    s = reply.xml.find(f"{{{PS}}}pubsub/{{{RSM}}}set")
    first = s.find(f"{{{RSM}}}first")
    return {"first": first.text if first is not None else None,
            "index": first.get("index") if first is not None else None,
            "last": getattr(s.find(f"{{{RSM}}}last"), "text", None),
            "count": int(s.find(f"{{{RSM}}}count").text)}


def _ids(reply):
    return [i.get("id") for i in reply.xml.findall(f"{{{PS}}}pubsub/{{{PS}}}items/{{{PS}}}item")]


async def test_items_max_items_by_id_and_rsm_paging(clients):
    oscar = await clients("oscar")
    ids = [await publish(oscar, "oscar", f"post {i}", item_id=f"o{i}") for i in range(7)]
    newest_first = ids[::-1]
    assert await item_ids(oscar, "oscar") == newest_first
    assert await item_ids(oscar, "oscar", max_items=2) == newest_first[:2]
    r = await oscar.pubsub.get_item(blog("oscar"), NODE, "o3")
    assert _ids(r) == ["o3"]
    page = lambda s: (f"<pubsub xmlns='{PS}'><items node='{NODE}'/>"  # noqa: E731
                      f"<set xmlns='{RSM}'>{s}</set></pubsub>")
    r = await raw_iq(oscar, blog("oscar"), "get", page("<max>3</max>"))
    assert _ids(r) == newest_first[:3]
    assert _rsm(r) == {"first": "o6", "index": "0", "last": "o4", "count": 7}
    r = await raw_iq(oscar, blog("oscar"), "get", page("<max>3</max><after>o4</after>"))
    assert _ids(r) == newest_first[3:6]
    assert _rsm(r)["index"] == "3"
    r = await raw_iq(oscar, blog("oscar"), "get", page("<max>3</max><after>o1</after>"))
    assert _ids(r) == ["o0"]
    r = await raw_iq(oscar, blog("oscar"), "get", page("<max>2</max><before/>"))
    assert _ids(r) == ["o1", "o0"]
    r = await raw_iq(oscar, blog("oscar"), "get", page("<max>2</max><before>o4</before>"))
    assert _ids(r) == ["o6", "o5"]
    r = await raw_iq(oscar, blog("oscar"), "get", page("<max>2</max><index>4</index>"))
    assert _ids(r) == ["o2", "o1"]
    r = await raw_iq(oscar, blog("oscar"), "get", page("<max>0</max>"))
    assert _ids(r) == [] and _rsm(r)["count"] == 7
    err = await oscar.error_of(raw_iq(oscar, blog("oscar"), "get", page("<max>2</max><after>nope</after>")))
    assert err[1] == "item-not-found"
    err = await oscar.error_of(raw_iq(oscar, blog("oscar"), "get", page("<max>-1</max>")))
    assert err[1] == "bad-request"


async def test_items_of_unknown_node_or_blog(clients):
    bob = await clients("bob")
    err = await bob.error_of(bob.pubsub.get_items(blog("nobodyposted"), NODE))
    assert err == ("cancel", "item-not-found", None)
    err = await bob.error_of(bob.pubsub.get_items(blog("alice"), "some-other-node"))
    assert err == ("cancel", "item-not-found", None)
    err = await bob.error_of(bob.pubsub.get_items("blog.alpha.test", "no-such-node"))
    assert err == ("cancel", "item-not-found", None)


# ------------------------------------------------------------------ subscriptions

async def test_subscribe_rules_and_own_subscriptions(clients):
    peggy, trent = await clients("peggy"), await clients("trent")
    await publish(peggy, "peggy", "hi")
    err = await trent.error_of(raw_iq(trent, blog("peggy"), "set",
                                      f"<pubsub xmlns='{PS}'><subscribe node='{NODE}' jid='peggy@alpha.test'/></pubsub>"))
    assert err == ("modify", "bad-request", "invalid-jid")
    err = await trent.error_of(trent.pubsub.unsubscribe(blog("peggy"), NODE))
    assert err == ("cancel", "unexpected-request", "not-subscribed")
    await trent.pubsub.subscribe(blog("peggy"), NODE)
    r = await trent.pubsub.get_subscriptions(blog("peggy"))
    subs = [(s["node"], s["jid"].bare, s["subscription"]) for s in r["pubsub"]["subscriptions"]]
    assert subs == [(NODE, "trent@alpha.test", "subscribed")]
    await trent.pubsub.unsubscribe(blog("peggy"), NODE)
    r = await trent.pubsub.get_subscriptions(blog("peggy"))
    assert list(r["pubsub"]["subscriptions"]) == []
    # Subscribing before the first post creates the node.
    await trent.pubsub.subscribe(blog("walter"), NODE)
    r = await peggy.pubsub.get_items(blog("walter"), NODE)
    assert list(r["pubsub"]["items"]) == []


# ------------------------------------------------------------------ errors

async def test_malformed_and_unknown_requests(clients):
    bob = await clients("bob")
    err = await bob.error_of(raw_iq(bob, blog("alice"), "get", "<query xmlns='urn:example:unknown'/>"))
    assert err[1] == "service-unavailable"
    err = await bob.error_of(raw_iq(bob, blog("alice"), "set",
                                    f"<pubsub xmlns='{PS}'><publish><item/></publish></pubsub>"))
    assert err == ("modify", "bad-request", "nodeid-required")
    err = await bob.error_of(raw_iq(bob, blog("alice"), "set",
                                    f"<pubsub xmlns='{PS}'><retract node='{NODE}'><item/></retract></pubsub>"))
    assert err == ("modify", "bad-request", "item-required")
    err = await bob.error_of(raw_iq(bob, blog("alice"), "get",
                                    f"<pubsub xmlns='{PS}'><options node='{NODE}' jid='bob@alpha.test'/></pubsub>"))
    assert err[:2] == ("cancel", "feature-not-implemented")
    # the component is still connected and serving
    assert await item_ids(bob, "alice") is not None


async def test_publish_options_create_then_precondition(clients):
    """Movim/Libervia style: the first publish carries the node's access model."""
    from slixmpp.plugins.xep_0004 import Form
    ivan = await clients("ivan")
    opts = Form()
    opts["type"] = "submit"
    opts.add_field("FORM_TYPE", value=f"{PS}#publish-options", ftype="hidden")
    opts.add_field("pubsub#access_model", value="presence")
    opts.add_field("pubsub#persist_items", value="true")
    opts.add_field("pubsub#send_last_published_item", value="never")  # unknown here: ignored
    node = NODE  # ivan publishes nowhere else: this publish creates his node
    r = await ivan.pubsub.publish(blog("ivan"), node, payload=entry("with options"), options=opts)
    assert r["pubsub"]["publish"]["item"]["id"]
    cfg = await ivan.pubsub.get_node_config(blog("ivan"), node)
    assert cfg["pubsub_owner"]["configure"]["form"].get_values()["pubsub#access_model"] == "presence"
    opts2 = Form()
    opts2["type"] = "submit"
    opts2.add_field("FORM_TYPE", value=f"{PS}#publish-options", ftype="hidden")
    opts2.add_field("pubsub#access_model", value="open")
    err = await ivan.error_of(ivan.pubsub.publish(blog("ivan"), node, payload=entry("x"), options=opts2))
    assert err == ("cancel", "conflict", "precondition-not-met")
