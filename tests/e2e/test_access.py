# SPDX-License-Identifier: AGPL-3.0-or-later
"""Issue #2 end to end: node configuration, access models, approval, affiliations, comments."""

from __future__ import annotations

import asyncio

from slixmpp.xmlstream import ET

from ..support.clients import raw_iq
from .test_pubsub import ATOM, NODE, PS, PSO, blog, entry, is_publish, item_ids, publish

DATA = "jabber:x:data"


def config_submit(**fields) -> str:
    body = "".join(f"<field var='pubsub#{k}'><value>{v}</value></field>" for k, v in fields.items())
    return (f"<x xmlns='{DATA}' type='submit'><field var='FORM_TYPE' type='hidden'>"
            f"<value>{PS}#node_config</value></field>{body}</x>")


async def configure(c, user, **fields):
    await raw_iq(c, blog(user), "set",
                 f"<pubsub xmlns='{PSO}'><configure node='{NODE}'>{config_submit(**fields)}</configure></pubsub>")


async def test_owner_reads_and_changes_configuration(clients):
    alice, bob = await clients("alice"), await clients("bob")
    await publish(alice, "alice", "config test")
    r = await alice.pubsub.get_node_config(blog("alice"), NODE)
    form = r["pubsub_owner"]["configure"]["form"]
    values = form.get_values()
    assert values["pubsub#access_model"] == "open"
    assert values["FORM_TYPE"] in (f"{PS}#node_config", [f"{PS}#node_config"])
    err = await bob.error_of(bob.pubsub.get_node_config(blog("alice"), NODE))
    assert err == ("auth", "forbidden", None)
    err = await bob.error_of(configure(bob, "alice", access_model="open"))
    assert err == ("auth", "forbidden", None)
    err = await alice.error_of(configure(alice, "alice", access_model="roster"))
    assert err == ("modify", "not-acceptable", "invalid-options")
    err = await alice.error_of(configure(alice, "alice", max_items="lots"))
    assert err == ("modify", "not-acceptable", "invalid-options")
    await configure(alice, "alice", title="Alice's notes", max_items="2")
    for i in range(3):
        await publish(alice, "alice", f"trim {i}")
    assert len(await item_ids(alice, "alice")) == 2
    r = await alice.pubsub.get_node_config(blog("alice"), NODE)
    assert r["pubsub_owner"]["configure"]["form"].get_values()["pubsub#title"] == "Alice's notes"
    await configure(alice, "alice", max_items="max")


async def test_whitelist_hides_items_and_notifications(clients):
    carol, dave, erin = await clients("carol"), await clients("dave"), await clients("erin")
    await dave.pubsub.subscribe(blog("carol"), NODE)
    await publish(carol, "carol", "public")
    await configure(carol, "carol", access_model="whitelist")
    # dave was subscribed under 'open': the switch ends his subscription
    secret = await publish(carol, "carol", "members only")
    assert await dave.inbox.wait(is_publish(secret), timeout=1.5) is None
    for c in (dave, erin):
        err = await c.error_of(c.pubsub.get_items(blog("carol"), NODE))
        assert err == ("cancel", "not-allowed", "closed-node")
        err = await c.error_of(c.pubsub.get_item(blog("carol"), NODE, secret))
        assert err == ("cancel", "not-allowed", "closed-node")
        err = await c.error_of(c.pubsub.subscribe(blog("carol"), NODE))
        assert err == ("cancel", "not-allowed", "closed-node")
        err = await c.error_of(c.plugin["xep_0030"].get_info(jid=blog("carol"), node=NODE))
        assert err[1] == "item-not-found"
        items = await c.plugin["xep_0030"].get_items(jid=blog("carol"))
        assert items["disco_items"]["items"] == set()
    # members may read and subscribe
    await carol.pubsub.modify_affiliations(blog("carol"), NODE, affiliations=[("erin@alpha.test", "member")])
    assert secret in await item_ids(erin, "carol")
    await erin.pubsub.subscribe(blog("carol"), NODE)
    nxt = await publish(carol, "carol", "for members")
    assert await erin.inbox.wait(is_publish(nxt))
    r = await carol.pubsub.get_node_affiliations(blog("carol"), NODE)
    affs = {a["jid"].bare: a["affiliation"] for a in r["pubsub_owner"]["affiliations"]}
    assert affs == {"carol@alpha.test": "owner", "erin@alpha.test": "member"}
    # outcast: banned, subscription removed
    await carol.pubsub.modify_affiliations(blog("carol"), NODE, affiliations=[("erin@alpha.test", "outcast")])
    err = await erin.error_of(erin.pubsub.get_items(blog("carol"), NODE))
    assert err == ("auth", "forbidden", None)
    err = await carol.error_of(carol.pubsub.modify_affiliations(
        blog("carol"), NODE, affiliations=[("carol@alpha.test", "none")]))
    assert err[:2] == ("auth", "forbidden")


async def test_presence_access_model_means_contacts_the_owner_approved(clients):
    frank, grace = await clients("frank"), await clients("grace")
    await publish(frank, "frank", "for contacts")
    await configure(frank, "frank", access_model="presence")
    err = await grace.error_of(grace.pubsub.get_items(blog("frank"), NODE))
    assert err == ("auth", "not-authorized", "presence-subscription-required")
    err = await grace.error_of(grace.pubsub.subscribe(blog("frank"), NODE))
    assert err == ("auth", "not-authorized", "presence-subscription-required")
    subscribed = asyncio.get_running_loop().create_future()
    grace.add_event_handler("presence_subscribed",
                            lambda p: subscribed.done() or subscribed.set_result(p["from"].bare))
    grace.send_presence(pto=blog("frank"), ptype="subscribe")
    # asking is not being approved: the request waits for frank
    asked = await frank.inbox.wait(lambda m: "grace@alpha.test asks to follow" in (m["body"] or ""))
    assert asked is not None and not subscribed.done()
    err = await grace.error_of(grace.pubsub.get_items(blog("frank"), NODE))
    assert err == ("auth", "not-authorized", "presence-subscription-required")
    assert (await frank.say("approve grace@alpha.test")).startswith("Approved")
    assert await asyncio.wait_for(subscribed, 10) == blog("frank")
    assert len(await item_ids(grace, "frank")) >= 1
    await configure(frank, "frank", access_model="open")


async def test_authorize_pending_approval_and_denial(clients):
    heidi, ivan, judy = await clients("heidi"), await clients("ivan"), await clients("judy")
    await publish(heidi, "heidi", "protected soon")
    await configure(heidi, "heidi", access_model="authorize")
    r = await ivan.pubsub.subscribe(blog("heidi"), NODE)
    assert r["pubsub"]["subscription"]["subscription"] == "pending"
    err = await ivan.error_of(ivan.pubsub.get_items(blog("heidi"), NODE))
    assert err == ("auth", "not-authorized", "pending-subscription")
    err = await judy.error_of(judy.pubsub.get_items(blog("heidi"), NODE))
    assert err == ("auth", "not-authorized", "not-subscribed")
    form_msg = await heidi.inbox.wait(lambda m: m.xml.find(f"{{{DATA}}}x") is not None)
    assert form_msg is not None, "owner got no approval form"
    values = {f.get("var"): [v.text for v in f.findall(f"{{{DATA}}}value")]
              for f in form_msg.xml.find(f"{{{DATA}}}x").findall(f"{{{DATA}}}field")}
    assert values["FORM_TYPE"] == [f"{PS}#subscribe_authorization"]
    assert values["pubsub#subscriber_jid"] == ["ivan@alpha.test"]
    assert values["pubsub#node"] == [NODE]
    # approve with the §8.6 form
    reply = heidi.make_message(mto=blog("heidi"))
    reply.append(ET.fromstring(
        f"<x xmlns='{DATA}' type='submit'><field var='FORM_TYPE'><value>{PS}#subscribe_authorization</value></field>"
        f"<field var='pubsub#node'><value>{NODE}</value></field>"
        f"<field var='pubsub#subscriber_jid'><value>ivan@alpha.test</value></field>"
        f"<field var='pubsub#allow'><value>true</value></field></x>"))
    reply.send()
    note = await ivan.inbox.wait(lambda m: m.xml.find(f".//{{{PS}#event}}subscription") is not None)
    assert note is not None and note.xml.find(f".//{{{PS}#event}}subscription").get("subscription") == "subscribed"
    assert len(await item_ids(ivan, "heidi")) >= 1
    post = await publish(heidi, "heidi", "approved followers only")
    assert await ivan.inbox.wait(is_publish(post))
    # judy asks, heidi denies through manage-subscriptions (§8.8)
    r = await judy.pubsub.subscribe(blog("heidi"), NODE)
    assert r["pubsub"]["subscription"]["subscription"] == "pending"
    r = await heidi.pubsub.get_node_subscriptions(blog("heidi"), NODE)
    subs = {s["jid"].bare: s["subscription"] for s in r["pubsub_owner"]["subscriptions"]}
    assert subs == {"ivan@alpha.test": "subscribed", "judy@alpha.test": "pending"}
    # the get-pending ad-hoc command (XEP-0060 §8.7) re-sends the approval form
    cmd = await raw_iq(heidi, blog("heidi"), "set",
                       f"<command xmlns='http://jabber.org/protocol/commands' node='{PS}#get-pending' action='execute'/>")
    sid = cmd.xml.find("{http://jabber.org/protocol/commands}command").get("sessionid")
    await raw_iq(heidi, blog("heidi"), "set",
                 f"<command xmlns='http://jabber.org/protocol/commands' node='{PS}#get-pending' sessionid='{sid}'>"
                 f"<x xmlns='{DATA}' type='submit'><field var='pubsub#node'><value>{NODE}</value></field></x></command>")
    again = await heidi.inbox.wait(lambda m: "judy@alpha.test" in ET.tostring(m.xml, encoding="unicode")
                                   and m.xml.find(f"{{{DATA}}}x") is not None)
    assert again is not None
    await heidi.pubsub.modify_subscriptions(blog("heidi"), NODE, subscriptions=[("judy@alpha.test", "none")])
    err = await judy.error_of(judy.pubsub.get_items(blog("heidi"), NODE))
    assert err == ("auth", "not-authorized", "not-subscribed")
    err = await judy.error_of(judy.pubsub.get_node_subscriptions(blog("heidi"), NODE))
    assert err == ("auth", "forbidden", None)


async def test_comments_node_per_post(clients):
    mallory, oscar, peggy = await clients("mallory"), await clients("oscar"), await clients("peggy")
    post = await publish(mallory, "mallory", "comment on this")
    comments = f"{NODE}:comments/{post}"
    await mallory.pubsub.subscribe(blog("mallory"), comments)
    r = await oscar.pubsub.publish(blog("mallory"), comments, payload=entry("nice post"))
    cid = r["pubsub"]["publish"]["item"]["id"]
    m = await mallory.inbox.wait(is_publish(cid))
    assert m is not None
    e = m.xml.find(f".//{{{ATOM}}}entry")
    assert e.find(f"{{{ATOM}}}author/{{{ATOM}}}uri").text == "xmpp:oscar@alpha.test"
    assert [i["id"] for i in (await peggy.pubsub.get_items(blog("mallory"), comments))["pubsub"]["items"]] == [cid]
    # only the comment's author (or the post owner) may retract it
    err = await peggy.error_of(peggy.pubsub.retract(blog("mallory"), comments, cid))
    assert err == ("auth", "forbidden", None)
    err = await peggy.error_of(peggy.pubsub.publish(blog("mallory"), comments, id=cid, payload=entry("hijack")))
    assert err == ("auth", "forbidden", None)
    # no comments node without a post
    err = await oscar.error_of(oscar.pubsub.publish(blog("mallory"), f"{NODE}:comments/nope", payload=entry("x")))
    assert err == ("cancel", "item-not-found", None)
    # a protected blog's comments are protected too
    await configure(mallory, "mallory", access_model="whitelist")
    err = await oscar.error_of(oscar.pubsub.get_items(blog("mallory"), comments))
    assert err == ("cancel", "not-allowed", "closed-node")
    err = await oscar.error_of(oscar.pubsub.publish(blog("mallory"), comments, payload=entry("x")))
    assert err == ("cancel", "not-allowed", "closed-node")
    await configure(mallory, "mallory", access_model="open")
    # retracting the post removes its comments
    await mallory.pubsub.retract(blog("mallory"), NODE, post)
    err = await oscar.error_of(oscar.pubsub.get_items(blog("mallory"), comments))
    assert err == ("cancel", "item-not-found", None)
